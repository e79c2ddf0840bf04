package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrInvalidEntry is wrapped by every error about an entry that berth
// refuses (a whiteout naming '..', a hardlink to a directory, …).
var ErrInvalidEntry = errors.New("invalid layer entry")

// Overlay whiteout forms.
const (
	whiteoutPrefix  = ".wh."
	whiteoutOpaque  = ".wh..wh..opq"
	opaqueXattr     = "trusted.overlay.opaque"
	xattrPAXPrefix  = "SCHILY.xattr."
	copyBufferBytes = 256 << 10
)

// Stats describes an applied layer.
type Stats struct {
	Entries        int   // tar entries read
	Bytes          int64 // regular-file bytes written
	SkippedDevices int   // device nodes not created (not root)
}

// Apply extracts the uncompressed tar stream r into the directory root, a
// layer snapshot. Every entry is resolved inside root: names with '..' or
// a leading '/' become root-relative, parents are opened with openat2
// RESOLVE_IN_ROOT (so a symlink, even one an earlier entry made, never
// leads outside), entries are created with *at calls on that parent,
// symlinks are created and never followed, and hardlinks must name a
// regular file already inside root. OCI whiteouts become overlayfs ones: a
// 0:0 character device for .wh.NAME and trusted.overlay.opaque=y for
// .wh..wh..opq; no .wh.* file is ever created.
//
// Owners, modes (setuid included), xattrs and times are kept; root is a
// private snapshot directory under berth's 0700 state root.
func Apply(ctx context.Context, root string, r io.Reader) (Stats, error) {
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("open layer root %s: %w", root, err)
	}
	defer unix.Close(rootfd)
	a := &applier{root: rootfd, euid: os.Geteuid(), buf: make([]byte, copyBufferBytes)}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return a.stats, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.stats, fmt.Errorf("read layer: %w", err)
		}
		a.stats.Entries++
		if err := a.entry(hdr, tr); err != nil {
			return a.stats, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	// Directory times last: creating children changed them.
	for i := len(a.dirTimes) - 1; i >= 0; i-- {
		d := a.dirTimes[i]
		if err := a.withParent(d.name, false, func(pfd int, base string) error {
			return unix.UtimesNanoAt(pfd, base, d.ts, unix.AT_SYMLINK_NOFOLLOW)
		}); err != nil && !errors.Is(err, unix.ENOENT) {
			return a.stats, fmt.Errorf("layer entry %q: set times: %w", d.name, err)
		}
	}
	return a.stats, nil
}

type dirTime struct {
	name string
	ts   []unix.Timespec
}

type applier struct {
	root     int
	euid     int
	buf      []byte
	stats    Stats
	dirTimes []dirTime
}

// cleanName makes an entry name root-relative: "../../etc/x" and "/etc/x"
// both become "etc/x"; the root itself is "".
func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// openInRoot opens dir (root-relative) as an O_PATH directory fd, resolved
// inside the root. "" is the root itself.
func (a *applier) openInRoot(dir string) (int, error) {
	if dir == "" {
		dir = "."
	}
	for {
		fd, err := unix.Openat2(a.root, dir, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// maxLinkHops bounds how many dangling symlinks mkdirAllInRoot follows
// for one path, as the kernel's ELOOP limit does.
const maxLinkHops = 40

// mkdirAllInRoot returns an fd of dir, creating missing components (0755,
// owned by the caller) each inside its resolved parent. A component that is
// a dangling symlink is followed the way RESOLVE_IN_ROOT would resolve it
// (absolute targets and '..' stay at the root) and its target is created.
func (a *applier) mkdirAllInRoot(dir string) (int, error) {
	hops := 0
	return a.mkdirAllHops(dir, &hops)
}

// mkdirAllHops shares one hop budget across the whole call: dangling links
// whose targets hold more dangling links would otherwise branch
// exponentially.
func (a *applier) mkdirAllHops(dir string, hops *int) (int, error) {
	fd, err := a.openInRoot(dir)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	parent, base := path.Split(dir)
	parent = strings.TrimSuffix(parent, "/")
	pfd, err := a.mkdirAllHops(parent, hops)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, base, 0o755); err != nil {
		if !errors.Is(err, unix.EEXIST) {
			return -1, err
		}
		if link, lerr := readlinkAt(pfd, base); lerr == nil {
			if *hops >= maxLinkHops {
				return -1, fmt.Errorf("%w: too many levels of symlinks under %q", ErrInvalidEntry, dir)
			}
			*hops++
			target := cleanName(link)
			if !path.IsAbs(link) {
				target = cleanName(parent + "/" + link)
			}
			tfd, err := a.mkdirAllHops(target, hops)
			if err != nil {
				return -1, err
			}
			unix.Close(tfd)
		}
	}
	return a.openInRoot(dir)
}

func readlinkAt(dirfd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// withParent runs fn with the fd of name's parent directory and name's last
// element.
func (a *applier) withParent(name string, create bool, fn func(pfd int, base string) error) error {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	var pfd int
	var err error
	if create {
		pfd, err = a.mkdirAllInRoot(dir)
	} else {
		pfd, err = a.openInRoot(dir)
	}
	if err != nil {
		return fmt.Errorf("open parent directory: %w", err)
	}
	defer unix.Close(pfd)
	return fn(pfd, base)
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	name := cleanName(hdr.Name)
	if name == "" {
		return nil // the layer root itself keeps the snapshot's own metadata
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil
	}
	_, base := path.Split(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(name)
	}
	return a.withParent(name, true, func(pfd int, base string) error {
		return a.create(pfd, base, name, hdr, r)
	})
}

// whiteout turns .wh.NAME into a 0:0 char device and .wh..wh..opq into the
// opaque xattr on the parent.
func (a *applier) whiteout(name string) error {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if base == whiteoutOpaque {
		fd, err := a.mkdirAllInRoot(dir)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return setxattrFd(fd, opaqueXattr, []byte("y"))
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." || strings.HasPrefix(target, whiteoutPrefix) {
		return fmt.Errorf("%w: whiteout %q names no file", ErrInvalidEntry, base)
	}
	return a.withParent(path.Join(dir, target), true, func(pfd int, tbase string) error {
		if err := removeAllAt(pfd, tbase); err != nil {
			return err
		}
		return unix.Mknodat(pfd, tbase, unix.S_IFCHR, 0)
	})
}

func (a *applier) create(pfd int, base, name string, hdr *tar.Header, r io.Reader) error {
	var st unix.Stat_t
	exists := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
	if exists && !(hdr.Typeflag == tar.TypeDir && st.Mode&unix.S_IFMT == unix.S_IFDIR) {
		if err := removeAllAt(pfd, base); err != nil {
			return fmt.Errorf("replace existing entry: %w", err)
		}
	}
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), name)
		n, err := io.CopyBuffer(f, io.LimitReader(r, hdr.Size), a.buf)
		a.stats.Bytes += n
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
	case tar.TypeLink:
		return a.hardlink(pfd, base, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(pfd, base, kind|mode, dev); err != nil {
			if errors.Is(err, unix.EPERM) && a.euid != 0 {
				a.stats.SkippedDevices++
				return nil
			}
			return err
		}
	default:
		return nil // unknown types (e.g. contiguous files) are skipped, as tar does
	}
	return a.metadata(pfd, base, name, hdr)
}

// hardlink links base to the regular file linkname names inside the root.
func (a *applier) hardlink(pfd int, base, linkname string) error {
	target := cleanName(linkname)
	if target == "" {
		return fmt.Errorf("%w: hardlink to the layer root", ErrInvalidEntry)
	}
	return a.withParent(target, false, func(tpfd int, tbase string) error {
		var st unix.Stat_t
		if err := unix.Fstatat(tpfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%w: hardlink target %q: %v", ErrInvalidEntry, linkname, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return fmt.Errorf("%w: hardlink target %q is not a regular file", ErrInvalidEntry, linkname)
		}
		return unix.Linkat(tpfd, tbase, pfd, base, 0)
	})
}

// metadata sets owner, mode, xattrs and times, in that order (chown clears
// setuid bits; times last).
func (a *applier) metadata(pfd int, base, name string, hdr *tar.Header) error {
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if !(errors.Is(err, unix.EPERM) && a.euid != 0) {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// Not a symlink (created just now in a private dir), so following is safe.
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode)&0o7777, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if xattrs := paxXattrs(hdr); len(xattrs) > 0 {
		fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		for k, v := range xattrs {
			if err := setxattrFd(fd, k, []byte(v)); err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
				unix.Close(fd)
				return fmt.Errorf("xattr %s: %w", k, err)
			}
		}
		unix.Close(fd)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(accessTime(hdr).UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if hdr.Typeflag == tar.TypeDir {
		a.dirTimes = append(a.dirTimes, dirTime{name, ts})
		return nil
	}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func accessTime(hdr *tar.Header) time.Time {
	if !hdr.AccessTime.IsZero() {
		return hdr.AccessTime
	}
	return hdr.ModTime
}

func paxXattrs(hdr *tar.Header) map[string]string {
	out := map[string]string{}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, xattrPAXPrefix); ok {
			out[name] = v
		}
	}
	return out
}

// setxattrFd sets an xattr on the inode behind an O_PATH fd (the magic
// link resolves to that inode, a symlink included).
func setxattrFd(fd int, name string, value []byte) error {
	return unix.Setxattr("/proc/self/fd/"+strconv.Itoa(fd), name, value, 0)
}

// removeAllAt removes name under the directory fd pfd, recursively, never
// following symlinks.
func removeAllAt(pfd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(pfd, name, 0)
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(fd, n); err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
}
