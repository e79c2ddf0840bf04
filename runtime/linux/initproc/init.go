// Package initproc is the container's init role (`berth _init`): started by
// the shim in new namespaces, it sets up the root filesystem, drops
// privileges in the order runc taught (mount → pivot → mask → drop → exec)
// and execs the container's command, becoming it.
//
// The shim hands it two fds: 3, a SOCK_SEQPACKET sync socket, and 4, a pipe
// carrying the Config as JSON. Init waits for one byte on fd 3 (the shim has
// put it in the cgroup by then), and reports a failure as one JSON message
// on fd 3. fd 3 is close-on-exec, so EOF on it means execve succeeded.
package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"berth.dev/berth/runtime/linux/caps"
	"berth.dev/berth/runtime/linux/cgroups"
	"berth.dev/berth/runtime/linux/rootfs"
	"berth.dev/berth/runtime/linux/seccomp"
)

// The fds the shim passes.
const (
	SyncFD = 3
	SpecFD = 4
)

// DefaultPath is the PATH a container gets when neither the image nor the
// user sets one (Docker's).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Config is everything init needs; the shim builds it from the container's
// record.
type Config struct {
	Rootfs      rootfs.Config
	Args        []string
	Env         []string
	Cwd         string
	User        string
	GroupAdd    []string
	Hostname    string
	Domainname  string
	Caps        caps.Set
	NoNewPrivs  bool
	Seccomp     []byte // the compiled filter (seccomp.Encode); nil: unconfined
	Rlimits     []Rlimit
	OOMScoreAdj *int
	Init        bool   // PID 1 is a built-in reaper; the command is its child
	Tty         bool   // the command gets a terminal made in the container's devpts
	Rows, Cols  uint16 // its size at start
	CgroupNS    bool   // unshare the cgroup namespace once in the cgroup (v2)
	Loopback    bool   // bring lo up (a private network namespace)

	// JoinCgroup is the number of cgroup v1 tasks files that come with
	// "go" (SCM_RIGHTS): the process's main thread, the one that execs,
	// joins the cgroup through them (cgroups.JoinThread) instead of being
	// moved by its starter. 0: the starter placed it.
	JoinCgroup int `json:",omitempty"`
}

// Failure is what init reports on the sync socket when it cannot exec.
// Code follows Docker: 127 command not found, 126 not executable, 125
// anything else.
type Failure struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

func (f *Failure) Error() string { return f.Msg }

func fail(code int, format string, args ...any) *Failure {
	return &Failure{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Main runs the init role and never returns on success. Its caller has
// locked the main goroutine to the main thread (cmd/berth does it in init).
func Main() int { return role(false) }

// ExecMain runs the exec role (`berth _exec`): started by berth from a
// thread that joined a running container's namespaces (runtime/linux/
// nsenter), with the same fds as init, it drops to the container's
// privileges and execs the command. It is not dumpable until then, so
// nothing in the container can ptrace or read it while it holds root.
func ExecMain() int {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "berth _exec: %v\n", err)
		return 125
	}
	return role(true)
}

func role(exec bool) int {
	for _, fd := range []int{SyncFD, SpecFD} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			fmt.Fprintf(os.Stderr, "berth: fd %d: %v (this role is started by berth only)\n", fd, err)
			return 125
		}
	}
	f := run(exec)
	b, _ := json.Marshal(f)
	unix.Write(SyncFD, b)
	return f.Code
}

func run(exec bool) (f *Failure) {
	defer func() {
		if r := recover(); r != nil {
			f = fail(125, "init: internal error: %v", r)
		}
	}()
	spec := os.NewFile(SpecFD, "spec")
	var cfg Config
	err := json.NewDecoder(io.LimitReader(spec, 64<<20)).Decode(&cfg)
	spec.Close()
	if err != nil {
		return fail(125, "init: read the container config: %v", err)
	}
	if f := awaitGo(cfg.JoinCgroup); f != nil {
		return f
	}
	if exec {
		if err := ApplyRlimits(cfg.Rlimits); err != nil {
			return fail(125, "exec: %v", err)
		}
		cfg.Init = false
		return launch(&cfg, false, false)
	}
	return start(&cfg)
}

// SendGo is the starter's side of awaitGo: it writes "go" on the sync
// socket, with the cgroup tasks files of Config.JoinCgroup (SCM_RIGHTS)
// when there are any.
func SendGo(sock *os.File, fds []*os.File) error {
	var oob []byte
	if len(fds) > 0 {
		n := make([]int, len(fds))
		for i, f := range fds {
			n[i] = int(f.Fd())
		}
		oob = unix.UnixRights(n...)
	}
	for {
		err := unix.Sendmsg(int(sock.Fd()), []byte{'g'}, oob, nil, 0)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// awaitGo waits for the one-byte "go" on the sync socket; with join > 0
// it carries that many cgroup tasks files, which this thread (the main
// one, which execs) joins.
func awaitGo(join int) *Failure {
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4*max(join, 1)))
	n, oobn, flags, _, err := unix.Recvmsg(SyncFD, b[:], oob, unix.MSG_CMSG_CLOEXEC)
	for errors.Is(err, unix.EINTR) {
		n, oobn, flags, _, err = unix.Recvmsg(SyncFD, b[:], oob, unix.MSG_CMSG_CLOEXEC)
	}
	var fds []int
	if err == nil && oobn > 0 {
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if n != 1 {
		return fail(125, "init: berth did not say go: %v", err)
	}
	if join == 0 {
		if len(fds) > 0 {
			return fail(125, "init: unexpected fds with go")
		}
		return nil
	}
	if len(fds) != join || flags&unix.MSG_CTRUNC != 0 {
		return fail(125, "init: cgroup: got %d of %d cgroup files with go", len(fds), join)
	}
	if err := cgroups.JoinThread(fds); err != nil {
		return fail(125, "init: %v", err)
	}
	return nil
}

func start(cfg *Config) *Failure {
	if cfg.CgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fail(125, "init: cgroup namespace: %v", err)
		}
	}
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fail(125, "init: set hostname %q: %v", cfg.Hostname, err)
		}
	}
	if cfg.Domainname != "" {
		if err := unix.Setdomainname([]byte(cfg.Domainname)); err != nil {
			return fail(125, "init: set domainname %q: %v", cfg.Domainname, err)
		}
	}
	if cfg.Loopback {
		if err := loopbackUp(); err != nil {
			return fail(125, "init: bring up lo: %v", err)
		}
	}
	readOnly := cfg.Rootfs.ReadOnly
	cfg.Rootfs.ReadOnly = false // after the working directory exists
	if err := rootfs.Setup(cfg.Rootfs); err != nil {
		return fail(125, "%v", err)
	}
	if cfg.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*cfg.OOMScoreAdj)), 0); err != nil {
			return fail(125, "init: oom_score_adj %d: %v", *cfg.OOMScoreAdj, err)
		}
	}
	if err := ApplyRlimits(cfg.Rlimits); err != nil {
		return fail(125, "init: %v", err)
	}
	if cfg.Tty {
		if err := consoleTerminal(cfg.Rows, cfg.Cols); err != nil {
			return fail(125, "init: terminal: %v", err)
		}
	}
	return launch(cfg, true, readOnly)
}

// launch is what init and exec share: the user, environment and working
// directory (created when mkdir, as Docker does for a container's), then
// the privilege drop in order and execve.
func launch(cfg *Config, mkdir, readOnly bool) *Failure {
	u, err := lookupUser(cfg.User, cfg.GroupAdd)
	if err != nil {
		return fail(125, "%v", err)
	}
	env := finalEnv(cfg.Env, u)
	cwd := cfg.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if !filepath.IsAbs(cwd) {
		return fail(125, "working directory %q is not absolute; write an absolute path", cwd)
	}
	if mkdir {
		if err := os.MkdirAll(cwd, 0o755); err != nil {
			return fail(125, "working directory %s: %v", cwd, err)
		}
	}
	if readOnly {
		if err := rootfs.RemountRootReadOnly(); err != nil {
			return fail(125, "%v", err)
		}
	}
	if len(cfg.Args) == 0 {
		return fail(125, "no command: the image has no CMD or ENTRYPOINT and none was given")
	}
	path, ferr := lookPath(cfg.Args[0], env)
	if ferr != nil {
		return ferr
	}
	var prog []unix.SockFilter
	if cfg.Seccomp != nil {
		var err error
		if prog, err = seccomp.Decode(cfg.Seccomp); err != nil {
			return fail(125, "init: seccomp: %v", err)
		}
	}
	// Without no_new_privs a non-root user could not load the filter after
	// the switch: load it while still privileged.
	if prog != nil && !cfg.NoNewPrivs {
		if err := seccomp.LoadAllThreads(prog); err != nil {
			return fail(125, "init: %v", err)
		}
	}
	// Credentials are per thread. When init execs the command, the other
	// threads of this Go program vanish at execve and only this (locked)
	// thread's count; the reaper lives on, so it changes every thread.
	all := cfg.Init
	if err := dropBounding(cfg.Caps, all); err != nil {
		return fail(125, "init: %v", err)
	}
	if err := switchUser(u, all); err != nil {
		return fail(125, "init: user %q: %v", cfg.User, err)
	}
	if err := applyCaps(cfg.Caps, all); err != nil {
		return fail(125, "init: %v", err)
	}
	if cfg.NoNewPrivs {
		if err := prctl(all, unix.PR_SET_NO_NEW_PRIVS, 1); err != nil {
			return fail(125, "init: no_new_privs: %v", err)
		}
	}
	// Nothing but 0-2 and the close-on-exec sync socket reaches the command
	// (CVE-2024-21626: no host directory fd may stay open for a cwd).
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fail(125, "init: close_range: %v", err)
	}
	if err := unix.Chdir(cwd); err != nil {
		return fail(126, "working directory %s: %v", cwd, err)
	}
	if err := CheckCwdInsideRoot(); err != nil {
		return fail(125, "working directory %s: %v", cwd, err)
	}
	if prog != nil && cfg.NoNewPrivs {
		if err := seccomp.LoadAllThreads(prog); err != nil {
			return fail(125, "init: %v", err)
		}
	}
	resetIgnoredSignals()
	if cfg.Init {
		return reap(path, cfg.Args, env)
	}
	err = unix.Exec(path, cfg.Args, env)
	return execFailure(cfg.Args[0], err)
}

// CheckCwdInsideRoot fails unless the kernel can name the cwd from the
// process's root: a directory outside it reads "(unreachable)…".
func CheckCwdInsideRoot() error {
	wd, err := unix.Getwd()
	if err != nil {
		return fmt.Errorf("cannot be resolved inside the container: %w", err)
	}
	if !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("is outside the container root (%s); refusing to start", wd)
	}
	return nil
}

func execFailure(name string, err error) *Failure {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fail(127, "exec: %q: no such file or directory", name)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.ENOEXEC):
		return fail(126, "exec: %q: permission denied", name)
	}
	return fail(126, "exec: %q: %v", name, err)
}

// lookPath finds the command as execvp would, with the container's PATH.
func lookPath(name string, env []string) (string, *Failure) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", execFailure(name, err)
		}
		return name, nil
	}
	pathVar := DefaultPath
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathVar = v
		}
	}
	denied := false
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		err := executable(p)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, unix.EACCES) {
			denied = true
		}
	}
	if denied {
		return "", fail(126, "exec: %q: permission denied", name)
	}
	return "", fail(127, "exec: %q: executable file not found in $PATH", name)
}

func executable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR || st.Mode&0o111 == 0 {
		return unix.EACCES
	}
	return nil
}

func lookupUser(spec string, groupAdd []string) (User, error) {
	var files []*os.File
	open := func(p string) io.Reader {
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		files = append(files, f)
		return f
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	return ResolveUser(spec, open("/etc/passwd"), open("/etc/group"), groupAdd)
}

// finalEnv adds PATH and HOME when missing, as Docker does.
func finalEnv(env []string, u User) []string {
	out := append([]string(nil), env...)
	has := func(k string) bool {
		for _, e := range out {
			if strings.HasPrefix(e, k+"=") {
				return true
			}
		}
		return false
	}
	if !has("PATH") {
		out = append(out, "PATH="+DefaultPath)
	}
	if !has("HOME") {
		home := u.Home
		if home == "" {
			home = "/"
		}
		out = append(out, "HOME="+home)
	}
	return out
}

// switchUser sets groups, gid and uid: on every thread for the reaper
// (Go's syscall package does that), else on this locked thread only, which
// is the one that execs (three stop-the-world rounds saved per start).
func switchUser(u User, all bool) error {
	if all {
		groups := make([]int, len(u.Groups))
		for i, g := range u.Groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
		if err := syscall.Setresgid(int(u.GID), int(u.GID), int(u.GID)); err != nil {
			return fmt.Errorf("setgid %d: %w", u.GID, err)
		}
		if err := syscall.Setresuid(int(u.UID), int(u.UID), int(u.UID)); err != nil {
			return fmt.Errorf("setuid %d: %w", u.UID, err)
		}
		return nil
	}
	groups := make([]uint32, len(u.Groups))
	copy(groups, u.Groups)
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	g := uintptr(u.GID)
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, g, g, g); e != 0 {
		return fmt.Errorf("setgid %d: %w", u.GID, e)
	}
	id := uintptr(u.UID)
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, id, id, id); e != 0 {
		return fmt.Errorf("setuid %d: %w", u.UID, e)
	}
	return nil
}

// prctl runs on the calling thread, or on every thread of the process
// when all (each all-threads call stops the world: one per capability is
// measurable, so it is kept for the long-lived reaper).
func prctl(all bool, option, arg uintptr) error {
	if !all {
		return unix.Prctl(int(option), arg, 0, 0, 0)
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, option, arg, 0); e != 0 {
		return e
	}
	return nil
}

func dropBounding(s caps.Set, all bool) error {
	last := caps.All()
	for c := 0; c < 64; c++ {
		if last&(1<<c) == 0 || s&(1<<c) != 0 {
			continue
		}
		if err := prctl(all, unix.PR_CAPBSET_DROP, uintptr(c)); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

func applyCaps(s caps.Set, all bool) error {
	if err := prctl(all, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	held := caps.Set(cur[0].Permitted) | caps.Set(cur[1].Permitted)<<32
	want := s & held // setuid to non-root already emptied permitted
	data := [2]unix.CapUserData{
		{Effective: uint32(want), Permitted: uint32(want)},
		{Effective: uint32(want >> 32), Permitted: uint32(want >> 32)},
	}
	hdr.Pid = 0
	if !all {
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("capset: %w", err)
		}
		return nil
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// reap is init: true. PID 1 stays this (sealed, non-dumpable) program:
// it starts the command, forwards signals to it, reaps every orphan and
// exits with the command's status, as tini does.
func reap(path string, args, env []string) *Failure {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fail(125, "init: %v", err)
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}})
	if err != nil {
		return execFailure(args[0], err)
	}
	// The command runs: the shim sees EOF on the sync socket now.
	unix.Close(SyncFD)
	go func() {
		for s := range sigs {
			sig := s.(syscall.Signal)
			if sig == syscall.SIGCHLD || sig == syscall.SIGURG {
				continue
			}
			unix.Kill(pid, sig)
		}
	}()
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			os.Exit(125)
		}
		if got != pid {
			continue
		}
		if ws.Signaled() {
			os.Exit(128 + int(ws.Signal()))
		}
		os.Exit(ws.ExitStatus())
	}
}
