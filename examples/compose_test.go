package examples

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

type psEntry struct {
	ID, Name, Service, State string
	ExitCode                 int
}

func psAll(t *testing.T, run func(args ...string) testutil.Result) map[string]psEntry {
	t.Helper()
	out := must(t, run("ps", "-a", "--format", "json"), "ps")
	got := map[string]psEntry{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var e psEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("ps json %q: %v", l, err)
		}
		got[e.Name] = e
	}
	return got
}

func startedAt(t *testing.T, r *testutil.Root, name string) string {
	t.Helper()
	return strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.State.StartedAt}}", name))
}

const threeServices = `
services:
  db:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    environment: {LEVEL: "1"}
  web:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    depends_on:
      db: {condition: service_started, restart: true}
  other:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
`

// TestComposeUpMustConvergeAndExplain: a second up -d touches nothing;
// changing db's environment recreates db alone (saying why) and restarts
// web, which declares restart: true on it; other is left alone.
func TestComposeUpMustConvergeAndExplain(t *testing.T) {
	r := testutil.NewRoot(t)
	run, dir := project(t, r, "conv", map[string]string{"compose.yaml": threeServices})
	must(t, run("up", "-d"), "up")
	before := psAll(t, run)
	starts := map[string]string{}
	for n := range before {
		starts[n] = startedAt(t, r, n)
	}
	if res := run("up", "-d", "--dry-run"); strings.TrimSpace(res.Stdout) != "(nothing to do)" {
		t.Errorf("second up plans:\n%s", res.Stdout)
	}
	must(t, run("up", "-d"), "second up")
	for n, e := range psAll(t, run) {
		if e.ID != before[n].ID || startedAt(t, r, n) != starts[n] {
			t.Errorf("second up touched %s", n)
		}
	}
	os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(strings.Replace(threeServices, `LEVEL: "1"`, `LEVEL: "2"`, 1)), 0o644)
	res := run("up", "-d")
	must(t, res, "up after the change")
	if !strings.Contains(res.Stderr, "conv-db-1: config hash changed: environment") || !strings.Contains(res.Stderr, "conv-web-1: dependency db recreated") {
		t.Errorf("up does not explain itself:\n%s", res.Stderr)
	}
	after := psAll(t, run)
	if after["conv-db-1"].ID == before["conv-db-1"].ID {
		t.Error("db was not recreated")
	}
	if after["conv-web-1"].ID != before["conv-web-1"].ID || startedAt(t, r, "conv-web-1") == starts["conv-web-1"] {
		t.Error("web was not restarted in place")
	}
	if after["conv-other-1"].ID != before["conv-other-1"].ID || startedAt(t, r, "conv-other-1") != starts["conv-other-1"] {
		t.Error("other was touched")
	}
	if len(after) != 3 {
		t.Errorf("containers after the change: %v", after)
	}
	if res := run("logs", "nosuch"); res.Code == 0 || !strings.Contains(res.Stderr, "nosuch") || !strings.Contains(res.Stderr, "db, other, web") {
		t.Errorf("an unknown service: exit %d: %s", res.Code, res.Stderr)
	}
}

// TestComposeScaleMustKeepTheFirstReplica: scale worker=3 then =1 keeps
// worker-1, the same container.
func TestComposeScaleMustKeepTheFirstReplica(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "sc", map[string]string{"compose.yaml": `
services:
  worker:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
`})
	must(t, run("up", "-d"), "up")
	first := psAll(t, run)["sc-worker-1"].ID
	must(t, run("scale", "worker=3"), "scale 3")
	if n := len(psAll(t, run)); n != 3 {
		t.Errorf("after scale 3: %d containers", n)
	}
	must(t, run("scale", "worker=1"), "scale 1")
	got := psAll(t, run)
	if len(got) != 1 || got["sc-worker-1"].ID != first {
		t.Errorf("after scale 1: %v (worker-1 was %s)", got, first)
	}
}

// TestComposeWaitMustUnderstandOneShots: a migration that exits 0 counts
// as done for --wait; one exiting 1 fails it, naming the service.
func TestComposeWaitMustUnderstandOneShots(t *testing.T) {
	r := testutil.NewRoot(t)
	yaml := func(code string) string {
		return `
services:
  migrate:
    image: busybox
    command: ["sh", "-c", "sleep 0.3; exit ` + code + `"]
  web:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    depends_on:
      migrate: {condition: service_completed_successfully}
`
	}
	run, _ := project(t, r, "waitok", map[string]string{"compose.yaml": yaml("0")})
	if res := run("up", "-d", "--wait", "--wait-timeout", "20"); res.Code != 0 {
		t.Errorf("--wait with a migration exiting 0: exit %d: %s", res.Code, res.Stderr)
	}
	if ps := psAll(t, run); ps["waitok-web-1"].State != "running" || ps["waitok-migrate-1"].State != "exited" {
		t.Errorf("after --wait: %v", ps)
	}
	bad, _ := project(t, r, "waitbad", map[string]string{"compose.yaml": yaml("1")})
	res := bad("up", "-d", "--wait", "--wait-timeout", "20")
	if res.Code == 0 || !strings.Contains(res.Stderr, "migrate") {
		t.Errorf("--wait with a migration exiting 1: exit %d: %s", res.Code, res.Stderr)
	}
	if ps := psAll(t, bad); ps["waitbad-web-1"].State == "running" {
		t.Errorf("web started although migrate failed: %v", ps)
	}
}

// TestComposeLogsFollowMustSurviveRestarts: logs -f keeps showing a
// container's lines after it is restarted during the follow, and lines
// of a replica scaling adds.
func TestComposeLogsFollowMustSurviveRestarts(t *testing.T) {
	r := testutil.NewRoot(t)
	run, dir := project(t, r, "lf", map[string]string{"compose.yaml": `
services:
  ticker:
    image: busybox
    command: ["sh", "-c", "echo boot-$$(hostname); while true; do echo tick; sleep 0.2; done"]
    stop_signal: SIGKILL
`})
	must(t, run("up", "-d"), "up")
	cmd := exec.Command(r.Bin, "--project-directory", dir, "-p", "lf", "logs", "-f")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
	var out bytes.Buffer
	cmd.Stdout = &syncWriter{w: &out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGINT); cmd.Wait() }()
	time.Sleep(700 * time.Millisecond)
	must(t, run("restart", "-t", "0", "ticker"), "restart")
	must(t, run("scale", "ticker=2"), "scale 2")
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		s := out.String()
		if strings.Count(s, "lf-ticker-1 | boot-") >= 2 && strings.Contains(s, "lf-ticker-2 | boot-") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("logs -f lost the restarted or the added container:\n%s", out.String())
}

type syncWriter struct {
	w interface{ Write([]byte) (int, error) }
}

var syncMu = make(chan struct{}, 1)

func (s *syncWriter) Write(b []byte) (int, error) {
	syncMu <- struct{}{}
	defer func() { <-syncMu }()
	return s.w.Write(b)
}

// TestComposeCtrlCMustStopWithinGrace: Ctrl-C on an attached up stops
// the services within their stop_grace_period plus a second.
func TestComposeCtrlCMustStopWithinGrace(t *testing.T) {
	r := testutil.NewRoot(t)
	_, dir := project(t, r, "cc", map[string]string{"compose.yaml": `
services:
  stubborn:
    image: busybox
    command: ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"]
    stop_grace_period: 2s
  polite:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"]
`})
	cmd := exec.Command(r.Bin, "--project-directory", dir, "-p", "cc", "up")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &syncWriter{w: &out}, &syncWriter{w: &out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && strings.Count(out.String(), "| ready") < 2; {
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(6 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("attached up did not end within 6 s of Ctrl-C:\n%s", out.String())
	}
	if d := time.Since(start); d > 3*time.Second+500*time.Millisecond {
		t.Errorf("Ctrl-C took %v (grace 2 s + 1 s)", d)
	}
	if got := r.Must("container", "ls", "-q"); strings.TrimSpace(got) != "" {
		t.Errorf("containers still running after Ctrl-C: %s", got)
	}
}

// TestComposeKilledUpMustConverge: kill -9 of berth during up -d of five
// services, then up -d again: exactly five containers, all running.
func TestComposeKilledUpMustConverge(t *testing.T) {
	r := testutil.NewRoot(t)
	var b strings.Builder
	b.WriteString("services:\n")
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		b.WriteString("  " + s + ": {image: busybox, command: [\"sleep\", \"300\"], stop_signal: SIGKILL}\n")
	}
	run, dir := project(t, r, "kill9", map[string]string{"compose.yaml": b.String()})
	for _, after := range []time.Duration{5 * time.Millisecond, 25 * time.Millisecond, 60 * time.Millisecond} {
		cmd := exec.Command(r.Bin, "--project-directory", dir, "-p", "kill9", "up", "-d")
		cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after)
		cmd.Process.Kill()
		cmd.Wait()
		must(t, run("up", "-d"), "up after kill -9")
		ps := psAll(t, run)
		running := 0
		for _, e := range ps {
			if e.State == "running" {
				running++
			}
		}
		if len(ps) != 5 || running != 5 {
			t.Errorf("killed after %v, then up: %d containers, %d running: %v", after, len(ps), running, ps)
		}
		must(t, run("down", "-t", "0"), "down")
	}
}
