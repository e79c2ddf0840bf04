// Command probe makes raw system calls the default seccomp profile decides
// on and prints one "name=RESULT" line each: "ok" when the call succeeded,
// else the errno's name. seccomp.TestInContainer runs it inside containers
// with and without the profile, so a denial can be told from the kernel's
// own answer.
package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

// The numbers of the calls the standard library does not name, per
// architecture (x/sys would give them; the probe keeps to the standard
// library).
var numbers = map[string]map[string]uintptr{
	"amd64": {"keyctl": 250, "add_key": 248, "userfaultfd": 323, "bpf": 321, "clone3": 435},
	"arm64": {"keyctl": 219, "add_key": 217, "userfaultfd": 282, "bpf": 280, "clone3": 435},
}

const (
	keyctlGetKeyringID    = 0
	keySpecSessionKeyring = ^uintptr(2) // -3
)

func errName(e syscall.Errno) string {
	names := map[syscall.Errno]string{syscall.EPERM: "EPERM", syscall.ENOSYS: "ENOSYS", syscall.EINVAL: "EINVAL",
		syscall.EFAULT: "EFAULT", syscall.EACCES: "EACCES", syscall.ENOENT: "ENOENT", syscall.E2BIG: "E2BIG",
		syscall.EBADF: "EBADF", syscall.ENOKEY: "ENOKEY", syscall.EDQUOT: "EDQUOT"}
	if n, ok := names[e]; ok {
		return n
	}
	return fmt.Sprintf("errno%d", int(e))
}

func result(r uintptr, e syscall.Errno) string {
	if e != 0 {
		return errName(e)
	}
	return "ok"
}

func main() {
	nr, ok := numbers[runtime.GOARCH]
	if !ok {
		fmt.Println("arch=unsupported")
		os.Exit(2)
	}
	typ, desc := []byte("user\x00"), []byte("berth-probe\x00")
	for _, name := range os.Args[1:] {
		var res string
		switch name {
		case "keyctl":
			r, _, e := syscall.Syscall(nr["keyctl"], keyctlGetKeyringID, keySpecSessionKeyring, 0)
			res = result(r, e)
		case "add_key":
			r, _, e := syscall.Syscall6(nr["add_key"], uintptr(unsafe.Pointer(&typ[0])), uintptr(unsafe.Pointer(&desc[0])),
				uintptr(unsafe.Pointer(&desc[0])), 4, keySpecSessionKeyring, 0)
			res = result(r, e)
		case "userfaultfd":
			r, _, e := syscall.Syscall(nr["userfaultfd"], 0, 0, 0)
			res = result(r, e)
		case "bpf":
			// BPF_MAP_CREATE with a NULL attr: the kernel says EFAULT or
			// EPERM (no CAP_BPF); the profile says EPERM before it.
			r, _, e := syscall.Syscall(nr["bpf"], 0, 0, 0)
			res = result(r, e)
		case "clone3":
			r, _, e := syscall.Syscall(nr["clone3"], 0, 0, 0) // NULL args: EFAULT/EINVAL from the kernel
			res = result(r, e)
		case "unshare-user":
			r, _, e := syscall.RawSyscall(syscall.SYS_UNSHARE, syscall.CLONE_NEWUSER, 0, 0)
			res = result(r, e)
		case "mount":
			res = "ok"
			if err := syscall.Mount("none", "/mnt", "tmpfs", 0, ""); err != nil {
				res = errName(err.(syscall.Errno))
			} else {
				syscall.Unmount("/mnt", 0)
			}
		default:
			res = "unknown"
		}
		fmt.Printf("%s=%s\n", name, res)
	}
}
