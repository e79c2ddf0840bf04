package examples

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// composeStates is ps -a --format json: service container name → State.
func composeStates(t *testing.T, run func(args ...string) testutil.Result) map[string]string {
	t.Helper()
	out := must(t, run("ps", "-a", "--format", "json"), "ps -a --format json")
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var row struct{ Name, State string }
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("ps --format json printed %q: %v", line, err)
		}
		got[row.Name] = row.State
	}
	return got
}

// allContainers is every container of the root, one-offs included.
func allContainers(t *testing.T, r *testutil.Root) []string {
	t.Helper()
	return strings.Fields(r.Must("container", "ls", "-a", "-q"))
}

// TestComposeRunMustReturnTheCodeAndBringDependenciesUp: run exits with
// the command's code and --rm leaves nothing of the one-off; it starts
// the service's dependency first, and --rm-deps removes what it started;
// the one-off is <project>-<service>-run-<12 hex>, labelled oneoff=True,
// not listed by ps, takes -e/--entrypoint/-w/-u, and publishes the
// service's ports only with --service-ports (or -p).
func TestComposeRunMustReturnTheCodeAndBringDependenciesUp(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "runp", map[string]string{"compose.yaml": `
services:
  db:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
  app:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    depends_on: [db]
    environment: {FROM_FILE: yes-file}
    ports: ["127.0.0.1::8080"]
`})
	// --rm-deps: db comes up for the run (its name resolves), then goes.
	res := run("run", "--rm", "--rm-deps", "app", "sh", "-c", "nslookup db >/dev/null && echo resolved-db")
	if res.Code != 0 || !strings.Contains(res.Stdout, "resolved-db") {
		t.Fatalf("run --rm --rm-deps: exit %d\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	if left := allContainers(t, r); len(left) != 0 {
		t.Errorf("after run --rm --rm-deps: containers left: %v", left)
	}

	res = run("run", "--rm", "app", "sh", "-c", "echo out-$FROM_FILE; exit 3")
	if res.Code != 3 || !strings.Contains(res.Stdout, "out-yes-file") {
		t.Fatalf("run --rm app sh -c 'exit 3': exit %d (want 3)\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}
	if st := composeStates(t, run); st["runp-db-1"] != "running" || len(st) != 1 {
		t.Errorf("after run: want db running (and no one-off in ps): %v", st)
	}
	if left := allContainers(t, r); len(left) != 1 {
		t.Errorf("run --rm left a one-off: %v", left)
	}

	out := must(t, run("run", "--rm", "--no-deps", "-e", "FROM_FILE=override", "-w", "/tmp", "-u", "65534",
		"--entrypoint", "sh -c", "app", `echo "$FROM_FILE $(pwd) $(id -u)"`), "run with overrides")
	if strings.TrimSpace(out) != "override /tmp 65534" {
		t.Errorf("run -e -w -u --entrypoint printed %q", out)
	}

	name := strings.TrimSpace(must(t, run("run", "-d", "app"), "run -d"))
	if !regexp.MustCompile(`^runp-app-run-[0-9a-f]{12}$`).MatchString(name) {
		t.Fatalf("run -d printed %q, not runp-app-run-<12 hex>", name)
	}
	if ports := strings.TrimSpace(r.Must("container", "port", name)); ports != "" {
		t.Errorf("a one-off without --service-ports publishes %q", ports)
	}
	if insp := r.Must("container", "inspect", name); !strings.Contains(insp, `"com.docker.compose.oneoff": "True"`) {
		t.Errorf("one-off labels:\n%s", insp)
	}
	withPorts := strings.TrimSpace(must(t, run("run", "-d", "--service-ports", "app"), "run -d --service-ports"))
	if ports := r.Must("container", "port", withPorts); !strings.Contains(ports, "8080/tcp -> 127.0.0.1:") {
		t.Errorf("run --service-ports publishes %q", ports)
	}
	published := strings.TrimSpace(must(t, run("run", "-d", "-p", "127.0.0.1::9090", "app"), "run -d -p"))
	if ports := strings.TrimSpace(r.Must("container", "port", published)); !strings.HasPrefix(ports, "9090/tcp -> 127.0.0.1:") || strings.Contains(ports, "8080") {
		t.Errorf("run -p 127.0.0.1::9090 publishes %q", ports)
	}
	if st := composeStates(t, run); len(st) != 1 {
		t.Errorf("ps lists one-offs: %v", st)
	}

	res = run("run", "--rm", "nosuch")
	if res.Code != 1 || !strings.Contains(res.Stderr, "nosuch") || !strings.Contains(res.Stderr, "app, db") {
		t.Errorf("run of an unknown service: exit %d: %s", res.Code, res.Stderr)
	}
}

// TestComposeLifecycleCommandsMustActOnTheServices: create makes
// containers without starting them; kill -s delivers the signal; pause
// and unpause show in ps; rm removes stopped containers only, rm -s stops
// first.
func TestComposeLifecycleCommandsMustActOnTheServices(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "life", map[string]string{"compose.yaml": `
services:
  trap:
    image: busybox
    command: ["sh", "-c", "trap 'exit 42' USR1; while :; do sleep 0.1; done"]
    stop_signal: SIGKILL
  sleeper:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
`})
	must(t, run("create"), "create")
	if st := composeStates(t, run); st["life-trap-1"] != "created" || st["life-sleeper-1"] != "created" {
		t.Fatalf("after create: %v", st)
	}
	must(t, run("up", "-d"), "up -d")
	// The trap must be in place before the signal comes.
	time.Sleep(300 * time.Millisecond)
	must(t, run("kill", "-s", "USR1", "trap"), "kill -s USR1 trap")
	testutil.Eventually(t, func() bool { return composeStates(t, run)["life-trap-1"] == "exited" }, 5*time.Second, "trap to exit on USR1")
	if out := must(t, run("ps", "-a"), "ps -a"); !strings.Contains(out, "Exited (42)") {
		t.Errorf("kill -s USR1: want Exited (42):\n%s", out)
	}

	must(t, run("pause", "sleeper"), "pause")
	if st := composeStates(t, run); st["life-sleeper-1"] != "paused" {
		t.Errorf("after pause: %v", st)
	}
	must(t, run("unpause", "sleeper"), "unpause")
	if st := composeStates(t, run); st["life-sleeper-1"] != "running" {
		t.Errorf("after unpause: %v", st)
	}

	res := run("rm", "-f")
	if res.Code != 0 || !strings.Contains(res.Stderr, "life-trap-1") || strings.Contains(res.Stderr, "life-sleeper-1") {
		t.Errorf("rm -f: exit %d: %s", res.Code, res.Stderr)
	}
	if st := composeStates(t, run); len(st) != 1 || st["life-sleeper-1"] != "running" {
		t.Errorf("rm removed the wrong containers: %v", st)
	}
	if res := run("rm", "-f"); res.Code != 0 || !strings.Contains(res.Stderr, "No stopped containers") {
		t.Errorf("rm with nothing stopped: exit %d: %s", res.Code, res.Stderr)
	}
	must(t, run("rm", "-s", "-f", "sleeper"), "rm -s -f sleeper")
	if st := composeStates(t, run); len(st) != 0 {
		t.Errorf("after rm -s: %v", st)
	}
}

// TestComposeInspectionCommandsMustShowTheProject: top shows each
// container's processes under its name, images lists busybox for each
// container, ls shows the project as running(2) with its file (and
// exited with -a only once stopped).
func TestComposeInspectionCommandsMustShowTheProject(t *testing.T) {
	r := testutil.NewRoot(t)
	run, dir := project(t, r, "insp", map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    command: ["sleep", "301"]
    stop_signal: SIGKILL
  worker:
    image: busybox
    command: ["sleep", "302"]
    stop_signal: SIGKILL
`})
	must(t, run("up", "-d"), "up -d")
	out := must(t, run("top"), "top")
	if !strings.Contains(out, "insp-web-1\nUID") || !strings.Contains(out, "sleep 301") || !strings.Contains(out, "insp-worker-1\n") || !strings.Contains(out, "sleep 302") {
		t.Errorf("top:\n%s", out)
	}
	if out := must(t, run("top", "worker"), "top worker"); strings.Contains(out, "sleep 301") {
		t.Errorf("top worker shows web:\n%s", out)
	}

	out = must(t, run("images"), "images")
	if !strings.HasPrefix(out, "CONTAINER") || !regexp.MustCompile(`insp-web-1\s+busybox\s+latest\s+[0-9a-f]{12}\s+\S+`).MatchString(out) {
		t.Errorf("images:\n%s", out)
	}
	var imgs []struct{ ContainerName, Repository, Tag string }
	if err := json.Unmarshal([]byte(must(t, run("images", "--format", "json"), "images --format json")), &imgs); err != nil || len(imgs) != 2 {
		t.Errorf("images --format json: %v %v", imgs, err)
	}

	out = r.Must("ls")
	if !regexp.MustCompile(`(?m)^insp\s+running\(2\)\s+` + regexp.QuoteMeta(filepath.Join(dir, "compose.yaml")) + `$`).MatchString(out) {
		t.Errorf("ls:\n%s", out)
	}
	must(t, run("stop", "worker"), "stop worker")
	var rows []struct{ Name, Status, ConfigFiles string }
	if err := json.Unmarshal([]byte(r.Must("ls", "-a", "--format", "json")), &rows); err != nil || len(rows) != 1 || rows[0].Status != "exited(1), running(1)" {
		t.Errorf("ls -a --format json: %+v %v", rows, err)
	}
	if out := strings.TrimSpace(r.Must("ls", "-q")); out != "insp" {
		t.Errorf("ls -q: %q", out)
	}
}

// TestComposeWaitAndCpMustWorkOnServices: wait blocks until the service's
// container exits and prints its code, with which it exits; cp copies a
// host file into a service and a container file out of it.
func TestComposeWaitAndCpMustWorkOnServices(t *testing.T) {
	r := testutil.NewRoot(t)
	run, dir := project(t, r, "wcp", map[string]string{"compose.yaml": `
services:
  job:
    image: busybox
    command: ["sh", "-c", "sleep 1; exit 5"]
  box:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
`, "in.txt": "from the host\n"})
	must(t, run("up", "-d"), "up -d")
	res := run("wait", "job")
	if res.Code != 5 || !strings.Contains(res.Stdout, `"wcp-job-1" exited with status code 5`) {
		t.Errorf("wait job: exit %d\nstdout: %s\nstderr: %s", res.Code, res.Stdout, res.Stderr)
	}

	must(t, run("cp", filepath.Join(dir, "in.txt"), "box:/tmp/in.txt"), "cp to the service")
	if out := must(t, run("exec", "-T", "box", "cat", "/tmp/in.txt"), "cat"); out != "from the host\n" {
		t.Errorf("copied in: %q", out)
	}
	must(t, run("exec", "-T", "box", "sh", "-c", "echo from-the-box > /tmp/out.txt"), "write")
	dst := filepath.Join(dir, "out.txt")
	must(t, run("cp", "box:/tmp/out.txt", dst), "cp from the service")
	if b, err := os.ReadFile(dst); err != nil || string(b) != "from-the-box\n" {
		t.Errorf("copied out: %q %v", b, err)
	}
}

// TestComposeEventsMustStreamStartAndDie: events --json reports a
// container started and stopped while it runs, with compose's fields.
func TestComposeEventsMustStreamStartAndDie(t *testing.T) {
	r := testutil.NewRoot(t)
	run, dir := project(t, r, "ev", map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
`})
	cmd := exec.Command(r.Bin, "--project-directory", dir, "-p", "ev", "events", "--json")
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "BERTH_ROOT=" + r.Path}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Errorf("events did not end on SIGINT")
			<-done
		}
	}()
	time.Sleep(500 * time.Millisecond) // its first look: nothing yet
	must(t, run("up", "-d"), "up -d")
	time.Sleep(500 * time.Millisecond)
	must(t, run("stop", "web"), "stop")

	var actions []string
	deadline := time.After(20 * time.Second)
	for !(hasAction(actions, "start") && hasAction(actions, "die")) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("events ended; saw %v", actions)
			}
			var ev struct {
				Time       time.Time
				Type       string
				Action     string
				ID         string
				Service    string
				Attributes map[string]string
			}
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("events --json printed %q: %v", l, err)
			}
			if ev.Type != "container" || ev.Service != "web" || len(ev.ID) != 64 || ev.Attributes["name"] != "ev-web-1" || ev.Attributes["image"] != "busybox" || ev.Time.IsZero() {
				t.Errorf("event %s", l)
			}
			actions = append(actions, ev.Action)
		case <-deadline:
			t.Fatalf("no start and die within 20s; saw %v", actions)
		}
	}
	si, di := actionIndex(actions, "start"), actionIndex(actions, "die")
	if si > di || actionIndex(actions, "create") > si {
		t.Errorf("events out of order: %v", actions)
	}
}

func hasAction(list []string, s string) bool { return actionIndex(list, s) >= 0 }

func actionIndex(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// TestComposeCommandsMustNameUnknownServices: each command given a
// service the project lacks fails naming it and listing the services.
func TestComposeCommandsMustNameUnknownServices(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "unk", map[string]string{"compose.yaml": `
services:
  alpha:
    image: busybox
    command: ["sleep", "300"]
  beta:
    image: busybox
    command: ["sleep", "300"]
`})
	for _, args := range [][]string{
		{"run", "nope"}, {"create", "nope"}, {"rm", "nope"}, {"kill", "nope"}, {"pause", "nope"}, {"unpause", "nope"},
		{"top", "nope"}, {"images", "nope"}, {"wait", "nope"}, {"cp", "nope:/etc/hostname", "/tmp/x"},
		{"events", "nope"}, {"attach", "nope"},
	} {
		res := run(args...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "nope") || !strings.Contains(res.Stderr, "alpha, beta") {
			t.Errorf("%v: exit %d: %s", args, res.Code, res.Stderr)
		}
	}
}
