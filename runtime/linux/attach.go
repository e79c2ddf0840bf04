package linux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux/logfile"
)

// Attach copies the output of the container's current run (from its start,
// as the shim logged it) to s until the container stops. Attaching stdin
// and terminals comes with the shim's control socket (runtime, part 2).
func (c *Container) Attach(ctx context.Context, s runtime.Stdio) error {
	if s.Stdin != nil || s.Tty {
		return fmt.Errorf("attach stdin or a terminal: %w", errLater)
	}
	st, err := c.state()
	if err != nil {
		return err
	}
	r, err := logfile.OpenReader(filepath.Join(c.dir(), logDir, logName), st.LogOffset)
	if errors.Is(err, os.ErrNotExist) {
		return errdefs.Unavailablef("container has no log to attach to (logging driver none)")
	}
	if err != nil {
		return err
	}
	defer r.Close()
	emit := func(e logfile.Entry) error {
		w := s.Stdout
		if e.Stream == "stderr" {
			w = s.Stderr
		}
		if w == nil {
			return nil
		}
		_, err := io.WriteString(w, e.Log)
		return err
	}
	for {
		if err := r.Drain(emit); err != nil {
			return err
		}
		// Only the shim writes the log: once it is gone, nothing more comes.
		if !st.Shim.Alive() {
			return r.Drain(emit)
		}
		if ctx.Err() != nil {
			return errdefs.ErrCanceled
		}
		st.Shim.WaitGone(ctx, 50*time.Millisecond)
	}
}
