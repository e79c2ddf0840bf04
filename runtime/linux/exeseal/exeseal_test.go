package exeseal

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv("EXESEAL_CHILD") == "1" {
		os.Exit(42) // the sealed copy ran
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
