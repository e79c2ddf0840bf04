package logfile

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// watcher wakes a following reader as soon as the log's directory changes
// (a write, a rename, a new file), so that it keeps up with a fast writer
// and finds each rotated file before rotation drops it; without inotify
// (no instance left, no directory yet) it is a plain timer.
type watcher struct {
	f   *os.File // the inotify fd; nil: timer only
	buf []byte
}

// newWatcher watches the directory of the log at path.
func newWatcher(path string) *watcher {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return &watcher{}
	}
	const mask = syscall.IN_MODIFY | syscall.IN_CREATE | syscall.IN_MOVED_TO | syscall.IN_MOVED_FROM |
		syscall.IN_DELETE | syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF
	if _, err := syscall.InotifyAddWatch(fd, filepath.Dir(path), mask); err != nil {
		syscall.Close(fd)
		return &watcher{}
	}
	return &watcher{f: os.NewFile(uintptr(fd), "inotify"), buf: make([]byte, 4096)}
}

func (w *watcher) close() {
	if w.f != nil {
		w.f.Close()
	}
}

// wait returns once something changed in the directory, d passed, or ctx
// ended (then with ctx.Err()).
func (w *watcher) wait(ctx context.Context, d time.Duration) error {
	if w.f == nil {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	w.f.SetReadDeadline(time.Now().Add(d))
	stop := context.AfterFunc(ctx, func() { w.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	// Which events came does not matter: the caller looks at the files.
	// A failed read (the deadline) is a timeout like the timer's.
	w.f.Read(w.buf)
	return ctx.Err()
}
