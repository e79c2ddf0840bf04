package linux

import "golang.org/x/sys/unix"

// Namespaces every container gets; the network one unless it shares
// another's (host, container:…).
const (
	cloneNS  = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC
	cloneNet = unix.CLONE_NEWNET
)

// unifiedCgroups reports a pure cgroup v2 host (/sys/fs/cgroup is cgroup2);
// containers get their own cgroup namespace there.
func unifiedCgroups() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}
