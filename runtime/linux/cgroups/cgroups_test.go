package cgroups

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
)

func TestParent(t *testing.T) {
	hash := func(p string) string {
		s := sha256.Sum256([]byte(p))
		return "/berth-" + hex.EncodeToString(s[:])[:8]
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ root, want string }{
		{"/var/lib/berth", "/berth"},
		{"/var/lib/berth/", "/berth"},
		{"/var/lib/../lib/berth", "/berth"},
		{"/tmp/berth-t-0123abcd", hash("/tmp/berth-t-0123abcd")},
		{"/tmp/berth-t-0123abcd/", hash("/tmp/berth-t-0123abcd")},
		{"/srv//state/./x", hash("/srv/state/x")},
		{"rel/root", hash(filepath.Join(wd, "rel/root"))},
	} {
		if got := Parent(tc.root); got != tc.want {
			t.Errorf("Parent(%q) = %q, want %q", tc.root, got, tc.want)
		}
	}
	if a, b := Parent("/a"), Parent("/b"); a == b || len(a) != len("/berth-")+8 {
		t.Errorf("Parent(/a) = %q, Parent(/b) = %q: want distinct /berth-<8 hex>", a, b)
	}
	if err := checkNames(Parent("/x"), "c"); err != nil {
		t.Errorf("Parent output rejected by Create: %v", err)
	}
}

func ruleStrings(devs []specs.LinuxDeviceCgroup) []string {
	var out []string
	for _, d := range devs {
		verb := "deny"
		if d.Allow {
			verb = "allow"
		}
		out = append(out, verb+" "+deviceString(d))
	}
	return out
}

func TestDefaultDevices(t *testing.T) {
	got := ruleStrings(DefaultDevices())
	want := []string{
		"deny a *:* rwm",
		"allow c 1:3 rwm", "allow c 1:5 rwm", "allow c 1:7 rwm", "allow c 1:8 rwm", "allow c 1:9 rwm",
		"allow c 5:0 rwm", "allow c 5:1 rwm", "allow c 5:2 rwm",
		"allow c 136:* rwm", "allow c *:* m", "allow b *:* m",
	}
	if !slices.Equal(got, want) {
		t.Errorf("DefaultDevices:\n got %q\nwant %q", got, want)
	}
	for _, d := range DefaultDevices() {
		if d.Allow && d.Major != nil && *d.Major == 10 {
			t.Errorf("DefaultDevices allows %s (fuse and tun only via devices:)", deviceString(d))
		}
	}
	// Each call returns a fresh list a caller may append to.
	a := DefaultDevices()
	*a[1].Major = 99
	if b := DefaultDevices(); *b[1].Major != 1 {
		t.Error("DefaultDevices shares its numbers between calls")
	}
}

func TestDeviceRules(t *testing.T) {
	def := deviceRules(nil)
	if !slices.Equal(ruleStrings(def), ruleStrings(DefaultDevices())) {
		t.Errorf("deviceRules(nil) = %q", ruleStrings(def))
	}
	for _, d := range def {
		if d.Major == nil || d.Minor == nil || d.Type == "" {
			t.Fatalf("rule %s keeps a nil number or empty type", deviceString(d))
		}
	}
	if got := ruleStrings(deviceRules([]specs.LinuxDeviceCgroup{})); !slices.Equal(got, []string{"deny a *:* rwm"}) {
		t.Errorf("empty list: %q, want only the deny-all", got)
	}
	tun := int64(10)
	minor := int64(200)
	got := ruleStrings(deviceRules([]specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: &tun, Minor: &minor, Access: "rwm"}}))
	if !slices.Equal(got, []string{"deny a *:* rwm", "allow c 10:200 rwm"}) {
		t.Errorf("a list without deny-all: %q", got)
	}
	priv := ruleStrings(deviceRules([]specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}))
	if !slices.Equal(priv, []string{"deny a *:* rwm", "allow a *:* rwm"}) {
		t.Errorf("privileged list: %q", priv)
	}
	// containerd's v2 filter must compile berth's rules (it dereferences
	// Major and Minor, so a nil one would panic).
	if _, _, err := cgroup2.DeviceFilter(deviceRules(nil)); err != nil {
		t.Errorf("DeviceFilter(default): %v", err)
	}
}

func TestCheckV2Devices(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	if err := checkV2Devices(deviceRules(nil)); err != nil {
		t.Errorf("default rules refused: %v", err)
	}
	for _, access := range []string{"r", "w", "rm", "wm"} {
		err := checkV2Devices([]specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: n(10), Minor: n(200), Access: access}})
		if !errdefs.IsUnavailable(err) {
			t.Errorf("allow %s: err = %v, want ErrUnavailable", access, err)
		}
	}
	if err := checkV2Devices([]specs.LinuxDeviceCgroup{{Allow: false, Type: "c", Major: n(1), Minor: n(3), Access: "w"}}); err != nil {
		t.Errorf("deny w refused: %v", err)
	}
}

func TestValidate(t *testing.T) {
	n := runtime.NumCPU()
	ok := []Resources{
		{},
		{Memory: 6 << 20},
		{Memory: 1 << 30, MemorySwap: 1 << 30},
		{Memory: 1 << 30, MemorySwap: -1},
		{CPUs: 0.01}, {CPUs: float64(n)},
		{PidsLimit: -1}, {PidsLimit: 100},
		{CPUShares: 2}, {CPUShares: 1 << 20},
		{CpusetCpus: "0", CpusetMems: "0"}, {CpusetCpus: "0-3,5,7-8"}, {CpusetCpus: "1,1"},
		{Devices: DefaultDevices()}, {Devices: []specs.LinuxDeviceCgroup{}},
	}
	for _, r := range ok {
		if err := Validate(r); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", r, err)
		}
	}
	bad := []struct {
		r    Resources
		want string
	}{
		{Resources{Memory: -1}, "negative"},
		{Resources{Memory: 4 << 20}, "Minimum memory limit allowed is 6MB"},
		{Resources{Memory: 6<<20 - 1}, "Minimum memory limit allowed is 6MB"},
		{Resources{MemorySwap: 1 << 30}, "always set the Memory limit"},
		{Resources{Memory: 1 << 30, MemorySwap: 1 << 29}, "Minimum memoryswap limit should be larger than memory limit"},
		{Resources{Memory: 1 << 30, MemorySwap: -2}, "memswap_limit -2"},
		{Resources{CPUs: float64(n) + 0.5}, fmt.Sprintf("range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", n, n)},
		{Resources{CPUs: 0.001}, "range of CPUs"},
		{Resources{CPUs: -1}, "range of CPUs"},
		{Resources{PidsLimit: -2}, "pids_limit -2"},
		{Resources{CpusetCpus: "0-"}, "cpuset"},
		{Resources{CpusetCpus: "3-1"}, "descending"},
		{Resources{CpusetCpus: "a"}, "not a number"},
		{Resources{CpusetCpus: "0, 1"}, "not a number"},
		{Resources{CpusetCpus: "0-7:2"}, "not a number"},
		{Resources{CpusetCpus: ","}, "not a number"},
		{Resources{CpusetCpus: "-1"}, "not a number"},
		{Resources{CpusetCpus: "99999999999999999999"}, "out of range"},
		{Resources{CpusetMems: "x"}, "cpuset mems"},
		{Resources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "x", Access: "rwm"}}}, "type"},
		{Resources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Access: "rwx"}}}, "access"},
		{Resources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Access: ""}}}, "access"},
	}
	for _, tc := range bad {
		err := Validate(tc.r)
		if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid containing %q", tc.r, err, tc.want)
		}
	}
}

func TestParseCpuset(t *testing.T) {
	got, err := parseCpuset("0-2,5,1")
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 5}) {
		t.Errorf("parseCpuset = %v, %v", got, err)
	}
}

func TestCPUWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{0: 0, 1: 1, 2: 1, 1024: 100, 262144: 10000, 1 << 20: 10000} {
		if got := cpuWeight(shares); got != want {
			t.Errorf("cpuWeight(%d) = %d, want %d", shares, got, want)
		}
	}
	prev := uint64(0)
	for s := uint64(2); s <= 262144; s += 97 {
		w := cpuWeight(s)
		if w < 1 || w > 10000 || w < prev {
			t.Fatalf("cpuWeight(%d) = %d after %d: want monotonic in 1…10000", s, w, prev)
		}
		prev = w
	}
	if w := *v2Resources(Resources{CPUShares: 512}).CPU.Weight; w != cpuWeight(512) || w >= 100 {
		t.Errorf("v2 weight of 512 shares = %d", w)
	}
}

func TestCPUQuota(t *testing.T) {
	for cpus, want := range map[float64]int64{0.01: 1000, 0.5: 50000, 1: 100000, 1.5: 150000, 2.25: 225000, 0.333: 33300} {
		if got := cpuQuota(cpus); got != want {
			t.Errorf("cpuQuota(%v) = %d, want %d", cpus, got, want)
		}
	}
	if got := v2Resources(Resources{CPUs: 1.5}).CPU.Max; got != "150000 100000" {
		t.Errorf("v2 cpu.max = %q", got)
	}
}

func TestSwapLimits(t *testing.T) {
	const m = 64 << 20
	for _, tc := range []struct {
		r                 Resources
		supported         bool
		memsw             int64
		setMemsw          bool
		swap              int64
		setSwap, unavails bool
	}{
		{Resources{Memory: m}, true, 2 * m, true, m, true, false},
		{Resources{Memory: m}, false, 0, false, 0, false, false},
		{Resources{}, true, 0, false, 0, false, false},
		{Resources{Memory: m, MemorySwap: m}, true, m, true, 0, true, false},
		{Resources{Memory: m, MemorySwap: 3 * m}, true, 3 * m, true, 2 * m, true, false},
		{Resources{Memory: m, MemorySwap: m}, false, 0, false, 0, false, true},
		{Resources{Memory: m, MemorySwap: -1}, true, -1, true, 0, false, false},
		{Resources{Memory: m, MemorySwap: -1}, false, 0, false, 0, false, false},
	} {
		memsw, set, err := memswTotal(tc.r, tc.supported)
		if tc.unavails {
			if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "swapaccount=1") {
				t.Errorf("memswTotal(%+v, %v) err = %v, want ErrUnavailable with advice", tc.r, tc.supported, err)
			}
			if _, _, err := swapMax(tc.r, tc.supported); !errdefs.IsUnavailable(err) {
				t.Errorf("swapMax(%+v, %v) err = %v, want ErrUnavailable", tc.r, tc.supported, err)
			}
			continue
		}
		if err != nil || memsw != tc.memsw || set != tc.setMemsw {
			t.Errorf("memswTotal(%+v, %v) = %d, %v, %v; want %d, %v", tc.r, tc.supported, memsw, set, err, tc.memsw, tc.setMemsw)
		}
		swap, set, err := swapMax(tc.r, tc.supported)
		if err != nil || swap != tc.swap || set != tc.setSwap {
			t.Errorf("swapMax(%+v, %v) = %d, %v, %v; want %d, %v", tc.r, tc.supported, swap, set, err, tc.swap, tc.setSwap)
		}
	}
}

func TestV1Spec(t *testing.T) {
	r := Resources{Memory: 64 << 20, CPUs: 0.5, CPUShares: 512, CpusetCpus: "0", PidsLimit: 20}
	s := v1Spec(r, deviceRules(nil), 128<<20, true)
	if *s.Memory.Limit != 64<<20 || *s.Memory.Swap != 128<<20 {
		t.Errorf("memory = %+v", s.Memory)
	}
	if s.Memory.Kernel != nil || s.Memory.KernelTCP != nil || s.Memory.DisableOOMKiller != nil || s.Memory.Swappiness != nil { //nolint:staticcheck // checking the deprecated field stays unset
		t.Errorf("kernel memory, swappiness or the OOM killer touched: %+v", s.Memory)
	}
	if *s.CPU.Shares != 512 || *s.CPU.Quota != 50000 || *s.CPU.Period != 100000 || s.CPU.Cpus != "0" {
		t.Errorf("cpu = %+v", s.CPU)
	}
	if *s.Pids.Limit != 20 || len(s.Devices) != len(DefaultDevices()) {
		t.Errorf("pids %+v, %d device rules", s.Pids, len(s.Devices))
	}
	empty := v1Spec(Resources{PidsLimit: -1}, nil, 0, false)
	if empty.Memory != nil || empty.CPU != nil || empty.Pids != nil {
		t.Errorf("unlimited resources set something: %+v", empty)
	}
	if v2 := v2Resources(Resources{PidsLimit: -1}); v2.Memory != nil || v2.CPU != nil || v2.Pids != nil {
		t.Errorf("unlimited v2 resources set something: %+v", v2)
	}
}

func TestV2Controllers(t *testing.T) {
	want, req := v2Controllers(Resources{Memory: 64 << 20})
	if !slices.Contains(want, "memory") || !slices.Contains(want, "pids") || slices.Contains(want, "cpuset") || !req["memory"] || req["pids"] {
		t.Errorf("v2Controllers = %v, %v", want, req)
	}
	want, req = v2Controllers(Resources{CpusetCpus: "0"})
	if !slices.Contains(want, "cpuset") || !req["cpuset"] {
		t.Errorf("cpuset not wanted: %v, %v", want, req)
	}
}

func TestCheckNames(t *testing.T) {
	for _, p := range [][2]string{{"/berth", "abc"}, {"/berth-0123abcd", "0123456789abcdef"}, {"/a/b", "c.d_e-f"}} {
		if err := checkNames(p[0], p[1]); err != nil {
			t.Errorf("checkNames(%q, %q) = %v", p[0], p[1], err)
		}
	}
	for _, p := range [][2]string{
		{"berth", "x"}, {"/", "x"}, {"/berth/", "x"}, {"/berth/../etc", "x"}, {"/a//b", "x"}, {"", "x"},
		{"/berth", ""}, {"/berth", ".."}, {"/berth", "."}, {"/berth", "a/b"}, {"/berth", "-x"}, {"/berth", "a b"},
	} {
		if err := checkNames(p[0], p[1]); !errdefs.IsInvalid(err) {
			t.Errorf("checkNames(%q, %q) = %v, want ErrInvalid", p[0], p[1], err)
		}
	}
}

func TestV1MountsFrom(t *testing.T) {
	const info = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:5 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /srv/odd\040place rw,relatime - cgroup cgroup rw,pids
38 31 0:35 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
39 31 0:36 / /other/devices rw,relatime - cgroup cgroup rw,devices
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	entries, err := parseMountinfo(strings.NewReader(info))
	if err != nil {
		t.Fatal(err)
	}
	if entries[4].mountpoint != "/srv/odd place" {
		t.Errorf("unescaped mountpoint = %q", entries[4].mountpoint)
	}
	links := map[string]string{"/sys/fs/cgroup/cpu": "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct": "/sys/fs/cgroup/cpu,cpuacct"}
	resolve := func(p string) (string, error) {
		if l, ok := links[p]; ok {
			return l, nil
		}
		if strings.HasPrefix(p, "/srv/pids") {
			return "", os.ErrNotExist
		}
		return p, nil
	}
	got := v1MountsFrom(entries, resolve)
	for name, want := range map[cgroup1.Name]v1Mount{
		cgroup1.Cpu:     {cgroup1.Cpu, "/sys/fs/cgroup", "/sys/fs/cgroup/cpu,cpuacct"},
		cgroup1.Cpuacct: {cgroup1.Cpuacct, "/sys/fs/cgroup", "/sys/fs/cgroup/cpu,cpuacct"},
		cgroup1.Memory:  {cgroup1.Memory, "/sys/fs/cgroup", "/sys/fs/cgroup/memory"},
		cgroup1.Devices: {cgroup1.Devices, "/sys/fs/cgroup", "/sys/fs/cgroup/devices"},
	} {
		if got[name] != want {
			t.Errorf("%s: %+v, want %+v", name, got[name], want)
		}
	}
	if _, ok := got[cgroup1.Pids]; ok {
		t.Errorf("pids mounted where cgroup1 cannot address it was kept: %+v", got[cgroup1.Pids])
	}
	if len(got) != 4 {
		t.Errorf("got %d controllers: %+v", len(got), got)
	}
	c, _ := newV1("/berth", "x", got)
	if len(c.dirs) != 3 || c.byController[cgroup1.Cpu] != c.byController[cgroup1.Cpuacct] {
		t.Errorf("dirs %v, by controller %v: want cpu,cpuacct once", c.dirs, c.byController)
	}
}

func TestKeyedValue(t *testing.T) {
	const oomControl = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
	if n, err := keyedValue(oomControl, "oom_kill"); n != 3 || err != nil {
		t.Errorf("oom_kill = %d, %v", n, err)
	}
	if n, err := keyedValue("low 0\nhigh 0\n", "oom_kill"); n != 0 || err != nil {
		t.Errorf("missing key = %d, %v", n, err)
	}
	if _, err := keyedValue("oom_kill x\n", "oom_kill"); err == nil {
		t.Error("bad value accepted")
	}
}
