package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

// projectContainers lists the project's containers (one-offs only with
// oneOff), of the given services (all when empty), in service order then
// number.
func (g *globals) projectContainers(ctx context.Context, e *composeEnv, services []string, all, oneOff bool) ([]runtime.Info, error) {
	for _, s := range services {
		if _, ok := e.m.Project.Services[s]; !ok {
			names := e.m.Project.ServiceNames()
			sort.Strings(names)
			return nil, errdefs.NotFoundf("no such service: %s (the services are: %s)", s, strings.Join(names, ", "))
		}
	}
	infos, err := e.deps.Runtime.List(ctx, runtime.Filter{Labels: map[string]string{runtime.LabelProject: e.m.Name}})
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, s := range services {
		want[s] = true
	}
	order := map[string]int{}
	if o, err := e.m.Order(); err == nil {
		for i, s := range o {
			order[s] = i
		}
	}
	var out []runtime.Info
	for _, in := range infos {
		if len(want) > 0 && !want[in.Labels[runtime.LabelService]] {
			continue
		}
		if in.Labels[runtime.LabelOneOff] == "True" && !oneOff {
			continue
		}
		if !all && in.Status != runtime.StatusRunning && in.Status != runtime.StatusRestarting && in.Status != runtime.StatusPaused {
			continue
		}
		out = append(out, in)
	}
	sort.SliceStable(out, func(i, j int) bool {
		si, sj := out[i].Labels[runtime.LabelService], out[j].Labels[runtime.LabelService]
		if si != sj {
			if order[si] != order[sj] {
				return order[si] < order[sj]
			}
			return si < sj
		}
		ni, _ := strconv.Atoi(out[i].Labels[runtime.LabelNumber])
		nj, _ := strconv.Atoi(out[j].Labels[runtime.LabelNumber])
		return ni < nj
	})
	return out, nil
}

// byService groups containers by service, keeping order.
func byService(infos []runtime.Info) (names []string, groups map[string][]runtime.Info) {
	groups = map[string][]runtime.Info{}
	for _, in := range infos {
		s := in.Labels[runtime.LabelService]
		if _, ok := groups[s]; !ok {
			names = append(names, s)
		}
		groups[s] = append(groups[s], in)
	}
	return names, groups
}

// eachParallel runs fn on every container of a group at once.
func eachParallel(infos []runtime.Info, fn func(runtime.Info) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(infos))
	for i, in := range infos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(in)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopProject stops services in reverse dependency order, the replicas of
// one service at once.
func (g *globals) stopProject(ctx context.Context, e *composeEnv, services []string, timeout *time.Duration) error {
	infos, err := g.projectContainers(ctx, e, services, false, true)
	if err != nil {
		return err
	}
	names, groups := byService(infos)
	ev := g.events()
	defer ev.Close()
	var errs []error
	for i := len(names) - 1; i >= 0; i-- {
		errs = append(errs, eachParallel(groups[names[i]], func(in runtime.Info) error {
			c, err := e.deps.Runtime.Load(ctx, in.ID)
			if err != nil {
				return err
			}
			return track(ev, reconcile.StopContainer, in.Name, "Stopping", "Stopped", func() error {
				if err := c.Stop(ctx, g.stopTimeout(e, names[i], timeout)); err != nil {
					return fmt.Errorf("service %s: stop %s: %w", names[i], in.Name, err)
				}
				return nil
			})
		}))
	}
	return errors.Join(errs...)
}

// track emits the working and the final event of an action on a container.
func track(ev reconcile.Sink, kind reconcile.ActionKind, name, working, done string, fn func() error) error {
	res := "container:" + name
	ev.Emit(reconcile.Event{Time: time.Now(), Action: kind, Resource: res, Status: reconcile.StatusWorking, Text: working})
	if err := fn(); err != nil {
		ev.Emit(reconcile.Event{Time: time.Now(), Action: kind, Resource: res, Status: reconcile.StatusFailed, Text: "Error"})
		return err
	}
	ev.Emit(reconcile.Event{Time: time.Now(), Action: kind, Resource: res, Status: reconcile.StatusDone, Text: done})
	return nil
}

func (g *globals) stopTimeout(e *composeEnv, svc string, override *time.Duration) time.Duration {
	if override != nil {
		return *override
	}
	if s, ok := e.m.Project.Services[svc]; ok && s.StopGracePeriod != nil {
		return time.Duration(*s.StopGracePeriod)
	}
	return 10 * time.Second
}

// events is the renderer --progress asks for.
func (g *globals) events() *display.Events {
	mode, err := display.ParseProgress(g.progress)
	if err != nil {
		mode = display.ProgressPlain
	}
	return display.NewEvents(g.stderr, mode.Resolve(stderrFile(g)))
}

// lifecycleCmd is stop, start and restart: under the project lock, with
// -t where the command stops containers.
func lifecycleCmd(g *globals, use, short string, withTimeout bool, fn func(ctx context.Context, e *composeEnv, services []string, timeout *time.Duration) error) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.composeEnv(cmd.Context())
			if err != nil {
				return err
			}
			var to *time.Duration
			if withTimeout && cmd.Flags().Changed("timeout") {
				d := time.Duration(timeout) * time.Second
				to = &d
			}
			lk, err := g.lockProject(cmd.Context(), e)
			if err != nil {
				return err
			}
			defer lk.Unlock()
			return fn(cmd.Context(), e, args, to)
		},
	}
	if withTimeout {
		cmd.Flags().IntVarP(&timeout, "timeout", "t", 10, "Specify a shutdown timeout in seconds")
	}
	return g.compose(cmd)
}

func newStopComposeCmd(g *globals) *cobra.Command {
	return lifecycleCmd(g, "stop [OPTIONS] [SERVICE...]", "Stop services", true, g.stopProject)
}

func newStartComposeCmd(g *globals) *cobra.Command {
	return lifecycleCmd(g, "start [SERVICE...]", "Start services", false,
		func(ctx context.Context, e *composeEnv, services []string, _ *time.Duration) error {
			return g.startProject(ctx, e, services)
		})
}

func newRestartComposeCmd(g *globals) *cobra.Command {
	var noDeps bool
	cmd := lifecycleCmd(g, "restart [OPTIONS] [SERVICE...]", "Restart service containers", true,
		func(ctx context.Context, e *composeEnv, services []string, timeout *time.Duration) error {
			return g.restartProject(ctx, e, services, noDeps, timeout)
		})
	cmd.Long = `Restart service containers: stop them (dependents first), then start them
in dependency order, waiting for the restarted dependencies a service needs
healthy or completed.

Services that depend on a restarted one with "restart: true" in their
depends_on are restarted after it, unless --no-deps.`
	cmd.Flags().BoolVar(&noDeps, "no-deps", false, "Don't restart dependent services")
	return cmd
}

// restartDependents is services and, transitively, the services whose
// depends_on names one of them with restart: true.
func restartDependents(e *composeEnv, services []string) []string {
	set := map[string]bool{}
	for _, s := range services {
		set[s] = true
	}
	for grew := true; grew; {
		grew = false
		for name, sc := range e.m.Project.Services {
			if set[name] {
				continue
			}
			for dep, dc := range sc.DependsOn {
				if dc.Restart && set[dep] {
					set[name], grew = true, true
					break
				}
			}
		}
	}
	out := slices.Sorted(maps.Keys(set))
	return out
}

// restartProject is restart: the services (with their restart: true
// dependents unless noDeps) stopped in reverse dependency order, then
// started in dependency order, each after the restarted services it
// waits for are healthy or completed.
func (g *globals) restartProject(ctx context.Context, e *composeEnv, services []string, noDeps bool, timeout *time.Duration) error {
	if err := knownServices(e, services); err != nil {
		return err
	}
	targets := services
	if len(services) > 0 && !noDeps {
		targets = restartDependents(e, services)
	}
	if err := g.stopProject(ctx, e, targets, timeout); err != nil {
		return err
	}
	infos, err := g.projectContainers(ctx, e, targets, true, false)
	if err != nil {
		return err
	}
	names, _ := byService(infos)
	restarted := map[string]bool{}
	for _, svc := range names {
		sc := e.m.Project.Services[svc]
		deps := types.DependsOnConfig{}
		for d, dc := range sc.DependsOn {
			if restarted[d] {
				deps[d] = dc
			}
		}
		sc.DependsOn = deps
		if err := waitDependencies(ctx, e, sc); err != nil {
			return fmt.Errorf("service %s: %w", svc, err)
		}
		if err := g.startProject(ctx, e, []string{svc}); err != nil {
			return err
		}
		restarted[svc] = true
	}
	return nil
}

// startProject starts existing containers in dependency order.
func (g *globals) startProject(ctx context.Context, e *composeEnv, services []string) error {
	infos, err := g.projectContainers(ctx, e, services, true, false)
	if err != nil {
		return err
	}
	names, groups := byService(infos)
	ev := g.events()
	defer ev.Close()
	for _, svc := range names {
		err := eachParallel(groups[svc], func(in runtime.Info) error {
			if in.Status == runtime.StatusRunning {
				return nil
			}
			c, err := e.deps.Runtime.Load(ctx, in.ID)
			if err != nil {
				return err
			}
			return track(ev, reconcile.StartContainer, in.Name, "Starting", "Started", func() error {
				if err := g.startNetworked(ctx, c.(*linux.Container), false); err != nil {
					return fmt.Errorf("service %s: start %s: %w", svc, in.Name, err)
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// psRowCompose is compose ps's JSON object.
type psRowCompose struct {
	ID, Name, Image, Command, Project, Service, State, Health, Status, CreatedAt string
	ExitCode                                                                     int
	Publishers                                                                   []map[string]any
	Ports                                                                        string
	RunningFor                                                                   string
}

func newPsComposeCmd(g *globals) *cobra.Command {
	var all, quiet, services bool
	var format string
	var status, filters []string
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] [SERVICE...]",
		Short: "List containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.composeEnv(cmd.Context())
			if err != nil {
				return err
			}
			for _, f := range filters {
				k, v, _ := strings.Cut(f, "=")
				if k != "status" {
					return errUsage("--filter %q: berth filters on status=STATUS", f)
				}
				status = append(status, v)
			}
			infos, err := g.projectContainers(cmd.Context(), e, args, all || len(status) > 0, false)
			if err != nil {
				return err
			}
			rt, store, err := g.openRuntime()
			if err != nil {
				return err
			}
			var rows []psRowCompose
			for _, in := range infos {
				if len(status) > 0 && !contains(status, in.Status.String()) {
					continue
				}
				pr := g.psRow(rt, store, in)
				r := psRowCompose{ID: in.ID, Name: in.Name, Image: pr.Image, Command: pr.Command, Project: e.m.Name,
					Service: in.Labels[runtime.LabelService], State: in.Status.String(), Health: in.Health, Status: pr.Status,
					CreatedAt: pr.CreatedAt, ExitCode: pr.ExitCode, Ports: pr.Ports, Publishers: []map[string]any{}, RunningFor: pr.RunningFor}
				for _, p := range in.Ports {
					r.Publishers = append(r.Publishers, map[string]any{"URL": p.HostIP, "TargetPort": p.ContainerPort, "PublishedPort": p.HostPort, "Protocol": p.Protocol})
				}
				rows = append(rows, r)
			}
			switch {
			case services:
				seen := map[string]bool{}
				for _, r := range rows {
					if !seen[r.Service] {
						seen[r.Service] = true
						fmt.Fprintln(g.stdout, r.Service)
					}
				}
				return nil
			case quiet:
				for _, r := range rows {
					fmt.Fprintln(g.stdout, r.ID)
				}
				return nil
			case format == "json":
				return jsonLines(g.stdout, rows, nil)
			case format != "" && format != "table":
				return errUsage("--format %q: use table or json", format)
			}
			t := display.NewTable("NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS")
			for _, r := range rows {
				command := r.Command
				if len(command) > 20 {
					command = command[:19] + "…"
				}
				t.Row(r.Name, r.Image, strconv.Quote(command), r.Service, r.RunningFor, r.Status, r.Ports)
			}
			return t.Write(g.stdout)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "Show all stopped containers (including those created by the run command)")
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display IDs")
	f.BoolVar(&services, "services", false, "Display services")
	f.StringVar(&format, "format", "table", "Format output: table or json")
	f.StringArrayVar(&status, "status", nil, "Filter services by status (running, exited, created, paused, restarting)")
	f.StringArrayVar(&filters, "filter", nil, "Filter services by a property (status=STATUS)")
	return g.compose(cmd)
}

// serviceTarget loads the project and finds replica index of svc.
func (g *globals) serviceTarget(ctx context.Context, svc string, index int) (*composeEnv, *linux.Container, error) {
	e, err := g.composeEnv(ctx)
	if err != nil {
		return nil, nil, err
	}
	c, err := g.serviceContainer(ctx, e, svc, index)
	return e, c, err
}

// serviceContainer finds replica index (1-based) of a service.
func (g *globals) serviceContainer(ctx context.Context, e *composeEnv, svc string, index int) (*linux.Container, error) {
	infos, err := g.projectContainers(ctx, e, []string{svc}, false, false)
	if err != nil {
		return nil, err
	}
	for _, in := range infos {
		if n, _ := strconv.Atoi(in.Labels[runtime.LabelNumber]); n == index || index == 0 {
			c, err := e.deps.Runtime.Load(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			return c.(*linux.Container), nil
		}
	}
	return nil, errdefs.NotFoundf("service %q is not running container #%d", svc, max(index, 1))
}

func newPortComposeCmd(g *globals) *cobra.Command {
	var index int
	var proto string
	cmd := &cobra.Command{
		Use:   "port [OPTIONS] SERVICE PRIVATE_PORT",
		Short: "Print the public port for a port binding",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := g.serviceTarget(cmd.Context(), args[0], index)
			if err != nil {
				return err
			}
			info, err := c.Info(cmd.Context())
			if err != nil {
				return err
			}
			for _, p := range info.Ports {
				if strconv.Itoa(int(p.ContainerPort)) == args[1] && p.Protocol == proto {
					host := p.HostIP
					if host == "" {
						host = "0.0.0.0"
					}
					fmt.Fprintf(g.stdout, "%s:%d\n", host, p.HostPort)
					return nil
				}
			}
			return errdefs.NotFoundf("no port %s/%s is published for service %s", args[1], proto, args[0])
		},
	}
	cmd.Flags().IntVar(&index, "index", 1, "Index of the container if service has multiple replicas")
	cmd.Flags().StringVar(&proto, "protocol", "tcp", "tcp or udp")
	return g.compose(cmd)
}

func newExecComposeCmd(g *globals) *cobra.Command {
	var detach, noTTY, privileged bool
	var env []string
	var workdir, user string
	var index int
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] SERVICE COMMAND [ARGS...]",
		Short: "Execute a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := g.serviceTarget(cmd.Context(), args[0], index)
			if err != nil {
				return err
			}
			// As compose: a terminal and stdin when berth has one, unless -T.
			tty := false
			if in, ok := g.stdin.(*os.File); ok && isTerminal(in) && !noTTY && !detach {
				tty = true
			}
			return g.execIn(cmd.Context(), c, args[1:], execOpts{detach: detach, interactive: !detach, tty: tty, privileged: privileged, env: env, workdir: workdir, user: user})
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&detach, "detach", "d", false, "Detached mode: Run command in the background")
	f.BoolVarP(&noTTY, "no-tty", "T", false, "Disable pseudo-TTY allocation. By default a TTY is allocated when stdin is a terminal")
	f.BoolVar(&privileged, "privileged", false, "Give extended privileges to the process")
	f.StringArrayVarP(&env, "env", "e", nil, "Set environment variables")
	f.StringVarP(&workdir, "workdir", "w", "", "Path to workdir directory for this command")
	f.StringVarP(&user, "user", "u", "", "Run the command as this user")
	f.IntVar(&index, "index", 1, "Index of the container if service has multiple replicas")
	return g.compose(cmd)
}
