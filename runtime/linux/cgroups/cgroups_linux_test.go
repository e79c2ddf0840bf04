package cgroups

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/testutil"
)

const busybox = "/bin/busybox"

// cgroupMounts lists every cgroup and cgroup2 mount point of the host.
func cgroupMounts(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := parseMountinfo(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.fstype == "cgroup" || e.fstype == "cgroup2" {
			out = append(out, e.mountpoint)
		}
	}
	if len(out) == 0 {
		t.Fatal("no cgroup mounts")
	}
	return out
}

// testParent returns a unique parent "/berth-test-<hex>" and makes the test
// fail when any hierarchy still holds it at the end (registered first, so
// it runs after every other cleanup).
func testParent(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := os.Stat(busybox); err != nil {
		t.Fatalf("the root tests need %s (busybox-static): %v", busybox, err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	parent := "/berth-test-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		for _, m := range cgroupMounts(t) {
			if p := filepath.Join(m, parent); exists(p) {
				t.Errorf("leak: %s remains", p)
				_ = removeTree(p)
			}
		}
	})
	return parent
}

// create makes parent/c1 with r and kills and deletes it at the end.
func create(t *testing.T, parent string, r Resources) *Cgroup {
	t.Helper()
	cg, err := Create(parent, "c1", r)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		if err := cg.Kill(); err != nil {
			t.Errorf("cleanup Kill: %v", err)
		}
		if err := cg.Delete(); err != nil {
			t.Errorf("cleanup Delete: %v", err)
		}
	})
	return cg
}

// proc is a busybox shell started on the host and moved into a cgroup
// before it runs its script.
type proc struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	err  error
}

// start runs `busybox sh -c script` held at a `read` on its stdin until
// Add has put it in cg, so every command of the script runs in the group.
func start(t *testing.T, cg *Cgroup, script string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(busybox, "sh", "-c", "read go; "+script)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.Env = []string{"PATH=/bin:/usr/bin:/sbin:/usr/sbin"}
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	pid := p.cmd.Process.Pid
	if err := cg.Add(pid); err != nil {
		t.Fatalf("Add(%d): %v", pid, err)
	}
	pids, err := cg.Pids()
	if err != nil || !slices.Contains(pids, pid) {
		t.Fatalf("after Add(%d), Pids() = %v, %v", pid, pids, err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	return p
}

// wait waits for the shell and returns its output and exit error.
func (p *proc) wait(t *testing.T, timeout time.Duration) (string, error) {
	t.Helper()
	select {
	case <-p.done:
		return p.out.String(), p.err
	case <-time.After(timeout):
		t.Fatalf("%v did not exit within %v", p.cmd.Args, timeout)
	}
	return "", nil
}

// run runs script in cg and returns its output and exit error.
func run(t *testing.T, cg *Cgroup, script string) (string, error) {
	t.Helper()
	return start(t, cg, script).wait(t, 20*time.Second)
}

func readTrim(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// dirOf returns the group's directory holding controller's files.
func dirOf(t *testing.T, cg *Cgroup, controller cgroup1.Name) string {
	t.Helper()
	if cg.Unified() {
		return cg.Paths()[0]
	}
	d, ok := cg.byController[controller]
	if !ok {
		t.Fatalf("no %s hierarchy", controller)
	}
	return d
}

func TestCreateDeleteLeavesNothing(t *testing.T) {
	testutil.RequireRoot(t)
	parent := testParent(t)
	r := Resources{Memory: 64 << 20, CPUs: 0.5, CPUShares: 512, CpusetCpus: "0", PidsLimit: 100}
	cg, err := Create(parent, "c1", r)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	paths := cg.Paths()
	if cg.Unified() {
		if len(paths) != 1 {
			t.Fatalf("v2 paths %v", paths)
		}
	} else {
		for _, n := range v1Controllers {
			if _, ok := cg.byController[n]; !ok {
				t.Errorf("the host mounts all of berth's v1 controllers, but %s is missing", n)
			}
		}
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			t.Errorf("path %s: %v", p, err)
		}
	}
	swapped := false
	if cg.Unified() {
		d := paths[0]
		for name, want := range map[string]string{
			"memory.max": strconv.Itoa(64 << 20), "pids.max": "100", "cpu.max": "50000 100000",
			"cpu.weight": strconv.FormatUint(cpuWeight(512), 10), "cpuset.cpus": "0",
		} {
			if got := readTrim(t, d, name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		if exists(filepath.Join(d, "memory.swap.max")) {
			swapped = true
			if got := readTrim(t, d, "memory.swap.max"); got != strconv.Itoa(64<<20) {
				t.Errorf("memory.swap.max = %q, want %d (Docker's default: swap = memory)", got, 64<<20)
			}
		}
		fd, ok := cg.FD()
		var st unix.Stat_t
		if !ok || unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("FD() = %d, %v: want a directory fd", fd, ok)
		}
	} else {
		mem, cpu := dirOf(t, cg, cgroup1.Memory), dirOf(t, cg, cgroup1.Cpu)
		for _, f := range []struct{ dir, name, want string }{
			{mem, "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
			{dirOf(t, cg, cgroup1.Pids), "pids.max", "100"},
			{cpu, "cpu.cfs_quota_us", "50000"},
			{cpu, "cpu.cfs_period_us", "100000"},
			{cpu, "cpu.shares", "512"},
			{dirOf(t, cg, cgroup1.Cpuset), "cpuset.cpus", "0"},
		} {
			if got := readTrim(t, f.dir, f.name); got != f.want {
				t.Errorf("%s = %q, want %q", f.name, got, f.want)
			}
		}
		if exists(filepath.Join(mem, "memory.memsw.limit_in_bytes")) {
			swapped = true
			if got := readTrim(t, mem, "memory.memsw.limit_in_bytes"); got != strconv.Itoa(128<<20) {
				t.Errorf("memory.memsw.limit_in_bytes = %q, want %d (Docker's default: 2x memory)", got, 128<<20)
			}
		}
		// Kernel memory stays unlimited and the OOM killer enabled.
		if k := filepath.Join(mem, "memory.kmem.limit_in_bytes"); exists(k) {
			if got := readTrim(t, mem, "memory.kmem.limit_in_bytes"); got != readTrim(t, filepath.Dir(filepath.Dir(mem)), "memory.kmem.limit_in_bytes") {
				t.Errorf("kernel memory limit set: %s", got)
			}
		}
		if !strings.Contains(readTrim(t, mem, "memory.oom_control"), "oom_kill_disable 0") {
			t.Error("OOM killer disabled")
		}
		if fd, ok := cg.FD(); ok {
			t.Errorf("FD() on v1 = %d, true", fd)
		}
	}
	t.Logf("unified=%v, swap accounting=%v, paths %v", cg.Unified(), swapped, paths)

	// Idempotent: a second Create and a Load find the same group.
	again, err := Create(parent, "c1", r)
	if err != nil {
		t.Fatalf("second Create: %v", err)
	}
	again.Close()
	loaded, err := Load(parent, "c1")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !slices.Equal(loaded.Paths(), paths) {
		t.Errorf("Load paths %v, want %v", loaded.Paths(), paths)
	}
	loaded.Close()
	if ok, err := cg.OOMKilled(); ok || err != nil {
		t.Errorf("OOMKilled() of a new group = %v, %v", ok, err)
	}

	if err := cg.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, p := range paths {
		if exists(p) {
			t.Errorf("%s remains after Delete", p)
		}
		if exists(filepath.Dir(p)) {
			t.Errorf("the empty parent %s remains after Delete", filepath.Dir(p))
		}
	}
	if err := cg.Delete(); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if _, err := Load(parent, "c1"); !errdefs.IsNotFound(err) {
		t.Errorf("Load after Delete: %v, want ErrNotFound", err)
	}
	if _, ok := cg.FD(); ok {
		t.Error("FD() after Delete still open")
	}
}

func TestDeleteKeepsBusyParent(t *testing.T) {
	testutil.RequireRoot(t)
	parent := testParent(t)
	a := create(t, parent, Resources{})
	b, err := Create(parent, "c2", Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(); err != nil {
		t.Fatalf("Delete c2: %v", err)
	}
	for _, p := range a.Paths() {
		if !exists(p) {
			t.Errorf("deleting a sibling removed %s", p)
		}
	}
}

func TestCreateFailureRemovesWhatItMade(t *testing.T) {
	testutil.RequireRoot(t)
	parent := testParent(t)
	_, err := Create(parent, "c1", Resources{Memory: 64 << 20, CpusetCpus: strconv.Itoa(runtime.NumCPU() + 64)})
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("Create with an unavailable cpuset: %v, want ErrInvalid naming it", err)
	}
	t.Log(err)
	// testParent's cleanup asserts nothing of parent remains.
	for _, m := range cgroupMounts(t) {
		if p := filepath.Join(m, parent); exists(p) {
			t.Errorf("failed Create left %s", p)
		}
	}
	if _, err := Load(parent, "c1"); !errdefs.IsNotFound(err) {
		t.Errorf("Load after a failed Create: %v, want ErrNotFound", err)
	}
}

func TestDeviceAllowlist(t *testing.T) {
	testutil.RequireRoot(t)
	parent := testParent(t)
	cg := create(t, parent, Resources{})
	checkDeviceAllowlist(t, cg)
	if cg.Unified() {
		t.Log("cgroup v2: the eBPF filter has no devices.list")
	} else {
		got := strings.Split(readTrim(t, dirOf(t, cg, cgroup1.Devices), "devices.list"), "\n")
		want := []string{
			"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
			"c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c *:* m", "b *:* m",
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("devices.list:\n got %q\nwant %q", got, want)
		}
	}
	checkDeviceAdded(t, parent, cg)
}

// checkDeviceAllowlist asserts SECURITY.md's device rules in cg: a host
// disk node can be made but not read, fuse and tun cannot be opened, the
// default nodes work.
func checkDeviceAllowlist(t *testing.T, cg *Cgroup) {
	t.Helper()
	dir := testutil.TempRoot(t)
	if out, err := run(t, cg, "mknod "+dir+"/sda b 8 0"); err != nil {
		t.Fatalf("mknod b 8 0 (b *:* m allows it): %v: %s", err, out)
	}
	out, err := run(t, cg, "head -c1 "+dir+"/sda")
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("reading the host disk node: err %v, output %q; want Operation not permitted", err, out)
	}
	if out, err := run(t, cg, "cat /dev/null && echo x > /dev/null && head -c1 /dev/zero >/dev/null && head -c1 /dev/urandom >/dev/null && echo ok"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("/dev/null, zero, urandom: %v: %q", err, out)
	}
	for _, dev := range []struct{ name, num string }{{"fuse", "10 229"}, {"tun", "10 200"}} {
		node := dir + "/" + dev.name
		if out, err := run(t, cg, "mknod "+node+" c "+dev.num); err != nil {
			t.Fatalf("mknod %s: %v: %s", dev.name, err, out)
		}
		out, err := run(t, cg, "cat "+node)
		if err == nil || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("opening %s (c %s): err %v, output %q; want Operation not permitted", dev.name, dev.num, err, out)
		}
		// Control: outside the group the node opens (or fails for another
		// reason), so the EPERM above is the cgroup's.
		f, err := os.OpenFile(node, os.O_RDWR, 0)
		if errors.Is(err, syscall.EPERM) {
			t.Errorf("host open of %s: %v: the control is not meaningful", node, err)
		}
		if f != nil {
			f.Close()
		}
	}
	if f, err := os.Open(dir + "/sda"); errors.Is(err, syscall.EPERM) {
		t.Errorf("host open of b 8:0: %v: the control is not meaningful", err)
	} else if f != nil {
		f.Close()
	}
}

// checkDeviceAdded re-creates cg's group with tun added (devices: with
// /dev/net/tun): a Create of an existing group replaces its device rules,
// and tun then opens while fuse stays denied.
func checkDeviceAdded(t *testing.T, parent string, cg *Cgroup) {
	t.Helper()
	ten, tunMinor := int64(10), int64(200)
	devs := append(DefaultDevices(), specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &ten, Minor: &tunMinor, Access: "rwm"})
	again, err := Create(parent, "c1", Resources{Devices: devs})
	if err != nil {
		t.Fatalf("re-Create with tun: %v", err)
	}
	again.Close()
	dir := testutil.TempRoot(t)
	out, err := run(t, cg, "mknod "+dir+"/tun c 10 200 && mknod "+dir+"/fuse c 10 229 && cat "+dir+"/tun; echo; cat "+dir+"/fuse")
	before, after, _ := strings.Cut(out, "\n")
	if strings.Contains(before, "Operation not permitted") || !strings.Contains(after, "Operation not permitted") {
		t.Errorf("with tun allowed: err %v, output %q; want tun to open (any other error) and fuse denied", err, out)
	}
	if cg.Unified() {
		fd, err := unix.Open(cg.Paths()[0], unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		q, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
		if err != nil {
			t.Fatal(err)
		}
		if len(q.Programs) != 1 {
			t.Errorf("%d device programs attached after re-Create, want the new one only", len(q.Programs))
		}
	} else if list := readTrim(t, dirOf(t, cg, cgroup1.Devices), "devices.list"); !strings.Contains(list, "c 10:200 rwm") || strings.Contains(list, "10:229") {
		t.Errorf("devices.list after adding tun:\n%s", list)
	}
}

func TestPidsLimit(t *testing.T) {
	testutil.RequireRoot(t)
	parent := testParent(t)
	cg := create(t, parent, Resources{PidsLimit: 20})
	pidsDir := dirOf(t, cg, cgroup1.Pids)
	p := start(t, cg, `i=0; while [ $i -lt 50 ]; do sleep 30 & i=$((i+1)); done; echo spawned; wait`)
	hits := func() uint64 {
		n, _ := keyedValue(readTrim(t, pidsDir, "pids.events"), "max")
		return n
	}
	testutil.Eventually(t, func() bool { return hits() > 0 }, 10*time.Second, "a fork refused by pids.max")
	time.Sleep(200 * time.Millisecond) // let the loop finish or the shell give up
	pids, err := cg.Pids()
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := strconv.Atoi(readTrim(t, pidsDir, "pids.current"))
	if len(pids) > 20 || cur > 20 || len(pids) < 10 {
		t.Errorf("%d processes (pids.current %d) under pids.max 20: want the group filled up to the limit, never past it", len(pids), cur)
	}
	t.Logf("%d processes, pids.current %d, %d forks refused", len(pids), cur, hits())
	if err := cg.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if pids, err := cg.Pids(); err != nil || len(pids) != 0 {
		t.Errorf("after Kill, Pids() = %v, %v", pids, err)
	}
	p.wait(t, 5*time.Second)
}

func TestKillWhileFrozen(t *testing.T) {
	testutil.RequireRoot(t)
	parent := testParent(t)
	checkKillWhileFrozen(t, create(t, parent, Resources{}))
}

// checkKillWhileFrozen: Kill empties a paused (frozen) group.
func checkKillWhileFrozen(t *testing.T, cg *Cgroup) {
	t.Helper()
	p := start(t, cg, "sleep 60 & sleep 60")
	testutil.Eventually(t, func() bool { pids, _ := cg.Pids(); return len(pids) >= 2 }, 5*time.Second, "the sleeps")
	if !cg.setFrozen(true) {
		t.Fatal("could not freeze the group")
	}
	begin := time.Now()
	if err := cg.Kill(); err != nil {
		t.Fatalf("Kill of a frozen group: %v", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Kill took %v", d)
	}
	_, err := p.wait(t, 5*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("shell ended with %v, want SIGKILL", err)
	}
	if pids, err := cg.Pids(); err != nil || len(pids) != 0 {
		t.Errorf("after Kill, Pids() = %v, %v", pids, err)
	}
}

func TestOOMKilled(t *testing.T) {
	testutil.RequireRoot(t)
	parent := testParent(t)
	const limit = 32 << 20
	cg := create(t, parent, Resources{Memory: limit})
	// Keep swap out of it: memory+swap = memory where the kernel accounts
	// swap (a re-Create applies the new limits).
	mem := dirOf(t, cg, cgroup1.Memory)
	if exists(filepath.Join(mem, "memory.memsw.limit_in_bytes")) || exists(filepath.Join(mem, "memory.swap.max")) {
		if _, err := Create(parent, "c1", Resources{Memory: limit, MemorySwap: limit}); err != nil {
			t.Fatalf("re-Create with memswap_limit = mem_limit: %v", err)
		}
	}
	if ok, err := cg.OOMKilled(); ok || err != nil {
		t.Fatalf("OOMKilled() before = %v, %v", ok, err)
	}
	p := start(t, cg, `a=$(head -c 100000000 /dev/zero | tr "\0" x); echo survived ${#a}`)
	out, err := p.wait(t, 60*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the shell holding 100 MB under a 32 MiB limit ended with %v (%q), want SIGKILL", err, out)
	}
	ok, err := cg.OOMKilled()
	if err != nil || !ok {
		t.Errorf("OOMKilled() = %v, %v; want true", ok, err)
	}
}

// useHybridUnified points the v2 backend at a hybrid host's own cgroup2
// mount (/sys/fs/cgroup/unified), so the v2 code runs on a v1 host: its
// device filter, cgroup.procs, cgroup.kill and cgroup.freeze, FD and
// Delete work there; it offers no memory, pids or cpu controller.
func useHybridUnified(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	if cgroups.Mode() != cgroups.Hybrid {
		t.Skip("not a hybrid host: the host-mode tests cover the v2 code on a unified host")
	}
	oldMode, oldMount := hostMode, v2Mount
	hostMode = func() cgroups.CGMode { return cgroups.Unified }
	v2Mount = "/sys/fs/cgroup/unified"
	t.Cleanup(func() { hostMode, v2Mount = oldMode, oldMount })
}

func TestV2OnHybridUnifiedMount(t *testing.T) {
	testutil.RequireRoot(t)
	useHybridUnified(t)
	t.Run("CreateDelete", func(t *testing.T) {
		parent := testParent(t)
		cg, err := Create(parent, "c1", Resources{})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		want := filepath.Join(v2Mount, parent, "c1")
		if !cg.Unified() || !slices.Equal(cg.Paths(), []string{want}) {
			t.Fatalf("Unified() %v, Paths() %v; want the v2 group %s", cg.Unified(), cg.Paths(), want)
		}
		fd, ok := cg.FD()
		var st unix.Stat_t
		if !ok || unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("FD() = %d, %v: want a directory fd", fd, ok)
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || flags&unix.O_PATH == 0 {
			t.Errorf("FD flags %#x, %v: want O_PATH", flags, err)
		}
		if fdf, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || fdf&unix.FD_CLOEXEC == 0 {
			t.Errorf("FD not close-on-exec: %#x, %v", fdf, err)
		}
		loaded, err := Load(parent, "c1")
		if err != nil || !slices.Equal(loaded.Paths(), cg.Paths()) {
			t.Fatalf("Load: %v, %v", loaded, err)
		}
		loaded.Close()
		if ok, err := cg.OOMKilled(); ok || err != nil {
			t.Errorf("OOMKilled() without a memory controller = %v, %v; want false, nil", ok, err)
		}
		if err := cg.Delete(); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if exists(want) || exists(filepath.Dir(want)) {
			t.Errorf("%s or its parent remains", want)
		}
		if _, ok := cg.FD(); ok {
			t.Error("FD() open after Delete")
		}
		if _, err := Load(parent, "c1"); !errdefs.IsNotFound(err) {
			t.Errorf("Load after Delete: %v, want ErrNotFound", err)
		}
	})
	t.Run("MissingController", func(t *testing.T) {
		parent := testParent(t)
		for _, r := range []Resources{{Memory: 64 << 20}, {PidsLimit: 10}, {CPUs: 0.5}} {
			if _, err := Create(parent, "c1", r); !errdefs.IsUnavailable(err) {
				t.Errorf("Create(%+v) where the controller is missing: %v, want ErrUnavailable", r, err)
			}
		}
	})
	t.Run("DeviceAllowlist", func(t *testing.T) {
		parent := testParent(t)
		cg := create(t, parent, Resources{})
		checkDeviceAllowlist(t, cg)
		checkDeviceAdded(t, parent, cg)
	})
	t.Run("CloneIntoCgroup", func(t *testing.T) {
		parent := testParent(t)
		cg := create(t, parent, Resources{})
		fd, ok := cg.FD()
		if !ok {
			t.Fatal("no FD on v2")
		}
		dir := testutil.TempRoot(t)
		if err := unix.Mknod(dir+"/sda", unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(busybox, "sh", "-c", "cat /proc/self/cgroup; head -c1 "+dir+"/sda")
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		out, err := cmd.CombinedOutput()
		if !strings.Contains(string(out), "0::"+parent+"/c1\n") || !strings.Contains(string(out), "Operation not permitted") {
			t.Errorf("started with CLONE_INTO_CGROUP: %v\n%s\nwant it in %s/c1 and denied the disk", err, out, parent)
		}
	})
	t.Run("Kill", func(t *testing.T) {
		parent := testParent(t)
		cg := create(t, parent, Resources{})
		p := start(t, cg, "sleep 60 & sleep 60 & wait")
		testutil.Eventually(t, func() bool { pids, _ := cg.Pids(); return len(pids) == 3 }, 5*time.Second, "three processes")
		if err := cg.Kill(); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		if pids, err := cg.Pids(); err != nil || len(pids) != 0 {
			t.Errorf("after Kill, Pids() = %v, %v", pids, err)
		}
		p.wait(t, 5*time.Second)
	})
	t.Run("KillWhileFrozen", func(t *testing.T) {
		parent := testParent(t)
		checkKillWhileFrozen(t, create(t, parent, Resources{}))
	})
}

// joinChildEnv makes the test binary the helper of
// TestJoinThreadMovesOnlyTheCaller: its main thread joins the group of
// the tasks files at fds 3.. and it prints the cgroups of its main thread,
// then of every other thread.
const joinChildEnv = "CGROUPS_JOIN_CHILD"

func TestMain(m *testing.M) {
	n, err := strconv.Atoi(os.Getenv(joinChildEnv))
	if err != nil {
		os.Exit(m.Run())
	}
	runtime.LockOSThread()
	fds := make([]int, n)
	for i := range fds {
		fds[i] = 3 + i
	}
	if err := JoinThread(fds); err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(1)
	}
	self, _ := os.ReadFile("/proc/thread-self/cgroup")
	os.Stdout.Write(self)
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		if task.Name() != strconv.Itoa(unix.Gettid()) {
			b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/cgroup")
			os.Stdout.WriteString("--- other thread\n")
			os.Stdout.Write(b)
		}
	}
	os.Exit(0)
}

// TestJoinThreadMovesOnlyTheCaller: on v1 a thread that writes the tasks
// files of ThreadFiles is in the group in every hierarchy, and the
// process's other threads are not (init and exec join this way from the
// main thread and then execve from it); on v2 there are no such files
// (clone into the group instead).
func TestJoinThreadMovesOnlyTheCaller(t *testing.T) {
	testutil.RequireRoot(t)
	parent := testParent(t)
	cg := create(t, parent, Resources{})
	files, err := cg.ThreadFiles()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if cg.Unified() {
		if files != nil {
			t.Fatalf("v2: ThreadFiles = %d files, want none", len(files))
		}
		return
	}
	if len(files) != len(cg.Paths()) {
		t.Fatalf("%d tasks files for %d hierarchies", len(files), len(cg.Paths()))
	}
	for _, f := range files {
		if fl, _ := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
			t.Error("a tasks file is not close-on-exec")
		}
	}
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), joinChildEnv+"="+strconv.Itoa(len(files)))
	cmd.ExtraFiles = files
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	self, others, _ := strings.Cut(string(out), "--- other thread\n")
	want := cg.String()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(self), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && f[1] != "" && !strings.HasPrefix(f[1], "name=") {
			if f[2] != want {
				t.Errorf("joined thread: %s, want %s", line, want)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatalf("joined thread in no v1 hierarchy:\n%s", out)
	}
	if others == "" {
		t.Fatalf("the helper has no other thread to compare with:\n%s", out)
	}
	if strings.Contains(others, want) {
		t.Errorf("another thread of the process moved too:\n%s", out)
	}
	if p, err := cg.Pids(); err != nil || len(p) != 0 {
		t.Errorf("after the helper exited, Pids() = %v, %v", p, err)
	}
}
