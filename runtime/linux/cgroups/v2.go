package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// v2Mount is the unified hierarchy's mount point (the one cgroups.Mode
// inspects); a variable so that tests on a hybrid host can point it at the
// hybrid's own cgroup2 mount.
var v2Mount = "/sys/fs/cgroup"

func newV2(parent, id string) *Cgroup {
	return &Cgroup{
		parent:     parent,
		id:         id,
		unified:    true,
		fd:         -1,
		dirs:       []string{filepath.Join(v2Mount, parent, id)},
		parentDirs: []string{filepath.Join(v2Mount, parent)},
	}
}

func createV2(parent, id string, r Resources, devs []specs.LinuxDeviceCgroup) (_ *Cgroup, retErr error) {
	if err := checkV2Devices(devs); err != nil {
		return nil, err
	}
	c := newV2(parent, id)
	dir, parentDir := c.dirs[0], c.parentDirs[0]
	var made []string
	if !exists(parentDir) {
		made = append(made, parentDir)
	}
	existed := exists(dir)
	if !existed {
		made = append(made, dir)
	}
	defer func() {
		if retErr != nil {
			_ = c.Close()
			undo(made)
		}
	}()
	if err := os.MkdirAll(parentDir, 0o755); err != nil {
		return nil, explain(err, "create the cgroup parent "+parentDir)
	}
	want, required := v2Controllers(r)
	if err := enableControllers(parentDir, want, required); err != nil {
		return nil, err
	}
	m, err := cgroup2.NewManager(v2Mount, parent+"/"+id, v2Resources(r))
	if err != nil {
		return nil, explain(err, "create "+c.String()+" in cgroup v2")
	}
	c.cg2 = m
	swap, setSwap, err := swapMax(r, exists(filepath.Join(dir, "memory.swap.max")))
	if err != nil {
		return nil, err
	}
	if setSwap {
		if err := m.Update(&cgroup2.Resources{Memory: &cgroup2.Memory{Swap: &swap}}); err != nil {
			return nil, explain(err, "set memory.swap.max of "+c.String())
		}
	}
	if err := attachDeviceFilter(dir, devs); err != nil {
		return nil, fmt.Errorf("cgroups: %s: %w", c, err)
	}
	if err := c.openFD(); err != nil {
		return nil, err
	}
	return c, nil
}

func loadV2(parent, id string) (*Cgroup, error) {
	c := newV2(parent, id)
	if !exists(c.dirs[0]) {
		return nil, errdefs.NotFoundf("cgroups: %s is not in cgroup v2 (no %s)", c, c.dirs[0])
	}
	m, err := cgroup2.Load(parent+"/"+id, cgroup2.WithMountpoint(v2Mount))
	if err != nil {
		return nil, fmt.Errorf("cgroups: load %s: %w", c, err)
	}
	c.cg2 = m
	if err := c.openFD(); err != nil {
		return nil, err
	}
	return c, nil
}

// openFD opens the O_PATH directory fd that FD returns.
func (c *Cgroup) openFD() error {
	fd, err := unix.Open(c.dirs[0], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return errdefs.NotFoundf("cgroups: open %s: %w", c.dirs[0], err)
	}
	if err != nil {
		return fmt.Errorf("cgroups: open %s: %w", c.dirs[0], err)
	}
	c.mu.Lock()
	c.fd = fd
	c.mu.Unlock()
	return nil
}

// enableControllers enables the controllers of want that the hierarchy
// offers in the subtree_control of every level from the mount down to
// parentDir, so the group below parentDir has them. A controller that is
// required but not offered is ErrUnavailable.
func enableControllers(parentDir string, want []string, required map[string]bool) error {
	rel, err := filepath.Rel(v2Mount, parentDir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("cgroups: %s is not below %s", parentDir, v2Mount)
	}
	level := v2Mount
	parts := strings.Split(rel, "/")
	for i := 0; ; i++ {
		b, err := os.ReadFile(filepath.Join(level, "cgroup.controllers"))
		if err != nil {
			return fmt.Errorf("cgroups: read the controllers of %s: %w", level, err)
		}
		offered := map[string]bool{}
		for _, f := range strings.Fields(string(b)) {
			offered[f] = true
		}
		var add []string
		for _, c := range want {
			switch {
			case offered[c]:
				add = append(add, "+"+c)
			case required[c]:
				return errdefs.Unavailablef("cgroups: the cgroup v2 %s controller is not available in %s (cgroup.controllers: %q) and the limits need it: enable it in the parent's cgroup.subtree_control", c, level, strings.TrimSpace(string(b)))
			}
		}
		if len(add) > 0 {
			f := filepath.Join(level, "cgroup.subtree_control")
			if err := os.WriteFile(f, []byte(strings.Join(add, " ")), 0); err != nil {
				return explain(err, fmt.Sprintf("enable %v in %s", add, f))
			}
		}
		if level == parentDir || i == len(parts) {
			return nil
		}
		level = filepath.Join(level, parts[i])
	}
}

// attachDeviceFilter attaches containerd's eBPF device filter for devs to
// the v2 group dir and detaches the device programs that were attached
// before (a Create of an existing group replaces its rules; the new
// filter is in place before the old ones go).
func attachDeviceFilter(dir string, devs []specs.LinuxDeviceCgroup) error {
	insts, license, err := cgroup2.DeviceFilter(devs)
	if err != nil {
		return fmt.Errorf("build the device filter: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s for the device filter: %w", dir, err)
	}
	defer unix.Close(fd)
	var old []ebpf.ProgramID
	if q, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice}); err == nil {
		for _, p := range q.Programs {
			old = append(old, p.ID)
		}
	}
	_, err = cgroup2.LoadAttachCgroupDeviceFilter(insts, license, fd)
	if errors.Is(err, unix.EPERM) {
		// Before Linux 5.11 BPF programs count against RLIMIT_MEMLOCK.
		err = withMemlockLifted(func() error {
			_, err := cgroup2.LoadAttachCgroupDeviceFilter(insts, license, fd)
			return err
		})
	}
	if err != nil {
		return errdefs.Unavailablef("attach the eBPF device filter to %s: %w: berth needs root (CAP_SYS_ADMIN, CAP_BPF) and a kernel with BPF_PROG_TYPE_CGROUP_DEVICE", dir, err)
	}
	for _, id := range old {
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // detached meanwhile
		}
		err = link.RawDetachProgram(link.RawDetachProgramOptions{Target: fd, Program: prog, Attach: ebpf.AttachCGroupDevice})
		prog.Close()
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("replace the device filter of %s: detach the old program %d: %w", dir, id, err)
		}
	}
	return nil
}

// memlockMu serialises withMemlockLifted.
var memlockMu sync.Mutex

// withMemlockLifted runs fn with RLIMIT_MEMLOCK raised to infinity and then
// restores it, so children started later (containers inherit the shim's
// rlimits) keep the operator's limit.
func withMemlockLifted(fn func() error) error {
	memlockMu.Lock()
	defer memlockMu.Unlock()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &old); err != nil {
		return fn()
	}
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &inf); err != nil {
		return fn()
	}
	defer unix.Setrlimit(unix.RLIMIT_MEMLOCK, &old) //nolint:errcheck // best effort: lowering back never fails for root
	return fn()
}
