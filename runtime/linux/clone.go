package linux

import "golang.org/x/sys/unix"

// Namespaces every container gets; the network one unless it shares
// another's (host, container:…).
const (
	cloneNS  = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC
	cloneNet = unix.CLONE_NEWNET
)
