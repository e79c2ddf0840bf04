package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"berth.dev/berth/build/buildctx"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/project"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
	"berth.dev/berth/watch"
)

func newWatchComposeCmd(g *globals) *cobra.Command {
	var noUp, quiet bool
	cmd := &cobra.Command{
		Use:   "watch [OPTIONS] [SERVICE...]",
		Short: "Watch the services' develop.watch paths and sync, rebuild or restart on changes",
		Long: `Watch the paths of the services' develop.watch rules and act on every
change: sync copies the changed files straight into each replica's root
filesystem (running, stopped or exited, whatever the image holds, deletions
included), rebuild rebuilds the service's image with the build cache and
recreates that service alone (not its dependencies), restart restarts its
replicas, sync+restart and sync+exec sync first. Changes to the project
file, .env or an env_file are applied as up would apply them.

watch brings the services up first (building missing images) unless
--no-up. .git, editors' swap and temp files, a rule's ignore patterns and
the build context's .dockerignore never trigger anything. Each action is
reported in one line with its files and the time it took; Ctrl+C stops
watching and leaves the containers running.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := g.composeServices(ctx, args)
			if err != nil {
				return err
			}
			s, err := g.newWatchSession(e, args, quiet, reconcile.Options{Services: args})
			if err != nil {
				return err
			}
			if !noUp && !g.dryRun {
				if err := s.upServices(ctx, e); err != nil {
					return err
				}
			}
			if g.dryRun {
				return nil
			}
			return s.run(ctx)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&noUp, "no-up", false, "Do not build & start services before watching")
	f.BoolVar(&quiet, "quiet", false, "Hide build output")
	return g.compose(cmd)
}

// checkWatchUp refuses what up --watch cannot combine with, and checks the
// rules before anything starts.
func (g *globals) checkWatchUp(e *composeEnv, services []string, o *upOpts) error {
	switch {
	case o.detach:
		return errUsage("--watch and --detach are incompatible: watching needs up to stay attached (run berth watch after up -d instead)")
	case o.wait:
		return errUsage("--watch and --wait are incompatible (--wait implies --detach)")
	case o.noStart:
		return errUsage("--watch and --no-start are incompatible")
	case o.aborting():
		return errUsage("--watch and --abort-on-container-exit, --abort-on-container-failure or --exit-code-from are incompatible")
	}
	_, _, err := watchRules(e, services)
	return err
}

// upWatch is up --watch once the project is up: the services' logs and the
// watch lines interleaved until Ctrl+C, which stops the services as
// attached up does (a second Ctrl+C kills them).
func (g *globals) upWatch(ctx context.Context, e *composeEnv, services []string, opt reconcile.Options, o *upOpts, began time.Time) error {
	opt.ForceRecreate = false
	s, err := g.newWatchSession(e, services, false, opt)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var show map[string]bool
	if len(services) > 0 {
		show = map[string]bool{}
		for _, svc := range services {
			show[svc] = true
		}
	}
	for _, svc := range o.noAttach {
		if show == nil {
			show = map[string]bool{}
			for name := range e.m.Project.Services {
				show[name] = true
			}
		}
		delete(show, svc)
	}
	w := logWatch{services: services, show: show, since: began}
	lo := linux.LogsOptions{LogOptions: runtime.LogOptions{Follow: true, Tail: -1, Timestamps: o.timestamps}}
	st := logStyle{prefix: !o.noLogPrefix, color: g.useColor(o.noColor), timestamps: o.timestamps}
	logsDone := make(chan error, 1)
	go func() { logsDone <- g.projectLogs(lctx, e, w, lo, st) }()
	watchDone := make(chan error, 1)
	go func() { watchDone <- s.run(lctx) }()
	var werr error
	select {
	case <-ctx.Done():
	case werr = <-watchDone:
		watchDone <- werr
	}
	cancel()
	<-logsDone
	if err := <-watchDone; err != nil && werr == nil {
		werr = err
	}
	if werr != nil {
		fmt.Fprintf(g.stderr, "berth: %v\n", werr)
	}
	if err := g.stopAttached(ctx, s.env(), services, opt.Timeout); err != nil {
		return err
	}
	return werr
}

// watchSession is one berth watch (or up --watch) run.
type watchSession struct {
	g        *globals
	services []string          // as named (empty: every service with develop.watch)
	quiet    bool              // hide build output
	upOpt    reconcile.Options // what a project file change applies
	out      io.Writer

	cur atomic.Pointer[watchState] // replaced on reload; read by the watcher's goroutine
}

// watchState is the project as last loaded and the rules it gives.
type watchState struct {
	e     *composeEnv
	set   *watch.Set
	hooks map[*watch.Rule]types.ServiceHook // sync+exec commands
}

func (g *globals) newWatchSession(e *composeEnv, services []string, quiet bool, upOpt reconcile.Options) (*watchSession, error) {
	set, hooks, err := watchRules(e, services)
	if err != nil {
		return nil, err
	}
	s := &watchSession{g: g, services: services, quiet: quiet, upOpt: upOpt, out: g.stderr}
	s.cur.Store(&watchState{e: e, set: set, hooks: hooks})
	return s, nil
}

func (s *watchSession) env() *composeEnv { return s.cur.Load().e }

// watchRules turns the services' develop.watch sections into rules, with
// the build context's .dockerignore for services that build, and names
// the project's own files (compose files, .env, env_file) to watch.
func watchRules(e *composeEnv, services []string) (*watch.Set, map[*watch.Rule]types.ServiceHook, error) {
	file := "the project file"
	if len(e.m.Files) > 0 {
		file = e.m.Files[0]
	}
	names := services
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(e.m.Project.Services))
	}
	hooks := map[*watch.Rule]types.ServiceHook{}
	var rules []*watch.Rule
	for _, name := range names {
		svc := e.m.Project.Services[name]
		if svc.Develop == nil || len(svc.Develop.Watch) == 0 {
			if len(services) > 0 {
				return nil, nil, errdefs.Invalidf("%s: service %s has no develop.watch rules; add services.%s.develop.watch (e.g. [{action: sync, path: ./src, target: /app}]) or leave %s out of the command", file, name, name, name)
			}
			continue
		}
		var bc *buildctx.Context
		skips := false
		if svc.Build != nil {
			dir := svc.Build.Context
			if dir == "" {
				dir = "."
			}
			if !filepath.IsAbs(dir) {
				dir = filepath.Join(e.m.WorkingDir, dir)
			}
			if strings.Contains(svc.Build.Context, "://") {
				dir = ""
			}
			if dir != "" {
				var err error
				if bc, err = buildctx.Open(dir); err != nil {
					return nil, nil, fmt.Errorf("%s: services.%s.build.context: %w", file, name, err)
				}
				skips = !ignoreHasException(filepath.Join(dir, ".dockerignore"))
			}
		}
		for i, tr := range svc.Develop.Watch {
			r := &watch.Rule{Service: name, Index: i, Action: watch.Action(tr.Action), Path: tr.Path, Target: tr.Target,
				Ignore: tr.Ignore, Include: tr.Include, InitialSync: tr.InitialSync}
			if r.Path != "" && !filepath.IsAbs(r.Path) {
				r.Path = filepath.Join(e.m.WorkingDir, r.Path)
			}
			if bc != nil {
				r.ContextDir, r.Context, r.ContextSkipsDirs = bc.Dir(), bc, skips
			}
			switch {
			case r.Action == watch.Rebuild && svc.Build == nil:
				return nil, nil, errdefs.Invalidf("%s: %s.action: rebuild needs a build section, and service %s has none; add build: or use sync or restart", file, r.Field(), name)
			case r.Action == watch.SyncExec && len(tr.Exec.Command) == 0:
				return nil, nil, errdefs.Invalidf("%s: %s.exec.command: sync+exec needs the command to run after the sync; set exec: {command: [...]}", file, r.Field())
			}
			if r.Path != "" {
				if _, err := os.Stat(r.Path); err != nil {
					return nil, nil, errdefs.NotFoundf("%s: %s.path: %s does not exist; create it or correct the path (relative to %s)", file, r.Field(), r.Path, e.m.WorkingDir)
				}
			}
			if r.Action == watch.SyncExec {
				hooks[r] = tr.Exec
			}
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 {
		return nil, nil, errdefs.Invalidf("%s: no service has develop.watch rules, so there is nothing to watch; add services.NAME.develop.watch (see examples/watch)", file)
	}
	var files []string
	for _, f := range e.m.Files {
		if f != project.StdinName {
			files = append(files, f)
		}
	}
	files = append(files, e.m.EnvFiles...)
	for _, svc := range e.m.Project.Services {
		for _, ef := range svc.EnvFiles {
			p := ef.Path
			if !filepath.IsAbs(p) {
				p = filepath.Join(e.m.WorkingDir, p)
			}
			files = append(files, p)
		}
	}
	set, err := watch.NewSet(rules, files)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	return set, hooks, nil
}

// ignoreHasException reports a .dockerignore with a '!' line (or one that
// cannot be read): the directories it ignores must still be watched.
func ignoreHasException(p string) bool {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "!") {
			return true
		}
	}
	return sc.Err() != nil
}

// buildFlags of the session's builds: quiet hides their output.
func (s *watchSession) buildFlags() *buildFlags {
	if s.quiet {
		return &buildFlags{progress: "quiet"}
	}
	return &buildFlags{progress: "auto"}
}

// upServices is watch without --no-up: build missing images, then up.
func (s *watchSession) upServices(ctx context.Context, e *composeEnv) error {
	scope := upScope(e, s.services, false)
	if err := s.buildMissing(ctx, e, scope); err != nil {
		return err
	}
	if err := s.g.checkImages(ctx, e, scope, &upOpts{pull: "policy"}); err != nil {
		return err
	}
	return s.g.converge(ctx, e, s.upOpt)
}

func (s *watchSession) buildMissing(ctx context.Context, e *composeEnv, scope []string) error {
	bf := s.buildFlags()
	builds, err := composeBuilds(e, scope, bf)
	if err != nil {
		return err
	}
	return s.g.runBuilds(ctx, e, missingBuilds(ctx, e, builds), bf)
}

func (s *watchSession) printf(format string, args ...any) {
	fmt.Fprintf(s.out, "watch: "+format+"\n", args...)
}

// run watches until ctx ends (nil) or the watcher fails.
func (s *watchSession) run(ctx context.Context) error {
	w, err := watch.NewWatcher(watch.Options{Skip: func(dir string) bool { return s.cur.Load().set.SkipDir(dir) }})
	if err != nil {
		return err
	}
	defer w.Close()
	if err := s.addRoots(w); err != nil {
		return err
	}
	st := s.cur.Load()
	if p := st.set.InitialSync(); !p.Empty() {
		s.apply(ctx, p)
	}
	trees, _ := st.set.Roots()
	s.printf("watching %s (%d directories) for %s; Ctrl+C stops", s.rel(trees...), w.Watched(), strings.Join(s.watchedServices(), ", "))
	batches := make(chan watch.Batch)
	errc := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { errc <- w.Run(wctx, batches) }()
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-errc
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case b := <-batches:
			plan := s.cur.Load().set.Plan(b)
			if len(plan.Reload) > 0 && s.reload(ctx, plan.Reload) {
				if err := s.addRoots(w); err != nil {
					s.printf("%v", err)
				}
				plan = s.cur.Load().set.Plan(b)
				plan.Reload = nil
			}
			s.apply(ctx, plan)
		}
	}
}

func (s *watchSession) watchedServices() []string {
	seen := map[string]bool{}
	for _, r := range s.cur.Load().set.Rules {
		seen[r.Service] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

func (s *watchSession) addRoots(w *watch.Watcher) error {
	trees, files := s.cur.Load().set.Roots()
	for _, t := range trees {
		if err := w.AddTree(t); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := w.AddFile(f); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// rel names host paths for the user: relative to the project directory
// when inside it.
func (s *watchSession) rel(paths ...string) string {
	dir := s.env().m.WorkingDir
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if r, err := filepath.Rel(dir, p); err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			p = r
		}
		out = append(out, p)
	}
	return strings.Join(out, ", ")
}

// fileList is "N files (a, b, c, +K more)".
func (s *watchSession) fileList(n int, files []string) string {
	what := "files"
	if n == 1 {
		what = "file"
	}
	shown := files
	if len(shown) > 3 {
		shown = shown[:3]
	}
	list := s.rel(shown...)
	if len(files) > len(shown) {
		list += fmt.Sprintf(", +%d more", len(files)-len(shown))
	}
	return fmt.Sprintf("%d %s (%s)", n, what, list)
}

func took(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// reload re-reads the project after its files changed and applies it as
// up does; false when it could not be loaded (the old rules stay).
func (s *watchSession) reload(ctx context.Context, files []string) bool {
	start := time.Now()
	e, err := s.g.composeEnv(ctx)
	if err != nil {
		s.printf("%s changed, but the project does not load; fix it and save again (watching goes on with the previous version): %v", s.rel(files...), err)
		return false
	}
	set, hooks, err := watchRules(e, s.services)
	if err != nil {
		s.printf("%s changed, but its develop.watch rules are not usable; fix them and save again: %v", s.rel(files...), err)
		return false
	}
	s.cur.Store(&watchState{e: e, set: set, hooks: hooks})
	scope := upScope(e, s.upOpt.Services, s.upOpt.NoDeps)
	err = s.buildMissing(ctx, e, scope)
	if err == nil {
		err = s.g.checkImages(ctx, e, scope, &upOpts{pull: "policy"})
	}
	if err == nil {
		err = s.g.converge(ctx, e, s.upOpt)
	}
	if err != nil {
		s.printf("%s changed: applying it failed after %s: %v", s.rel(files...), took(start), err)
		return true
	}
	s.printf("%s changed: project applied in %s", s.rel(files...), took(start))
	return true
}

// apply carries a plan out, service by service; failures are reported
// and watching goes on.
func (s *watchSession) apply(ctx context.Context, p *watch.Plan) {
	for _, sp := range p.Services {
		if ctx.Err() != nil {
			return
		}
		if sp.Rebuild {
			s.rebuild(ctx, sp)
			continue
		}
		synced := true
		if len(sp.Syncs) > 0 {
			synced = s.sync(ctx, sp)
		}
		if sp.Restart && synced {
			s.restart(ctx, sp)
		}
		if synced {
			for _, r := range sp.Execs {
				s.exec(ctx, sp, r)
			}
		}
	}
}

// sync copies the changed files into every replica of the service and
// removes what is gone, through the runtime (no tool of the image runs).
func (s *watchSession) sync(ctx context.Context, sp *watch.ServicePlan) bool {
	start := time.Now()
	st := s.cur.Load()
	work := watch.PrepareSync(sp.Syncs)
	if work.Empty() {
		return true
	}
	infos, err := s.g.projectContainers(ctx, st.e, []string{sp.Service}, true, false)
	if err != nil {
		s.printf("%s: sync failed: %v", sp.Service, err)
		return false
	}
	if len(infos) == 0 {
		s.printf("%s: %s changed, but the service has no container to sync to; run berth up %s", sp.Service, s.fileList(len(sp.Files), sp.Files), sp.Service)
		return false
	}
	var mu sync.Mutex
	var stats watch.TarStats
	var skipped []string
	err = eachParallel(infos, func(in runtime.Info) error {
		lc, err := loadLinux(ctx, st.e, in)
		if err != nil {
			return fmt.Errorf("%s: %w", in.Name, err)
		}
		copies, removes, retypes := work.Copy, work.Remove, work.Retype
		if !isLive(in.Status) {
			// A stopped container's mounts exist only while it runs: what
			// goes into a volume or bind is left for when it runs again.
			if m, err := lc.Meta(); err == nil && m.Spec.OCI != nil {
				inMount := func(p string) bool {
					for _, om := range m.Spec.OCI.Mounts {
						d := path.Clean(om.Destination)
						if p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") {
							mu.Lock()
							skipped = append(skipped, in.Name+":"+p)
							mu.Unlock()
							return true
						}
					}
					return false
				}
				copies = slices.DeleteFunc(slices.Clone(copies), func(op watch.SyncOp) bool { return inMount(op.ContainerPath) })
				removes = slices.DeleteFunc(slices.Clone(removes), inMount)
				retypes = slices.DeleteFunc(slices.Clone(retypes), func(rt watch.Retype) bool { return inMount(rt.Path) })
			}
		}
		var specs []linux.RemoveSpec
		for _, p := range removes {
			specs = append(specs, linux.RemoveSpec{Path: p})
		}
		for _, rt := range retypes {
			specs = append(specs, linux.RemoveSpec{Path: rt.Path, Retype: true, Dir: rt.Dir})
		}
		if err := lc.RemovePaths(ctx, specs); err != nil {
			return fmt.Errorf("%s: %w", in.Name, err)
		}
		if len(copies) == 0 {
			return nil
		}
		pr, pw := io.Pipe()
		wrote := make(chan watch.TarStats, 1)
		go func() {
			ts, err := watch.WriteTar(pw, copies)
			wrote <- ts
			pw.CloseWithError(err)
		}()
		err = lc.CopyIn(ctx, "/", pr)
		pr.CloseWithError(errors.New("copy ended"))
		ts := <-wrote
		if err != nil {
			return fmt.Errorf("%s: %w", in.Name, err)
		}
		mu.Lock()
		stats = ts
		mu.Unlock()
		return nil
	})
	// Reported: the files (directories only when nothing else changed).
	var listed []string
	for _, f := range sp.Files {
		if fi, err := os.Lstat(f); err != nil || !fi.IsDir() {
			listed = append(listed, f)
		}
	}
	if len(listed) == 0 {
		listed = sp.Files
	}
	n := stats.Files + stats.Links
	if n == 0 {
		n = stats.Dirs
	}
	what := "synced " + s.fileList(n, listed)
	if len(work.Remove) > 0 {
		if len(work.Copy) == 0 {
			what = "removed " + s.fileList(len(work.Remove), listed)
		} else {
			what += fmt.Sprintf(", removed %d", len(work.Remove))
		}
	}
	replicas := "1 container"
	if len(infos) > 1 {
		replicas = fmt.Sprintf("%d containers", len(infos))
	}
	if len(skipped) > 0 {
		s.printf("%s: not synced into stopped containers (mounts exist only while they run): %s", sp.Service, strings.Join(skipped, ", "))
	}
	if err != nil {
		s.printf("%s: sync failed after %s (%s): %v", sp.Service, took(start), what, err)
		return false
	}
	s.printf("%s: %s in %s in %s", sp.Service, what, replicas, took(start))
	return true
}

// rebuild rebuilds the service's image (the cache keeps it incremental)
// and recreates that service alone, not its dependencies.
func (s *watchSession) rebuild(ctx context.Context, sp *watch.ServicePlan) {
	start := time.Now()
	st := s.cur.Load()
	bf := s.buildFlags()
	builds, err := composeBuilds(st.e, []string{sp.Service}, bf)
	if err == nil {
		err = s.g.runBuilds(ctx, st.e, builds, bf)
	}
	if err == nil {
		opt := s.upOpt
		opt.Services, opt.NoDeps, opt.ForceRecreate, opt.NoRecreate = []string{sp.Service}, true, false, false
		err = s.g.converge(ctx, st.e, opt)
	}
	if err != nil {
		s.printf("%s: rebuild after %s failed after %s: %v", sp.Service, s.fileList(len(sp.Files), sp.Files), took(start), err)
		return
	}
	s.printf("%s: rebuilt and recreated after %s in %s", sp.Service, s.fileList(len(sp.Files), sp.Files), took(start))
}

// restart restarts every replica of the service, and only those.
func (s *watchSession) restart(ctx context.Context, sp *watch.ServicePlan) {
	start := time.Now()
	st := s.cur.Load()
	lk, err := s.g.lockProject(ctx, st.e)
	if err == nil {
		err = s.g.restartProject(ctx, st.e, []string{sp.Service}, true, s.upOpt.Timeout)
		lk.Unlock()
	}
	if err != nil {
		s.printf("%s: restart after %s failed after %s: %v", sp.Service, s.fileList(len(sp.Files), sp.Files), took(start), err)
		return
	}
	s.printf("%s: restarted after %s in %s", sp.Service, s.fileList(len(sp.Files), sp.Files), took(start))
}

// exec runs a sync+exec rule's command in every running replica.
func (s *watchSession) exec(ctx context.Context, sp *watch.ServicePlan, r *watch.Rule) {
	st := s.cur.Load()
	hook, ok := st.hooks[r]
	if !ok || len(hook.Command) == 0 {
		return
	}
	infos, err := s.g.projectContainers(ctx, st.e, []string{sp.Service}, false, false)
	if err != nil {
		s.printf("%s: exec failed: %v", sp.Service, err)
		return
	}
	var env []string
	for _, k := range slices.Sorted(maps.Keys(hook.Environment)) {
		if v := hook.Environment[k]; v != nil {
			env = append(env, k+"="+*v)
		}
	}
	for _, in := range infos {
		start := time.Now()
		lc, err := loadLinux(ctx, st.e, in)
		if err != nil {
			s.printf("%s: exec in %s failed: %v", sp.Service, in.Name, err)
			continue
		}
		ex, err := lc.Exec(ctx, runtime.ProcessSpec{Args: hook.Command, Env: env, User: hook.User, Cwd: hook.WorkingDir, Privileged: hook.Privileged},
			runtime.Stdio{Stdout: s.g.stdout, Stderr: s.g.stderr})
		switch {
		case err != nil:
			s.printf("%s: exec %q in %s failed after %s: %v", sp.Service, strings.Join(hook.Command, " "), in.Name, took(start), err)
		case ex.Code != 0:
			s.printf("%s: exec %q in %s exited with code %d after %s", sp.Service, strings.Join(hook.Command, " "), in.Name, ex.Code, took(start))
		default:
			s.printf("%s: ran %q in %s in %s", sp.Service, strings.Join(hook.Command, " "), in.Name, took(start))
		}
	}
}
