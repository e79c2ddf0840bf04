package initproc

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// consoleTerminal gives the command a terminal from the container's own
// devpts: a new pty whose slave becomes stdin, stdout, stderr, the
// controlling terminal and /dev/console (checked to be a pty slave, major
// 136: CVE-2025-52565), and whose master goes to the shim over the sync
// socket. Runs after pivot_root, before the privilege drop.
func consoleTerminal(rows, cols uint16) error {
	master, err := unix.Open("/dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/pts/ptmx: %w", err)
	}
	defer unix.Close(master)
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlock the pty: %w", err)
	}
	if rows > 0 && cols > 0 {
		unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(master), uintptr(unix.TIOCGPTPEER), uintptr(unix.O_RDWR|unix.O_NOCTTY))
	if e != 0 {
		return fmt.Errorf("open the pty slave: %w", e)
	}
	slave := int(r)
	var st unix.Stat_t
	if err := unix.Fstat(slave, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 136 {
		return fmt.Errorf("the pty slave is not a pty (major %d)", unix.Major(st.Rdev))
	}
	n, err := unix.IoctlGetInt(master, unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("pty number: %w", err)
	}
	// /dev is berth's fresh tmpfs: create the console there and bind the
	// slave (by its fd, not a path) over it.
	if err := os.WriteFile("/dev/console", nil, 0o600); err != nil {
		return fmt.Errorf("/dev/console: %w", err)
	}
	if err := unix.Mount("/proc/self/fd/"+strconv.Itoa(slave), "/dev/console", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind /dev/pts/%d on /dev/console: %w", n, err)
	}
	if err := sendFD(SyncFD, master); err != nil {
		return fmt.Errorf("hand the terminal to the shim: %w", err)
	}
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(slave, fd, 0); err != nil {
			return fmt.Errorf("dup the terminal to fd %d: %w", fd, err)
		}
	}
	unix.Close(slave)
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("make it the controlling terminal: %w", err)
	}
	return nil
}

func sendFD(sock, fd int) error {
	return unix.Sendmsg(sock, []byte(`{"pty":true}`), unix.UnixRights(fd), nil, 0)
}
