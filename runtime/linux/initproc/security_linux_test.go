package initproc_test

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
)

// statusField returns a field of a /proc/PID/status text.
func statusField(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// noStackTrace fails the test when a Go panic reached the user.
func noStackTrace(t *testing.T, what string, res testutil.Result) {
	t.Helper()
	for _, s := range []string{res.Stdout, res.Stderr} {
		if strings.Contains(s, "goroutine ") || strings.Contains(s, "panic:") {
			t.Errorf("%s: a stack trace reached the user:\n%s", what, s)
		}
	}
}

// initPid is the host pid of a running container's init, as inspect says.
func initPid(t *testing.T, r *testutil.Root, name string) int {
	t.Helper()
	out := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.State.Pid}}", name))
	pid, err := strconv.Atoi(out)
	if err != nil || pid <= 0 {
		t.Fatalf("inspect %s: pid %q", name, out)
	}
	return pid
}

// topRow is one line of `container top`: host pids.
type topRow struct {
	pid, ppid int
	cmd       string
}

func top(t *testing.T, r *testutil.Root, name string) []topRow {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.Must("container", "top", name)), "\n")
	var rows []topRow
	for _, l := range lines[1:] { // UID PID PPID STAT TIME CMD
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("container top: odd line %q", l)
		}
		pid, err1 := strconv.Atoi(f[1])
		ppid, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("container top: odd line %q", l)
		}
		rows = append(rows, topRow{pid, ppid, strings.Join(f[5:], " ")})
	}
	return rows
}

// fdsOf lists /proc/PID/fd of a host process, numerically sorted, with
// their link targets.
func fdsOf(t *testing.T, pid int) ([]int, map[int]string) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("fds of %d: %v", pid, err)
	}
	var fds []int
	links := map[int]string{}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds = append(fds, n)
		links[n], _ = os.Readlink(filepath.Join(dir, e.Name()))
	}
	sort.Ints(fds)
	return fds, links
}

// leakHostDirs opens n host directories without O_CLOEXEC in the test
// process, as a careless parent (a shell, a test runner) would. The berth
// CLI inherits them; none may reach a shim, an init or a command. It
// returns the fds and the directories they name.
func leakHostDirs(t *testing.T, n int) map[int]string {
	t.Helper()
	cwd, _ := os.Getwd()
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "HOST-MARKER"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	dirs := []string{"/", cwd, tmp, "/etc", "/tmp", "/proc"}
	out := map[int]string{}
	for i := 0; i < n; i++ {
		d := dirs[i%len(dirs)]
		fd, err := syscall.Open(d, syscall.O_RDONLY|syscall.O_DIRECTORY, 0) // no O_CLOEXEC on purpose
		if err != nil {
			t.Fatalf("open %s: %v", d, err)
		}
		if i%2 == 1 {
			// Every other one has a copy from fd 10 up too, clear of the
			// low fds a spawner dup2s its own files onto.
			high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD, 10) // F_DUPFD: no FD_CLOEXEC
			if err != nil {
				t.Fatal(err)
			}
			out[high] = d
			t.Cleanup(func() { syscall.Close(high) })
		}
		out[fd] = d
		t.Cleanup(func() { syscall.Close(fd) })
	}
	return out
}

// extraFile is a regular file added to the busybox image.
type extraFile struct {
	name string // in the image, relative
	mode int64  // with setuid bits
	body []byte
}

// importBusyboxWith imports the busybox test image plus extra files as ref.
func importBusyboxWith(t *testing.T, r *testutil.Root, ref string, extra []extraFile, changes ...string) {
	t.Helper()
	src, err := os.Open(testutil.BusyboxTar(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(t.TempDir(), "image.tar")
	dst, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tr, tw := tar.NewReader(src), tar.NewWriter(dst)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range extra {
		h := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: e.mode, Size: int64(len(e.body)),
			Uid: 0, Gid: 0, Uname: "root", Gname: "root", Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	args := []string{"image", "import", path, ref}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	r.Must(args...)
}

// TestNoLeakedFDs asserts that only fds 0, 1 and 2 reach a container's
// command (CVE-2024-21626: a leaked host fd is a way out), read from the
// host through /proc/<pid>/fd: for a plain detached command, and with
// --init for the reaper's child, found through `container top`. The test
// process holds host directory fds without O_CLOEXEC meanwhile, which the
// CLI inherits. The reaper (berth itself, PID 1 with --init) holds none of
// them, and no file of a host mount either (subtest
// ReaperHoldsNoHostFile): its fds stay open for the container's lifetime.
func TestNoLeakedFDs(t *testing.T) {
	r := testutil.NewRoot(t)
	leaked := leakHostDirs(t, 6)
	want := []int{0, 1, 2}

	r.Must("container", "run", "-d", "--name", "plain", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "plain")
	pid := initPid(t, r, "plain")
	// ls --format json names the same pid.
	for _, line := range strings.Split(strings.TrimSpace(r.Must("container", "ls", "--format", "json")), "\n") {
		var row struct {
			Names string
			Pid   int
		}
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("container ls --format json: %q: %v", line, err)
		}
		if row.Names == "plain" && row.Pid != pid {
			t.Errorf("ls says pid %d, inspect %d", row.Pid, pid)
		}
	}
	if fds, links := fdsOf(t, pid); fmt.Sprint(fds) != fmt.Sprint(want) {
		t.Errorf("the command (pid %d) has fds %v (%v), want %v; the test process leaked %v", pid, fds, links, want, leaked)
	}

	r.Must("container", "run", "-d", "--init", "--name", "reaped", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "reaped")
	reaper := initPid(t, r, "reaped")
	child := 0
	for _, row := range top(t, r, "reaped") {
		if row.ppid == reaper && row.cmd == "sleep 1000" {
			child = row.pid
		}
	}
	if child == 0 {
		t.Fatalf("no child of the reaper %d running sleep in container top: %+v", reaper, top(t, r, "reaped"))
	}
	if fds, links := fdsOf(t, child); fmt.Sprint(fds) != fmt.Sprint(want) {
		t.Errorf("the reaper's child (pid %d) has fds %v (%v), want %v", child, fds, links, want)
	}
	// The reaper itself is berth (Go runtime fds) but must hold nothing of
	// the test process's.
	type inode struct{ dev, ino uint64 }
	hostDirs := map[inode]string{}
	for fd, d := range leaked {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		hostDirs[inode{st.Dev, st.Ino}] = d
	}
	fds, links := fdsOf(t, reaper)
	for _, fd := range fds {
		var st unix.Stat_t
		if fd < 3 || unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", reaper, fd), &st) != nil {
			continue
		}
		if d, ok := hostDirs[inode{st.Dev, st.Ino}]; ok {
			t.Errorf("the reaper holds fd %d -> %s: the host directory %s of the test process", fd, links[fd], d)
		}
	}

	// Nor any file of a host mount: the reaper's fds ≥ 3 that name a file
	// must lie on a mount of the container's own table. A host file there
	// is reachable with --cap-add SYS_PTRACE through /proc/1/fd/N, and can
	// be reopened for writing.
	t.Run("ReaperHoldsNoHostFile", func(t *testing.T) {
		ids := map[string]bool{}
		mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", reaper))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(mi)), "\n") {
			ids[strings.Fields(l)[0]] = true
		}
		for _, fd := range fds {
			l := links[fd]
			if fd < 3 || strings.HasPrefix(l, "pipe:") || strings.HasPrefix(l, "socket:") || strings.HasPrefix(l, "anon_inode:") {
				continue
			}
			info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", reaper, fd))
			if err != nil {
				continue // closed meanwhile
			}
			mnt := ""
			for _, line := range strings.Split(string(info), "\n") {
				if v, ok := strings.CutPrefix(line, "mnt_id:"); ok {
					mnt = strings.TrimSpace(v)
				}
			}
			if !ids[mnt] {
				t.Errorf("the reaper (PID 1 of the container) holds fd %d -> %s on mount %s, which is not in the container's mount table: a host file", fd, l, mnt)
			}
		}
	})

	// Seen from inside: what a child of the command inherits (the shell's
	// fds at the fork). Not the shell's own listing: busybox ash keeps a
	// saved stdout on fd 10 around redirections and pipe ends around
	// pipelines.
	for _, flags := range [][]string{nil, {"--init"}} {
		args := append(append([]string{"container", "run", "--rm"}, flags...), "busybox", "sh", "-c", "sleep 100 & ls /proc/$!/fd; kill $!")
		if got := strings.Join(strings.Fields(r.Must(args...)), " "); got != "0 1 2" {
			t.Errorf("%v: a child of the command inside has fds %q, want 0 1 2", flags, got)
		}
	}
}

// TestWorkdirProcSelfFD (CVE-2024-21626) asserts that a working directory
// of /proc/self/fd/N, N = 3..20, given with -w or as the image's WORKDIR,
// never gives the command a host directory: the start fails cleanly (a
// non-zero code, no stack trace) or `pwd -P` names a directory inside the
// container whose listing is the container's. The test process holds host
// directory fds without O_CLOEXEC meanwhile, so a leak would have one to
// offer.
func TestWorkdirProcSelfFD(t *testing.T) {
	r := testutil.NewRoot(t)
	leakHostDirs(t, 12)
	check := func(what string, res testutil.Result) {
		t.Helper()
		noStackTrace(t, what, res)
		if res.Code != 0 {
			if strings.TrimSpace(res.Stderr) == "" {
				t.Errorf("%s: exit %d without a message", what, res.Code)
			}
			return
		}
		first, listing, _ := strings.Cut(strings.TrimSpace(res.Stdout), "\n")
		wd, ok := strings.CutPrefix(first, "cwd=")
		if !ok || !strings.HasPrefix(wd, "/") || strings.Contains(wd, "unreachable") {
			t.Errorf("%s: started with cwd %q, not a path inside the container; it lists %q", what, wd, listing)
			return
		}
		if strings.Contains(listing, "HOST-MARKER") {
			t.Errorf("%s: cwd %s lists %q: a host directory", what, wd, listing)
		}
		// The same path in a fresh container must exist and list the same.
		fresh := r.Run("container", "run", "--rm", "busybox", "ls", "-A", wd)
		if fresh.Code != 0 || strings.TrimSpace(fresh.Stdout) != strings.TrimSpace(listing) {
			t.Errorf("%s: cwd %s lists %q; in the container that path lists %q (exit %d): not the container's directory",
				what, wd, listing, fresh.Stdout, fresh.Code)
		}
	}
	script := `echo "cwd=$(pwd -P 2>&1)"; ls -A`
	for n := 3; n <= 20; n++ {
		wd := fmt.Sprintf("/proc/self/fd/%d", n)
		res := r.Run("container", "run", "--rm", "-w", wd, "busybox", "sh", "-c", script)
		check("-w "+wd, res)

		ref := fmt.Sprintf("workdir-fd:%d", n)
		r.Must("image", "import", testutil.BusyboxTar(t), ref, "--change", `CMD ["sh", "-c", "echo \"cwd=$(pwd -P 2>\u00261)\"; ls -A"]`, "--change", "WORKDIR "+wd)
		res = r.Run("container", "run", "--rm", ref)
		check("image WORKDIR "+wd, res)
	}
	if out := r.Must("container", "ls", "-a", "-q"); out != "" {
		t.Errorf("--rm left containers: %s", out)
	}
}

// TestNoNewPrivs asserts that no_new_privs is on by default, so a
// setuid-root program in the image run as -u 1000 keeps euid 1000, and that
// `--security-opt no-new-privileges:false` lets it gain euid 0 while the
// seccomp filter still loads (it is loaded before the user switch then).
// The setuid program is a static Go one printing its euid: busybox cannot
// serve, since its FEATURE_SUID drops a setuid euid itself for applets such
// as id, with or without no_new_privs.
func TestNoNewPrivs(t *testing.T) {
	r := testutil.NewRoot(t)
	st := r.Must("container", "run", "--rm", "busybox", "cat", "/proc/self/status")
	if got := statusField(st, "NoNewPrivs"); got != "1" {
		t.Errorf("default NoNewPrivs = %q, want 1", got)
	}
	prog, err := os.ReadFile(testutil.BuildStatic(t, "./testdata/printeuid"))
	if err != nil {
		t.Fatal(err)
	}
	importBusyboxWith(t, r, "suid:latest", []extraFile{
		{"bin/suid-printeuid", 0o4755, prog},
	}, `CMD ["sh"]`)
	if got := strings.TrimSpace(r.Must("container", "run", "--rm", "suid", "stat", "-c", "%a %u", "/bin/suid-printeuid")); got != "4755 0" {
		t.Fatalf("/bin/suid-printeuid in the image is %q, want mode 4755 owned by 0", got)
	}

	out := r.Must("container", "run", "--rm", "-u", "1000", "suid", "sh", "-c",
		`/bin/suid-printeuid; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status`)
	if !strings.Contains(out, "uid=1000 euid=1000\n") {
		t.Errorf("setuid-root program run as 1000 with no_new_privs: %q, want euid 1000", out)
	}
	if statusField(out, "NoNewPrivs") != "1" || statusField(out, "Seccomp") != "2" {
		t.Errorf("-u 1000: status %q, want NoNewPrivs 1 and Seccomp 2", out)
	}

	out = r.Must("container", "run", "--rm", "-u", "1000", "--security-opt", "no-new-privileges:false", "suid", "sh", "-c",
		`/bin/suid-printeuid; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status`)
	if !strings.Contains(out, "uid=1000 euid=0\n") {
		t.Errorf("setuid-root program run as 1000 without no_new_privs: %q, want euid 0", out)
	}
	if statusField(out, "NoNewPrivs") != "0" || statusField(out, "Seccomp") != "2" {
		t.Errorf("no-new-privileges:false: status %q, want NoNewPrivs 0 and Seccomp 2 (seccomp must still load)", out)
	}
}

// TestRlimitsClamped asserts that a --ulimit above the host's hard limit
// (nofile=1048576) does not fail the start: the container starts with
// `ulimit -Hn` (and -Sn) equal to the host's hard limit, and stderr carries
// a warning naming nofile. A value within the limit applies as written.
// The test never raises its own rlimits.
func TestRlimitsClamped(t *testing.T) {
	r := testutil.NewRoot(t)
	var host unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &host); err != nil {
		t.Fatal(err)
	}
	ask := uint64(1048576)
	if host.Max >= ask {
		ask = host.Max + 1
	}
	res := r.Run("container", "run", "--rm", "--ulimit", fmt.Sprintf("nofile=%d", ask), "busybox", "sh", "-c", "ulimit -Hn; ulimit -Sn")
	noStackTrace(t, "--ulimit", res)
	if res.Code != 0 {
		t.Fatalf("--ulimit nofile=%d: exit %d: %s", ask, res.Code, res.Stderr)
	}
	want := fmt.Sprintf("%d\n%d", host.Max, host.Max)
	if got := strings.TrimSpace(res.Stdout); got != want {
		t.Errorf("ulimit -Hn, -Sn inside = %q, want %q (the host's hard limit)", got, want)
	}
	if !strings.Contains(res.Stderr, "warning") || !strings.Contains(res.Stderr, "nofile") {
		t.Errorf("no warning naming nofile on stderr: %q", res.Stderr)
	}

	soft, hard := uint64(1024), uint64(2048)
	if hard > host.Max {
		soft, hard = host.Max/2, host.Max
	}
	res = r.Run("container", "run", "--rm", "--ulimit", fmt.Sprintf("nofile=%d:%d", soft, hard), "busybox", "sh", "-c", "ulimit -Hn; ulimit -Sn")
	if want := fmt.Sprintf("%d\n%d", hard, soft); res.Code != 0 || strings.TrimSpace(res.Stdout) != want {
		t.Errorf("--ulimit nofile=%d:%d: exit %d, %q, want %q", soft, hard, res.Code, res.Stdout, want)
	}
	if strings.Contains(res.Stderr, "nofile") {
		t.Errorf("a limit within the host's got a warning: %q", res.Stderr)
	}
}

// TestUserResolution asserts Docker's user handling: -u nobody resolves
// through the image's /etc/passwd (uid and gid 65534, its HOME), -u
// 1000:1000 needs no entry, -u nosuchuser fails the start with 125 and
// "unable to find user nosuchuser", and HOME defaults to /root for root
// when neither the image nor -e sets it (-e HOME with HOME unset in the
// CLI's environment included).
func TestUserResolution(t *testing.T) {
	r := testutil.NewRoot(t)
	for _, c := range []struct {
		user, want string
	}{
		{"nobody", "uid=65534(nobody) gid=65534(nogroup) HOME=/nonexistent"},
		{"1000:1000", "uid=1000 gid=1000 HOME=/"},
		{"0", "uid=0(root) gid=0(root) HOME=/root"},
		{"", "uid=0(root) gid=0(root) HOME=/root"},
	} {
		args := []string{"container", "run", "--rm"}
		if c.user != "" {
			args = append(args, "-u", c.user)
		}
		args = append(args, "busybox", "sh", "-c", `echo "$(id) HOME=$HOME"`)
		if got := strings.TrimSpace(r.Must(args...)); got != c.want {
			t.Errorf("-u %q: %q, want %q", c.user, got, c.want)
		}
	}

	res := r.Run("container", "run", "--rm", "-u", "nosuchuser", "busybox", "id")
	noStackTrace(t, "-u nosuchuser", res)
	if res.Code != 125 || !strings.Contains(res.Stderr, "unable to find user nosuchuser") {
		t.Errorf("-u nosuchuser: exit %d, stderr %q; want 125 and \"unable to find user nosuchuser\"", res.Code, res.Stderr)
	}

	// -e HOME passes the CLI's HOME through; testutil runs the CLI without
	// one, so the variable is dropped and the default applies.
	if got := strings.TrimSpace(r.Must("container", "run", "--rm", "-e", "HOME", "busybox", "sh", "-c", `echo "HOME=$HOME"`)); got != "HOME=/root" {
		t.Errorf("-e HOME (unset): %q, want HOME=/root", got)
	}
	if got := strings.TrimSpace(r.Must("container", "run", "--rm", "-e", "HOME=/srv", "busybox", "sh", "-c", `echo "HOME=$HOME"`)); got != "HOME=/srv" {
		t.Errorf("-e HOME=/srv: %q", got)
	}
	if out := r.Must("container", "ls", "-a", "-q"); out != "" {
		t.Errorf("--rm left containers: %s", out)
	}
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestProcSelfExeOverwrite (CVE-2019-5736, the variant without exec)
// asserts that nothing in a container can write berth's binary through
// /proc/<pid>/exe: 20 containers (every other one with --init, whose PID 1
// is berth's own reaper run from a sealed memfd) each try, 20 times, to
// open /proc/1/exe and their parent's exe for writing (truncating,
// appending, and reopening a read fd through /proc/self/fd); every try
// fails, and the host binary's sha256 is unchanged afterwards. From the
// host, the reaper's exe is a memfd and opening it for writing fails too.
func TestProcSelfExeOverwrite(t *testing.T) {
	r := testutil.NewRoot(t)
	before := sha256File(t, r.Bin)
	out := t.TempDir()
	writer := `n=0
for k in $(seq 20); do
  for p in /proc/1/exe /proc/$PPID/exe; do
    if { echo x > $p; } 2>/dev/null; then echo "trunc $p" >> /out/wrote; fi
    if { echo x >> $p; } 2>/dev/null; then echo "append $p" >> /out/wrote; fi
    if ( exec 3< $p && echo x > /proc/self/fd/3 ) 2>/dev/null; then echo "reopen $p" >> /out/wrote; fi
    n=$((n+1))
  done
done
echo "tries=$n"`
	for i := 0; i < 20; i++ {
		args := []string{"container", "run", "--rm", "-v", out + ":/out"}
		if i%2 == 1 {
			args = append(args, "--init")
		}
		args = append(args, "busybox", "sh", "-c", writer)
		res := r.Run(args...)
		noStackTrace(t, "writer", res)
		if res.Code != 0 || strings.TrimSpace(res.Stdout) != "tries=40" {
			t.Errorf("run %d (--init %v): exit %d, %q, %q", i, i%2 == 1, res.Code, res.Stdout, res.Stderr)
		}
	}
	if b, err := os.ReadFile(filepath.Join(out, "wrote")); err == nil {
		t.Errorf("a container opened an exe for writing:\n%s", b)
	}

	// From the host: the reaper runs from a memfd, which is sealed.
	r.Must("container", "run", "-d", "--init", "--name", "reaper", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "reaper")
	pid := initPid(t, r, "reaper")
	if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); !strings.HasPrefix(l, "/memfd:") {
		t.Errorf("the reaper runs %q, want a sealed memfd copy", l)
	}
	if f, err := os.OpenFile(fmt.Sprintf("/proc/%d/exe", pid), os.O_WRONLY, 0); err == nil {
		_, werr := f.Write([]byte("x"))
		f.Close()
		if werr == nil {
			t.Errorf("the host could write the reaper's executable")
		}
	}

	if after := sha256File(t, r.Bin); after != before {
		t.Errorf("the berth binary %s changed: sha256 %s, was %s", r.Bin, after, before)
	}
}
