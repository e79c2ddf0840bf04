package examples

import (
	"bytes"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// runWithin runs berth in a project with a deadline: an attached up that
// never returns fails the test instead of hanging it.
func runWithin(t *testing.T, r *testutil.Root, dir, name string, d time.Duration, args ...string) testutil.Result {
	t.Helper()
	cmd := exec.Command(r.Bin, append([]string{"--project-directory", dir, "-p", name}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "BERTH_ROOT=" + r.Path}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("berth %v did not return within %v\nstdout: %s\nstderr: %s", args, d, out.String(), errb.String())
	}
	res := testutil.Result{Stdout: out.String(), Stderr: errb.String(), Took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestComposeUpMustAbortOnContainerExit: with --abort-on-container-exit
// an attached up returns when a container exits, with its code, and the
// other service is stopped; --exit-code-from returns the named service's
// code instead; --abort-on-container-failure lets an exit 0 pass and
// aborts on the failure.
func TestComposeUpMustAbortOnContainerExit(t *testing.T) {
	r := testutil.NewRoot(t)
	run, dir := project(t, r, "abort", map[string]string{"compose.yaml": `
services:
  job:
    image: busybox
    command: ["sh", "-c", "echo job-ran; sleep 0.5; exit 3"]
  sleeper:
    image: busybox
    command: ["sh", "-c", "echo sleeping; exec sleep 300"]
    stop_signal: SIGKILL
`})
	res := runWithin(t, r, dir, "abort", 20*time.Second, "up", "--abort-on-container-exit")
	if res.Code != 3 || !regexp.MustCompile(`(?m)^abort-job-1     \| job-ran$`).MatchString(res.Stdout) || !strings.Contains(res.Stdout, "abort-job-1 exited with code 3") {
		t.Errorf("up --abort-on-container-exit: exit %d (want the job's 3)\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	if ps := psAll(t, run); ps["abort-sleeper-1"].State != "exited" || ps["abort-job-1"].ExitCode != 3 {
		t.Errorf("after the abort: %v", ps)
	}

	res = runWithin(t, r, dir, "abort", 20*time.Second, "up", "--exit-code-from", "sleeper")
	if res.Code != 137 {
		t.Errorf("up --exit-code-from sleeper: exit %d, want 137 (killed by the abort)\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	res = runWithin(t, r, dir, "abort", 20*time.Second, "up", "--exit-code-from", "job")
	if res.Code != 3 {
		t.Errorf("up --exit-code-from job: exit %d, want 3\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	if res := run("up", "-d", "--abort-on-container-exit"); res.Code != 2 || !strings.Contains(res.Stderr, "incompatible") {
		t.Errorf("up -d --abort-on-container-exit: exit %d: %s", res.Code, res.Stderr)
	}
	if res := run("up", "--exit-code-from", "nosuch"); res.Code == 0 || !strings.Contains(res.Stderr, "nosuch") {
		t.Errorf("--exit-code-from an unknown service: exit %d: %s", res.Code, res.Stderr)
	}

	run2, dir2 := project(t, r, "fail", map[string]string{"compose.yaml": `
services:
  ok:
    image: busybox
    command: ["sh", "-c", "exit 0"]
  bad:
    image: busybox
    command: ["sh", "-c", "sleep 1; exit 4"]
  sleeper:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
`})
	res = runWithin(t, r, dir2, "fail", 20*time.Second, "up", "--abort-on-container-failure")
	if res.Code != 4 || !strings.Contains(res.Stderr, "fail-bad-1 exited with code 4") || strings.Contains(res.Stderr, "fail-ok-1 exited") {
		t.Errorf("up --abort-on-container-failure: exit %d (want bad's 4)\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	if ps := psAll(t, run2); ps["fail-sleeper-1"].State != "exited" {
		t.Errorf("after the failure: %v", ps)
	}
}

// TestComposeUpAttachMustSelectTheLogs: --attach shows only that
// service's lines, --no-attach leaves one out, --no-log-prefix prints
// the bare lines; the up ends when every container has.
func TestComposeUpAttachMustSelectTheLogs(t *testing.T) {
	r := testutil.NewRoot(t)
	_, dir := project(t, r, "att", map[string]string{"compose.yaml": `
services:
  a:
    image: busybox
    command: ["sh", "-c", "echo from-a; sleep 0.3"]
  b:
    image: busybox
    command: ["sh", "-c", "echo from-b; sleep 0.3"]
`})
	res := runWithin(t, r, dir, "att", 20*time.Second, "up", "--attach", "a")
	if res.Code != 0 || !strings.Contains(res.Stdout, "att-a-1 | from-a") || strings.Contains(res.Stdout, "from-b") {
		t.Errorf("up --attach a: exit %d\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	res = runWithin(t, r, dir, "att", 20*time.Second, "up", "--no-attach", "a", "--no-log-prefix")
	if res.Code != 0 || !regexp.MustCompile(`(?m)^from-b$`).MatchString(res.Stdout) || strings.Contains(res.Stdout, "from-a") || strings.Contains(res.Stdout, "| ") {
		t.Errorf("up --no-attach a --no-log-prefix: exit %d\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	res = runWithin(t, r, dir, "att", 20*time.Second, "up", "--timestamps", "a")
	if res.Code != 0 || !regexp.MustCompile(`(?m)^att-a-1 \| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z from-a$`).MatchString(res.Stdout) {
		t.Errorf("up --timestamps a: exit %d\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
}

// TestComposeUpImageFlagsMustNameWhatFails: a missing image under --pull
// never, or one the registry cannot give, fails naming the service and
// the image, and creates nothing; --build with --no-build is a usage
// error. (The registry is a closed loopback port: no traffic leaves.)
func TestComposeUpImageFlagsMustNameWhatFails(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "imgf", map[string]string{"compose.yaml": `
services:
  app:
    build: .
  ghost:
    image: 127.0.0.1:1/nosuch:1
`, "Dockerfile": "FROM busybox\n"})
	if res := run("up", "-d", "--pull", "never", "ghost"); res.Code == 0 || !strings.Contains(res.Stderr, "nosuch:1") || !strings.Contains(res.Stderr, "--pull never") {
		t.Errorf("up --pull never: exit %d: %s", res.Code, res.Stderr)
	}
	if res := run("up", "-d", "ghost"); res.Code == 0 || !strings.Contains(res.Stderr, "service ghost") || !strings.Contains(res.Stderr, "127.0.0.1:1/nosuch:1") {
		t.Errorf("up of an image the registry cannot give: exit %d: %s", res.Code, res.Stderr)
	}
	if res := run("up", "-d", "--build", "--no-build"); res.Code != 2 {
		t.Errorf("up --build --no-build: exit %d: %s", res.Code, res.Stderr)
	}
	if ps := psAll(t, run); len(ps) != 0 {
		t.Errorf("refused ups created containers: %v", ps)
	}
}

// TestComposeDownRmiMustRemoveTheImages: down --rmi local leaves a named
// image; down --rmi all removes it (another name of the same image
// stays); an image a container outside the project uses is kept with a
// warning.
func TestComposeDownRmiMustRemoveTheImages(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("image", "tag", "busybox:latest", "rmi-test:1")
	r.Must("image", "import", testutil.BusyboxTar(t), "rmi-solo:1", "--change", `CMD ["sleep", "300"]`)
	run, _ := project(t, r, "rmi", map[string]string{"compose.yaml": `
services:
  app:
    image: rmi-test:1
    command: ["sleep", "300"]
    stop_signal: SIGKILL
  solo:
    image: rmi-solo:1
    stop_signal: SIGKILL
`})
	t.Cleanup(func() { r.Run("container", "rm", "-f", "keeper") })
	r.Must("container", "run", "-d", "--name", "keeper", "rmi-solo:1")
	must(t, run("up", "-d"), "up")
	must(t, run("down", "-t", "0", "--rmi", "local"), "down --rmi local")
	if res := r.Run("image", "inspect", "rmi-test:1"); res.Code != 0 {
		t.Errorf("down --rmi local removed rmi-test:1: %s", res.Stderr)
	}
	must(t, run("up", "-d"), "up again")
	res := run("down", "-t", "0", "--rmi", "all")
	if res.Code != 0 || !strings.Contains(res.Stderr, "rmi-test:1") || !strings.Contains(res.Stderr, "warning: image rmi-solo:1 is kept") {
		t.Errorf("down --rmi all: exit %d: %s", res.Code, res.Stderr)
	}
	if res := r.Run("image", "inspect", "rmi-test:1"); res.Code == 0 {
		t.Error("rmi-test:1 is still there after down --rmi all")
	}
	for _, ref := range []string{"busybox:latest", "rmi-solo:1"} {
		if res := r.Run("image", "inspect", ref); res.Code != 0 {
			t.Errorf("%s went with down --rmi all: %s", ref, res.Stderr)
		}
	}
	if ps := psAll(t, run); len(ps) != 0 {
		t.Errorf("after down: %v", ps)
	}
}

const ticking = `
services:
  a:
    image: busybox
    command: ["sh", "-c", "for i in 1 2 3; do echo a$$i; sleep 0.3; done; exec sleep 300"]
    stop_signal: SIGKILL
  b:
    image: busybox
    command: ["sh", "-c", "sleep 0.15; for i in 1 2 3; do echo b$$i-$$(hostname); sleep 0.3; done; exec sleep 300"]
    stop_signal: SIGKILL
    scale: 2
`

// stampsInOrder parses "name | TIME text" lines: their times must not go
// back; it returns the texts.
func stampsInOrder(t *testing.T, out string) []string {
	t.Helper()
	var last time.Time
	var texts []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		_, rest, _ := strings.Cut(l, "| ")
		ts, text, _ := strings.Cut(rest, " ")
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if tm.Before(last) {
			t.Errorf("lines out of time order at %q:\n%s", l, out)
		}
		last = tm
		texts = append(texts, text)
	}
	return texts
}

// TestComposeLogsIndexAndMergeMustSelectAndOrder: logs --index 2 shows
// one replica; --merge orders the lines of all containers by time (with
// -t, and without -t the same lines without the times), -f too.
func TestComposeLogsIndexAndMergeMustSelectAndOrder(t *testing.T) {
	r := testutil.NewRoot(t)
	run, dir := project(t, r, "lm", map[string]string{"compose.yaml": ticking})
	must(t, run("up", "-d"), "up")
	testutil.Eventually(t, func() bool { return strings.Count(run("logs").Stdout, "\n") == 9 }, 10*time.Second, "nine lines")

	out := must(t, run("logs", "--index", "2", "b"), "logs --index 2 b")
	if strings.Count(out, "lm-b-2 | b") != 3 || strings.Contains(out, "lm-b-1") || strings.Contains(out, "lm-a-1") {
		t.Errorf("logs --index 2 b:\n%s", out)
	}
	if res := run("logs", "--index", "3", "b"); res.Code == 0 || !strings.Contains(res.Stderr, "#3") {
		t.Errorf("logs --index 3 b: exit %d: %s", res.Code, res.Stderr)
	}

	stamped := must(t, run("logs", "--merge", "-t"), "logs --merge -t")
	texts := stampsInOrder(t, stamped)
	if len(texts) != 9 {
		t.Fatalf("logs --merge -t: %d lines:\n%s", len(texts), stamped)
	}
	var bare []string
	for _, l := range strings.Split(strings.TrimSpace(must(t, run("logs", "--merge"), "logs --merge")), "\n") {
		_, text, _ := strings.Cut(l, "| ")
		bare = append(bare, text)
	}
	if strings.Join(bare, "\n") != strings.Join(texts, "\n") {
		t.Errorf("logs --merge is not logs --merge -t without the times:\n%s\nvs\n%s", strings.Join(bare, "\n"), stamped)
	}
	// The services interleave: a1 comes before any b line, a3 after one.
	if texts[0] != "a1" || slices.Index(texts, "a3") < slices.IndexFunc(texts, func(s string) bool { return strings.HasPrefix(s, "b1-") }) {
		t.Errorf("logs --merge does not interleave by time: %v", texts)
	}

	cmd := exec.Command(r.Bin, "--project-directory", dir, "-p", "lm", "logs", "--merge", "-f", "-t")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
	var fout bytes.Buffer
	cmd.Stdout = &syncWriter{w: &fout}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	must(t, run("restart", "-t", "0", "a"), "restart a")
	testutil.Eventually(t, func() bool {
		syncMu <- struct{}{}
		defer func() { <-syncMu }()
		return strings.Count(fout.String(), " a3\n") == 2
	}, 10*time.Second, "the restarted a's lines in logs --merge -f")
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	stampsInOrder(t, fout.String())
}

// TestComposeRestartMustFollowRestartTrue: restart db restarts web,
// which depends on it with restart: true, after it, and leaves other
// alone; restart --no-deps db restarts db alone.
func TestComposeRestartMustFollowRestartTrue(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "rst", map[string]string{"compose.yaml": threeServices})
	must(t, run("up", "-d"), "up")
	starts := func() map[string]time.Time {
		out := map[string]time.Time{}
		for _, s := range []string{"db", "web", "other"} {
			tm, err := time.Parse(time.RFC3339Nano, startedAt(t, r, "rst-"+s+"-1"))
			if err != nil {
				t.Fatal(err)
			}
			out[s] = tm
		}
		return out
	}
	before := starts()
	res := run("restart", "db")
	must(t, res, "restart db")
	after := starts()
	if after["db"] == before["db"] || after["web"] == before["web"] || after["other"] != before["other"] {
		t.Errorf("restart db: started before %v, after %v", before, after)
	}
	if after["web"].Before(after["db"]) {
		t.Errorf("restart db started web (%s) before db (%s)", after["web"], after["db"])
	}
	must(t, run("restart", "--no-deps", "db"), "restart --no-deps db")
	again := starts()
	if again["db"] == after["db"] || again["web"] != after["web"] || again["other"] != after["other"] {
		t.Errorf("restart --no-deps db: started before %v, after %v", after, again)
	}
	for n, e := range psAll(t, run) {
		if e.State != "running" {
			t.Errorf("%s is %s after the restarts", n, e.State)
		}
	}
}

// TestComposeLogsMustColourOnATerminal: on a terminal each service's
// prefix has a colour of its own, padded to the longest name; --no-color
// and a pipe give plain prefixes.
func TestComposeLogsMustColourOnATerminal(t *testing.T) {
	r := testutil.NewRoot(t)
	run, dir := project(t, r, "col", map[string]string{"compose.yaml": `
services:
  a:
    image: busybox
    command: ["sh", "-c", "echo from-a; exec sleep 300"]
    stop_signal: SIGKILL
  longer:
    image: busybox
    command: ["sh", "-c", "echo from-longer; exec sleep 300"]
    stop_signal: SIGKILL
`})
	must(t, run("up", "-d"), "up")
	testutil.Eventually(t, func() bool { return strings.Count(run("logs").Stdout, "\n") == 2 }, 10*time.Second, "two lines")
	onTerminal := func(args ...string) string {
		master, slave := hostPty(t)
		cmd := exec.Command(r.Bin, append([]string{"--project-directory", dir, "-p", "col", "logs"}, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
		cmd.Stdout = slave
		if err := cmd.Run(); err != nil {
			t.Fatalf("logs on a terminal: %v", err)
		}
		slave.Close()
		var out bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return strings.ReplaceAll(out.String(), "\r", "")
	}
	out := onTerminal()
	ca := regexp.MustCompile(`\x1b\[(\d+)mcol-a-1      \|\x1b\[0m from-a`).FindStringSubmatch(out)
	cl := regexp.MustCompile(`\x1b\[(\d+)mcol-longer-1 \|\x1b\[0m from-longer`).FindStringSubmatch(out)
	if ca == nil || cl == nil || ca[1] == cl[1] {
		t.Errorf("logs on a terminal: want a colour per service:\n%q", out)
	}
	if out := onTerminal("--no-color"); strings.Contains(out, "\x1b[") || !strings.Contains(out, "col-a-1      | from-a") {
		t.Errorf("logs --no-color on a terminal:\n%q", out)
	}
	if out := must(t, run("logs"), "logs"); strings.Contains(out, "\x1b[") {
		t.Errorf("logs to a pipe has colours:\n%q", out)
	}
}
