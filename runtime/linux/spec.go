package linux

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux/caps"
	"berth.dev/berth/runtime/linux/cgroups"
	"berth.dev/berth/runtime/linux/initproc"
	"berth.dev/berth/runtime/linux/rootfs"
	"berth.dev/berth/runtime/linux/seccomp"
)

// Security are the knobs that change a container's default privileges
// (SECURITY.md §2).
type Security struct {
	Privileged         bool
	CapAdd, CapDrop    []string
	SeccompUnconfined  bool
	NoNewPrivsDisabled bool // security_opt no-new-privileges:false
}

// ApplySecurity fills s with berth's defaults as changed by sec: Docker's
// 14 capabilities (all when privileged), its default seccomp profile
// unless unconfined or privileged, no_new_privs on unless opted out. The
// profile itself is resolved at start (it depends only on the
// capabilities), so records stay small.
func ApplySecurity(s *runtime.ContainerSpec, sec Security) error {
	set, err := caps.Resolve(sec.CapAdd, sec.CapDrop, sec.Privileged)
	if err != nil {
		return err
	}
	names := set.Names()
	p := s.OCI.Process
	p.Capabilities = &specs.LinuxCapabilities{Bounding: names, Permitted: names, Effective: names}
	p.NoNewPrivileges = !sec.NoNewPrivsDisabled
	s.Privileged = sec.Privileged
	s.Seccomp = ""
	if sec.Privileged || sec.SeccompUnconfined {
		s.Seccomp = "unconfined"
	}
	return nil
}

// seccompFilter is the compiled filter a container starts with, nil for
// none.
func seccompFilter(s runtime.ContainerSpec) ([]byte, error) {
	prof := s.OCI.Linux.Seccomp
	if prof == nil {
		if s.Seccomp == "unconfined" || s.Privileged {
			return nil, nil
		}
		var names []string
		if c := s.OCI.Process.Capabilities; c != nil {
			names = c.Bounding
		}
		var err error
		if prof, err = seccomp.Default(names); err != nil {
			return nil, fmt.Errorf("seccomp default profile: %w", err)
		}
	}
	prog, err := seccomp.Compile(prof)
	if err != nil {
		return nil, err
	}
	return seccomp.Encode(prog), nil
}

// ShimConfig is config.json: what the shim needs to start the container,
// resolved by Start from the record and the image snapshot.
type ShimConfig struct {
	Name       string            `json:"name"`
	Init       initproc.Config   `json:"init"`
	Cloneflags uintptr           `json:"cloneflags"`
	Resources  cgroups.Resources `json:"resources"`
	CgroupPath [2]string         `json:"cgroup"` // parent, id
	AutoRemove bool              `json:"auto_remove,omitempty"`
	Tty        bool              `json:"tty,omitempty"`
	OpenStdin  bool              `json:"open_stdin,omitempty"`
	StdinOnce  bool              `json:"stdin_once,omitempty"`
	// AwaitAttach: the starter attaches next; the shim waits for it (a
	// few seconds at most) before it ends, so no output is lost.
	AwaitAttach bool                  `json:"await_attach,omitempty"`
	Health      *runtime.HealthCheck  `json:"health,omitempty"`
	Log         runtime.LogConfig     `json:"log"`
	Restart     runtime.RestartPolicy `json:"restart"`
	// NetNS is the network namespace init is cloned into ("" with
	// Cloneflags' CLONE_NEWNET, or the host's).
	NetNS string `json:"netns,omitempty"`
	// DNS is the embedded resolver the shim serves on 127.0.0.11 in the
	// container's namespace, with a bridge network.
	DNS *ShimDNS `json:"dns,omitempty"`
	// Ports are published by the shim's proxy, in the host's namespace.
	Ports []ShimPort `json:"ports,omitempty"`
}

// ShimDNS configures the embedded resolver.
type ShimDNS struct {
	Zones     []string `json:"zones"`     // records files of the container's networks
	Upstreams []string `json:"upstreams"` // ip:port where other names go
}

// ShimPort is a published port and the container address it forwards to.
type ShimPort struct {
	runtime.PortMapping
	Backend string `json:"backend"` // ip:port of the container
}

// EmbeddedDNS is where the shim serves DNS inside the container (Docker's
// address, so tools that special-case it keep working).
const EmbeddedDNS = "127.0.0.11"

// buildShimConfig turns a record into the shim's config.
func (r *Runtime) buildShimConfig(m *Meta, mounts []image.Mount, nw runtime.Networking) (*ShimConfig, error) {
	s := m.Spec
	p := s.OCI.Process
	dir := r.dir(m.ID)
	ov, err := overlayOf(mounts)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", m.Name, err)
	}
	// An --rm container's writable layer goes when it exits: no need to
	// sync it (rootfs.Overlay.Volatile), which its exit would wait for.
	ov.Volatile = s.AutoRemove
	rc := rootfs.Config{
		Root:       filepath.Join(dir, "rootfs"),
		Overlay:    ov,
		ReadOnly:   s.Rootfs.ReadOnly,
		Privileged: s.Privileged,
		ShmSize:    s.ShmSize,
	}
	for _, f := range []string{"hostname", "hosts", "resolv.conf"} {
		rc.Mounts = append(rc.Mounts, rootfs.Mount{Type: "bind", Source: filepath.Join(dir, f), Target: "/etc/" + f})
	}
	for _, om := range s.OCI.Mounts {
		mt := rootfs.Mount{Type: om.Type, Source: om.Source, Target: om.Destination}
		for _, o := range om.Options {
			switch o {
			case "ro":
				mt.ReadOnly = true
			case "rw", "bind", "rbind":
			default:
				mt.Options = append(mt.Options, o)
			}
		}
		rc.Mounts = append(rc.Mounts, mt)
	}
	rootfs.SortMounts(rc.Mounts)
	privateNet := s.NetNS == "" || s.NetNS == "private" || s.NetNS == "none"
	if s.OCI.Linux != nil {
		for k := range s.OCI.Linux.Sysctl {
			if err := rootfs.CheckSysctl(k, privateNet); err != nil {
				return nil, fmt.Errorf("container %s: sysctls: %w", m.Name, err)
			}
		}
		rc.Sysctls = s.OCI.Linux.Sysctl
	}
	var set caps.Set
	if p.Capabilities != nil {
		for _, n := range p.Capabilities.Bounding {
			c, err := caps.Parse(n)
			if err != nil {
				return nil, err
			}
			set |= 1 << c
		}
	}
	ic := initproc.Config{
		Rootfs:      rc,
		Args:        p.Args,
		Env:         p.Env,
		Cwd:         p.Cwd,
		User:        p.User.Username,
		GroupAdd:    s.GroupAdd,
		Hostname:    s.OCI.Hostname,
		Domainname:  s.OCI.Domainname,
		Caps:        set,
		NoNewPrivs:  p.NoNewPrivileges,
		OOMScoreAdj: p.OOMScoreAdj,
		Init:        s.Init,
		Tty:         p.Terminal,
		CgroupNS:    cgroups.UnifiedHost(),
		Loopback:    privateNet,
	}
	// Compiled here, once per start: init gets a few KiB of BPF, not the
	// profile (decoding and compiling it there cost milliseconds).
	if ic.Seccomp, err = seccompFilter(s); err != nil {
		return nil, fmt.Errorf("container %s: seccomp: %w", m.Name, err)
	}
	for _, rl := range p.Rlimits {
		ic.Rlimits = append(ic.Rlimits, initproc.Rlimit{Name: rl.Type, Soft: rl.Soft, Hard: rl.Hard})
	}
	ic.Rows, ic.Cols = consoleSize(s)
	flags := uintptr(cloneNS)
	netns, err := r.joinedNetNS(m)
	if err != nil {
		return nil, err
	}
	var dns *ShimDNS
	var ports []ShimPort
	if len(nw.Endpoints) > 0 && ownNetNS(s) {
		dns = &ShimDNS{Upstreams: upstreams(s.DNS)}
		for _, ep := range nw.Endpoints {
			if ep.Records != "" {
				dns.Zones = append(dns.Zones, ep.Records)
			}
		}
		if ip := nw.Endpoints[0].IPv4; ip != "" {
			for _, p := range s.Ports {
				ports = append(ports, ShimPort{PortMapping: p, Backend: net.JoinHostPort(ip, strconv.Itoa(int(p.ContainerPort)))})
			}
		}
	}
	return &ShimConfig{
		NetNS:      netns,
		DNS:        dns,
		Ports:      ports,
		Name:       m.Name,
		Init:       ic,
		Cloneflags: flags,
		Resources:  resourcesOf(s),
		CgroupPath: [2]string{r.cgParent, m.ID},
		AutoRemove: s.AutoRemove,
		Tty:        p.Terminal,
		OpenStdin:  s.OpenStdin,
		StdinOnce:  s.StdinOnce,
		Health:     s.Health,
		Log:        s.Log,
		Restart:    s.Restart,
	}, nil
}

func overlayOf(mounts []image.Mount) (*rootfs.Overlay, error) {
	if len(mounts) != 1 {
		return nil, errdefs.Invalidf("snapshot has %d mounts, want 1", len(mounts))
	}
	mt := mounts[0]
	switch mt.Type {
	case "overlay":
		return &rootfs.Overlay{Lower: mt.Lower, Upper: mt.Upper, Work: mt.Work}, nil
	}
	return nil, errdefs.Invalidf("the image has no layers: a container needs at least one")
}

func resourcesOf(s runtime.ContainerSpec) cgroups.Resources {
	var res cgroups.Resources
	if s.Privileged {
		res.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	if s.OCI.Linux == nil || s.OCI.Linux.Resources == nil {
		return res
	}
	lr := s.OCI.Linux.Resources
	if m := lr.Memory; m != nil {
		if m.Limit != nil {
			res.Memory = *m.Limit
		}
		if m.Swap != nil {
			res.MemorySwap = *m.Swap
		}
	}
	if c := lr.CPU; c != nil {
		if c.Quota != nil && c.Period != nil && *c.Period > 0 {
			res.CPUs = float64(*c.Quota) / float64(*c.Period)
		}
		if c.Shares != nil {
			res.CPUShares = *c.Shares
		}
		res.CpusetCpus, res.CpusetMems = c.Cpus, c.Mems
	}
	if lr.Pids != nil && lr.Pids.Limit != nil {
		res.PidsLimit = *lr.Pids.Limit
	}
	if len(lr.Devices) > 0 && !s.Privileged {
		res.Devices = append(cgroups.DefaultDevices(), lr.Devices...)
	}
	return res
}

// writeEtcFiles writes the hostname, hosts and resolv.conf that are
// bind-mounted into the container.
func writeEtcFiles(dir string, s runtime.ContainerSpec, nw runtime.Networking) error {
	host := s.OCI.Hostname
	files := map[string]string{"hostname": host + "\n", "hosts": hostsFile(s, nw), "resolv.conf": resolvConfFor(s, nw)}
	for name, content := range files {
		// In place (no rename): a live bind mount keeps following the inode.
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("/etc/%s: %w", name, err)
		}
	}
	return nil
}

// consoleSize is the terminal size a run starts with (0, 0: unknown).
func consoleSize(s runtime.ContainerSpec) (rows, cols uint16) {
	if s.ConsoleSize == nil {
		return 0, 0
	}
	return s.ConsoleSize.Rows, s.ConsoleSize.Cols
}
