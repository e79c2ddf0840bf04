package rootfs_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/runtime/linux/rootfs"
)

// fields parses the "key|v1|v2…" lines a container script prints.
func fields(out string) map[string][]string {
	m := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, "|")
		if len(f) > 1 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// maskedOnHost is SECURITY.md §2's masked list (rootfs.DefaultMasked and
// the thermal_throttle dirs), kept to what exists on this host.
func maskedOnHost() []string {
	all := append([]string(nil), rootfs.DefaultMasked...)
	m, _ := filepath.Glob("/sys/devices/system/cpu/cpu*/thermal_throttle")
	all = append(all, m...)
	for _, p := range []string{"/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/acpi", "/proc/scsi", "/sys/firmware"} {
		found := false
		for _, q := range all {
			found = found || q == p
		}
		if !found {
			all = append(all, p)
		}
	}
	var out []string
	for _, p := range all {
		if exists(p) {
			out = append(out, p)
		}
	}
	return out
}

// TestMaskedPaths asserts that each masked path of SECURITY.md §2 that
// exists on the host (among them /proc/keys, /proc/timer_list,
// /proc/sched_debug, /proc/acpi, /proc/scsi, /sys/firmware, /proc/kcore)
// reads empty inside a container, that writing into a masked directory
// fails with EROFS, that a write to a masked file cannot reach the file
// (it fails, or lands in the 1:3 null device bound over it and the path
// still reads empty), and that `umount` of each fails with EPERM.
func TestMaskedPaths(t *testing.T) {
	r := testutil.NewRoot(t)
	paths := maskedOnHost()
	if len(paths) == 0 {
		t.Fatal("none of the masked paths exists on this host: nothing would be tested")
	}
	t.Logf("masked paths present on the host: %v", paths)
	script := `for p in "$@"; do
  if [ -d "$p" ]; then
    n=$(ls -A "$p" | wc -l); w=$( { touch "$p/x"; } 2>&1 ); wrc=$?; kind=dir; dev=-
  elif [ -e "$p" ]; then
    n=$(wc -c < "$p"); w=$( { echo x > "$p"; } 2>&1 ); wrc=$?; kind=file; dev=$(stat -c '%F %t:%T' "$p")
    n="$n+$(wc -c < "$p")"
  else
    echo "$p|absent"; continue
  fi
  u=$(umount "$p" 2>&1); urc=$?
  echo "$p|$kind|$n|$wrc|$w|$urc|$u|$dev"
done`
	args := append([]string{"container", "run", "--rm", "busybox", "sh", "-c", script, "sh"}, paths...)
	got := fields(r.Must(args...))
	for _, p := range paths {
		f := got[p]
		if len(f) < 7 {
			t.Errorf("%s: inside the container %q (masked paths must exist, masked)", p, f)
			continue
		}
		kind, n, wrc, werr, urc, uerr, dev := f[0], f[1], f[2], f[3], f[4], f[5], f[6]
		switch kind {
		case "dir":
			if n != "0" {
				t.Errorf("%s: the masked directory lists %s entries, want none", p, n)
			}
			if wrc == "0" || !strings.Contains(werr, "Read-only file system") {
				t.Errorf("%s: writing into it: exit %s %q, want EROFS", p, wrc, werr)
			}
		case "file":
			if n != "0+0" {
				t.Errorf("%s: reads %s bytes (before+after a write), want 0", p, n)
			}
			if wrc != "0" && !strings.Contains(werr, "Read-only file system") && !strings.Contains(werr, "Operation not permitted") {
				t.Errorf("%s: writing it: exit %s %q, want success into /dev/null, EROFS or EPERM", p, wrc, werr)
			}
			if wrc == "0" && dev != "character special file 1:3" {
				t.Errorf("%s: a write succeeded and the path is %q, not the null device 1:3", p, dev)
			}
		}
		if urc == "0" || !strings.Contains(uerr, "Operation not permitted") {
			t.Errorf("%s: umount: exit %s %q, want EPERM", p, urc, uerr)
		}
	}
}

// TestReadonlyPaths asserts that the read-only paths of SECURITY.md §2
// (/proc/bus, /proc/fs, /proc/irq, /proc/sys, /proc/sysrq-trigger) and /sys
// are read-only mounts inside a container, that writing
// /proc/sysrq-trigger, /proc/sys/kernel/sysrq, other /proc/sys files and
// files under /sys/kernel fails, and that the host's values are unchanged.
// Paths this host's kernel lacks are reported and skipped; the writes use
// values that are harmless should they land (the host's own value, or sysrq
// "h", which prints help).
func TestReadonlyPaths(t *testing.T) {
	r := testutil.NewRoot(t)
	type write struct{ path, value string }
	hostValue := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	var writes []write
	before := map[string]string{}
	for _, p := range []string{"/proc/sys/kernel/sysrq", "/proc/sys/vm/overcommit_memory", "/proc/sys/kernel/domainname",
		"/sys/kernel/profiling", "/sys/kernel/rcu_expedited"} {
		if !exists(p) {
			t.Logf("%s: not on this host", p)
			continue
		}
		v := hostValue(p)
		before[p] = v
		if p == "/proc/sys/kernel/sysrq" {
			// A different value shows a leak on the host; put it back if so.
			nv := "0"
			if v == "0" {
				nv = "1"
			}
			t.Cleanup(func() {
				if hostValue(p) != v {
					os.WriteFile(p, []byte(v), 0)
				}
			})
			writes = append(writes, write{p, nv})
			continue
		}
		writes = append(writes, write{p, v})
	}
	if exists("/proc/sysrq-trigger") {
		writes = append(writes, write{"/proc/sysrq-trigger", "h"})
	} else {
		t.Logf("/proc/sysrq-trigger: not on this host (no CONFIG_MAGIC_SYSRQ)")
	}
	script := `while [ $# -gt 1 ]; do
  e=$( { printf '%s\n' "$2" > "$1"; } 2>&1 ); echo "$1|$?|$e"; shift 2
done
e=$( { touch /sys/kernel/berth-x; } 2>&1 ); echo "touch-sys|$?|$e"
e=$( { mkdir /sys/fs/cgroup/berth-x; } 2>&1 ); echo "mkdir-cgroup|$?|$e"
cat /proc/self/mountinfo`
	args := []string{"container", "run", "--rm", "busybox", "sh", "-c", script, "sh"}
	for _, w := range writes {
		args = append(args, w.path, w.value)
	}
	out := r.Must(args...)
	got := fields(out)
	for _, k := range append([]string{"touch-sys", "mkdir-cgroup"}, func() []string {
		var ps []string
		for _, w := range writes {
			ps = append(ps, w.path)
		}
		return ps
	}()...) {
		f := got[k]
		if len(f) < 2 || f[0] == "0" {
			t.Errorf("%s: writing inside the container: %q, want a failure", k, f)
			continue
		}
		// /sys/fs/cgroup is an empty kernfs mount point dir (no cgroupfs is
		// mounted there): a lookup under it fails with ENOENT before the
		// read-only check. Any failure will do for it.
		if k != "mkdir-cgroup" && !strings.Contains(f[1], "Read-only file system") {
			t.Errorf("%s: %q, want EROFS", k, f[1])
		}
	}
	// Every read-only path the host has is a read-only mount inside.
	ro := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 6 && strings.Contains(l, " - ") {
			opts := strings.Split(f[5], ",")
			for _, o := range opts {
				if o == "ro" {
					ro[f[4]] = true
				}
			}
		}
	}
	for _, p := range append(append([]string(nil), rootfs.DefaultReadonly...), "/sys") {
		if !exists(p) {
			t.Logf("%s: not on this host", p)
			continue
		}
		if !ro[p] {
			t.Errorf("%s is not a read-only mount inside the container", p)
		}
	}
	for p, v := range before {
		if now := hostValue(p); now != v {
			t.Errorf("the host's %s changed from %q to %q", p, v, now)
		}
	}
}

// TestDevListing asserts that a container's /dev is a fresh 0755 tmpfs
// holding exactly SECURITY.md §2's minimal list (fd full mqueue null ptmx
// pts random shm stderr stdin stdout tty urandom zero, plus core when the
// host has /proc/kcore), that each node has the right type and major:minor,
// each symlink the right target, and pts, shm and mqueue their own mounts.
func TestDevListing(t *testing.T) {
	r := testutil.NewRoot(t)
	want := []string{"fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"}
	links := map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}
	if exists("/proc/kcore") {
		want = append(want, "core")
		links["core"] = "/proc/kcore"
	}
	sort.Strings(want)
	script := `echo "ls|$(ls -A /dev | tr '\n' ' ')"
for f in /dev/* ; do
  n=${f#/dev/}
  if [ -L "$f" ]; then echo "$n|link|$(readlink "$f")"
  elif [ -c "$f" ]; then echo "$n|char|$(stat -c '%t:%T %a' "$f")"
  elif [ -d "$f" ]; then echo "$n|dir|$(stat -c '%a' "$f")"
  else echo "$n|other|$(stat -c '%F' "$f")"; fi
done
echo "dev|$(stat -c '%a' /dev)"
while read -r id parent mm root mp opts rest; do
  case "$mp" in /dev|/dev/*) echo "mnt $mp|${rest#*- }" ;; esac
done < /proc/self/mountinfo`
	got := fields(r.Must("container", "run", "--rm", "busybox", "sh", "-c", script))
	if ls := strings.Fields(strings.Join(got["ls"], "")); strings.Join(ls, " ") != strings.Join(want, " ") {
		t.Errorf("ls -A /dev = %v, want %v", ls, want)
	}
	nodes := map[string]string{"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9", "tty": "5:0"}
	for n, mm := range nodes {
		if f := got[n]; len(f) < 2 || f[0] != "char" || f[1] != mm+" 666" {
			t.Errorf("/dev/%s: %q, want a 0666 char device %s", n, f, mm)
		}
	}
	for n, target := range links {
		if f := got[n]; len(f) < 2 || f[0] != "link" || f[1] != target {
			t.Errorf("/dev/%s: %q, want a symlink to %s", n, f, target)
		}
	}
	for _, n := range []string{"pts", "shm", "mqueue"} {
		if f := got[n]; len(f) < 1 || f[0] != "dir" {
			t.Errorf("/dev/%s: %q, want a directory", n, f)
		}
	}
	if f := got["dev"]; len(f) < 1 || f[0] != "755" {
		t.Errorf("/dev mode %q, want 755", f)
	}
	for mp, fstype := range map[string]string{"/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs", "/dev/mqueue": "mqueue"} {
		f := got["mnt "+mp]
		if len(f) < 1 || !strings.HasPrefix(f[0], fstype+" ") {
			t.Errorf("%s: mount %q, want %s", mp, f, fstype)
		}
	}
	if f := got["mnt /dev/pts"]; len(f) > 0 && !strings.Contains(f[0], "ptmxmode=666") {
		t.Errorf("/dev/pts: %q, want a new devpts instance with ptmxmode=666", f[0])
	}
	for k := range got {
		if mp, ok := strings.CutPrefix(k, "mnt "); ok && mp != "/dev" && mp != "/dev/pts" && mp != "/dev/shm" && mp != "/dev/mqueue" {
			t.Errorf("an extra mount under /dev: %s %q", mp, got[k])
		}
	}
}

func readMountinfo(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// mountDiff is what is in b and not in a, and what is in a and not in b,
// leaving out mounts under another test's temp dir: the host is shared
// with concurrently running tests.
func mountDiff(a, b []string, ours []string) (added, removed []string, foreign []string) {
	set := func(l []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range l {
			m[x] = true
		}
		return m
	}
	sa, sb := set(a), set(b)
	isForeign := func(line string) bool {
		f := strings.Fields(line)
		if len(f) < 5 {
			return false
		}
		mp := f[4]
		if !strings.HasPrefix(mp, os.TempDir()+"/") {
			return false
		}
		for _, o := range ours {
			if mp == o || strings.HasPrefix(mp, o+"/") || strings.HasPrefix(o, mp+"/") {
				return false
			}
		}
		return true
	}
	for _, x := range b {
		if !sa[x] {
			if isForeign(x) {
				foreign = append(foreign, x)
			} else {
				added = append(added, x)
			}
		}
	}
	for _, x := range a {
		if !sb[x] {
			if isForeign(x) {
				foreign = append(foreign, x)
			} else {
				removed = append(removed, x)
			}
		}
	}
	return
}

// TestNoHostMountLeak asserts that the host's mount table is the same
// before, while and after a container with a --tmpfs and a -v bind runs:
// berth mounts everything (overlay, /proc, /dev, the tmpfs, the bind) in
// the container's own mount namespace, with / made rslave first, so no
// mount reaches the host nor stays after rm. (Mounts under other tests'
// temp dirs, from tests running at the same time, are logged, not counted.)
func TestNoHostMountLeak(t *testing.T) {
	r := testutil.NewRoot(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("bound"), 0o644); err != nil {
		t.Fatal(err)
	}
	ours := []string{r.Path, src}
	before := readMountinfo(t)
	r.Must("container", "run", "-d", "--name", "m", "--tmpfs", "/x", "-v", src+":/data", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "m")
	// The mounts exist inside.
	inside := r.Must("container", "run", "--rm", "--tmpfs", "/x", "-v", src+":/data:ro", "busybox", "sh", "-c",
		"grep -c -E ' /(x|data) ' /proc/self/mountinfo; cat /data/f")
	if strings.TrimSpace(inside) != "2\nbound" {
		t.Errorf("inside a container with --tmpfs /x and -v: %q, want both mounts and the bound file", inside)
	}
	during := readMountinfo(t)
	added, removed, foreign := mountDiff(before, during, ours)
	// The one host mount a container has by design: the pin of its network
	// namespace (ARCHITECTURE.md §5), gone with the container (checked below).
	added = slices.DeleteFunc(added, func(l string) bool {
		f := strings.Fields(l)
		return len(f) > 4 && strings.HasPrefix(f[4], r.Path+"/run/netns/") && strings.Contains(l, " - nsfs ")
	})
	for _, l := range foreign {
		t.Logf("ignored (another test's): %s", l)
	}
	if len(added)+len(removed) > 0 {
		t.Errorf("while a container runs the host's mountinfo changed:\nadded:\n  %s\nremoved:\n  %s",
			strings.Join(added, "\n  "), strings.Join(removed, "\n  "))
	}
	r.Must("container", "rm", "-f", "m")
	after := readMountinfo(t)
	added, removed, _ = mountDiff(before, after, ours)
	if len(added)+len(removed) > 0 {
		t.Errorf("after rm the host's mountinfo differs:\nadded:\n  %s\nremoved:\n  %s",
			strings.Join(added, "\n  "), strings.Join(removed, "\n  "))
	}
}

// buildStatic is testutil.BuildStatic as the dir and the program's name.
func buildStatic(t *testing.T, pkg string) (dir, name string) {
	p := testutil.BuildStatic(t, pkg)
	return filepath.Dir(p), filepath.Base(p)
}

// TestChrootEscapeStaysInside asserts that the classic chroot escape,
// chroot(d) + 64 × chdir("..") + chroot("."), in both its cwd and its
// saved-fd forms, run by a static test program as the container's root with
// the default capabilities (CAP_SYS_CHROOT among them), leaves the program
// in the container's own / (same device and inode, same listing, the
// container's /etc/hostname), because init uses pivot_root and detaches the
// old root instead of chroot.
func TestChrootEscapeStaysInside(t *testing.T) {
	r := testutil.NewRoot(t)
	dir, name := buildStatic(t, "./testdata/chrootescape")
	prog := "/esc/" + name
	res := r.Run("container", "run", "--name", "esc", "-v", dir+":/esc:ro", "busybox", "sh", "-c", prog+" cwd && "+prog+" fd")
	defer r.Run("container", "rm", "-f", "esc")
	if res.Code != 0 {
		t.Fatalf("escape program: exit %d: %s %s", res.Code, res.Stdout, res.Stderr)
	}
	id := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.Id}}", "esc"))
	type view struct {
		List     []string `json:"list"`
		Dev, Ino uint64
		Hostname string `json:"hostname"`
		Err      string `json:"err"`
	}
	out := map[string]view{}
	dec := json.NewDecoder(strings.NewReader(res.Stdout))
	for dec.More() {
		var one map[string]view
		if err := dec.Decode(&one); err != nil {
			t.Fatalf("program output %q: %v", res.Stdout, err)
		}
		for k, v := range one {
			if k == "before" {
				if b, ok := out[k]; ok && (b.Dev != v.Dev || b.Ino != v.Ino) {
					t.Errorf("the two runs started from different roots: %+v, %+v", b, v)
				}
			}
			out[k] = v
		}
	}
	before := out["before"]
	if strings.TrimSpace(before.Hostname) != id[:12] {
		t.Fatalf("before the escape /etc/hostname is %q, want the short ID %s", before.Hostname, id[:12])
	}
	if before.Ino == 0 || len(before.List) == 0 {
		t.Fatalf("the program could not stat or list / before the escape: %+v", before)
	}
	var host []string
	ents, _ := os.ReadDir("/")
	for _, e := range ents {
		host = append(host, e.Name())
	}
	sort.Strings(host)
	withEscapeDirs := func(l []string) string {
		var o []string
		for _, x := range l {
			if !strings.HasPrefix(x, "escape-") {
				o = append(o, x)
			}
		}
		return strings.Join(o, " ")
	}
	for _, try := range []string{"cwd", "fd"} {
		v, ok := out[try]
		if !ok {
			t.Errorf("%s: no result", try)
			continue
		}
		if v.Err != "" {
			t.Logf("%s: %s", try, v.Err)
		}
		if v.Dev != before.Dev || v.Ino != before.Ino {
			t.Errorf("%s escape: / is dev %d ino %d, was %d/%d: the program left the container's root", try, v.Dev, v.Ino, before.Dev, before.Ino)
		}
		if withEscapeDirs(v.List) != withEscapeDirs(before.List) {
			t.Errorf("%s escape: / lists %v, the container's / lists %v (the host's: %v)", try, v.List, before.List, host)
		}
		if v.Hostname != before.Hostname {
			t.Errorf("%s escape: /etc/hostname %q, the container's is %q", try, v.Hostname, before.Hostname)
		}
	}
}
