package examples

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// statsLine is the part of a `stats --format json` line the tests read:
// docker's string fields and berth's numbers.
type statsLine struct {
	ID, Name, Container, CPUPerc, MemUsage, PIDs string
	CPUPercent                                   float64
	MemUsageBytes, MemLimitBytes                 uint64
	MemPercent                                   float64
	BlockWriteBytes                              uint64
	PidsCurrent                                  uint64
}

// counterScript counts as fast as it can into /tmp/n (rewritten in place
// with 1<>, so a reader never catches it truncated) after writing 2 MiB
// with O_DIRECT (block I/O); TERM ends it cleanly.
const counterScript = `trap 'exit 0' TERM; dd if=/dev/zero of=/tmp/blk bs=1M count=2 oflag=direct 2>/dev/null; i=0; while :; do i=$((i+1)); echo $i 1<> /tmp/n; done`

// psRow returns the ls --format json line of the container named name.
func psRow(t *testing.T, r *testutil.Root, name string) psLine {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(r.Must("container", "ls", "-a", "--format", "json")), "\n") {
		var row psLine
		if json.Unmarshal([]byte(line), &row) == nil && row.Names == name {
			return row
		}
	}
	t.Fatalf("container %s is not listed", name)
	return psLine{}
}

// statsOf runs stats --no-stream --format json for the containers and
// returns its lines by name.
func statsOf(t *testing.T, r *testutil.Root, names ...string) map[string]statsLine {
	t.Helper()
	out := r.Must(append([]string{"container", "stats", "--no-stream", "--format", "json"}, names...)...)
	got := map[string]statsLine{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var s statsLine
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("stats --format json printed %q: %v", line, err)
		}
		got[s.Name] = s
	}
	return got
}

// TestContainerPauseMustFreezeAndUnpauseResume: pause stops a counting
// container where it is (status paused), a second pause and an unpause of
// a running container are conflicts, unpause lets it count again, and a
// paused container can be removed (rm -f) or stopped (TERM delivered).
func TestContainerPauseMustFreezeAndUnpauseResume(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("container", "run", "-d", "--name", "c", "busybox", "sh", "-c", counterScript)
	defer r.Run("container", "rm", "-f", "c")
	pid := psRow(t, r, "c").Pid
	if pid == 0 {
		t.Fatal("ls reports no pid for the running container")
	}
	counter := func() string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/root/tmp/n", pid))
		return strings.TrimSpace(string(b))
	}
	advancing := func() bool {
		a := counter()
		time.Sleep(100 * time.Millisecond)
		return a != "" && counter() != a
	}
	testutil.Eventually(t, advancing, 10*time.Second, "the counter to run")

	if out := r.Must("container", "pause", "c"); out != "c\n" {
		t.Errorf("pause printed %q, want the name", out)
	}
	a := counter()
	time.Sleep(300 * time.Millisecond)
	if b := counter(); a == "" || a != b {
		t.Errorf("the counter moved while paused: %q → %q", a, b)
	}
	if row := psRow(t, r, "c"); row.State != "paused" || !strings.HasSuffix(row.Status, "(Paused)") {
		t.Errorf("ls of a paused container: state %q, status %q; want paused, \"Up … (Paused)\"", row.State, row.Status)
	}
	if got := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.State.Paused}}", "c")); got != "paused true true" {
		t.Errorf("inspect of a paused container: %q, want \"paused true true\"", got)
	}
	if res := r.Run("container", "pause", "c"); res.Code != 1 || !strings.Contains(res.Stderr, "container c is already paused") {
		t.Errorf("pause of a paused container: exit %d, %q", res.Code, res.Stderr)
	}
	// Paused, it uses no CPU; its processes are still there.
	if s := statsOf(t, r, "c")["c"]; s.CPUPercent > 5 || s.PidsCurrent < 1 {
		t.Errorf("stats of a paused container: %+v; want ~0%% CPU and its processes", s)
	}

	if out := r.Must("container", "unpause", "c"); out != "c\n" {
		t.Errorf("unpause printed %q, want the name", out)
	}
	testutil.Eventually(t, advancing, 5*time.Second, "the counter to run again after unpause")
	if row := psRow(t, r, "c"); row.State != "running" {
		t.Errorf("ls after unpause: state %q", row.State)
	}
	if res := r.Run("container", "unpause", "c"); res.Code != 1 || !strings.Contains(res.Stderr, "container c is not paused") {
		t.Errorf("unpause of a running container: exit %d, %q", res.Code, res.Stderr)
	}

	// Not running: both refuse.
	r.Must("container", "create", "--name", "idle", "busybox", "true")
	defer r.Run("container", "rm", "-f", "idle")
	for _, cmd := range []string{"pause", "unpause"} {
		if res := r.Run("container", cmd, "idle"); res.Code != 1 || !strings.Contains(res.Stderr, "container idle is not running") && !strings.Contains(res.Stderr, "container idle is not paused") {
			t.Errorf("%s of a created container: exit %d, %q", cmd, res.Code, res.Stderr)
		}
	}
	if res := r.Run("container", "pause", "nosuch"); res.Code != 1 || !strings.Contains(res.Stderr, "no such container: nosuch") {
		t.Errorf("pause of a missing container: exit %d, %q", res.Code, res.Stderr)
	}

	// A paused container is removed at once with -f (its frozen processes
	// are thawed to die), and refused without.
	r.Must("container", "pause", "c")
	if res := r.Run("container", "rm", "c"); res.Code != 1 || !strings.Contains(res.Stderr, "container c is paused") {
		t.Errorf("rm of a paused container without -f: exit %d, %q", res.Code, res.Stderr)
	}
	res := r.Run("container", "rm", "-f", "c")
	if res.Code != 0 || res.Took > 5*time.Second {
		t.Errorf("rm -f of a paused container: exit %d after %v: %s", res.Code, res.Took, res.Stderr)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("the paused container's process %d survived rm -f", pid)
	}

	// Stop delivers TERM to a paused container (its trap exits 0 at once)
	// instead of waiting out the timeout on frozen processes.
	r.Must("container", "run", "-d", "--name", "s", "busybox", "sh", "-c", counterScript)
	defer r.Run("container", "rm", "-f", "s")
	r.Must("container", "pause", "s")
	res = r.Run("container", "stop", "-t", "10", "s")
	if res.Code != 0 || res.Took > 5*time.Second {
		t.Errorf("stop of a paused container: exit %d after %v: %s", res.Code, res.Took, res.Stderr)
	}
	if got := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "s")); got != "exited 0" {
		t.Errorf("after stop of a paused container: %q, want \"exited 0\" (TERM handled)", got)
	}
	// kill (SIGKILL) of a paused container ends it at once.
	r.Must("container", "start", "s")
	r.Must("container", "pause", "s")
	r.Must("container", "kill", "s")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wait := exec.CommandContext(ctx, r.Bin, "container", "wait", "s")
	wait.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
	begin := time.Now()
	out, err := wait.Output()
	if strings.TrimSpace(string(out)) != "137" || time.Since(begin) > 5*time.Second {
		t.Errorf("wait after kill of a paused container: %q, %v after %v; want 137 at once", out, err, time.Since(begin))
	}
}

// TestContainerStatsMustReportUsage: stats --no-stream gives sane figures
// (a busy CPU, memory in use under the -m limit, its processes, the block
// I/O it did), lists every running container without names, prints
// docker's table, and without --no-stream redraws every second until
// interrupted.
func TestContainerStatsMustReportUsage(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("container", "run", "-d", "--name", "busy", "-m", "64m", "busybox", "sh", "-c", counterScript)
	defer r.Run("container", "rm", "-f", "busy")
	r.Must("container", "run", "-d", "--name", "sleepy", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "sleepy")
	pid := psRow(t, r, "busy").Pid
	testutil.Eventually(t, func() bool { _, err := os.Stat(fmt.Sprintf("/proc/%d/root/tmp/n", pid)); return err == nil }, 10*time.Second, "the counter to start")

	s := statsOf(t, r, "busy")["busy"]
	t.Logf("busy: %+v", s)
	if s.Name != "busy" || s.Container != "busy" || len(s.ID) != 12 {
		t.Errorf("names: %+v", s)
	}
	if s.PidsCurrent < 1 || s.PIDs == "" {
		t.Errorf("PIDs %d (%q), want at least the shell", s.PidsCurrent, s.PIDs)
	}
	if s.MemLimitBytes != 64<<20 || !strings.HasSuffix(s.MemUsage, " / 64MiB") {
		t.Errorf("memory limit %d (%q), want -m 64m = %d", s.MemLimitBytes, s.MemUsage, 64<<20)
	}
	if s.MemUsageBytes == 0 || s.MemUsageBytes > s.MemLimitBytes || s.MemPercent <= 0 || s.MemPercent > 100 {
		t.Errorf("memory usage %d (%.2f%%) of %d", s.MemUsageBytes, s.MemPercent, s.MemLimitBytes)
	}
	// One busy loop: about one CPU (100%), much less on a loaded host; a
	// sample over 100 ms may be a scheduler tick (4 ms) off.
	if s.CPUPercent < 1 || s.CPUPercent > 110 || !strings.HasSuffix(s.CPUPerc, "%") {
		t.Errorf("CPU %.2f%% (%q) for a busy loop", s.CPUPercent, s.CPUPerc)
	}
	if s.BlockWriteBytes < 2<<20 {
		t.Errorf("block writes %d after a 2 MiB O_DIRECT dd", s.BlockWriteBytes)
	}

	// No names: every running container.
	all := statsOf(t, r)
	if _, ok := all["busy"]; !ok || len(all) != 2 {
		t.Errorf("stats without names: %v, want busy and sleepy", all)
	}
	if sl := all["sleepy"]; sl.CPUPercent > 5 || sl.MemLimitBytes <= 64<<20 {
		t.Errorf("sleepy: %+v; want no CPU and the host's memory as its limit", sl)
	}

	// The table, with docker's columns.
	table := r.Must("container", "stats", "--no-stream", "busy")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID") {
		t.Fatalf("table:\n%s", table)
	}
	for _, col := range []string{"NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %q", lines[0], col)
		}
	}
	if f := strings.Fields(lines[1]); len(f) < 2 || f[1] != "busy" || !strings.Contains(lines[1], "/ 64MiB") {
		t.Errorf("row %q", lines[1])
	}
	if res := r.Run("container", "stats", "--no-stream", "--format", "yaml"); res.Code != 2 {
		t.Errorf("--format yaml: exit %d", res.Code)
	}

	// Streaming to a pipe: one block per second until SIGINT, exit 0.
	cmd := exec.Command(r.Bin, "container", "stats", "busy")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if n := strings.Count(out.String(), "CONTAINER ID"); err != nil || n < 2 || n > 4 {
		t.Errorf("stats streamed %d blocks in 2.5 s (%v, %s):\n%s", n, err, errb.String(), out.String())
	}
	if strings.Contains(out.String(), "\033[") {
		t.Error("stats cleared the screen of a pipe")
	}
}
