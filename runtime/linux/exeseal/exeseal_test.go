package exeseal

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv("EXESEAL_CHILD") == "1" {
		os.Exit(42) // the sealed copy ran
	}
	if os.Getenv("EXESEAL_CHILD") == "wait" {
		os.Stdin.Read(make([]byte, 1))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// exeseal.TestSeals (SECURITY.md): the copy carries all four seals, cannot
// be written, and runs.
func TestSeals(t *testing.T) {
	f, err := Copy()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	if seals&Seals != Seals {
		t.Fatalf("seals %#x, want at least %#x", seals, Seals)
	}
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, unix.EPERM) {
		t.Fatalf("write to the sealed copy: %v, want EPERM", err)
	}
	if err := f.Truncate(0); !errors.Is(err, unix.EPERM) {
		t.Fatalf("truncate: %v, want EPERM", err)
	}
	flags, _ := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if flags&unix.FD_CLOEXEC == 0 {
		t.Fatal("memfd is not close-on-exec")
	}
	cmd := exec.Command(Path(f), "-test.run=^$")
	cmd.Env = append(os.Environ(), "EXESEAL_CHILD=1")
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 42 {
		t.Fatalf("running the sealed copy: %v", err)
	}
}

// TestPackedRolesAreWhatIsSealed: for a packed binary Copy seals exactly
// the appended roles program; for a plain one, the whole file.
func TestPackedRolesAreWhatIsSealed(t *testing.T) {
	dir := t.TempDir()
	cli, roles, out := dir+"/cli", dir+"/roles", dir+"/packed"
	os.WriteFile(cli, []byte("the CLI part"), 0o755)
	os.WriteFile(roles, []byte("#!/bin/sh\nexit 7\n"), 0o755)
	if err := Pack(cli, roles, out); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{out: "#!/bin/sh\nexit 7\n", cli: "the CLI part"} {
		f, err := CopyFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(Path(f))
		f.Close()
		if string(got) != want {
			t.Errorf("%s: sealed %q, want %q", path, got, want)
		}
	}
	// The sealed roles program is what runs.
	f, err := CopyFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("/bin/sh", "/proc/self/fd/3") // a script: the shell reads it by path
	cmd.ExtraFiles = []*os.File{f}
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("running the sealed roles: %v", err)
	}
	os.WriteFile(dir+"/bad", append([]byte("x"), []byte("ffffffffffffffff"+trailerMagic)...), 0o755)
	if _, err := CopyFile(dir + "/bad"); err == nil {
		t.Error("a damaged trailer was accepted")
	}
}

// TestSharedCopyIsReused: a second copy of the same program reuses the
// sealed memfd a running process executes (same inode), found only under
// its identity name and size.
func TestSharedCopyIsReused(t *testing.T) {
	f1, err := CopyFileShared("/proc/self/exe", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	cmd := exec.Command(Path(f1), "-test.run=^$")
	cmd.Env = append(os.Environ(), "EXESEAL_CHILD=wait")
	in, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	var asked string
	f2, err := CopyFileShared("/proc/self/exe", func(name string, size int64) *os.File {
		asked = name
		if OpenShared(cmd.Process.Pid, name+"x", size) != nil || OpenShared(cmd.Process.Pid, name, size+1) != nil {
			t.Error("a wrong name or size matched")
		}
		return OpenShared(cmd.Process.Pid, name, size)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	var s1, s2 unix.Stat_t
	unix.Fstat(int(f1.Fd()), &s1)
	unix.Fstat(int(f2.Fd()), &s2)
	if s1.Ino != s2.Ino || !strings.HasPrefix(asked, "berth-roles-") {
		t.Errorf("not shared: inodes %d %d, name %q", s1.Ino, s2.Ino, asked)
	}
	if seals, _ := unix.FcntlInt(f2.Fd(), unix.F_GET_SEALS, 0); seals&Seals != Seals {
		t.Errorf("shared copy seals %#x", seals)
	}
}

// TestSameProgram: a process running the sealed copy of a binary is the
// same program as that binary, and as the copy itself; not as another
// build (here: the same bytes at another path).
func TestSameProgram(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := CopyFile(self)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(Path(f), "-test.run=^$")
	cmd.Env = append(os.Environ(), "EXESEAL_CHILD=wait")
	in, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	pid := cmd.Process.Pid
	if !SameProgram(pid, self) {
		t.Error("the sealed copy of the binary is not the same program as the binary")
	}
	if !SameProgram(pid, Path(f)) {
		t.Error("the sealed copy is not the same program as itself")
	}
	other := t.TempDir() + "/other"
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if SameProgram(pid, other) {
		t.Error("another build counts as the same program")
	}
}
