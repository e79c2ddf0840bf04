package cli

import (
	"context"
	"os"

	"berth.dev/berth/runtime/linux"

	"github.com/spf13/cobra"

	"berth.dev/berth/runtime"
)

func newExecCmd(g *globals) *cobra.Command {
	var detach, interactive, tty, privileged bool
	var env []string
	var workdir, user string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, _, err := g.openRuntime()
			if err != nil {
				return err
			}
			c, err := rt.Find(args[0])
			if err != nil {
				return err
			}
			return g.execIn(cmd.Context(), c, args[1:], execOpts{detach, interactive, tty, privileged, env, workdir, user})
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&detach, "detach", "d", false, "Detached mode: run command in the background")
	f.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVarP(&tty, "tty", "t", false, "Allocate a pseudo-TTY (from the container's own devpts)")
	f.BoolVar(&privileged, "privileged", false, "Give extended privileges to the command")
	f.StringArrayVarP(&env, "env", "e", nil, "Set environment variables")
	f.StringVarP(&workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVarP(&user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	return cmd
}

// execOpts are exec's flags (container exec and compose exec).
type execOpts struct {
	detach, interactive, tty, privileged bool
	env                                  []string
	workdir, user                        string
}

// execIn runs a command in c and returns its exit code as an exitError.
func (g *globals) execIn(ctx context.Context, c *linux.Container, args []string, o execOpts) error {
	lazyGC()
	detach, interactive, tty, privileged, env, workdir, user := o.detach, o.interactive, o.tty, o.privileged, o.env, o.workdir, o.user
	envv, err := mergeEnv(nil, nil, env, g.env)
	if err != nil {
		return err
	}
	p := runtime.ProcessSpec{Args: args, Env: envv, Cwd: workdir, User: user, Tty: tty, Privileged: privileged}
	s := runtime.Stdio{Stdout: g.stdout, Stderr: g.stderr, Tty: tty, Detach: detach}
	if detach {
		s.Stdout, s.Stderr = nil, nil
	}
	if interactive && !detach {
		s.Stdin = g.stdin
	}
	if tty && !detach {
		if in, ok := g.stdin.(*os.File); ok && isTerminal(in) {
			if interactive {
				restore, err := makeRaw(in)
				if err == nil {
					defer restore()
				}
			}
			sizes, stop := followSize(in)
			defer stop()
			s.Resize = sizes
		}
	}
	ex, err := c.Exec(ctx, p, s)
	if err != nil {
		return startFailure(err)
	}
	if ex.Code != 0 {
		return exitError{ex.Code}
	}
	return nil
}
