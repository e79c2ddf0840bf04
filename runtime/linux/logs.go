package linux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux/logfile"
)

// LogsOptions are runtime.LogOptions plus what only `berth container logs`
// asks for.
type LogsOptions struct {
	runtime.LogOptions
	// Details is docker's --details: it adds the attributes a logging
	// driver was told to record (--log-opt labels/env). berth records
	// none, so it adds nothing; it is accepted for compatibility.
	Details bool
}

// LogPath is the container's live log file (json.log; rotated ones are
// json.log.1 …).
func (c *Container) LogPath() string { return filepath.Join(c.dir(), LogDir, LogName) }

// Logs returns the container's log as one text stream (stdout and stderr
// merged, in order), selected by o; with o.Follow it ends when the
// container stops for good (see LogStream). Closing the reader stops it.
func (c *Container) Logs(ctx context.Context, o runtime.LogOptions) (io.ReadCloser, error) {
	if _, err := c.logConfig(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		err := c.LogStream(ctx, LogsOptions{LogOptions: o}, pw, pw)
		if errdefs.IsCanceled(err) {
			err = nil
		}
		pw.CloseWithError(err)
	}()
	return &logsReader{PipeReader: pr, cancel: cancel}, nil
}

type logsReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *logsReader) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}

// logConfig checks that the container exists and logs to a file berth can
// read.
func (c *Container) logConfig() (*Meta, error) {
	m, err := c.meta()
	if err != nil {
		return nil, err
	}
	if m.Spec.Log.Driver == "none" {
		return nil, errdefs.Unavailablef("container %s: configured logging driver does not support reading (it was created with --log-driver none, so nothing was kept; recreate it with json-file to read its output)", m.Name)
	}
	return m, nil
}

// LogStream writes the container's log to stdout and stderr, each entry
// to the writer of its stream, as o selects: the last o.Tail entries
// (< 0: all), within o.Since and o.Until, each prefixed with its time with
// o.Timestamps. It works on stopped containers too. With o.Follow it then
// writes what the container logs, across rotation and restarts, until
// the container is neither running nor restarting (its shim, the only
// writer, is gone) and all is written, or until ctx ends (ErrCanceled).
func (c *Container) LogStream(ctx context.Context, o LogsOptions, stdout, stderr io.Writer) error {
	m, err := c.logConfig()
	if err != nil {
		return err
	}
	p := &logfile.Printer{Stdout: stdout, Stderr: stderr, Timestamps: o.Timestamps}
	ro := logfile.ReadOptions{
		Tail:   o.Tail,
		Since:  o.Since,
		Until:  o.Until,
		Follow: o.Follow,
		// Only the shim writes the log; while it lives the container may
		// run, restart and keep writing. No state: never started, or removed.
		Writing: func() bool {
			st, err := c.state()
			return err == nil && st.Shim.Alive()
		},
	}
	err = logfile.Print(ctx, c.LogPath(), ro, p)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("logs of %s: %w", m.Name, errdefs.ErrCanceled)
	case err != nil:
		return fmt.Errorf("logs of %s: %w", m.Name, err)
	}
	return nil
}
