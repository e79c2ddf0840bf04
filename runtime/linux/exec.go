package linux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux/caps"
	"berth.dev/berth/runtime/linux/cgroups"
	"berth.dev/berth/runtime/linux/exeseal"
	"berth.dev/berth/runtime/linux/initproc"
	"berth.dev/berth/runtime/linux/nsenter"
)

// Exec runs p in the running container: `berth _exec` is forked from a
// thread that joined the container's namespaces, put in its cgroup, and
// drops to the container's capabilities, seccomp filter, no_new_privs and
// user (or p's) before it execs. The process is this process's child; its
// exit status is returned (or, with s.Detach, nothing once it started).
// A command that cannot start gives a *runtime.StartError (126/127).
func (c *Container) Exec(ctx context.Context, p runtime.ProcessSpec, s runtime.Stdio) (runtime.ExitStatus, error) {
	m, err := c.meta()
	if err != nil {
		return runtime.ExitStatus{}, err
	}
	st, err := c.state()
	if err != nil || st.Status != "running" || !st.Init.Alive() {
		return runtime.ExitStatus{}, errdefs.Conflictf("container %s is not running: start it first (berth container start %s)", m.Name, m.Name)
	}
	if c.Paused() {
		return runtime.ExitStatus{}, errdefs.Conflictf("container %s is paused: unpause it first (berth container unpause %s)", m.Name, m.Name)
	}
	cfg, err := c.execConfig(m, p)
	if err != nil {
		return runtime.ExitStatus{}, err
	}
	// The container's shim runs from a sealed copy already: exec from that
	// (no copy at all); else make one.
	exe, err := exeseal.CopyFile(fmt.Sprintf("/proc/%d/exe", st.Shim.Pid))
	fromShim := true
	if err != nil || !st.Shim.Alive() {
		if exe != nil {
			exe.Close()
		}
		exe, err = c.r.sealedCopy()
		fromShim = false
	}
	if err != nil {
		return runtime.ExitStatus{}, fmt.Errorf("exec in %s: %w", m.Name, err)
	}
	defer exe.Close()
	// The path is resolved in the container's mount namespace, where
	// /proc/self is the child: use an fd number no dup2 of the child's
	// stdio and extra files can land on.
	exeFD, err := unix.FcntlInt(exe.Fd(), unix.F_DUPFD_CLOEXEC, 16)
	if err != nil {
		return runtime.ExitStatus{}, fmt.Errorf("exec in %s: %w", m.Name, err)
	}
	defer unix.Close(exeFD)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return runtime.ExitStatus{}, err
	}
	syncP, syncC := os.NewFile(uintptr(fds[0]), "sync"), os.NewFile(uintptr(fds[1]), "sync-child")
	defer syncP.Close()
	specR, specW, err := os.Pipe()
	if err != nil {
		syncC.Close()
		return runtime.ExitStatus{}, err
	}
	io0 := &execIO{}
	defer io0.closeChild()
	if err := io0.setup(st.Init.Pid, s); err != nil {
		syncC.Close()
		specR.Close()
		specW.Close()
		return runtime.ExitStatus{}, fmt.Errorf("exec in %s: %w", m.Name, err)
	}
	defer io0.closeParent()
	cmd := &exec.Cmd{
		Path:        fmt.Sprintf("/proc/self/fd/%d", exeFD),
		Args:        []string{"berth", "_exec"},
		Env:         []string{},
		Stdin:       io0.child[0],
		Stdout:      io0.child[1],
		Stderr:      io0.child[2],
		ExtraFiles:  []*os.File{syncC, specR},
		SysProcAttr: &syscall.SysProcAttr{},
	}
	if s.Tty {
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
	}
	// v2: the process is cloned into the cgroup. v1: its main thread, the
	// one that execs, joins it through the tasks files sent with "go"
	// (moving the process would wait for an RCU grace period), when the
	// _exec program is this berth's; one of another binary (a shim from
	// before an upgrade) may not know how, and is moved whole.
	selfJoin := !fromShim || exeseal.SameProgram(st.Shim.Pid, c.r.exePath())
	cg, err := cgroups.Load(c.r.cgParent, c.id)
	if err != nil {
		syncC.Close()
		specR.Close()
		specW.Close()
		return runtime.ExitStatus{}, fmt.Errorf("exec in %s: its cgroup: %w", m.Name, err)
	}
	defer cg.Close()
	if fd, ok := cg.FD(); ok {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	}
	var join []*os.File
	if selfJoin {
		join, err = cg.ThreadFiles()
	}
	if err != nil {
		syncC.Close()
		specR.Close()
		specW.Close()
		return runtime.ExitStatus{}, fmt.Errorf("exec in %s: %w", m.Name, err)
	}
	defer func() {
		for _, f := range join {
			f.Close()
		}
	}()
	cfg.JoinCgroup = len(join)
	err = nsenter.Start(st.Init.Pid, cmd)
	syncC.Close()
	specR.Close()
	io0.closeChild()
	if err != nil {
		specW.Close()
		return runtime.ExitStatus{}, fmt.Errorf("exec in %s: %w", m.Name, err)
	}
	fail := func(e error) (runtime.ExitStatus, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return runtime.ExitStatus{}, e
	}
	err = json.NewEncoder(specW).Encode(cfg)
	specW.Close()
	if err != nil {
		return fail(fmt.Errorf("exec in %s: send the config: %w", m.Name, err))
	}
	if !cmd.SysProcAttr.UseCgroupFD && len(join) == 0 {
		if err := cg.Add(cmd.Process.Pid); err != nil {
			return fail(fmt.Errorf("exec in %s: %w", m.Name, err))
		}
	}
	if err := initproc.SendGo(syncP, join); err != nil {
		return fail(fmt.Errorf("exec in %s: the exec stage died: %w", m.Name, err))
	}
	buf := make([]byte, 64<<10)
	if n, _ := syncP.Read(buf); n > 0 {
		var f initproc.Failure
		if json.Unmarshal(buf[:n], &f) != nil || f.Code == 0 {
			f = initproc.Failure{Code: 126, Msg: string(buf[:n])}
		}
		cmd.Wait()
		return runtime.ExitStatus{}, &runtime.StartError{Code: f.Code, Msg: f.Msg}
	}
	if s.Detach {
		go cmd.Wait()
		return runtime.ExitStatus{}, nil
	}
	copies := io0.copy(s)
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() }) // a timeout ends it
	werr := cmd.Wait()
	stop()
	io0.finish(copies)
	var ex runtime.ExitStatus
	var ee *exec.ExitError
	switch {
	case errors.As(werr, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			ex.Signal, ex.Code = ws.Signal(), 128+int(ws.Signal())
		} else {
			ex.Code = ws.ExitStatus()
		}
	case werr != nil:
		return ex, fmt.Errorf("exec in %s: %w", m.Name, werr)
	}
	return ex, nil
}

// execConfig is the container's process settings with p's on top.
func (c *Container) execConfig(m *Meta, p runtime.ProcessSpec) (*initproc.Config, error) {
	sp := m.Spec.OCI.Process
	cfg := &initproc.Config{
		Args:       p.Args,
		Env:        mergeEnv(sp.Env, p.Env),
		Cwd:        sp.Cwd,
		User:       sp.User.Username,
		GroupAdd:   m.Spec.GroupAdd,
		NoNewPrivs: sp.NoNewPrivileges,
	}
	if len(cfg.Args) == 0 {
		return nil, errdefs.Invalidf("exec in %s: no command given", m.Name)
	}
	if p.Cwd != "" {
		cfg.Cwd = p.Cwd
	}
	if p.User != "" {
		cfg.User = p.User
	}
	for _, rl := range sp.Rlimits {
		cfg.Rlimits = append(cfg.Rlimits, initproc.Rlimit{Name: rl.Type, Soft: rl.Soft, Hard: rl.Hard})
	}
	if p.Privileged {
		cfg.Caps = caps.All()
		return cfg, nil
	}
	if sp.Capabilities != nil {
		for _, n := range sp.Capabilities.Bounding {
			cp, err := caps.Parse(n)
			if err != nil {
				return nil, err
			}
			cfg.Caps |= 1 << cp
		}
	}
	// The filter compiled for this run's start is the one to join with.
	var sc ShimConfig
	if err := state.ReadJSON(filepath.Join(c.dir(), ConfigFile), &sc); err == nil {
		cfg.Seccomp = sc.Init.Seccomp
		return cfg, nil
	}
	var err error
	if cfg.Seccomp, err = seccompFilter(m.Spec); err != nil {
		return nil, fmt.Errorf("exec in %s: seccomp: %w", m.Name, err)
	}
	return cfg, nil
}

// mergeEnv is base with over's variables replacing or added.
func mergeEnv(base, over []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// execIO is an exec's stdio: pipes, or a terminal from the container's
// own devpts (never a host terminal: SECURITY.md).
type execIO struct {
	child  [3]*os.File // the process's 0, 1, 2
	parent [3]*os.File // our ends: stdin writer, stdout and stderr readers; pty master at [1]
	tty    bool
}

func (e *execIO) setup(pid int, s runtime.Stdio) error {
	if s.Tty {
		master, slave, err := containerPty(pid)
		if err != nil {
			return err
		}
		e.tty = true
		e.parent[1] = master
		e.child = [3]*os.File{slave, slave, slave}
		return nil
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	e.child[0] = null
	if s.Stdin != nil {
		null.Close()
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		e.child[0], e.parent[0] = r, w
	}
	for i, wr := range []io.Writer{s.Stdout, s.Stderr} {
		if wr == nil {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			e.child[i+1] = f
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		e.child[i+1], e.parent[i+1] = w, r
	}
	return nil
}

func (e *execIO) closeChild() {
	seen := map[*os.File]bool{}
	for i, f := range e.child {
		if f != nil && !seen[f] {
			seen[f] = true
			f.Close()
		}
		e.child[i] = nil
	}
}

func (e *execIO) closeParent() {
	for i, f := range e.parent {
		if f != nil {
			f.Close()
			e.parent[i] = nil
		}
	}
}

// copy moves bytes between s and our ends; the returned group ends when
// the process's output is drained.
func (e *execIO) copy(s runtime.Stdio) *sync.WaitGroup {
	var out sync.WaitGroup
	if e.tty {
		master := e.parent[1]
		if s.Stdin != nil {
			go io.Copy(master, s.Stdin)
		}
		if s.Resize != nil {
			go func() {
				for ws := range s.Resize {
					unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Cols})
				}
			}()
		}
		out.Add(1)
		go func() {
			defer out.Done()
			if s.Stdout != nil {
				io.Copy(s.Stdout, master) // EIO once the last slave holder is gone
			}
		}()
		return &out
	}
	if w := e.parent[0]; w != nil {
		go func() {
			io.Copy(w, s.Stdin)
			w.Close() // EOF for the process
		}()
		e.parent[0] = nil
	}
	for i, wr := range []io.Writer{s.Stdout, s.Stderr} {
		if r := e.parent[i+1]; r != nil {
			out.Add(1)
			go func() {
				defer out.Done()
				io.Copy(wr, r)
			}()
		}
	}
	return &out
}

// finish waits for the output to drain. A pty master reads EIO when the
// process is gone, but a background process of it may hold the slave:
// then the master is closed after the exec'd process ended.
func (e *execIO) finish(out *sync.WaitGroup) {
	if e.tty {
		done := make(chan struct{})
		go func() { out.Wait(); close(done) }()
		select {
		case <-done:
		default:
			e.parent[1].SetReadDeadline(timeNowPlus())
			<-done
		}
		return
	}
	out.Wait()
}
