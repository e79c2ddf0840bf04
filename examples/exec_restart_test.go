package examples

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// TestExecMustJoinTheContainer: exec runs with the container's
// capabilities, seccomp filter, no_new_privs and cgroup, in its PID
// namespace; passes the exit code through; -u, -w, -e and -i work; exec
// into a stopped container fails clearly.
func TestExecMustJoinTheContainer(t *testing.T) {
	r := testutil.NewRoot(t)
	id := strings.TrimSpace(r.Must("container", "run", "-d", "--name", "x", "-e", "FROM_RUN=1", "busybox", "sleep", "1000"))
	defer r.Run("container", "rm", "-f", "x")
	ctr := r.Must("container", "exec", "x", "cat", "/proc/1/status", "/proc/1/cgroup")
	mine := r.Must("container", "exec", "x", "cat", "/proc/self/status", "/proc/self/cgroup")
	for _, key := range []string{"CapEff", "CapBnd", "Seccomp", "NoNewPrivs"} {
		if a, b := statusField(ctr, key), statusField(mine, key); a != b || a == "" {
			t.Errorf("%s: container %q, exec %q", key, a, b)
		}
	}
	if !strings.Contains(mine, "/"+id) || !strings.Contains(mine, "pids:") {
		t.Errorf("exec is not in the container's cgroup:\n%s", mine)
	}
	if got := strings.TrimSpace(r.Must("container", "exec", "x", "sh", "-c", "echo $$")); got == "1" || got == "" {
		t.Errorf("exec pid %q: not in the container's PID namespace (or is its init)", got)
	}
	if res := r.Run("container", "exec", "x", "sh", "-c", "exit 42"); res.Code != 42 {
		t.Errorf("exit code %d, want 42", res.Code)
	}
	if got := r.Must("container", "exec", "-u", "nobody", "-w", "/tmp", "-e", "A=b", "x", "sh", "-c", "id -u; pwd; echo $A $FROM_RUN"); got != "65534\n/tmp\nb 1\n" {
		t.Errorf("-u -w -e: %q", got)
	}
	if res := r.Run("container", "exec", "x", "no-such-cmd"); res.Code != 127 {
		t.Errorf("missing command: exit %d %s", res.Code, res.Stderr)
	}
	// -i is binary-safe: 1 MiB of random bytes round-trips.
	data := make([]byte, 1<<20)
	rand.Read(data)
	cmd := exec.Command(r.Bin, "container", "exec", "-i", "x", "cat")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Errorf("1 MiB through exec -i: %d bytes back, equal %v, %v", len(out), bytes.Equal(out, data), err)
	}
	if got := strings.TrimSpace(r.Must("container", "exec", "-t", "x", "tty")); got != "/dev/pts/0" {
		t.Errorf("exec -t: tty is %q", got)
	}
	r.Must("container", "stop", "-t", "0", "x")
	if res := r.Run("container", "exec", "x", "true"); res.Code == 0 || !strings.Contains(res.Stderr, "is not running") {
		t.Errorf("exec into a stopped container: exit %d %s", res.Code, res.Stderr)
	}
}

// TestRestartPolicyMustFollowDocker: on-failure:3 runs a failing command
// exactly 4 times with growing gaps and records 3 restarts; always keeps
// restarting until stop, after which nothing restarts it.
func TestRestartPolicyMustFollowDocker(t *testing.T) {
	r := testutil.NewRoot(t)
	id := strings.TrimSpace(r.Must("container", "run", "-d", "--name", "flaky", "--restart", "on-failure:3", "busybox", "sh", "-c", "echo run; exit 1"))
	defer r.Run("container", "rm", "-f", "flaky")
	testutil.Eventually(t, func() bool {
		return strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.State.Status}}", "flaky")) == "exited"
	}, 20*time.Second, "on-failure:3 to give up")
	if got := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.RestartCount}} {{.State.ExitCode}}", "flaky")); got != "3 1" {
		t.Errorf("restart count and exit: %q, want 3 1", got)
	}
	times := logTimes(t, r.Path, id)
	if len(times) != 4 {
		t.Fatalf("%d runs, want 4", len(times))
	}
	for i := 2; i < len(times); i++ {
		if g1, g2 := times[i-1].Sub(times[i-2]), times[i].Sub(times[i-1]); g2 <= g1 {
			t.Errorf("backoff gaps do not grow: %v then %v", g1, g2)
		}
	}
	r.Must("container", "run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "echo run; sleep 0.2; exit 0")
	defer r.Run("container", "rm", "-f", "always")
	testutil.Eventually(t, func() bool {
		var n int
		json.Unmarshal([]byte(r.Must("container", "inspect", "-f", "{{.RestartCount}}", "always")), &n)
		return n >= 2
	}, 20*time.Second, "always to restart twice")
	r.Must("container", "stop", "-t", "1", "always")
	before := r.Must("container", "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "always")
	time.Sleep(time.Second)
	if after := r.Must("container", "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "always"); after != before || !strings.Contains(after, "exited") {
		t.Errorf("after stop: %q then %q", before, after)
	}
}

// TestRestartAlwaysMustSurviveItsShim: a restart: always container whose
// shim and process are killed is started again by the next berth command.
func TestRestartAlwaysMustSurviveItsShim(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("container", "run", "-d", "--name", "keeper", "--restart", "always", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "keeper")
	var row psLine
	json.Unmarshal([]byte(r.Must("container", "ls", "--format", "json")), &row)
	for _, pid := range processes(r.Path) {
		syscallKill(pid)
	}
	syscallKill(row.Pid)
	gone := func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err != nil || strings.Contains(string(b), ") Z ")
	}
	testutil.Eventually(t, func() bool { return len(processes(r.Path)) == 0 && gone(row.Pid) }, 5*time.Second, "the shim and the process to die")
	res := r.Run("container", "ls", "--format", "json")
	if !strings.Contains(res.Stderr, "started again") {
		t.Errorf("the next command did not say it revived the container: %q", res.Stderr)
	}
	json.Unmarshal([]byte(res.Stdout), &row)
	if row.State != "running" {
		t.Errorf("after revival: %+v", row)
	}
}

func logTimes(t *testing.T, root, id string) []time.Time {
	b, err := os.ReadFile(filepath.Join(root, "containers", id, "log", "json.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct{ Time time.Time }
		if json.Unmarshal([]byte(line), &e) == nil {
			out = append(out, e.Time)
		}
	}
	return out
}

// TestHealthcheckMustTrackTheProbe: CMD-SHELL "test -f /tmp/ok" goes
// starting → healthy once the file appears, unhealthy after the retries
// once it is removed; inspect keeps the last probes.
func TestHealthcheckMustTrackTheProbe(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("container", "run", "-d", "--name", "hc", "--health-cmd", "test -f /tmp/ok", "--health-interval", "100ms",
		"--health-retries", "3", "--health-start-period", "10s", "--health-start-interval", "100ms", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "hc")
	health := func() string {
		return strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.State.Health.Status}}", "hc"))
	}
	time.Sleep(400 * time.Millisecond) // failing probes inside the start period
	if h := health(); h != "starting" {
		t.Fatalf("inside the start period with failing probes: %s, want starting", h)
	}
	r.Must("container", "exec", "hc", "touch", "/tmp/ok")
	testutil.Eventually(t, func() bool { return health() == "healthy" }, 10*time.Second, "healthy")
	if st := r.Must("container", "ls"); !strings.Contains(st, "(healthy)") {
		t.Errorf("ps does not show the health: %s", st)
	}
	r.Must("container", "exec", "hc", "rm", "/tmp/ok")
	testutil.Eventually(t, func() bool { return health() == "unhealthy" }, 10*time.Second, "unhealthy")
	var h struct {
		FailingStreak int
		Log           []struct{ ExitCode int }
	}
	json.Unmarshal([]byte(r.Must("container", "inspect", "-f", "{{json .State.Health}}", "hc")), &h)
	if h.FailingStreak < 3 || len(h.Log) == 0 || len(h.Log) > 5 || h.Log[len(h.Log)-1].ExitCode != 1 {
		t.Errorf("health record: %+v", h)
	}
}

// TestContainerSignalsMustStartDefault: the container's processes start
// with no signal ignored (the shim's own dispositions must not leak into
// them), so a trap on INT runs when the container is sent SIGINT.
func TestContainerSignalsMustStartDefault(t *testing.T) {
	r := testutil.NewRoot(t)
	if got := strings.TrimSpace(r.Must("container", "run", "--rm", "busybox", "grep", "SigIgn", "/proc/self/status")); got != "SigIgn:\t0000000000000000" {
		t.Errorf("ignored signals in the container: %q", got)
	}
	t.Cleanup(func() { r.Run("container", "rm", "-f", "trap") })
	r.Must("container", "run", "-d", "--name", "trap", "busybox", "sh", "-c", `trap "echo got-int; exit 3" INT; echo ready; while true; do sleep 0.1; done`)
	testutil.Eventually(t, func() bool { return strings.Contains(r.Must("container", "logs", "trap"), "ready") }, 5*time.Second, "the trap to be set")
	r.Must("container", "kill", "-s", "INT", "trap")
	code := r.Run("container", "wait", "trap")
	if strings.TrimSpace(code.Stdout) != "3" || !strings.Contains(r.Must("container", "logs", "trap"), "got-int") {
		t.Errorf("SIGINT trap: wait %q, logs %q", code.Stdout, r.Must("container", "logs", "trap"))
	}
}
