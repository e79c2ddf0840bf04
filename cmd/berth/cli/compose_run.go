package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/format"
	"github.com/compose-spec/compose-go/v2/types"
	shellwords "github.com/mattn/go-shellwords"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/failpoint"
	"berth.dev/berth/network"
	"berth.dev/berth/project"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

// LabelSlug is compose's label with a one-off container's full random ID
// (its name carries the first 12 hex digits).
const LabelSlug = "com.docker.compose.slug"

// runComposeOpts are compose run's flags.
type runComposeOpts struct {
	detach, rm, noTTY, tty, interactive, noDeps, servicePorts, useAliases bool
	rmDeps, removeOrphans, build, quietPull                               bool
	name, entrypoint, user, workdir, pull                                 string
	env, envFromFile, labels, volumes, publish, capAdd, capDrop           []string
	ttySet, entrypointSet                                                 bool
}

func newRunComposeCmd(g *globals) *cobra.Command {
	o := &runComposeOpts{}
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] SERVICE [COMMAND] [ARGS...]",
		Short: "Run a one-off command on a service",
		Long: `Run a one-off command on a service.

The service's dependencies come up first (not with --no-deps), then a new
container <project>-<service>-run-<12 hex> runs the command, attached, and
berth exits with its exit code. It publishes no ports unless
--service-ports or -p, and has no network aliases unless --use-aliases.
--rm removes it afterwards; --rm-deps (berth's own) also stops and removes
the dependency containers that this run started.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ttySet = cmd.Flags().Changed("tty")
			o.entrypointSet = cmd.Flags().Changed("entrypoint")
			return g.runOneOff(cmd.Context(), o, args[0], args[1:])
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&o.detach, "detach", "d", false, "Run container in background and print container name")
	f.BoolVar(&o.rm, "rm", false, "Automatically remove the container when it exits")
	f.BoolVarP(&o.noTTY, "no-TTY", "T", false, "Disable pseudo-TTY allocation (default: auto-detected)")
	f.BoolVarP(&o.tty, "tty", "t", true, "Allocate a pseudo-TTY")
	f.BoolVarP(&o.interactive, "interactive", "i", true, "Keep STDIN open even if not attached")
	f.BoolVar(&o.noDeps, "no-deps", false, "Don't start linked services")
	f.BoolVarP(&o.servicePorts, "service-ports", "P", false, "Run command with all service's ports enabled and mapped to the host")
	f.BoolVar(&o.useAliases, "use-aliases", false, "Use the service's network useAliases in the network(s) the container connects to")
	f.BoolVar(&o.rmDeps, "rm-deps", false, "Stop and remove the dependency containers this run started, when it ends (berth's own)")
	f.BoolVar(&o.removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	f.BoolVar(&o.build, "build", false, "Build image before starting container")
	f.BoolVar(&o.quietPull, "quiet-pull", false, "Pull without printing progress information")
	f.StringVar(&o.pull, "pull", "policy", `Pull image before running ("always"|"missing"|"never")`)
	f.StringVar(&o.name, "name", "", "Assign a name to the container")
	f.StringVar(&o.entrypoint, "entrypoint", "", "Override the entrypoint of the image")
	f.StringVarP(&o.user, "user", "u", "", "Run as specified username or uid")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables")
	f.StringArrayVar(&o.envFromFile, "env-from-file", nil, "Set environment variables from file")
	f.StringArrayVarP(&o.labels, "label", "l", nil, "Add or override a label")
	f.StringArrayVarP(&o.volumes, "volume", "v", nil, "Bind mount a volume")
	f.StringArrayVarP(&o.publish, "publish", "p", nil, "Publish a container's port(s) to the host")
	f.StringArrayVar(&o.capAdd, "cap-add", nil, "Add Linux capabilities")
	f.StringArrayVar(&o.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	return g.compose(cmd)
}

// runOneOff is compose run.
func (g *globals) runOneOff(ctx context.Context, o *runComposeOpts, service string, cmdArgs []string) error {
	if o.rmDeps && o.detach {
		return errUsage("--rm-deps removes the dependencies when the run ends: it needs an attached run (not -d)")
	}
	if err := checkPull(o.pull); err != nil {
		return err
	}
	e, err := g.composeEnv(ctx)
	if err != nil {
		return err
	}
	svc, ok := e.m.Project.Services[service]
	if !ok {
		if svc, ok = e.m.Project.DisabledServices[service]; !ok {
			return unknownService(e, service)
		}
	}
	if svc.Name == "" {
		svc.Name = service
	}
	rt, ok := e.deps.Runtime.(*linux.Runtime)
	if !ok {
		return errdefs.Unavailablef("run needs berth's container runtime")
	}
	if !o.detach {
		rt.Prewarm()
	}
	stdinTerm := false
	if in, ok := g.stdin.(*os.File); ok && isTerminal(in) {
		stdinTerm = true
	}
	// As compose: a terminal when stdin is one (or -t), never with -T.
	tty := stdinTerm && !o.noTTY
	if o.ttySet {
		tty = o.tty && !o.noTTY
	}
	interactive := o.interactive && !o.detach

	// Dependencies first, through the reconciler.
	deps, err := runDependencies(e, svc, o.noDeps)
	if err != nil {
		return err
	}
	if err := g.buildForUp(ctx, e, append([]string{service}, deps...), o.build, false); err != nil {
		return err
	}
	if err := g.pullForUp(ctx, e, append([]string{service}, deps...), o.pull); err != nil {
		return err
	}
	var before map[string]bool
	if o.rmDeps {
		if before, err = liveContainerIDs(ctx, e); err != nil {
			return err
		}
	}
	if len(deps) > 0 {
		if err := g.converge(ctx, e, reconcile.Options{Services: deps, RemoveOrphans: o.removeOrphans}); err != nil {
			return g.afterRun(ctx, e, o, deps, before, err)
		}
		if g.dryRun {
			return nil
		}
		if err := waitDependencies(ctx, e, svc); err != nil {
			return g.afterRun(ctx, e, o, deps, before, err)
		}
	} else if g.dryRun {
		return nil
	}

	// The one-off: the service as the flags change it, built as a replica.
	slug, err := randomHex(32)
	if err != nil {
		return err
	}
	if err := o.apply(g, e, &svc, cmdArgs, tty, interactive); err != nil {
		return err
	}
	mm := withService(e.m, svc)
	img, err := e.deps.Images.Resolve(ctx, reconcile.ImageRef(e.m.Name, svc))
	if err != nil {
		return g.afterRun(ctx, e, o, deps, before, fmt.Errorf("service %s: image %s: %w (import or load it first)", service, reconcile.ImageRef(e.m.Name, svc), err))
	}
	hash, err := project.HashService(svc, img.Digest)
	if err != nil {
		return err
	}
	built, err := reconcile.BuildSpec(mm, reconcile.SpecInput{Service: service, Number: 1, OneOff: true, Image: img, Hash: hash})
	if err != nil {
		return g.afterRun(ctx, e, o, deps, before, err)
	}
	spec := built.Spec
	spec.Name = o.name
	if spec.Name == "" {
		spec.Name = reconcile.OneOffName(e.m.Name, service, slug[:12])
	}
	spec.Labels[LabelSlug] = slug
	if o.useAliases {
		runAliases(&spec, svc)
	}
	spec.AutoRemove = o.rm && o.detach
	spec.OpenStdin = o.interactive
	spec.StdinOnce = interactive
	spec.OCI.Process.Terminal = tty
	if in, ok := g.stdin.(*os.File); ok && tty && stdinTerm {
		if ws, err := unix.IoctlGetWinsize(int(in.Fd()), unix.TIOCGWINSZ); err == nil {
			spec.ConsoleSize = &runtime.Winsize{Rows: ws.Row, Cols: ws.Col}
		}
	}

	lk, err := g.lockProject(ctx, e)
	if err != nil {
		return err
	}
	c, err := g.createOneOff(ctx, e, rt, svc, spec, built)
	if err != nil {
		lk.Unlock()
		return g.afterRun(ctx, e, o, deps, before, fmt.Errorf("service %s: %w", service, err))
	}
	cleanup := func() {
		ctx := context.WithoutCancel(ctx)
		reconcile.RemoveWithMounts(ctx, e.deps, e.m, c, true)
	}
	var serr error
	if o.detach {
		serr = c.Start(ctx)
	} else {
		serr = c.StartAttach(ctx)
	}
	lk.Unlock()
	failpoint.Hit("run-started")
	var se *runtime.StartError
	portInUse := errors.As(serr, &se) && se.PortInUse
	if serr == nil || (!o.rm && !portInUse) {
		c.MarkCreated()
	}
	if serr != nil {
		if o.rm || portInUse {
			cleanup()
		}
		return g.afterRun(ctx, e, o, deps, before, startFailure(fmt.Errorf("service %s: %w", service, serr)))
	}
	if o.detach {
		fmt.Fprintln(g.stdout, spec.Name)
		return nil
	}
	// Attached: ^C goes to the container (signals are proxied without a
	// tty; with one, the terminal sends them), not to berth.
	actx := context.WithoutCancel(ctx)
	err = g.attachAndWait(actx, c, interactive, tty, true, "ctrl-p,ctrl-q", true)
	var ee exitError
	if o.rm && (err == nil || errors.As(err, &ee)) { // not when detached: it runs on
		if info, ierr := c.Info(actx); ierr == nil && !isLive(info.Status) {
			if rerr := reconcile.RemoveWithMounts(actx, e.deps, e.m, c, true); rerr != nil {
				fmt.Fprintln(g.stderr, "berth: warning:", rerr)
			}
		}
	}
	return g.afterRun(actx, e, o, deps, before, err)
}

// afterRun is --rm-deps: the dependency containers that were not running
// before this run are stopped and removed, whatever the run gave (err).
func (g *globals) afterRun(ctx context.Context, e *composeEnv, o *runComposeOpts, deps []string, before map[string]bool, err error) error {
	if !o.rmDeps || len(deps) == 0 || g.dryRun {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	closure := dependencyClosure(e, deps)
	infos, lerr := g.projectContainers(ctx, e, nil, true, false)
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	var started []runtime.Info
	for _, in := range infos {
		if closure[in.Labels[runtime.LabelService]] && !before[in.ID] {
			started = append(started, in)
		}
	}
	if len(started) == 0 {
		return err
	}
	lk, lerr := g.lockProject(ctx, e)
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	defer lk.Unlock()
	names, groups := byService(started)
	ev := g.events()
	defer ev.Close()
	var errs []error
	for i := len(names) - 1; i >= 0; i-- { // dependents first
		svc := names[i]
		errs = append(errs, eachParallel(groups[svc], func(in runtime.Info) error {
			c, cerr := loadLinux(ctx, e, in)
			if errdefs.IsNotFound(cerr) {
				return nil
			}
			if cerr != nil {
				return cerr
			}
			if isLive(in.Status) {
				if serr := track(ev, reconcile.StopContainer, in.Name, "Stopping", "Stopped", func() error {
					return c.Stop(ctx, g.stopTimeout(e, svc, nil))
				}); serr != nil {
					return fmt.Errorf("--rm-deps: service %s: stop %s: %w", svc, in.Name, serr)
				}
			}
			return track(ev, reconcile.RemoveContainer, in.Name, "Removing", "Removed", func() error {
				if rerr := g.removeNetworked(ctx, c, runtime.RemoveOptions{Force: true}); rerr != nil {
					return fmt.Errorf("--rm-deps: service %s: remove %s: %w", svc, in.Name, rerr)
				}
				return nil
			})
		}))
	}
	return errors.Join(append([]error{err}, errs...)...)
}

// runDependencies are the services run brings up first: the service's
// dependencies that the project has (a missing optional one is skipped).
func runDependencies(e *composeEnv, svc types.ServiceConfig, noDeps bool) ([]string, error) {
	if noDeps {
		return nil, nil
	}
	var out []string
	for _, d := range e.m.Dependencies(svc) {
		if _, ok := e.m.Project.Services[d]; ok {
			out = append(out, d)
			continue
		}
		if dc, ok := svc.DependsOn[d]; ok && !dc.Required {
			continue
		}
		return nil, fmt.Errorf("service %s depends on %s: %w", svc.Name, d, unknownService(e, d))
	}
	return out, nil
}

// dependencyClosure is deps and everything they depend on.
func dependencyClosure(e *composeEnv, deps []string) map[string]bool {
	set := map[string]bool{}
	var visit func(string)
	visit = func(s string) {
		if set[s] {
			return
		}
		set[s] = true
		if sc, ok := e.m.Project.Services[s]; ok {
			for _, d := range e.m.Dependencies(sc) {
				visit(d)
			}
		}
	}
	for _, d := range deps {
		visit(d)
	}
	return set
}

// liveContainerIDs are the project's service containers that run now.
func liveContainerIDs(ctx context.Context, e *composeEnv) (map[string]bool, error) {
	infos, err := e.deps.Runtime.List(ctx, runtime.Filter{Labels: map[string]string{runtime.LabelProject: e.m.Name}})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, in := range infos {
		if isLive(in.Status) {
			out[in.ID] = true
		}
	}
	return out, nil
}

// waitDependencies waits for the conditions of the service's depends_on
// that the reconciler did not wait for (it waits between the actions of
// its plan; the one-off is not in it): healthy, completed successfully.
func waitDependencies(ctx context.Context, e *composeEnv, svc types.ServiceConfig) error {
	ctx, cancel := context.WithTimeout(ctx, reconcile.DefaultWaitTimeout)
	defer cancel()
	names := slices.Sorted(maps.Keys(svc.DependsOn))
	for _, dep := range names {
		dc := svc.DependsOn[dep]
		if dc.Condition != types.ServiceConditionHealthy && dc.Condition != types.ServiceConditionCompletedSuccessfully {
			continue
		}
		for {
			infos, err := e.deps.Runtime.List(ctx, runtime.Filter{Labels: map[string]string{runtime.LabelProject: e.m.Name, runtime.LabelService: dep}})
			if err != nil {
				return err
			}
			done, pending := 0, 0
			for _, in := range infos {
				if in.Labels[runtime.LabelOneOff] == "True" {
					continue
				}
				code := -1
				if in.Exit != nil {
					code = in.Exit.Code
				}
				switch dc.Condition {
				case types.ServiceConditionHealthy:
					switch {
					case in.Health == "healthy" && in.Status == runtime.StatusRunning:
						done++
					case in.Health == "unhealthy":
						return fmt.Errorf("dependency %s is unhealthy: container %s", dep, in.Name)
					case !isLive(in.Status) && in.Status != runtime.StatusCreated:
						return fmt.Errorf("dependency %s exited (%d) before it became healthy: container %s", dep, code, in.Name)
					case in.Health == "" && in.Status == runtime.StatusRunning:
						return fmt.Errorf("dependency %s has no healthcheck, but %s waits for it to be healthy", dep, svc.Name)
					default:
						pending++
					}
				default:
					switch {
					case in.Status == runtime.StatusExited && code == 0:
						done++
					case in.Status == runtime.StatusExited || in.Status == runtime.StatusDead:
						return fmt.Errorf("dependency %s did not complete successfully: container %s exited (%d)", dep, in.Name, code)
					default:
						pending++
					}
				}
			}
			if pending == 0 && (done > 0 || !dc.Required) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for dependency %s (%s): %w", dep, dc.Condition, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// apply changes the service as run's flags ask (compose does the same to
// its copy of the service before creating the container).
func (o *runComposeOpts) apply(g *globals, e *composeEnv, svc *types.ServiceConfig, cmdArgs []string, tty, interactive bool) error {
	svc.Tty = tty
	svc.StdinOpen = o.interactive
	svc.ContainerName = ""
	svc.Restart = "no"
	if svc.Deploy != nil && svc.Deploy.RestartPolicy != nil {
		d := *svc.Deploy
		d.RestartPolicy = nil
		svc.Deploy = &d
	}
	if len(cmdArgs) > 0 {
		svc.Command = types.ShellCommand(cmdArgs)
	}
	if o.entrypointSet {
		ep, err := shellwords.Parse(o.entrypoint)
		if err != nil {
			return errUsage("--entrypoint %q: %v", o.entrypoint, err)
		}
		svc.Entrypoint = types.ShellCommand(ep)
		if len(cmdArgs) == 0 {
			svc.Command = types.ShellCommand{}
		}
	}
	if o.user != "" {
		svc.User = o.user
	}
	if o.workdir != "" {
		svc.WorkingDir = o.workdir
	}
	if len(o.capAdd) > 0 {
		svc.CapAdd = append(slices.Clone(svc.CapAdd), o.capAdd...)
		svc.CapDrop = slices.DeleteFunc(slices.Clone(svc.CapDrop), func(c string) bool { return slices.Contains(o.capAdd, c) })
	}
	if len(o.capDrop) > 0 {
		svc.CapDrop = append(slices.Clone(svc.CapDrop), o.capDrop...)
		svc.CapAdd = slices.DeleteFunc(slices.Clone(svc.CapAdd), func(c string) bool { return slices.Contains(o.capDrop, c) })
	}
	var env []string
	for _, f := range o.envFromFile {
		b, err := os.ReadFile(g.hostPath(f))
		if err != nil {
			return errdefs.NotFoundf("--env-from-file %s: %w", f, err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				env = append(env, line)
			}
		}
	}
	env = append(env, o.env...)
	if len(env) > 0 {
		over := types.NewMappingWithEquals(env).Resolve(func(k string) (string, bool) {
			if v, ok := e.m.Project.Environment[k]; ok {
				return v, true
			}
			v, ok := g.env[k]
			return v, ok
		}).RemoveEmpty()
		merged := types.MappingWithEquals{}
		maps.Copy(merged, svc.Environment)
		svc.Environment = merged.OverrideBy(over)
	}
	if len(o.labels) > 0 {
		l := types.Labels{}
		maps.Copy(l, svc.Labels)
		for _, kv := range o.labels {
			k, v, _ := strings.Cut(kv, "=")
			l[k] = v
		}
		svc.Labels = l
	}
	if len(o.volumes) > 0 {
		vols := slices.Clone(svc.Volumes)
		for _, v := range o.volumes {
			vc, err := format.ParseVolume(v)
			if err != nil {
				return errUsage("-v %q: %v", v, err)
			}
			if vc.Type == types.VolumeTypeBind && !filepath.IsAbs(vc.Source) {
				vc.Source = filepath.Join(e.m.WorkingDir, vc.Source)
			}
			vols = append(vols, vc)
		}
		svc.Volumes = vols
	}
	if !o.servicePorts {
		svc.Ports = nil
	}
	for _, p := range o.publish {
		pcs, err := types.ParsePortConfig(p)
		if err != nil {
			return errUsage("-p %q: %v; write [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]", p, err)
		}
		svc.Ports = append(slices.Clone(svc.Ports), pcs...)
	}
	return nil
}

// withService is the model with one service replaced (or enabled).
func withService(m *project.Model, svc types.ServiceConfig) *project.Model {
	mm := *m
	p := *m.Project
	p.Services = maps.Clone(m.Project.Services)
	if p.Services == nil {
		p.Services = types.Services{}
	}
	p.Services[svc.Name] = svc
	mm.Project = &p
	return &mm
}

// runAliases gives the one-off the service's network aliases
// (--use-aliases), as BuildSpec gives a replica.
func runAliases(spec *runtime.ContainerSpec, svc types.ServiceConfig) {
	keys := svc.NetworksByPriority()
	if len(keys) == 0 {
		keys = []string{"default"}
	}
	if len(keys) != len(spec.Networks) {
		return // network_mode: no project networks
	}
	for i, key := range keys {
		cfg := svc.Networks[key]
		var aliases []string
		if cfg.ServiceNameAliasEnabled() {
			aliases = append(aliases, svc.Name)
		}
		if cfg != nil {
			aliases = append(aliases, cfg.Aliases...)
		}
		spec.Networks[i].Aliases = slices.Compact(aliases)
	}
}

// createOneOff makes sure the service's networks and volumes exist, then
// creates the one-off (transient until it starts: a run killed before
// leaves nothing) and attaches it to its networks.
func (g *globals) createOneOff(ctx context.Context, e *composeEnv, rt *linux.Runtime, svc types.ServiceConfig, spec runtime.ContainerSpec, built reconcile.Built) (*linux.Container, error) {
	if err := ensureRunResources(ctx, e, svc, spec); err != nil {
		return nil, err
	}
	// Volumes (named, anonymous, the image's), volumes_from, secrets and
	// configs, as the executor resolves them for a service's containers.
	undoMounts, err := reconcile.ResolveMounts(ctx, e.deps, e.m, svc.Name, 1, built, &spec)
	if err != nil {
		return nil, err
	}
	env, hosts, err := g.runLinks(ctx, e, rt, spec, built.Links)
	if err != nil {
		undoMounts()
		return nil, err
	}
	spec.OCI.Process.Env = append(slices.Clone(spec.OCI.Process.Env), env...)
	c, err := rt.CreateTransient(ctx, spec)
	if err != nil {
		undoMounts()
		return nil, err
	}
	if err := reconcile.Connect(ctx, e.deps.Networks, c, spec, hosts); err != nil {
		reconcile.RemoveWithMounts(context.WithoutCancel(ctx), e.deps, e.m, c, true)
		return nil, err
	}
	return c.(*linux.Container), nil
}

// ensureRunResources creates the project networks and volumes the one-off
// uses (up would have; with --no-deps nothing else may have yet) and
// checks the external ones exist.
func ensureRunResources(ctx context.Context, e *composeEnv, svc types.ServiceConfig, spec runtime.ContainerSpec) error {
	m := e.m
	if len(spec.Networks) > 0 && e.deps.Networks != nil {
		if svc.NetworkMode == "bridge" {
			if err := ensureDefaultNetwork(ctx, e.deps.Networks); err != nil {
				return err
			}
		} else {
			keys := svc.NetworksByPriority()
			if len(keys) == 0 {
				keys = []string{"default"}
			}
			for _, key := range keys {
				if err := ensureRunNetwork(ctx, m, e.deps.Networks, key); err != nil {
					return err
				}
			}
		}
	}
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			continue
		}
		vc, ok := m.Project.Volumes[v.Source]
		if !ok || e.deps.Volumes == nil {
			continue // not a project volume: ResolveMounts finds it or says it is missing
		}
		if vc.External {
			name := vc.Name
			if name == "" {
				name = v.Source
			}
			if _, err := e.deps.Volumes.Inspect(ctx, name); err != nil {
				return fmt.Errorf("volume %s is external: %w", name, err)
			}
			continue
		}
		vs, err := reconcile.VolumeSpec(m, v.Source)
		if err != nil {
			return err
		}
		if _, err := e.deps.Volumes.Create(ctx, vs); err != nil {
			return err
		}
	}
	return nil
}

func ensureRunNetwork(ctx context.Context, m *project.Model, nm network.Manager, key string) error {
	nc, ok := m.Project.Networks[key]
	if !ok {
		return errdefs.Invalidf("network %q is not defined in the project", key)
	}
	if nc.External {
		name := nc.Name
		if name == "" {
			name = key
		}
		if _, err := nm.Inspect(ctx, name); errdefs.IsNotFound(err) {
			return errdefs.NotFoundf("network %s is external but does not exist; create it with 'berth network create %s'", name, name)
		} else if err != nil {
			return err
		}
		return nil
	}
	s, err := reconcile.NetworkSpec(m, key)
	if err != nil {
		return err
	}
	_, err = nm.Create(ctx, s)
	return err
}

// runLinks resolves the service's legacy links for the one-off: a link to
// a service points at its lowest-numbered container, which must run.
func (g *globals) runLinks(ctx context.Context, e *composeEnv, rt *linux.Runtime, spec runtime.ContainerSpec, links []reconcile.Link) ([]string, []runtime.HostEntry, error) {
	if len(links) == 0 {
		return nil, nil, nil
	}
	var refs []string
	for _, l := range links {
		alias := l.Alias
		if alias == "" {
			alias = l.Service
		}
		target := l.Service
		if !l.External {
			infos, err := e.deps.Runtime.List(ctx, runtime.Filter{Labels: map[string]string{runtime.LabelProject: e.m.Name, runtime.LabelService: l.Service}})
			if err != nil {
				return nil, nil, err
			}
			best, bestN := "", 0
			for _, in := range infos {
				n, err := strconv.Atoi(in.Labels[runtime.LabelNumber])
				if in.Labels[runtime.LabelOneOff] == "True" || err != nil || n < 1 {
					continue
				}
				if best == "" || n < bestN {
					best, bestN = in.Name, n
				}
			}
			if best == "" {
				return nil, nil, errdefs.NotFoundf("link to %s: service %s has no container; start it first (or drop --no-deps)", alias, l.Service)
			}
			target = best
		}
		refs = append(refs, target+":"+alias)
	}
	return g.linkTargets(ctx, rt, spec, refs)
}

// randomHex is n random bytes in hex.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
