package linux

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// ptsMajor is the major number of Unix98 pty slaves.
const ptsMajor = 136

// containerPty opens a new terminal in the devpts instance of the running
// container pid: the master through /proc/PID/root resolved inside that
// root (an image cannot redirect it), the slave from the master with
// TIOCGPTPEER (no path lookup at all), and both are checked to be what
// they claim (CVE-2025-52565 class: a fake console).
func containerPty(pid int) (master, slave *os.File, err error) {
	root, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open the container's root: %w", err)
	}
	defer unix.Close(root)
	// dev/pts is its own mount: resolve to it first, then open ptmx in it.
	pts, err := unix.Openat2(root, "dev/pts", &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return nil, nil, fmt.Errorf("the container's /dev/pts: %w", err)
	}
	defer unix.Close(pts)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(pts, &sfs); err != nil || sfs.Type != unix.DEVPTS_SUPER_MAGIC {
		return nil, nil, errdefs.Invalidf("the container's /dev/pts is not a devpts mount; refusing to take a terminal from it")
	}
	mfd, err := unix.Openat2(pts, "ptmx", &unix.OpenHow{Flags: unix.O_RDWR | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV})
	if err != nil {
		return nil, nil, fmt.Errorf("open the container's /dev/pts/ptmx: %w", err)
	}
	if err := checkChar(mfd, 5, 2); err != nil {
		unix.Close(mfd)
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(mfd)
		return nil, nil, fmt.Errorf("unlock the terminal: %w", err)
	}
	sfd, err := ptyPeer(mfd)
	if err != nil {
		unix.Close(mfd)
		return nil, nil, fmt.Errorf("open the terminal's slave: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != ptsMajor {
		unix.Close(mfd)
		unix.Close(sfd)
		return nil, nil, errdefs.Invalidf("the container's terminal slave is not a pty (major %d)", unix.Major(st.Rdev))
	}
	return os.NewFile(uintptr(mfd), "pty master"), os.NewFile(uintptr(sfd), "pty slave"), nil
}

// ptyPeer is ioctl(TIOCGPTPEER, O_RDWR|O_NOCTTY|O_CLOEXEC).
func ptyPeer(mfd int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), uintptr(unix.TIOCGPTPEER), uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func checkChar(fd int, major, minor uint32) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != major || unix.Minor(st.Rdev) != minor {
		return errdefs.Invalidf("the container's ptmx is not the pty multiplexer (%d:%d)", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return nil
}

func timeNowPlus() time.Time { return time.Now().Add(200 * time.Millisecond) }
