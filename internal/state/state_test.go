package state

import (
	"bufio"
	"context"
	"encoding/json"

	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/failpoint"
	"berth.dev/berth/internal/testutil"
	"golang.org/x/sys/unix"
)

const helperEnv = "BERTH_STATE_TEST_HELPER"

// TestMain lets the test binary act as a second berth process.
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode))
	}
	os.Exit(m.Run())
}

// helper modes: hold-project ROOT, hold-global-shared ROOT (print
// "locked", hold until stdin closes); write ROOT/FILE CONTENT (crashes at
// the armed failpoint).
func helper(mode string) int {
	args := strings.Split(os.Getenv("HELPER_ARGS"), "\x1f")
	switch mode {
	case "hold-project", "hold-global-shared":
		r, err := Open(args[0])
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		var l *Lock
		if mode == "hold-project" {
			l, err = r.ProjectLock(context.Background(), "demo", LockOptions{})
		} else {
			l, err = r.GlobalLock(context.Background(), LockOptions{Shared: true})
		}
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		fmt.Println("locked")
		bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
		l.Unlock()
		return 0
	case "write":
		if err := WriteFile(args[0], []byte(args[1]), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	return 2
}

type child struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
}

func startHelper(t *testing.T, mode string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "HELPER_ARGS="+strings.Join(args, "\x1f"))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: in}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper %s: %q", mode, line)
	}
	return c
}

func openRoot(t *testing.T) *Root {
	t.Helper()
	r, err := Open(filepath.Join(testutil.TempRoot(t), "root"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Two real processes: the second waits for the first, learns its pid, and
// gets the lock once it is released; --no-wait-lock fails at once.
func TestProjectLockTwoProcesses(t *testing.T) {
	r := openRoot(t)
	holder := startHelper(t, "hold-project", r.Path)
	pid := holder.cmd.Process.Pid

	_, err := r.ProjectLock(context.Background(), "demo", LockOptions{NoWait: true})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", pid)) {
		t.Fatalf("NoWait: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = r.ProjectLock(ctx, "demo", LockOptions{})
	cancel()
	if !errdefs.IsCanceled(err) {
		t.Fatalf("cancelled wait: %v", err)
	}

	waitedFor := make(chan int, 1)
	got := make(chan error, 1)
	go func() {
		l, err := r.ProjectLock(context.Background(), "demo", LockOptions{OnWait: func(p int) { waitedFor <- p }})
		if err == nil {
			defer l.Unlock()
		}
		got <- err
	}()
	select {
	case p := <-waitedFor:
		if p != pid {
			t.Fatalf("waiting for pid %d, holder is %d", p, pid)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second locker did not wait")
	}
	select {
	case err := <-got:
		t.Fatalf("acquired while held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	holder.stdin.Close() // release
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lock not acquired after release")
	}
	// Another project is independent.
	l, err := r.ProjectLock(context.Background(), "other", LockOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
}

// Shared global locks coexist; an exclusive one waits for all of them.
func TestGlobalLockSharedAndExclusive(t *testing.T) {
	r := openRoot(t)
	holder := startHelper(t, "hold-global-shared", r.Path)
	sh, err := r.GlobalLock(context.Background(), LockOptions{Shared: true, NoWait: true})
	if err != nil {
		t.Fatalf("second shared holder: %v", err)
	}
	sh.Unlock()
	if _, err := r.GlobalLock(context.Background(), LockOptions{NoWait: true}); !errdefs.IsConflict(err) {
		t.Fatalf("exclusive while shared held: %v", err)
	}
	holder.stdin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ex, err := r.GlobalLock(ctx, LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ex.Unlock()
}

// A writer killed between write and rename (or after the rename) leaves
// the old or the new content, never a torn file; 100 runs in real
// processes.
func TestAtomicWriteCrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := WriteJSON(path, map[string]int{"gen": 0}, 0o600); err != nil {
		t.Fatal(err)
	}
	gen := 0
	for i := 1; i <= 100; i++ {
		point := "state.write.before-rename"
		if i%2 == 0 {
			point = "state.write.after-rename"
		}
		content := fmt.Sprintf("{\"gen\": %d, \"pad\": %q}\n", i, strings.Repeat("x", 4096*(i%5)))
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=write", "HELPER_ARGS="+path+"\x1f"+content, "BERTH_FAILPOINT=crash:"+point)
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != failpoint.CrashCode {
			t.Fatalf("run %d: writer did not crash: %v", i, err)
		}
		var v struct{ Gen int }
		if err := ReadJSON(path, &v); err != nil {
			t.Fatalf("run %d: torn file: %v", i, err)
		}
		want := gen
		if point == "state.write.after-rename" {
			want = i
		}
		if v.Gen != want {
			t.Fatalf("run %d (%s): gen %d, want %d", i, point, v.Gen, want)
		}
		gen = v.Gen
	}
	if err := CleanStale(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestPathsRejectTraversal(t *testing.T) {
	r := &Root{Path: "/var/lib/berth"}
	for _, bad := range []string{"", ".", "..", "../etc", "a/b", "/abs", "x\x00y", "-x", "a b", strings.Repeat("a", 256)} {
		for name, f := range map[string]func(string) (string, error){
			"project": r.ProjectDir, "network": r.NetworkDir, "volume": r.VolumeDir, "name": r.NamePath, "container": r.ContainerDir,
		} {
			if p, err := f(bad); err == nil || !errdefs.IsInvalid(err) {
				t.Errorf("%s(%q) = %q, %v", name, bad, p, err)
			}
		}
	}
	if p, err := r.ProjectDir("my_app-2"); err != nil || p != "/var/lib/berth/projects/my_app-2" {
		t.Errorf("ProjectDir: %q %v", p, err)
	}
	id := strings.Repeat("ab", 32)
	if p, err := r.ContainerDir(id); err != nil || p != "/var/lib/berth/containers/"+id {
		t.Errorf("ContainerDir: %q %v", p, err)
	}
}

func TestRootMustBeRootOwned0700(t *testing.T) {
	base := testutil.TempRoot(t)
	loose := filepath.Join(base, "loose")
	os.Mkdir(loose, 0o755)
	if _, err := Open(loose); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "chmod 0700") {
		t.Fatalf("0755 root: %v", err)
	}
	link := filepath.Join(base, "link")
	os.Symlink(loose, link)
	if _, err := Open(link); !errdefs.IsInvalid(err) {
		t.Fatalf("symlinked root: %v", err)
	}
	if os.Geteuid() == 0 {
		owned := filepath.Join(base, "owned")
		os.Mkdir(owned, 0o700)
		os.Chown(owned, 1000, 1000)
		if _, err := Open(owned); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "owned by uid 1000") {
			t.Fatalf("uid 1000 root: %v", err)
		}
	}
	fresh := filepath.Join(base, "fresh", "root")
	r, err := Open(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if r.RunDir != filepath.Join(fresh, "run") {
		t.Fatalf("run dir %s", r.RunDir)
	}
}

// Every directory berth makes is 0700 and every record 0600.
func TestPermissions(t *testing.T) {
	r := openRoot(t)
	l, err := r.ProjectLock(context.Background(), "demo", LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	pd, _ := r.ProjectDir("demo")
	if err := WriteJSON(filepath.Join(pd, "project.json"), map[string]string{"a": "b"}, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.ReserveName("demo-web-1", strings.Repeat("0", 64)); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(r.Path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := os.Lstat(p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
		case d.IsDir() && fi.Mode().Perm() != 0o700:
			t.Errorf("dir %s has mode %v", p, fi.Mode().Perm())
		case !d.IsDir() && fi.Mode().Perm() != 0o600:
			t.Errorf("file %s has mode %v", p, fi.Mode().Perm())
		}
		return nil
	})
}

func TestNameReservation(t *testing.T) {
	r := openRoot(t)
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	if err := r.ReserveName("web-1", a); err != nil {
		t.Fatal(err)
	}
	if err := r.ReserveName("web-1", a); err != nil {
		t.Fatalf("same id again: %v", err)
	}
	if err := r.ReserveName("web-1", b); !errdefs.IsConflict(err) {
		t.Fatalf("taken name: %v", err)
	}
	if err := r.ReleaseName("web-1", b); !errdefs.IsConflict(err) {
		t.Fatalf("release by another id: %v", err)
	}
	if id, err := r.LookupName("web-1"); err != nil || id != a {
		t.Fatalf("lookup: %q %v", id, err)
	}
	if err := r.ReleaseName("web-1", a); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LookupName("web-1"); !errdefs.IsNotFound(err) {
		t.Fatalf("after release: %v", err)
	}
	if err := r.ReleaseName("web-1", a); err != nil {
		t.Fatalf("release twice: %v", err)
	}
}

func TestReadJSONMissingIsNotFound(t *testing.T) {
	var v map[string]any
	if err := ReadJSON(filepath.Join(t.TempDir(), "nope.json"), &v); !errdefs.IsNotFound(err) {
		t.Fatalf("err = %v", err)
	}

}

// Where the file system has FS_TOPDIR_FL (ext4), the dirs containers and
// snapshots are made in carry it; elsewhere Open works the same.
func TestOpenSpreadsContainerDirs(t *testing.T) {
	r := openRoot(t)
	for _, d := range []string{"tmp", "containers", "snapshots"} {
		fd, err := unix.Open(filepath.Join(r.Path, d), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		unix.Close(fd)
		if err != nil {
			t.Skipf("%s: no inode flags here: %v", d, err)
		}
		const extents = 0x80000 // FS_EXTENT_FL: ext4, which has FS_TOPDIR_FL
		if flags&fsTopdirFl == 0 && flags&extents != 0 {
			t.Errorf("%s: flags %#x without FS_TOPDIR_FL", d, flags)
		}
	}
	if _, err := Open(r.Path); err != nil {
		t.Fatalf("Open again: %v", err)
	}
}

func TestUpdateJSONLeavesSameContent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.json")
	v := map[string]int{"a": 1}
	for _, write := range []func(string, any, os.FileMode) error{UpdateJSON, UpdateJSONVolatile} {
		os.Remove(p)
		if err := write(p, v, 0o600); err != nil {
			t.Fatal(err)
		}
		var st1, st2 unix.Stat_t
		unix.Stat(p, &st1)
		if err := write(p, v, 0o600); err != nil {
			t.Fatal(err)
		}
		unix.Stat(p, &st2)
		if st1.Ino != st2.Ino || st1.Ctim != st2.Ctim {
			t.Fatalf("the same content was written again: %+v → %+v", st1.Ctim, st2.Ctim)
		}
		if err := write(p, map[string]int{"a": 2}, 0o600); err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		if err := ReadJSON(p, &got); err != nil || got["a"] != 2 {
			t.Fatalf("after a change: %v %v", got, err)
		}
		b, _ := os.ReadFile(p)
		want, _ := json.MarshalIndent(map[string]int{"a": 2}, "", "  ")
		if string(b) != string(want)+"\n" {
			t.Fatalf("format %q", b)
		}
	}
}

// Readers never see a volatile write half done, however fast the writes
// come: writeSwap rewrites the inode that held the version before last,
// which a slow reader may still be reading.
func TestReadFileSeesWholeVersions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "records.json")
	versions := [][]byte{[]byte(strings.Repeat("a", 64<<10)), []byte(strings.Repeat("b", 3)), []byte(strings.Repeat("c", 9000))}
	if err := WriteFileVolatile(p, versions[0], 0o644); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := WriteFileVolatile(p, versions[i%len(versions)], 0o644); err != nil {
				done <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(300 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		b, err := ReadFile(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		ok := false
		for _, v := range versions {
			ok = ok || string(b) == string(v)
		}
		if !ok {
			t.Fatalf("read %d: %d bytes that are no version (%.10q…)", n, len(b), b)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
