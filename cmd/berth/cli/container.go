package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	units "github.com/docker/go-units"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/failpoint"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
	"berth.dev/berth/runtime/linux/initproc"
)

// exitError carries a container's exit code out of run/start/wait.
type exitError struct{ code int }

func (e exitError) Error() string { return "" }

// openRuntime opens the state root, the image store and the runtime.
func (g *globals) openRuntime() (*linux.Runtime, *local.Store, error) {
	root, err := state.Open(g.stateRoot())
	if err != nil {
		return nil, nil, err
	}
	store, err := local.Open(root)
	if err != nil {
		return nil, nil, err
	}
	rt := linux.New(root, store.Snapshots(), linux.Options{Binary: g.env["BERTH_SHIM_BINARY"]})
	store.InUse = func(ctx context.Context, id digest.Digest) ([]string, error) {
		infos, err := rt.List(ctx, runtime.Filter{})
		if err != nil {
			return nil, err
		}
		var users []string
		for _, in := range infos {
			c, err := rt.Find(in.ID)
			if err != nil {
				continue
			}
			if m, err := c.Meta(); err == nil && m.Spec.Image == id {
				users = append(users, in.Name)
			}
		}
		return users, nil
	}
	return rt, store, nil
}

func newContainerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "container COMMAND",
		Short: "Manage containers",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newRunCmd(g, true), newRunCmd(g, false), newStartCmd(g), newStopCmd(g), newKillCmd(g),
		newRmCmd(g), newPsCmd(g), newInspectCmd(g), newWaitCmd(g), newTopCmd(g), newRenameCmd(g))
	return cmd
}

type imageConfig = ocispec.ImageConfig

type specT = runtime.ContainerSpec

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
	name, workdir, user, hostname, domainname, entrypoint    string
	restart, memory, memorySwap, shmSize, stopSignal         string
	network, cpusetCpus, cpusetMems                          string
	cpus                                                     float64
	cpuShares, pidsLimit                                     int64
	stopTimeout                                              int
	oomScoreAdj                                              int
	env, envFiles, labels, capAdd, capDrop, securityOpt      []string
	ulimits, sysctls, tmpfs, groupAdd, volumes               []string
	setOOM                                                   bool
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
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open (runtime part 2)")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY (runtime part 2)")
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
	f.StringVar(&o.network, "network", "", "Network mode: none | host (default: a private network namespace with loopback only)")
	f.StringArrayVarP(&o.volumes, "volume", "v", nil, "Bind mount a volume (HOST:CONTAINER[:ro])")
	return cmd
}

// runContainer is run and create.
func (g *globals) runContainer(ctx context.Context, o *createOpts, ref string, cmdArgs []string, run bool) error {
	if o.interactive || o.tty {
		return errUsage("-i and -t need the shim's attach channel, which lands with the runtime's part 2; run without them or with -d")
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
	spec, warnings, err := o.spec(g, img.Config.Config, cmdArgs)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(g.stderr, "berth: warning:", w)
	}
	spec.Image = img.ID
	spec.ImageRef = ref
	spec.Rootfs.ChainID = chain
	spec.AutoRemove = o.rm && o.detach
	var c runtime.Container
	if run {
		c, err = rt.CreateTransient(ctx, spec)
	} else {
		c, err = rt.Create(ctx, spec)
	}
	if err != nil {
		return err
	}
	lc := c.(*linux.Container)
	if !run {
		fmt.Fprintln(g.stdout, c.ID())
		return nil
	}
	serr := c.Start(ctx)
	failpoint.Hit("run-started")
	if serr == nil || !o.rm {
		lc.MarkCreated()
	}
	if serr != nil {
		if o.rm {
			c.Remove(context.WithoutCancel(ctx), runtime.RemoveOptions{Force: true})
		}
		return startFailure(serr)
	}
	if o.detach {
		fmt.Fprintln(g.stdout, c.ID())
		return nil
	}
	aerr := c.Attach(ctx, runtime.Stdio{Stdout: g.stdout, Stderr: g.stderr})
	if aerr != nil && !errdefs.IsCanceled(aerr) {
		return aerr
	}
	ex, err := c.Wait(ctx)
	if err != nil {
		return err
	}
	if o.rm {
		if err := c.Remove(context.WithoutCancel(ctx), runtime.RemoveOptions{Force: true}); err != nil {
			fmt.Fprintln(g.stderr, "berth: warning:", err)
		}
	}
	if ex.Code != 0 {
		return exitError{ex.Code}
	}
	return nil
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
		Name:       o.name,
		Labels:     map[string]string{},
		Privileged: o.privileged,
		Init:       o.init,
		GroupAdd:   o.groupAdd,
		Log:        runtime.LogConfig{Driver: "json-file"},
	}
	for k, v := range ic.Labels {
		s.Labels[k] = v
	}
	for _, l := range o.labels {
		k, v, _ := strings.Cut(l, "=")
		s.Labels[k] = v
	}
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
	if err := linux.ApplySecurity(oci, sec); err != nil {
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
	for _, t := range o.tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		m := specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: dst, Options: []string{"nosuid", "nodev", "noexec"}}
		if opts != "" {
			m.Options = append(m.Options, strings.Split(opts, ",")...)
		}
		oci.Mounts = append(oci.Mounts, m)
	}
	for _, v := range o.volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], "/") {
			return s, nil, errUsage("-v %q: this runtime takes binds as /HOST/PATH:/CONTAINER/PATH[:ro] (named volumes come with the volumes issue)", v)
		}
		m := specs.Mount{Type: "bind", Source: parts[0], Destination: parts[1], Options: []string{"rbind"}}
		if len(parts) > 2 && parts[2] == "ro" {
			m.Options = append(m.Options, "ro")
		}
		oci.Mounts = append(oci.Mounts, m)
	}
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
	s.OCI = oci
	if o.shmSize != "" {
		n, err := units.RAMInBytes(o.shmSize)
		if err != nil || n <= 0 {
			return s, nil, errUsage("--shm-size %q: give a size such as 64m", o.shmSize)
		}
		s.ShmSize = n
	}
	s.Rootfs.ReadOnly = o.readOnly
	switch o.network {
	case "", "none", "default", "bridge":
		s.NetNS = "private"
	case "host":
		s.NetNS = "host"
	default:
		return s, nil, errUsage("--network %q: this runtime has none, host and the default private loopback namespace; bridge networks come with the networking issue", o.network)
	}
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

func newStartCmd(g *globals) *cobra.Command {
	var attach bool
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, _, err := g.openRuntime()
			if err != nil {
				return err
			}
			if attach && len(args) > 1 {
				return errUsage("you cannot start and attach multiple containers at once")
			}
			var errs []error
			for _, ref := range args {
				c, err := rt.Find(ref)
				if err == nil {
					err = c.Start(ctx)
				}
				if err != nil {
					if attach {
						return startFailure(err)
					}
					errs = append(errs, err)
					continue
				}
				if !attach {
					fmt.Fprintln(g.stdout, ref)
					continue
				}
				if err := c.Attach(ctx, runtime.Stdio{Stdout: g.stdout, Stderr: g.stderr}); err != nil && !errdefs.IsCanceled(err) {
					return err
				}
				ex, err := c.Wait(ctx)
				if err != nil {
					return err
				}
				if ex.Code != 0 {
					return exitError{ex.Code}
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR")
	return cmd
}

// eachContainer runs fn on every named container, printing the name of
// each that succeeded and joining the errors.
func (g *globals) eachContainer(args []string, fn func(c *linux.Container) error) error {
	rt, _, err := g.openRuntime()
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range args {
		c, err := rt.Find(ref)
		if err == nil {
			err = fn(c)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(g.stdout, ref)
	}
	return errors.Join(errs...)
}

func newStopCmd(g *globals) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop one or more running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d := time.Duration(-1)
			if cmd.Flags().Changed("timeout") || cmd.Flags().Changed("time") {
				d = time.Duration(timeout) * time.Second
			}
			return g.eachContainer(args, func(c *linux.Container) error { return c.Stop(cmd.Context(), d) })
		},
	}
	cmd.Flags().IntVarP(&timeout, "timeout", "t", 10, "Seconds to wait before killing the container")
	cmd.Flags().IntVar(&timeout, "time", 10, "Seconds to wait before killing the container (deprecated: use --timeout)")
	cmd.Flags().MarkHidden("time")
	return cmd
}

func newKillCmd(g *globals) *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseSignal(sig)
			if err != nil {
				return usageError{err}
			}
			return g.eachContainer(args, func(c *linux.Container) error { return c.Kill(cmd.Context(), n) })
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "Signal to send to the container")
	return cmd
}

func newRmCmd(g *globals) *cobra.Command {
	var force, volumes bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more containers",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.eachContainer(args, func(c *linux.Container) error {
				return c.Remove(cmd.Context(), runtime.RemoveOptions{Force: force, RemoveVolumes: volumes})
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	return cmd
}

func newRenameCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, _, err := g.openRuntime()
			if err != nil {
				return err
			}
			c, err := rt.Find(args[0])
			if err != nil {
				return err
			}
			return c.Rename(cmd.Context(), args[1])
		},
	}
}

func newWaitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, _, err := g.openRuntime()
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				c, err := rt.Find(ref)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				ex, err := c.Wait(cmd.Context())
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(g.stdout, ex.Code)
			}
			return errors.Join(errs...)
		},
	}
}

func newPsCmd(g *globals) *cobra.Command {
	var all, quiet, noTrunc bool
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"ps", "list"},
		Short:   "List containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, store, err := g.openRuntime()
			if err != nil {
				return err
			}
			f := runtime.Filter{Labels: map[string]string{}}
			var status, names []string
			for _, fl := range filters {
				k, v, _ := strings.Cut(fl, "=")
				switch k {
				case "label":
					lk, lv, _ := strings.Cut(v, "=")
					f.Labels[lk] = lv
				case "status":
					status = append(status, v)
				case "name":
					names = append(names, v)
				default:
					return errUsage("--filter %q: berth filters by label=K[=V], status=S and name=N", fl)
				}
			}
			infos, err := rt.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			var rows []psRow
			for _, in := range infos {
				if !all && len(status) == 0 && in.Status != runtime.StatusRunning {
					continue
				}
				if len(status) > 0 && !contains(status, in.Status.String()) {
					continue
				}
				if len(names) > 0 && !anySubstring(names, in.Name) {
					continue
				}
				rows = append(rows, g.psRow(rt, store, in))
			}
			switch {
			case quiet:
				for _, r := range rows {
					id := r.ID
					if !noTrunc {
						id = id[:12]
					}
					fmt.Fprintln(g.stdout, id)
				}
				return nil
			case format == "json":
				enc := json.NewEncoder(g.stdout)
				for _, r := range rows {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			case format != "" && format != "table":
				return errUsage("--format %q: use table or json", format)
			}
			t := display.NewTable("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")
			for _, r := range rows {
				id, command := r.ID[:12], r.Command
				if noTrunc {
					id = r.ID
				} else if len(command) > 20 {
					command = command[:19] + "…"
				}
				t.Row(id, r.Image, strconv.Quote(command), r.RunningFor, r.Status, r.Ports, r.Names)
			}
			return t.Write(g.stdout)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display container IDs")
	f.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	f.StringArrayVar(&filters, "filter", nil, "Filter output based on conditions provided")
	f.StringVar(&format, "format", "table", "Format output: table or json")
	return cmd
}

// psRow is one line of ps, with docker's JSON field names.
type psRow struct {
	ID         string `json:"ID"`
	Image      string `json:"Image"`
	Command    string `json:"Command"`
	CreatedAt  string `json:"CreatedAt"`
	RunningFor string `json:"RunningFor"`
	State      string `json:"State"`
	Status     string `json:"Status"`
	ExitCode   int    `json:"ExitCode"`
	Pid        int    `json:"Pid"`
	Ports      string `json:"Ports"`
	Names      string `json:"Names"`
	Labels     string `json:"Labels"`
}

func (g *globals) psRow(rt *linux.Runtime, store *local.Store, in runtime.Info) psRow {
	r := psRow{ID: in.ID, Names: in.Name, State: in.Status.String(), Pid: in.Pid,
		CreatedAt: in.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"), RunningFor: units.HumanDuration(time.Since(in.Created)) + " ago"}
	if c, err := rt.Find(in.ID); err == nil {
		if m, err := c.Meta(); err == nil {
			r.Image = m.Spec.ImageRef
			if r.Image == "" {
				r.Image = imageName(store, m.Spec.Image)
			}
			if m.Spec.OCI != nil && m.Spec.OCI.Process != nil {
				r.Command = strings.Join(m.Spec.OCI.Process.Args, " ")
			}
		}
	}
	var labels []string
	for k, v := range in.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	r.Labels = strings.Join(labels, ",")
	if in.Exit != nil {
		r.ExitCode = in.Exit.Code
	}
	r.Status = statusText(in)
	return r
}

func statusText(in runtime.Info) string {
	switch in.Status {
	case runtime.StatusRunning:
		return "Up " + units.HumanDuration(time.Since(in.StartedAt))
	case runtime.StatusExited:
		if in.Exit != nil {
			return fmt.Sprintf("Exited (%d) %s ago", in.Exit.Code, units.HumanDuration(time.Since(in.Exit.ExitedAt)))
		}
		return "Exited"
	}
	return "Created"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func anySubstring(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

func newInspectCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Display detailed information on one or more containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, store, err := g.openRuntime()
			if err != nil {
				return err
			}
			var tmpl *template.Template
			if format != "" {
				if tmpl, err = template.New("format").Funcs(template.FuncMap{"json": toJSON}).Parse(format); err != nil {
					return errUsage("--format: %v", err)
				}
			}
			var out []any
			var errs []error
			for _, ref := range args {
				c, err := rt.Find(ref)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				v, err := inspectDoc(cmd.Context(), c, store)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if tmpl != nil {
					if err := tmpl.Execute(g.stdout, v); err != nil {
						return errUsage("--format: %v", err)
					}
					fmt.Fprintln(g.stdout)
					continue
				}
				out = append(out, v)
			}
			if tmpl == nil {
				if out == nil {
					out = []any{}
				}
				b, _ := json.MarshalIndent(out, "", "    ")
				fmt.Fprintln(g.stdout, string(b))
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	return cmd
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// inspectDoc is docker inspect's document (the fields berth has), as a
// generic map so --format templates index it like docker's.
func inspectDoc(ctx context.Context, c *linux.Container, store *local.Store) (map[string]any, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	m, err := c.Meta()
	if err != nil {
		return nil, err
	}
	s := m.Spec
	p := s.OCI.Process
	st := map[string]any{
		"Status": info.Status.String(), "Running": info.Status == runtime.StatusRunning, "Paused": false,
		"Restarting": false, "OOMKilled": false, "Dead": false, "Pid": info.Pid, "ExitCode": 0,
		"Error": info.Error, "StartedAt": zeroTime(info.StartedAt), "FinishedAt": "0001-01-01T00:00:00Z",
	}
	if info.Exit != nil {
		st["ExitCode"] = info.Exit.Code
		st["OOMKilled"] = info.Exit.OOMKill
		st["FinishedAt"] = zeroTime(info.Exit.ExitedAt)
	}
	hc := map[string]any{"Privileged": s.Privileged, "ReadonlyRootfs": s.Rootfs.ReadOnly, "Init": s.Init,
		"AutoRemove": s.AutoRemove, "RestartPolicy": map[string]any{"Name": s.Restart.Name, "MaximumRetryCount": s.Restart.MaxRetries},
		"ShmSize": s.ShmSize, "NetworkMode": string(s.NetNS), "GroupAdd": s.GroupAdd}
	if p.Capabilities != nil {
		hc["CapEff"] = p.Capabilities.Bounding
	}
	if r := s.OCI.Linux.Resources; r != nil {
		if r.Memory != nil && r.Memory.Limit != nil {
			hc["Memory"] = *r.Memory.Limit
		}
		if r.Pids != nil && r.Pids.Limit != nil {
			hc["PidsLimit"] = *r.Pids.Limit
		}
		if r.CPU != nil && r.CPU.Quota != nil {
			hc["NanoCpus"] = *r.CPU.Quota * 10000
		}
	}
	args := []string{}
	if len(p.Args) > 1 {
		args = p.Args[1:]
	}
	labels := s.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return map[string]any{
		"Id": m.ID, "Created": m.Created.Format(time.RFC3339Nano), "Path": p.Args[0], "Args": args,
		"State": st, "Image": s.Image.String(), "Name": "/" + m.Name, "RestartCount": info.Restarts,
		"HostConfig": hc,
		"Config": map[string]any{"Hostname": s.OCI.Hostname, "Domainname": s.OCI.Domainname, "User": p.User.Username,
			"Env": p.Env, "Cmd": p.Args, "Image": imageRefOr(m, store), "WorkingDir": p.Cwd, "Labels": labels,
			"StopSignal": signalName(s.StopSignal), "StopTimeout": int(s.StopTimeout / time.Second)},
	}, nil
}

func zeroTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func signalName(s unix.Signal) string {
	if s == 0 {
		s = unix.SIGTERM
	}
	return unix.SignalName(s)
}

func imageRefOr(m *linux.Meta, store *local.Store) string {
	if m.Spec.ImageRef != "" {
		return m.Spec.ImageRef
	}
	return imageName(store, m.Spec.Image)
}

func newTopCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "top CONTAINER",
		Short: "Display the running processes of a container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, _, err := g.openRuntime()
			if err != nil {
				return err
			}
			c, err := rt.Find(args[0])
			if err != nil {
				return err
			}
			procs, err := c.Top(cmd.Context())
			if err != nil {
				return err
			}
			t := display.NewTable("UID", "PID", "PPID", "STAT", "TIME", "CMD")
			for _, p := range procs {
				t.Row(strconv.Itoa(p.UID), strconv.Itoa(p.Pid), strconv.Itoa(p.PPid), p.State, p.Time, p.Cmd)
			}
			return t.Write(g.stdout)
		},
	}
}
