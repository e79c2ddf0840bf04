package failpoint

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

func TestParseAndHit(t *testing.T) {
	t.Setenv("BERTH_FAILPOINT", "error:a, crash:b,exit-after:start:container:web-1,bogus,error:")
	Reset()
	if err := Hit("a"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Hit(a) = %v", err)
	}
	if err := Hit("c"); err != nil {
		t.Fatalf("Hit(c) = %v", err)
	}
	var code int
	exitFn = func(c int) { code = c }
	defer func() { exitFn = func(c int) { os.Exit(c) } }()
	Hit("b")
	if code != CrashCode {
		t.Fatalf("crash:b exit code %d", code)
	}
	code = 0
	AfterAction("start", "container:web-1")
	if code != CrashCode {
		t.Fatal("exit-after not honoured")
	}
	t.Setenv("BERTH_FAILPOINT", "")
	Reset()
}

// A crash really ends the process with CrashCode, skipping deferred work.
func TestCrashExitsProcess(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		defer os.WriteFile(os.Getenv("MARKER"), nil, 0o644) // must not run
		Hit("boom")
		return
	}
	marker := t.TempDir() + "/deferred-ran"
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashExitsProcess$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", "BERTH_FAILPOINT=crash:boom", "MARKER="+marker)
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != CrashCode {
		t.Fatalf("child: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("deferred work ran after a crash")
	}
}
