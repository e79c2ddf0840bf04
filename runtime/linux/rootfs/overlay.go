// Package rootfs builds container root filesystems: the overlay mount of an
// image's layers plus a container's upper dir, and (as the runtime lands)
// the in-root mounts, /dev, pivot_root and masks.
package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Overlay describes an overlay mount. Lower lists layer directories from the
// top-most to the bottom one. Without Upper the mount is a read-only view.
type Overlay struct {
	Lower    []string
	Upper    string
	Work     string
	ReadOnly bool // mount read-only even with an upper dir (read_only: true)
	// Volatile mounts with overlayfs's "volatile" option (Linux 5.10):
	// no sync of the upper filesystem, neither the container's fsyncs nor
	// the whole-filesystem sync overlayfs does when the mount goes away
	// (which a container's exit waits for). For a container whose
	// writable layer is thrown away when it exits (--rm): its content
	// need not survive a crash. overlayfs marks such a work dir (work/
	// incompat/volatile) and refuses it afterwards; the marker is cleared
	// before each volatile mount, as the layer is disposable by contract.
	Volatile bool
}

// ErrUnsupported is returned when the kernel cannot express the mount.
var ErrUnsupported = errors.New("overlay mount not supported by this kernel")

// MountOverlay mounts o at target. It uses the new mount API and passes each
// layer with "lowerdir+" (Linux 6.8), so the number of layers is not bound
// by the page-sized option string of mount(2): images of 120 layers mount
// like images of one. On older kernels it falls back to mount(2) when the
// option string fits in a page. A single lower dir without an upper dir is
// a read-only bind mount (overlayfs needs two lowers then).
func MountOverlay(o Overlay, target string) error {
	if len(o.Lower) == 0 {
		return fmt.Errorf("overlay at %s: no lower layers", target)
	}
	if (o.Upper == "") != (o.Work == "") {
		return fmt.Errorf("overlay at %s: upper and work dirs go together", target)
	}
	if len(o.Lower) == 1 && o.Upper == "" {
		return bindReadOnly(o.Lower[0], target)
	}
	err := mountNewAPI(o, target)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, errNoLowerdirPlus) {
		return mountLegacy(o, target)
	}
	return err
}

var errNoLowerdirPlus = errors.New("kernel has no lowerdir+")

func mountNewAPI(o Overlay, target string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fsfd, key, value); err != nil {
			return fmt.Errorf("overlay option %s=%s: %w%s", key, value, err, fsLog(fsfd))
		}
		return nil
	}
	for i, l := range o.Lower {
		if err := set("lowerdir+", l); err != nil {
			if i == 0 && errors.Is(err, unix.EINVAL) {
				return errNoLowerdirPlus
			}
			return err
		}
	}
	if o.Upper != "" {
		if err := set("upperdir", o.Upper); err != nil {
			return err
		}
		if err := set("workdir", o.Work); err != nil {
			return err
		}
		if o.Volatile {
			clearVolatileMarker(o.Work)
			// A kernel without it (before 5.10) mounts as usual.
			if err := unix.FsconfigSetFlag(fsfd, "volatile"); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("overlay option volatile: %w%s", err, fsLog(fsfd))
			}
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create overlay: %w%s", err, fsLog(fsfd))
	}
	attrs := 0
	if o.ReadOnly || o.Upper == "" {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("fsmount overlay: %w%s", err, fsLog(fsfd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move overlay mount to %s: %w", target, err)
	}
	return nil
}

// fsLog reads the kernel's messages for a filesystem context ("e overlay:
// failed to resolve …") so errors say what the kernel disliked.
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 512)
	for i := 0; i < 8; i++ {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

func mountLegacy(o Overlay, target string) error {
	opts := "lowerdir=" + strings.Join(o.Lower, ":")
	if o.Upper != "" {
		opts += ",upperdir=" + o.Upper + ",workdir=" + o.Work
	}
	if o.Upper != "" && o.Volatile {
		clearVolatileMarker(o.Work)
		if err := unix.Mount("overlay", target, "overlay", flagsOf(o), opts+",volatile"); err == nil {
			return nil
		}
	}
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("%w: %d layers need an option string of %d bytes and this kernel lacks lowerdir+ (Linux 6.8)",
			ErrUnsupported, len(o.Lower), len(opts))
	}
	if err := unix.Mount("overlay", target, "overlay", flagsOf(o), opts); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", target, err)
	}
	return nil
}

func flagsOf(o Overlay) uintptr {
	if o.ReadOnly || o.Upper == "" {
		return unix.MS_RDONLY
	}
	return 0
}

// clearVolatileMarker removes the mark a volatile mount of work leaves,
// work/incompat/volatile/dirty (overlayfs refuses to mount a work dir that
// has it). work is a dir of berth's state root that no container sees.
func clearVolatileMarker(work string) {
	dir := filepath.Join(work, "work", "incompat", "volatile")
	unix.Unlink(filepath.Join(dir, "dirty"))
	unix.Rmdir(dir)
}

func bindReadOnly(src, target string) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("clone %s: %w", src, err)
	}
	defer unix.Close(fd)
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("make %s read-only: %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move bind mount to %s: %w", target, err)
	}
	return nil
}

// Unmount unmounts target; a target that is not mounted is not an error.
func Unmount(target string) error {
	for {
		err := unix.Unmount(target, 0)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point (any more)
		}
		return fmt.Errorf("unmount %s: %w", target, err)
	}
}
