package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/project"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime"
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
	m    *project.Model
	deps reconcile.Deps
	root *state.Root
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
	return &composeEnv{m: m, root: root, deps: reconcile.Deps{Runtime: rt, Networks: nm, Volumes: vm, Images: imageResolver{store}}}, nil
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

func newUpCmd(g *globals) *cobra.Command {
	var detach, noDeps, forceRecreate, noRecreate, noStart, removeOrphans, renewAnon, wait bool
	var scale []string
	var timeout, waitTimeout int
	cmd := &cobra.Command{
		Use:   "up [OPTIONS] [SERVICE...]",
		Short: "Create and start containers",
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
			opt := reconcile.Options{Services: args, NoDeps: noDeps, ForceRecreate: forceRecreate, NoRecreate: noRecreate,
				NoStart: noStart, RemoveOrphans: removeOrphans, Scale: sc, RenewAnon: renewAnon}
			if cmd.Flags().Changed("timeout") {
				d := time.Duration(timeout) * time.Second
				opt.Timeout = &d
			}
			if err := g.converge(ctx, e, opt); err != nil {
				return err
			}
			if g.dryRun || noStart {
				return nil
			}
			if wait {
				return g.waitServices(ctx, e, args, time.Duration(waitTimeout)*time.Second)
			}
			if detach {
				return nil
			}
			return g.attachProject(ctx, e, args, opt)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&detach, "detach", "d", false, "Detached mode: Run containers in the background")
	f.BoolVar(&noDeps, "no-deps", false, "Don't start linked services")
	f.BoolVar(&forceRecreate, "force-recreate", false, "Recreate containers even if their configuration and image haven't changed")
	f.BoolVar(&noRecreate, "no-recreate", false, "If containers already exist, don't recreate them")
	f.BoolVar(&noStart, "no-start", false, "Don't start the services after creating them")
	f.BoolVar(&removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	f.BoolVarP(&renewAnon, "renew-anon-volumes", "V", false, "Recreate anonymous volumes instead of retrieving data from the previous containers")
	f.BoolVar(&wait, "wait", false, "Wait for services to be running|healthy (one-shot services: exited 0). Implies detached mode")
	f.IntVar(&waitTimeout, "wait-timeout", 0, "Maximum duration in seconds to wait for the project to be running|healthy")
	f.StringArrayVar(&scale, "scale", nil, "Scale SERVICE to NUM instances. Overrides the scale setting in the Compose file if present")
	f.IntVarP(&timeout, "timeout", "t", 10, "Use this timeout in seconds for container shutdown when attached or when containers are already running")
	return g.compose(cmd)
}

func newDownCmd(g *globals) *cobra.Command {
	var volumes, removeOrphans bool
	var timeout int
	cmd := &cobra.Command{
		Use:   "down [OPTIONS] [SERVICES]",
		Short: "Stop and remove containers, networks",
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.composeEnv(cmd.Context())
			if err != nil {
				return err
			}
			opt := reconcile.Options{Down: true, DownVolumes: volumes, Services: args, RemoveOrphans: removeOrphans}
			if cmd.Flags().Changed("timeout") {
				d := time.Duration(timeout) * time.Second
				opt.Timeout = &d
			}
			return g.converge(cmd.Context(), e, opt)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&volumes, "volumes", "v", false, "Remove named volumes declared in the \"volumes\" section of the Compose file and anonymous volumes attached to containers")
	f.BoolVar(&removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	f.IntVarP(&timeout, "timeout", "t", 10, "Specify a shutdown timeout in seconds")
	return g.compose(cmd)
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

// attachProject is up without -d: follow the services' logs until Ctrl-C
// (or until every container ended); Ctrl-C stops them gracefully (each
// within its stop_grace_period), a second Ctrl-C kills them.
func (g *globals) attachProject(ctx context.Context, e *composeEnv, services []string, opt reconcile.Options) error {
	err := g.followProjectLogs(ctx, e, services, true)
	if ctx.Err() == nil {
		return err
	}
	fmt.Fprintln(g.stderr, "Gracefully stopping... (press Ctrl+C again to force)")
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	stopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.stopProject(stopCtx, e, services, opt.Timeout) }()
	select {
	case err := <-done:
		return err
	case <-again:
		cancel()
		fmt.Fprintln(g.stderr, "Killing...")
		infos, _ := g.projectContainers(context.WithoutCancel(ctx), e, services, false, true)
		for _, in := range infos {
			if c, err := e.deps.Runtime.Load(context.WithoutCancel(ctx), in.ID); err == nil {
				c.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
			}
		}
		return exitError{130}
	}
}
