package examples

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// steps reads buildkit-style progress: each step's title and how it
// ended (DONE, CACHED or ERROR).
func steps(out string) map[string]string {
	titles := map[string]string{}
	got := map[string]string{}
	head := regexp.MustCompile(`^#(\d+) (\[.*)$`)
	end := regexp.MustCompile(`^#(\d+) (DONE|CACHED|ERROR)`)
	for _, l := range strings.Split(out, "\n") {
		if m := head.FindStringSubmatch(l); m != nil {
			// "[2/6] RUN x" → "RUN x"; "[builder 2/3] RUN x" → "builder RUN x"
			t := m[2]
			i := strings.Index(t, "] ")
			label := strings.Fields(t[1:i])
			t = t[i+2:]
			if len(label) == 2 {
				t = label[0] + " " + t
			}
			titles[m[1]] = t
		} else if m := end.FindStringSubmatch(l); m != nil && titles[m[1]] != "" {
			got[titles[m[1]]] = m[2]
		}
	}
	return got
}

func imageID(t *testing.T, r *testutil.Root, ref string) string {
	t.Helper()
	var out []struct{ Id string }
	if err := json.Unmarshal([]byte(r.Must("image", "inspect", ref)), &out); err != nil || len(out) != 1 {
		t.Fatalf("image inspect %s: %v", ref, err)
	}
	return out[0].Id
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for f, content := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const sixSteps = `FROM busybox
WORKDIR /app
COPY files/ /app/
ARG GREETING=hello
ENV APP_GREETING=$GREETING
RUN echo "$APP_GREETING from run" > /app/run.txt && ls /app > /tmp/ls && wc -l < /tmp/ls > /app/count.txt
CMD ["cat", "/app/run.txt"]
`

// TestBuildMustRunStepsAndCacheThem: the acceptance of the build issue on
// one context of 1,000 files: a cold build, an unchanged rebuild that is
// all CACHED (same image, a fraction of the time), a changed file that
// rebuilds from its COPY on, an ignored file that changes nothing, and a
// build arg that rebuilds from its first use.
func TestBuildMustRunStepsAndCacheThem(t *testing.T) {
	r := testutil.NewRoot(t)
	dir := t.TempDir()
	files := map[string]string{"Dockerfile": sixSteps, ".dockerignore": "**/*.log\n"}
	for i := range 1000 {
		files[fmt.Sprintf("files/d%d/f%04d", i%10, i)] = fmt.Sprintf("file %d\n", i)
	}
	files["files/notes.log"] = "ignored\n"
	writeFiles(t, dir, files)
	build := func(args ...string) (testutil.Result, time.Duration) {
		t.Helper()
		began := time.Now()
		res := r.Run(append(append([]string{"image", "build"}, args...), dir)...)
		return res, time.Since(began)
	}
	res, cold := build("-t", "app:1")
	if res.Code != 0 {
		t.Fatalf("cold build: %d\n%s", res.Code, res.Stderr)
	}
	st := steps(res.Stderr)
	for _, s := range []string{"WORKDIR /app", "COPY files/ /app/", "ENV APP_GREETING=$GREETING", "CMD [\"cat\", \"/app/run.txt\"]"} {
		if st[s] != "DONE" {
			t.Errorf("cold build: step %q: %q\n%s", s, st[s], res.Stderr)
		}
	}
	if out := r.Must("container", "run", "--rm", "app:1"); out != "hello from run\n" {
		t.Errorf("CMD output %q", out)
	}
	out := r.Must("container", "run", "--rm", "app:1", "sh", "-c", `pwd; echo $APP_GREETING; cat /app/d3/f0003 /app/count.txt; ls /app/notes.log 2>&1; true`)
	if want := "/app\nhello\nfile 3\n11\n"; !strings.HasPrefix(out, want) || !strings.Contains(out, "No such file") {
		t.Errorf("in the container:\n%s\nwant the workdir, the env, the copied file, 10 dirs + run.txt, and no ignored file", out)
	}
	hist := r.Must("image", "history", "app:1")
	for _, s := range []string{"WORKDIR /app", "COPY files/ /app/", "ENV APP_GREETING", "RUN /bin/sh -c echo", "CMD"} {
		if !strings.Contains(hist, s) {
			t.Errorf("history lacks %q:\n%s", s, hist)
		}
	}
	id := imageID(t, r, "app:1")
	if ls := r.Must("image", "ls", "--format", "json"); strings.Contains(ls, "<none>") || strings.Count(ls, `"Repository"`) != 2 {
		t.Errorf("image ls shows the build steps' images:\n%s", ls)
	}
	if ls := r.Must("image", "ls", "-a", "-q"); strings.Count(ls, "\n") < 6 {
		t.Errorf("image ls -a hides the build steps' images:\n%s", ls)
	}

	res, warm := build("-t", "app:1")
	if res.Code != 0 {
		t.Fatalf("rebuild: %s", res.Stderr)
	}
	st = steps(res.Stderr)
	cached := 0
	for title, how := range st {
		if strings.HasPrefix(title, "FROM") {
			continue
		}
		if how != "CACHED" {
			t.Errorf("unchanged rebuild ran %q (%s)", title, how)
		}
		cached++
	}
	if cached != 5 {
		t.Errorf("rebuild: %d cached steps, want 5:\n%s", cached, res.Stderr)
	}
	if got := imageID(t, r, "app:1"); got != id {
		t.Errorf("unchanged rebuild made another image: %s, was %s", got, id)
	}
	t.Logf("1,000-file context: cold build %v, unchanged rebuild %v (%.1f%%)", cold, warm, 100*float64(warm)/float64(cold))
	if warm*4 > cold {
		t.Errorf("unchanged rebuild took %v, more than a quarter of the cold build's %v", warm, cold)
	}

	// An ignored file changes nothing.
	writeFiles(t, dir, map[string]string{"files/notes.log": "still ignored\n"})
	res, _ = build("-t", "app:1")
	for title, how := range steps(res.Stderr) {
		if !strings.HasPrefix(title, "FROM") && how != "CACHED" {
			t.Errorf("a change to an ignored file ran %q", title)
		}
	}

	// One copied file changes: COPY and what follows run again.
	writeFiles(t, dir, map[string]string{"files/d5/f0005": "changed\n"})
	res, _ = build("-t", "app:2")
	st = steps(res.Stderr)
	if st["WORKDIR /app"] != "CACHED" || st["COPY files/ /app/"] != "DONE" || st["ENV APP_GREETING=$GREETING"] != "DONE" {
		t.Errorf("after one file changed: %v\n%s", st, res.Stderr)
	}
	if out := r.Must("container", "run", "--rm", "app:2", "cat", "/app/d5/f0005"); out != "changed\n" {
		t.Errorf("changed file in the new image: %q", out)
	}

	// A build arg: the steps before its first use stay cached.
	res, _ = build("-t", "app:3", "--build-arg", "GREETING=bye")
	st = steps(res.Stderr)
	if st["WORKDIR /app"] != "CACHED" || st["COPY files/ /app/"] != "CACHED" || st["ENV APP_GREETING=$GREETING"] != "DONE" {
		t.Errorf("after --build-arg: %v\n%s", st, res.Stderr)
	}
	if out := r.Must("container", "run", "--rm", "app:3"); out != "bye from run\n" {
		t.Errorf("build arg in the image: %q", out)
	}
}

// TestBuildMultiStageMustBuildOnlyWhatItNeeds: COPY --from a builder
// stage; a stage nobody uses is not built; --target builds one stage.
func TestBuildMultiStageMustBuildOnlyWhatItNeeds(t *testing.T) {
	r := testutil.NewRoot(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM busybox AS builder
RUN mkdir /out && echo built > /out/artifact
FROM busybox AS unused
RUN exit 7
FROM busybox
COPY --from=builder /out/artifact /artifact
CMD ["cat", "/artifact"]
`})
	res := r.Run("image", "build", "-t", "multi:1", dir)
	if res.Code != 0 {
		t.Fatalf("build: %s", res.Stderr)
	}
	if strings.Contains(res.Stderr, "unused") {
		t.Errorf("the unused stage was built:\n%s", res.Stderr)
	}
	if out := r.Must("container", "run", "--rm", "multi:1"); out != "built\n" {
		t.Errorf("final stage: %q", out)
	}
	res = r.Run("image", "build", "--target", "builder", "-t", "multi:builder", dir)
	if res.Code != 0 {
		t.Fatalf("build --target: %s", res.Stderr)
	}
	if strings.Contains(res.Stderr, "[stage-2") || strings.Contains(res.Stderr, "COPY --from") {
		t.Errorf("--target builder built more:\n%s", res.Stderr)
	}
	if out := r.Must("container", "run", "--rm", "multi:builder", "cat", "/out/artifact"); out != "built\n" {
		t.Errorf("builder stage image: %q", out)
	}
}

// TestBuildFailureMustNameTheStep: RUN exit 3 fails naming the file, the
// line and the code, and leaves no step container; a syntax error names
// its line and instruction.
func TestBuildFailureMustNameTheStep(t *testing.T) {
	r := testutil.NewRoot(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUN echo started\nRUN exit 3\nCMD [\"true\"]\n"})
	res := r.Run("image", "build", "-t", "fail:1", dir)
	if res.Code == 0 || !strings.Contains(res.Stderr, "Dockerfile:3: RUN") || !strings.Contains(res.Stderr, "exit code: 3") {
		t.Errorf("failed build: exit %d\n%s", res.Code, res.Stderr)
	}
	noStackTrace(t, result{code: res.Code, stdout: res.Stdout, stderr: res.Stderr})
	if out := r.Must("container", "ps", "-a", "-q"); out != "" {
		t.Errorf("containers left: %s", out)
	}
	if r.Run("image", "inspect", "fail:1").Code == 0 {
		t.Error("a failed build tagged an image")
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nRUNN echo x\n"})
	res = r.Run("image", "build", dir)
	if res.Code != 2 || !strings.Contains(res.Stderr, "Dockerfile:2: RUNN") {
		t.Errorf("syntax error: exit %d\n%s", res.Code, res.Stderr)
	}
}

// TestComposeUpBuildMustNotRecreateUnchanged: up --build builds and
// starts the service; a second up --build with no change recreates
// nothing; berth build rebuilds from the cache.
func TestComposeUpBuildMustNotRecreateUnchanged(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "bld", map[string]string{
		"compose.yaml": "services:\n  app:\n    build: .\n    stop_signal: SIGKILL\n  copy:\n    build: .\n    image: bld-shared\n    stop_signal: SIGKILL\n",
		"Dockerfile":   "FROM busybox\nCOPY msg /msg\nCMD [\"sh\", \"-c\", \"cat /msg; exec sleep 300\"]\n",
		"msg":          "from the build\n",
	})
	res := run("up", "-d", "--build")
	must(t, res, "up --build")
	before := psAll(t, run)
	if before["bld-app-1"].State != "running" || before["bld-copy-1"].State != "running" {
		t.Fatalf("after up --build: %+v", before)
	}
	if out := must(t, run("exec", "-T", "app", "cat", "/msg"), "exec"); out != "from the build\n" {
		t.Errorf("the built file: %q", out)
	}
	res = run("up", "-d", "--build")
	must(t, res, "second up --build")
	for n, e := range psAll(t, run) {
		if e.ID != before[n].ID {
			t.Errorf("second up --build recreated %s:\n%s", n, res.Stderr)
		}
	}
	res = run("build")
	must(t, res, "build")
	if strings.Count(res.Stderr, "CACHED") < 2 {
		t.Errorf("compose build of unchanged services:\n%s", res.Stderr)
	}
	// up builds a missing image without being asked.
	must(t, run("down", "-t", "0"), "down")
	must(t, r.Run("image", "rm", "bld-app"), "image rm")
	res = run("up", "-d", "app")
	must(t, res, "up with the image missing")
	if !strings.Contains(res.Stderr, "naming to bld-app") || psAll(t, run)["bld-app-1"].State != "running" {
		t.Errorf("up did not build the missing image:\n%s", res.Stderr)
	}
}

// TestBuildInstructionsMustLandInTheImage: --chown by name and --chmod,
// ADD of a local tar.gz (extracted) and of a URL (not extracted), RUN
// and COPY heredocs, RUN --network none, and a clear error for an
// unreachable URL.
func TestBuildInstructionsMustLandInTheImage(t *testing.T) {
	r := testutil.NewRoot(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.WriteString(w, "remote body\n")
	}))
	defer srv.Close()
	dir := t.TempDir()
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "pkg/inside.txt", Mode: 0o644, Size: 7, Typeflag: tar.TypeReg})
	tw.Write([]byte("inside\n"))
	tw.Close()
	gz.Close()
	writeFiles(t, dir, map[string]string{
		"secret.txt": "s3cret\n",
		"layer.tgz":  tgz.String(),
		"Dockerfile": "FROM busybox\n" +
			"COPY --chown=nobody:nogroup --chmod=0640 secret.txt /etc/app/\n" +
			"COPY secret.txt /deep/new/file\n" +
			"ADD layer.tgz /opt/\n" +
			"ADD " + srv.URL + "/remote.txt /remote.txt\n" +
			"RUN <<EOF\necho heredoc > /heredoc.txt\nEOF\n" +
			"COPY <<EOF /inline.txt\ninline body\nEOF\n" +
			"RUN --network=none ip -o link | grep -v ' lo:' | wc -l > /links.txt\n",
	})
	res := r.Run("image", "build", "-t", "instr:1", dir)
	if res.Code != 0 {
		t.Fatalf("build: %s", res.Stderr)
	}
	out := r.Must("container", "run", "--rm", "instr:1", "sh", "-c",
		`stat -c '%U:%G %a' /etc/app/secret.txt; cat /deep/new/file /opt/pkg/inside.txt /remote.txt /heredoc.txt /inline.txt /links.txt`)
	want := "nobody:nogroup 640\ns3cret\ninside\nremote body\nheredoc\ninline body\n0\n"
	if out != want {
		t.Errorf("in the image:\n%s\nwant:\n%s", out, want)
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nADD http://127.0.0.1:1/nothing.txt /x\n"})
	res = r.Run("image", "build", dir)
	if res.Code == 0 || !strings.Contains(res.Stderr, "Dockerfile:2: ADD") || !strings.Contains(res.Stderr, "cannot download it") {
		t.Errorf("unreachable URL: exit %d\n%s", res.Code, res.Stderr)
	}
}
