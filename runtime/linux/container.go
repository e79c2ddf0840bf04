package linux

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux/cgroups"
	"berth.dev/berth/runtime/linux/health"
	"berth.dev/berth/runtime/linux/nsenter"
)

// Container is one container of a Runtime.
type Container struct {
	r    *Runtime
	id   string
	lock *ctrLock // held while this process creates or starts it
}

var _ runtime.Container = (*Container)(nil)

// ID is the 64-hex ID.
func (c *Container) ID() string { return c.id }

func (c *Container) dir() string { return c.r.dir(c.id) }

func (c *Container) meta() (*Meta, error) {
	var m Meta
	if err := state.ReadJSON(filepath.Join(c.dir(), MetaFile), &m); err != nil {
		if errdefs.IsNotFound(err) {
			return nil, errdefs.NotFoundf("no such container: %.12s", c.id)
		}
		return nil, fmt.Errorf("container %.12s: %w", c.id, err)
	}
	return &m, nil
}

// Meta is the container's record.
func (c *Container) Meta() (*Meta, error) { return c.meta() }

func (c *Container) writeMeta(m *Meta) error {
	if err := state.WriteJSON(filepath.Join(c.dir(), MetaFile), m, 0o600); err != nil {
		return fmt.Errorf("container %s: %w", m.Name, err)
	}
	return nil
}

// MarkCreated ends a transient creation (see Runtime.Create) and lets go
// of the container's lock.
func (c *Container) MarkCreated() error {
	defer func() { c.lock.unlock(); c.lock = nil }()
	m, err := c.meta()
	if err != nil {
		return err
	}
	if !m.Creating {
		return nil
	}
	m.Creating = false
	return c.writeMeta(m)
}

func (c *Container) state() (*State, error) {
	var s State
	if err := state.ReadJSON(filepath.Join(c.dir(), StateFile), &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func (c *Container) exit() (*Exit, error) {
	var e Exit
	if err := state.ReadJSON(filepath.Join(c.dir(), ExitFile), &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// lostExit is what a container reports when its process is gone and its
// shim died before recording how: Docker's 255 for a lost container.
func lostExit(s *State) *Exit {
	return &Exit{Code: 255, ExitedAt: time.Now().UTC(), Error: fmt.Sprintf("exit status lost: the shim (pid %d) was killed before the container exited", s.Shim.Pid)}
}

// Info is the container's observed state, checked against the live
// processes: a record saying running whose process is gone is exited.
func (c *Container) Info(ctx context.Context) (runtime.Info, error) {
	m, err := c.meta()
	if err != nil {
		return runtime.Info{}, err
	}
	return c.info(ctx, m)
}

func (c *Container) info(ctx context.Context, m *Meta) (runtime.Info, error) {
	info := runtime.Info{ID: c.id, Name: m.Name, Labels: m.Spec.Labels, Created: m.Created, Status: runtime.StatusCreated}
	st, err := c.state()
	if errdefs.IsNotFound(err) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("container %s: %w", m.Name, err)
	}
	info.Restarts = st.Restarts
	info.StartedAt = st.StartedAt
	info.Error = st.Error
	ex, _ := c.exit()
	switch {
	case st.Status == "running" && st.Init.Alive():
		info.Status = runtime.StatusRunning
		if c.Paused() {
			info.Status = runtime.StatusPaused
		}
		info.Pid = st.Init.Pid
		info.Ports = st.Ports
		if st.Health != nil {
			info.Health = st.Health.Status
		}
		return info, nil
	case st.Status == "running" && st.Shim.Alive():
		// The process just ended; its shim is recording the exit.
		st.Shim.WaitGone(ctx, 2*time.Second)
		return c.Info(ctx)
	case st.Status == "running":
		info.Status = runtime.StatusExited
		if ex == nil || ex.ExitedAt.Before(st.StartedAt) {
			ex = lostExit(st)
		}
	case st.Status == "restarting" && st.Shim.Alive():
		info.Status = runtime.StatusRestarting
	case st.Status == "created":
		info.Status = runtime.StatusCreated
	default:
		info.Status = runtime.StatusExited
	}
	if ex != nil {
		info.Exit = &runtime.ExitStatus{Code: ex.Code, Signal: unix.Signal(ex.Signal), OOMKill: ex.OOMKilled, ExitedAt: ex.ExitedAt}
		if info.Error == "" {
			info.Error = ex.Error
		}
	}
	return info, nil
}

// HealthStatus is the current run's healthcheck status with its last
// probes, nil without a healthcheck or when not running.
func (c *Container) HealthStatus() *health.Status {
	st, err := c.state()
	if err != nil || st.Status != "running" {
		return nil
	}
	return st.Health
}

// Start spawns the shim and returns once the command was exec'd in the
// container, or with the reason it could not be (a *StartError carrying
// Docker's 125/126/127). Starting a running container does nothing.
func (c *Container) Start(ctx context.Context) error { return c.start(ctx, false) }

// StartAttach is Start for a caller that attaches right after (run,
// start -a): the shim then keeps the run's output for it even when the
// command is over before it connects.
func (c *Container) StartAttach(ctx context.Context) error { return c.start(ctx, true) }

func (c *Container) start(ctx context.Context, attach bool) error {
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if info.Status == runtime.StatusPaused {
		return errdefs.Conflictf("cannot start container %s: it is paused: unpause it instead (berth container unpause %s)", info.Name, info.Name)
	}
	if info.Status == runtime.StatusRunning {
		return nil
	}
	m, err := c.meta()
	if err != nil {
		return err
	}
	c.clearPaused()
	// A previous run's cgroup can be left when its shim was killed.
	if cg, err := cgroups.Load(c.r.cgParent, c.id); err == nil {
		cg.Kill()
		cg.Delete()
	}
	os.Remove(filepath.Join(c.dir(), StopFile))
	lock := c.lock
	if lock == nil {
		if lock, err = lockContainer(c.dir(), true); err != nil {
			return err
		}
		defer lock.unlock()
		// Someone else may have started it while we waited.
		if info, err := c.Info(ctx); err == nil && (info.Status == runtime.StatusRunning || info.Status == runtime.StatusPaused) {
			return nil
		}
	}
	return c.r.spawnShim(ctx, m, lock.f, attach)
}

// Stop sends the stop signal, waits up to timeout, then SIGKILL; it marks
// the container stopped by the user so no restart policy brings it back,
// and returns once the exit is recorded.
func (c *Container) Stop(ctx context.Context, timeout time.Duration) error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	if err := state.WriteFile(filepath.Join(c.dir(), StopFile), nil, 0o600); err != nil {
		return fmt.Errorf("stop %s: %w", m.Name, err)
	}
	sig := m.Spec.StopSignal
	if sig == 0 {
		sig = unix.SIGTERM
	}
	if timeout < 0 {
		timeout = m.Spec.StopTimeout
		if timeout == 0 {
			timeout = 10 * time.Second
		}
	}
	// A shim between restarts may be starting the next run as the stop
	// file lands: look again until no run is left.
	for range 3 {
		st, err := c.state()
		if err != nil || st.Status == "created" {
			return nil
		}
		if st.Status != "running" || !st.Init.Alive() {
			if st.Shim.Alive() {
				st.Shim.WaitGone(ctx, 2*time.Second)
				continue
			}
			c.settle(ctx, st, 0)
			return nil
		}
		serr := st.Init.Signal(sig)
		if serr == nil {
			c.resumeAfterSignal() // a frozen process acts on no signal
		}
		if serr == nil && timeout > 0 && st.Init.WaitGone(ctx, timeout) {
			c.settle(ctx, st, 0) // how it ended is its own business
			continue
		}
		if err := c.killAll(st); err != nil {
			return fmt.Errorf("stop %s: %w", m.Name, err)
		}
		c.settle(ctx, st, unix.SIGKILL)
	}
	return nil
}

// revive restarts a container with restart: always or unless-stopped
// that should be running but whose shim and process are gone (the shim
// was killed, or the machine rebooted). There is no daemon to notice: the
// next berth command that lists containers does, and says so on stderr.
func (c *Container) revive(ctx context.Context, m *Meta) {
	if p := m.Spec.Restart.Name; p != "always" && p != "unless-stopped" {
		return
	}
	st, err := c.state()
	if err != nil || (st.Status != "running" && st.Status != "restarting") || st.Shim.Alive() || st.Init.Alive() {
		return
	}
	if _, err := os.Stat(filepath.Join(c.dir(), StopFile)); err == nil {
		return
	}
	c.settle(ctx, st, 0)
	if err := c.Start(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "berth: warning: container %s (restart: %s) lost its shim; restarting it failed: %v\n", m.Name, m.Spec.Restart.Name, err)
		return
	}
	fmt.Fprintf(os.Stderr, "berth: container %s (restart: %s) had lost its shim and was started again\n", m.Name, m.Spec.Restart.Name)
}

// killAll SIGKILLs the container's init and everything in its cgroup, and
// waits for init to be gone.
func (c *Container) killAll(st *State) error {
	if err := st.Init.Signal(unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	if cg, err := cgroups.Load(c.r.cgParent, c.id); err == nil {
		cg.Kill()
		cg.Close()
	}
	if !st.Init.WaitGone(context.Background(), 10*time.Second) {
		return fmt.Errorf("process %d survived SIGKILL for 10 s", st.Init.Pid)
	}
	return nil
}

// settle waits for the shim to record the exit; when the shim is gone the
// exit is recorded here, with the cgroup it left: killed is the signal
// this process ended it with (its code is then known), 0 when unknown.
func (c *Container) settle(ctx context.Context, st *State, killed unix.Signal) {
	if st == nil || (st.Status != "running" && st.Status != "restarting") {
		return
	}
	if st.Shim.Alive() {
		st.Shim.WaitGone(ctx, 15*time.Second)
		return
	}
	if ex, err := c.exit(); err == nil && !ex.ExitedAt.Before(st.StartedAt) {
		return
	}
	ex := lostExit(st)
	if killed != 0 {
		ex.Code, ex.Signal = 128+int(killed), int(killed)
		ex.Error = fmt.Sprintf("killed by %s; its shim (pid %d) had died before", unix.SignalName(killed), st.Shim.Pid)
	}
	state.WriteJSONVolatile(filepath.Join(c.dir(), ExitFile), ex, 0o600)
	st.Status = "exited"
	state.WriteJSONVolatile(filepath.Join(c.dir(), StateFile), st, 0o600)
	if cg, err := cgroups.Load(c.r.cgParent, c.id); err == nil {
		cg.Kill()
		cg.Delete()
	}
}

// Kill sends sig to the container's init.
func (c *Container) Kill(ctx context.Context, sig unix.Signal) error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	st, err := c.state()
	if err != nil || st.Status != "running" || !st.Init.Alive() {
		return errdefs.Conflictf("container %s is not running", m.Name)
	}
	if sig == unix.SIGKILL {
		state.WriteFile(filepath.Join(c.dir(), StopFile), nil, 0o600)
	}
	if err := st.Init.Signal(sig); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errdefs.Conflictf("container %s is not running", m.Name)
		}
		return fmt.Errorf("kill %s: %w", m.Name, err)
	}
	// A paused container acts on a signal that ends it (as Docker, which
	// resumes it); others wait for the unpause.
	stopSig := m.Spec.StopSignal
	if stopSig == 0 {
		stopSig = unix.SIGTERM
	}
	if sig == unix.SIGKILL || sig == stopSig {
		c.resumeAfterSignal()
	}
	return nil
}

// Wait blocks until the container is not running and returns its exit.
func (c *Container) Wait(ctx context.Context) (runtime.ExitStatus, error) {
	for {
		st, err := c.state()
		if err != nil && !errdefs.IsNotFound(err) {
			return runtime.ExitStatus{}, err
		}
		if st != nil && (st.Status == "running" || st.Status == "restarting") {
			switch {
			case st.Shim.Alive():
				st.Shim.WaitGone(ctx, time.Second)
			case st.Init.Alive():
				st.Init.WaitGone(ctx, time.Second)
			}
		}
		if ctx.Err() != nil {
			return runtime.ExitStatus{}, errdefs.ErrCanceled
		}
		info, err := c.Info(ctx)
		if err != nil {
			return runtime.ExitStatus{}, err
		}
		if info.Status != runtime.StatusRunning && info.Status != runtime.StatusRestarting && info.Status != runtime.StatusPaused {
			// The shim is done once it recorded the exit; let it finish
			// (--rm, cleanup) so the caller sees the final state.
			if st != nil && st.Shim.Pid != os.Getpid() && st.Shim.Alive() {
				st.Shim.WaitGone(ctx, 5*time.Second)
			}
			if info.Exit == nil {
				return runtime.ExitStatus{}, errdefs.Conflictf("container %s has not run", info.Name)
			}
			return *info.Exit, nil
		}
	}
}

// Rename gives the container a new name.
func (c *Container) Rename(ctx context.Context, name string) error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	if name == m.Name {
		return nil
	}
	if err := state.ValidName("container", name); err != nil {
		return errdefs.Invalidf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	if err := c.r.root.ReserveName(name, c.id); err != nil {
		return err
	}
	old := m.Name
	m.Name, m.Spec.Name = name, name
	if err := c.writeMeta(m); err != nil {
		c.r.root.ReleaseName(name, c.id)
		return err
	}
	return c.r.root.ReleaseName(old, c.id)
}

// Remove deletes the container: running ones only with o.Force (killed
// first). Its cgroup, snapshot, name and dir go; a missing one is not an
// error for the caller to handle twice.
func (c *Container) Remove(ctx context.Context, o runtime.RemoveOptions) error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if info.Status == runtime.StatusRunning || info.Status == runtime.StatusPaused {
		if !o.Force && info.Status == runtime.StatusPaused {
			return errdefs.Conflictf("container %s is paused: unpause and stop it first, or use --force", m.Name)
		}
		if !o.Force {
			return errdefs.Conflictf("container %s is running: stop it first or use --force", m.Name)
		}
		st, _ := c.state()
		state.WriteFile(filepath.Join(c.dir(), StopFile), nil, 0o600)
		if err := c.killAll(st); err != nil {
			return fmt.Errorf("remove %s: %w", m.Name, err)
		}
		c.settle(ctx, st, unix.SIGKILL)
	}
	return c.destroy(ctx, m)
}

// destroy removes every trace of the container; each step is idempotent.
func (c *Container) destroy(ctx context.Context, m *Meta) error {
	// The shim writes into the dir until it ends (unless it is the one
	// removing the container: --rm).
	if st, err := c.state(); err == nil && st.Shim.Pid != os.Getpid() && st.Shim.Alive() {
		st.Shim.WaitGone(ctx, 10*time.Second)
	}
	var errs []error
	if cg, err := cgroups.Load(c.r.cgParent, c.id); err == nil {
		cg.Kill()
		if err := cg.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.r.snaps.Remove(ctx, SnapshotKey(c.id)); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, err)
	}
	if err := c.r.root.ReleaseName(m.Name, c.id); err != nil && !errdefs.IsConflict(err) {
		errs = append(errs, err)
	}
	os.Remove(c.r.socketPath(c.id))
	if err := nsenter.UnpinNetNS(c.r.NetNSPath(c.id)); err != nil {
		errs = append(errs, err)
	}
	// Rename out first: a dir under containers/ is a container or nothing.
	trash := filepath.Join(c.r.root.TmpDir(), "rm-"+c.id)
	if err := os.Rename(c.dir(), trash); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	os.RemoveAll(trash)
	if len(errs) > 0 {
		return fmt.Errorf("remove %s: %w", m.Name, errors.Join(errs...))
	}
	return nil
}
