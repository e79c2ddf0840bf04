package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// MountVolume is a named or anonymous volume: a bind of the volume's
// _data directory (Source), which is first filled with what the image
// has at Target, once (see copyUp), unless the option "nocopy" is given.
const MountVolume = "volume"

// Names next to a volume's _data directory (volumes/local writes the
// same ones).
const (
	volumeDataDir     = "_data"
	volumeInitialized = ".initialized"
	volumeLock        = ".lock"
	volumeStaging     = ".copyup"
)

// maxCopyDepth bounds the directory nesting copy-up follows (each level
// holds two fds).
const maxCopyDepth = 256

// checkVolumeSource refuses a volume source that is not a volume's _data
// directory: the marker and lock live next to it.
func checkVolumeSource(target, src string) error {
	if !path.IsAbs(src) || strings.ContainsRune(src, 0) || path.Clean(src) != src || path.Base(src) != volumeDataDir {
		return errdefs.Invalidf("mount %s: volume source %q must be the absolute path of a volume's %s directory", target, src, volumeDataDir)
	}
	return nil
}

// prepareVolume runs before a volume is bound: under the volume's lock,
// unless it was initialised already, it copies the image's content at the
// target into the empty volume and marks it initialised. With nocopy it
// only marks it. src is the opened bind source (the _data dir).
//
// The image side is opened inside the root (RESOLVE_IN_ROOT, no magic
// links), as the mount target will be, so a target that is a symlink in
// the image (/data → /etc) reads the container's /etc, never the host's;
// symlinks are copied as symlinks and never followed; everything is
// created with *at calls beneath the volume's fds.
func prepareVolume(root int, rootPath string, p mountPlan, src bindSource) error {
	if !src.isDir {
		return errdefs.Invalidf("mount %s: volume source %s is not a directory", p.m.Target, src.path)
	}
	volPath := path.Dir(p.m.Source)
	vol, err := unix.Open(volPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open volume dir %s: %w", volPath, err)
	}
	defer unix.Close(vol)
	lk, err := unix.Openat(vol, volumeLock, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("volume %s: lock: %w", volPath, err)
	}
	defer unix.Close(lk) // closing releases the flock
	for {
		err = unix.Flock(lk, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("volume %s: lock: %w", volPath, err)
	}
	if err := unix.Fstatat(vol, volumeInitialized, new(unix.Stat_t), unix.AT_SYMLINK_NOFOLLOW); err == nil {
		return nil
	} else if !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("volume %s: %w", volPath, err)
	}
	if p.nocopy {
		return markInitialized(vol, volPath)
	}
	data, err := unix.Openat(vol, volumeDataDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("volume %s: open %s: %w", volPath, volumeDataDir, err)
	}
	defer unix.Close(data)
	if !sameFile(data, src.fd) {
		return fmt.Errorf("volume %s: %s is no longer the directory opened to bind; refusing to go on", volPath, volumeDataDir)
	}
	names, err := readNames(data)
	if err != nil {
		return fmt.Errorf("volume %s: %w", volPath, err)
	}
	if len(names) > 0 {
		return markInitialized(vol, volPath) // the user's content: never overwritten
	}
	// As the mount target will be: resolved in the root, a last symlink
	// included (it leads inside the root too).
	at, err := openat2(root, p.rel, unix.O_PATH|unix.O_CLOEXEC, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // nothing there to copy (the mount makes the target)
	}
	if err != nil {
		return fmt.Errorf("volume %s: open %s in the container: %w", volPath, p.m.Target, err)
	}
	defer unix.Close(at)
	if err := checkUnderRoot(at, rootPath, p.m.Target, false); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(at, &st); err != nil {
		return fmt.Errorf("volume %s: stat %s in the container: %w", volPath, p.m.Target, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil // a file: the mount says the kinds differ
	}
	// Only the image's content is copied: a target on another mount (a
	// bind or tmpfs made earlier, /dev, /sys) is the container's, and so
	// are mount points beneath it.
	rootMnt, known := mountID(root, "")
	if atMnt, ok := mountID(at, ""); known && ok && atMnt != rootMnt {
		return nil
	}
	img, err := unix.Openat(at, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("volume %s: open %s in the container: %w", volPath, p.m.Target, err)
	}
	defer unix.Close(img)
	imgNames, err := readNames(img)
	if err != nil {
		return fmt.Errorf("volume %s: read %s in the container: %w", volPath, p.m.Target, err)
	}
	if len(imgNames) == 0 {
		// Nothing to copy, but the empty volume takes the directory's
		// owner and mode (as Docker: a database image's 0700 data dir
		// owned by its user); it stays uninitialised, so a later
		// container with content at its target fills it.
		copyMeta(img, data, &st)
		return nil
	}
	if err := copyUp(vol, data, img, volPath, rootMnt); err != nil {
		return fmt.Errorf("volume %s: copy %s from the image: %w", volPath, p.m.Target, err)
	}
	// The volume's root takes the owner and mode of the image's directory.
	copyMeta(img, data, &st)
	return markInitialized(vol, volPath)
}

// copyUp copies the directory img into the empty data through a staging
// directory next to it, so a crash mid-copy leaves data empty (the next
// start copies again) rather than half full.
func copyUp(vol, data, img int, volPath string, mnt uint64) error {
	if err := os.RemoveAll(path.Join(volPath, volumeStaging)); err != nil {
		return fmt.Errorf("remove a stale %s: %w", volumeStaging, err)
	}
	if err := unix.Mkdirat(vol, volumeStaging, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(path.Join(volPath, volumeStaging))
	stage, err := unix.Openat(vol, volumeStaging, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(stage)
	if err := copyDir(img, stage, mnt, 0); err != nil {
		return err
	}
	names, err := readNames(stage)
	if err != nil {
		return err
	}
	for _, n := range names {
		// NOREPLACE: anything that appeared in data meanwhile wins.
		if err := unix.Renameat2(stage, n, data, n, unix.RENAME_NOREPLACE); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("move %s into the volume: %w", n, err)
		}
	}
	// The copy reaches the disk before the marker says it is there.
	if err := unix.Syncfs(data); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// copyDir copies the entries of the directory src into dst. Entries on
// another mount than the container's root (mnt, 0 if unknown) are mount
// points of the container (an earlier bind inside the target), not the
// image's content, and are left out.
func copyDir(src, dst int, mnt uint64, depth int) error {
	if depth >= maxCopyDepth {
		return fmt.Errorf("directories nested deeper than %d levels", maxCopyDepth)
	}
	names, err := readNames(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := copyEntry(src, dst, n, mnt, depth); err != nil {
			return err
		}
	}
	return nil
}

func copyEntry(src, dst int, name string, mnt uint64, depth int) error {
	var st unix.Stat_t
	if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if mnt != 0 {
		if id, ok := mountID(src, name); ok && id != mnt {
			return nil
		}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdirat(dst, name, 0o700); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		s, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer unix.Close(s)
		d, err := unix.Openat(dst, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer unix.Close(d)
		if err := copyDir(s, d, mnt, depth+1); err != nil {
			return fmt.Errorf("%s/%w", name, err)
		}
		copyMeta(s, d, &st)
	case unix.S_IFREG:
		// A hardlink becomes a copy of its own.
		s, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		sf := os.NewFile(uintptr(s), name)
		defer sf.Close()
		var now unix.Stat_t
		if err := unix.Fstat(s, &now); err != nil || now.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("%s: changed while copying", name)
		}
		d, err := unix.Openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		df := os.NewFile(uintptr(d), name)
		defer df.Close()
		if _, err := io.Copy(df, sf); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		copyMeta(s, d, &st)
	case unix.S_IFLNK:
		target, err := readlinkAt(src, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := unix.Symlinkat(target, dst, name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
		unix.UtimesNanoAt(dst, name, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		// Best effort, as root may: the devices cgroup still decides.
		if err := unix.Mknodat(dst, name, st.Mode&(unix.S_IFMT|0o777), int(st.Rdev)); err != nil {
			return nil
		}
		unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
		unix.Fchmodat(dst, name, st.Mode&0o7777, 0)
		unix.UtimesNanoAt(dst, name, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	default: // sockets are not content
	}
	return nil
}

// copyMeta gives dst (an fd) the owner, mode, xattrs and times of src,
// best effort: the chown first, since it clears setuid bits and file
// capabilities.
func copyMeta(src, dst int, st *unix.Stat_t) {
	unix.Fchown(dst, int(st.Uid), int(st.Gid))
	unix.Fchmod(dst, st.Mode&0o7777)
	copyXattrs(src, dst)
	unix.UtimesNanoAt(unix.AT_FDCWD, fdPath(dst), []unix.Timespec{st.Atim, st.Mtim}, 0)
}

func copyXattrs(src, dst int) {
	size, err := unix.Flistxattr(src, nil)
	if err != nil || size <= 0 {
		return
	}
	buf := make([]byte, size)
	if size, err = unix.Flistxattr(src, buf); err != nil {
		return
	}
	for _, name := range strings.Split(string(buf[:size]), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		n, err := unix.Fgetxattr(src, name, nil)
		if err != nil || n < 0 {
			continue
		}
		val := make([]byte, n)
		if n, err = unix.Fgetxattr(src, name, val); err != nil {
			continue
		}
		unix.Fsetxattr(dst, name, val[:n], 0)
	}
}

// markInitialized writes the marker (and makes it durable).
func markInitialized(vol int, volPath string) error {
	fd, err := unix.Openat(vol, volumeInitialized, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("volume %s: mark initialized: %w", volPath, err)
	}
	unix.Close(fd)
	if err := unix.Fsync(vol); err != nil {
		return fmt.Errorf("volume %s: mark initialized: %w", volPath, err)
	}
	return nil
}

// readNames lists the directory dirfd refers to (without . and ..),
// leaving dirfd's own offset alone.
func readNames(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > unix.PathMax {
			return "", fmt.Errorf("symlink target longer than %d bytes", unix.PathMax)
		}
	}
}

// mountID is the mount ID of name in dirfd ("" for dirfd itself), if the
// kernel reports one.
func mountID(dirfd int, name string) (uint64, bool) {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	var stx unix.Statx_t
	if err := unix.Statx(dirfd, name, flags, unix.STATX_MNT_ID, &stx); err != nil || stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, false
	}
	return stx.Mnt_id, true
}

func sameFile(a, b int) bool {
	var sa, sb unix.Stat_t
	if unix.Fstat(a, &sa) != nil || unix.Fstat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// SortMounts orders mounts parents first, keeping the given order among
// targets of the same depth (as Docker): a volume on /etc goes before the
// /etc/hosts bind that must stay visible on top of it, and copy-up of
// /etc sees the image's files, not the binds.
func SortMounts(ms []Mount) {
	depth := func(t string) int { return strings.Count(path.Clean("/"+t), "/") }
	slices.SortStableFunc(ms, func(a, b Mount) int { return depth(a.Target) - depth(b.Target) })
}
