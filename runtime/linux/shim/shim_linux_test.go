package shim_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
)

// shims maps container ID to the pid of its shim: the processes whose
// command line is `berth _shim --root ROOT --id ID`.
func shims(root string) map[string]int {
	out := map[string]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) != 6 || args[1] != "_shim" || args[2] != "--root" || args[3] != root || args[4] != "--id" {
			continue
		}
		out[args[5]] = pid
	}
	return out
}

type fdInfo struct {
	n     int
	link  string
	flags int // the open flags, octal in fdinfo
	dev   uint64
	ino   uint64
}

// fdsOf reads every fd of a host process: its link, open flags and the
// device and inode it refers to.
func fdsOf(t *testing.T, pid int) []fdInfo {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("fds of %d: %v", pid, err)
	}
	var out []fdInfo
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fi := fdInfo{n: n, flags: -1}
		fi.link, _ = os.Readlink(filepath.Join(dir, e.Name()))
		var st unix.Stat_t
		if unix.Stat(filepath.Join(dir, e.Name()), &st) == nil {
			fi.dev, fi.ino = st.Dev, st.Ino
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, n)); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "flags:"); ok {
					if f, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64); err == nil {
						fi.flags = int(f)
					}
				}
			}
		}
		out = append(out, fi)
	}
	return out
}

// marker is a host file or directory the test process holds open without
// O_CLOEXEC, as a careless parent would.
type marker struct {
	path     string
	fd       int
	dev, ino uint64
}

// openMarker opens path without O_CLOEXEC at the lowest free fd or, when
// high > 0, at the lowest free one from high up (a spawner's dup2 onto 3,
// 4, 5 would hide a leak of a low fd).
func openMarker(t *testing.T, path string, high int) marker {
	t.Helper()
	fd, err := syscall.Open(path, syscall.O_RDONLY, 0) // flags 0: no O_CLOEXEC, on purpose
	if err != nil {
		t.Fatal(err)
	}
	if high > 0 {
		hfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD, high) // F_DUPFD: no FD_CLOEXEC
		if err != nil {
			t.Fatal(err)
		}
		syscall.Close(fd)
		fd = hfd
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC != 0 {
		t.Fatalf("marker fd %d: flags %d, %v: it must lack FD_CLOEXEC for the test to mean anything", fd, fl, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return marker{path, fd, st.Dev, st.Ino}
}

// TestParentFDsCloexec asserts that no fd of the process starting berth
// leaks into a container's shim (and so toward init and the command): the
// test opens a marker file and a marker directory without O_CLOEXEC, which
// the berth CLI inherits, then starts containers (plain and --init, with
// run -d and create+start). Sampled repeatedly from the host, each shim's
// fds ≥ 3 never refer to a marker, all carry close-on-exec, and are only
// the shim's own: its log and state under the root, pipes, sockets, anon
// inodes (epoll, eventfd, pidfd), /dev/null, and the Go runtime's cgroup
// CPU-limit files. The container's processes hold no marker either.
func TestParentFDsCloexec(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "marker")
	if err := os.WriteFile(file, []byte("test process"), 0o644); err != nil {
		t.Fatal(err)
	}
	markers := []marker{openMarker(t, file, 0), openMarker(t, dir, 0), openMarker(t, file, 120), openMarker(t, dir, 121)}
	r := testutil.NewRoot(t)

	r.Must("container", "run", "-d", "--name", "plain", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "plain")
	r.Must("container", "run", "-d", "--init", "--name", "reaped", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "reaped")
	r.Must("container", "create", "--name", "started", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "started")
	r.Must("container", "start", "started")

	ids := map[string]string{}
	for _, n := range []string{"plain", "reaped", "started"} {
		ids[strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.Id}}", n))] = n
	}
	isMarker := func(f fdInfo) string {
		for _, m := range markers {
			if (f.dev == m.dev && f.ino == m.ino) || f.link == m.path {
				return m.path
			}
		}
		return ""
	}
	own := func(link string) bool {
		switch {
		case strings.HasPrefix(link, "pipe:["), strings.HasPrefix(link, "socket:["), strings.HasPrefix(link, "anon_inode:"):
			return true
		case link == "/dev/null":
			return true
		case link == r.Path || strings.HasPrefix(link, r.Path+"/"):
			return true
		case strings.HasPrefix(link, "/sys/fs/cgroup/"): // the Go runtime's CPU limit (cpu.max, cpu.cfs_*)
			return true
		}
		return false
	}
	seen := map[string]bool{}
	for round := 0; round < 5; round++ {
		found := shims(r.Path)
		for id, name := range ids {
			pid, ok := found[id]
			if !ok {
				t.Fatalf("no shim for %s (%s) among %v", name, id, found)
			}
			for _, f := range fdsOf(t, pid) {
				if f.n < 3 {
					continue
				}
				key := fmt.Sprintf("%s %d %s", name, f.n, f.link)
				if seen[key] {
					continue
				}
				seen[key] = true
				if m := isMarker(f); m != "" {
					t.Errorf("%s: the shim (pid %d) holds fd %d -> %s, the test process's marker %s", name, pid, f.n, f.link, m)
					continue
				}
				if f.flags < 0 || f.flags&unix.O_CLOEXEC == 0 {
					t.Errorf("%s: the shim's fd %d -> %s lacks close-on-exec (flags 0%o)", name, f.n, f.link, f.flags)
				}
				if !own(f.link) {
					t.Errorf("%s: the shim's fd %d -> %s is none of the shim's own", name, f.n, f.link)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Nor does anything in the containers hold a marker.
	for _, name := range []string{"plain", "reaped", "started"} {
		out := r.Must("container", "top", name)
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			f := strings.Fields(l)
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("container top %s: %q", name, l)
			}
			for _, fd := range fdsOf(t, pid) {
				if m := isMarker(fd); m != "" {
					t.Errorf("%s: pid %d (%s) holds fd %d -> %s, the test process's marker", name, pid, strings.Join(f[5:], " "), fd.n, m)
				}
			}
		}
	}
}
