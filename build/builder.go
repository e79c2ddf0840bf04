package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/build/buildctx"
	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
)

// Options are one build's inputs (berth image build / compose build:).
type Options struct {
	// Context is the build context directory.
	Context string
	// Dockerfile is the file's path (relative paths are inside Context);
	// "" is Context/Dockerfile. Inline, when set, is the Dockerfile itself.
	Dockerfile string
	Inline     []byte
	Tags       []string
	Target     string
	// BuildArgs are --build-arg values; a nil value takes the variable
	// from Env, and is left out when Env has none (as Docker).
	BuildArgs map[string]*string
	Labels    map[string]string
	NoCache   bool
	Pull      bool
	Network   string // RUN's network unless RUN --network says: default, none, host
	// Contexts are named additional contexts (compose additional_contexts,
	// buildx --build-context): a directory, or docker-image://REF.
	Contexts map[string]string
	// Progress gets the plain progress lines; nil is quiet.
	Progress *Progress
}

// Builder runs builds. Its fields are set once; Build may be called from
// several goroutines (compose builds independent services in parallel).
type Builder struct {
	Store  Store
	Worker Worker
	Cache  *Cache
	// Env looks up the caller's environment (build args without a value).
	Env func(string) (string, bool)
	// Pull fetches a base image from its registry (nil: local images
	// only); a FROM image that is missing, or every one with --pull.
	Pull func(ctx context.Context, ref string) (image.Image, error)

	mu       sync.Mutex
	inflight map[string]chan struct{} // cache keys a step is making now
}

// claim makes the caller the one to execute the step of key, or waits
// for the build executing it (parallel builds of services that share a
// Dockerfile run each step once) and returns false.
func (b *Builder) claim(ctx context.Context, key string) (release func(), mine bool, err error) {
	for {
		b.mu.Lock()
		if b.inflight == nil {
			b.inflight = map[string]chan struct{}{}
		}
		ch, busy := b.inflight[key]
		if !busy {
			ch = make(chan struct{})
			b.inflight[key] = ch
			b.mu.Unlock()
			return func() {
				b.mu.Lock()
				delete(b.inflight, key)
				b.mu.Unlock()
				close(ch)
			}, true, nil
		}
		b.mu.Unlock()
		select {
		case <-ch:
			return func() {}, false, nil
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// Result is a finished build.
type Result struct {
	Image image.Image
	// Steps and Cached count the steps that ran or came from the cache.
	Steps, Cached int
	// Notes are warnings for the user (ignored directives, unused args).
	Notes []string
}

// predefined are the build args any build may set without declaring
// them (Docker's proxy variables); they reach RUN but not the cache key.
var predefined = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// platformArgs are buildkit's automatic platform args.
func platformArgs() map[string]string {
	p := "linux/" + goruntime.GOARCH
	return map[string]string{
		"TARGETPLATFORM": p, "TARGETOS": "linux", "TARGETARCH": goruntime.GOARCH, "TARGETVARIANT": "",
		"BUILDPLATFORM": p, "BUILDOS": "linux", "BUILDARCH": goruntime.GOARCH, "BUILDVARIANT": "",
	}
}

// run is one build in progress.
type run struct {
	b        *Builder
	o        Options
	df       *Dockerfile
	ctx      *buildctx.Context
	lex      *shell.Lex
	lexMu    sync.Mutex
	prog     *Progress
	args     map[string]string // --build-arg values resolved
	used     sync.Map          // build args some stage declared
	global   map[string]string // meta args' values (FROM lines)
	stages   []*stageRun
	byName   map[string]int
	extra    map[string]*buildctx.Context
	notesMu  sync.Mutex
	notes    []string
	firstErr error
	countsMu sync.Mutex
	steps    int
	cached   int
}

// stageRun is one stage: its result once done.
type stageRun struct {
	i     int
	st    instructions.Stage
	label string // "builder 2/5" prefix: the stage's name in multi-stage files
	done  chan struct{}
	img   image.Image
	err   error
}

// stageState is a stage's image while it is built.
type stageState struct {
	img    image.Image // ID "" before the first commit on scratch
	conf   dockerspec.DockerOCIImage
	layers []ocispec.Descriptor
	args   map[string]string // ARGs declared in the stage
	order  []string          // their declaration order
	cmdSet bool              // CMD set in this stage (ENTRYPOINT keeps it)
}

// Build builds o and tags the result.
func (b *Builder) Build(ctx context.Context, o Options) (Result, error) {
	prog := o.Progress
	if prog == nil {
		prog = NewProgress(nil)
	}
	r := &run{b: b, o: o, prog: prog, byName: map[string]int{}, extra: map[string]*buildctx.Context{}}
	if err := r.load(); err != nil {
		return Result{}, err
	}
	target, err := r.targetStage()
	if err != nil {
		return Result{}, err
	}
	need, err := r.needed(target)
	if err != nil {
		return Result{}, err
	}
	// Stages run in parallel as their dependencies allow; the first
	// failure cancels the others and is the one reported.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range r.stages {
		if need[i] {
			go r.buildStage(sctx, r.stages[i], cancel)
		}
	}
	// Every started stage ends before Build returns (no goroutine outlives it).
	for i := range r.stages {
		if need[i] {
			<-r.stages[i].done
		}
	}
	if r.firstErr != nil {
		return Result{}, r.firstErr
	}
	img, err := r.finish(ctx, r.stages[target].img)
	if err != nil {
		return Result{}, err
	}
	for k := range r.args {
		if _, ok := r.used.Load(k); !ok && !predefined[k] {
			r.note(fmt.Sprintf("build arg %s was not consumed: no ARG %s in the stages built", k, k))
		}
	}
	sort.Strings(r.notes)
	return Result{Image: img, Steps: r.steps, Cached: r.cached, Notes: r.notes}, nil
}

func (r *run) fail(err error) {
	r.notesMu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.notesMu.Unlock()
}

func (r *run) note(s string) {
	r.notesMu.Lock()
	r.notes = append(r.notes, s)
	r.notesMu.Unlock()
}

// load reads the Dockerfile and the context.
func (r *run) load() error {
	name, data := "Dockerfile", r.o.Inline
	var ignoreFile string
	if data == nil {
		p := r.o.Dockerfile
		if p == "" {
			p = "Dockerfile"
		}
		name = p
		if !filepath.IsAbs(p) {
			p = filepath.Join(r.o.Context, p)
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			return errdefs.NotFoundf("Dockerfile %s: no such file; write one or point -f / build.dockerfile at it", p)
		}
		if err != nil {
			return fmt.Errorf("Dockerfile %s: %w", p, err)
		}
		data = b
		if _, err := os.Stat(p + ".dockerignore"); err == nil {
			ignoreFile = p + ".dockerignore"
		}
	}
	df, err := Parse(name, data)
	if err != nil {
		return err
	}
	r.df = df
	r.notes = append(r.notes, df.Notes...)
	r.lex = newLex(df)
	if ignoreFile == "" {
		ignoreFile = filepath.Join(r.o.Context, ".dockerignore")
		if _, err := os.Stat(ignoreFile); err != nil {
			ignoreFile = ""
		}
	}
	if r.ctx, err = buildctx.OpenWithIgnore(r.o.Context, ignoreFile); err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	r.args = map[string]string{}
	for k, v := range r.o.BuildArgs {
		if v != nil {
			r.args[k] = *v
		} else if r.b.Env != nil {
			if ev, ok := r.b.Env(k); ok {
				r.args[k] = ev
			}
		}
	}
	r.global = platformArgs()
	for _, ma := range df.MetaArgs {
		for _, kv := range ma.Args {
			v, err := r.expand(kv.ValueString(), r.globalEnv())
			if err != nil {
				return r.errAt(&ma, err)
			}
			if bv, ok := r.args[kv.Key]; ok {
				v = bv
				r.used.Store(kv.Key, true)
			} else if kv.Value == nil {
				if pv, ok := platformArgs()[kv.Key]; ok {
					v = pv
				}
			}
			r.global[kv.Key] = v
		}
	}
	for i, st := range df.Stages {
		sr := &stageRun{i: i, st: st, done: make(chan struct{})}
		if len(df.Stages) > 1 {
			sr.label = st.Name
			if sr.label == "" {
				sr.label = "stage-" + strconv.Itoa(i)
			}
		}
		if st.Name != "" {
			if _, dup := r.byName[st.Name]; dup {
				return &Error{File: df.Name, Line: stageLine(st), Instr: "FROM", Err: errdefs.Invalidf("stage name %q is used twice; name each stage once", st.Name)}
			}
			r.byName[st.Name] = i
		}
		r.stages = append(r.stages, sr)
	}
	for name, src := range r.o.Contexts {
		if strings.HasPrefix(src, "docker-image://") {
			continue
		}
		c, err := buildctx.Open(src)
		if err != nil {
			return fmt.Errorf("additional context %s: %w", name, err)
		}
		r.extra[name] = c
	}
	return nil
}

func newLex(df *Dockerfile) *shell.Lex { return shell.NewLex(df.Escape) }

func (r *run) globalEnv() []string {
	var env []string
	for k, v := range r.global {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// expand expands a word as the Dockerfile's shell rules say. Stages run
// in parallel and a shell.Lex is not safe for concurrent use.
func (r *run) expand(word string, env []string) (string, error) {
	r.lexMu.Lock()
	defer r.lexMu.Unlock()
	s, _, err := r.lex.ProcessWord(word, shell.EnvsFromSlice(env))
	return s, err
}

func (r *run) errAt(c instructions.Command, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{File: r.df.Name, Line: lineOf(c), Instr: strings.ToUpper(c.Name()), Err: err}
}

// targetStage is --target's stage, else the last.
func (r *run) targetStage() (int, error) {
	if r.o.Target == "" {
		return len(r.stages) - 1, nil
	}
	if i, ok := r.byName[strings.ToLower(r.o.Target)]; ok {
		return i, nil
	}
	var names []string
	for n := range r.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return 0, errdefs.Invalidf("%s: target stage %q is not defined; the named stages are: %s", r.df.Name, r.o.Target, strings.Join(names, ", "))
}

// stageRef resolves a FROM or --from name to a stage index before i, or -1.
func (r *run) stageRef(name string, i int) int {
	if j, ok := r.byName[strings.ToLower(name)]; ok && j < i {
		return j
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 && n < i {
		return n
	}
	return -1
}

// baseName is a stage's FROM with the global args expanded.
func (r *run) baseName(sr *stageRun) (string, error) {
	n, err := r.expand(sr.st.BaseName, r.globalEnv())
	if err != nil {
		return "", &Error{File: r.df.Name, Line: sr.line(), Instr: "FROM", Err: errdefs.Invalidf("%v", err)}
	}
	if n == "" {
		return "", &Error{File: r.df.Name, Line: sr.line(), Instr: "FROM", Err: errdefs.Invalidf("the base image name %q expands to nothing; set the ARG it uses", sr.st.BaseName)}
	}
	return n, nil
}

// needed marks the target and every stage it uses (FROM, COPY --from).
func (r *run) needed(target int) (map[int]bool, error) {
	need := map[int]bool{}
	var visit func(i int) error
	visit = func(i int) error {
		if need[i] {
			return nil
		}
		need[i] = true
		deps, err := r.deps(r.stages[i])
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		return nil
	}
	return need, visit(target)
}

// deps are the stages a stage uses.
func (r *run) deps(sr *stageRun) ([]int, error) {
	var out []int
	base, err := r.baseName(sr)
	if err != nil {
		return nil, err
	}
	if j := r.stageRef(base, sr.i); j >= 0 {
		out = append(out, j)
	}
	for _, c := range sr.st.Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" {
			from, err := r.expand(cp.From, r.globalEnv())
			if err != nil {
				return nil, r.errAt(c, errdefs.Invalidf("--from: %v", err))
			}
			if j := r.stageRef(from, sr.i); j >= 0 {
				out = append(out, j)
			}
		}
	}
	return out, nil
}

// buildStage builds one stage once its dependencies are done.
func (r *run) buildStage(ctx context.Context, sr *stageRun, cancel func()) {
	defer close(sr.done)
	defer func() { // before done closes: Build reads the first error then
		if sr.err != nil {
			r.fail(sr.err)
			cancel()
		}
	}()
	deps, err := r.deps(sr)
	if err != nil {
		sr.err = err
		return
	}
	for _, d := range deps {
		<-r.stages[d].done
		if r.stages[d].err != nil {
			sr.err = fmt.Errorf("stage %s: %w", r.stages[d].labelOr(), r.stages[d].err)
			return
		}
	}
	sr.img, sr.err = r.stage(ctx, sr)
}

func (sr *stageRun) line() int { return stageLine(sr.st) }

func stageLine(st instructions.Stage) int {
	if len(st.Location) > 0 {
		return st.Location[0].Start.Line
	}
	return 0
}

func (sr *stageRun) labelOr() string {
	if sr.st.Name != "" {
		return sr.st.Name
	}
	return strconv.Itoa(sr.i)
}

func (sr *stageRun) title(n, total int, text string) string {
	if sr.label != "" {
		return fmt.Sprintf("[%s %d/%d] %s", sr.label, n, total, text)
	}
	return fmt.Sprintf("[%d/%d] %s", n, total, text)
}

// stage runs a stage's FROM, its base's ONBUILD triggers and its commands.
func (r *run) stage(ctx context.Context, sr *stageRun) (image.Image, error) {
	total := len(sr.st.Commands) + 1
	base, err := r.baseName(sr)
	if err != nil {
		return image.Image{}, err
	}
	sl := r.prog.step(sr.title(1, total, "FROM "+base))
	s, err := r.from(ctx, sr, base)
	if err != nil {
		err = &Error{File: r.df.Name, Line: sr.line(), Instr: "FROM", Err: err}
		sl.fail(err)
		return image.Image{}, err
	}
	sl.done()
	cmds := sr.st.Commands
	if triggers := s.conf.Config.OnBuild; len(triggers) > 0 {
		pre, err := r.onbuild(sr, triggers)
		if err != nil {
			return image.Image{}, err
		}
		s.conf.Config.OnBuild = nil
		cmds = append(pre, cmds...)
		total += len(pre)
	}
	n := 1
	for _, c := range cmds {
		if err := ctx.Err(); err != nil {
			return image.Image{}, err
		}
		if _, ok := c.(*instructions.ArgCommand); !ok {
			n++
		}
		if err := r.command(ctx, sr, s, c, n, total); err != nil {
			return image.Image{}, err
		}
	}
	return s.img, nil
}

// onbuild parses the base image's ONBUILD triggers.
func (r *run) onbuild(sr *stageRun, triggers []string) ([]instructions.Command, error) {
	var out []instructions.Command
	for _, t := range triggers {
		df, err := Parse("ONBUILD", []byte("FROM scratch\n"+t+"\n"))
		if err != nil || len(df.Stages) != 1 || len(df.Stages[0].Commands) != 1 {
			return nil, &Error{File: r.df.Name, Line: sr.line(), Instr: "FROM", Err: errdefs.Invalidf("the base image's ONBUILD trigger %q does not parse: %v", t, err)}
		}
		c := df.Stages[0].Commands[0]
		switch c.(type) {
		case *instructions.OnbuildCommand, *instructions.MaintainerCommand:
			return nil, &Error{File: r.df.Name, Line: sr.line(), Instr: "FROM", Err: errdefs.Invalidf("the base image's ONBUILD trigger %q is not allowed as a trigger", t)}
		}
		out = append(out, c)
	}
	return out, nil
}

// from makes a stage's starting state.
func (r *run) from(ctx context.Context, sr *stageRun, base string) (*stageState, error) {
	s := &stageState{args: map[string]string{}}
	if j := r.stageRef(base, sr.i); j >= 0 {
		return r.stateOf(ctx, s, r.stages[j].img)
	}
	if strings.EqualFold(base, "scratch") {
		s.conf.Platform = ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH}
		s.conf.RootFS.Type = "layers"
		return s, nil
	}
	img, err := r.b.Store.Get(ctx, base)
	if r.b.Pull != nil && (r.o.Pull || errdefs.IsNotFound(err)) {
		if pulled, perr := r.b.Pull(ctx, base); perr == nil {
			img, err = pulled, nil
		} else if err == nil {
			r.note(fmt.Sprintf("%s: --pull %s failed (%v); the local image is used", r.df.Name, base, perr))
		} else {
			return nil, fmt.Errorf("base image %s is not present locally and could not be pulled: %w", base, perr)
		}
	}
	if errdefs.IsNotFound(err) {
		return nil, errdefs.NotFoundf("base image %s is not present locally: pull, import or load it first (berth image pull %s)", base, base)
	}
	if err != nil {
		return nil, err
	}
	return r.stateOf(ctx, s, img)
}

// stateOf starts s from an image: its Docker config as stored.
func (r *run) stateOf(ctx context.Context, s *stageState, img image.Image) (*stageState, error) {
	cb, err := r.b.Store.RawConfig(ctx, img.ID)
	if err != nil {
		return nil, err
	}
	s.conf = dockerspec.DockerOCIImage{} // Unmarshal would merge maps into the old config
	if err := json.Unmarshal(cb, &s.conf); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", img.ID, err)
	}
	s.img = img
	s.layers = append([]ocispec.Descriptor(nil), img.Manifest.Layers...)
	return s, nil
}

// env is what words expand with: the declared args, then ENV over them.
func (s *stageState) env() []string {
	out := make([]string, 0, len(s.order)+len(s.conf.Config.Env))
	for _, k := range s.order {
		if _, set := lookupEnv(s.conf.Config.Env, k); !set {
			out = append(out, k+"="+s.args[k])
		}
	}
	return append(out, s.conf.Config.Env...)
}

func lookupEnv(env []string, k string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if ek, v, _ := strings.Cut(env[i], "="); ek == k {
			return v, true
		}
	}
	return "", false
}

func setEnv(env []string, k, v string) []string {
	out := env[:0:0]
	for _, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek != k {
			out = append(out, e)
		}
	}
	return append(out, k+"="+v)
}

// command runs one instruction: from the cache when its key is known.
func (r *run) command(ctx context.Context, sr *stageRun, s *stageState, c instructions.Command, n, total int) error {
	if a, ok := c.(*instructions.ArgCommand); ok {
		return r.arg(sr, s, a)
	}
	if ex, ok := c.(instructions.SupportsSingleWordExpansion); ok {
		env := s.env()
		if err := ex.Expand(func(w string) (string, error) { return r.expand(w, env) }); err != nil {
			return r.errAt(c, errdefs.Invalidf("%v", err))
		}
	}
	if ex, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
		env := s.env()
		if err := ex.ExpandRaw(func(w string) (string, error) { return r.expand(w, env) }); err != nil {
			return r.errAt(c, errdefs.Invalidf("%v", err))
		}
	}
	sl := r.prog.step(sr.title(n, total, r.describe(c)))
	x := &exec{r: r, sr: sr, s: s, c: c, log: sl}
	defer x.cleanup()
	key, err := x.key(ctx)
	if err != nil {
		err = r.errAt(c, err)
		sl.fail(err)
		return err
	}
	hit := func() bool {
		if r.o.NoCache {
			return false
		}
		id, ok := r.b.Cache.Get(key)
		if !ok {
			return false
		}
		img, err := r.b.Store.Get(ctx, id)
		if err != nil {
			return false
		}
		if _, err := r.stateOf(ctx, s, img); err != nil {
			return false
		}
		if _, ok := c.(*instructions.CmdCommand); ok {
			s.cmdSet = true
		}
		sl.cached()
		r.count(true)
		return true
	}
	if hit() {
		return nil
	}
	release, mine, err := r.b.claim(ctx, key)
	if err != nil {
		sl.fail(err)
		return err
	}
	defer release()
	if !mine && hit() {
		return nil // another build made it meanwhile
	}
	if err := x.execute(ctx); err != nil {
		err = r.errAt(c, err)
		sl.fail(err)
		return err
	}
	if err := r.b.Cache.Put(ctx, key, s.img.ID.String()); err != nil {
		r.note("the build cache could not be written: " + err.Error())
	}
	sl.done()
	r.count(false)
	return nil
}

func (r *run) count(cached bool) {
	r.countsMu.Lock()
	defer r.countsMu.Unlock()
	if cached {
		r.cached++
	} else {
		r.steps++
	}
}

// describe is a step's progress title: the instruction as written.
func (r *run) describe(c instructions.Command) string {
	if st, ok := c.(fmt.Stringer); ok {
		s := st.String()
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[:i] + " ..."
		}
		return s
	}
	return strings.ToUpper(c.Name())
}

// arg declares build args in a stage: the --build-arg value, else the
// default written here, else the global ARG of the same name.
func (r *run) arg(sr *stageRun, s *stageState, a *instructions.ArgCommand) error {
	for _, kv := range a.Args {
		env := s.env()
		var v string
		if kv.Value != nil {
			ev, err := r.expand(*kv.Value, env)
			if err != nil {
				return r.errAt(a, errdefs.Invalidf("%v", err))
			}
			v = ev
		} else if gv, ok := r.global[kv.Key]; ok {
			v = gv
		}
		if bv, ok := r.args[kv.Key]; ok {
			v = bv
			r.used.Store(kv.Key, true)
		}
		if _, ok := s.args[kv.Key]; !ok {
			s.order = append(s.order, kv.Key)
		}
		s.args[kv.Key] = v
	}
	return nil
}

// finish labels and tags the final image.
func (r *run) finish(ctx context.Context, img image.Image) (image.Image, error) {
	if len(r.o.Labels) > 0 {
		s, err := r.stateOf(ctx, &stageState{}, img)
		if err != nil {
			return image.Image{}, err
		}
		if s.conf.Config.Labels == nil {
			s.conf.Config.Labels = map[string]string{}
		}
		keys := make([]string, 0, len(r.o.Labels))
		for k, v := range r.o.Labels {
			s.conf.Config.Labels[k] = v
			keys = append(keys, k+"="+v)
		}
		sort.Strings(keys)
		key := cacheKey(img.ID.String(), "labels", strings.Join(keys, "\x00"))
		if id, ok := r.b.Cache.Get(key); ok && !r.o.NoCache {
			if c, err := r.b.Store.Get(ctx, id); err == nil {
				img = c
				goto tag
			}
		}
		if img, err = r.commit(ctx, s, nil, false); err != nil {
			return image.Image{}, err
		}
		if err := r.b.Cache.Put(ctx, key, img.ID.String()); err != nil {
			r.note("the build cache could not be written: " + err.Error())
		}
	}
tag:
	if img.ID == "" {
		return image.Image{}, errdefs.Invalidf("%s: the build made no image (a FROM scratch stage with no step); add an instruction", r.df.Name)
	}
	// The final image is no longer only a cache entry.
	cb, err := r.b.Store.RawConfig(ctx, img.ID)
	if err != nil {
		return image.Image{}, err
	}
	if img, err = r.b.Store.CommitConfig(ctx, cb, img.Manifest.Layers, "", false); err != nil {
		return image.Image{}, err
	}
	for _, t := range r.o.Tags {
		if err := r.b.Store.Tag(ctx, img.ID.String(), t); err != nil {
			return image.Image{}, fmt.Errorf("tag %s: %w", t, err)
		}
	}
	if len(r.o.Tags) > 0 {
		sl := r.prog.step("naming to " + strings.Join(r.o.Tags, ", "))
		sl.done()
	}
	return r.b.Store.Get(ctx, img.ID.String())
}

// commit records s's config (with a history entry when h is set) and
// layers as the image of a step.
func (r *run) commit(ctx context.Context, s *stageState, h *ocispec.History, intermediate bool) (image.Image, error) {
	now := time.Now().UTC()
	s.conf.Created = &now
	if h != nil {
		h.Created = &now
		s.conf.History = append(s.conf.History, *h)
	}
	if s.conf.RootFS.Type == "" {
		s.conf.RootFS.Type = "layers"
	}
	if s.conf.Platform.OS == "" {
		s.conf.Platform = ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH}
	}
	cb, err := json.Marshal(s.conf)
	if err != nil {
		return image.Image{}, err
	}
	img, err := r.b.Store.CommitConfig(ctx, cb, s.layers, "", intermediate)
	if err != nil {
		return image.Image{}, err
	}
	s.img = img
	return img, nil
}

// cacheKey hashes a step's inputs.
func cacheKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// absPath resolves p against the working dir as WORKDIR, COPY and ADD do.
func absPath(wd, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	if wd == "" {
		wd = "/"
	}
	return path.Join(wd, p)
}

// digestOf is a config's ID as the cache sees it ("" for scratch).
func digestOf(img image.Image) string {
	if img.ID == "" {
		return "scratch"
	}
	return img.ID.String()
}
