package testutil

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"berth.dev/berth/network/netnames"
)

// CgroupParent is the cgroup parent berth uses for a state root
// (runtime/linux/cgroups.Parent; examples.TestCgroupParentNamesAgree keeps
// the two equal).
func CgroupParent(root string) string {
	root = filepath.Clean(root)
	if root == "/var/lib/berth" {
		return "/berth"
	}
	sum := sha256.Sum256([]byte(root))
	return "/berth-" + hex.EncodeToString(sum[:])[:8]
}

// Leaks lists what a state root has left on the machine: mounts under it,
// processes naming it (shims), and its cgroup dirs in every hierarchy.
func Leaks(root string) []string {
	var out []string
	for _, m := range mountsUnder(root) {
		out = append(out, "mount "+m)
	}
	for _, p := range processesNaming(root) {
		out = append(out, "process "+strconv.Itoa(p.pid)+": "+p.cmd)
	}
	for _, d := range cgroupDirs(root) {
		out = append(out, "cgroup "+d)
	}
	for _, l := range linksOf(root) {
		out = append(out, "link "+l)
	}
	if nftTableOf(root) {
		out = append(out, "nft table inet "+netnames.Table(root))
	}
	return out
}

// linksOf lists the root's bridges and host veths.
func linksOf(root string) []string {
	ents, _ := os.ReadDir("/sys/class/net")
	var out []string
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, netnames.BridgePrefix(root)) || strings.HasPrefix(n, netnames.VethPrefix(root)) {
			out = append(out, n)
		}
	}
	return out
}

func nftTableOf(root string) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	defer c.CloseLasting()
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false
	}
	for _, t := range ts {
		if t.Name == netnames.Table(root) {
			return true
		}
	}
	return false
}

// CheckLeaks fails t, after its other cleanups registered later have run,
// if the root left mounts, processes or cgroups; then it removes them so
// the next test starts clean. Register it right after creating the root.
func CheckLeaks(t testing.TB, root string) {
	t.Helper()
	t.Cleanup(func() {
		leaks := Leaks(root)
		// A container's veth goes when the kernel frees its namespace,
		// a moment after its last process ended.
		for deadline := time.Now().Add(3 * time.Second); len(leaks) > 0 && onlyLinks(leaks) && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			leaks = Leaks(root)
		}
		if len(leaks) == 0 {
			return
		}
		t.Errorf("the test left behind:\n  %s", strings.Join(leaks, "\n  "))
		Sweep(root)
	})
}

// Sweep kills, unmounts and removes what Leaks finds.
func Sweep(root string) {
	for _, p := range processesNaming(root) {
		syscall.Kill(p.pid, syscall.SIGKILL)
	}
	dirs := cgroupDirs(root)
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, d := range dirs { // deepest first
		for os.Remove(d) != nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	ms := mountsUnder(root)
	for i := len(ms) - 1; i >= 0; i-- {
		syscall.Unmount(ms[i], syscall.MNT_DETACH)
	}
	for _, l := range linksOf(root) {
		if link, err := netlink.LinkByName(l); err == nil {
			netlink.LinkDel(link)
		}
	}
	if nftTableOf(root) {
		if c, err := nftables.New(); err == nil {
			c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: netnames.Table(root)})
			c.Flush()
			c.CloseLasting()
		}
	}
}

func onlyLinks(leaks []string) bool {
	for _, l := range leaks {
		if !strings.HasPrefix(l, "link ") {
			return false
		}
	}
	return true
}

func mountsUnder(root string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == root || strings.HasPrefix(fields[4], root+"/")) {
			out = append(out, fields[4])
		}
	}
	return out
}

type proc struct {
	pid int
	cmd string
}

func processesNaming(root string) []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		for _, a := range args {
			if a == root || strings.HasPrefix(a, root+"/") {
				out = append(out, proc{pid, strings.Join(args, " ")})
				break
			}
		}
	}
	return out
}

// cgroupDirs lists the root's cgroup parent and everything under it in
// every mounted hierarchy, deepest first.
func cgroupDirs(root string) []string {
	parent := CgroupParent(root)
	var out []string
	hier, _ := filepath.Glob("/sys/fs/cgroup/*")
	hier = append(hier, "/sys/fs/cgroup")
	for _, h := range hier {
		base := filepath.Join(h, parent)
		if st, err := os.Lstat(base); err != nil || !st.IsDir() {
			continue
		}
		filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	sort.Slice(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out
}

// RuntimeLeaks is Leaks without the root's networks (their bridges and
// nft table), which outlive containers by design: what containers left.
func RuntimeLeaks(root string) []string {
	var out []string
	for _, l := range Leaks(root) {
		if strings.HasPrefix(l, "link "+netnames.BridgePrefix(root)) || strings.HasPrefix(l, "nft table ") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// ShimsGone says whether no process names root any more (a stopped
// container's shim has ended; its pinned namespace and veth remain until
// it is removed).
func ShimsGone(root string) bool { return len(processesNaming(root)) == 0 }
