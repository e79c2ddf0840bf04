package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// Lock is a held flock(2). Its fd is O_CLOEXEC, so it never reaches a shim
// or a container.
type Lock struct {
	f    *os.File
	name string
}

// Unlock releases the lock. Closing the fd would too; Unlock is explicit.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// LockOptions say how to wait for a held lock.
type LockOptions struct {
	NoWait bool          // fail at once with ErrConflict naming the holder
	OnWait func(pid int) // called once when the lock is held by another (pid 0 if unknown)
	Shared bool          // take it shared (several holders) rather than exclusive
}

// GlobalLock takes the root's global lock: shared for pulls and unpacks,
// exclusive for garbage collection.
func (r *Root) GlobalLock(ctx context.Context, o LockOptions) (*Lock, error) {
	return acquire(ctx, filepath.Join(r.Path, "lock"), "global lock", o)
}

// ProjectLock serialises mutating commands on one project. The holder's pid
// is written into the lock file so a waiter can say who it waits for.
func (r *Root) ProjectLock(ctx context.Context, project string, o LockOptions) (*Lock, error) {
	dir, err := r.ProjectDir(project)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("project %q: %w", project, err)
	}
	o.Shared = false
	return acquire(ctx, filepath.Join(dir, "lock"), fmt.Sprintf("project %q", project), o)
}

// acquire polls LOCK_NB with a growing pause, so ctx cancellation is
// honoured without a goroutine stuck in flock(2).
func acquire(ctx context.Context, path, what string, o LockOptions) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	how := unix.LOCK_EX
	if o.Shared {
		how = unix.LOCK_SH
	}
	pause := 5 * time.Millisecond
	waited := false
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if o.NoWait {
			pid := holderPID(path)
			f.Close()
			return nil, errdefs.Conflictf("%s is held by another berth command (pid %d); wait for it to finish or retry without --no-wait-lock", what, pid)
		}
		if !waited && o.OnWait != nil {
			o.OnWait(holderPID(path))
		}
		waited = true
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", what, errors.Join(errdefs.ErrCanceled, ctx.Err()))
		case <-time.After(pause):
		}
		if pause < 100*time.Millisecond {
			pause *= 2
		}
	}
	if !o.Shared {
		// Record the holder for waiters; a shared lock has many holders.
		if err := f.Truncate(0); err == nil {
			f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
	}
	return &Lock{f: f, name: what}, nil
}

func holderPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// AcquireFile takes an exclusive (or o.Shared) lock on the file at path,
// creating it; what names it in messages.
func AcquireFile(ctx context.Context, path, what string, o LockOptions) (*Lock, error) {
	return acquire(ctx, path, what, o)
}
