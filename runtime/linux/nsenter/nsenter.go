// Package nsenter starts a process inside the namespaces of another one.
// Go cannot setns a whole multi-threaded process into a mount namespace,
// so the namespaces are joined by one locked OS thread (after unshare
// (CLONE_FS), which setns(CLONE_NEWNS) requires), the process is forked
// from that thread, and the thread is never unlocked: Go discards it when
// its goroutine ends, and no other code ever runs on it.
package nsenter

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Kinds are the namespaces a container process is in, in join order: the
// mount namespace last, since /proc/PID/ns is read from the host's /proc.
var Kinds = []string{"ipc", "uts", "net", "pid", "cgroup", "mnt"}

var nsFlag = map[string]int{"ipc": unix.CLONE_NEWIPC, "uts": unix.CLONE_NEWUTS, "net": unix.CLONE_NEWNET,
	"pid": unix.CLONE_NEWPID, "cgroup": unix.CLONE_NEWCGROUP, "mnt": unix.CLONE_NEWNS}

// Start starts cmd (which must have only *os.File stdio) from a thread in
// the namespaces of pid that differ from the caller's; cmd's children of
// pid's PID namespace. It returns once cmd has started (or failed to).
func Start(pid int, cmd *exec.Cmd) error {
	type ns struct {
		fd   int
		flag int
		kind string
	}
	var join []ns
	defer func() {
		for _, n := range join {
			unix.Close(n.fd)
		}
	}()
	for _, kind := range Kinds {
		target := "/proc/" + strconv.Itoa(pid) + "/ns/" + kind
		same, err := sameNS(target, "/proc/self/ns/"+kind)
		if err != nil {
			return fmt.Errorf("nsenter: %s namespace of pid %d: %w", kind, pid, err)
		}
		if same {
			continue // host networking, or no cgroup namespace on v1
		}
		fd, err := unix.Open(target, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("nsenter: open %s: %w", target, err)
		}
		join = append(join, ns{fd, nsFlag[kind], kind})
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // for good: this thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("nsenter: unshare CLONE_FS: %w", err)
			return
		}
		for _, n := range join {
			if err := unix.Setns(n.fd, n.flag); err != nil {
				errc <- fmt.Errorf("nsenter: join the %s namespace of pid %d: %w", n.kind, pid, err)
				return
			}
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

func sameNS(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("the process is gone: %w", err)
		}
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
