package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/project"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

// imageResolver finds a service's image in the local store.
type imageResolver struct{ store *local.Store }

func (r imageResolver) Resolve(ctx context.Context, ref string) (reconcile.ResolvedImage, error) {
	img, err := r.store.Get(ctx, ref)
	if err != nil {
		return reconcile.ResolvedImage{}, err
	}
	chain, err := r.store.Unpack(ctx, img)
	if err != nil {
		return reconcile.ResolvedImage{}, err
	}
	c := img.Config.Config
	out := reconcile.ResolvedImage{Digest: img.ID.String(), ChainID: chain, Config: reconcile.ImageConfig{
		Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, User: c.User, WorkingDir: c.WorkingDir,
		StopSignal: c.StopSignal, Labels: c.Labels,
	}}
	for p := range c.ExposedPorts {
		out.Config.ExposedPorts = append(out.Config.ExposedPorts, p)
	}
	sort.Strings(out.Config.ExposedPorts)
	for v := range c.Volumes {
		out.Config.Volumes = append(out.Config.Volumes, v)
	}
	sort.Strings(out.Config.Volumes)
	if rc, err := r.store.Content().Open(ctx, img.ID); err == nil {
		raw, _ := io.ReadAll(io.LimitReader(rc, 4<<20))
		rc.Close()
		out.Config.Healthcheck = imageHealthcheck(raw)
	}
	return out, nil
}

// composeEnv is a loaded project with the machine wired under it.
type composeEnv struct {
	m     *project.Model
	deps  reconcile.Deps
	root  *state.Root
	store *local.Store // the image store deps.Images resolves in (builds and pulls use it)
}

func (g *globals) composeEnv(ctx context.Context) (*composeEnv, error) {
	m, err := g.load(ctx)
	if err != nil {
		return nil, err
	}
	rt, store, err := g.openRuntime()
	if err != nil {
		return nil, err
	}
	nm, err := g.openNetworks()
	if err != nil {
		return nil, err
	}
	vm, err := g.openVolumes()
	if err != nil {
		return nil, err
	}
	root, err := state.Open(g.stateRoot())
	if err != nil {
		return nil, err
	}
	return &composeEnv{m: m, root: root, store: store, deps: reconcile.Deps{Runtime: rt, Networks: nm, Volumes: vm, Images: imageResolver{store}}}, nil
}

// lock takes the project lock, saying whom it waits for.
func (g *globals) lockProject(ctx context.Context, e *composeEnv) (*state.Lock, error) {
	return e.root.ProjectLock(ctx, e.m.Name, state.LockOptions{OnWait: func(pid int) {
		fmt.Fprintf(g.stderr, "berth: waiting for project %s's lock (held by pid %d)\n", e.m.Name, pid)
	}})
}

// converge observes, plans and executes under the project lock.
func (g *globals) converge(ctx context.Context, e *composeEnv, opt reconcile.Options) error {
	lk, err := g.lockProject(ctx, e)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	obs, err := reconcile.ObserveDeps(ctx, e.deps, e.m)
	if err != nil {
		return err
	}
	plan, err := reconcile.Compute(e.m, obs, opt)
	if err != nil {
		return err
	}
	for _, w := range reconcile.Warnings(e.m, obs, opt) {
		fmt.Fprintln(g.stderr, "berth: warning:", w)
	}
	if g.dryRun {
		fmt.Fprint(g.stdout, plan.String())
		return nil
	}
	// Recreations explain themselves.
	for _, a := range plan.Actions {
		if (a.Kind == reconcile.RecreateContainer || a.Kind == reconcile.RestartContainer) && a.Cause != "" {
			fmt.Fprintf(g.stderr, " %s %s: %s\n", map[reconcile.ActionKind]string{reconcile.RecreateContainer: "Recreate", reconcile.RestartContainer: "Restart"}[a.Kind],
				reconcile.ContainerName(e.m.Name, a.Service, a.Number, e.m.Project.Services[a.Service].ContainerName), a.Cause)
		}
	}
	mode, err := display.ParseProgress(g.progress)
	if err != nil {
		return usageError{err}
	}
	ev := display.NewEvents(g.stderr, mode.Resolve(stderrFile(g)))
	defer ev.Close()
	ex := &reconcile.Executor{Deps: e.deps, Model: e.m, Options: opt, Sink: ev, Parallel: max(g.parallel, 0)}
	return ex.Run(ctx, plan)
}

// stderrFile is stderr as a file (to ask whether it is a terminal).
func stderrFile(g *globals) *os.File {
	if f, ok := g.stderr.(*os.File); ok {
		return f
	}
	return os.NewFile(^uintptr(0), "not a terminal")
}

func parseScale(specs []string) (map[string]int, error) {
	out := map[string]int{}
	for _, s := range specs {
		k, v, ok := strings.Cut(s, "=")
		var n int
		if _, err := fmt.Sscanf(v, "%d", &n); !ok || err != nil || n < 0 {
			return nil, errUsage("--scale %q: write SERVICE=NUMBER, e.g. worker=3", s)
		}
		out[k] = n
	}
	return out, nil
}

// upOpts are up's flags beyond the reconciler's options.
type upOpts struct {
	detach, wait, noStart, noDeps    bool
	build, noBuild                   bool
	pull                             string
	abortOnExit, abortOnFailure      bool
	exitCodeFrom                     string
	attach, noAttach                 []string
	attachDeps                       bool
	timestamps, noColor, noLogPrefix bool
}

// check refuses combinations compose refuses, and what berth cannot do.
func (o *upOpts) check(e *composeEnv, services []string) error {
	if o.build && o.noBuild {
		return errUsage("--build and --no-build are incompatible")
	}
	if len(o.attach) > 0 && o.attachDeps {
		return errUsage("--attach and --attach-dependencies are incompatible")
	}
	if o.abortOnExit && o.abortOnFailure {
		return errUsage("--abort-on-container-exit and --abort-on-container-failure are incompatible")
	}
	if o.aborting() {
		flag := "--abort-on-container-exit"
		switch {
		case o.abortOnFailure:
			flag = "--abort-on-container-failure"
		case o.exitCodeFrom != "":
			flag = "--exit-code-from"
		}
		switch {
		case o.detach:
			return errUsage("%s and --detach are incompatible", flag)
		case o.wait:
			return errUsage("%s and --wait are incompatible (--wait implies --detach)", flag)
		case o.noStart:
			return errUsage("%s and --no-start are incompatible", flag)
		}
	}
	if err := checkPull(o.pull); err != nil {
		return err
	}
	names := append(append(append([]string{}, o.attach...), o.noAttach...), services...)
	if o.exitCodeFrom != "" {
		names = append(names, o.exitCodeFrom)
	}
	return knownServices(e, names)
}

func (o *upOpts) aborting() bool { return o.abortOnExit || o.abortOnFailure || o.exitCodeFrom != "" }

// upScope is the services up brings up: the named ones and, unless
// --no-deps, what they need; every service when none is named.
func upScope(e *composeEnv, services []string, noDeps bool) []string {
	if len(services) == 0 {
		return slices.Sorted(maps.Keys(e.m.Project.Services))
	}
	if noDeps {
		return services
	}
	return slices.Sorted(maps.Keys(dependencyClosure(e, services)))
}

// checkImages builds what up needs (see buildForUp) and, with --pull
// never, names a missing image.
func (g *globals) checkImages(ctx context.Context, e *composeEnv, scope []string, o *upOpts) error {
	if err := g.buildForUp(ctx, e, scope, o.build, o.noBuild); err != nil {
		return err
	}
	if err := g.pullForUp(ctx, e, scope, o.pull); err != nil {
		return err
	}
	var store *local.Store
	for _, name := range scope {
		s := e.m.Project.Services[name]
		if o.pull != "never" || (s.Build != nil && !o.noBuild) {
			continue
		}
		if store == nil {
			_, st, err := g.openRuntime()
			if err != nil {
				return err
			}
			store = st
		}
		ref := reconcile.ImageRef(e.m.Name, s)
		if ref == "" {
			continue
		}
		if _, err := store.Get(ctx, ref); errdefs.IsNotFound(err) {
			return errdefs.NotFoundf("service %s: image %s is not present locally and --pull never forbids pulling it; import or load it first", name, ref)
		}
	}
	return nil
}

func newUpCmd(g *globals) *cobra.Command {
	var forceRecreate, noRecreate, removeOrphans, renewAnon, watchMode bool
	var scale []string
	var timeout, waitTimeout int
	o := &upOpts{}
	cmd := &cobra.Command{
		Use:   "up [OPTIONS] [SERVICE...]",
		Short: "Create and start containers",
		Long: `Create and start containers.

Without -d, up follows the services' logs ("name | line", a colour per
service on a terminal) until every container has stopped; Ctrl+C stops
them gracefully, a second Ctrl+C kills them. --abort-on-container-exit
stops everything as soon as one container exits (with its exit code;
--exit-code-from SERVICE takes that service's instead), and
--abort-on-container-failure only when one exits non-zero. A one-shot
service that others need completed successfully ends without aborting
when it exits 0.

Services with a build section are built first when their image is
missing, and every time with --build (berth's layer cache makes an
unchanged rebuild almost free and yields the same image, so nothing is
recreated). Other services' images are pulled as their pull_policy says
(missing by default; always, never, daily, weekly, every_<duration>), or
as --pull always|missing|never overrides it; --pull never makes a missing
image an error naming it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			sc, err := parseScale(scale)
			if err != nil {
				return err
			}
			e, err := g.composeEnv(ctx)
			if err != nil {
				return err
			}
			if err := o.check(e, args); err != nil {
				return err
			}
			if watchMode {
				if err := g.checkWatchUp(e, args, o); err != nil {
					return err
				}
			}
			scope := upScope(e, args, o.noDeps)
			if err := g.checkImages(ctx, e, scope, o); err != nil {
				return err
			}
			opt := reconcile.Options{Services: args, NoDeps: o.noDeps, ForceRecreate: forceRecreate, NoRecreate: noRecreate,
				NoStart: o.noStart, RemoveOrphans: removeOrphans, Scale: sc, RenewAnon: renewAnon}
			if cmd.Flags().Changed("timeout") {
				d := time.Duration(timeout) * time.Second
				opt.Timeout = &d
			}
			began := time.Now()
			if err := g.converge(ctx, e, opt); err != nil {
				return err
			}
			if g.dryRun || o.noStart {
				return nil
			}
			if o.wait {
				return g.waitServices(ctx, e, args, time.Duration(waitTimeout)*time.Second)
			}
			if o.detach {
				return nil
			}
			if watchMode {
				return g.upWatch(ctx, e, args, opt, o, began)
			}
			return g.attachUp(ctx, e, args, scope, opt, o, began)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.detach, "detach", "d", false, "Detached mode: Run containers in the background")
	f.BoolVar(&o.noDeps, "no-deps", false, "Don't start linked services")
	f.BoolVar(&forceRecreate, "force-recreate", false, "Recreate containers even if their configuration and image haven't changed")
	f.BoolVar(&noRecreate, "no-recreate", false, "If containers already exist, don't recreate them")
	f.BoolVar(&o.noStart, "no-start", false, "Don't start the services after creating them")
	f.BoolVar(&removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	f.BoolVarP(&renewAnon, "renew-anon-volumes", "V", false, "Recreate anonymous volumes instead of retrieving data from the previous containers")
	f.BoolVar(&o.wait, "wait", false, "Wait for services to be running|healthy (one-shot services: exited 0). Implies detached mode")
	f.IntVar(&waitTimeout, "wait-timeout", 0, "Maximum duration in seconds to wait for the project to be running|healthy")
	f.StringArrayVar(&scale, "scale", nil, "Scale SERVICE to NUM instances. Overrides the scale setting in the Compose file if present")
	f.IntVarP(&timeout, "timeout", "t", 10, "Use this timeout in seconds for container shutdown when attached or when containers are already running")
	f.BoolVar(&o.build, "build", false, "Build images before starting containers")
	f.BoolVar(&o.noBuild, "no-build", false, "Don't build an image, even if it's policy")
	f.StringVar(&o.pull, "pull", "policy", `Pull image before running ("always"|"missing"|"never")`)
	f.BoolVar(&o.abortOnExit, "abort-on-container-exit", false, "Stops all containers if any container was stopped. Incompatible with -d")
	f.BoolVar(&o.abortOnFailure, "abort-on-container-failure", false, "Stops all containers if any container exited with failure. Incompatible with -d")
	f.StringVar(&o.exitCodeFrom, "exit-code-from", "", "Return the exit code of the selected service container. Implies --abort-on-container-exit")
	f.StringArrayVar(&o.attach, "attach", nil, "Restrict attaching to the specified services. Incompatible with --attach-dependencies")
	f.StringArrayVar(&o.noAttach, "no-attach", nil, "Do not attach (stream logs) to the specified services")
	f.BoolVar(&o.attachDeps, "attach-dependencies", false, "Automatically attach to log output of dependent services")
	f.BoolVar(&o.timestamps, "timestamps", false, "Show timestamps")
	f.BoolVar(&o.noColor, "no-color", false, "Produce monochrome output")
	f.BoolVar(&o.noLogPrefix, "no-log-prefix", false, "Don't print prefix in logs")
	f.BoolVarP(&watchMode, "watch", "w", false, "Watch source code and rebuild/refresh containers when files are updated (develop.watch; see berth watch --help)")
	return g.compose(cmd)
}

func newDownCmd(g *globals) *cobra.Command {
	var volumes, removeOrphans bool
	var timeout int
	var rmi string
	cmd := &cobra.Command{
		Use:   "down [OPTIONS] [SERVICES]",
		Short: "Stop and remove containers, networks",
		Long: `Stop and remove containers, networks.

--rmi local removes the images built for the project (a service without
an image name runs <project>-<service>); --rmi all every image the
services use. A name another image still carries is only untagged, and an
image other containers use is kept, with a warning.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if rmi != "" && rmi != "local" && rmi != "all" {
				return errUsage("--rmi %q: use local or all", rmi)
			}
			e, err := g.composeEnv(cmd.Context())
			if err != nil {
				return err
			}
			opt := reconcile.Options{Down: true, DownVolumes: volumes, Services: args, RemoveOrphans: removeOrphans}
			if cmd.Flags().Changed("timeout") {
				d := time.Duration(timeout) * time.Second
				opt.Timeout = &d
			}
			if err := g.converge(cmd.Context(), e, opt); err != nil {
				return err
			}
			if rmi == "" {
				return nil
			}
			return g.removeProjectImages(cmd.Context(), e, args, rmi)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&volumes, "volumes", "v", false, "Remove named volumes declared in the \"volumes\" section of the Compose file and anonymous volumes attached to containers")
	f.BoolVar(&removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	f.IntVarP(&timeout, "timeout", "t", 10, "Specify a shutdown timeout in seconds")
	f.StringVar(&rmi, "rmi", "", `Remove images used by services. "local" remove only images that don't have a custom tag ("local"|"all")`)
	return g.compose(cmd)
}

// projectImages are the images down --rmi removes: of the services (all
// when none is named), only the ones built for the project with local.
func projectImages(e *composeEnv, services []string, mode string) []string {
	if len(services) == 0 {
		services = e.m.Project.ServiceNames()
	}
	set := map[string]bool{}
	for _, name := range services {
		s, ok := e.m.Project.Services[name]
		if !ok || (mode == "local" && s.Image != "") {
			continue
		}
		if ref := reconcile.ImageRef(e.m.Name, s); ref != "" {
			set[ref] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// removeProjectImages is down --rmi, once the containers are gone.
func (g *globals) removeProjectImages(ctx context.Context, e *composeEnv, services []string, mode string) error {
	refs := projectImages(e, services, mode)
	if g.dryRun {
		for _, ref := range refs {
			fmt.Fprintf(g.stdout, "remove image:%s (--rmi %s)\n", ref, mode)
		}
		return nil
	}
	_, store, err := g.openRuntime()
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range refs {
		err := store.Remove(ctx, ref, false)
		switch {
		case err == nil:
			if g.progress != "quiet" {
				fmt.Fprintf(g.stderr, " Image %s Removed\n", ref)
			}
		case errdefs.IsNotFound(err):
			// not here (never pulled, or removed already): nothing to do
		case errdefs.IsConflict(err):
			fmt.Fprintf(g.stderr, "berth: warning: image %s is kept: %v\n", ref, err)
		default:
			errs = append(errs, fmt.Errorf("remove image %s: %w", ref, err))
		}
	}
	return errors.Join(errs...)
}

func newScaleCmd(g *globals) *cobra.Command {
	var noDeps bool
	cmd := &cobra.Command{
		Use:   "scale [SERVICE=REPLICAS...]",
		Short: "Scale services",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := parseScale(args)
			if err != nil {
				return err
			}
			e, err := g.composeEnv(cmd.Context())
			if err != nil {
				return err
			}
			var svcs []string
			for s := range sc {
				svcs = append(svcs, s)
			}
			sort.Strings(svcs)
			return g.converge(cmd.Context(), e, reconcile.Options{Services: svcs, Scale: sc, NoRecreate: true, NoDeps: noDeps})
		},
	}
	cmd.Flags().BoolVar(&noDeps, "no-deps", false, "Don't start linked services")
	return g.compose(cmd)
}

// waitServices is up --wait: every selected service's replicas running
// (healthy when they have a healthcheck), one-shot ones exited 0.
func (g *globals) waitServices(ctx context.Context, e *composeEnv, services []string, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	want := map[string]bool{}
	for _, s := range services {
		want[s] = true
	}
	for {
		infos, err := e.deps.Runtime.List(ctx, runtime.Filter{Labels: map[string]string{runtime.LabelProject: e.m.Name}})
		if err != nil {
			return err
		}
		pending := 0
		for _, in := range infos {
			svc := in.Labels[runtime.LabelService]
			if in.Labels[runtime.LabelOneOff] == "True" || (len(want) > 0 && !want[svc]) {
				continue
			}
			s, ok := e.m.Project.Services[svc]
			if !ok {
				continue
			}
			switch {
			case in.Status == runtime.StatusExited && in.Exit != nil && in.Exit.Code == 0 && (s.Restart == "" || s.Restart == "no"):
				// a one-shot job, done
			case in.Status == runtime.StatusExited || in.Status == runtime.StatusDead:
				code := -1
				if in.Exit != nil {
					code = in.Exit.Code
				}
				return fmt.Errorf("service %s: container %s exited (%d)", svc, in.Name, code)
			case in.Health == "unhealthy":
				return fmt.Errorf("service %s: container %s is unhealthy", svc, in.Name)
			case in.Status != runtime.StatusRunning || in.Health == "starting":
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("--wait: %d containers not yet running or healthy: %w", pending, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// attachUp is up without -d: follow the services' logs until every
// container has stopped or Ctrl-C; Ctrl-C stops them gracefully (each
// within its stop_grace_period), a second Ctrl-C kills them. With the
// abort flags, a container's exit stops the others and up returns its
// exit code (or --exit-code-from's service's). began is when up began:
// earlier exits are old news.
func (g *globals) attachUp(ctx context.Context, e *composeEnv, services, scope []string, opt reconcile.Options, o *upOpts, began time.Time) error {
	watch := slices.Clone(services)
	show := map[string]bool{}
	switch {
	case len(o.attach) > 0:
		for _, s := range o.attach {
			show[s] = true
		}
	case len(services) == 0:
		for s := range e.m.Project.Services {
			show[s] = true
		}
	case o.attachDeps:
		for _, s := range scope {
			show[s] = true
		}
	default:
		for _, s := range services {
			show[s] = true
		}
	}
	for _, s := range o.noAttach {
		delete(show, s)
	}
	if len(watch) > 0 {
		// Whose logs show, and whose exit code is asked for, are watched too.
		for s := range show {
			watch = append(watch, s)
		}
		if o.exitCodeFrom != "" {
			watch = append(watch, o.exitCodeFrom)
		}
		slices.Sort(watch)
		watch = slices.Compact(watch)
	}
	w := logWatch{services: watch, show: show, untilAllStopped: true, since: began}
	code, coded := 0, false // up's exit code, and whether a container gave it
	aborting := false
	stopped := make(chan error, 1)
	w.onExit = func(in runtime.Info) {
		svc, c := in.Labels[runtime.LabelService], in.Exit.Code
		if o.exitCodeFrom != "" && svc == o.exitCodeFrom && !coded {
			code, coded = c, true
		}
		if aborting || !o.aborting() {
			return
		}
		if c == 0 && (o.abortOnFailure || oneShotDependency(e, svc)) {
			return // a success, or a one-shot job others waited for
		}
		aborting = true
		if o.exitCodeFrom == "" {
			code, coded = c, true
		}
		fmt.Fprintf(g.stderr, "Aborting on container exit... (%s exited with code %d)\n", in.Name, c)
		go func() { stopped <- g.stopProject(ctx, e, watch, opt.Timeout) }()
	}
	lo := linux.LogsOptions{LogOptions: runtime.LogOptions{Follow: true, Tail: -1, Timestamps: o.timestamps}}
	st := logStyle{prefix: !o.noLogPrefix, color: g.useColor(o.noColor), timestamps: o.timestamps}
	err := g.projectLogs(ctx, e, w, lo, st)
	if ctx.Err() == nil {
		if err != nil {
			return err
		}
		if aborting {
			if err := <-stopped; err != nil {
				return err
			}
		}
		if o.exitCodeFrom != "" && !coded {
			code = g.lastExitCode(ctx, e, o.exitCodeFrom)
		}
		if code != 0 {
			return exitError{code}
		}
		return nil
	}
	return g.stopAttached(ctx, e, watch, opt.Timeout)
}

// stopAttached is what attached up does on Ctrl+C: stop the services
// gracefully, and kill them on a second Ctrl+C (exit 130).
func (g *globals) stopAttached(ctx context.Context, e *composeEnv, services []string, timeout *time.Duration) error {
	fmt.Fprintln(g.stderr, "Gracefully stopping... (press Ctrl+C again to force)")
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	stopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.stopProject(stopCtx, e, services, timeout) }()
	select {
	case err := <-done:
		return err
	case <-again:
		cancel()
		fmt.Fprintln(g.stderr, "Killing...")
		bg := context.WithoutCancel(ctx)
		infos, _ := g.projectContainers(bg, e, services, false, true)
		for _, in := range infos {
			if c, err := e.deps.Runtime.Load(bg, in.ID); err == nil {
				c.Kill(bg, syscall.SIGKILL)
			}
		}
		return exitError{130}
	}
}

// lastExitCode is the exit code of a service's first replica that
// exited (-1 when none has).
func (g *globals) lastExitCode(ctx context.Context, e *composeEnv, svc string) int {
	infos, err := g.projectContainers(context.WithoutCancel(ctx), e, []string{svc}, true, false)
	if err != nil {
		return -1
	}
	for _, in := range infos {
		if in.Exit != nil && !isLive(in.Status) {
			return in.Exit.Code
		}
	}
	return -1
}
