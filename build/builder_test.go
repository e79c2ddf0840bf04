package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
)

// fakeStore is an in-memory image store.
type fakeStore struct {
	mu     sync.Mutex
	images map[digest.Digest]fakeImage
	tags   map[string]digest.Digest
}

type fakeImage struct {
	cb     []byte
	layers []ocispec.Descriptor
}

func newFakeStore() *fakeStore {
	s := &fakeStore{images: map[digest.Digest]fakeImage{}, tags: map[string]digest.Digest{}}
	cb, _ := json.Marshal(ocispec.Image{Config: ocispec.ImageConfig{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}}})
	s.CommitConfig(context.Background(), cb, nil, "busybox", false)
	return s
}

func (s *fakeStore) Get(_ context.Context, ref string) (image.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.tags[ref]
	if !ok {
		id = digest.Digest(ref)
	}
	im, ok := s.images[id]
	if !ok {
		return image.Image{}, errdefs.NotFoundf("no such image: %s", ref)
	}
	img := image.Image{ID: id, Manifest: ocispec.Manifest{Layers: im.layers}}
	json.Unmarshal(im.cb, &img.Config)
	return img, nil
}

func (s *fakeStore) RawConfig(_ context.Context, id digest.Digest) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.images[id].cb, nil
}

func (s *fakeStore) PutLayer(_ context.Context, r io.Reader) (ocispec.Descriptor, int, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return ocispec.Descriptor{}, 0, err
	}
	n := 0
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		if _, err := tr.Next(); err != nil {
			break
		}
		n++
	}
	return ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}, n, nil
}

func (s *fakeStore) CommitConfig(_ context.Context, cb []byte, layers []ocispec.Descriptor, ref string, _ bool) (image.Image, error) {
	s.mu.Lock()
	id := digest.FromBytes(cb)
	s.images[id] = fakeImage{cb: cb, layers: layers}
	if ref != "" {
		s.tags[ref] = id
	}
	s.mu.Unlock()
	return s.Get(context.Background(), id.String())
}

func (s *fakeStore) Tag(_ context.Context, src, dst string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tags[dst] = digest.Digest(src)
	return nil
}

// fakeWorker records what steps ran. A RUN whose script ends in
// "exit N" exits N; any other RUN writes /ran-<script hash>.
type fakeWorker struct {
	mu    sync.Mutex
	runs  []Process
	open  int
	onRun func(p Process) // called before a RUN, outside the lock
}

func (w *fakeWorker) New(context.Context, image.Image) (Step, error) {

	w.mu.Lock()
	w.open++
	w.mu.Unlock()
	return &fakeStep{w: w}, nil
}

func (w *fakeWorker) ran() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, p := range w.runs {
		out = append(out, p.Args[len(p.Args)-1])
	}
	return out
}

type fakeStep struct {
	w       *fakeWorker
	entries []*tar.Header
	data    [][]byte
}

func (s *fakeStep) Stat(_ context.Context, p string) (bool, bool, error) {
	return p == "/", p == "/", nil
}

func (s *fakeStep) CopyIn(_ context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(tr)
		s.entries, s.data = append(s.entries, h), append(s.data, b)
	}
}

func (s *fakeStep) CopyOut(_ context.Context, p string) (io.ReadCloser, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte("from " + p + "\n")
	tw.WriteHeader(&tar.Header{Name: filepath.Base(p), Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write(body)
	tw.Close()
	return io.NopCloser(&buf), nil
}

func (s *fakeStep) Run(_ context.Context, p Process, out io.Writer) (int, error) {
	if s.w.onRun != nil {
		s.w.onRun(p)
	}
	s.w.mu.Lock()
	s.w.runs = append(s.w.runs, p)
	s.w.mu.Unlock()
	script := p.Args[len(p.Args)-1]
	if i := strings.LastIndex(script, "exit "); i >= 0 {
		n, _ := strconv.Atoi(strings.TrimSpace(script[i+5:]))
		fmt.Fprintln(out, "failing")
		return n, nil
	}
	sum := sha256.Sum256([]byte(script + strings.Join(p.Env, ",")))
	s.entries = append(s.entries, &tar.Header{Name: "ran-" + hex.EncodeToString(sum[:4]), Mode: 0o644, Typeflag: tar.TypeReg})
	s.data = append(s.data, nil)
	return 0, nil
}

func (s *fakeStep) Diff(_ context.Context, w io.Writer) error {
	tw := tar.NewWriter(w)
	for i, h := range s.entries {
		h.Size = int64(len(s.data[i]))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		tw.Write(s.data[i])
	}
	return tw.Close()
}

func (s *fakeStep) Close(context.Context) error {
	s.w.mu.Lock()
	s.w.open--
	s.w.mu.Unlock()
	return nil
}

type fixture struct {
	t     *testing.T
	dir   string
	b     *Builder
	w     *fakeWorker
	store *fakeStore
}

func newFixture(t *testing.T, files map[string]string) *fixture {
	dir := t.TempDir()
	for f, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache, err := OpenCache(filepath.Join(t.TempDir(), "cache.json"))
	if err != nil {
		t.Fatal(err)
	}
	w, st := &fakeWorker{}, newFakeStore()
	return &fixture{t: t, dir: dir, w: w, store: st, b: &Builder{Store: st, Worker: w, Cache: cache}}
}

func (f *fixture) build(o Options) (Result, string) {
	f.t.Helper()
	var out bytes.Buffer
	o.Context, o.Progress = f.dir, NewProgress(&out)
	res, err := f.b.Build(context.Background(), o)
	if err != nil {
		f.t.Fatalf("build: %v\n%s", err, out.String())
	}
	if f.w.open != 0 {
		f.t.Fatalf("%d step containers left open", f.w.open)
	}
	return res, out.String()
}

func (f *fixture) write(name, content string) {
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

const simple = `FROM busybox
ARG V=one
COPY a.txt /a.txt
ENV X=$V
RUN echo $X
CMD ["true"]
`

func TestRebuildMustComeFromTheCache(t *testing.T) {
	f := newFixture(t, map[string]string{"Dockerfile": simple, "a.txt": "a"})
	first, out := f.build(Options{Tags: []string{"app"}})
	if first.Steps != 4 || first.Cached != 0 {
		t.Fatalf("cold build: %d steps, %d cached\n%s", first.Steps, first.Cached, out)
	}
	again, out := f.build(Options{Tags: []string{"app"}})
	if again.Steps != 0 || again.Cached != 4 || again.Image.ID != first.Image.ID || len(f.w.ran()) != 1 {
		t.Fatalf("rebuild: %d steps, %d cached, image %s (was %s), runs %v\n%s", again.Steps, again.Cached, again.Image.ID, first.Image.ID, f.w.ran(), out)
	}
	if strings.Count(out, "CACHED") != 4 {
		t.Errorf("progress:\n%s", out)
	}
	noCache, _ := f.build(Options{NoCache: true})
	if noCache.Steps != 4 || len(f.w.ran()) != 2 {
		t.Errorf("--no-cache: %d steps, runs %v", noCache.Steps, f.w.ran())
	}
}

func TestChangesMustRebuildFromTheStepThatSeesThem(t *testing.T) {
	f := newFixture(t, map[string]string{"Dockerfile": simple, "a.txt": "a"})
	f.build(Options{})
	f.write("a.txt", "b")
	res, out := f.build(Options{})
	if res.Cached != 0 || res.Steps != 4 {
		t.Errorf("a changed COPY source: %d cached, %d ran\n%s", res.Cached, res.Steps, out)
	}
	one := "two"
	res, out = f.build(Options{BuildArgs: map[string]*string{"V": &one}})
	if res.Cached != 1 || res.Steps != 3 {
		t.Errorf("a build arg: %d cached (COPY), %d ran (ENV, RUN, CMD)\n%s", res.Cached, res.Steps, out)
	}
	runs := f.w.ran()
	if p := f.w.runs[len(runs)-1]; !containsEnv(p.Env, "X=two") || !containsEnv(p.Env, "V=two") {
		t.Errorf("RUN env %v: want ENV X and the arg V", p.Env)
	}
	unused := "x"
	res, _ = f.build(Options{BuildArgs: map[string]*string{"V": &one, "NOPE": &unused}})
	if res.Steps != 0 || !strings.Contains(strings.Join(res.Notes, "\n"), "NOPE was not consumed") {
		t.Errorf("unused arg: %d ran, notes %v", res.Steps, res.Notes)
	}
}

func containsEnv(env []string, kv string) bool {
	for _, e := range env {
		if e == kv {
			return true
		}
	}
	return false
}

func TestTargetMustBuildOnlyTheStagesItNeeds(t *testing.T) {
	df := `ARG BASE=busybox
FROM $BASE AS builder
RUN make
FROM busybox AS broken
RUN exit 9
FROM builder AS test
RUN make test
FROM busybox
COPY --from=builder /out /out
RUN ls /out
`
	f := newFixture(t, map[string]string{"Dockerfile": df})
	_, out := f.build(Options{})
	got := strings.Join(f.w.ran(), ",")
	if got != "make,ls /out" {
		t.Errorf("runs %q, want the builder's and the final stage's\n%s", got, out)
	}
	f.build(Options{Target: "test"})
	if got := strings.Join(f.w.ran(), ","); got != "make,ls /out,make test" {
		t.Errorf("--target test runs %q", got)
	}
	var out2 bytes.Buffer
	_, err := f.b.Build(context.Background(), Options{Context: f.dir, Target: "nope", Progress: NewProgress(&out2)})
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "builder, test") {
		t.Errorf("unknown target: %v", err)
	}
}

func TestFailedRunMustNameFileLineAndCode(t *testing.T) {
	f := newFixture(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo a\nRUN exit 3\n"})
	var out bytes.Buffer
	_, err := f.b.Build(context.Background(), Options{Context: f.dir, Progress: NewProgress(&out)})
	var e *Error
	if !errors.As(err, &e) || e.Line != 3 || e.Instr != "RUN" || !strings.Contains(err.Error(), "exit code: 3") {
		t.Fatalf("error %v (%#v)", err, e)
	}
	if errdefs.IsInvalid(err) {
		t.Error("a failed step is not bad input")
	}
	if f.w.open != 0 {
		t.Errorf("%d step containers left", f.w.open)
	}
	if !strings.Contains(out.String(), "ERROR:") || !strings.Contains(out.String(), "failing") {
		t.Errorf("progress:\n%s", out.String())
	}
}

func TestParseErrorsMustNameTheLine(t *testing.T) {
	for _, tc := range []struct{ df, want string }{
		{"FROM busybox\nRUNN x\n", "Dockerfile:2: RUNN: "},
		{"# just a comment\n", "Dockerfile:1: file with no instructions"},
		{"ARG X=1\n", "Dockerfile: no FROM instruction"},
		{"FROM busybox\nCOPY onlyone\n", "Dockerfile:2: COPY: "},
		{"FROM busybox AS a\nFROM busybox AS a\n", "Dockerfile:2: FROM: stage name \"a\" is used twice"},
	} {
		f := newFixture(t, map[string]string{"Dockerfile": tc.df})
		_, err := f.b.Build(context.Background(), Options{Context: f.dir})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !errdefs.IsInvalid(err) {
			t.Errorf("%q: %v, want prefix %q (invalid)", tc.df, err, tc.want)
		}
	}
}

func TestConfigInstructionsMustLandInTheImage(t *testing.T) {
	df := `FROM busybox
LABEL a=b
EXPOSE 80 53/udp
VOLUME /data
USER nobody
WORKDIR app
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD true
SHELL ["/bin/ash", "-c"]
ENTRYPOINT ["/bin/app"]
ONBUILD RUN echo child
MAINTAINER me
`
	f := newFixture(t, map[string]string{"Dockerfile": df})
	res, out := f.build(Options{Labels: map[string]string{"extra": "1"}})
	cb, _ := f.store.RawConfig(context.Background(), res.Image.ID)
	var conf struct {
		Author string
		Config struct {
			Labels       map[string]string
			ExposedPorts map[string]struct{}
			Volumes      map[string]struct{}
			User         string
			WorkingDir   string
			StopSignal   string
			Entrypoint   []string
			Cmd          []string
			Shell        []string
			OnBuild      []string
			Healthcheck  struct {
				Test     []string
				Interval int64
			}
		} `json:"config"`
		History []ocispec.History
	}
	json.Unmarshal(cb, &conf)
	c := conf.Config
	if c.Labels["a"] != "b" || c.Labels["extra"] != "1" || len(c.ExposedPorts) != 2 || len(c.Volumes) != 1 || c.User != "nobody" ||
		c.WorkingDir != "/app" || c.StopSignal != "SIGINT" || c.Entrypoint[0] != "/bin/app" || c.Cmd != nil ||
		c.Shell[0] != "/bin/ash" || c.OnBuild[0] != "RUN echo child" || c.Healthcheck.Test[1] != "true" || c.Healthcheck.Interval != 5e9 || conf.Author != "me" {
		t.Errorf("config %+v\n%s", conf, out)
	}
	empty := 0
	for _, h := range conf.History {
		if h.EmptyLayer {
			empty++
		}
	}
	if len(conf.History) < 11 || empty < 10 {
		t.Errorf("history: %d entries, %d empty", len(conf.History), empty)
	}
	// A child image runs the ONBUILD trigger first.
	f.store.Tag(context.Background(), res.Image.ID.String(), "parent")
	f.write("Dockerfile", "FROM parent\nRUN echo mine\n")
	f.build(Options{})
	if got := strings.Join(f.w.ran(), ","); !strings.HasSuffix(got, "echo child,echo mine") {
		t.Errorf("runs %q: want the trigger first", got)
	}
}

// Independent stages must run at the same time: each stage's RUN waits
// until the other's has started (a serial build would stall here).
func TestIndependentStagesMustRunInParallel(t *testing.T) {
	df := "FROM busybox AS a\nRUN one\nFROM busybox AS b\nRUN two\nFROM busybox\nCOPY --from=a /x /a\nCOPY --from=b /x /b\n"
	f := newFixture(t, map[string]string{"Dockerfile": df})
	var wg sync.WaitGroup
	wg.Add(2)
	both := make(chan struct{})
	go func() { wg.Wait(); close(both) }()
	f.w.onRun = func(Process) {
		wg.Done()
		select {
		case <-both:
		case <-time.After(10 * time.Second):
			t.Error("the two independent stages did not run at the same time")
		}
	}
	f.build(Options{})
}

func TestProxyArgsMustReachRunButNotTheKey(t *testing.T) {
	f := newFixture(t, map[string]string{"Dockerfile": "FROM busybox\nRUN fetch\n"})
	p1, p2 := "http://127.0.0.1:3128", "http://127.0.0.1:3129"
	f.build(Options{BuildArgs: map[string]*string{"HTTP_PROXY": &p1}})
	if !containsEnv(f.w.runs[0].Env, "HTTP_PROXY="+p1) {
		t.Errorf("RUN env %v lacks the proxy", f.w.runs[0].Env)
	}
	res, _ := f.build(Options{BuildArgs: map[string]*string{"HTTP_PROXY": &p2}})
	if res.Steps != 0 {
		t.Error("a changed proxy arg must not invalidate the cache")
	}
	for _, n := range res.Notes {
		if strings.Contains(n, "HTTP_PROXY") {
			t.Errorf("a proxy arg is not an unused arg: %s", n)
		}
	}
}

func TestEscapeDirectiveAndSyntaxNote(t *testing.T) {
	f := newFixture(t, map[string]string{"Dockerfile": "# syntax=docker/dockerfile:1\n# escape=`\nFROM busybox\nRUN echo a `\n  b\n"})
	res, _ := f.build(Options{})
	if got := f.w.ran(); len(got) != 1 || got[0] != "echo a   b" {
		t.Errorf("runs %q: the backtick continues the line", got)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "syntax directive (docker/dockerfile:1) is ignored") {
		t.Errorf("notes %v", res.Notes)
	}
}

func FuzzDockerfilePlan(f *testing.F) {
	f.Add([]byte(simple))
	f.Add([]byte("ARG B=x\nFROM $B AS a\nFROM a\nCOPY --from=a / /\n"))
	f.Add([]byte("# escape=`\nFROM busybox\nRUN a `\n b\n"))
	f.Add([]byte("FROM busybox\nRUN <<EOF\necho hi\nEOF\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		plan := func() string {
			df, err := Parse("Dockerfile", data)
			if err != nil {
				return "error: " + err.Error()
			}
			r := &run{df: df, byName: map[string]int{}}
			r.lex = newLex(df)
			r.global = platformArgs()
			for i, st := range df.Stages {
				r.stages = append(r.stages, &stageRun{i: i, st: st})
				if st.Name != "" {
					r.byName[st.Name] = i
				}
			}
			need, err := r.needed(len(r.stages) - 1)
			if err != nil {
				return "error: " + err.Error()
			}
			return fmt.Sprint(need)
		}
		if a, b := plan(), plan(); a != b {
			t.Fatalf("two plans differ: %s / %s", a, b)
		}
	})
}
