#!/usr/bin/env bash
# Builds a Debian bookworm root filesystem with debootstrap (minbase), keeps
# it as a tarball under _output/debian/ and imports it as debian:bookworm.
#
#   hack/debian-image.sh [--tar-only] [--force]
#
# --tar-only  make (or reuse) the tarball, import nothing (what make test
#             needs: the examples tests import it into their own roots)
# --force     run debootstrap again even when the tarball exists
#
# Environment: BERTH (the binary to import with, default _output/bin/berth),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_TAR (default
# _output/debian/bookworm.tar). Needs root (debootstrap, chroot).
set -euo pipefail

cd "$(dirname "$0")/.."
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
TAR=${DEBIAN_TAR:-_output/debian/bookworm.tar}
BERTH=${BERTH:-_output/bin/berth}
SUITE=bookworm
tar_only=0 force=0
for a in "$@"; do
	case $a in
	--tar-only) tar_only=1 ;;
	--force) force=1 ;;
	*) echo "usage: $0 [--tar-only] [--force]" >&2; exit 2 ;;
	esac
done

die() { echo "debian-image: $*" >&2; exit 1; }

build_tar() {
	[[ $(id -u) == 0 ]] || die "debootstrap needs root: run as root (sudo make debian-image)"
	if ! command -v debootstrap >/dev/null; then
		command -v apt-get >/dev/null || die "debootstrap is missing and there is no apt-get to install it"
		echo "debian-image: installing debootstrap"
		apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends debootstrap >/dev/null ||
			{ apt-get -o DPkg::Lock::Timeout=300 update -qq && apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends debootstrap >/dev/null; } ||
			die "could not install debootstrap with apt-get"
	fi

	# A clear message when the mirror cannot be reached, before debootstrap
	# prints pages of its own.
	local host=${MIRROR#*://}
	host=${host%%/*}
	local port=80
	[[ $MIRROR == https://* ]] && port=443
	if [[ $host == *:* ]]; then
		port=${host##*:}
		host=${host%:*}
	fi
	if ! timeout 15 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then
		die "cannot reach the Debian mirror $MIRROR ($host:$port): the image needs it (set DEBIAN_MIRROR to another mirror)"
	fi

	local dir
	dir=$(dirname "$TAR")
	mkdir -p "$dir"
	rootfs="$dir/rootfs.tmp" # global: the EXIT trap uses it
	cleanup() {
		# debootstrap mounts proc and sys in the target; unmount anything
		# left there by a failed run, deepest first, before removing it.
		if [[ -d $rootfs ]]; then
			local abs
			abs=$(realpath "$rootfs")
			awk -v r="$abs/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
				umount -l "$m" 2>/dev/null || true
			done
			rm -rf "$rootfs"
		fi
	}
	cleanup
	trap cleanup EXIT

	echo "debian-image: debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes)"
	local start=$SECONDS log="$dir/debootstrap.log"
	if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		die "debootstrap failed (full log: $log); is $MIRROR reachable?"
	fi

	# Trim what an image should not carry: package lists and caches (RUN
	# apt-get update fetches fresh ones), logs, the build host's resolver
	# and name, and device nodes (the runtime provides /dev).
	rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
		"$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/debootstrap "$rootfs"/dev/* "$rootfs"/tmp/* "$rootfs"/root/.bash_history
	: >"$rootfs/etc/resolv.conf"
	echo localhost >"$rootfs/etc/hostname"
	: >"$rootfs/etc/machine-id"
	# apt in containers, as the usual debian images have it: downloaded
	# .debs are deleted after each install, no translation indexes.
	cat >"$rootfs/etc/apt/apt.conf.d/90berth-image" <<-'EOF'
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
		APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
		Dir::Cache::pkgcache "";
		Dir::Cache::srcpkgcache "";
		Acquire::Languages "none";
	EOF

	tar --numeric-owner --xattrs --sort=name -C "$rootfs" -cf "$TAR.tmp" .
	mv "$TAR.tmp" "$TAR"
	echo "debian-image: $TAR ($(du -h "$TAR" | cut -f1)) in $((SECONDS - start))s"
}

if [[ -f $TAR && $force == 0 ]]; then
	echo "debian-image: $TAR exists (cached; --force to rebuild)"
else
	build_tar
fi

if [[ $tar_only == 0 ]]; then
	[[ -x $BERTH ]] || die "no berth binary at $BERTH (make build, or set BERTH)"
	"$BERTH" image import "$TAR" debian:bookworm \
		--change 'CMD ["bash"]' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
	echo "debian-image: imported as debian:bookworm"
fi
