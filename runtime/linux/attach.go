package linux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux/ctl"
)

// ErrDetached is returned by Attach when the client detached (its stdin
// reader returned it, e.g. on the detach keys): the container runs on.
var ErrDetached = errors.New("detached")

// Attach connects to the container's shim and streams its output to s
// until the run ends (the container stops), and s.Stdin to the
// container's stdin when it was created with -i; s.Resize sizes its
// terminal. Attach returns once the output is done, or ErrDetached.
func (c *Container) Attach(ctx context.Context, s runtime.Stdio) error {
	return c.attach(ctx, s, false)
}

// AttachFromStart is Attach with the current run's output from its start
// (as much as the shim keeps: 256 KiB): what run uses, since the command
// may print before the CLI connects.
func (c *Container) AttachFromStart(ctx context.Context, s runtime.Stdio) error {
	return c.attach(ctx, s, true)
}

func (c *Container) attach(ctx context.Context, s runtime.Stdio, replay bool) error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	st, err := c.state()
	if err != nil || !st.Shim.Alive() {
		return errdefs.Conflictf("cannot attach to container %s: it is not running", m.Name)
	}
	conn, br, _, err := ctl.Dial(c.r.socketPath(c.id), ctl.Request{Op: ctl.OpAttach, Stdin: s.Stdin != nil, Replay: replay})
	if err != nil {
		return fmt.Errorf("attach to %s: %w", m.Name, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	detached := make(chan struct{})
	if s.Stdin != nil {
		go func() {
			_, err := io.Copy(conn, s.Stdin)
			if errors.Is(err, ErrDetached) {
				close(detached)
				conn.Close()
				return
			}
			conn.CloseWrite()
		}()
	}
	if s.Resize != nil {
		go func() {
			for ws := range s.Resize {
				if rc, _, _, err := ctl.Dial(c.r.socketPath(c.id), ctl.Request{Op: ctl.OpResize, Rows: ws.Rows, Cols: ws.Cols}); err == nil {
					rc.Close()
				}
			}
		}()
	}
	err = ctl.ReadFrames(br, s.Stdout, s.Stderr)
	select {
	case <-detached:
		return ErrDetached
	default:
	}
	if ctx.Err() != nil {
		return errdefs.ErrCanceled
	}
	var ne net.Error
	if err != nil && !errors.As(err, &ne) {
		return fmt.Errorf("attach to %s: %w", m.Name, err)
	}
	return nil
}
