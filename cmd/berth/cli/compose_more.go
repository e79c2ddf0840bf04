package cli

// The compose commands beside up, down and the lifecycle ones: create, rm,
// kill, pause, unpause, top, images, ls, wait, cp, events and attach
// (run is in compose_run.go). Each acts on the project's observed
// containers directly, as ARCHITECTURE §9 says: no plan, except create
// (up --no-start) and wait --down-project (down).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
	"berth.dev/berth/volumes"
)

// knownServices checks that every name is a service of the project, with
// the message projectContainers gives.
// composeServices loads the project and checks that the services named
// on the command line are in it.
func (g *globals) composeServices(ctx context.Context, names []string) (*composeEnv, error) {
	e, err := g.composeEnv(ctx)
	if err != nil {
		return nil, err
	}
	if err := knownServices(e, names); err != nil {
		return nil, err
	}
	return e, nil
}

func knownServices(e *composeEnv, names []string) error {
	for _, s := range names {
		if _, ok := e.m.Project.Services[s]; !ok {
			return unknownService(e, s)
		}
	}
	return nil
}

func unknownService(e *composeEnv, s string) error {
	names := e.m.Project.ServiceNames()
	sort.Strings(names)
	return errdefs.NotFoundf("no such service: %s (the services are: %s)", s, strings.Join(names, ", "))
}

// isLive is a container whose process exists (running, paused or between
// restarts).
func isLive(s runtime.Status) bool {
	return s == runtime.StatusRunning || s == runtime.StatusPaused || s == runtime.StatusRestarting
}

// loadLinux loads an observed container as the linux runtime's.
func loadLinux(ctx context.Context, e *composeEnv, in runtime.Info) (*linux.Container, error) {
	c, err := e.deps.Runtime.Load(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	lc, ok := c.(*linux.Container)
	if !ok {
		return nil, errdefs.Unavailablef("container %s: not a berth container", in.Name)
	}
	return lc, nil
}

// ---- create ----

func newCreateComposeCmd(g *globals) *cobra.Command {
	var build, noBuild, forceRecreate, noRecreate, removeOrphans bool
	var pull string
	var scale []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [SERVICE...]",
		Short: "Creates containers for a service",
		RunE: func(cmd *cobra.Command, args []string) error {
			if build && noBuild {
				return errUsage("--build and --no-build are incompatible")
			}
			if forceRecreate && noRecreate {
				return errUsage("--force-recreate and --no-recreate are incompatible")
			}
			if err := checkPull(pull); err != nil {
				return err
			}
			sc, err := parseScale(scale)
			if err != nil {
				return err
			}
			e, err := g.composeEnv(cmd.Context())
			if err != nil {
				return err
			}
			if err := knownServices(e, args); err != nil {
				return err
			}
			if err := g.buildForUp(cmd.Context(), e, upScope(e, args, false), build, noBuild); err != nil {
				return err
			}
			if err := g.pullForUp(cmd.Context(), e, upScope(e, args, false), pull); err != nil {
				return err
			}
			return g.converge(cmd.Context(), e, reconcile.Options{Services: args, NoStart: true, ForceRecreate: forceRecreate,
				NoRecreate: noRecreate, RemoveOrphans: removeOrphans, Scale: sc})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&build, "build", false, "Build images before starting containers")
	f.BoolVar(&noBuild, "no-build", false, "Don't build an image, even if it's policy")
	f.BoolVar(&forceRecreate, "force-recreate", false, "Recreate containers even if their configuration and image haven't changed")
	f.BoolVar(&noRecreate, "no-recreate", false, "If containers already exist, don't recreate them. Incompatible with --force-recreate")
	f.StringVar(&pull, "pull", "policy", `Pull image before running ("always"|"missing"|"never"|"build"|"policy")`)
	f.BoolVar(&removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	f.StringArrayVar(&scale, "scale", nil, "Scale SERVICE to NUM instances. Overrides the scale setting in the Compose file if present")
	return g.compose(cmd)
}

// checkPull accepts --pull's values.
func checkPull(p string) error {
	switch p {
	case "", "policy", "missing", "never", "build", "always":
		return nil
	}
	return errUsage("--pull %q: use always, missing, never, build or policy", p)
}

// ---- rm ----

func newRmComposeCmd(g *globals) *cobra.Command {
	var force, stop, vols, all bool
	cmd := &cobra.Command{
		Use:   "rm [OPTIONS] [SERVICE...]",
		Short: "Removes stopped service containers",
		Long: `Removes stopped service containers.

By default, anonymous volumes attached to containers are not removed; use -v
to remove them too. berth never asks for confirmation (-f is accepted for
compatibility): it says what it removed.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := g.composeServices(ctx, args)
			if err != nil {
				return err
			}
			lk, err := g.lockProject(ctx, e)
			if err != nil {
				return err
			}
			defer lk.Unlock()
			if stop {
				if err := g.stopProject(ctx, e, args, nil); err != nil {
					return err
				}
			}
			infos, err := g.projectContainers(ctx, e, args, true, true)
			if err != nil {
				return err
			}
			var stopped []runtime.Info
			for _, in := range infos {
				if !isLive(in.Status) {
					stopped = append(stopped, in)
				}
			}
			if len(stopped) == 0 {
				fmt.Fprintln(g.stderr, "No stopped containers")
				return nil
			}
			ev := g.events()
			defer ev.Close()
			return eachParallel(stopped, func(in runtime.Info) error {
				return track(ev, reconcile.RemoveContainer, in.Name, "Removing", "Removed", func() error {
					if err := g.removeComposeContainer(ctx, e, in, vols); err != nil {
						return fmt.Errorf("service %s: remove %s: %w", in.Labels[runtime.LabelService], in.Name, err)
					}
					return nil
				})
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&force, "force", "f", false, "Don't ask to confirm removal (berth never asks)")
	f.BoolVarP(&stop, "stop", "s", false, "Stop the containers, if required, before removing")
	f.BoolVarP(&vols, "volumes", "v", false, "Remove any anonymous volumes attached to containers")
	f.BoolVarP(&all, "all", "a", false, "Deprecated - no effect")
	f.MarkHidden("all")
	return g.compose(cmd)
}

// removeComposeContainer removes a stopped container and its endpoints;
// with anonVolumes, the anonymous volumes it mounted as well.
func (g *globals) removeComposeContainer(ctx context.Context, e *composeEnv, in runtime.Info, anonVolumes bool) error {
	c, err := loadLinux(ctx, e, in)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var anon []string
	if anonVolumes {
		anon = anonymousVolumesOf(ctx, e, c)
	}
	if err := g.removeNetworked(ctx, c, runtime.RemoveOptions{RemoveVolumes: anonVolumes}); err != nil {
		return err
	}
	var errs []error
	for _, v := range anon {
		if err := e.deps.Volumes.Remove(ctx, v); err != nil {
			errs = append(errs, fmt.Errorf("anonymous volume %s: %w", v, err))
		}
	}
	return errors.Join(errs...)
}

// anonymousVolumesOf are the anonymous volumes a container mounts (by
// their mountpoints).
func anonymousVolumesOf(ctx context.Context, e *composeEnv, c *linux.Container) []string {
	if e.deps.Volumes == nil {
		return nil
	}
	m, err := c.Meta()
	if err != nil || m.Spec.OCI == nil {
		return nil
	}
	vs, err := e.deps.Volumes.List(ctx, volumes.Filter{})
	if err != nil {
		return nil
	}
	var out []string
	for _, v := range vs {
		if !v.Anonymous {
			continue
		}
		for _, mt := range m.Spec.OCI.Mounts {
			if v.Mountpoint != "" && mt.Source == v.Mountpoint {
				out = append(out, v.Name)
				break
			}
		}
	}
	return out
}

// ---- kill, pause, unpause ----

func newKillComposeCmd(g *globals) *cobra.Command {
	var sig string
	var removeOrphans bool
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] [SERVICE...]",
		Short: "Force stop service containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			n, err := parseSignal(sig)
			if err != nil {
				return usageError{err}
			}
			e, err := g.composeEnv(ctx)
			if err != nil {
				return err
			}
			infos, err := g.projectContainers(ctx, e, args, false, true)
			if err != nil {
				return err
			}
			ev := g.events()
			defer ev.Close()
			var errs []error
			if removeOrphans {
				errs = append(errs, g.removeOrphanContainers(ctx, e, ev))
			}
			var targets []runtime.Info
			for _, in := range infos {
				if _, ok := e.m.Project.Services[in.Labels[runtime.LabelService]]; ok || !removeOrphans {
					targets = append(targets, in) // orphans went above
				}
			}
			if len(targets) == 0 {
				fmt.Fprintln(g.stderr, "no container to kill")
				return errors.Join(errs...)
			}
			errs = append(errs, eachParallel(targets, func(in runtime.Info) error {
				return track(ev, reconcile.StopContainer, in.Name, "Killing", "Killed", func() error {
					c, err := e.deps.Runtime.Load(ctx, in.ID)
					if err == nil {
						err = c.Kill(ctx, n)
					}
					if err != nil {
						return fmt.Errorf("service %s: kill %s: %w", in.Labels[runtime.LabelService], in.Name, err)
					}
					return nil
				})
			}))
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "SIGKILL", "SIGNAL to send to the container")
	cmd.Flags().BoolVar(&removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	return g.compose(cmd)
}

// removeOrphanContainers force-removes the project's containers (one-offs
// aside) whose service the project no longer has.
func (g *globals) removeOrphanContainers(ctx context.Context, e *composeEnv, ev reconcile.Sink) error {
	infos, err := g.projectContainers(ctx, e, nil, true, false)
	if err != nil {
		return err
	}
	var orphans []runtime.Info
	for _, in := range infos {
		svc := in.Labels[runtime.LabelService]
		if _, ok := e.m.Project.Services[svc]; ok {
			continue
		}
		if _, ok := e.m.Project.DisabledServices[svc]; ok {
			continue
		}
		orphans = append(orphans, in)
	}
	return eachParallel(orphans, func(in runtime.Info) error {
		return track(ev, reconcile.RemoveContainer, in.Name, "Removing", "Removed", func() error {
			c, err := loadLinux(ctx, e, in)
			if errdefs.IsNotFound(err) {
				return nil
			}
			if err == nil {
				err = g.removeNetworked(ctx, c, runtime.RemoveOptions{Force: true})
			}
			if err != nil {
				return fmt.Errorf("orphan %s: %w", in.Name, err)
			}
			return nil
		})
	})
}

// pauseCmd is pause and unpause.
func pauseCmd(g *globals, pause bool) *cobra.Command {
	use, short, working, done := "pause [SERVICE...]", "Pause services", "Pausing", "Paused"
	if !pause {
		use, short, working, done = "unpause [SERVICE...]", "Unpause services", "Unpausing", "Unpaused"
	}
	kind := reconcile.StopContainer
	if !pause {
		kind = reconcile.StartContainer
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := g.composeEnv(ctx)
			if err != nil {
				return err
			}
			infos, err := g.projectContainers(ctx, e, args, false, true)
			if err != nil {
				return err
			}
			var targets []runtime.Info
			for _, in := range infos {
				if (pause && in.Status == runtime.StatusRunning) || (!pause && in.Status == runtime.StatusPaused) {
					targets = append(targets, in)
				}
			}
			ev := g.events()
			defer ev.Close()
			return eachParallel(targets, func(in runtime.Info) error {
				return track(ev, kind, in.Name, working, done, func() error {
					c, err := e.deps.Runtime.Load(ctx, in.ID)
					if err == nil {
						if pause {
							err = c.Pause(ctx)
						} else {
							err = c.Resume(ctx)
						}
					}
					if err != nil {
						return fmt.Errorf("service %s: %s %s: %w", in.Labels[runtime.LabelService], strings.ToLower(done[:len(done)-1]), in.Name, err)
					}
					return nil
				})
			})
		},
	}
	return g.compose(cmd)
}

func newPauseComposeCmd(g *globals) *cobra.Command   { return pauseCmd(g, true) }
func newUnpauseComposeCmd(g *globals) *cobra.Command { return pauseCmd(g, false) }

// ---- top ----

func newTopComposeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top [SERVICES...]",
		Short: "Display the running processes",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := g.composeEnv(ctx)
			if err != nil {
				return err
			}
			infos, err := g.projectContainers(ctx, e, args, false, true)
			if err != nil {
				return err
			}
			var errs []error
			for _, in := range infos {
				c, err := loadLinux(ctx, e, in)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				procs, err := c.Top(ctx)
				if errdefs.IsConflict(err) {
					continue // it stopped meanwhile
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("service %s: %w", in.Labels[runtime.LabelService], err))
					continue
				}
				fmt.Fprintln(g.stdout, in.Name)
				t := display.NewTable("UID", "PID", "PPID", "STAT", "TIME", "CMD")
				for _, p := range procs {
					t.Row(strconv.Itoa(p.UID), strconv.Itoa(p.Pid), strconv.Itoa(p.PPid), p.State, p.Time, p.Cmd)
				}
				if err := t.Write(g.stdout); err != nil {
					return err
				}
				fmt.Fprintln(g.stdout)
			}
			return errors.Join(errs...)
		},
	}
	return g.compose(cmd)
}

// ---- images ----

// composeImageRow is compose images' JSON object.
type composeImageRow struct {
	ID            string `json:"ID"`
	ContainerName string `json:"ContainerName"`
	Repository    string `json:"Repository"`
	Tag           string `json:"Tag"`
	Size          int64  `json:"Size"`
}

func newImagesComposeCmd(g *globals) *cobra.Command {
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "images [OPTIONS] [SERVICE...]",
		Short: "List images used by the created containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if format != "table" && format != "json" {
				return errUsage("--format %q: use table or json", format)
			}
			e, err := g.composeEnv(ctx)
			if err != nil {
				return err
			}
			infos, err := g.projectContainers(ctx, e, args, true, false)
			if err != nil {
				return err
			}
			_, store, err := g.openRuntime()
			if err != nil {
				return err
			}
			rows := []composeImageRow{}
			for _, in := range infos {
				c, err := loadLinux(ctx, e, in)
				if err != nil {
					continue
				}
				m, err := c.Meta()
				if err != nil {
					continue
				}
				row := composeImageRow{ID: m.Spec.Image.String(), ContainerName: in.Name, Repository: "<none>", Tag: "<none>"}
				if img, err := store.Get(ctx, m.Spec.Image.String()); err == nil {
					row.Size = img.Size
					ref := ""
					for _, r := range img.Refs {
						if ref == "" || local.FamiliarRef(r) == m.Spec.ImageRef || r == m.Spec.ImageRef {
							ref = r
						}
					}
					if ref != "" {
						row.Repository, row.Tag = local.SplitFamiliar(ref)
					}
				}
				rows = append(rows, row)
			}
			switch {
			case quiet:
				seen := map[string]bool{}
				for _, r := range rows {
					id := r.ID
					if _, hex, ok := strings.Cut(id, ":"); ok {
						id = hex
					}
					if !seen[id] {
						seen[id] = true
						fmt.Fprintln(g.stdout, id)
					}
				}
				return nil
			case format == "json":
				b, err := json.Marshal(rows)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(g.stdout, "%s\n", b)
				return err
			}
			t := display.NewTable("CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE")
			for _, r := range rows {
				id := r.ID
				if _, hex, ok := strings.Cut(id, ":"); ok {
					id = hex
				}
				if len(id) > 12 {
					id = id[:12]
				}
				t.Row(r.ContainerName, r.Repository, r.Tag, id, units.HumanSizeWithPrecision(float64(r.Size), 3))
			}
			return t.Write(g.stdout)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "Format the output. Values: [table | json]")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display IDs")
	return g.compose(cmd)
}

// ---- ls ----

// composeLsRow is compose ls's JSON object.
type composeLsRow struct {
	Name        string `json:"Name"`
	Status      string `json:"Status"`
	ConfigFiles string `json:"ConfigFiles"`
}

func newLsComposeCmd(g *globals) *cobra.Command {
	var all, quiet bool
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:   "ls [OPTIONS]",
		Short: "List running compose projects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if format != "table" && format != "json" {
				return errUsage("--format %q: use table or json", format)
			}
			var nameFilter []string
			for _, f := range filters {
				k, v, _ := strings.Cut(f, "=")
				if k != "name" {
					return errUsage("--filter %q: berth filters projects on name=NAME", f)
				}
				nameFilter = append(nameFilter, v)
			}
			rt, _, err := g.openRuntime()
			if err != nil {
				return err
			}
			infos, err := rt.List(ctx, runtime.Filter{}) // projectRows keeps the labelled ones
			if err != nil {
				return err
			}
			rows := projectRows(infos, all)
			out := []composeLsRow{}
			for _, r := range rows {
				if len(nameFilter) > 0 && !anySubstring(nameFilter, r.Name) {
					continue
				}
				out = append(out, r)
			}
			switch {
			case quiet:
				for _, r := range out {
					fmt.Fprintln(g.stdout, r.Name)
				}
				return nil
			case format == "json":
				b, err := json.Marshal(out)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(g.stdout, "%s\n", b)
				return err
			}
			t := display.NewTable("NAME", "STATUS", "CONFIG FILES")
			for _, r := range out {
				t.Row(r.Name, r.Status, r.ConfigFiles)
			}
			return t.Write(g.stdout)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "Show all stopped Compose projects")
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display project names")
	f.StringVar(&format, "format", "table", "Format the output. Values: [table | json]")
	f.StringArrayVar(&filters, "filter", nil, "Filter output based on conditions provided (name=NAME)")
	return g.compose(cmd) // accepted (before the command too), not used: ls reads no project
}

// projectRows groups containers by project: compose ls's rows, sorted by
// name. Without all, only live containers count (a project of stopped
// ones is not listed).
func projectRows(infos []runtime.Info, all bool) []composeLsRow {
	type proj struct {
		counts map[string]int
		files  []string
	}
	projects := map[string]*proj{}
	for _, in := range infos {
		name := in.Labels[runtime.LabelProject]
		if name == "" || (!all && !isLive(in.Status)) {
			continue
		}
		p := projects[name]
		if p == nil {
			p = &proj{counts: map[string]int{}}
			projects[name] = p
		}
		p.counts[in.Status.String()]++
		for f := range strings.SplitSeq(in.Labels[runtime.LabelConfigFiles], ",") {
			if f != "" && !contains(p.files, f) {
				p.files = append(p.files, f)
			}
		}
	}
	var out []composeLsRow
	for name, p := range projects {
		states := make([]string, 0, len(p.counts))
		for s := range p.counts {
			states = append(states, s)
		}
		sort.Strings(states)
		parts := make([]string, 0, len(states))
		for _, s := range states {
			parts = append(parts, fmt.Sprintf("%s(%d)", s, p.counts[s]))
		}
		out = append(out, composeLsRow{Name: name, Status: strings.Join(parts, ", "), ConfigFiles: strings.Join(p.files, ",")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ---- wait ----

func newWaitComposeCmd(g *globals) *cobra.Command {
	var downProject bool
	cmd := &cobra.Command{
		Use:   "wait SERVICE [SERVICE...] [OPTIONS]",
		Short: "Block until containers of all (or specified) services stop.",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := g.composeEnv(ctx)
			if err != nil {
				return err
			}
			infos, err := g.projectContainers(ctx, e, args, false, true)
			if err != nil {
				return err
			}
			if len(infos) == 0 {
				return errdefs.NotFoundf("no running containers of %s in project %s", strings.Join(args, ", "), e.m.Name)
			}
			type result struct {
				name string
				code int
				err  error
			}
			results := make(chan result, len(infos))
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			for _, in := range infos {
				go func() {
					c, err := e.deps.Runtime.Load(wctx, in.ID)
					if err != nil {
						results <- result{name: in.Name, err: err}
						return
					}
					ex, err := c.Wait(wctx)
					results <- result{name: in.Name, code: ex.Code, err: err}
				}()
			}
			first := -1
			var errs []error
			for range infos {
				r := <-results
				if r.err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					errs = append(errs, fmt.Errorf("wait %s: %w", r.name, r.err))
				} else {
					fmt.Fprintf(g.stdout, "container %q exited with status code %d\n", r.name, r.code)
					if first < 0 {
						first = r.code
					}
				}
				if downProject && (first >= 0 || len(errs) > 0) {
					cancel()
					break
				}
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			if downProject {
				if err := g.converge(context.WithoutCancel(ctx), e, reconcile.Options{Down: true, RemoveOrphans: true}); err != nil {
					return err
				}
			}
			if first > 0 {
				return exitError{first}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&downProject, "down-project", false, "Drops project when the first container stops")
	return g.compose(cmd)
}

// ---- cp ----

func newCpComposeCmd(g *globals) *cobra.Command {
	o := &cpOpts{}
	var index int
	var all bool
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] SERVICE:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- SERVICE:DEST_PATH",
		Short: "Copy files/folders between a service container and the local filesystem",
		Long: `Copy files/folders between a service container and the local filesystem.

From a service, berth copies out of its container number --index (the first
one by default). To a service, it copies into every container of the
service, or only into number --index. Paths in the containers resolve inside
their root filesystems, as 'berth container cp' does.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			src, dst := splitCpArg(args[0]), splitCpArg(args[1])
			switch {
			case src.container != "" && dst.container != "":
				return errUsage("copying between services is not supported; copy to the host first")
			case src.container == "" && dst.container == "":
				return errUsage("one of SRC and DEST must be SERVICE:PATH")
			}
			svc := src.container + dst.container
			e, err := g.composeEnv(ctx)
			if err != nil {
				return err
			}
			if err := knownServices(e, []string{svc}); err != nil {
				return err
			}
			infos, err := g.projectContainers(ctx, e, []string{svc}, true, false)
			if err != nil {
				return err
			}
			var targets []runtime.Info
			for _, in := range infos {
				if n, _ := strconv.Atoi(in.Labels[runtime.LabelNumber]); index == 0 || n == index {
					targets = append(targets, in)
				}
			}
			if len(targets) == 0 {
				if index > 0 {
					return errdefs.NotFoundf("service %s has no container #%d", svc, index)
				}
				return errdefs.NotFoundf("service %s has no container; create it first (berth up or berth create)", svc)
			}
			if src.container != "" {
				c, err := loadLinux(ctx, e, targets[0])
				if err != nil {
					return err
				}
				return g.copyFromContainer(ctx, c, src.path, dst.path, o)
			}
			if src.path == "-" && len(targets) > 1 {
				return errUsage("a tar archive on stdin can go to one container only: give --index")
			}
			var errs []error
			for _, in := range targets {
				c, err := loadLinux(ctx, e, in)
				if err == nil {
					err = g.copyToContainer(ctx, c, src.path, dst.path, o)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("service %s: %s: %w", svc, in.Name, err))
				}
			}
			return errors.Join(errs...)
		},
	}
	f := cmd.Flags()
	f.IntVar(&index, "index", 0, "Index of the container if service has multiple replicas")
	f.BoolVarP(&o.archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	f.BoolVarP(&o.followLink, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	f.BoolVar(&all, "all", false, "Include containers created by the run command (deprecated: no effect)")
	f.MarkHidden("all")
	return g.compose(cmd)
}

// ---- attach ----

func newAttachComposeCmd(g *globals) *cobra.Command {
	var index int
	var noStdin, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] SERVICE",
		Short: "Attach local standard input, output, and error streams to a service's running container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := g.serviceTarget(cmd.Context(), args[0], index)
			if err != nil {
				return err
			}
			m, err := c.Meta()
			if err != nil {
				return err
			}
			tty := m.Spec.OCI != nil && m.Spec.OCI.Process != nil && m.Spec.OCI.Process.Terminal
			ctx := context.WithoutCancel(cmd.Context())
			return g.attachAndWait(ctx, c, m.Spec.OpenStdin && !noStdin, tty, sigProxy, detachKeys, false)
		},
	}
	f := cmd.Flags()
	f.IntVar(&index, "index", 0, "index of the container if service has multiple replicas.")
	f.BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	f.BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	f.StringVar(&detachKeys, "detach-keys", "ctrl-p,ctrl-q", "Override the key sequence for detaching from a container.")
	return g.compose(cmd)
}

// ---- events ----

// composeEvent is compose events' JSON object.
type composeEvent struct {
	Time       time.Time         `json:"time"`
	Type       string            `json:"type"`
	Action     string            `json:"action"`
	ID         string            `json:"id"`
	Service    string            `json:"service"`
	Attributes map[string]string `json:"attributes"`
}

// eventPoll is how often events looks at the project's containers.
const eventPoll = 200 * time.Millisecond

func newEventsComposeCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "events [OPTIONS] [SERVICE...]",
		Short: "Receive real time events from containers",
		Long: `Receive real time events from containers: create, start, die, stop,
pause, unpause, destroy and health_status, until Ctrl-C.

berth has no daemon to ask, so it watches the project's containers (every
200 ms) and reports what changed; a container that starts and ends between
two looks still gives its start and die.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := g.composeServices(ctx, args)
			if err != nil {
				return err
			}
			w := &eventWatcher{g: g, e: e, json: asJSON, services: args, seen: map[string]runtime.Info{}, images: map[string]string{}}
			return w.run(ctx)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "Output events as a stream of json objects")
	return g.compose(cmd)
}

type eventWatcher struct {
	g        *globals
	e        *composeEnv
	json     bool
	services []string
	seen     map[string]runtime.Info
	images   map[string]string
	mu       sync.Mutex
}

func (w *eventWatcher) run(ctx context.Context) error {
	first := true
	for {
		infos, err := w.g.projectContainers(ctx, w.e, w.services, true, true)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := map[string]runtime.Info{}
		for _, in := range infos {
			now[in.ID] = in
			if first {
				w.imageOf(ctx, in) // remembered for its destroy
				continue
			}
			prev, ok := w.seen[in.ID]
			var p *runtime.Info
			if ok {
				p = &prev
			}
			for _, a := range containerChanges(p, in, w.stoppedByUser(in.ID)) {
				w.emit(ctx, in, a.action, a.attrs)
			}
		}
		if !first {
			for id, prev := range w.seen {
				if _, ok := now[id]; ok {
					continue
				}
				if isLive(prev.Status) {
					w.emit(ctx, prev, "die", nil)
				}
				w.emit(ctx, prev, "destroy", nil)
				delete(w.images, id)
			}
		}
		w.seen, first = now, false
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(eventPoll):
		}
	}
}

// stoppedByUser: a stop, kill or rm marked the container's last end.
func (w *eventWatcher) stoppedByUser(id string) bool {
	dir, err := w.e.root.ContainerDir(id)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, linux.StopFile))
	return err == nil
}

type eventChange struct {
	action string
	attrs  map[string]string
}

// containerChanges are the events between two looks at a container (prev
// nil: it is new).
func containerChanges(prev *runtime.Info, cur runtime.Info, byUser bool) []eventChange {
	var out []eventChange
	add := func(action string, attrs map[string]string) { out = append(out, eventChange{action, attrs}) }
	died := func() {
		attrs := map[string]string{}
		if cur.Exit != nil {
			attrs["exitCode"] = strconv.Itoa(cur.Exit.Code)
		}
		add("die", attrs)
		if byUser {
			add("stop", nil)
		}
	}
	wasLive := false
	var prevStart, prevExit time.Time
	if prev == nil {
		add("create", nil)
	} else {
		wasLive = isLive(prev.Status)
		prevStart = prev.StartedAt
		if prev.Exit != nil {
			prevExit = prev.Exit.ExitedAt
		}
	}
	exited := cur.Exit != nil && cur.Exit.ExitedAt.After(prevExit) && !cur.Exit.ExitedAt.Before(cur.StartedAt)
	if !cur.StartedAt.IsZero() && cur.StartedAt.After(prevStart) {
		if wasLive { // it ended and started again between two looks
			add("die", nil)
		}
		add("start", nil)
		wasLive = true
	} else if prev != nil && prev.Restarts < cur.Restarts && wasLive && !exited {
		add("die", nil)
		add("start", nil)
	}
	if prev != nil && prev.Status == runtime.StatusPaused && cur.Status == runtime.StatusRunning {
		add("unpause", nil)
	}
	if cur.Status == runtime.StatusPaused && (prev == nil || prev.Status != runtime.StatusPaused) {
		add("pause", nil)
	}
	if wasLive && !isLive(cur.Status) {
		died()
	}
	if cur.Health != "" && (prev == nil || prev.Health != cur.Health) && cur.Status == runtime.StatusRunning {
		add("health_status: "+cur.Health, nil)
	}
	return out
}

// imageOf is the image the container was created from, as named.
func (w *eventWatcher) imageOf(ctx context.Context, in runtime.Info) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if img, ok := w.images[in.ID]; ok {
		return img
	}
	img := ""
	if c, err := loadLinux(ctx, w.e, in); err == nil {
		if m, err := c.Meta(); err == nil {
			img = m.Spec.ImageRef
			if img == "" {
				img = m.Spec.Image.String()
			}
		}
	}
	w.images[in.ID] = img
	return img
}

func (w *eventWatcher) emit(ctx context.Context, in runtime.Info, action string, extra map[string]string) {
	attrs := map[string]string{"name": in.Name, "image": w.imageOf(ctx, in)}
	for k, v := range extra {
		attrs[k] = v
	}
	ev := composeEvent{Time: time.Now(), Type: "container", Action: action, ID: in.ID, Service: in.Labels[runtime.LabelService], Attributes: attrs}
	if w.json {
		b, _ := json.Marshal(ev)
		fmt.Fprintf(w.g.stdout, "%s\n", b)
		return
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+attrs[k])
	}
	fmt.Fprintf(w.g.stdout, "%s container %s %s (%s)\n", ev.Time.Format("2006-01-02T15:04:05.000000000Z07:00"), action, in.ID, strings.Join(parts, ", "))
}
