package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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
	return lifecycleCmd(g, "restart [OPTIONS] [SERVICE...]", "Restart service containers", true,
		func(ctx context.Context, e *composeEnv, services []string, timeout *time.Duration) error {
			if err := g.stopProject(ctx, e, services, timeout); err != nil {
				return err
			}
			return g.startProject(ctx, e, services)
		})
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
				enc := json.NewEncoder(g.stdout)
				for _, r := range rows {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
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

// prefixWriter writes each line with a "name | " prefix.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.mu.Lock()
		_, err := io.WriteString(p.w, p.prefix+string(p.buf[:i+1]))
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
		if err != nil {
			return len(b), err
		}
	}
	return len(b), nil
}

// followProjectLogs prints the services' logs with name prefixes. With
// follow it keeps following: containers that restart, that are recreated
// and that scaling adds are picked up (polled twice a second) until ctx
// ends, or, for an attached up, until every container has stopped.
func (g *globals) followProjectLogs(ctx context.Context, e *composeEnv, services []string, follow bool) error {
	return g.projectLogs(ctx, e, services, linux.LogsOptions{LogOptions: runtime.LogOptions{Follow: follow, Tail: -1}}, true, follow)
}

func (g *globals) projectLogs(ctx context.Context, e *composeEnv, services []string, lo linux.LogsOptions, prefix, untilAllStopped bool) error {
	var mu sync.Mutex
	type following struct {
		done  chan struct{}
		ended time.Time
	}
	seen := map[string]*following{}
	width := 0
	start := func(in runtime.Info, since time.Time) {
		f := &following{done: make(chan struct{})}
		seen[in.ID] = f
		c, err := e.deps.Runtime.Load(ctx, in.ID)
		if err != nil {
			close(f.done)
			return
		}
		o := lo
		if !since.IsZero() {
			o.Tail, o.Since = -1, since
		}
		pre := ""
		if prefix {
			pre = fmt.Sprintf("%-*s | ", width, in.Name)
		}
		out := &prefixWriter{mu: &mu, w: g.stdout, prefix: pre}
		errw := &prefixWriter{mu: &mu, w: g.stderr, prefix: pre}
		go func() {
			defer close(f.done)
			c.(*linux.Container).LogStream(ctx, o, out, errw)
			f.ended = time.Now()
		}()
	}
	for {
		infos, err := g.projectContainers(ctx, e, services, true, false)
		if err != nil {
			return err
		}
		for _, in := range infos {
			width = max(width, len(in.Name))
		}
		active := 0
		for _, in := range infos {
			f, ok := seen[in.ID]
			switch {
			case !ok:
				start(in, time.Time{})
			case lo.Follow && (in.Status == runtime.StatusRunning || in.Status == runtime.StatusRestarting):
				select {
				case <-f.done: // its stream ended (stopped) and it runs again
					// From the new run's start: its lines are all newer, and
					// the old stream printed everything before the stop.
					since := in.StartedAt.Add(-time.Millisecond)
					if since.IsZero() || since.Before(f.ended.Add(-time.Minute)) {
						since = f.ended
					}
					start(in, since)
				default:
				}
			}
			if in.Status == runtime.StatusRunning || in.Status == runtime.StatusRestarting || in.Status == runtime.StatusPaused {
				active++
			}
		}
		if !lo.Follow {
			for _, f := range seen {
				<-f.done
			}
			return nil
		}
		if untilAllStopped && active == 0 && len(seen) > 0 {
			for _, f := range seen {
				<-f.done
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func newLogsComposeCmd(g *globals) *cobra.Command {
	o := &logsOpts{}
	var noPrefix bool
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] [SERVICE...]",
		Short: "View output from containers",
		Long: `View output from containers, each line prefixed with the container's name.

With -f berth keeps following: containers that restart, that are recreated
and that scaling adds join the output.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			lo, err := o.options(time.Now())
			if err != nil {
				return err
			}
			e, err := g.composeEnv(cmd.Context())
			if err != nil {
				return err
			}
			return g.projectLogs(cmd.Context(), e, args, lo, !noPrefix, false)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "Follow log output")
	f.BoolVarP(&o.timestamps, "timestamps", "t", false, "Show timestamps")
	f.StringVarP(&o.tail, "tail", "n", "all", "Number of lines to show from the end of the logs for each container")
	f.StringVar(&o.since, "since", "", "Show logs since timestamp or relative (e.g. 42m)")
	f.StringVar(&o.until, "until", "", "Show logs before a timestamp or relative (e.g. 42m)")
	f.BoolVar(&noPrefix, "no-log-prefix", false, "Don't print prefix in logs")
	f.Bool("no-color", false, "Produce monochrome output")
	return g.compose(cmd)
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
			e, err := g.composeEnv(cmd.Context())
			if err != nil {
				return err
			}
			c, err := g.serviceContainer(cmd.Context(), e, args[0], index)
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
			e, err := g.composeEnv(cmd.Context())
			if err != nil {
				return err
			}
			c, err := g.serviceContainer(cmd.Context(), e, args[0], index)
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
