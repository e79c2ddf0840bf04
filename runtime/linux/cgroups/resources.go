package cgroups

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
)

// Validate checks r as Docker checks a container's limits, naming the
// compose field at fault. Every error wraps errdefs.ErrInvalid.
func Validate(r Resources) error {
	switch {
	case r.Memory < 0:
		return errdefs.Invalidf("mem_limit %d: a memory limit cannot be negative", r.Memory)
	case r.Memory > 0 && r.Memory < minMemory:
		return errdefs.Invalidf("mem_limit %d bytes: Minimum memory limit allowed is 6MB", r.Memory)
	case r.MemorySwap < -1:
		return errdefs.Invalidf("memswap_limit %d: use -1 for unlimited swap or a size of at least mem_limit", r.MemorySwap)
	case r.MemorySwap > 0 && r.Memory == 0:
		return errdefs.Invalidf("memswap_limit %d: You should always set the Memory limit when using Memoryswap limit: set mem_limit too", r.MemorySwap)
	case r.MemorySwap > 0 && r.MemorySwap < r.Memory:
		return errdefs.Invalidf("memswap_limit %d is below mem_limit %d: Minimum memoryswap limit should be larger than memory limit", r.MemorySwap, r.Memory)
	}
	if n := runtime.NumCPU(); math.IsNaN(r.CPUs) || r.CPUs < 0 || (r.CPUs > 0 && r.CPUs < 0.01) || r.CPUs > float64(n) {
		return errdefs.Invalidf("cpus %v: range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", r.CPUs, n, n)
	}
	if r.PidsLimit < -1 {
		return errdefs.Invalidf("pids_limit %d: use 0 or -1 for unlimited, or a positive limit", r.PidsLimit)
	}
	if _, err := parseCpuset(r.CpusetCpus); err != nil {
		return errdefs.Invalidf("cpuset %q: %v: write CPU numbers and ranges separated by commas, like 0-3,5", r.CpusetCpus, err)
	}
	if _, err := parseCpuset(r.CpusetMems); err != nil {
		return errdefs.Invalidf("cpuset mems %q: %v: write memory node numbers and ranges separated by commas, like 0-1", r.CpusetMems, err)
	}
	for _, d := range r.Devices {
		if err := checkDevice(d); err != nil {
			return err
		}
	}
	return nil
}

// maxCpusetNumber bounds a cpuset number (the kernel's NR_CPUS is at most
// 8192), so that "0-4000000000" is a syntax error, not a huge allocation.
const maxCpusetNumber = 1 << 16

// parseCpuset parses a cpuset list ("0-3,5"; "" is no list) into its
// numbers, as Docker's ParseUintList does: no spaces, no strides, each
// range ascending.
func parseCpuset(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	seen := map[int]bool{}
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := cpusetNumber(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = cpusetNumber(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("range %q is descending", part)
			}
		}
		for i := a; i <= b; i++ {
			if !seen[i] {
				seen[i] = true
				out = append(out, i)
			}
		}
	}
	return out, nil
}

func cpusetNumber(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n >= maxCpusetNumber {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return n, nil
}

// checkDevice rejects a device rule the kernel could not take.
func checkDevice(d specs.LinuxDeviceCgroup) error {
	switch d.Type {
	case "", "a", "b", "c":
	default:
		return errdefs.Invalidf("device rule %q: type %q: want a (all), b (block) or c (char)", deviceString(d), d.Type)
	}
	if d.Access == "" || strings.Trim(d.Access, "rwm") != "" {
		return errdefs.Invalidf("device rule %q: access %q: want a combination of r, w and m", deviceString(d), d.Access)
	}
	for _, n := range []*int64{d.Major, d.Minor} {
		if n != nil && (*n < -1 || *n > math.MaxUint32) {
			return errdefs.Invalidf("device rule %q: device number %d out of range", deviceString(d), *n)
		}
	}
	return nil
}

// deviceString formats a rule as devices.list shows it: "c 1:3 rwm".
func deviceString(d specs.LinuxDeviceCgroup) string {
	t := d.Type
	if t == "" {
		t = "a"
	}
	num := func(n *int64) string {
		if n == nil || *n < 0 {
			return "*"
		}
		return strconv.FormatInt(*n, 10)
	}
	return fmt.Sprintf("%s %s:%s %s", t, num(d.Major), num(d.Minor), d.Access)
}

// deviceRules returns the rules Create applies for devs: DefaultDevices()
// for nil; otherwise devs after a deny-all (unless devs starts with one),
// with every wildcard spelled -1 and every type set, as both backends
// expect (containerd's v2 filter dereferences Major and Minor).
func deviceRules(devs []specs.LinuxDeviceCgroup) []specs.LinuxDeviceCgroup {
	if devs == nil {
		devs = DefaultDevices()
	}
	out := make([]specs.LinuxDeviceCgroup, 0, len(devs)+1)
	if len(devs) == 0 || !isDenyAll(devs[0]) {
		out = append(out, specs.LinuxDeviceCgroup{Allow: false, Type: "a", Access: "rwm"})
	}
	for _, d := range devs {
		n := d
		if n.Type == "" {
			n.Type = "a"
		}
		n.Major, n.Minor = wildcard(d.Major), wildcard(d.Minor)
		out = append(out, n)
	}
	return out
}

func wildcard(n *int64) *int64 {
	v := int64(-1)
	if n != nil {
		v = *n
	}
	return &v
}

// isDenyAll reports whether d denies every access to every device.
func isDenyAll(d specs.LinuxDeviceCgroup) bool {
	return !d.Allow && (d.Type == "" || d.Type == "a") && (d.Major == nil || *d.Major < 0) &&
		(d.Minor == nil || *d.Minor < 0) && strings.Contains(d.Access, "r") && strings.Contains(d.Access, "w") && strings.Contains(d.Access, "m")
}

// checkV2Devices rejects allow rules that grant only one of read and write:
// containerd's cgroup v2 device filter (cgroup2.DeviceFilter) matches an
// open that asks for any of a rule's accesses, so "c 10:200 r" would also
// let the device be opened for writing. Deny rules and rw, rwm or m rules
// are exact.
func checkV2Devices(devs []specs.LinuxDeviceCgroup) error {
	for _, d := range devs {
		if d.Allow && strings.Contains(d.Access, "r") != strings.Contains(d.Access, "w") {
			return errdefs.Unavailablef("device rule %q: on cgroup v2 berth cannot allow read-only or write-only device access (the eBPF device filter would grant both): allow rw or rwm", deviceString(d))
		}
	}
	return nil
}

// cpuQuota is the CFS quota in µs per cpuPeriod for cpus CPUs, computed as
// Docker does from nano-CPUs.
func cpuQuota(cpus float64) int64 {
	nano := int64(math.Round(cpus * 1e9))
	return nano * cpuPeriod / 1e9
}

// cpuWeight converts cpu_shares (v1, 2…262144) to cgroup v2 cpu.weight
// (1…10000) with runc's mapping, which containerd's cgroup2 implements:
// 2 → 1, 1024 (the default) → 100, 262144 → 10000. 0 stays 0 (unset).
func cpuWeight(shares uint64) uint64 {
	return cgroup2.ConvertCPUSharesToCgroupV2Value(shares)
}

// memswTotal decides the v1 memory.memsw.limit_in_bytes for r: the value
// and whether to write it. supported says whether the kernel accounts swap.
// Only an explicit positive memswap_limit fails without it.
func memswTotal(r Resources, supported bool) (int64, bool, error) {
	switch {
	case r.MemorySwap == -1:
		if !supported {
			return 0, false, nil
		}
		return -1, true, nil
	case r.MemorySwap > 0:
		if !supported {
			return 0, false, errdefs.Unavailablef("memswap_limit %d: this kernel does not account swap (no memory.memsw.limit_in_bytes / memory.swap.max): boot it with swapaccount=1, or drop memswap_limit", r.MemorySwap)
		}
		return r.MemorySwap, true, nil
	case r.Memory > 0 && supported:
		return 2 * r.Memory, true, nil // Docker's default: as much swap as memory
	}
	return 0, false, nil
}

// swapMax decides the v2 memory.swap.max for r (swap alone, not
// memory+swap): the value and whether to write it. Unlimited swap is the
// kernel default, so -1 writes nothing.
func swapMax(r Resources, supported bool) (int64, bool, error) {
	total, set, err := memswTotal(r, supported)
	if err != nil || !set || total < 0 {
		return 0, false, err
	}
	return total - r.Memory, true, nil
}

// v1Spec returns the OCI resources containerd's cgroup1 applies for r.
// memsw is the memory+swap limit to write, when setMemsw. Kernel memory
// and the OOM killer are left alone.
func v1Spec(r Resources, devs []specs.LinuxDeviceCgroup, memsw int64, setMemsw bool) *specs.LinuxResources {
	spec := &specs.LinuxResources{Devices: devs}
	if r.Memory > 0 || setMemsw {
		spec.Memory = &specs.LinuxMemory{}
		if r.Memory > 0 {
			m := r.Memory
			spec.Memory.Limit = &m
		}
		if setMemsw {
			spec.Memory.Swap = &memsw
		}
	}
	if r.CPUShares > 0 || r.CPUs > 0 || r.CpusetCpus != "" || r.CpusetMems != "" {
		spec.CPU = &specs.LinuxCPU{Cpus: r.CpusetCpus, Mems: r.CpusetMems}
		if r.CPUShares > 0 {
			s := r.CPUShares
			spec.CPU.Shares = &s
		}
		if r.CPUs > 0 {
			q, p := cpuQuota(r.CPUs), uint64(cpuPeriod)
			spec.CPU.Quota, spec.CPU.Period = &q, &p
		}
	}
	if r.PidsLimit > 0 {
		l := r.PidsLimit
		spec.Pids = &specs.LinuxPids{Limit: &l}
	}
	return spec
}

// v2Resources returns the cgroup2 resources for r, without swap (decided
// once the group exists) and devices (attached separately).
func v2Resources(r Resources) *cgroup2.Resources {
	res := &cgroup2.Resources{}
	if r.CPUShares > 0 || r.CPUs > 0 || r.CpusetCpus != "" || r.CpusetMems != "" {
		res.CPU = &cgroup2.CPU{Cpus: r.CpusetCpus, Mems: r.CpusetMems}
		if r.CPUShares > 0 {
			w := cpuWeight(r.CPUShares)
			res.CPU.Weight = &w
		}
		if r.CPUs > 0 {
			q, p := cpuQuota(r.CPUs), uint64(cpuPeriod)
			res.CPU.Max = cgroup2.NewCPUMax(&q, &p)
		}
	}
	if r.Memory > 0 {
		m := r.Memory
		res.Memory = &cgroup2.Memory{Max: &m}
	}
	if r.PidsLimit > 0 {
		res.Pids = &cgroup2.Pids{Max: r.PidsLimit}
	}
	return res
}

// v2Controllers returns the v2 controllers the group gets enabled, and
// which of them r needs (the others are for accounting and OOM events).
func v2Controllers(r Resources) (want []string, required map[string]bool) {
	required = map[string]bool{
		"memory": r.Memory > 0 || r.MemorySwap > 0,
		"pids":   r.PidsLimit > 0,
		"cpu":    r.CPUs > 0 || r.CPUShares > 0,
		"cpuset": r.CpusetCpus != "" || r.CpusetMems != "",
	}
	want = []string{"cpu", "memory", "pids", "io"}
	if required["cpuset"] {
		want = append(want, "cpuset")
	}
	return want, required
}
