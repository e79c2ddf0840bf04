package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
)

// v1Controllers are the v1 hierarchies berth puts a container in.
var v1Controllers = []cgroup1.Name{
	cgroup1.Blkio, cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Cpuset,
	cgroup1.Devices, cgroup1.Freezer, cgroup1.Memory, cgroup1.Pids,
}

// v1Mount is where a v1 controller's hierarchy is mounted.
type v1Mount struct {
	name cgroup1.Name
	// root is the directory holding the controller's entry (root/name is
	// the mount or a symlink to it, as containerd's cgroup1 expects).
	root string
	// dir is the hierarchy's real mount directory (shared by co-mounted
	// controllers).
	dir string
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	mountpoint, fstype string
	superOpts          []string
}

// parseMountinfo reads mountinfo lines (proc(5)).
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for s.Scan() {
		f := strings.Fields(s.Text())
		sep := -1
		for i, x := range f {
			if x == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if sep < 0 || len(f) < sep+4 {
			return nil, fmt.Errorf("bad mountinfo line %q", s.Text())
		}
		out = append(out, mountEntry{
			mountpoint: unescapeMountinfo(f[4]),
			fstype:     f[sep+1],
			superOpts:  strings.Split(f[sep+3], ","),
		})
	}
	return out, s.Err()
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// v1Mounts finds the mounted hierarchies of v1Controllers.
func v1Mounts() (map[cgroup1.Name]v1Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroups: find the v1 hierarchies: %w", err)
	}
	defer f.Close()
	entries, err := parseMountinfo(f)
	if err != nil {
		return nil, fmt.Errorf("cgroups: find the v1 hierarchies: /proc/self/mountinfo: %w", err)
	}
	return v1MountsFrom(entries, filepath.EvalSymlinks), nil
}

// v1MountsFrom picks, for each controller of v1Controllers, the first v1
// mount that carries it and that containerd's cgroup1 can address as
// <dir>/<controller>: the mount itself is named after the controller, or a
// sibling of that name links to it (cpu → cpu,cpuacct). resolve is
// filepath.EvalSymlinks.
func v1MountsFrom(entries []mountEntry, resolve func(string) (string, error)) map[cgroup1.Name]v1Mount {
	out := map[cgroup1.Name]v1Mount{}
	for _, e := range entries {
		if e.fstype != "cgroup" {
			continue
		}
		for _, opt := range e.superOpts {
			name := cgroup1.Name(opt)
			if _, done := out[name]; done || !isV1Controller(name) {
				continue
			}
			parentDir := filepath.Dir(e.mountpoint)
			target, err := resolve(e.mountpoint)
			if err != nil {
				continue
			}
			if filepath.Base(e.mountpoint) != opt {
				link, err := resolve(filepath.Join(parentDir, opt))
				if err != nil || link != target {
					continue
				}
			}
			out[name] = v1Mount{name: name, root: parentDir, dir: target}
		}
	}
	return out
}

func isV1Controller(n cgroup1.Name) bool {
	for _, c := range v1Controllers {
		if c == n {
			return true
		}
	}
	return false
}

// subsystem returns containerd's controller for m.
func (m v1Mount) subsystem() cgroup1.Subsystem {
	switch m.name {
	case cgroup1.Blkio:
		return cgroup1.NewBlkio(m.root)
	case cgroup1.Cpu:
		return cgroup1.NewCpu(m.root)
	case cgroup1.Cpuacct:
		return cgroup1.NewCpuacct(m.root)
	case cgroup1.Cpuset:
		return cgroup1.NewCpuset(m.root)
	case cgroup1.Devices:
		return cgroup1.NewDevices(m.root)
	case cgroup1.Freezer:
		return cgroup1.NewFreezer(m.root)
	case cgroup1.Memory:
		return cgroup1.NewMemory(m.root)
	case cgroup1.Pids:
		return cgroup1.NewPids(m.root)
	}
	panic("cgroups: no v1 controller " + string(m.name))
}

// newV1 lays out the group parent/id over the hierarchies of mounts
// (containerd's controllers included), without touching the filesystem.
func newV1(parent, id string, mounts map[cgroup1.Name]v1Mount) (*Cgroup, cgroup1.Hierarchy) {
	c := &Cgroup{parent: parent, id: id, fd: -1, byController: map[cgroup1.Name]string{}}
	var subs []cgroup1.Subsystem
	seen := map[string]bool{}
	for _, name := range v1Controllers {
		m, ok := mounts[name]
		if !ok {
			continue
		}
		subs = append(subs, m.subsystem())
		dir := filepath.Join(m.dir, parent, id)
		c.byController[name] = dir
		if !seen[m.dir] {
			seen[m.dir] = true
			c.dirs = append(c.dirs, dir)
			c.parentDirs = append(c.parentDirs, filepath.Join(m.dir, parent))
		}
	}
	return c, func() ([]cgroup1.Subsystem, error) { return subs, nil }
}

// v1Required returns the controllers that r needs.
func v1Required(r Resources) []cgroup1.Name {
	req := []cgroup1.Name{cgroup1.Devices}
	if r.Memory > 0 || r.MemorySwap > 0 {
		req = append(req, cgroup1.Memory)
	}
	if r.CPUs > 0 || r.CPUShares > 0 {
		req = append(req, cgroup1.Cpu)
	}
	if r.CpusetCpus != "" || r.CpusetMems != "" {
		req = append(req, cgroup1.Cpuset)
	}
	if r.PidsLimit > 0 {
		req = append(req, cgroup1.Pids)
	}
	return req
}

func createV1(parent, id string, r Resources, devs []specs.LinuxDeviceCgroup) (*Cgroup, error) {
	mounts, err := v1Mounts()
	if err != nil {
		return nil, err
	}
	for _, n := range v1Required(r) {
		if _, ok := mounts[n]; !ok {
			why := "the limits ask for it"
			if n == cgroup1.Devices {
				why = "berth confines device access with it"
			}
			return nil, errdefs.Unavailablef("cgroups: the v1 %s controller is not mounted (%s): mount it at /sys/fs/cgroup/%s", n, why, n)
		}
	}
	supported := false
	if m, ok := mounts[cgroup1.Memory]; ok {
		supported = exists(filepath.Join(m.dir, "memory.memsw.limit_in_bytes"))
	}
	memsw, setMemsw, err := memswTotal(r, supported)
	if err != nil {
		return nil, err
	}
	c, hierarchy := newV1(parent, id, mounts)
	var made []string
	for i, d := range c.dirs {
		if !exists(c.parentDirs[i]) {
			made = append(made, c.parentDirs[i])
		}
		if !exists(d) {
			made = append(made, d)
		}
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(parent+"/"+id), v1Spec(r, devs, memsw, setMemsw), cgroup1.WithHierarchy(hierarchy))
	if err != nil {
		err = explain(err, "create "+c.String()+" in the v1 hierarchies") // reads the parent: before undo
		undo(made)
		return nil, err
	}
	c.cg1 = cg
	return c, nil
}

func loadV1(parent, id string) (*Cgroup, error) {
	mounts, err := v1Mounts()
	if err != nil {
		return nil, err
	}
	all, _ := newV1(parent, id, mounts)
	present := map[cgroup1.Name]v1Mount{}
	var missing []cgroup1.Name
	for name, dir := range all.byController {
		if exists(dir) {
			present[name] = mounts[name]
		} else {
			missing = append(missing, name)
		}
	}
	if len(present) == 0 {
		return nil, errdefs.NotFoundf("cgroups: %s/%s is in no v1 hierarchy", parent, id)
	}
	c, hierarchy := newV1(parent, id, present)
	c.dirs, c.parentDirs = all.dirs, all.parentDirs // Delete and Pids cover every hierarchy
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	c.missing = missing
	cg, err := cgroup1.Load(cgroup1.StaticPath(parent+"/"+id), cgroup1.WithHierarchy(hierarchy))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, errdefs.NotFoundf("cgroups: %s/%s was removed meanwhile: %w", parent, id, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroups: load %s/%s: %w", parent, id, err)
	}
	c.cg1 = cg
	return c, nil
}
