package linux

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/runtime/linux/cgroups"
)

// pausedFile marks a container a user paused. It is written before the
// freeze and removed after the thaw, so a crash in between leaves a mark
// too many, never one too few: Paused trusts the cgroup's freezer, and
// reads it only when the mark is there (Info stays one stat per
// container).
const pausedFile = "paused"

// pauseLockWait bounds the wait for the container's lock, which a
// creator or a starting shim holds for milliseconds.
const pauseLockWait = 10 * time.Second

// Pause freezes every process of the running container (docker pause):
// its cgroup's freezer stops them where they are, without a signal they
// could see. The container keeps its resources and stays running as far
// as Stop, Kill and Remove are concerned. Pausing a container that is not
// running, or is paused already, is ErrConflict.
func (c *Container) Pause(ctx context.Context) error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	lock, err := c.lockForPause(m, "pause")
	if err != nil {
		return err
	}
	defer lock.unlock()
	cg, err := c.runningCgroup(m)
	if err != nil {
		return err
	}
	defer cg.Close()
	frozen, err := cg.Frozen()
	if err != nil {
		return fmt.Errorf("pause %s: %w", m.Name, err)
	}
	if frozen {
		return errdefs.Conflictf("container %s is already paused", m.Name)
	}
	mark := filepath.Join(c.dir(), pausedFile)
	if err := state.WriteFile(mark, nil, 0o600); err != nil {
		return fmt.Errorf("pause %s: %w", m.Name, err)
	}
	if err := cg.Freeze(); err != nil {
		os.Remove(mark)
		if errdefs.IsNotFound(err) {
			return errdefs.Conflictf("container %s is not running (it ended while being paused)", m.Name)
		}
		if errdefs.IsUnavailable(err) {
			return errdefs.Unavailablef("pause %s: %w", m.Name, err)
		}
		return fmt.Errorf("pause %s: %w", m.Name, err)
	}
	return nil
}

// Resume thaws a paused container (docker unpause). A container that is
// not paused is ErrConflict.
func (c *Container) Resume(ctx context.Context) error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	lock, err := c.lockForPause(m, "unpause")
	if err != nil {
		return err
	}
	defer lock.unlock()
	cg, err := c.runningCgroup(m)
	if errdefs.IsConflict(err) {
		return errdefs.Conflictf("container %s is not paused", m.Name)
	}
	if err != nil {
		return err
	}
	defer cg.Close()
	frozen, err := cg.Frozen()
	if err != nil {
		return fmt.Errorf("unpause %s: %w", m.Name, err)
	}
	mark := filepath.Join(c.dir(), pausedFile)
	if !frozen {
		os.Remove(mark) // a stale mark: someone thawed the cgroup by hand
		return errdefs.Conflictf("container %s is not paused", m.Name)
	}
	if err := cg.Thaw(); err != nil {
		return fmt.Errorf("unpause %s: %w", m.Name, err)
	}
	if err := os.Remove(mark); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpause %s: the container runs again, but its pause mark stays: %w", m.Name, err)
	}
	return nil
}

// Paused reports whether the container is paused: it is marked so and its
// cgroup is frozen. It does not check that the container runs (Info does
// that first).
func (c *Container) Paused() bool {
	if _, err := os.Stat(filepath.Join(c.dir(), pausedFile)); err != nil {
		return false
	}
	cg, err := cgroups.Load(c.r.cgParent, c.id)
	if err != nil {
		return false
	}
	defer cg.Close()
	frozen, err := cg.Frozen()
	return err == nil && frozen
}

// resumeAfterSignal thaws the container, if it is paused, after Stop or
// Kill signalled it: a frozen process cannot act on a signal, so the
// signal would otherwise wait for an unpause (Docker resumes a paused
// container it stops or kills the same way). It reports whether it
// thawed the container.
func (c *Container) resumeAfterSignal() bool {
	mark := filepath.Join(c.dir(), pausedFile)
	if _, err := os.Stat(mark); err != nil {
		return false
	}
	cg, err := cgroups.Load(c.r.cgParent, c.id)
	if err != nil {
		os.Remove(mark)
		return false
	}
	defer cg.Close()
	if err := cg.Thaw(); err != nil {
		return false
	}
	os.Remove(mark)
	return true
}

// clearPaused removes the pause mark (Start of a new run; the old run's
// cgroup, frozen or not, is gone by then).
func (c *Container) clearPaused() { os.Remove(filepath.Join(c.dir(), pausedFile)) }

// lockForPause takes the container's lock, so a pause and an unpause, or
// a pause and a start, do not interleave.
func (c *Container) lockForPause(m *Meta, what string) (*ctrLock, error) {
	lock, err := lockContainerWithin(c.dir(), pauseLockWait)
	if errors.Is(err, errBusy) {
		return nil, errdefs.Conflictf("%s %s: the container is being created or started: retry in a moment", what, m.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, m.Name, err)
	}
	return lock, nil
}

// runningCgroup loads the cgroup of the running container; one that is
// not running is ErrConflict. The caller closes it.
func (c *Container) runningCgroup(m *Meta) (*cgroups.Cgroup, error) {
	st, err := c.state()
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("container %s: %w", m.Name, err)
	}
	if st == nil || st.Status != "running" || !st.Init.Alive() {
		return nil, errdefs.Conflictf("container %s is not running", m.Name)
	}
	cg, err := cgroups.Load(c.r.cgParent, c.id)
	if errdefs.IsNotFound(err) {
		return nil, errdefs.Conflictf("container %s is not running", m.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", m.Name, err)
	}
	return cg, nil
}
