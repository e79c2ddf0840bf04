#!/usr/bin/env bash
# bench/compare.sh: berth side by side with docker (docker-compose 1.29 on
# dockerd, docker run) and podman (podman-compose, podman run), runc and the
# kernel's floor, in one run on one machine with one image (issue 13, part 4;
# bench/README.md, "bench/compare.sh"):
#
#  compose, a 3-service project (httpd on 127.0.0.1 + 2 sleeps, one network):
#    cold `up -d`, no-op `up -d`, `up -d --scale worker=10`,
#    `run --rm -T worker true`, `down -t 0`;
#  compose, a 50-service project: `up -d` and `down -t 0`;
#  one container: `berth container run --rm --network none busybox true`
#    against `docker run`, `podman run` (same flags), `runc run` and
#    `unshare ... chroot ROOTFS /bin/true` (the floor);
#  memory: the per-container supervisor (berth's `_shim`, containerd's
#    `containerd-shim-runc-v2`, podman's `conmon`) with 10 containers up.
#
# Writes a markdown report with ratios to berth and to the floor to
# bench/results/compare-<date>.md (and prints it).
#
#   sudo bench/compare.sh                     # the peers that are installed
#   sudo BENCH_PEERS=1 bench/compare.sh       # apt-get install the missing ones first
#   sudo BENCH_ROUNDS=2 BENCH_MANY= BENCH_SKIP=podman bench/compare.sh   # quick
#
# Every timed command runs in rounds: round i runs each tool once, in an
# order rotated each round, so load on the machine hits all tools alike.
# The stopwatch is hyperfine (`hyperfine -N --runs 1`, one command a call,
# no shell) when it is installed, else bash's EPOCHREALTIME (BENCH_TIMER).
# Everything (berth's root, dockerd's data/exec roots and socket, podman's
# storage/run/network dirs, runc's state, the project files) lives under one
# mktemp dir; the EXIT trap takes every project down with its own tool,
# stops the dockerd it started, removes what the peers made outside the dir
# and checks that nothing of the run is left (mounts, processes, cgroups,
# network namespaces and interfaces, paths).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${BENCH_ROUNDS:-5}          # timed rounds of the 3-service operations
WARMUP=${BENCH_WARMUP:-1}          # untimed rounds first (3-service and raw run)
NOOP_EACH=${BENCH_NOOP_EACH:-2}    # no-op ups per tool per round
SCALE=${BENCH_SCALE:-10}           # worker count of the --scale up
MANY=${BENCH_MANY-50}              # services of the big project (empty: skip)
MANY_ROUNDS=${BENCH_MANY_ROUNDS:-3}
RAW_RUNS=${BENCH_RAW_RUNS:-20}     # timed rounds of the one-container run
RAW_WARMUP=${BENCH_RAW_WARMUP:-2}
MEM_N=${BENCH_MEM_CONTAINERS:-10}
INSTALL=${BENCH_PEERS:-0}
SKIP=${BENCH_SKIP:-}               # among: docker podman runc
TIMER=${BENCH_TIMER:-auto}         # auto | hyperfine | shell
LOCK=${BENCH_LOCK-/tmp/berth-bench.lock}
BERTH=${BERTH_BIN:-$REPO/_output/bin/berth}
IMAGE_TAR=${BENCH_IMAGE_TAR:-$REPO/_output/testimage/busybox.tar}
DATE=$(date +%F)
OUT=${BENCH_OUT:-$REPO/bench/results/compare-$DATE.md}

die() { echo "bench/compare.sh: $*" >&2; exit 1; }
note() { echo "bench/compare.sh: $*" >&2; }

[[ $(id -u) == 0 ]] || die "run as root (sudo bench/compare.sh): containers need namespaces, mounts and cgroups"
for v in ROUNDS NOOP_EACH SCALE MANY_ROUNDS RAW_RUNS MEM_N; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
for v in WARMUP RAW_WARMUP; do [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"; done
[[ -z $MANY || $MANY =~ ^[1-9][0-9]*$ ]] || die "BENCH_MANY must be a positive integer or empty, got '$MANY'"
for s in $SKIP; do case $s in docker | podman | runc) ;; *) die "BENCH_SKIP: unknown '$s' (docker, podman, runc)" ;; esac; done
case $TIMER in auto | hyperfine | shell) ;; *) die "BENCH_TIMER must be auto, hyperfine or shell, got '$TIMER'" ;; esac
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash 5 (EPOCHREALTIME)"
for t in awk sha256sum ip tar unshare chroot comm; do command -v "$t" >/dev/null || die "$t is required"; done
[[ -x $BERTH ]] || { note "no $BERTH: make build"; make -C "$REPO" build >&2; }
[[ -x $BERTH ]] || die "no berth binary at $BERTH (make build BIN=..., and BERTH_BIN=...)"
[[ -f $IMAGE_TAR ]] || { note "no $IMAGE_TAR: make testimage"; make -C "$REPO" testimage >&2; }
[[ -f $IMAGE_TAR ]] || die "no busybox image tarball at $IMAGE_TAR (make testimage, or set BENCH_IMAGE_TAR)"
skipped() { [[ " $SKIP " == *" $1 "* ]]; }

NOTES=()

# --- peers: installed only with BENCH_PEERS=1 ------------------------------

want_pkgs() { # the Debian packages missing for the peers (and the stopwatch)
	skipped docker || { command -v dockerd >/dev/null && [[ -x /usr/bin/docker ]] || echo docker.io; }
	skipped docker || command -v docker-compose >/dev/null || echo docker-compose
	skipped podman || command -v podman >/dev/null || echo podman
	skipped podman || command -v podman-compose >/dev/null || echo podman-compose
	{ skipped runc && skipped podman && skipped docker; } || command -v runc >/dev/null || echo runc
	skipped podman || command -v conmon >/dev/null || echo conmon
	[[ $TIMER == shell ]] || command -v hyperfine >/dev/null || echo hyperfine
	command -v jq >/dev/null || echo jq
}
MISSING=$(want_pkgs | tr '\n' ' ')
if [[ -n ${MISSING// /} && $INSTALL == 1 ]]; then
	note "installing $MISSING(BENCH_PEERS=1)"
	# No init system here, but keep docker.io's maintainer scripts from
	# starting a system dockerd: a policy-rc.d that denies, only if there
	# is none (as bench/compose does).
	POLICY=
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		POLICY=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$POLICY" && chmod +x "$POLICY"
	fi
	apt_() { DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get -o DPkg::Lock::Timeout=300 "$@" >&2; }
	# shellcheck disable=SC2086
	apt_ install -y -qq $MISSING || { apt_ update -qq && apt_ install -y -qq $MISSING; } || note "apt-get install $MISSING failed"
	[[ -n $POLICY ]] && rm -f "$POLICY"
elif [[ -n ${MISSING// /} ]]; then
	note "not installed: $MISSING(BENCH_PEERS=1 installs them); their rows are skipped"
fi
command -v jq >/dev/null || die "jq is required (BENCH_PEERS=1 installs it)"
if [[ $TIMER == auto ]]; then command -v hyperfine >/dev/null && TIMER=hyperfine || TIMER=shell; fi
[[ $TIMER == shell ]] || command -v hyperfine >/dev/null || die "BENCH_TIMER=hyperfine but hyperfine is not installed"

# stacks: berth, docker (docker-compose + dockerd + docker run), podman
# (podman-compose + podman); raw-run-only tools: runc, floor
STACKS=(berth)
if skipped docker; then NOTES+=("docker: skipped (BENCH_SKIP)")
elif command -v dockerd >/dev/null && command -v docker-compose >/dev/null && [[ -x /usr/bin/docker ]]; then STACKS+=(docker)
else NOTES+=("docker: docker.io or docker-compose not installed (BENCH_PEERS=1 installs them); skipped"); fi
if skipped podman; then NOTES+=("podman: skipped (BENCH_SKIP)")
elif command -v podman >/dev/null && command -v podman-compose >/dev/null && command -v runc >/dev/null; then STACKS+=(podman)
else NOTES+=("podman: podman, podman-compose or runc not installed (BENCH_PEERS=1 installs them); skipped"); fi
RAW=("${STACKS[@]}")
if skipped runc; then NOTES+=("runc: skipped (BENCH_SKIP)")
elif command -v runc >/dev/null; then RAW+=(runc)
else NOTES+=("runc: not installed (BENCH_PEERS=1 installs it); its row is skipped"); fi
RAW+=(floor)
has() { local t; for t in "${STACKS[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }
raw_has() { local t; for t in "${RAW[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }

# --- the lock: timed runs of other benchmarks on this machine wait for ours

if [[ -n $LOCK ]]; then
	exec 9>>"$LOCK"
	if ! flock -n 9; then
		note "waiting for $LOCK (another benchmark is running)"
		flock 9
	fi
fi

# --- scratch space ------------------------------------------------------------

WORK=$(mktemp -d /tmp/berth-bench-compare-XXXXXX)
LOG=$WORK/log
mkdir -p "$LOG" "$WORK/bin"
BERTH_SRC=$BERTH # a copy: a rebuild of the tree during the run changes nothing
cp "$BERTH" "$WORK/bin/berth"
BERTH=$WORK/bin/berth
export BERTH_ROOT=$WORK/berth-root
CG_BERTH=berth-$(printf %s "$BERTH_ROOT" | sha256sum | cut -c1-8) # runtime/linux/cgroups.Parent
BTAG=$(printf %s "$BERTH_ROOT" | sha256sum | cut -c1-5)           # network/netnames.Tag: br-<tag>…, bth<tag>…
TAG=bbx-$$                                                          # the peers' cgroup parents, runc's ids
D=$WORK/docker
P=$WORK/podman
BUNDLE=$WORK/bundle # runc's bundle; its rootfs is also the floor's
ROOTFS=$BUNDLE/rootfs
RUNC_STATE=$WORK/runc
DOCKERD_PID=
OWN_DOCKERD=0
DOCKER=/usr/bin/docker # docker.io's client (another docker may be earlier in PATH)
export -n DOCKER_HOST 2>/dev/null || true
DOCKER_HOST_=${DOCKER_HOST:-}
DOCKER_PREV_IMAGE= # with DOCKER_HOST: the busybox:latest that was there
declare -A READY   # stacks set up: the ones the clean-up takes down
PEER_LINKS=()      # bridges the peers made for our projects
PEER_NETNS=()      # podman's /run/netns entries for our containers
# What the peers make outside the scratch dir whatever their options say
# (bench/compose): dockerd /run/docker/plugins, its containerd
# /run/containerd/s; rootful podman /run/containers/networks, /run/netns,
# /run/runc, /var/lib/containers/cache; cgroupfs podman /libpod_parent.
# Each one that did not exist before the run is removed; one that did stays.
HOST_PATHS=(/run/docker /run/containerd /run/containers /var/lib/containers /run/runc /run/netns /etc/docker/key.json)
declare -A PRE
for x in "${HOST_PATHS[@]}" /sys/fs/cgroup/memory/libpod_parent /sys/fs/cgroup/libpod_parent; do [[ -e $x ]] && PRE[$x]=1; done
AARDVARK0=$(pgrep -x aardvark-dns | sort || true)

our_pids() {
	local p cmd
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		[[ $cmd == *"$WORK"* && ${p#/proc/} != "$$" && ${p#/proc/} != "$BASHPID" ]] && echo "${p#/proc/}"
	done
	return 0
}
our_cgroups() { # deepest first
	local d
	for d in /sys/fs/cgroup/*/"$CG_BERTH" /sys/fs/cgroup/"$CG_BERTH" \
		/sys/fs/cgroup/*/"$TAG"-* /sys/fs/cgroup/"$TAG"-*; do
		[[ -d $d ]] && find "$d" -depth -type d
	done
	if [[ -z ${PRE[/sys/fs/cgroup/memory/libpod_parent]:-}${PRE[/sys/fs/cgroup/libpod_parent]:-} ]]; then
		for d in /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/libpod_parent; do
			[[ -d $d ]] && find "$d" -depth -type d
		done
	fi
	return 0
}
our_host_paths() { local x; for x in "${HOST_PATHS[@]}"; do [[ -e $x && -z ${PRE[$x]:-} ]] && echo "$x"; done; return 0; }
our_aardvark() { comm -13 <(printf '%s\n' "$AARDVARK0") <(pgrep -x aardvark-dns | sort || true); }
our_mounts() { awk -v w="$WORK" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo; }
our_links() {
	local l
	ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | while read -r l; do
		[[ $l == br-$BTAG* || $l == bth$BTAG* ]] && echo "$l"
	done
	for l in "${PEER_LINKS[@]}"; do ip link show "$l" >/dev/null 2>&1 && echo "$l"; done
	return 0
}
our_netns() { local n; for n in "${PEER_NETNS[@]}"; do [[ -e $n ]] && echo "$n"; done; return 0; }
leaks() {
	local x
	for x in $(our_mounts); do echo "mount $x"; done
	for x in $(our_pids); do echo "process $x: $(tr '\0' ' ' 2>/dev/null <"/proc/$x/cmdline")"; done
	for x in $(our_cgroups); do echo "cgroup $x"; done
	for x in $(our_netns); do echo "network namespace $x"; done
	for x in $(our_links); do echo "network interface $x"; done
	if command -v nft >/dev/null && nft list table inet "berth_$BTAG" >/dev/null 2>&1; then echo "nftables table inet berth_$BTAG"; fi
	for x in $(our_aardvark); do echo "process $x: $(tr '\0' ' ' 2>/dev/null <"/proc/$x/cmdline") (started during the run)"; done
	for x in $(our_host_paths); do echo "path $x (made during the run)"; done
	[[ -e $WORK ]] && echo "directory $WORK"
	return 0
}

# --- the tools ----------------------------------------------------------------

# podman's config comes from the CONTAINERS_* files (set up below); its
# containers get a cgroup parent of ours
PODMAN_CG=/$TAG-podman
docker_() { DOCKER_HOST=$DOCKER_HOST_ "$DOCKER" "$@"; }
podman_() { podman "$@"; }
# cmd STACK OP [project-dir project]: sets the array C to the command line
cmd() {
	local s=$1 op=$2 f=${3:-} p=${4:-}
	local -a cc
	case $s in
	berth) cc=("$BERTH" -f "$f/compose.yaml" -p "$p") ;;
	docker) cc=(docker-compose -f "$f/compose.yaml" -p "$p") ;;
	podman) cc=(podman-compose "--podman-run-args=--cgroup-parent=$PODMAN_CG" -f "$f/compose.yaml" -p "$p") ;;
	esac
	case $op in
	up) C=("${cc[@]}" up -d) ;;
	scale) C=("${cc[@]}" up -d --scale "worker=$SCALE") ;;
	unscale) C=("${cc[@]}" up -d --scale worker=1) ;;
	run) C=("${cc[@]}" run --rm -T worker true) ;;
	down) C=("${cc[@]}" down -t 0) ;; # busybox sleep as pid 1 ignores SIGTERM
	raw)
		case $s in
		berth) C=("$BERTH" container run --rm --network none busybox true) ;;
		docker) C=("$DOCKER" run --rm --network none busybox true) ;;
		podman) C=(podman run --rm --network none "--cgroup-parent=$PODMAN_CG" busybox true) ;;
		runc) C=(runc --root "$RUNC_STATE" run --bundle "$BUNDLE" "$TAG-runc-$N_RUNC") ;;
		floor) C=(unshare --mount --uts --ipc --pid --net --fork chroot "$ROOTFS" /bin/true) ;;
		esac
		;;
	esac
}
N_RUNC=0
logof() { case $1 in berth | docker | podman) echo "$LOG/$1.log" ;; *) echo "$LOG/raw.log" ;; esac; }
denv() { # STACK: DOCKER_HOST for docker's commands only
	if [[ $1 == docker ]]; then export DOCKER_HOST=$DOCKER_HOST_; else unset DOCKER_HOST; fi
}
do_() { # STACK OP [dir project]: untimed
	cmd "$@"
	denv "$1"
	"${C[@]}" </dev/null >>"$(logof "$1")" 2>&1
}

# measure FILE STACK OP [dir project]: one timed run; its µs appended to
# $WORK/t.FILE (FILE "-": untimed warm-up)
stamp() { _ts=${EPOCHREALTIME/[.,]/}; }
measure() {
	local f=$1 s=$2 op=$3 rc=0 us a l
	shift
	cmd "$@"
	l=$(logof "$s")
	echo "+ ${C[*]}" >>"$l"
	denv "$s"
	if [[ $TIMER == hyperfine ]]; then
		hyperfine -N --runs 1 --style none --output "$WORK/hf.out" \
			--export-json "$WORK/hf.json" "${C[*]}" </dev/null >"$WORK/hf.log" 2>&1 || rc=$?
		cat "$WORK/hf.out" "$WORK/hf.log" >>"$l" 2>/dev/null || true
		((rc == 0)) && us=$(jq '.results[0].times[0] * 1000000 | floor' "$WORK/hf.json")
	else
		stamp
		a=$_ts
		"${C[@]}" </dev/null >>"$l" 2>&1 || rc=$?
		stamp
		us=$((_ts - a))
	fi
	((rc == 0)) || die "$s $op failed (exit $rc): ${C[*]}: $(tail -5 "$l")"
	[[ $f == - ]] || echo "$us" >>"$WORK/t.$f"
}

running() { # STACK DIR PROJECT -> ids of the project's running containers, sorted
	case $1 in
	berth) "$BERTH" -f "$2/compose.yaml" -p "$3" ps -q ;;
	docker) docker_ ps -q --no-trunc --filter "label=com.docker.compose.project=$3" ;;
	podman) podman_ ps -q --no-trunc --filter "label=com.docker.compose.project=$3" ;;
	esac 2>>"$(logof "$1")" | sort
}
all_of() { # STACK PROJECT -> ids of all the project's containers (any state)
	case $1 in
	berth) "$BERTH" container ps -aq --no-trunc --filter "label=com.docker.compose.project=$2" ;;
	docker) docker_ ps -aq --no-trunc --filter "label=com.docker.compose.project=$2" ;;
	podman) podman_ ps -aq --no-trunc --filter "label=com.docker.compose.project=$2" ;;
	esac 2>>"$(logof "$1")" | sort
}
expect() { # STACK DIR PROJECT N [what]: N of the project's containers running, N in all
	local n m
	n=$(running "$1" "$2" "$3" | grep -c .) || true
	m=$(all_of "$1" "$3" | grep -c .) || true
	((n == $4 && m == $4)) || die "$1: $n containers of $3 running ($m in all) ${5:-}, not $4: $(tail -5 "$(logof "$1")")"
}

# --- clean-up -------------------------------------------------------------------

PROJECTS=() # "dir project" of every project file written
CLEANED=0
cleanup() {
	[[ $CLEANED == 1 ]] && return 0
	CLEANED=1
	set +e
	local pr s x i
	for pr in "${PROJECTS[@]}"; do
		for s in "${STACKS[@]}"; do
			[[ -n ${READY[$s]:-} ]] || continue
			[[ $s == docker && $OWN_DOCKERD == 1 && -z $DOCKERD_PID ]] && continue
			[[ -n $(all_of "$s" "${pr#* }") ]] || continue
			# shellcheck disable=SC2086
			do_ "$s" down $pr
		done
	done
	if [[ -d $BERTH_ROOT ]]; then
		x=$("$BERTH" container ps -aq --no-trunc 2>/dev/null)
		[[ -n $x ]] && "$BERTH" container rm -f $x >>"$LOG/berth.log" 2>&1
		"$BERTH" network rm bridge >/dev/null 2>&1
	fi
	if [[ -d $RUNC_STATE ]]; then
		for x in $(runc --root "$RUNC_STATE" list -q 2>/dev/null); do runc --root "$RUNC_STATE" delete -f "$x" >/dev/null 2>&1; done
	fi
	if [[ -n ${READY[docker]:-} && ( -n $DOCKERD_PID || $OWN_DOCKERD == 0 ) ]]; then
		if [[ $OWN_DOCKERD == 1 ]]; then
			x=$(docker_ ps -aq 2>/dev/null)
		else # the caller's daemon: only what this run made
			x=$(for pr in "${PROJECTS[@]}"; do docker_ ps -aq --filter "label=com.docker.compose.project=${pr#* }"; done 2>/dev/null
				for ((i = 1; i <= MEM_N; i++)); do docker_ ps -aq --filter "name=^mem$i\$"; done 2>/dev/null)
		fi
		[[ -n $x ]] && docker_ rm -f $x >>"$LOG/docker.log" 2>&1
		if [[ $OWN_DOCKERD == 0 ]]; then # put the caller's busybox:latest back
			docker_ rmi busybox:latest >>"$LOG/docker.log" 2>&1
			[[ -n $DOCKER_PREV_IMAGE ]] && docker_ tag "$DOCKER_PREV_IMAGE" busybox:latest >>"$LOG/docker.log" 2>&1
		fi
	fi
	if [[ -n $DOCKERD_PID ]]; then
		kill -TERM "$DOCKERD_PID" 2>/dev/null
		for i in $(seq 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
		kill -0 "$DOCKERD_PID" 2>/dev/null && { note "dockerd did not stop in 30 s: killed"; kill -KILL "$DOCKERD_PID"; }
		wait "$DOCKERD_PID" 2>/dev/null
		DOCKERD_PID=
	fi
	if [[ -n ${READY[podman]:-} ]]; then
		podman_ rm -af -t 0 >>"$LOG/podman.log" 2>&1
		podman_ pod rm -af >>"$LOG/podman.log" 2>&1
		x=$(podman_ network ls -q 2>/dev/null | grep -vx podman)
		[[ -n $x ]] && podman_ network rm -f $x >>"$LOG/podman.log" 2>&1
	fi
	for i in 1 2 3; do # what the tools could not stop
		x=$(our_pids)
		[[ -z $x ]] && break
		kill -KILL $x 2>/dev/null
		sleep 0.2
	done
	for x in $(our_mounts | sort -r); do umount -l "$x"; done
	for x in $(our_cgroups); do
		for i in 1 2 3 4 5 6 7 8 9 10; do rmdir "$x" 2>/dev/null && break; sleep 0.1; done
	done
	for x in "${PEER_LINKS[@]}"; do
		ip link show "$x" >/dev/null 2>&1 && { note "removing $x left by a peer"; ip link del "$x"; }
	done
	for x in $(our_netns); do note "removing $x left by podman"; umount "$x" 2>/dev/null; rm -f "$x"; done
	for i in 1 2 3 4 5 6 7 8 9 10; do # aardvark-dns leaves when its last network goes
		x=$(our_aardvark)
		[[ -z $x ]] && break
		((i < 10)) && sleep 0.2 || kill -KILL $x 2>/dev/null
	done
	for x in $(our_host_paths); do
		case $x in
		/run/netns) [[ -z $(ls -A /run/netns) ]] && { mountpoint -q /run/netns && umount /run/netns; rmdir /run/netns; } ;;
		/run/runc) rmdir /run/runc 2>/dev/null ;; # only if no container state is left
		*) rm -rf "$x" ;;
		esac
	done
	if [[ -n ${KEEP_LOGS:-} ]]; then cp -r "$LOG" "$KEEP_LOGS"; fi
	rm -rf "$WORK"
	set -e
}
REPORTED=0
on_exit() {
	local rc=$? left
	cleanup
	if [[ $REPORTED == 0 ]]; then
		left=$(leaks)
		[[ -z $left ]] || note "left behind: $left"
	fi
	exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- set-up -----------------------------------------------------------------------

# the 3-service project (as bench/compose's)
mkdir -p "$WORK/p3"
cat >"$WORK/p3/compose.yaml" <<'EOF'
services:
  web:
    image: busybox:latest
    command: ["httpd", "-f", "-p", "8080"]
    ports:
      - "127.0.0.1::8080"
    networks: [back]
  cache:
    image: busybox:latest
    command: ["sleep", "100000"]
    networks: [back]
  worker:
    image: busybox:latest
    command: ["sleep", "100000"]
    networks: [back]
networks:
  back: {}
EOF
PROJECTS+=("$WORK/p3 bench3")
if [[ -n $MANY ]]; then # MANY sleeps on one project network
	mkdir -p "$WORK/many"
	{
		echo "services:"
		for ((i = 1; i <= MANY; i++)); do
			printf '  s%03d:\n    image: busybox:latest\n    command: ["sleep", "100000"]\n    networks: [back]\n' "$i"
		done
		printf 'networks:\n  back: {}\n'
	} >"$WORK/many/compose.yaml"
	PROJECTS+=("$WORK/many many$MANY")
fi

note "scratch $WORK; $("$BERTH" version 2>/dev/null | head -1); stacks: ${STACKS[*]}; one-container rows: ${RAW[*]}; timer: $TIMER"
"$BERTH" image import "$IMAGE_TAR" busybox:latest --change 'CMD ["sh"]' >>"$LOG/berth.log" 2>&1 ||
	die "berth image import failed: $(tail -3 "$LOG/berth.log")"
READY[berth]=1

# the same rootfs as an OCI bundle for runc, and the floor's chroot
mkdir -p "$ROOTFS"
tar -xf "$IMAGE_TAR" -C "$ROOTFS"
[[ -x $ROOTFS/bin/true ]] || die "the image tarball has no /bin/true"
if raw_has runc; then
	mkdir -p "$RUNC_STATE"
	(cd "$BUNDLE" && runc spec)
	jq '.process.args = ["true"] | .process.terminal = false' "$BUNDLE/config.json" >"$BUNDLE/config.json.new"
	mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"
fi

if has docker; then
	if [[ -n $DOCKER_HOST_ ]]; then
		NOTES+=("docker: on the caller's dockerd at DOCKER_HOST=$DOCKER_HOST_ (not started by the script; its busybox:latest is put back at the end)")
		DOCKER_PREV_IMAGE=$(docker_ image inspect -f '{{.Id}}' busybox:latest 2>/dev/null || true)
	else
		# A private dockerd (bench/compose's): its own data/exec roots,
		# unix socket (it binds nothing else), pidfile and cgroup parent; no
		# default bridge, no iptables rules, no sysctls, so nothing of it
		# outlives it. Compose's project networks still get their bridge,
		# their DNS (the embedded resolver works without iptables rules)
		# and published ports (docker-proxy, userland, on 127.0.0.1).
		mkdir -p "$D/data" "$D/exec"
		echo "{\"deprecated-key-path\": \"$D/key.json\"}" >"$D/daemon.json" # not /etc/docker/key.json
		DOCKER_HOST_=unix://$D/docker.sock
		dockerd --config-file "$D/daemon.json" --data-root "$D/data" --exec-root "$D/exec" \
			-H "$DOCKER_HOST_" --pidfile "$D/docker.pid" --cgroup-parent "/$TAG-docker" \
			--bridge=none --iptables=false --ip-forward=false --ip-masq=false \
			--storage-driver overlay2 </dev/null >"$LOG/dockerd.log" 2>&1 &
		DOCKERD_PID=$!
		OWN_DOCKERD=1
		for i in $(seq 300); do
			docker_ info >/dev/null 2>&1 && break
			kill -0 "$DOCKERD_PID" 2>/dev/null || { DOCKERD_PID=; die "dockerd exited: $(tail -5 "$LOG/dockerd.log")"; }
			sleep 0.2
		done
		docker_ info >/dev/null 2>&1 || die "dockerd did not answer in 60 s: $(tail -5 "$LOG/dockerd.log")"
	fi
	docker_ import --change 'CMD ["sh"]' "$IMAGE_TAR" busybox:latest >>"$LOG/docker.log" 2>&1 ||
		die "docker import failed: $(tail -3 "$LOG/docker.log")"
	READY[docker]=1
fi

if has podman; then
	# daemonless: storage, run dir, network configs, tmp dir, events under
	# $P through the CONTAINERS_* files (podman-compose's podman calls
	# inherit them). Two machine quirks handled here:
	# - runtime runc: Debian's crun refuses the hybrid cgroup v1 layout;
	# - default_ulimits = []: Debian's podman 4.3 otherwise asks runc for
	#   nofile 1048576 and an nproc above its own, over the hard limits
	#   here (nofile 20000), and runc's setrlimit fails with EPERM ("error
	#   setting rlimit type 7"); empty, the containers inherit podman's.
	mkdir -p "$P/root" "$P/runroot" "$P/networks" "$P/tmp"
	cat >"$P/storage.conf" <<-EOF
		[storage]
		driver = "overlay"
		graphroot = "$P/root"
		runroot = "$P/runroot"
	EOF
	cat >"$P/containers.conf" <<-EOF
		[containers]
		cgroups = "enabled"
		default_ulimits = []
		[engine]
		runtime = "runc"
		cgroup_manager = "cgroupfs"
		events_logger = "file"
		events_logfile_path = "$P/events.log"
		tmp_dir = "$P/tmp"
		static_dir = "$P/root/libpod"
		volume_path = "$P/root/volumes"
		[network]
		network_config_dir = "$P/networks"
	EOF
	cat >"$P/registries.conf" <<-EOF
		unqualified-search-registries = []
		short-name-mode = "permissive"
	EOF
	export CONTAINERS_STORAGE_CONF=$P/storage.conf CONTAINERS_CONF=$P/containers.conf \
		CONTAINERS_REGISTRIES_CONF=$P/registries.conf
	podman_ import --change 'CMD ["sh"]' "$IMAGE_TAR" busybox:latest >>"$LOG/podman.log" 2>&1 ||
		die "podman import failed: $(tail -3 "$LOG/podman.log")"
	podman_ tag localhost/busybox:latest docker.io/library/busybox:latest >>"$LOG/podman.log" 2>&1 || true
	READY[podman]=1
fi

# --- timing ---------------------------------------------------------------------------

psi_total() { awk '/^some/ { for (i = 1; i <= NF; i++) if ($i ~ /^total=/) print substr($i, 7) }' /proc/pressure/cpu 2>/dev/null || true; }
psi_start() { PSI0=$(psi_total); stamp; T0=$_ts; }
psi() { # CPU pressure since psi_start, over the wall time
	local now
	now=$(psi_total)
	stamp
	[[ -n $PSI0 && -n $now ]] && awk -v a="$PSI0" -v b="$now" -v t=$((_ts - T0)) 'BEGIN { printf "%.0f%%", 100 * (b - a) / t }' || echo n/a
}
record_net() { # STACK DIR PROJECT: the bridge (and podman's netns) a peer made for a project
	local x
	case $1 in
	docker) x=$(docker_ network inspect -f '{{.Id}}' "$3_back" 2>/dev/null) && PEER_LINKS+=("br-${x:0:12}") ;;
	podman)
		x=$(podman_ network inspect -f '{{.NetworkInterface}}' "$3_back" 2>/dev/null) && [[ -n $x ]] && PEER_LINKS+=("$x")
		for x in $(running podman "$2" "$3" | xargs -r podman inspect -f '{{.NetworkSettings.SandboxKey}}' 2>/dev/null); do
			PEER_NETNS+=("$x")
		done
		;;
	esac
	return 0
}

# 1. the 3-service project. Per tool, in a round: cold up, NOOP_EACH no-op
# ups (ids checked unchanged), up --scale worker=SCALE, (untimed: back to
# 1 worker), run --rm, down; the count of containers checked after each.
# podman-compose 1.0.3 parses --scale and ignores it: its scale row is n/a.
stack_round() { # STACK timed(1|0)
	local s=$1 t=$2 ids ids2 i
	local dir=$WORK/p3 pr=bench3
	f() { [[ $t == 1 ]] && echo "$1.$s" || echo -; }
	measure "$(f cold)" "$s" up "$dir" "$pr"
	expect "$s" "$dir" "$pr" 3 "after the cold up -d"
	record_net "$s" "$dir" "$pr"
	ids=$(running "$s" "$dir" "$pr")
	for ((i = 0; i < NOOP_EACH; i++)); do measure "$(f noop)" "$s" up "$dir" "$pr"; done
	ids2=$(running "$s" "$dir" "$pr")
	[[ $ids == "$ids2" ]] || die "$s: a no-op up -d changed the containers: before $ids, after $ids2"
	if [[ $s != podman ]]; then
		measure "$(f scale)" "$s" scale "$dir" "$pr"
		expect "$s" "$dir" "$pr" $((SCALE + 2)) "after up -d --scale worker=$SCALE"
		do_ "$s" unscale "$dir" "$pr" || die "$s: up -d --scale worker=1 failed: $(tail -5 "$(logof "$s")")"
		expect "$s" "$dir" "$pr" 3 "after up -d --scale worker=1"
	fi
	measure "$(f run)" "$s" run "$dir" "$pr"
	expect "$s" "$dir" "$pr" 3 "after run --rm"
	measure "$(f down)" "$s" down "$dir" "$pr"
	expect "$s" "$dir" "$pr" 0 "after down"
}
for s in "${STACKS[@]}"; do # start from nothing
	do_ "$s" down "$WORK/p3" bench3 || die "$s down failed: $(tail -5 "$(logof "$s")")"
done
note "3-service project: $WARMUP warm-up + $ROUNDS timed rounds of ${STACKS[*]}"
for ((r = 0; r < WARMUP; r++)); do
	for ((j = 0; j < ${#STACKS[@]}; j++)); do stack_round "${STACKS[(r + j) % ${#STACKS[@]}]}" 0; done
done
psi_start
for ((r = 0; r < ROUNDS; r++)); do
	for ((j = 0; j < ${#STACKS[@]}; j++)); do stack_round "${STACKS[(r + j) % ${#STACKS[@]}]}" 1; done
done
PSI_P3=$(psi)

# like for like, after the rounds: every tool's project publishes web's
# port on 127.0.0.1 (it connects) and worker resolves cache
declare -A CHECK
for s in "${STACKS[@]}"; do
	do_ "$s" up "$WORK/p3" bench3 || die "$s up failed: $(tail -5 "$(logof "$s")")"
	case $s in
	berth) port=$("$BERTH" -f "$WORK/p3/compose.yaml" -p bench3 port web 8080 2>>"$LOG/$s.log") ;;
	docker) port=$(DOCKER_HOST=$DOCKER_HOST_ docker-compose -f "$WORK/p3/compose.yaml" -p bench3 port web 8080 2>>"$LOG/$s.log") ;;
	podman) port=$(podman_ port bench3_web_1 8080 2>>"$LOG/$s.log") ;;
	esac || true
	port=$(echo ${port:-?})
	CHECK[$s]="port $port"
	if [[ $port == 127.0.0.1:* ]] && (exec 3<>"/dev/tcp/${port%:*}/${port##*:}") 2>/dev/null; then CHECK[$s]+=" connects"
	else CHECK[$s]+=" does NOT connect"; NOTES+=("$s: web's published port is '$port' and does not answer on 127.0.0.1"); fi
	case $s in
	berth) "$BERTH" -f "$WORK/p3/compose.yaml" -p bench3 exec -T worker nslookup cache ;;
	docker) docker_ exec bench3_worker_1 nslookup cache ;;
	podman) podman_ exec bench3_worker_1 nslookup cache ;;
	esac </dev/null >>"$LOG/$s.log" 2>&1 && CHECK[$s]+=", worker resolves cache" ||
		{ CHECK[$s]+=", worker does NOT resolve cache"; NOTES+=("$s: \`nslookup cache\` in worker failed"); }
	do_ "$s" down "$WORK/p3" bench3 || die "$s down failed: $(tail -5 "$(logof "$s")")"
done

# 2. the MANY-service project: up -d, then down, per tool in a round
PSI_MANY=n/a
if [[ -n $MANY ]]; then
	note "$MANY-service project: $MANY_ROUNDS timed rounds of ${STACKS[*]} (up -d, down)"
	psi_start
	for ((r = 0; r < MANY_ROUNDS; r++)); do
		for ((j = 0; j < ${#STACKS[@]}; j++)); do
			s=${STACKS[(r + j) % ${#STACKS[@]}]}
			measure "many_up.$s" "$s" up "$WORK/many" "many$MANY"
			expect "$s" "$WORK/many" "many$MANY" "$MANY" "after up -d"
			record_net "$s" "$WORK/many" "many$MANY"
			measure "many_down.$s" "$s" down "$WORK/many" "many$MANY"
			expect "$s" "$WORK/many" "many$MANY" 0 "after down"
		done
	done
	PSI_MANY=$(psi)
fi

# 3. one container, start to removal: RAW_RUNS interleaved rounds
raw_one() { # TOOL FILE
	[[ $1 == runc ]] && N_RUNC=$((N_RUNC + 1))
	measure "$2" "$1" raw
	if [[ $1 == runc ]]; then runc --root "$RUNC_STATE" delete -f "$TAG-runc-$N_RUNC" >/dev/null 2>&1 || true; fi
}
note "one container: $RAW_WARMUP warm-up + $RAW_RUNS timed rounds of ${RAW[*]}"
for ((r = 0; r < RAW_WARMUP; r++)); do for t in "${RAW[@]}"; do raw_one "$t" -; done; done
psi_start
for ((r = 0; r < RAW_RUNS; r++)); do
	for ((j = 0; j < ${#RAW[@]}; j++)); do t=${RAW[(r + j) % ${#RAW[@]}]}; raw_one "$t" "raw.$t"; done
done
PSI_RAW=$(psi)
for s in "${STACKS[@]}"; do # --rm left nothing
	case $s in
	berth) n=$("$BERTH" container ps -aq | grep -c .) ;;
	docker) n=$(docker_ ps -aq | grep -c .) ;;
	podman) n=$(podman_ ps -aq | grep -c .) ;;
	esac || true
	((n == 0)) || die "$s: $n containers left after the run --rm rounds"
done

# 4. memory: MEM_N detached sleeps per stack, each stack's supervisors read
# 1 s after the last start (VmRSS, VmHWM from status; Pss, Pss_Anon from
# smaps_rollup), then removed
mem() { # pid -> "VmRSS VmHWM Pss Pss_Anon Pss_Shmem Threads" in kB
	local s r
	s=$(awk '/^(VmRSS|VmHWM|Threads):/ { v[$1] = $2 } END { print v["VmRSS:"], v["VmHWM:"], v["Threads:"] }' "/proc/$1/status")
	r=$(awk '/^(Pss|Pss_Anon|Pss_Shmem):/ { v[$1] = $2 } END { print v["Pss:"] + 0, v["Pss_Anon:"] + 0, v["Pss_Shmem:"] + 0 }' "/proc/$1/smaps_rollup")
	set -- $s
	echo "$1 $2 $r $3"
}
supervisors() { # STACK -> the pids of its containers' supervisors
	local p c
	case $1 in
	berth) for p in $(our_pids); do tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "^[^ ]*berth _shim --root $BERTH_ROOT " && echo "$p"; done ;;
	docker) # the shim is the parent of the container's first process
		for c in $(docker_ ps -q); do
			p=$(docker_ inspect -f '{{.State.Pid}}' "$c") && awk '{ print $4 }' "/proc/$p/stat"
		done ;;
	podman) for c in $(podman_ ps -q); do podman_ inspect -f '{{.State.ConmonPid}}' "$c"; done ;;
	esac 2>/dev/null
	return 0
}
declare -A MEMROW MEMRSS MEMPSS SUPNAME
for s in "${STACKS[@]}"; do
	note "memory: $MEM_N containers of $s"
	for ((i = 1; i <= MEM_N; i++)); do
		case $s in
		berth) "$BERTH" container run -d --network none --name "mem$i" busybox sleep 100000 ;;
		docker) docker_ run -d --network none --name "mem$i" busybox sleep 100000 ;;
		podman) podman_ run -d --network none "--cgroup-parent=$PODMAN_CG" --name "mem$i" busybox sleep 100000 ;;
		esac </dev/null >>"$LOG/$s.log" 2>&1 || die "$s: run -d mem$i failed: $(tail -5 "$LOG/$s.log")"
	done
	sleep 1
	pids=$(supervisors "$s" | sort -u)
	n=$(grep -c . <<<"$pids") || true
	((n == MEM_N)) || die "$s: $n supervisor processes for $MEM_N containers: $pids"
	SUPNAME[$s]=$(for p in $pids; do basename "$(tr '\0' '\n' <"/proc/$p/cmdline" | head -1)"; done | sort -u | tr '\n' ' ' | sed 's/ $//')
	[[ $s == berth ]] && SUPNAME[$s]+=" _shim"
	MEMROW[$s]=$(for p in $pids; do mem "$p"; done | awk -v n="$MEM_N" '
		{ rss += $1; hwm += $2; pss += $3; an += $4; sh += $5; th += $6 }
		END { printf "%.1f %.1f %.1f %.1f %.1f %.1f %.1f", rss / n / 1024, hwm / n / 1024, pss / n / 1024, an / n / 1024, sh / n / 1024, th / n, pss / 1024 }')
	read -r MEMRSS[$s] _ MEMPSS[$s] _ <<<"${MEMROW[$s]}"
	if [[ $s == docker && $OWN_DOCKERD == 1 ]]; then # the daemons behind them, for scale
		dd=$(mem "$DOCKERD_PID" | awk '{ printf "%.1f", $1 / 1024 }')
		cd_pid=$(pgrep -f "^containerd --config $D/exec/" | head -1 || true)
		cdr=$([[ -n $cd_pid ]] && mem "$cd_pid" | awk '{ printf "%.1f", $1 / 1024 }' || echo "?")
		DAEMONS="dockerd $dd MiB + containerd $cdr MiB VmRSS"
	fi
	case $s in
	berth) x=$("$BERTH" container ps -aq --no-trunc) && "$BERTH" container rm -f $x ;;
	docker) x=$(docker_ ps -aq) && docker_ rm -f $x ;;
	podman) podman_ rm -af -t 0 ;;
	esac </dev/null >>"$LOG/$s.log" 2>&1 || die "$s: removing the memory containers failed"
done

# --- figures ---------------------------------------------------------------------------

stats() { # name -> "n median p90 min max" in ms (p90: nearest rank)
	[[ -s $WORK/t.$1 ]] || { echo "0 - - - -"; return; }
	sort -n "$WORK/t.$1" | awk '{ v[NR] = $1 / 1000 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		r = int(0.9 * NR); if (r < 0.9 * NR) r++; if (r < 1) r = 1
		printf "%d %.1f %.1f %.1f %.1f\n", NR, m, v[r], v[1], v[NR] }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { if (v == "n/a") { print "not measured"; exit }
	ok = (op == "<=") ? v <= t : (op == "<") ? v < t : v >= t; print ok ? "met" : "NOT met" }'; }
declare -A N MED P90 MIN MAX
for f in "$WORK"/t.*; do
	f=${f#"$WORK"/t.}
	read -r N[$f] MED[$f] P90[$f] MIN[$f] MAX[$f] < <(stats "$f")
done
med() { echo "${MED[$1]:--}"; }

version_of() {
	case $1 in
	berth) "$BERTH" version 2>/dev/null | head -1 ;;
	docker) echo "docker-compose $(docker-compose version --short 2>/dev/null), docker $(docker_ version -f '{{.Client.Version}}' 2>/dev/null) on dockerd $(docker_ version -f '{{.Server.Version}}' 2>/dev/null) (storage $(docker_ info -f '{{.Driver}}' 2>/dev/null), runtime $(docker_ info -f '{{.DefaultRuntime}}' 2>/dev/null), $(containerd --version 2>/dev/null | awk '{ print $1, $3 }'))" ;;
	podman) echo "podman-compose $(podman-compose version 2>/dev/null | awk '/podman-compose/ { print $NF; exit }'), podman $(podman_ version -f '{{.Client.Version}}' 2>/dev/null) (runtime $(podman_ info -f '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Version}}' 2>/dev/null | head -1), conmon $(conmon --version 2>/dev/null | awk 'NR == 1 { print $3 }'), network $(podman_ info -f '{{.Host.NetworkBackend}}' 2>/dev/null), storage $(podman_ info -f '{{.Store.GraphDriverName}}' 2>/dev/null))" ;;
	runc) runc --version 2>/dev/null | head -1 ;;
	esac
}
declare -A VERSION
for t in "${STACKS[@]}" runc; do raw_has "$t" && VERSION[$t]=$(version_of "$t" | tr '\n' ' ' | sed 's/ *$//'); done
PC_SLEEP=
if has podman; then # podman-compose's built-in pause after each podman run of an up
	PC_PY=$(head -1 "$(command -v podman-compose)" | sed -n 's/^#! *//p' | awk '{ print $1 }')
	PC_SLEEP=$("${PC_PY:-python3}" -c 'import inspect, podman_compose as p; print(inspect.signature(p.Podman.run).parameters["sleep"].default)' 2>/dev/null || true)
fi
cgroup_kind() {
	case $(stat -fc %T /sys/fs/cgroup 2>/dev/null) in
	cgroup2fs) echo "v2" ;;
	tmpfs) [[ -d /sys/fs/cgroup/unified ]] && echo "v1 (hybrid: controllers on v1, a cgroup2 mount at /sys/fs/cgroup/unified)" || echo "v1" ;;
	*) echo "?" ;;
	esac
}
HOST="$(uname -sr), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), cgroup $(cgroup_kind), hard nofile limit $(ulimit -Hn)"

# cell NAME: "median" or "median (×ratio to berth)"
cell() { # op stack
	local m
	m=$(med "$1.$2")
	[[ $m == - ]] && { echo "n/a"; return; }
	[[ $2 == berth ]] && { echo "$m"; return; }
	echo "$m ($(ratio "$m" "$(med "$1.berth")")×)"
}
report() {
	local s op t row
	echo "# berth side by side with docker, podman and runc, $DATE"
	echo
	echo "Produced by \`sudo bench/compare.sh\` (BENCH_ROUNDS=$ROUNDS, BENCH_WARMUP=$WARMUP, BENCH_NOOP_EACH=$NOOP_EACH, BENCH_SCALE=$SCALE, BENCH_MANY=${MANY:-off}, BENCH_MANY_ROUNDS=$MANY_ROUNDS, BENCH_RAW_RUNS=$RAW_RUNS, BENCH_RAW_WARMUP=$RAW_WARMUP, BENCH_MEM_CONTAINERS=$MEM_N; stopwatch: $([[ $TIMER == hyperfine ]] && echo "$(hyperfine --version) (\`-N --runs 1\`, one command a call)" || echo "bash EPOCHREALTIME"); rounds interleaved, order rotated each round)."
	echo "Ratios are what to quote; absolute times depend on the machine (bench/README.md)."
	echo
	echo "- repo at $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
	echo "- berth: ${VERSION[berth]} ($BERTH_SRC, copied at the start)"
	for t in docker podman runc; do [[ -n ${VERSION[$t]:-} ]] && echo "- $t: ${VERSION[$t]}"; done
	echo "- host: $HOST"
	echo "- CPU pressure (PSI \"some\", the benchmark's own processes included): $PSI_P3 during the 3-service rounds, $PSI_MANY during the $MANY-service rounds, $PSI_RAW during the one-container rounds"
	echo
	echo "## Summary (median ms; in brackets: this / berth)"
	echo
	local hdr="| operation | berth |" sep="|---|---:|"
	has docker && { hdr+=" docker |"; sep+="---:|"; }
	has podman && { hdr+=" podman |"; sep+="---:|"; }
	raw_has runc && { hdr+=" runc |"; sep+="---:|"; }
	hdr+=" floor |"
	sep+="---:|"
	echo "$hdr"
	echo "$sep"
	local -a OPS=("cold:cold \`up -d\`, 3 services" "noop:no-op \`up -d\`, 3 services" "scale:\`up -d --scale worker=$SCALE\` (3 → $((SCALE + 2)) containers)" "run:\`run --rm -T worker true\`" "down:\`down -t 0\`, 3 services")
	[[ -n $MANY ]] && OPS+=("many_up:\`up -d\`, $MANY services" "many_down:\`down -t 0\`, $MANY services")
	for x in "${OPS[@]}"; do
		op=${x%%:*}
		row="| ${x#*:} | $(cell "$op" berth) |"
		for s in docker podman; do has "$s" && row+=" $(cell "$op" "$s") |"; done
		raw_has runc && row+=" |"
		row+=" |"
		echo "$row"
	done
	row="| one container: \`run --rm --network none busybox true\` | $(cell raw berth) |"
	for s in docker podman runc; do raw_has "$s" && row+=" $(cell raw "$s") |"; done
	row+=" $(cell raw floor) |"
	echo "$row"
	echo
	echo "One container, this / floor (medians): $(for t in "${RAW[@]}"; do [[ $t == floor ]] || printf '%s %s, ' "$t" "$(ratio "$(med "raw.$t")" "$(med raw.floor)")"; done | sed 's/, $//')."
	echo
	echo "docker is docker-compose for the compose rows and \`docker run\` for the last one; podman likewise (podman-compose, \`podman run\`); runc is \`runc run\` of the same rootfs as an OCI bundle, floor \`unshare --mount --uts --ipc --pid --net --fork chroot ROOTFS /bin/true\`."
	if has podman; then
		local less
		less=$(awk -v m="$(med cold.podman)" -v z="${PC_SLEEP:-1}" 'BEGIN { if (m == "-") print "-"; else printf "%.1f", m - 3 * z * 1000 }')
		echo "podman-compose $(version_of podman | awk '{ print $2 }' | tr -d ,) parses \`--scale\` and ignores it (it brings up one worker), so its scale row is n/a."
		echo "It sleeps ${PC_SLEEP:-1} s after each \`podman run\` of an up (\`Podman.run(..., sleep=${PC_SLEEP:-1})\`), so also in a no-op up (where each \`podman run\` fails on the existing name and a \`podman start\` follows): that is what its user waits; less the 3 sleeps its cold-up median would be $less ms, $(ratio "$less" "$(med cold.berth)")× berth's."
		echo "Its \`run\` first does an \`up -d\` of the whole project, sleeps included (worker has no dependencies, and it takes the empty list for all services); its \`down\` leaves the project network, so its cold up reuses it."
	fi
	echo
	echo "## Targets (issue 13; reported, not asserted)"
	echo
	echo "| target | figure | |"
	echo "|---|---:|---|"
	local r
	if has docker; then r=$(ratio "$(med cold.docker)" "$(med cold.berth)"); echo "| cold \`up -d\` of 3 services ≥ 5× faster than docker-compose | $r× | $(verdict "$r" ">=" 5) |"; fi
	if has podman; then r=$(ratio "$(med cold.podman)" "$(med cold.berth)"); echo "| cold \`up -d\` of 3 services ≥ 3× faster than podman-compose | $r× | $(verdict "$r" ">=" 3) |"; fi
	if raw_has runc; then r=$(ratio "$(med raw.berth)" "$(med raw.runc)"); echo "| \`run --rm true\` ≤ 1.5× \`runc run\` | $r× | $(verdict "$r" "<=" 1.5) |"; fi
	if has podman; then r=$(ratio "${MEMRSS[berth]}" "${MEMRSS[podman]}"); echo "| berth's shim VmRSS ≤ 4× conmon's | $r× | $(verdict "$r" "<=" 4) |"; fi
	if has docker; then r=$(ratio "${MEMRSS[berth]}" "${MEMRSS[docker]}"); echo "| berth's shim VmRSS below containerd-shim's | $r× | $(verdict "$r" "<" 1) |"; fi
	local pc pd
	pc=$(ratio "${MEMPSS[berth]:--}" "${MEMPSS[podman]:--}")
	pd=$(ratio "${MEMPSS[berth]:--}" "${MEMPSS[docker]:--}")
	if has podman && has docker; then
		echo
		echo "The memory targets are on VmRSS, which counts shared pages in full for each process. On Pss, which splits them, berth's shim is $pc× conmon's and $pd× containerd-shim's (table below)."
	fi
	echo
	echo "## All timings (ms)"
	echo
	echo "| operation | tool | runs | median | p90 | min | max | this / berth | this / floor |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	for x in "${OPS[@]}" "raw:one container, start to removal"; do
		op=${x%%:*}
		for t in "${RAW[@]}"; do
			[[ -n ${MED[$op.$t]:-} ]] || continue
			local fl="—"
			[[ $op == raw ]] && fl=$(ratio "$(med "$op.$t")" "$(med raw.floor)")
			echo "| ${x#*:} | $t | ${N[$op.$t]} | ${MED[$op.$t]} | ${P90[$op.$t]} | ${MIN[$op.$t]} | ${MAX[$op.$t]} | $(ratio "$(med "$op.$t")" "$(med "$op.berth")") | $fl |"
		done
	done
	echo
	echo "Each 3-service round, per tool in rotated order: cold \`up -d\` (3 running checked), $NOOP_EACH no-op \`up -d\` (container ids checked unchanged), \`up -d --scale worker=$SCALE\` ($((SCALE + 2)) checked), an untimed \`up -d --scale worker=1\`, \`run --rm -T worker true\` (3 left checked), \`down -t 0\` (none left checked)."
	[[ -n $MANY ]] && echo "Each $MANY-service round, per tool: \`up -d\` ($MANY running checked), \`down -t 0\` (none left)."
	echo "Checked once after the rounds: $(for s in "${STACKS[@]}"; do printf '%s: %s; ' "$s" "${CHECK[$s]}"; done | sed 's/; $//')."
	echo
	echo "## Per-container supervisor memory ($MEM_N \`sleep\` containers up, MiB, mean per supervisor)"
	echo
	echo "| stack | supervisor | VmRSS | VmHWM | Pss | Pss_Anon | Pss_Shmem | threads | Pss of all $MEM_N |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	for s in "${STACKS[@]}"; do
		read -r a b c d e f g <<<"${MEMROW[$s]}"
		echo "| $s | \`${SUPNAME[$s]}\` | $a | $b | $c | $d | $e | $f | $g |"
	done
	echo
	echo "Supervisors: berth's \`_shim\` processes of the root; for docker the parent of each container's first process (\`docker inspect .State.Pid\`); for podman \`.State.ConmonPid\`. Pss (smaps_rollup) splits shared pages among the processes that map them: berth's shims run from one sealed memfd copy of the binary (shmem, shared by the shims of one binary), containerd-shim-runc-v2 and conmon from their files on disk."
	[[ -n ${DAEMONS:-} ]] && echo "docker also keeps its daemons running: $DAEMONS (not per container; berth and podman have none)."
	echo
	echo "## How each tool was run"
	echo
	echo "- same image everywhere: \`$(basename "$IMAGE_TAR")\` imported as busybox:latest (\`berth image import\`, \`docker import\`, \`podman import\`, CMD [\"sh\"]); runc and the floor use it extracted"
	echo "- berth: \`BERTH_ROOT\` in the scratch dir, \`-f DIR/compose.yaml -p PROJECT\`"
	if has docker; then
		if [[ $OWN_DOCKERD == 1 ]]; then echo "- docker: a dockerd started by the script and stopped at the end: \`--data-root\`, \`--exec-root\`, \`-H unix://\` socket, pidfile and \`--cgroup-parent\` of its own, \`--bridge=none --iptables=false --ip-forward=false --ip-masq=false --storage-driver overlay2\` (no docker0, no firewall rules, no sysctls; project networks still get a bridge, DNS and 127.0.0.1 ports through docker-proxy); \`$DOCKER\` is docker.io's client"
		else echo "- docker: the caller's dockerd at DOCKER_HOST=$DOCKER_HOST_"; fi
	fi
	has podman && echo "- podman: graphroot, runroot, tmp_dir, static_dir, volume_path, network_config_dir under the scratch dir (CONTAINERS_STORAGE_CONF, CONTAINERS_CONF), no registries, events to a file; \`runtime = \"runc\"\` (Debian's crun refuses this machine's hybrid cgroups), \`cgroup_manager = \"cgroupfs\"\` (no systemd), \`default_ulimits = []\` (podman 4.3 otherwise asks runc for nofile 1048576, above the hard limit, and runc fails with EPERM), \`--cgroup-parent\` of its own"
	raw_has runc && echo "- runc: \`runc --root STATE run --bundle B <fresh id>\`, the bundle from \`runc spec\` with args [\"true\"], terminal false; \`runc delete -f\` after each (untimed)"
	if ((${#NOTES[@]})); then
		echo
		echo "Notes:"
		echo
		printf -- '- %s\n' "${NOTES[@]}"
	fi
}
REPORT=$(report)

# --- clean up and check -------------------------------------------------------------

cleanup
LEFT=$(leaks)
REPORTED=1
[[ -n $LOCK ]] && flock -u 9
if [[ -n $LEFT ]]; then
	REPORT+=$'\n\n'"**Left behind after clean-up** (bench/compare.sh bug):"$'\n\n'"$(sed 's/^/- /' <<<"$LEFT")"
fi
mkdir -p "$(dirname "$OUT")"
printf '%s\n' "$REPORT" >"$OUT"
printf '%s\n' "$REPORT"
note "wrote $OUT"
[[ -z $LEFT ]] || die "left behind: $LEFT"
