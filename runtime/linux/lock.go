package linux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

const lockFile = "lock"

// A container's lock is held by whoever is making or starting it: the
// creator from Create until it is done (run: until started), then Start,
// which hands the very fd to the shim; the shim lets go once the start is
// recorded. A flock lives as long as any process holds the open file, so
// there is no moment, even across the CLI being killed, when a half-made
// or half-started container looks abandoned while someone still works on
// it. The sweep only touches containers whose lock it can take.
type ctrLock struct{ f *os.File }

func openLock(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("container lock: %w", err)
	}
	return f, nil
}

// lockContainer takes the lock of the container dir, waiting when block.
// It returns errBusy when !block and another holds it.
func lockContainer(dir string, block bool) (*ctrLock, error) {
	f, err := openLock(dir)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX
	if !block {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errBusy
		}
		return nil, fmt.Errorf("container lock: %w", err)
	}
	return &ctrLock{f: f}, nil
}

var errBusy = errors.New("container is being created or started")

func (l *ctrLock) unlock() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// lockContainerWithin waits up to d for the lock (a creator or a starting
// shim holds it for milliseconds); errBusy after that.
func lockContainerWithin(dir string, d time.Duration) (*ctrLock, error) {
	deadline := time.Now().Add(d)
	for {
		l, err := lockContainer(dir, false)
		if !errors.Is(err, errBusy) || time.Now().After(deadline) {
			return l, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
