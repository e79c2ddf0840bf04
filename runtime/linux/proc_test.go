package linux

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestProcIdentity: a Proc is alive while its process runs, not once it
// is a zombie or reaped, and a reused pid with another start time is not
// the same process.
func TestProcIdentity(t *testing.T) {
	self := SelfProc()
	if !self.Alive() || self.Start == 0 {
		t.Fatalf("self %+v not alive", self)
	}
	if (Proc{Pid: self.Pid, Start: self.Start + 1}).Alive() {
		t.Error("another start time counts as the same process")
	}
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	p, err := ProcOf(cmd.Process.Pid)
	if err != nil || !p.Alive() {
		t.Fatalf("child %+v: %v", p, err)
	}
	if err := p.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !p.WaitGone(context.Background(), 5*time.Second) || time.Since(start) > 2*time.Second {
		t.Fatalf("WaitGone after SIGKILL took %v", time.Since(start))
	}
	if p.Alive() {
		t.Error("a zombie counts as alive")
	}
	if z, err := ProcOf(p.Pid); err != nil || z.Start != p.Start {
		t.Errorf("ProcOf a zombie: %+v %v", z, err)
	}
	cmd.Wait()
	if err := p.Signal(unix.SIGTERM); !errors.Is(err, unix.ESRCH) {
		t.Errorf("signal to a reaped process: %v", err)
	}
	if !p.WaitGone(context.Background(), time.Second) {
		t.Error("WaitGone of a reaped process")
	}
}
