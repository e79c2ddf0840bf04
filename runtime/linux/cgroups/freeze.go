package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"

	"berth.dev/berth/internal/errdefs"
)

// pauseTimeout bounds Freeze's and Thaw's wait for the kernel to report
// the new state: a process in uninterruptible sleep (D state, e.g. on a
// hung NFS server) keeps a v1 group FREEZING until it wakes up.
var pauseTimeout = 5 * time.Second

// freezer describes how the group is frozen: the file written, the values
// written to freeze and to thaw, the file reporting the state and the
// lines it holds once frozen and once thawed.
type freezer struct {
	file, freeze, thaw     string
	stateFile              string
	frozenLine, thawedLine string
}

// freezerOf returns the group's freezer, ErrUnavailable when it has none
// (a v1 host without the freezer hierarchy, a v2 kernel before 5.2) and
// ErrNotFound when the group is gone.
func (c *Cgroup) freezerOf(what string) (freezer, error) {
	if c.unified {
		dir := c.dirs[0]
		f := freezer{file: filepath.Join(dir, "cgroup.freeze"), freeze: "1", thaw: "0",
			stateFile: filepath.Join(dir, "cgroup.events"), frozenLine: "frozen 1", thawedLine: "frozen 0"}
		if _, err := os.Stat(f.file); err != nil {
			if _, derr := os.Stat(dir); derr != nil {
				return f, errdefs.NotFoundf("cgroups: %s %s: the group is gone (%w)", what, c, derr)
			}
			return f, errdefs.Unavailablef("cgroups: %s %s: the kernel has no cgroup.freeze (cgroup v2 freezing needs Linux 5.2 or later): %w", what, c, err)
		}
		return f, nil
	}
	dir, ok := c.byController[cgroup1.Freezer]
	if !ok {
		return freezer{}, errdefs.Unavailablef("cgroups: %s %s: the group is in no v1 freezer hierarchy: mount the freezer controller at /sys/fs/cgroup/freezer", what, c)
	}
	f := freezer{file: filepath.Join(dir, "freezer.state"), freeze: "FROZEN", thaw: "THAWED",
		frozenLine: "FROZEN", thawedLine: "THAWED"}
	f.stateFile = f.file
	if _, err := os.Stat(dir); err != nil {
		return f, errdefs.NotFoundf("cgroups: %s %s: the group is gone (%w)", what, c, err)
	}
	return f, nil
}

// Freeze stops every process of the group (docker pause): on v1 it writes
// FROZEN to freezer.state, on v2 1 to cgroup.freeze, and waits until the
// kernel reports the group frozen (v1 freezer.state FROZEN, v2
// cgroup.events "frozen 1"). When that takes longer than 5 s (a process in
// uninterruptible sleep) it thaws the group again and returns an error
// saying so. Freezing a frozen group does nothing.
func (c *Cgroup) Freeze() error {
	f, err := c.freezerOf("freeze")
	if err != nil {
		return err
	}
	if err := f.set(true, pauseTimeout); err != nil {
		_ = f.set(false, pauseTimeout) // leave it running, not half frozen
		return fmt.Errorf("cgroups: freeze %s: %w", c, err)
	}
	return nil
}

// Thaw lets the processes of a frozen group run again (docker unpause):
// v1 freezer.state THAWED, v2 cgroup.freeze 0, waiting until the kernel
// reports it. Thawing a group that is not frozen does nothing.
func (c *Cgroup) Thaw() error {
	f, err := c.freezerOf("thaw")
	if err != nil {
		return err
	}
	if err := f.set(false, pauseTimeout); err != nil {
		return fmt.Errorf("cgroups: thaw %s: %w", c, err)
	}
	return nil
}

// Frozen reports whether the group is frozen: v1 freezer.state FROZEN
// (FREEZING, a freeze in progress, is not yet frozen), v2 cgroup.events
// "frozen 1". A group without a freezer is never frozen; a group that is
// gone gives ErrNotFound.
func (c *Cgroup) Frozen() (bool, error) {
	f, err := c.freezerOf("read the freezer state of")
	if errdefs.IsUnavailable(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	frozen, _, err := f.state()
	if errors.Is(err, fs.ErrNotExist) {
		return false, errdefs.NotFoundf("cgroups: read the freezer state of %s: the group is gone (%w)", c, err)
	}
	if err != nil {
		return false, fmt.Errorf("cgroups: read the freezer state of %s: %w", c, err)
	}
	return frozen, nil
}

// state reads whether the group is frozen and whether it is thawed (on v1
// both are false while FREEZING).
func (f freezer) state() (frozen, thawed bool, err error) {
	b, err := os.ReadFile(f.stateFile)
	if err != nil {
		return false, false, err
	}
	frozen, thawed = parseFreezerState(string(b), f.frozenLine, f.thawedLine)
	return frozen, thawed, nil
}

// parseFreezerState looks for the frozen and thawed lines in the content
// of freezer.state or cgroup.events.
func parseFreezerState(content, frozenLine, thawedLine string) (frozen, thawed bool) {
	for _, line := range strings.Split(content, "\n") {
		switch strings.TrimSpace(line) {
		case frozenLine:
			frozen = true
		case thawedLine:
			thawed = true
		}
	}
	return frozen, thawed
}

// set writes the freezer and waits up to timeout for the state to follow.
// On v1 the write is repeated while the group is FREEZING: each write
// retries the tasks that were not frozen yet.
func (f freezer) set(frozen bool, timeout time.Duration) error {
	value, want := f.thaw, f.thawedLine
	if frozen {
		value, want = f.freeze, f.frozenLine
	}
	deadline := time.Now().Add(timeout)
	pause := 100 * time.Microsecond
	for {
		if err := os.WriteFile(f.file, []byte(value), 0); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return errdefs.NotFoundf("write %s to %s: the group is gone (%w)", value, f.file, err)
			}
			return fmt.Errorf("write %s to %s: %w", value, f.file, err)
		}
		isFrozen, isThawed, err := f.state()
		if err != nil {
			return fmt.Errorf("read %s: %w", f.stateFile, err)
		}
		if (frozen && isFrozen) || (!frozen && isThawed) {
			return nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(f.stateFile)
			return fmt.Errorf("%s still says %q %v after writing %s, not %q (a process in uninterruptible sleep, or a frozen parent group?): check /proc/PID/stack of its processes and retry",
				f.stateFile, strings.TrimSpace(string(b)), timeout, value, want)
		}
		time.Sleep(pause)
		if pause < 10*time.Millisecond {
			pause *= 2
		}
	}
}
