package linux

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/failpoint"
	"berth.dev/berth/runtime"
)

const ConfigFile = "config.json" // Start-written: the shim's ShimConfig

// ShimReport is the one line a shim writes on its report pipe (fd 3).
type ShimReport struct {
	Pid  int    `json:"pid,omitempty"`
	Code int    `json:"code,omitempty"` // non-zero: the start failed
	Msg  string `json:"msg,omitempty"`
	// PortInUse: binding a published port failed.
	PortInUse bool `json:"port_in_use,omitempty"`
}

// The shim's fds: 3 report pipe, 4 the sealed binary, 5 the container's
// lock (held until the start is recorded).
const (
	ShimReportFD = 3
	ShimExeFD    = 4
	ShimLockFD   = 5
)

// SocketPath is where the shim of container id listens (ctl).
func (r *Runtime) SocketPath(id string) string { return r.socketPath(id) }

func (r *Runtime) socketPath(id string) string {
	return filepath.Join(r.root.RunDir, "s", id[:12]+".sock")
}

// spawnShim writes config.json and starts `berth _shim` from a sealed copy
// of the binary, in a new session with stdio on /dev/null; it returns when
// the shim reports the command exec'd (or why not).
func (r *Runtime) spawnShim(ctx context.Context, m *Meta, lock *os.File, attach bool) error {
	mounts, err := r.snaps.Mounts(ctx, SnapshotKey(m.ID))
	if err != nil {
		return fmt.Errorf("start %s: snapshot: %w", m.Name, err)
	}
	c := &Container{r: r, id: m.ID}
	nw, err := c.Networking(ctx)
	if err != nil {
		return err
	}
	cfg, err := r.buildShimConfig(m, mounts, nw)
	if err != nil {
		return err
	}
	cfg.AwaitAttach = attach
	// config.json and the /etc files are made anew at every start and read
	// only by this start: written whole, but not fsynced.
	if err := writeEtcFiles(r.dir(m.ID), m.Spec, nw); err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	if err := os.WriteFile(filepath.Join(r.dir(m.ID), ConfigFile), b, 0o600); err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	exe, err := r.sealedCopy()
	if err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	defer exe.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start %s: %w", m.Name, err)
	}
	defer rd.Close()
	// Only the fds named below may reach the shim: whatever this process
	// inherited without close-on-exec (a test runner's, a shell's) must not.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("start %s: close_range: %w", m.Name, err)
	}
	cmd := &exec.Cmd{
		// In the child, fd 4 is the sealed copy (ExtraFiles[1]).
		Path:        fmt.Sprintf("/proc/self/fd/%d", ShimExeFD),
		Args:        []string{"berth", "_shim", "--root", r.root.Path, "--id", m.ID},
		Env:         []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		ExtraFiles:  []*os.File{wr, exe, lock},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	wr.Close()
	if err != nil {
		return fmt.Errorf("start %s: spawn the shim: %w", m.Name, err)
	}
	go cmd.Wait() // reap it if it ends while we still run
	failpoint.Hit("start-spawned")
	b, err = io.ReadAll(io.LimitReader(rd, 1<<20))
	if err != nil {
		return fmt.Errorf("start %s: read the shim's report: %w", m.Name, err)
	}
	var rep ShimReport
	if len(b) == 0 || json.Unmarshal(b, &rep) != nil {
		return fmt.Errorf("start %s: the shim exited without a report (%q)", m.Name, b)
	}
	if rep.Code != 0 {
		return &runtime.StartError{Code: rep.Code, Msg: rep.Msg, PortInUse: rep.PortInUse}
	}
	return nil
}
