package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/registry"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

// exitError carries a container's exit code out of run/start/wait.
type exitError struct{ code int }

func (e exitError) Error() string { return "" }

// lazyGC lets a run or exec go without collections while its heap stays
// small: such a command allocates a few MiB and is done in tens of ms,
// where one collection cycle costs a millisecond or two of a 2-CPU host.
// Above 64 MiB (a long attach) the memory limit brings the collector
// back. GOGC or GOMEMLIMIT in the environment win.
func lazyGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(64 << 20)
	debug.SetGCPercent(-1)
}

// openRuntime opens the state root, the image store and the runtime.
func (g *globals) openRuntime() (*linux.Runtime, *local.Store, error) {
	root, err := state.Open(g.stateRoot())
	if err != nil {
		return nil, nil, err
	}
	store, err := local.Open(root)
	if err != nil {
		return nil, nil, err
	}
	// GC keeps the compressed layers pushes made while their layer is used.
	store.Retain = func() (map[digest.Digest]digest.Digest, error) { return registry.CachedLayers(layerCachePath(root)) }
	rt := linux.New(root, store.Snapshots(), linux.Options{Binary: g.env["BERTH_SHIM_BINARY"]})
	store.InUse = func(ctx context.Context, id digest.Digest) ([]string, error) {
		infos, err := rt.List(ctx, runtime.Filter{})
		if err != nil {
			return nil, err
		}
		var users []string
		for _, in := range infos {
			c, err := rt.Find(in.ID)
			if err != nil {
				continue
			}
			if m, err := c.Meta(); err == nil && m.Spec.Image == id {
				users = append(users, in.Name)
			}
		}
		return users, nil
	}
	return rt, store, nil
}

func newContainerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "container COMMAND",
		Short: "Manage containers",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newRunCmd(g, true), newRunCmd(g, false), newStartCmd(g), newStopCmd(g), newKillCmd(g),
		newRmCmd(g), newPsCmd(g), newInspectCmd(g), newWaitCmd(g), newTopCmd(g), newRenameCmd(g),
		newExecCmd(g), newAttachCmd(g), newLogsCmd(g), newStatsCmd(g), newPauseCmd(g), newUnpauseCmd(g),
		newCpCmd(g), newDiffCmd(g), newExportCmd(g), newCommitCmd(g), newPortCmd(g))
	return cmd
}

func newStartCmd(g *globals) *cobra.Command {
	var attach, interactive bool
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := context.WithoutCancel(cmd.Context()) // attached: ^C goes to the container
			rt, _, err := g.openRuntime()
			if err != nil {
				return err
			}
			if attach && len(args) > 1 {
				return errUsage("you cannot start and attach multiple containers at once")
			}
			var errs []error
			for _, ref := range args {
				c, err := rt.Find(ref)
				if err == nil {
					err = g.startNetworked(ctx, c, attach)
				}
				if err != nil {
					if attach {
						return startFailure(err)
					}
					errs = append(errs, err)
					continue
				}
				if !attach {
					fmt.Fprintln(g.stdout, ref)
					continue
				}
				m, err := c.Meta()
				if err != nil {
					return err
				}
				return g.attachAndWait(ctx, c, interactive && m.Spec.OpenStdin, m.Spec.OCI.Process.Terminal, true, "ctrl-p,ctrl-q", true)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	return cmd
}

// findContainer opens the runtime and finds one container by name or ID.
func (g *globals) findContainer(ref string) (*linux.Container, error) {
	rt, _, err := g.openRuntime()
	if err != nil {
		return nil, err
	}
	return rt.Find(ref)
}

// eachContainer runs fn on every named container, printing the name of
// each that succeeded and joining the errors.
func (g *globals) eachContainer(args []string, fn func(c *linux.Container) error) error {
	return g.eachContainerSay(args, func(ref string, c *linux.Container) (string, error) { return ref, fn(c) })
}

// eachContainerSay is eachContainer printing what fn returns instead.
func (g *globals) eachContainerSay(args []string, fn func(ref string, c *linux.Container) (string, error)) error {
	rt, _, err := g.openRuntime()
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range args {
		c, err := rt.Find(ref)
		var out string
		if err == nil {
			out, err = fn(ref, c)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(g.stdout, out)
	}
	return errors.Join(errs...)
}

func newStopCmd(g *globals) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop one or more running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d := time.Duration(-1)
			if cmd.Flags().Changed("timeout") || cmd.Flags().Changed("time") {
				d = time.Duration(timeout) * time.Second
			}
			return g.eachContainer(args, func(c *linux.Container) error { return c.Stop(cmd.Context(), d) })
		},
	}
	cmd.Flags().IntVarP(&timeout, "timeout", "t", 10, "Seconds to wait before killing the container")
	cmd.Flags().IntVar(&timeout, "time", 10, "Seconds to wait before killing the container (deprecated: use --timeout)")
	cmd.Flags().MarkHidden("time")
	return cmd
}

func newKillCmd(g *globals) *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseSignal(sig)
			if err != nil {
				return usageError{err}
			}
			return g.eachContainer(args, func(c *linux.Container) error { return c.Kill(cmd.Context(), n) })
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "Signal to send to the container")
	return cmd
}

func newRmCmd(g *globals) *cobra.Command {
	var force, volumes bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more containers",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.eachContainer(args, func(c *linux.Container) error {
				return g.removeWithVolumes(cmd.Context(), c, runtime.RemoveOptions{Force: force, RemoveVolumes: volumes})
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	return cmd
}

func newRenameCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.findContainer(args[0])
			if err != nil {
				return err
			}
			return c.Rename(cmd.Context(), args[1])
		},
	}
}

func newWaitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.eachContainerSay(args, func(_ string, c *linux.Container) (string, error) {
				ex, err := c.Wait(cmd.Context())
				return strconv.Itoa(ex.Code), err
			})
		},
	}
}

func newTopCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "top CONTAINER",
		Short: "Display the running processes of a container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.findContainer(args[0])
			if err != nil {
				return err
			}
			procs, err := c.Top(cmd.Context())
			if err != nil {
				return err
			}
			t := display.NewTable("UID", "PID", "PPID", "STAT", "TIME", "CMD")
			for _, p := range procs {
				t.Row(strconv.Itoa(p.UID), strconv.Itoa(p.Pid), strconv.Itoa(p.PPid), p.State, p.Time, p.Cmd)
			}
			return t.Write(g.stdout)
		},
	}
}
