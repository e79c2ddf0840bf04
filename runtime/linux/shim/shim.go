// Package shim is the per-container supervisor role (`berth _shim`): it
// starts the container's init in new namespaces, owns its stdio and log,
// records its pid and exit, and removes its cgroup when it ends. It is
// spawned by runtime/linux from a sealed copy of the binary, in a new
// session with stdio on /dev/null, so the container outlives the CLI.
package shim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/state"
	"berth.dev/berth/network/proxy"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
	"berth.dev/berth/runtime/linux/cgroups"
	"berth.dev/berth/runtime/linux/ctl"
	"berth.dev/berth/runtime/linux/health"
	"berth.dev/berth/runtime/linux/initproc"
	"berth.dev/berth/runtime/linux/logfile"
	"berth.dev/berth/runtime/linux/nsenter"
	"berth.dev/berth/runtime/linux/restart"
)

// Args is what the shim's command line says.
type Args struct{ Root, ID string }

// ParseArgs reads `_shim --root R --id ID`.
func ParseArgs(args []string) (Args, error) {
	fs := flag.NewFlagSet("_shim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var a Args
	fs.StringVar(&a.Root, "root", "", "")
	fs.StringVar(&a.ID, "id", "", "")
	if err := fs.Parse(args); err != nil {
		return a, err
	}
	if a.Root == "" || state.ValidID(a.ID) != nil {
		return a, errors.New("usage: berth _shim --root DIR --id ID (started by berth only)")
	}
	return a, nil
}

// Main supervises container id of rt and returns the shim's exit code.
func Main(rt *linux.Runtime, root *state.Root, id string) (code int) {
	report := os.NewFile(linux.ShimReportFD, "report")
	defer func() {
		if r := recover(); r != nil {
			sendReport(report, linux.ShimReport{Code: 125, Msg: fmt.Sprintf("shim: internal error: %v", r)})
			code = 1
		}
	}()
	for _, fd := range []int{linux.ShimReportFD, linux.ShimExeFD, linux.ShimLockFD} {
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	}
	// The sealed binary is not needed to start init (it is re-exec'd from
	// this process's own image); drop the fd.
	unix.Close(linux.ShimExeFD)
	// Named for ps and for "port in use by pid N (berth-shim)" messages
	// (else the comm is the fd it was exec'd from).
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&[]byte("berth-shim\x00")[0])), 0, 0, 0)
	// Caught and dropped, not ignored: an ignored disposition survives
	// execve, and the container's processes would start with SIGINT and
	// SIGHUP ignored (a trap on them would never run).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE, syscall.SIGTTOU, syscall.SIGTTIN)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		sendReport(report, linux.ShimReport{Code: 125, Msg: "shim: subreaper: " + err.Error()})
		return 1
	}
	s := &shim{rt: rt, root: root, id: id}
	if err := s.run(report); err != nil {
		return 1
	}
	return 0
}

var lockOnce sync.Once

type shim struct {
	rt   *linux.Runtime
	root *state.Root
	id   string
	dir  string
	cfg  linux.ShimConfig
	cg   *cgroups.Cgroup
	hub  *hub
	net  *netServers // DNS and port proxies, for the shim's life

	restarts int // of this container since its start by the user

	mu     sync.Mutex     // state.json writes: supervise and the prober
	last   linux.State    // what state.json says, but health
	health *health.Status // the current run's, nil without a healthcheck
}

// sendReport answers the starter once the start is recorded, and lets go
// of the container's lock it handed over.
func sendReport(f *os.File, r linux.ShimReport) {
	lockOnce.Do(func() { unix.Close(linux.ShimLockFD) })
	if f == nil {
		return
	}
	b, _ := json.Marshal(r)
	f.Write(b)
	f.Close()
}

func (s *shim) run(report *os.File) error {
	dir, err := s.root.ContainerDir(s.id)
	if err != nil {
		sendReport(report, linux.ShimReport{Code: 125, Msg: err.Error()})
		return err
	}
	s.dir = dir
	if err := state.ReadJSON(filepath.Join(dir, linux.ConfigFile), &s.cfg); err != nil {
		sendReport(report, linux.ShimReport{Code: 125, Msg: "shim: " + err.Error()})
		return err
	}
	s.hub = newHub(s.cfg.Tty, s.cfg.StdinOnce)
	l, err := s.hub.serve(s.rt.SocketPath(s.id))
	if err != nil {
		sendReport(report, linux.ShimReport{Code: 125, Msg: "shim: control socket: " + err.Error()})
		return err
	}
	defer func() { l.Close(); os.Remove(s.rt.SocketPath(s.id)) }()
	s.net, err = s.startNetwork()
	if err == nil {
		defer s.net.stop()
	}
	var started *running
	if err == nil {
		started, err = s.start()
	}
	if err != nil {
		var f *initproc.Failure
		code := 125
		if errors.As(err, &f) {
			code = f.Code
		}
		msg := fmt.Sprintf("container %s: %v", s.cfg.Name, err)
		s.record(linux.State{Status: "created", Error: msg}, &linux.Exit{Code: code, ExitedAt: time.Now().UTC(), Error: msg})
		sendReport(report, linux.ShimReport{Code: code, Msg: msg, PortInUse: errors.Is(err, proxy.ErrPortInUse)})
		return err
	}
	sendReport(report, linux.ShimReport{Pid: started.st.Init.Pid})
	// Off the exit path of a short-lived container: trimming unmaps the
	// program, which the shim then faults back in to reap and record.
	trim := time.AfterFunc(trimDelay, trimImage)
	defer trim.Stop()
	s.supervise(started)
	return nil
}

type running struct {
	cmd    *exec.Cmd
	st     linux.State
	copies sync.WaitGroup
	pipes  []*os.File // our read ends of the output (or the pty master)
	stdin  *os.File   // our write end of the container's stdin pipe
	master *os.File   // the pty master, with a terminal
	log    *logfile.Writer

	stopProbe context.CancelFunc
}

// awaitExec reads the sync socket until EOF (init exec'd the command) or a
// failure; with a terminal, init first sends the pty master (SCM_RIGHTS).
func (s *shim) awaitExec(cmd *exec.Cmd, syncP *os.File, run *running) error {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4))
	fd := int(syncP.Fd())
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || (n == 0 && oobn == 0) {
			if s.cfg.Tty && run.master == nil && err == nil {
				cmd.Wait()
				return &initproc.Failure{Code: 125, Msg: errNoPty.Error()}
			}
			return nil // EOF: the command runs
		}
		if oobn > 0 {
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				if fds, err := unix.ParseUnixRights(&m); err == nil {
					for i, f := range fds {
						if i == 0 && run.master == nil {
							run.master = os.NewFile(uintptr(f), "pty master")
						} else {
							unix.Close(f)
						}
					}
				}
			}
			continue
		}
		var f initproc.Failure
		if json.Unmarshal(buf[:n], &f) != nil || f.Code == 0 {
			f = initproc.Failure{Code: 125, Msg: string(buf[:n])}
		}
		cmd.Wait()
		if run.master != nil {
			run.master.Close()
		}
		return &f
	}
}

// start creates the cgroup, starts init, puts it in the cgroup, says go,
// and waits for exec (EOF on the sync socket) or init's failure.
func (s *shim) start() (*running, error) {
	// On v1 the group is made while init starts up (it waits for "go"
	// anyway); v2 clones init straight into it, so it comes first.
	type made struct {
		cg  *cgroups.Cgroup
		err error
	}
	mk := make(chan made, 1)
	go func() {
		cg, err := cgroups.Create(s.cfg.CgroupPath[0], s.cfg.CgroupPath[1], s.cfg.Resources)
		mk <- made{cg, err}
	}()
	var cg *cgroups.Cgroup
	getCgroup := func() error {
		if cg != nil {
			return nil
		}
		m := <-mk
		if m.err != nil {
			return fmt.Errorf("cgroup: %w", m.err)
		}
		cg, s.cg = m.cg, m.cg
		return nil
	}
	ok := false
	defer func() {
		if !ok && getCgroup() == nil {
			cg.Kill()
			cg.Delete()
		}
	}()
	unified := cgroups.UnifiedHost()
	if unified {
		if err := getCgroup(); err != nil {
			return nil, err
		}
	}
	run := &running{}
	var err error
	var in, out, errw *os.File
	if s.cfg.Log.Driver != "none" {
		run.log, err = logfile.OpenWith(filepath.Join(s.dir, linux.LogDir, linux.LogName),
			logfile.Options{MaxSize: s.cfg.Log.MaxSize, MaxFiles: s.cfg.Log.MaxFile})
		if err != nil {
			return nil, err
		}
	}
	// With a terminal, init makes it inside the container and hands the
	// master over the sync socket; else stdout and stderr are pipes (and
	// stdin one too when it is kept open).
	if !s.cfg.Tty {
		var outR, errR *os.File
		if outR, out, err = os.Pipe(); err != nil {
			return nil, err
		}
		if errR, errw, err = os.Pipe(); err != nil {
			return nil, err
		}
		run.pipes = []*os.File{outR, errR}
		if s.cfg.OpenStdin {
			if in, run.stdin, err = os.Pipe(); err != nil {
				return nil, err
			}
		}
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	syncP, syncC := os.NewFile(uintptr(fds[0]), "sync"), os.NewFile(uintptr(fds[1]), "sync-child")
	defer syncP.Close()
	specR, specW, err := os.Pipe()
	if err != nil {
		syncC.Close()
		return nil, err
	}
	// Re-exec this (sealed) program as init: /proc/self/exe of the shim is
	// the memfd it was started from, never the host's binary.
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{"berth", "_init"},
		Env:        []string{},
		Stdin:      in,
		Stdout:     out,
		Stderr:     errw,
		ExtraFiles: []*os.File{syncC, specR},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: s.cfg.Cloneflags,
		},
	}
	intoCgroup := false
	if unified {
		fd, ok := cg.FD()
		if !ok {
			return nil, fmt.Errorf("cgroup %s: no fd to clone into", cg)
		}
		intoCgroup = true
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	if s.cfg.NetNS != "" {
		err = nsenter.InNetNS(s.cfg.NetNS, cmd.Start)
	} else {
		err = cmd.Start()
	}
	if cg != nil {
		cg.Close()
	}
	syncC.Close()
	specR.Close()
	for _, f := range []*os.File{in, out, errw} {
		if f != nil {
			f.Close() // the child's ends
		}
	}
	if err != nil {
		specW.Close()
		return nil, fmt.Errorf("start init: %w", err)
	}
	run.cmd = cmd
	pid := cmd.Process.Pid
	initProc, _ := linux.ProcOf(pid)
	fail := func(e error) (*running, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, e
	}
	// On v1, init's main thread (the one that execs the command) joins the
	// cgroup itself through the tasks files sent with "go": moving the
	// whole process would take the kernel's threadgroup lock and wait for
	// an RCU grace period. The reaper (init: true) lives on with all its
	// threads, so it is moved whole.
	ic := s.cfg.Init
	var join []*os.File
	defer func() {
		for _, f := range join {
			f.Close()
		}
	}()
	if !intoCgroup {
		if err := getCgroup(); err != nil {
			specW.Close()
			return fail(err)
		}
		if !ic.Init {
			if join, err = cg.ThreadFiles(); err != nil {
				specW.Close()
				return fail(fmt.Errorf("cgroup: %w", err))
			}
			ic.JoinCgroup = len(join)
		}
	}
	err = json.NewEncoder(specW).Encode(ic)
	specW.Close()
	if err != nil {
		return fail(fmt.Errorf("send the config to init: %w", err))
	}
	if !intoCgroup && ic.JoinCgroup == 0 {
		if err := cg.Add(pid); err != nil {
			return fail(fmt.Errorf("cgroup: %w", err))
		}
	}
	if err := initproc.SendGo(syncP, join); err != nil {
		return fail(fmt.Errorf("init exited before setup: %w", err))
	}
	if err := s.awaitExec(cmd, syncP, run); err != nil {
		return nil, err
	}
	ok = true
	input := run.stdin
	if run.master != nil {
		run.pipes = []*os.File{run.master}
		if s.cfg.OpenStdin {
			input = run.master
		}
	}
	s.hub.begin(input, run.master)
	for i, p := range run.pipes {
		stream, b := "stdout", byte(ctl.Stdout)
		if i == 1 {
			stream, b = "stderr", ctl.Stderr
		}
		run.copies.Add(1)
		go func() {
			defer run.copies.Done()
			if run.log != nil {
				run.log.CopyTee(stream, p, s.hub.writer(b))
			} else {
				io.Copy(io.Discard, io.TeeReader(p, s.hub.writer(b)))
			}
		}()
	}
	run.st = linux.State{Status: "running", Init: initProc, Shim: linux.SelfProc(), StartedAt: time.Now().UTC(), Restarts: s.restarts}
	s.mu.Lock()
	s.health = nil
	if health.Enabled(s.cfg.Health) {
		s.health = &health.Status{Status: health.Starting}
	}
	s.mu.Unlock()
	if err := s.record(run.st, nil); err != nil {
		return fail(err)
	}
	var probeCtx context.Context
	probeCtx, run.stopProbe = context.WithCancel(context.Background())
	go s.probe(probeCtx)
	return run, nil
}

// supervise waits for init, records each exit, and restarts the
// container as its restart policy says (backoff in runtime/linux/restart)
// until it ends for good or the user stops it; then it removes the
// container when it was started with --rm.
func (s *shim) supervise(run *running) {
	m := restart.New(s.cfg.Restart, nil)
	m.Started(run.st.StartedAt)
	for {
		ex := s.reap(run)
		st := run.st
		d := m.Exited(restart.Exit{Code: ex.Code, Signal: ex.Signal, OOMKilled: ex.OOMKilled, At: ex.ExitedAt}, s.stopRequested())
		if !d.Restart {
			st.Status = "exited"
			s.record(st, ex)
			break
		}
		s.restarts = m.Restarts()
		st.Status, st.Restarts = "restarting", s.restarts
		s.record(st, ex)
		if !s.sleepUnlessStopped(d.After) {
			st.Status = "exited"
			s.record(st, nil)
			break
		}
		next, err := s.start()
		if err != nil {
			var f *initproc.Failure
			code := 125
			if errors.As(err, &f) {
				code = f.Code
			}
			st.Status = "exited"
			s.record(st, &linux.Exit{Code: code, ExitedAt: time.Now().UTC(), Error: fmt.Sprintf("restart %d: %v", s.restarts, err)})
			break
		}
		m.Started(next.st.StartedAt)
		run = next
	}
	if s.cfg.AwaitAttach {
		s.hub.awaitServed(5 * time.Second)
	}
	// An attached starter (run --rm) removes the container itself once it
	// read the exit, with its anonymous volumes.
	if s.cfg.AutoRemove && !s.cfg.AwaitAttach {
		if c, err := s.rt.Find(s.id); err == nil {
			c.Remove(context.Background(), runtime.RemoveOptions{})
		}
	}
}

// stopRequested reports the user stopped the container (berth writes the
// stop file before it signals).
func (s *shim) stopRequested() bool {
	_, err := os.Stat(filepath.Join(s.dir, linux.StopFile))
	return err == nil
}

// sleepUnlessStopped waits d, or less when the user stops the container;
// it reports whether to go on restarting.
func (s *shim) sleepUnlessStopped(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if s.stopRequested() {
			return false
		}
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		time.Sleep(min(left, 50*time.Millisecond))
	}
}

// reap waits for init to exit and returns how it did, with its output
// drained and its cgroup gone.
func (s *shim) reap(run *running) *linux.Exit {
	werr := run.cmd.Wait()
	run.stopProbe()
	done := make(chan struct{})
	go func() { run.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second): // something outside holds the pipes
		for _, p := range run.pipes {
			p.Close()
		}
		<-done
	}
	for _, p := range run.pipes {
		p.Close()
	}
	if run.stdin != nil {
		run.stdin.Close()
	}
	s.hub.end()
	ex := &linux.Exit{ExitedAt: time.Now().UTC()}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		ws := ee.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			ex.Signal = int(ws.Signal())
			ex.Code = 128 + int(ws.Signal())
		default:
			ex.Code = ws.ExitStatus()
		}
	} else if werr != nil {
		ex.Code, ex.Error = 255, werr.Error()
	}
	if oom, _ := s.cg.OOMKilled(); oom {
		ex.OOMKilled = true
	}
	if pids, err := s.cg.Pids(); err != nil || len(pids) > 0 {
		s.cg.Kill() // the kernel ends a PID namespace with its init; stragglers
	}
	s.cg.Delete()
	if run.log != nil {
		run.log.Close()
	}
	return ex
}

// record writes exit.json, then state.json (readers check the exit is
// newer than the start).
func (s *shim) record(st linux.State, ex *linux.Exit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ex != nil {
		state.WriteJSONVolatile(filepath.Join(s.dir, linux.ExitFile), ex, 0o600)
	}
	if s.net != nil && st.Status != "created" {
		st.Ports = s.net.ports
	}
	s.last = st
	if st.Status == "running" {
		st.Health = s.health
	}
	return state.WriteJSONVolatile(filepath.Join(s.dir, linux.StateFile), st, 0o600)
}

// recordHealth stores a probe's outcome in state.json (the shim is its
// only writer; record and this take turns).
func (s *shim) recordHealth(h health.Status) {
	s.mu.Lock()
	s.health = &h
	st := s.last
	s.mu.Unlock()
	if st.Status == "running" {
		s.record(st, nil)
	}
}

// probe runs the container's healthcheck for one run, until ctx ends.
func (s *shim) probe(ctx context.Context) {
	hc := s.cfg.Health
	if !health.Enabled(hc) {
		return
	}
	c, err := s.rt.Find(s.id)
	if err != nil {
		return
	}
	execFn := func(ctx context.Context, argv []string) (int, []byte, error) {
		var out capBuf
		st, err := c.Exec(ctx, runtime.ProcessSpec{Args: argv}, runtime.Stdio{Stdout: &out, Stderr: &out})
		var se *runtime.StartError
		if errors.As(err, &se) {
			return se.Code, []byte(se.Msg), nil
		}
		return st.Code, out.bytes(), err
	}
	health.Run(ctx, *hc, execFn, health.SystemClock, s.recordHealth)
}

// capBuf keeps the first bytes of a probe's output (both streams).
type capBuf struct {
	mu sync.Mutex
	b  []byte
}

func (c *capBuf) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := health.MaxOutputLen + 1 - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *capBuf) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.b...)
}
