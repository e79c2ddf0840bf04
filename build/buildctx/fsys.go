package buildctx

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// All file system access below the context root goes through these helpers.
// They take the root directory's fd and a context-relative slash path that
// contains no symlinks, no "." and no ".." (the planner resolves symlinks
// itself, see resolve). Every element is opened with O_NOFOLLOW relative to
// its parent's fd, so a concurrent rename or a directory swapped for a
// symlink makes the operation fail instead of leaving the context.

// noOpenat2 latches once the kernel (or a seccomp filter) refuses openat2.
var noOpenat2 atomic.Bool

// retryEINTR runs fn until it stops failing with EINTR.
func retryEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

func openat(dirfd int, name string, flags int) (int, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, 0)
		return err
	})
	return fd, err
}

// openParent returns an O_PATH fd of rel's parent directory (reached from
// rootfd without following symlinks) and rel's last element. The fd is
// rootfd itself when rel has a single element: close it with closeParent.
func openParent(rootfd int, rel string) (int, string, error) {
	dir, base := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, base = rel[:i], rel[i+1:]
	}
	fd := rootfd
	for dir != "" {
		elem := dir
		if i := strings.IndexByte(dir, '/'); i >= 0 {
			elem, dir = dir[:i], dir[i+1:]
		} else {
			dir = ""
		}
		nfd, err := openat(fd, elem, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		closeParent(rootfd, fd)
		if err != nil {
			return -1, "", err
		}
		fd = nfd
	}
	return fd, base, nil
}

func closeParent(rootfd, fd int) {
	if fd != rootfd && fd >= 0 {
		unix.Close(fd)
	}
}

// lstatAt is lstat of rel ("" is the root itself).
func lstatAt(rootfd int, rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if rel == "" {
		err := retryEINTR(func() error { return unix.Fstat(rootfd, &st) })
		return st, err
	}
	pfd, base, err := openParent(rootfd, rel)
	if err != nil {
		return st, err
	}
	defer closeParent(rootfd, pfd)
	err = retryEINTR(func() error { return unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) })
	return st, err
}

// readlinkAt reads the target of the symlink at rel.
func readlinkAt(rootfd int, rel string) (string, error) {
	pfd, base, err := openParent(rootfd, rel)
	if err != nil {
		return "", err
	}
	defer closeParent(rootfd, pfd)
	return readlinkIn(pfd, base)
}

// readlinkIn reads the target of the symlink name in the directory dirfd.
func readlinkIn(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		var n int
		err := retryEINTR(func() (err error) {
			n, err = unix.Readlinkat(dirfd, name, buf)
			return err
		})
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// openDirAt opens the directory rel for reading its entries.
func openDirAt(rootfd int, rel string) (*os.File, error) {
	if rel == "" {
		fd, err := openat(rootfd, ".", unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), "."), nil
	}
	pfd, base, err := openParent(rootfd, rel)
	if err != nil {
		return nil, err
	}
	defer closeParent(rootfd, pfd)
	return openChildDir(pfd, base, rel)
}

// openChildDir opens the directory name inside dirfd (not following a
// symlink) for reading; rel only names the result.
func openChildDir(dirfd int, name, rel string) (*os.File, error) {
	fd, err := openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// openFileAt opens the regular file rel for reading. O_NONBLOCK keeps a
// fifo swapped in for the file from blocking the build; the caller checks
// the type with fstat.
func openFileAt(rootfd int, rel string) (*os.File, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	if !noOpenat2.Load() {
		how := unix.OpenHow{
			Flags:   flags,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		}
		var fd int
		err := retryEINTR(func() (err error) {
			fd, err = unix.Openat2(rootfd, rel, &how)
			return err
		})
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), rel), nil
		case err == unix.ENOSYS || err == unix.EPERM:
			noOpenat2.Store(true)
		default:
			return nil, err
		}
	}
	pfd, base, err := openParent(rootfd, rel)
	if err != nil {
		return nil, err
	}
	defer closeParent(rootfd, pfd)
	fd, err := openat(pfd, base, flags)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// fstat stats an open file.
func fstat(f *os.File) (unix.Stat_t, error) {
	var st unix.Stat_t
	rc, err := f.SyscallConn()
	if err != nil {
		return st, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = retryEINTR(func() error { return unix.Fstat(int(fd), &st) })
	}); err != nil {
		return st, err
	}
	return st, serr
}

// fileID identifies a file's state at planning time, so reading it later
// can tell that it was replaced or modified in between.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    unix.Timespec
	ctime    unix.Timespec
}

func idOf(st *unix.Stat_t) fileID {
	return fileID{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// fileMode converts a stat mode's permission and special bits to Go's.
func fileMode(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		fm |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

// unixMode converts Go permission and special bits to a tar/stat mode.
func unixMode(m fs.FileMode) int64 {
	um := int64(m & 0o777)
	if m&fs.ModeSetuid != 0 {
		um |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		um |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		um |= 0o1000
	}
	return um
}

func timespec(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }

// isNotExist reports the errors of a path (or one of its parents) that is
// not there.
func isNotExist(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, fs.ErrNotExist)
}
