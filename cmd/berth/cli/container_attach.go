package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

func newAttachCmd(g *globals) *cobra.Command {
	var noStdin, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.findContainer(args[0])
			if err != nil {
				return err
			}
			m, err := c.Meta()
			if err != nil {
				return err
			}
			ctx := context.WithoutCancel(cmd.Context())
			return g.attachAndWait(ctx, c, m.Spec.OpenStdin && !noStdin, m.Spec.OCI.Process.Terminal, sigProxy, detachKeys, false)
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "ctrl-p,ctrl-q", "Key sequence for detaching a container")
	return cmd
}

// attachAndWait attaches (see attach), then waits for the container and
// returns its exit code as the command's; detaching returns nil at once.
func (g *globals) attachAndWait(ctx context.Context, c *linux.Container, stdin, tty, sigProxy bool, detachKeys string, fromStart bool) error {
	err := g.attach(ctx, c, stdin, tty, sigProxy, detachKeys, fromStart)
	if errors.Is(err, linux.ErrDetached) {
		return nil // it runs on
	}
	if err != nil && !errdefs.IsCanceled(err) {
		return err
	}
	ex, err := c.Wait(ctx)
	if err != nil {
		return err
	}
	if ex.Code != 0 {
		return exitError{ex.Code}
	}
	return nil
}

// attach connects the CLI's streams to a container: raw mode and window
// size with a tty, detach keys on stdin, and (without a tty) the signals
// berth receives forwarded to the container.
func (g *globals) attach(ctx context.Context, c *linux.Container, stdin, tty, sigProxy bool, detachKeys string, fromStart bool) error {
	s := runtime.Stdio{Stdout: g.stdout, Stderr: g.stderr, Tty: tty}
	in, isFile := g.stdin.(*os.File)
	if stdin {
		s.Stdin = g.stdin
		// As Docker: the detach keys only work on a terminal; without one
		// stdin is passed through byte for byte.
		if tty {
			keys, err := parseDetachKeys(detachKeys)
			if err != nil {
				return usageError{err}
			}
			s.Stdin = &detachReader{r: g.stdin, keys: keys}
		}
	}
	if tty && isFile && isTerminal(in) {
		if stdin {
			if restore, err := makeRaw(in); err == nil {
				defer restore()
			}
		}
		sizes, stop := followSize(in)
		defer stop()
		s.Resize = sizes
	}
	if !tty && sigProxy {
		sigs := make(chan os.Signal, 8)
		signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGQUIT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2)
		defer signal.Stop(sigs)
		go func() {
			for sig := range sigs {
				c.Kill(ctx, sig.(unix.Signal))
			}
		}()
	}
	if fromStart {
		return c.AttachFromStart(ctx, s)
	}
	return c.Attach(ctx, s)
}

// parseDetachKeys reads Docker's form: "ctrl-p,ctrl-q", letters, or ""
// for none.
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(k, "ctrl-") && len(k) == 6:
			ch := k[5]
			switch {
			case ch >= 'a' && ch <= 'z':
				out = append(out, ch-'a'+1)
			case ch == '@':
				out = append(out, 0)
			case ch >= '[' && ch <= '_':
				out = append(out, ch-'['+27)
			default:
				return nil, fmt.Errorf("--detach-keys %q: unknown key %q", s, k)
			}
		default:
			return nil, fmt.Errorf("--detach-keys %q: write keys like ctrl-p,ctrl-q or a,b", s)
		}
	}
	return out, nil
}

// detachReader passes input through until the detach sequence, then
// returns linux.ErrDetached (a partial sequence is passed on once it
// stops matching).
type detachReader struct {
	r       io.Reader
	keys    []byte
	matched int
	pending []byte // processed bytes that did not fit the caller's buffer
}

func (d *detachReader) Read(p []byte) (int, error) {
	if len(d.pending) > 0 {
		n := copy(p, d.pending)
		d.pending = d.pending[n:]
		return n, nil
	}
	if len(d.keys) == 0 {
		return d.r.Read(p)
	}
	buf := make([]byte, len(p))
	n, err := d.r.Read(buf)
	var out []byte
	for _, b := range buf[:n] {
		if b == d.keys[d.matched] {
			d.matched++
			if d.matched == len(d.keys) {
				return copy(p, out), linux.ErrDetached
			}
			continue
		}
		out = append(out, d.keys[:d.matched]...)
		d.matched = 0
		if b == d.keys[0] {
			d.matched = 1
			continue
		}
		out = append(out, b)
	}
	c := copy(p, out)
	d.pending = append(d.pending, out[c:]...)
	return c, err
}
