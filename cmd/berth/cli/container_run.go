package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/failpoint"
	"berth.dev/berth/network/bridge"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
	"berth.dev/berth/runtime/linux/initproc"
	"berth.dev/berth/runtime/linux/logfile"
)

type imageConfig = ocispec.ImageConfig

// imageName is a reference of the image id, or its short ID.
func imageName(store *local.Store, id digest.Digest) string {
	if img, err := store.Get(context.Background(), id.String()); err == nil && len(img.Refs) > 0 {
		return local.FamiliarRef(img.Refs[0])
	}
	if len(id.Encoded()) >= 12 {
		return id.Encoded()[:12]
	}
	return id.String()
}

// createOpts are the flags of run and create.
type createOpts struct {
	detach, rm, readOnly, privileged, init, interactive, tty bool
	sigProxy                                                 bool
	detachKeys                                               string
	name, workdir, user, hostname, domainname, entrypoint    string
	restart, memory, memorySwap, shmSize, stopSignal         string
	cpusetCpus, cpusetMems                                   string
	cpus                                                     float64
	cpuShares, pidsLimit                                     int64
	stopTimeout                                              int
	oomScoreAdj                                              int
	env, envFiles, labels, capAdd, capDrop, securityOpt      []string
	ulimits, sysctls, tmpfs, groupAdd, volumes               []string
	mounts, volumesFrom                                      []string
	setOOM                                                   bool
	health                                                   healthFlags
	logDriver                                                string
	logOpts                                                  []string
	net                                                      netOpts

	// anonVolumes are the anonymous volumes spec made: removed again
	// when the run leaves no container.
	anonVolumes []string
}

func newRunCmd(g *globals, run bool) *cobra.Command {
	o := &createOpts{}
	use, short := "create [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container"
	if run {
		use, short = "run [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.setOOM = cmd.Flags().Changed("oom-score-adj")
			if o.stopTimeout < 0 && !cmd.Flags().Changed("stop-timeout") {
				o.stopTimeout = -1
			}
			return g.runContainer(cmd.Context(), o, args[0], args[1:], run)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	if run {
		f.BoolVarP(&o.detach, "detach", "d", false, "Run container in background and print container ID")
		f.BoolVar(&o.rm, "rm", false, "Automatically remove the container when it exits")
	}
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY (from the container's own devpts)")
	f.StringVar(&o.detachKeys, "detach-keys", "ctrl-p,ctrl-q", "Key sequence for detaching a container")
	f.BoolVar(&o.sigProxy, "sig-proxy", true, "Proxy received signals to the process (non-TTY mode only)")
	f.StringVar(&o.name, "name", "", "Assign a name to the container")
	f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "Read in a file of environment variables")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	f.StringVar(&o.hostname, "hostname", "", "Container host name (default: the short ID)")
	f.StringVar(&o.domainname, "domainname", "", "Container NIS domain name")
	f.StringVar(&o.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	f.StringVar(&o.restart, "restart", "no", "Restart policy to apply when a container exits")
	f.StringVarP(&o.memory, "memory", "m", "", "Memory limit")
	f.StringVar(&o.memorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: -1 for unlimited")
	f.Float64Var(&o.cpus, "cpus", 0, "Number of CPUs")
	f.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	f.StringVar(&o.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	f.Int64Var(&o.pidsLimit, "pids-limit", 0, "Tune container pids limit (-1 for unlimited)")
	f.BoolVar(&o.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	f.StringArrayVar(&o.capAdd, "cap-add", nil, "Add Linux capabilities")
	f.StringArrayVar(&o.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	f.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to this container")
	f.BoolVar(&o.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	f.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop the container")
	f.IntVar(&o.stopTimeout, "stop-timeout", -1, "Timeout (in seconds) to stop a container")
	f.StringArrayVarP(&o.labels, "label", "l", nil, "Set meta data on a container")
	f.StringArrayVar(&o.securityOpt, "security-opt", nil, "Security options (seccomp=unconfined, no-new-privileges:false)")
	f.StringArrayVar(&o.ulimits, "ulimit", nil, "Ulimit options (nofile=1024:2048)")
	f.StringArrayVar(&o.sysctls, "sysctl", nil, "Sysctl options (namespaced ones only)")
	f.StringArrayVar(&o.tmpfs, "tmpfs", nil, "Mount a tmpfs directory (/run:size=64m,mode=1777)")
	f.StringVar(&o.shmSize, "shm-size", "", "Size of /dev/shm")
	f.IntVar(&o.oomScoreAdj, "oom-score-adj", 0, "Tune host's OOM preferences (-1000 to 1000)")
	f.StringArrayVar(&o.groupAdd, "group-add", nil, "Add additional groups to join")
	o.net.register(f)
	f.StringArrayVarP(&o.volumes, "volume", "v", nil, "Bind mount a volume (/HOST:/CONTAINER[:ro], NAME:/CONTAINER[:ro][,nocopy], or /CONTAINER for an anonymous volume)")
	f.StringArrayVar(&o.mounts, "mount", nil, "Attach a filesystem mount (type=bind|volume|tmpfs,source=,target=,readonly,volume-nocopy,tmpfs-size=,tmpfs-mode=)")
	f.StringArrayVar(&o.volumesFrom, "volumes-from", nil, "Mount volumes from the specified container (CONTAINER[:ro|rw])")
	f.StringVar(&o.logDriver, "log-driver", "json-file", "Logging driver for the container: json-file or none")
	f.StringArrayVar(&o.logOpts, "log-opt", nil, "Log driver options (max-size=10m, max-file=3: the defaults)")
	o.health.register(f)
	return cmd
}

// runContainer is run and create.
func (g *globals) runContainer(ctx context.Context, o *createOpts, ref string, cmdArgs []string, run bool) error {
	if run {
		lazyGC()
	}
	rt, store, err := g.openRuntime()
	if err != nil {
		return err
	}
	if run {
		rt.Prewarm()
	}
	img, err := store.Get(ctx, ref)
	if err != nil {
		return fmt.Errorf("image %s: %w (import or load it first: berth image import FILE %s)", ref, err, ref)
	}
	chain, err := store.Unpack(ctx, img)
	if err != nil {
		return err
	}
	created := false // the container exists: its anonymous volumes are its own
	defer func() {
		if !created {
			g.removeAnonymous(context.WithoutCancel(ctx), nil, o.anonVolumes...)
		}
	}()
	spec, warnings, err := o.spec(g, img.Config.Config, cmdArgs)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(g.stderr, "berth: warning:", w)
	}
	var imageHC *runtime.HealthCheck
	if rc, err := store.Content().Open(ctx, img.ID); err == nil {
		raw, _ := io.ReadAll(io.LimitReader(rc, 4<<20))
		rc.Close()
		imageHC = imageHealthcheck(raw)
	}
	if spec.Health, err = o.health.check(imageHC); err != nil {
		return usageError{err}
	}
	spec.Image = img.ID
	spec.ImageRef = ref
	spec.Rootfs.ChainID = chain
	// Attached, the CLI removes it (with its anonymous volumes) once it
	// has the exit; the shim does when nobody waits (-d, or a later start).
	spec.AutoRemove = o.rm
	spec.OpenStdin = o.interactive
	spec.StdinOnce = o.interactive && !o.detach
	spec.OCI.Process.Terminal = o.tty
	if in, ok := g.stdin.(*os.File); ok && o.tty && isTerminal(in) {
		if ws, err := unix.IoctlGetWinsize(int(in.Fd()), unix.TIOCGWINSZ); err == nil {
			spec.ConsoleSize = &runtime.Winsize{Rows: ws.Row, Cols: ws.Col}
		}
	}
	var nm *bridge.Manager
	var hosts []runtime.HostEntry
	if len(spec.Networks) > 0 {
		if nm, err = g.openNetworks(); err != nil {
			return err
		}
		for _, na := range spec.Networks {
			if na.Network == DefaultNetwork {
				if err := ensureDefaultNetwork(ctx, nm); err != nil {
					return err
				}
			} else if _, err := nm.Inspect(ctx, na.Network); err != nil {
				return err
			}
		}
		if spec.Name == "" {
			spec.Name = rt.FreeName()
		}
		var env []string
		if env, hosts, err = g.linkTargets(ctx, rt, spec, o.net.links); err != nil {
			return err
		}
		spec.OCI.Process.Env = append(spec.OCI.Process.Env, env...)
	} else if len(o.net.links) > 0 {
		return errUsage("--link needs a bridge network (not --network %s)", spec.NetNS)
	}
	var c runtime.Container
	if run {
		c, err = rt.CreateTransient(ctx, spec)
	} else {
		c, err = rt.Create(ctx, spec)
	}
	if err != nil {
		return err
	}
	created = true
	lc := c.(*linux.Container)
	// cleanup removes what a failed run made: the container and its
	// endpoints (a port in use leaves nothing, not even a created record).
	cleanup := func() {
		ctx := context.WithoutCancel(ctx)
		c.Remove(ctx, runtime.RemoveOptions{Force: true})
		if nm != nil {
			disconnect(ctx, nm, spec.Name, spec)
		}
		g.removeAnonymous(ctx, nil, o.anonVolumes...)
	}
	if nm != nil {
		if err := connect(ctx, nm, c, spec, hosts); err != nil {
			cleanup()
			return err
		}
	}
	if !run {
		fmt.Fprintln(g.stdout, c.ID())
		return nil
	}
	var serr error
	if o.detach {
		serr = c.Start(ctx)
	} else {
		serr = lc.StartAttach(ctx)
	}
	failpoint.Hit("run-started")
	var se *runtime.StartError
	portInUse := errors.As(serr, &se) && se.PortInUse
	if serr == nil || (!o.rm && !portInUse) {
		lc.MarkCreated()
	}
	if serr != nil {
		if o.rm || portInUse {
			cleanup()
		}
		return startFailure(serr)
	}
	if o.detach {
		fmt.Fprintln(g.stdout, c.ID())
		return nil
	}
	// Attached: ^C goes to the container (--sig-proxy), not to us.
	ctx = context.WithoutCancel(ctx)
	err = g.attachAndWait(ctx, lc, o.interactive, o.tty, o.sigProxy, o.detachKeys, true)
	var ee exitError
	if o.rm && (err == nil || errors.As(err, &ee)) { // not when detached: it runs on
		if info, ierr := c.Info(ctx); ierr == nil && info.Status != runtime.StatusRunning {
			if rerr := g.removeWithVolumes(ctx, lc, runtime.RemoveOptions{Force: true, RemoveVolumes: true}); rerr != nil {
				fmt.Fprintln(g.stderr, "berth: warning:", rerr)
			}
		}
	}
	return err
}

// startFailure turns a start error into Docker's exit code and message.
func startFailure(err error) error {
	var se *runtime.StartError
	if errors.As(err, &se) {
		return codedError{code: se.Code, err: err}
	}
	return codedError{code: 125, err: err}
}

// codedError is an error with an exit code of its own.
type codedError struct {
	code int
	err  error
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

// spec builds the container spec from the flags and the image config.
func (o *createOpts) spec(g *globals, ic imageConfig, cmdArgs []string) (runtime.ContainerSpec, []string, error) {
	var warnings []string
	s := runtime.ContainerSpec{
		Name:     o.name,
		Labels:   map[string]string{},
		Init:     o.init,
		GroupAdd: o.groupAdd,
		Log:      runtime.LogConfig{Driver: "json-file"},
	}
	for k, v := range ic.Labels {
		s.Labels[k] = v
	}
	for _, l := range o.labels {
		k, v, _ := strings.Cut(l, "=")
		s.Labels[k] = v
	}
	lc, err := logConfig(o.logDriver, o.logOpts)
	if err != nil {
		return s, nil, err
	}
	s.Log = lc
	entry, cmdv := ic.Entrypoint, ic.Cmd
	if o.entrypoint != "" {
		entry, cmdv = []string{o.entrypoint}, nil
	}
	if len(cmdArgs) > 0 {
		cmdv = cmdArgs
	}
	args := append(append([]string(nil), entry...), cmdv...)
	if len(args) == 0 {
		return s, nil, errUsage("no command specified: the image has no CMD or ENTRYPOINT; give one after the image name")
	}
	env, err := mergeEnv(ic.Env, o.envFiles, o.env, g.env)
	if err != nil {
		return s, nil, err
	}
	p := &specs.Process{Args: args, Env: env, Cwd: ic.WorkingDir, User: specs.User{Username: ic.User}}
	if o.workdir != "" {
		p.Cwd = o.workdir
	}
	if o.user != "" {
		p.User.Username = o.user
	}
	if o.setOOM {
		if o.oomScoreAdj < -1000 || o.oomScoreAdj > 1000 {
			return s, nil, errUsage("--oom-score-adj %d: must be between -1000 and 1000", o.oomScoreAdj)
		}
		v := o.oomScoreAdj
		p.OOMScoreAdj = &v
	}
	var rls []initproc.Rlimit
	for _, u := range o.ulimits {
		rl, err := initproc.ParseUlimit(u)
		if err != nil {
			return s, nil, usageError{fmt.Errorf("--ulimit: %w", err)}
		}
		rls = append(rls, rl)
	}
	rls, warn, err := initproc.ClampRlimits(rls)
	if err != nil {
		return s, nil, usageError{fmt.Errorf("--ulimit: %w", err)}
	}
	warnings = append(warnings, warn...)
	for _, rl := range rls {
		p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: rl.Name, Soft: rl.Soft, Hard: rl.Hard})
	}
	oci := &specs.Spec{Version: specs.Version, Process: p, Hostname: o.hostname, Domainname: o.domainname, Linux: &specs.Linux{}}
	sec := linux.Security{Privileged: o.privileged, CapAdd: o.capAdd, CapDrop: o.capDrop}
	for _, so := range o.securityOpt {
		switch strings.ReplaceAll(so, ":", "=") {
		case "seccomp=unconfined":
			sec.SeccompUnconfined = true
		case "no-new-privileges=false":
			sec.NoNewPrivsDisabled = true
		case "no-new-privileges", "no-new-privileges=true":
		default:
			return s, nil, errUsage("--security-opt %q: berth knows seccomp=unconfined and no-new-privileges[:true|false]", so)
		}
	}
	s.OCI = oci
	if err := linux.ApplySecurity(&s, sec); err != nil {
		return s, nil, usageError{err}
	}
	if len(o.sysctls) > 0 {
		oci.Linux.Sysctl = map[string]string{}
		for _, kv := range o.sysctls {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return s, nil, errUsage("--sysctl %q: write KEY=VALUE", kv)
			}
			oci.Linux.Sysctl[k] = v
		}
	}
	ms, err := g.runMounts(o, ic.Volumes)
	if err != nil {
		return s, nil, err
	}
	oci.Mounts = append(oci.Mounts, ms...)
	res := &specs.LinuxResources{}
	if o.memory != "" {
		n, err := units.RAMInBytes(o.memory)
		if err != nil {
			return s, nil, errUsage("--memory %q: %v", o.memory, err)
		}
		res.Memory = &specs.LinuxMemory{Limit: &n}
	}
	if o.memorySwap != "" {
		n := int64(-1)
		if o.memorySwap != "-1" {
			if n, err = units.RAMInBytes(o.memorySwap); err != nil {
				return s, nil, errUsage("--memory-swap %q: %v", o.memorySwap, err)
			}
		}
		if res.Memory == nil {
			return s, nil, errUsage("--memory-swap needs --memory")
		}
		res.Memory.Swap = &n
	}
	if o.cpus > 0 || o.cpuShares > 0 || o.cpusetCpus != "" || o.cpusetMems != "" {
		res.CPU = &specs.LinuxCPU{Cpus: o.cpusetCpus, Mems: o.cpusetMems}
		if o.cpus > 0 {
			period, quota := uint64(100000), int64(o.cpus*100000)
			res.CPU.Period, res.CPU.Quota = &period, &quota
		}
		if o.cpuShares > 0 {
			sh := uint64(o.cpuShares)
			res.CPU.Shares = &sh
		}
	}
	if o.pidsLimit != 0 {
		n := o.pidsLimit
		res.Pids = &specs.LinuxPids{Limit: &n}
	}
	oci.Linux.Resources = res
	if err := validateResources(s, oci); err != nil {
		return s, nil, err
	}
	if o.shmSize != "" {
		n, err := units.RAMInBytes(o.shmSize)
		if err != nil || n <= 0 {
			return s, nil, errUsage("--shm-size %q: give a size such as 64m", o.shmSize)
		}
		s.ShmSize = n
	}
	s.Rootfs.ReadOnly = o.readOnly
	nw, err := o.net.apply(&s, ic)
	if err != nil {
		return s, nil, err
	}
	warnings = append(warnings, nw...)
	sig, from := ic.StopSignal, "the image's STOPSIGNAL"
	if o.stopSignal != "" {
		sig, from = o.stopSignal, "--stop-signal"
	}
	if sig != "" {
		n, err := parseSignal(sig)
		if err != nil {
			return s, nil, usageError{fmt.Errorf("%s: %w", from, err)}
		}
		s.StopSignal = n
	}
	if o.stopTimeout >= 0 {
		s.StopTimeout = time.Duration(o.stopTimeout) * time.Second
	}
	rp, err := parseRestart(o.restart)
	if err != nil {
		return s, nil, err
	}
	s.Restart = rp
	return s, warnings, nil
}

func validateResources(s runtime.ContainerSpec, oci *specs.Spec) error {
	r := oci.Linux.Resources
	if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit < 6<<20 {
		return errUsage("--memory: minimum memory limit allowed is 6MB")
	}
	return nil
}

// mergeEnv is the image's env, then env files, then -e (a bare NAME takes
// the caller's value, or is dropped when unset).
func mergeEnv(base, files, flags []string, host map[string]string) ([]string, error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	add := func(kv string) {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" {
			return
		}
		if !ok {
			hv, found := host[k]
			if !found {
				return
			}
			v = hv
		}
		set(k, v)
	}
	for _, kv := range base {
		add(kv)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, errdefs.NotFoundf("--env-file %s: %w", f, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			add(line)
		}
	}
	for _, kv := range flags {
		add(kv)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if n := unix.SignalNum(name); n != 0 {
		return n, nil
	}
	return 0, errdefs.Invalidf("invalid signal %q: write a name like SIGTERM or a number", s)
}

func parseRestart(s string) (runtime.RestartPolicy, error) {
	name, n, _ := strings.Cut(s, ":")
	p := runtime.RestartPolicy{Name: name}
	switch name {
	case "", "no":
		p.Name = "no"
	case "always", "unless-stopped":
	case "on-failure":
		if n != "" {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				return p, errUsage("--restart %q: the retry count must be a number", s)
			}
			p.MaxRetries = v
		}
	default:
		return p, errUsage("--restart %q: use no, always, unless-stopped or on-failure[:N]", s)
	}
	if n != "" && name != "on-failure" {
		return p, errUsage("--restart %q: only on-failure takes a retry count", s)
	}
	return p, nil
}

// logConfig is --log-driver and --log-opt.
func logConfig(driver string, opts []string) (runtime.LogConfig, error) {
	switch driver {
	case "", "json-file":
		lo, err := logfile.ParseOpts(opts)
		if err != nil {
			return runtime.LogConfig{}, usageError{fmt.Errorf("--log-opt %w", err)}
		}
		return runtime.LogConfig{Driver: "json-file", MaxSize: lo.MaxSize, MaxFile: lo.MaxFiles}, nil
	case "none":
		if len(opts) > 0 {
			return runtime.LogConfig{}, errUsage("--log-opt: the none logging driver takes no options")
		}
		return runtime.LogConfig{Driver: "none"}, nil
	}
	return runtime.LogConfig{}, errUsage("--log-driver %q: berth has json-file (the default) and none", driver)
}
