package examples

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// lockedBuffer is an output buffer written by a process and read by the
// test meanwhile.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// watching is a berth watch (or up --watch) running in the background.
type watching struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

// startWatch runs berth ARGS in the project and waits until it watches.
func startWatch(t *testing.T, r *testutil.Root, dir, name string, args ...string) *watching {
	t.Helper()
	cmd := exec.Command(r.Bin, append([]string{"--project-directory", dir, "-p", name}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "BERTH_ROOT=" + r.Path}
	w := &watching{t: t, cmd: cmd, out: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = w.out, w.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- cmd.Wait() }()
	t.Cleanup(func() { w.stop() })
	w.waitFor("watching ", 30*time.Second)
	return w
}

// waitFor waits until the output holds s (counted from the end of what
// was there when mark was taken, with since).
func (w *watching) waitFor(s string, d time.Duration) {
	w.t.Helper()
	w.waitCount(s, 1, d)
}

func (w *watching) waitCount(s string, n int, d time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for strings.Count(w.out.String(), s) < n {
		select {
		case err := <-w.done:
			w.done <- err
			w.t.Fatalf("berth ended (%v) before printing %q %d times:\n%s", err, s, n, w.out.String())
		default:
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no %q (%d times) within %v:\n%s", s, n, d, w.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends Ctrl+C and waits for berth to end.
func (w *watching) stop() string {
	if w.cmd.ProcessState == nil {
		w.cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-w.done:
			w.done <- err
		case <-time.After(15 * time.Second):
			w.cmd.Process.Kill()
			w.t.Errorf("berth did not end within 15 s of Ctrl+C:\n%s", w.out.String())
		}
	}
	return w.out.String()
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ctrCat is the content of a file in the service's container, read with
// the image's own cat; ok is false when it cannot be read.
func ctrCat(run func(args ...string) testutil.Result, svc, p string) (string, bool) {
	res := run("exec", "-T", svc, "cat", p)
	return res.Stdout, res.Code == 0
}

const watchSyncProject = `
services:
  app:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    develop:
      watch:
        - action: sync
          path: ./src
          target: /app
          ignore: ["*.log"]
`

// TestWatchSyncMustReachTheContainer: with a sync rule, a file written on
// the host is readable in the container within 1 s, a deletion
// propagates, a new nested directory's files arrive, a change made while
// the container is stopped is there after start, ignored paths (the
// rule's, .git, editor files) never trigger, and 1,000 files changed at
// once are one batch.
func TestWatchSyncMustReachTheContainer(t *testing.T) {
	r := testutil.NewRoot(t)
	run, dir := project(t, r, "wsync", map[string]string{"compose.yaml": watchSyncProject, "src/first.txt": "first\n", "src/.git/HEAD": "ref\n"})
	os.MkdirAll(filepath.Join(dir, "src", "many"), 0o755)
	w := startWatch(t, r, dir, "wsync", "watch")

	writeFile(t, filepath.Join(dir, "src", "hello.txt"), "hello\n")
	start := time.Now()
	testutil.Eventually(t, func() bool { s, ok := ctrCat(run, "app", "/app/hello.txt"); return ok && s == "hello\n" }, time.Second, "hello.txt in the container")
	t.Logf("hello.txt visible in the container after %v", time.Since(start))
	w.waitFor("app: synced 1 file (src/hello.txt) in 1 container in ", time.Second)

	os.Remove(filepath.Join(dir, "src", "hello.txt"))
	testutil.Eventually(t, func() bool { _, ok := ctrCat(run, "app", "/app/hello.txt"); return !ok }, time.Second, "hello.txt removed in the container")

	writeFile(t, filepath.Join(dir, "src", "a", "b", "c", "deep.txt"), "deep\n")
	testutil.Eventually(t, func() bool { s, ok := ctrCat(run, "app", "/app/a/b/c/deep.txt"); return ok && s == "deep\n" }, time.Second, "a new nested directory's file")

	// Ignored: nothing happens, then a real change shows the watch is alive.
	lines := strings.Count(w.out.String(), "watch: app:")
	writeFile(t, filepath.Join(dir, "src", "debug.log"), "noise\n")
	writeFile(t, filepath.Join(dir, "src", ".git", "index"), "noise\n")
	writeFile(t, filepath.Join(dir, "src", ".hello.txt.swp"), "noise\n")
	writeFile(t, filepath.Join(dir, "src", "notes.txt~"), "noise\n")
	time.Sleep(300 * time.Millisecond)
	if n := strings.Count(w.out.String(), "watch: app:"); n != lines {
		t.Errorf("ignored paths triggered:\n%s", w.out.String())
	}
	for _, p := range []string{"/app/debug.log", "/app/.git/index", "/app/.hello.txt.swp"} {
		if _, ok := ctrCat(run, "app", p); ok {
			t.Errorf("%s was synced", p)
		}
	}

	// Stopped: synced into its upper dir, there after start.
	must(t, run("stop", "app"), "stop")
	writeFile(t, filepath.Join(dir, "src", "while-stopped.txt"), "stopped\n")
	w.waitFor("synced 1 file (src/while-stopped.txt)", 2*time.Second)
	must(t, run("start", "app"), "start")
	if s, ok := ctrCat(run, "app", "/app/while-stopped.txt"); !ok || s != "stopped\n" {
		t.Errorf("after start: %q %v", s, ok)
	}

	// 1,000 files at once: one batch, one line.
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(dir, "src", "many", fmt.Sprintf("f%04d.txt", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.waitFor("app: synced 1000 files (src/many/f0000.txt, src/many/f0001.txt, src/many/f0002.txt, +997 more) in 1 container", 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := strings.Count(w.out.String(), "synced 1000 files"); n != 1 || strings.Count(w.out.String(), "watch: app: synced") != 4 {
		t.Errorf("1,000 files: %d lines for them, or more syncs than the test made:\n%s", n, w.out.String())
	}
	if out := must(t, run("exec", "-T", "app", "sh", "-c", "ls /app/many | wc -l"), "count"); strings.TrimSpace(out) != "1000" {
		t.Errorf("files in the container: %s", out)
	}
	out := w.stop()
	if ps := psAll(t, run); ps["wsync-app-1"].State != "running" {
		t.Errorf("Ctrl+C of watch stopped the container: %v\n%s", ps, out)
	}
}

// tinyImage is an image with only /bin/sleep and /bin/cat (busybox, static,
// copied under those names): no sh, stat, mkdir or rm.
func tinyImage(t *testing.T, r *testutil.Root) {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("no /bin/busybox (apt-get install busybox-static)")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "etc/", "proc/", "sys/", "dev/", "tmp/"} {
		tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1700000000, 0)})
	}
	for _, f := range []string{"bin/sleep", "bin/cat"} {
		tw.WriteHeader(&tar.Header{Name: f, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb)), ModTime: time.Unix(1700000000, 0)})
		tw.Write(bb)
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "tiny.tar")
	os.WriteFile(p, buf.Bytes(), 0o644)
	r.Must("image", "import", p, "tiny:latest", "--change", `CMD ["/bin/sleep", "300"]`)
	t.Cleanup(func() { r.Run("image", "rm", "-f", "tiny:latest") })
}

// TestWatchSyncMustNotNeedToolsInTheImage: an image with only sleep and
// cat still gets files, new directories and deletions, running or
// stopped, replicas all.
func TestWatchSyncMustNotNeedToolsInTheImage(t *testing.T) {
	r := testutil.NewRoot(t)
	tinyImage(t, r)
	run, dir := project(t, r, "wtiny", map[string]string{"compose.yaml": `
services:
  tiny:
    image: tiny
    scale: 2
    stop_signal: SIGKILL
    develop:
      watch:
        - {action: sync, path: ./src, target: /srv/app}
`, "src/keep": "keep\n"})
	w := startWatch(t, r, dir, "wtiny", "watch")
	writeFile(t, filepath.Join(dir, "src", "x", "y", "z.txt"), "zzz\n")
	w.waitFor("tiny: synced 1 file (src/x/y/z.txt) in 2 containers", 2*time.Second)
	for _, idx := range []string{"1", "2"} {
		if res := run("exec", "-T", "--index", idx, "tiny", "cat", "/srv/app/x/y/z.txt"); res.Code != 0 || res.Stdout != "zzz\n" {
			t.Errorf("replica %s: exit %d %q %s", idx, res.Code, res.Stdout, res.Stderr)
		}
	}
	os.RemoveAll(filepath.Join(dir, "src", "x"))
	w.waitFor("tiny: removed", 2*time.Second)
	if res := run("exec", "-T", "tiny", "cat", "/srv/app/x/y/z.txt"); res.Code == 0 {
		t.Errorf("the removed tree is still in the container")
	}
	// Exited: the change lands in its upper dir.
	must(t, run("stop", "tiny"), "stop")
	writeFile(t, filepath.Join(dir, "src", "later.txt"), "later\n")
	w.waitFor("synced 1 file (src/later.txt) in 2 containers", 2*time.Second)
	must(t, run("start", "tiny"), "start")
	if res := run("exec", "-T", "--index", "2", "tiny", "cat", "/srv/app/later.txt"); res.Stdout != "later\n" {
		t.Errorf("after start: exit %d %q %s", res.Code, res.Stdout, res.Stderr)
	}
}

// TestUpWatchRebuildMustRecreateOnlyThatService: up --watch with a
// rebuild rule: a change to a copied file rebuilds from that COPY on
// (earlier steps CACHED) and recreates the service alone, its dependency
// keeping its container; adding an env var to another service in the
// project file recreates that service alone while watching goes on;
// Ctrl+C stops the project as attached up does, logs interleaved.
func TestUpWatchRebuildMustRecreateOnlyThatService(t *testing.T) {
	r := testutil.NewRoot(t)
	compose := `
services:
  db:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
  other:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
  api:
    build: ./api
    stop_signal: SIGKILL
    depends_on: [db]
    develop:
      watch:
        - {action: rebuild, path: ./api}
`
	run, dir := project(t, r, "wreb", map[string]string{
		"compose.yaml":      compose,
		"api/Dockerfile":    "FROM busybox\nWORKDIR /app\nCOPY msg /app/msg\nCMD [\"sh\", \"-c\", \"cat /app/msg; exec sleep 300\"]\n",
		"api/msg":           "version one\n",
		"api/.dockerignore": "*.md\n",
	})
	w := startWatch(t, r, dir, "wreb", "up", "--watch")
	w.waitFor("| version one", 10*time.Second)
	before := psAll(t, run)

	mark := len(w.out.String())
	writeFile(t, filepath.Join(dir, "api", "README.md"), "ignored by .dockerignore\n")
	writeFile(t, filepath.Join(dir, "api", "msg"), "version two\n")
	w.waitFor("api: rebuilt and recreated after 1 file (api/msg) in ", 20*time.Second)
	w.waitFor("| version two", 10*time.Second)
	got := steps(w.out.String()[mark:])
	if got["WORKDIR /app"] != "CACHED" || got["COPY msg /app/msg"] != "DONE" {
		t.Errorf("the rebuild's steps: %v\n%s", got, w.out.String()[mark:])
	}
	if strings.Contains(w.out.String()[mark:], "README.md") {
		t.Errorf("a path .dockerignore excludes triggered:\n%s", w.out.String()[mark:])
	}
	after := psAll(t, run)
	if after["wreb-api-1"].ID == before["wreb-api-1"].ID {
		t.Error("api was not recreated")
	}
	if after["wreb-db-1"].ID != before["wreb-db-1"].ID || after["wreb-other-1"].ID != before["wreb-other-1"].ID {
		t.Errorf("the rebuild touched other services: %v → %v", before, after)
	}

	os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(strings.Replace(compose,
		"  other:\n    image: busybox\n", "  other:\n    image: busybox\n    environment: {ADDED: \"yes\"}\n", 1)), 0o644)
	w.waitFor("compose.yaml changed: project applied in ", 10*time.Second)
	edited := psAll(t, run)
	if edited["wreb-other-1"].ID == after["wreb-other-1"].ID || edited["wreb-db-1"].ID != after["wreb-db-1"].ID || edited["wreb-api-1"].ID != after["wreb-api-1"].ID {
		t.Errorf("after adding an env var to other: %v → %v", after, edited)
	}
	if out := must(t, run("exec", "-T", "other", "sh", "-c", "echo $ADDED"), "exec"); out != "yes\n" {
		t.Errorf("ADDED in other: %q", out)
	}
	if !regexp.MustCompile(`Recreate wreb-other-1: config hash changed: environment`).MatchString(w.out.String()) {
		t.Errorf("the recreation does not explain itself:\n%s", w.out.String())
	}

	out := w.stop()
	if !strings.Contains(out, "Gracefully stopping") {
		t.Errorf("Ctrl+C of up --watch:\n%s", out)
	}
	for n, e := range psAll(t, run) {
		if e.State == "running" {
			t.Errorf("%s still runs after Ctrl+C of up --watch", n)
		}
	}
}

// TestWatchMustNameBadRules: a rebuild rule without a build section, and
// watch for a service without rules, fail naming the service and field.
func TestWatchMustNameBadRules(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "wbad", map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    develop:
      watch:
        - {action: rebuild, path: .}
  plain:
    image: busybox
`})
	if res := run("watch", "--no-up"); res.Code != 2 || !strings.Contains(res.Stderr, "services.web.develop.watch[0].action: rebuild needs a build section") {
		t.Errorf("rebuild without build: exit %d: %s", res.Code, res.Stderr)
	}
	if res := run("watch", "--no-up", "plain"); res.Code != 2 || !strings.Contains(res.Stderr, "service plain has no develop.watch rules") {
		t.Errorf("a service without rules: exit %d: %s", res.Code, res.Stderr)
	}
	if res := run("up", "--watch", "-d"); res.Code != 2 || !strings.Contains(res.Stderr, "--watch and --detach are incompatible") {
		t.Errorf("up --watch -d: exit %d: %s", res.Code, res.Stderr)
	}
}
