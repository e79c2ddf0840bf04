// Package cgroups puts a container's processes in a cgroup and applies its
// limits: memory (and memory+swap), CPU quota, shares and cpuset, a pids
// limit and the device allowlist of SECURITY.md §2. It also reports OOM
// kills and kills and removes the group.
//
// The host's cgroup mode decides the backend (github.com/containerd/cgroups/v3):
// on a unified (pure cgroup v2) host the group is one directory under
// /sys/fs/cgroup and devices are confined by an eBPF filter; on a legacy or
// hybrid host the group is a directory in each v1 hierarchy berth uses
// (blkio, cpu, cpuacct, cpuset, devices, freezer, memory, pids) and devices
// are confined by devices.deny/devices.allow. Group paths are parent/id,
// where parent comes from Parent (one per state root).
package cgroups

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
)

// Resources are a container's limits (zero = unlimited / kernel default).
type Resources struct {
	// Memory is the memory limit in bytes (mem_limit, -m).
	Memory int64
	// MemorySwap is the memory+swap limit in bytes (memswap_limit): -1 is
	// unlimited swap; 0 is Docker's default, twice Memory when Memory is set
	// and the kernel accounts swap (nothing otherwise). A positive value
	// needs swap accounting: without it Create fails with ErrUnavailable.
	MemorySwap int64
	// CPUs is --cpus: a CFS quota of CPUs*100000 µs per 100000 µs period.
	CPUs float64
	// CPUShares is cpu_shares (v1 cpu.shares; on v2 converted to
	// cpu.weight the way runc converts it).
	CPUShares uint64
	// CpusetCpus and CpusetMems are cpuset lists such as "0-3,5".
	CpusetCpus, CpusetMems string
	// PidsLimit is the pids limit: > 0 a limit; 0 or -1 unlimited.
	PidsLimit int64
	// Devices is the whole device rule list, applied in order after an
	// implicit "deny all" (so a list that does not start with one still
	// denies what it does not allow). nil means DefaultDevices(); to add a
	// device, append its rule to DefaultDevices(). An empty non-nil list
	// denies every device.
	Devices []specs.LinuxDeviceCgroup
}

// DefaultDevices returns the default device rules of SECURITY.md §2: deny
// all, then allow rwm on the char devices null (1:3), zero (1:5), full
// (1:7), random (1:8), urandom (1:9), tty (5:0), console (5:1), ptmx (5:2)
// and the pty slaves (136:*), and mknod (only) of any char or block device.
// fuse (10:229) and tun (10:200) are not allowed; a service gets them only
// through devices:. A nil Major or Minor matches any number.
func DefaultDevices() []specs.LinuxDeviceCgroup {
	num := func(n int64) *int64 { return &n }
	char := func(major int64, minor *int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: num(major), Minor: minor, Access: access}
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Type: "a", Access: "rwm"},
		char(1, num(3), "rwm"),
		char(1, num(5), "rwm"),
		char(1, num(7), "rwm"),
		char(1, num(8), "rwm"),
		char(1, num(9), "rwm"),
		char(5, num(0), "rwm"),
		char(5, num(1), "rwm"),
		char(5, num(2), "rwm"),
		char(136, nil, "rwm"),
		{Allow: true, Type: "c", Access: "m"},
		{Allow: true, Type: "b", Access: "m"},
	}
}

// Parent returns the cgroup parent of a state root: "/berth" for the
// default root (/var/lib/berth), else "/berth-" and the first 8 hex digits
// of the sha256 of the root's clean absolute path, so two roots never share
// cgroups (ARCHITECTURE.md §5).
func Parent(stateRoot string) string {
	p := filepath.Clean(stateRoot)
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if p == state.DefaultRootPath {
		return "/berth"
	}
	sum := sha256.Sum256([]byte(p))
	return "/berth-" + hex.EncodeToString(sum[:4])
}

const (
	cpuPeriod = 100000  // µs, Docker's CFS period
	minMemory = 6 << 20 // Docker's minimum mem_limit
	// killTimeout bounds Kill's wait for the group to empty.
	killTimeout = 5 * time.Second
	// freezeTimeout bounds the wait for a freezer to report frozen.
	freezeTimeout = time.Second
)

// Cgroup is a container's cgroup: one directory per v1 hierarchy, or one
// cgroup v2 directory. Get one from Create or Load; its methods are safe
// for concurrent use. On a v2 host it holds an fd (see FD) that Close or
// Delete releases.
type Cgroup struct {
	parent, id string
	unified    bool

	// dirs are the group's distinct directories (one per mounted v1
	// hierarchy, or the v2 one); parentDirs the parent's, in the same order.
	dirs, parentDirs []string
	// byController maps a v1 controller to the group's directory in its
	// hierarchy (cpu and cpuacct share one when co-mounted).
	byController map[cgroup1.Name]string
	// missing lists v1 hierarchies where Load found no directory: such a
	// group only serves Kill, Delete and the read methods.
	missing []cgroup1.Name

	cg1 cgroup1.Cgroup
	cg2 *cgroup2.Manager

	mu sync.Mutex
	fd int // v2: O_PATH fd of the group directory, -1 when closed
}

// hostMode is cgroups.Mode, a variable for tests.
var hostMode = cgroups.Mode

// UnifiedHost reports whether berth uses cgroup v2 on this host: only on a
// pure v2 host; hybrid hosts use their v1 hierarchies.
func UnifiedHost() bool {
	u, err := unifiedHost()
	return err == nil && u
}

func unifiedHost() (bool, error) {
	switch hostMode() {
	case cgroups.Unified:
		return true, nil
	case cgroups.Legacy, cgroups.Hybrid:
		return false, nil
	}
	return false, errdefs.Unavailablef("cgroups: no cgroup filesystem is mounted at /sys/fs/cgroup: mount cgroup2 there (or the v1 controllers under it)")
}

// Create makes the cgroup parent/id with limits r: in every v1 hierarchy
// berth uses that is mounted (devices is required, and the controller of
// each limit that r sets), or in cgroup v2 on a unified host. It is
// idempotent: an existing group gets r applied. On any error it removes the
// directories it made. Invalid r or names give ErrInvalid; a missing
// kernel feature that r needs gives ErrUnavailable.
func Create(parent, id string, r Resources) (*Cgroup, error) {
	if err := checkNames(parent, id); err != nil {
		return nil, err
	}
	if err := Validate(r); err != nil {
		return nil, err
	}
	uni, err := unifiedHost()
	if err != nil {
		return nil, err
	}
	devs := deviceRules(r.Devices)
	// A concurrent Delete of the last sibling may remove the parent between
	// its creation and the group's: retry then.
	for attempt := 0; ; attempt++ {
		var c *Cgroup
		if uni {
			c, err = createV2(parent, id, r, devs)
		} else {
			c, err = createV1(parent, id, r, devs)
		}
		if err == nil || attempt == 2 || !errors.Is(err, fs.ErrNotExist) {
			return c, err
		}
	}
}

// Load opens the existing cgroup parent/id. It returns an error wrapping
// errdefs.ErrNotFound when the group is in no hierarchy.
func Load(parent, id string) (*Cgroup, error) {
	if err := checkNames(parent, id); err != nil {
		return nil, err
	}
	uni, err := unifiedHost()
	if err != nil {
		return nil, err
	}
	if uni {
		return loadV2(parent, id)
	}
	return loadV1(parent, id)
}

// Unified reports whether the group is a cgroup v2 group.
func (c *Cgroup) Unified() bool { return c.unified }

// String returns the group's path below the cgroup mounts, parent/id.
func (c *Cgroup) String() string { return c.parent + "/" + c.id }

// Add moves the process pid (all its threads) into the group: on v1 into
// the cgroup.procs of every hierarchy, on v2 into cgroup.procs. A v1 group
// that Load found missing from some hierarchy refuses (ErrConflict): it
// would not confine the process.
func (c *Cgroup) Add(pid int) error {
	if pid <= 0 {
		return errdefs.Invalidf("cgroups: add pid %d to %s: not a process id", pid, c)
	}
	var err error
	if c.unified {
		err = c.cg2.AddProc(uint64(pid))
	} else {
		if len(c.missing) > 0 {
			return errdefs.Conflictf("cgroups: add pid %d to %s: the group is missing from the %v hierarchies, so it would not confine the process: delete and re-create it", pid, c, c.missing)
		}
		err = c.cg1.AddProc(uint64(pid))
	}
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("cgroups: add pid %d to %s: the process is gone: %w", pid, c, err)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return errdefs.NotFoundf("cgroups: add pid %d to %s: the group was removed (%w): create it again", pid, c, err)
		}
		return fmt.Errorf("cgroups: add pid %d to %s: %w", pid, c, err)
	}
	return nil
}

// ThreadFiles opens, on v1, the tasks file of each of the group's
// hierarchies (O_WRONLY|O_CLOEXEC) for JoinThread. Moving a process with
// cgroup.procs (Add) takes the kernel's global threadgroup lock, whose
// first write waits for an RCU grace period (5-15 ms on a quiet host); a
// thread that writes "0" to tasks moves itself alone and skips it. So a
// process that is about to execve from its main thread (after which that
// thread is the whole process) joins the group cheaply: the starter opens
// these, hands them over, and the child calls JoinThread on that thread.
// On v2 it returns nil (clone into the group with FD instead). Like Add,
// a v1 group missing from some hierarchy refuses (ErrConflict).
func (c *Cgroup) ThreadFiles() ([]*os.File, error) {
	if c.unified {
		return nil, nil
	}
	if len(c.missing) > 0 {
		return nil, errdefs.Conflictf("cgroups: join %s: the group is missing from the %v hierarchies, so it would not confine the process: delete and re-create it", c, c.missing)
	}
	var out []*os.File
	for _, d := range c.dirs {
		f, err := os.OpenFile(filepath.Join(d, "tasks"), os.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil, errdefs.NotFoundf("cgroups: join %s: the group was removed (%w): create it again", c, err)
			}
			return nil, fmt.Errorf("cgroups: join %s: %w", c, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// JoinThread moves the calling OS thread, and only it, into the group
// whose tasks files (ThreadFiles) fds are: "0" names the writer. The
// caller must be locked to its thread and exec from it (or make sure its
// other threads need no confinement).
func JoinThread(fds []int) error {
	for _, fd := range fds {
		for {
			_, err := unix.Write(fd, []byte("0"))
			if err == nil {
				break
			}
			if !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("cgroups: join the container's cgroup: %w", err)
			}
		}
	}
	return nil
}

// FD returns, on cgroup v2, an O_PATH|O_DIRECTORY|O_CLOEXEC fd of the group
// directory for clone3's CLONE_INTO_CGROUP (syscall.SysProcAttr.UseCgroupFD
// and CgroupFD). The Cgroup owns it: it stays valid until Close or Delete.
// On v1, or after Close, it returns false.
func (c *Cgroup) FD() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.unified || c.fd < 0 {
		return -1, false
	}
	return c.fd, true
}

// Close releases the fd FD returns; the cgroup itself stays. Other methods
// keep working.
func (c *Cgroup) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	if err != nil {
		return fmt.Errorf("cgroups: close the fd of %s: %w", c, err)
	}
	return nil
}

// Paths returns the group's absolute directories: one per v1 hierarchy (a
// co-mounted cpu,cpuacct hierarchy counts once), or the v2 directory.
func (c *Cgroup) Paths() []string { return append([]string(nil), c.dirs...) }

// Pids returns the ids of the processes in the group and any groups below
// it, sorted, each once (on v1 the union over the hierarchies).
func (c *Cgroup) Pids() ([]int, error) {
	seen := map[int]bool{}
	for _, d := range c.dirs {
		if err := collectPids(d, seen); err != nil {
			return nil, fmt.Errorf("cgroups: list the processes of %s: %w", c, err)
		}
	}
	pids := make([]int, 0, len(seen))
	for p := range seen {
		pids = append(pids, p)
	}
	sort.Ints(pids)
	return pids, nil
}

// collectPids adds the pids in dir's cgroup.procs and below to seen; a
// directory that vanishes meanwhile has none.
func collectPids(dir string, seen map[int]bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("%s/cgroup.procs: bad pid %q", dir, f)
		}
		seen[pid] = true
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := collectPids(filepath.Join(dir, e.Name()), seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// OOMKilled reports whether the kernel's OOM killer has killed a process
// of the group (normally because the group hit its memory limit): the
// oom_kill count of memory.oom_control (v1) or memory.events (v2) is above
// zero. Without the memory controller it reports false. A removed group
// gives ErrNotFound.
func (c *Cgroup) OOMKilled() (bool, error) {
	var file string
	if c.unified {
		file = filepath.Join(c.dirs[0], "memory.events")
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			if _, err := os.Stat(c.dirs[0]); err != nil {
				return false, errdefs.NotFoundf("cgroups: read the OOM kills of %s: %w", c, err)
			}
			return false, nil // memory controller not enabled
		}
	} else {
		dir, ok := c.byController[cgroup1.Memory]
		if !ok {
			return false, nil
		}
		file = filepath.Join(dir, "memory.oom_control")
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return false, errdefs.NotFoundf("cgroups: read the OOM kills of %s: %w", c, err)
	}
	if err != nil {
		return false, fmt.Errorf("cgroups: read the OOM kills of %s: %w", c, err)
	}
	n, err := keyedValue(string(b), "oom_kill")
	if err != nil {
		return false, fmt.Errorf("cgroups: %s: %w", file, err)
	}
	return n > 0, nil
}

// keyedValue returns the value of key in a flat-keyed cgroup file ("key N"
// lines); a missing key is 0.
func keyedValue(content, key string) (uint64, error) {
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bad %s value %q", key, f[1])
			}
			return n, nil
		}
	}
	return 0, nil
}

// Kill sends SIGKILL to every process in the group and waits (at most 5 s)
// until it is empty. On v2 it writes cgroup.kill when the kernel has it;
// otherwise it freezes the group (so nothing forks meanwhile), kills each
// process and thaws it. A group already gone is empty: nil.
func (c *Cgroup) Kill() error {
	deadline := time.Now().Add(killTimeout)
	killed := false
	if c.unified {
		err := os.WriteFile(filepath.Join(c.dirs[0], "cgroup.kill"), []byte("1"), 0)
		switch {
		case err == nil:
			killed = true
		case errors.Is(err, fs.ErrNotExist):
			if _, serr := os.Stat(c.dirs[0]); serr != nil {
				return nil // the group is gone
			}
			// kernel < 5.14: no cgroup.kill; freeze, kill, thaw below
		default:
			return fmt.Errorf("cgroups: kill %s: write cgroup.kill: %w", c, err)
		}
	}
	if !killed {
		frozen := c.setFrozen(true)
		err := c.signalAll()
		if frozen {
			c.setFrozen(false)
		}
		if err != nil {
			return err
		}
	}
	pause := 5 * time.Millisecond
	for {
		pids, err := c.Pids()
		if err != nil {
			return fmt.Errorf("cgroups: kill %s: %w", c, err)
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroups: kill %s: %d processes %v still alive %v after SIGKILL (in uninterruptible sleep?): retry, or see /proc/PID/stack", c, len(pids), pids, killTimeout)
		}
		// Processes forked past the freeze (no freezer) get theirs now.
		if err := c.signalAll(); err != nil {
			return err
		}
		time.Sleep(pause)
		if pause < 100*time.Millisecond {
			pause *= 2
		}
	}
}

// signalAll sends SIGKILL to every process in the group.
func (c *Cgroup) signalAll() error {
	pids, err := c.Pids()
	if err != nil {
		return fmt.Errorf("cgroups: kill %s: %w", c, err)
	}
	for _, p := range pids {
		if err := unix.Kill(p, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("cgroups: kill %s: SIGKILL pid %d: %w", c, p, err)
		}
	}
	return nil
}

// setFrozen freezes or thaws the group and reports whether it reached that
// state within freezeTimeout (false without a freezer).
func (c *Cgroup) setFrozen(frozen bool) bool {
	var file, value, stateFile, want string
	if c.unified {
		file, value, stateFile, want = filepath.Join(c.dirs[0], "cgroup.freeze"), "0", filepath.Join(c.dirs[0], "cgroup.events"), "frozen 0"
		if frozen {
			value, want = "1", "frozen 1"
		}
	} else {
		dir, ok := c.byController[cgroup1.Freezer]
		if !ok {
			return false
		}
		file, value, want = filepath.Join(dir, "freezer.state"), "THAWED", "THAWED"
		stateFile = file
		if frozen {
			value, want = "FROZEN", "FROZEN"
		}
	}
	deadline := time.Now().Add(freezeTimeout)
	for {
		// v1 may stay FREEZING until the write is repeated.
		if err := os.WriteFile(file, []byte(value), 0); err != nil {
			return false
		}
		b, err := os.ReadFile(stateFile)
		if err != nil {
			return false
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(line) == want {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// Delete removes the group's directories (and any groups below them) from
// every hierarchy, retrying briefly while the kernel reports it busy, then
// the parent's where it is now empty. A group already gone is nil. It
// releases the fd of FD.
func (c *Cgroup) Delete() error {
	_ = c.Close()
	var errs []error
	for _, d := range c.dirs {
		if err := removeTree(d); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cgroups: delete %s: %w", c, errors.Join(errs...))
	}
	for _, p := range c.parentDirs {
		err := unix.Rmdir(p)
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("cgroups: delete %s: remove the empty parent %s: %w", c, p, err)
		}
	}
	return nil
}

// removeTree removes the cgroup directory dir and the groups below it,
// deepest first. A cgroup directory is removed with rmdir alone (its files
// are kernel interfaces); EBUSY (processes still exiting) is retried for
// about a second.
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	pause := 10 * time.Millisecond
	for i := 0; ; i++ {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || i == 6 {
			if errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("remove %s: %w: processes are still in it: Kill the group first", dir, err)
			}
			return fmt.Errorf("remove %s: %w", dir, err)
		}
		time.Sleep(pause)
		pause *= 2
	}
}

// nameRE is what a parent component or an id may look like.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// checkNames rejects a parent that is not a clean absolute path of plain
// names, or an id that is not one plain name: both become paths on the host.
func checkNames(parent, id string) error {
	if !strings.HasPrefix(parent, "/") || filepath.Clean(parent) != parent || parent == "/" {
		return errdefs.Invalidf("cgroups: parent %q: want a clean absolute path such as /berth (see Parent)", parent)
	}
	for _, p := range strings.Split(parent[1:], "/") {
		if !nameRE.MatchString(p) {
			return errdefs.Invalidf("cgroups: parent %q: component %q is not a plain name ([A-Za-z0-9][A-Za-z0-9_.-]*)", parent, p)
		}
	}
	if !nameRE.MatchString(id) {
		return errdefs.Invalidf("cgroups: id %q is not a plain name ([A-Za-z0-9][A-Za-z0-9_.-]*)", id)
	}
	return nil
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// undo removes the directories of made (deepest first), best effort: it is
// the cleanup of a failed Create.
func undo(made []string) {
	for i := len(made) - 1; i >= 0; i-- {
		_ = removeTree(made[i])
	}
}

// explain turns an error of writing a cgroup file into a classed one when
// the cause is the input: an unavailable cpuset, a limit the kernel refuses.
func explain(err error, what string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		base := filepath.Base(pe.Path)
		if (base == "cpuset.cpus" || base == "cpuset.mems") && (errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ERANGE)) {
			avail := readParentCpuset(pe.Path)
			return errdefs.Invalidf("cgroups: %s: %s: the requested %s are not available on this host (available: %s): %w", what, base, strings.TrimPrefix(base, "cpuset."), avail, err)
		}
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EROFS) {
			return fmt.Errorf("cgroups: %s: %w: berth must run as root with a writable /sys/fs/cgroup", what, err)
		}
	}
	return fmt.Errorf("cgroups: %s: %w", what, err)
}

// readParentCpuset returns the effective cpuset list of the parent of the
// group whose cpuset file is file, or "unknown".
func readParentCpuset(file string) string {
	parent := filepath.Dir(filepath.Dir(file))
	kind := strings.TrimPrefix(filepath.Base(file), "cpuset.")
	for _, name := range []string{"cpuset.effective_" + kind, "cpuset." + kind + ".effective", "cpuset." + kind} {
		if b, err := os.ReadFile(filepath.Join(parent, name)); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" {
				return s
			}
		}
	}
	return "unknown"
}
