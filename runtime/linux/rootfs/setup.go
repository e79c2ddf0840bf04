package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// DefaultMasked are hidden from containers (SECURITY.md §2): files get
// /dev/null bound over them, directories an empty read-only tmpfs.
var DefaultMasked = []string{
	"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats",
	"/sys/devices/virtual/powercap", "/sys/firmware",
}

// DefaultReadonly are made read-only in containers (SECURITY.md §2).
var DefaultReadonly = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

// Config describes a container root filesystem to set up.
type Config struct {
	Root       string            // the container's rootfs directory
	Overlay    *Overlay          // mounted at Root once / is rslave; nil if Root is mounted already
	ReadOnly   bool              // read_only: true
	Privileged bool              // no masks, no read-only paths
	ShmSize    int64             // bytes of /dev/shm; 0 means 64 MiB
	Masked     []string          // nil means DefaultMasked
	Readonly   []string          // nil means DefaultReadonly
	Mounts     []Mount           // applied after /proc,/dev,/sys and before pivot_root, in order
	Sysctls    map[string]string // written after pivot_root, before the read-only paths
}

type devNode struct {
	name         string
	major, minor uint32
}

// The minimal /dev (SECURITY.md §2).
var devNodes = []devNode{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}

// Setup turns cfg.Root into the process's root: / becomes rslave, /proc
// (which must be a real directory) gets a fresh procfs, /dev a new tmpfs
// with the minimal nodes, devpts, shm and mqueue, /sys a read-only sysfs,
// then cfg.Mounts in order; then pivot_root into cfg.Root and detach the
// old root, then mask, write cfg.Sysctls and make read-only what Docker
// does. Every pre-pivot target is opened inside
// the root (openat2 RESOLVE_IN_ROOT) and mounted through its fd, so an
// image symlink cannot redirect a mount to the host.
//
// It runs as root in a new mount and PID namespace (the init role, before
// dropping privileges). Nothing it mounts is visible outside that mount
// namespace.
func Setup(cfg Config) error {
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("rootfs: make / rslave: %w", err)
	}
	if cfg.Overlay != nil {
		if err := MountOverlay(*cfg.Overlay, cfg.Root); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	root, err := unix.Open(cfg.Root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("rootfs: open %s: %w", cfg.Root, err)
	}
	defer unix.Close(root)

	if err := mountProc(root); err != nil {
		return err
	}
	if err := mountDev(root, cfg.ShmSize); err != nil {
		return err
	}
	if err := mountSys(root); err != nil {
		return err
	}
	if err := applyMounts(root, cfg.Mounts); err != nil {
		return err
	}
	if err := pivot(cfg.Root); err != nil {
		return err
	}
	if !cfg.Privileged {
		masked := cfg.Masked
		if masked == nil {
			masked = append(append([]string(nil), DefaultMasked...), thermalThrottle()...)
		}
		for _, p := range masked {
			if err := mask(p); err != nil {
				return err
			}
		}
	}
	if err := writeSysctls(cfg.Sysctls); err != nil {
		return err
	}
	if !cfg.Privileged {
		ro := cfg.Readonly
		if ro == nil {
			ro = DefaultReadonly
		}
		for _, p := range ro {
			if err := readonly(p); err != nil {
				return err
			}
		}
	}
	if cfg.ReadOnly {
		return RemountRootReadOnly()
	}
	return nil
}

// RemountRootReadOnly makes the process's / read-only (read_only: true);
// init calls it itself when it still has to create the working directory.
func RemountRootReadOnly() error {
	if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("rootfs: make / read-only: %w", err)
	}
	return nil
}

// dirIn opens name (one component) under dirfd as a directory, without
// following a symlink; a missing one is created (0755) when create.
func dirIn(dirfd int, name string, create bool) (int, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) && create {
		if err := unix.Mkdirat(dirfd, name, 0o755); err != nil {
			return -1, err
		}
		err = unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -1, errdefs.Invalidf("/%s in the image is not a directory (a symlink or file there is refused)", name)
	}
	return unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// mountAt mounts onto the directory fd target refers to.
func mountAt(source string, target int, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, fdPath(target), fstype, flags, data)
}

func mountProc(root int) error {
	fd, err := dirIn(root, "proc", true)
	if err != nil {
		return fmt.Errorf("rootfs: /proc: %w", err)
	}
	defer unix.Close(fd)
	if err := mountAt("proc", fd, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("rootfs: mount /proc: %w", err)
	}
	return nil
}

func mountSys(root int) error {
	fd, err := dirIn(root, "sys", true)
	if err != nil {
		return fmt.Errorf("rootfs: /sys: %w", err)
	}
	defer unix.Close(fd)
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY)
	if err := mountAt("sysfs", fd, "sysfs", flags, ""); err != nil {
		return fmt.Errorf("rootfs: mount /sys: %w", err)
	}
	return nil
}

// mountDev gives the container a new tmpfs /dev, replacing whatever the
// image has there (a symlink included: the replacement is written to the
// container's upper dir, never followed).
func mountDev(root int, shmSize int64) error {
	var st unix.Stat_t
	if err := unix.Fstatat(root, "dev", &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(root, "dev", 0); err != nil {
			return fmt.Errorf("rootfs: replace the image's /dev: %w", err)
		}
	}
	fd, err := dirIn(root, "dev", true)
	if err != nil {
		return fmt.Errorf("rootfs: /dev: %w", err)
	}
	err = mountAt("tmpfs", fd, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k")
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("rootfs: mount /dev: %w", err)
	}
	dev, err := dirIn(root, "dev", false) // the new tmpfs
	if err != nil {
		return fmt.Errorf("rootfs: /dev: %w", err)
	}
	defer unix.Close(dev)
	for _, n := range devNodes {
		if err := unix.Mknodat(dev, n.name, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("rootfs: /dev/%s: %w", n.name, err)
		}
		if err := unix.Fchmodat(dev, n.name, 0o666, 0); err != nil { // umask
			return fmt.Errorf("rootfs: /dev/%s: %w", n.name, err)
		}
	}
	links := [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], dev, l[1]); err != nil {
			return fmt.Errorf("rootfs: /dev/%s: %w", l[1], err)
		}
	}
	if shmSize <= 0 {
		shmSize = 64 << 20
	}
	subs := []struct {
		name, source, fstype, data string
		flags                      uintptr
	}{
		{"pts", "devpts", "devpts", "newinstance,ptmxmode=0666,mode=0620,gid=5", unix.MS_NOSUID | unix.MS_NOEXEC},
		{"shm", "shm", "tmpfs", "mode=1777,size=" + strconv.FormatInt(shmSize, 10), unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"mqueue", "mqueue", "mqueue", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	}
	for _, m := range subs {
		fd, err := dirIn(dev, m.name, true)
		if err != nil {
			return fmt.Errorf("rootfs: /dev/%s: %w", m.name, err)
		}
		err = mountAt(m.source, fd, m.fstype, m.flags, m.data)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("rootfs: mount /dev/%s: %w", m.name, err)
		}
	}
	return nil
}

// pivot makes root the process's / with pivot_root(".", ".") and detaches
// the old root: no chroot, so no chroot escape.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("rootfs: chdir %s: %w", root, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("rootfs: pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("rootfs: detach the old root: %w", err)
	}
	return unix.Chdir("/")
}

// mask hides p: /dev/null over files, an empty read-only tmpfs over dirs.
// The /dev/null used must be the char device 1:3 (CVE-2025-31133).
func mask(p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("rootfs: mask %s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0,mode=0555"); err != nil {
			return fmt.Errorf("rootfs: mask %s: %w", p, err)
		}
		return nil
	}
	if err := CheckDevNull("/dev/null"); err != nil {
		return err
	}
	if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("rootfs: mask %s: %w", p, err)
	}
	return nil
}

// CheckDevNull verifies p is the null character device (1:3).
func CheckDevNull(p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("rootfs: %s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		return errdefs.Invalidf("rootfs: %s is not the null device (1:3); refusing to use it as a mask source", p)
	}
	return nil
}

// readonly bind-mounts p onto itself read-only.
func readonly(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("rootfs: read-only %s: %w", p, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount(p, p, "", flags, ""); err != nil {
		return fmt.Errorf("rootfs: read-only %s: %w", p, err)
	}
	return nil
}

// thermalThrottle lists /sys/devices/system/cpu/cpu*/thermal_throttle.
func thermalThrottle() []string {
	m, _ := filepath.Glob("/sys/devices/system/cpu/cpu*/thermal_throttle")
	var out []string
	for _, p := range m {
		if !strings.Contains(p, "..") {
			out = append(out, p)
		}
	}
	return out
}
