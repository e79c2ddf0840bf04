package examples

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// logFiles decodes a container's log files with encoding/json, oldest
// first (json.log.N … json.log): the oracle `logs` is checked against.
func logFiles(t *testing.T, root, id string) (texts []string, rotated int) {
	t.Helper()
	dir := filepath.Join(root, "containers", id, "log")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		n    int
		name string
	}
	var files []file
	for _, e := range ents {
		switch s, ok := strings.CutPrefix(e.Name(), "json.log."); {
		case e.Name() == "json.log":
			files = append(files, file{0, e.Name()})
		case ok:
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("unexpected file %s in %s", e.Name(), dir)
			}
			files = append(files, file{n, e.Name()})
			rotated++
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].n > files[j].n })
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.SplitAfter(b, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var e struct{ Log string }
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatalf("%s: %q: %v", f.name, line, err)
			}
			texts = append(texts, e.Log)
		}
	}
	return texts, rotated
}

// TestLogsMustReturnAllLinesInOrder: logs of a container that printed a
// million lines (about 76 MB of json-file, rotated at 40 MB into files kept
// within the limit) must give every line, in order; --tail 5 must give
// exactly the last five.
func TestLogsMustReturnAllLinesInOrder(t *testing.T) {
	r := testutil.NewRoot(t)
	const n = 1000000
	id := strings.TrimSpace(r.Must("container", "run", "-d", "--name", "million", "--log-opt", "max-size=40m", "--log-opt", "max-file=3",
		"busybox", "sh", "-c", "seq 1 "+strconv.Itoa(n)))
	defer r.Run("container", "rm", "-f", "million")
	if code := strings.TrimSpace(r.Must("container", "wait", "million")); code != "0" {
		t.Fatalf("seq exited %s", code)
	}
	res := r.Run("container", "logs", "million")
	if res.Code != 0 || res.Stderr != "" {
		t.Fatalf("logs: exit %d, stderr %q", res.Code, res.Stderr)
	}
	kept, rotated := logFiles(t, r.Path, id)
	if got := strings.Join(kept, ""); res.Stdout != got {
		t.Fatalf("logs gave %d bytes, the log files hold %d", len(res.Stdout), len(got))
	}
	lines := strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n")
	first, err := strconv.Atoi(lines[0])
	if err != nil || first != 1 || rotated == 0 {
		t.Fatalf("first line %q with %d rotated files (want line 1, and rotation)", lines[0], rotated)
	}
	for _, f := range logFileSizes(t, r.Path, id) {
		if f > 40<<20+1024 {
			t.Errorf("a log file of %d bytes: over max-size 40m", f)
		}
	}
	for i, l := range lines {
		if l != strconv.Itoa(first+i) {
			t.Fatalf("line %d is %q, want %d", i, l, first+i)
		}
	}
	if last := first + len(lines) - 1; last != n {
		t.Fatalf("last line %d, want %d", last, n)
	}
	t.Logf("%d lines in %v (%d rotated files)", len(lines), res.Took, rotated)
	if got := r.Must("container", "logs", "--tail", "5", "million"); got != "999996\n999997\n999998\n999999\n1000000\n" {
		t.Errorf("--tail 5: %q", got)
	}
	if got := r.Must("container", "logs", "-n", "0", "million"); got != "" {
		t.Errorf("--tail 0: %q", got)
	}
}

// TestLogsMustSplitStreamsAndTime: the container's stdout must come on
// stdout and its stderr on stderr; -t must prefix docker's fixed-width
// RFC 3339 time; --since/--until must bound by time; a missing container
// must be an error naming it.
func TestLogsMustSplitStreamsAndTime(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("container", "run", "--name", "streams", "busybox", "sh", "-c", "echo out; echo err >&2; printf 'no newline'")
	defer r.Run("container", "rm", "-f", "streams")
	res := r.Run("container", "logs", "streams")
	if res.Code != 0 || res.Stdout != "out\nno newline" || res.Stderr != "err\n" {
		t.Fatalf("logs: exit %d stdout %q stderr %q", res.Code, res.Stdout, res.Stderr)
	}
	// The two streams are copied apart: their order in the log is not
	// the container's, so each is checked on its own.
	res = r.Run("container", "logs", "-t", "streams")
	const ts = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z `
	if !regexp.MustCompile(`^`+ts+`out\n`+ts+`no newline$`).MatchString(res.Stdout) ||
		!regexp.MustCompile(`^`+ts+`err\n$`).MatchString(res.Stderr) {
		t.Errorf("-t: stdout %q stderr %q", res.Stdout, res.Stderr)
	}
	if got := r.Run("container", "logs", "--tail", "2", "streams"); len(got.Stdout)+len(got.Stderr) != len("no newline")+4 {
		t.Errorf("--tail 2: stdout %q stderr %q", got.Stdout, got.Stderr)
	}
	if got := r.Must("container", "logs", "--since", "10m", "streams"); got != "out\nno newline" {
		t.Errorf("--since 10m: %q", got)
	}
	if got := r.Must("container", "logs", "--until", "10m", "streams"); got != "" {
		t.Errorf("--until 10m: %q", got)
	}
	if got := r.Must("container", "logs", "--since", strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10), "streams"); got != "" {
		t.Errorf("--since in a minute: %q", got)
	}
	if res := r.Run("container", "logs", "--since", "yesterday", "streams"); res.Code != 2 || !strings.Contains(res.Stderr, "yesterday") {
		t.Errorf("bad --since: exit %d, %q", res.Code, res.Stderr)
	}
	if res := r.Run("container", "logs", "nosuch"); res.Code == 0 || !strings.Contains(res.Stderr, "nosuch") {
		t.Errorf("missing container: exit %d, %q", res.Code, res.Stderr)
	}
}

// follower is `berth container logs -f` running in the background.
type follower struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

func follow(t *testing.T, r *testutil.Root, args ...string) *follower {
	t.Helper()
	cmd := exec.Command(r.Bin, append([]string{"container", "logs", "-f"}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "BERTH_ROOT=" + r.Path}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &follower{cmd: cmd, lines: make(chan string, 1000), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
		close(f.lines)
		err := cmd.Wait()
		if err != nil {
			err = &exitErr{err, stderr.String()}
		}
		f.done <- err
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		go func() { // unblock the scanner so that Wait runs
			for range f.lines {
			}
		}()
		<-f.done
	})
	return f
}

type exitErr struct {
	err    error
	stderr string
}

func (e *exitErr) Error() string { return e.err.Error() + ": " + e.stderr }

// next returns the next line, failing the test after timeout.
func (f *follower) next(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-f.lines:
		if !ok {
			t.Fatalf("logs -f ended early: %v", <-f.done)
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("logs -f printed nothing for %v", timeout)
	}
	return ""
}

// end waits for logs -f to exit by itself and checks it exited 0.
func (f *follower) end(t *testing.T, timeout time.Duration) {
	t.Helper()
	go func() {
		for range f.lines {
		}
	}()
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatalf("logs -f: %v", err)
		}
		f.done <- nil // for the cleanup
	case <-time.After(timeout):
		t.Fatalf("logs -f still runs %v after the container went", timeout)
	}
}

// TestLogsFollowMustShowNewLinesAndEnd: logs -f must print the lines the
// container writes after it started, and end by itself once the container
// is removed.
func TestLogsFollowMustShowNewLinesAndEnd(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("container", "run", "-d", "--name", "ticker", "busybox", "sh", "-c",
		"i=0; while true; do i=$((i+1)); echo line $i; sleep 0.1; done")
	defer r.Run("container", "rm", "-f", "ticker")
	testutil.Eventually(t, func() bool { return r.Must("container", "logs", "ticker") != "" }, 10*time.Second, "a first line")
	before := strings.Count(r.Must("container", "logs", "ticker"), "\n")
	f := follow(t, r, "ticker")
	for want := 1; ; want++ {
		l := f.next(t, 10*time.Second)
		if l != "line "+strconv.Itoa(want) {
			t.Fatalf("line %d is %q", want, l)
		}
		if want > before+3 { // written after logs -f started
			break
		}
	}
	r.Must("container", "rm", "-f", "ticker")
	f.end(t, 10*time.Second)
}

// TestLogsFollowMustContinueAcrossRestarts: logs -f must go on through
// the restarts of a restart: always container, and end when it is stopped.
func TestLogsFollowMustContinueAcrossRestarts(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("container", "run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "sh", "-c", "echo tick; sleep 0.2; exit 3")
	defer r.Run("container", "rm", "-f", "phoenix")
	f := follow(t, r, "phoenix")
	for i := 0; i < 3; i++ {
		if l := f.next(t, 15*time.Second); l != "tick" {
			t.Fatalf("line %d is %q", i, l)
		}
	}
	r.Must("container", "stop", "-t", "1", "phoenix")
	f.end(t, 15*time.Second)
}

// TestLogsMustFollowRotation: with --log-opt max-size/max-file, logs must
// keep at most max-file files and give what they hold, and a logs -f
// started before must see every line across the rotations (the writer
// writes in bursts, 35 KB every 20 ms: a follower keeping up loses
// nothing); with --log-driver none, logs must refuse as docker does.
func TestLogsMustFollowRotation(t *testing.T) {
	r := testutil.NewRoot(t)
	id := strings.TrimSpace(r.Must("container", "create", "--name", "rot", "--log-opt", "max-size=128k", "--log-opt", "max-file=3",
		"busybox", "sh", "-c", "sleep 1; for k in $(seq 0 39); do seq $((k*500+1)) $((k*500+500)); sleep 0.02; done"))
	defer r.Run("container", "rm", "-f", "rot")
	r.Must("container", "start", "rot")
	f := follow(t, r, "rot")
	for want := 1; want <= 20000; want++ {
		if l := f.next(t, 15*time.Second); l != strconv.Itoa(want) {
			t.Fatalf("logs -f: line %d is %q", want, l)
		}
	}
	f.end(t, 15*time.Second)
	kept, rotated := logFiles(t, r.Path, id)
	if rotated != 2 {
		t.Errorf("%d rotated files, want 2", rotated)
	}
	if got := r.Must("container", "logs", "rot"); got != strings.Join(kept, "") || !strings.HasSuffix(got, "\n20000\n") {
		t.Errorf("logs gave %d bytes, the files hold %d", len(got), len(strings.Join(kept, "")))
	}
	r.Must("container", "run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "hi")
	defer r.Run("container", "rm", "-f", "quiet")
	if res := r.Run("container", "logs", "quiet"); res.Code == 0 || !strings.Contains(res.Stderr, "configured logging driver does not support reading") {
		t.Errorf("logs with driver none: exit %d, %q", res.Code, res.Stderr)
	}
}

// logFileSizes is the size of each file of a container's log.
func logFileSizes(t *testing.T, root, id string) []int64 {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "containers", id, "log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, e := range ents {
		if info, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), "json.log") {
			out = append(out, info.Size())
		}
	}
	return out
}
