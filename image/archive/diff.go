package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Overlay's own xattrs in an upper dir. Diff and Changes read
// trusted.overlay.opaque; redirect and metacopy (renamed directories and
// metadata-only copy-ups, off unless the host enables them) are refused,
// since the upper dir alone no longer says what the layer holds.
const (
	overlayXattrPrefix = "trusted.overlay."
	redirectXattr      = "trusted.overlay.redirect"
	metacopyXattr      = "trusted.overlay.metacopy"
)

// DiffOptions tune Diff and Changes.
type DiffOptions struct {
	// MountTargets are paths ("/etc/hosts") a container runtime creates
	// in the upper dir as targets of its bind mounts. An empty regular
	// file at one of them is the runtime's, not the container's, and is
	// left out.
	MountTargets []string
}

func (o DiffOptions) skipSet() map[string]bool {
	m := map[string]bool{}
	for _, p := range o.MountTargets {
		if c := cleanName(p); c != "" {
			m[c] = true
		}
	}
	return m
}

// Diff writes the OCI layer (an uncompressed tar) that an overlay upper
// dir holds: regular files, directories, symlinks, hardlinks within the
// upper dir, device nodes and fifos, with modes, owners, xattrs (not
// overlay's own) and modification times. Overlay whiteouts (0:0 character
// devices) become .wh.NAME entries and opaque directories get a
// .wh..wh..opq entry, so Apply of the tar on the same lower layers gives
// the same merged view. Names are sorted: the same upper dir gives the
// same bytes.
//
// Everything is read relative to an fd of upper, one path element at a
// time, each entry pinned with O_PATH|O_NOFOLLOW before it is examined:
// no symlink is ever followed, and a container changing its upper dir
// while it is read cannot make Diff read anything outside it or open a
// device node.
func Diff(ctx context.Context, w io.Writer, upper string, o DiffOptions) error {
	root, err := openRootDir(upper)
	if err != nil {
		return fmt.Errorf("diff %s: %w", upper, err)
	}
	defer unix.Close(root)
	d := &differ{ctx: ctx, tw: tar.NewWriter(w), links: map[devIno]string{}, skip: o.skipSet(), buf: make([]byte, copyBufferBytes)}
	if err := d.dir(root, ""); err != nil {
		return fmt.Errorf("diff %s: %w", upper, err)
	}
	if err := d.tw.Close(); err != nil {
		return fmt.Errorf("diff %s: %w", upper, err)
	}
	return nil
}

type devIno struct{ dev, ino uint64 }

type differ struct {
	ctx   context.Context
	tw    *tar.Writer
	links map[devIno]string // first name of each multiply-linked regular file
	skip  map[string]bool
	buf   []byte
}

// dir writes the entries under the directory dirfd, which is rel ("" for
// the root) in the layer.
func (d *differ) dir(dirfd int, rel string) error {
	names, err := readDirNames(dirfd)
	if err != nil {
		return fmt.Errorf("read directory /%s: %w", rel, err)
	}
	for _, name := range names {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		if err := d.entry(dirfd, rel, name); err != nil {
			return err
		}
	}
	return nil
}

func (d *differ) entry(dirfd int, rel, name string) error {
	p := path.Join(rel, name)
	fd, st, err := openPinned(dirfd, name)
	if errors.Is(err, unix.ENOENT) {
		return nil // removed while we read
	}
	if err != nil {
		return fmt.Errorf("open /%s: %w", p, err)
	}
	defer unix.Close(fd)
	kind := st.Mode & unix.S_IFMT
	if isWhiteout(&st) {
		hdr := &tar.Header{Name: path.Join(rel, whiteoutPrefix+name), Typeflag: tar.TypeReg, Mode: 0o600,
			ModTime: statTime(st.Mtim), Format: tar.FormatPAX}
		return d.write(hdr, p)
	}
	if kind == unix.S_IFSOCK {
		return nil // a socket is not content (tar has no type for it)
	}
	if kind == unix.S_IFREG && st.Size == 0 && d.skip[p] {
		return nil
	}
	xattrs, ovl, err := readXattrs(fd)
	if err != nil {
		return fmt.Errorf("xattrs of /%s: %w", p, err)
	}
	if _, ok := ovl[redirectXattr]; ok {
		return fmt.Errorf("/%s is a renamed directory (overlay redirect_dir): berth cannot make a layer of it; mount overlays with redirect_dir=off", p)
	}
	if _, ok := ovl[metacopyXattr]; ok {
		return fmt.Errorf("/%s is a metadata-only copy-up (overlay metacopy): berth cannot make a layer of it; mount overlays with metacopy=off", p)
	}
	hdr := headerOf(&st, p)
	for k, v := range xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[xattrPAXPrefix+k] = v
	}
	switch kind {
	case unix.S_IFDIR:
		if err := d.write(hdr, p); err != nil {
			return err
		}
		if ovl[opaqueXattr] == "y" {
			opq := &tar.Header{Name: path.Join(p, whiteoutOpaque), Typeflag: tar.TypeReg, Mode: hdr.Mode & 0o777,
				Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime, Format: tar.FormatPAX}
			if err := d.write(opq, p); err != nil {
				return err
			}
		}
		child, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open directory /%s: %w", p, err)
		}
		defer unix.Close(child)
		return d.dir(child, p)
	case unix.S_IFREG:
		if st.Nlink > 1 {
			key := devIno{uint64(st.Dev), st.Ino}
			if first, ok := d.links[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				hdr.PAXRecords = nil
				return d.write(hdr, p)
			}
			d.links[key] = p
		}
		if err := d.write(hdr, p); err != nil {
			return err
		}
		return copyPinned(d.tw, fd, st.Size, d.buf)
	case unix.S_IFLNK:
		target, err := readlinkPinned(fd)
		if err != nil {
			return fmt.Errorf("read symlink /%s: %w", p, err)
		}
		hdr.Linkname = target
	}
	return d.write(hdr, p)
}

func (d *differ) write(hdr *tar.Header, p string) error {
	if err := d.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write /%s: %w", p, err)
	}
	return nil
}

// headerOf is the tar header of an entry from its stat: type, mode,
// owner, size, device numbers and modification time. User and group
// names are left empty: the host's user database says nothing about a
// container's.
func headerOf(st *unix.Stat_t, name string) *tar.Header {
	hdr := &tar.Header{Name: name, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: statTime(st.Mtim), Format: tar.FormatPAX}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
	case unix.S_IFCHR:
		hdr.Typeflag = tar.TypeChar
	case unix.S_IFBLK:
		hdr.Typeflag = tar.TypeBlock
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	}
	if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
	}
	return hdr
}

func statTime(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }

// isWhiteout reports an overlay whiteout: a 0:0 character device.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// openRootDir opens a layer directory berth owns (its last element must
// not be a symlink).
func openRootDir(dir string) (int, error) {
	return unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// openPinned opens name, one path element under dirfd, as an O_PATH fd
// without following it, and stats what it got: the fd pins the inode
// that was examined.
func openPinned(dirfd int, name string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return -1, st, fmt.Errorf("%w: %q is not one path element", ErrInvalidEntry, name)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	return fd, st, nil
}

// procFd is the magic link of an fd of this process.
func procFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// readlinkPinned reads the target of the symlink an O_PATH fd pins.
func readlinkPinned(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// copyPinned writes exactly size bytes of the regular file an O_PATH fd
// pins (reopened through its magic link, which opens that very inode),
// padding with zeros if it shrank meanwhile.
func copyPinned(w io.Writer, fd int, size int64, buf []byte) error {
	rfd, err := unix.Open(procFd(fd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(rfd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(rfd)
		return fmt.Errorf("reopen: not the regular file examined")
	}
	f := os.NewFile(uintptr(rfd), "")
	defer f.Close()
	n, err := io.CopyBuffer(w, io.LimitReader(f, size), buf)
	if err != nil {
		return err
	}
	if n < size {
		_, err = io.CopyBuffer(w, io.LimitReader(zeroReader{}, size-n), buf)
	}
	return err
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// readXattrs returns the xattrs of the inode an O_PATH fd pins, overlay's
// own (trusted.overlay.*) apart.
func readXattrs(fd int) (xattrs, overlay map[string]string, err error) {
	p := procFd(fd)
	size, err := unix.Listxattr(p, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	if size == 0 {
		return nil, nil, nil
	}
	buf := make([]byte, size)
	n, err := unix.Listxattr(p, buf)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v, err := getxattr(p, name)
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		m := &xattrs
		if strings.HasPrefix(name, overlayXattrPrefix) {
			m = &overlay
		}
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[name] = v
	}
	return xattrs, overlay, nil
}

func getxattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Getxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			size, serr := unix.Getxattr(p, name, nil)
			if serr != nil {
				return "", serr
			}
			buf = make([]byte, size+1)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// isOpaque reports whether the directory an O_PATH fd pins is an opaque
// overlay directory.
func isOpaque(fd int) bool {
	v, err := getxattr(procFd(fd), opaqueXattr)
	return err == nil && v == "y"
}

// readDirNames lists the directory fd (opened for reading), sorted.
func readDirNames(fd int) ([]string, error) {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dfd), "")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// ChangeKind is how a path of a container differs from its image, as
// docker diff prints it.
type ChangeKind byte

// Change kinds.
const (
	Modified ChangeKind = 'C'
	Added    ChangeKind = 'A'
	Deleted  ChangeKind = 'D'
)

// String is the letter docker diff prints: A, C or D.
func (k ChangeKind) String() string { return string(k) }

// Change is one changed path (absolute: "/etc/passwd").
type Change struct {
	Kind ChangeKind
	Path string
}

// String is the change as docker diff prints it: "C /etc".
func (c Change) String() string { return c.Kind.String() + " " + c.Path }

// Changes lists what an overlay upper dir changes in the merged view of
// the lower layers (topmost first), as docker diff does: A for a path
// the lowers do not have, C for one they have (a directory only when its
// metadata or something beneath it changed), D for a path a whiteout or
// an opaque directory hides. Sorted by path. Everything is read as Diff
// reads it: *at calls on pinned fds, never following a symlink.
func Changes(ctx context.Context, upper string, lowers []string, o DiffOptions) ([]Change, error) {
	root, err := openRootDir(upper)
	if err != nil {
		return nil, fmt.Errorf("changes of %s: %w", upper, err)
	}
	defer unix.Close(root)
	var stack []int
	defer func() { closeAll(stack) }()
	for _, l := range lowers {
		fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("changes of %s: lower layer: %w", upper, err)
		}
		stack = append(stack, fd)
	}
	c := &changer{ctx: ctx, skip: o.skipSet()}
	if _, err := c.dir(root, stack, "", false); err != nil {
		return nil, fmt.Errorf("changes of %s: %w", upper, err)
	}
	sort.Slice(c.out, func(i, j int) bool { return c.out[i].Path < c.out[j].Path })
	return c.out, nil
}

type changer struct {
	ctx  context.Context
	skip map[string]bool
	out  []Change
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// lowerEntry is what the lower layers show at a path: whether it exists,
// its stat, and for a directory the fds of each layer's directory there
// (the overlay stack, topmost first; the caller closes them).
type lowerEntry struct {
	exists bool
	st     unix.Stat_t
	stack  []int
}

// lowerLookup finds name in the merged lower directory whose layer fds
// are stack, with overlay's rules: the topmost entry wins; directories
// merge downwards until a layer has a non-directory or a whiteout there,
// or one of them is opaque.
func lowerLookup(stack []int, name string) (lowerEntry, error) {
	var e lowerEntry
	for _, dfd := range stack {
		fd, st, err := openPinned(dfd, name)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			closeAll(e.stack)
			return lowerEntry{}, err
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if !isDir {
			unix.Close(fd)
			if !e.exists && !isWhiteout(&st) {
				e.exists, e.st = true, st
			}
			return e, nil
		}
		if !e.exists {
			e.exists, e.st = true, st
		}
		e.stack = append(e.stack, fd)
		if isOpaque(fd) {
			return e, nil
		}
	}
	return e, nil
}

// lowerNames lists the names the merged lower directory shows.
func lowerNames(stack []int) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, dfd := range stack {
		names, err := readDirNames(dfd)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if seen[n] {
				continue
			}
			seen[n] = true
			e, err := lowerLookup(stack, n)
			if err != nil {
				return nil, err
			}
			closeAll(e.stack)
			if e.exists {
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// dir records the changes under the upper directory dirfd (rel in the
// layer), whose merged lower counterpart is lower; opaque says the upper
// directory hides everything the lowers have there. It reports whether
// anything changed beneath.
func (c *changer) dir(dirfd int, lower []int, rel string, opaque bool) (bool, error) {
	names, err := readDirNames(dirfd)
	if err != nil {
		return false, fmt.Errorf("read directory /%s: %w", rel, err)
	}
	changed := false
	inUpper := map[string]bool{}
	for _, name := range names {
		if err := c.ctx.Err(); err != nil {
			return false, err
		}
		inUpper[name] = true
		ch, err := c.entry(dirfd, lower, rel, name)
		if err != nil {
			return false, err
		}
		changed = changed || ch
	}
	if opaque {
		hidden, err := lowerNames(lower)
		if err != nil {
			return false, fmt.Errorf("read lower directory /%s: %w", rel, err)
		}
		for _, n := range hidden {
			if !inUpper[n] {
				c.out = append(c.out, Change{Deleted, "/" + path.Join(rel, n)})
				changed = true
			}
		}
	}
	return changed, nil
}

func (c *changer) entry(dirfd int, lower []int, rel, name string) (bool, error) {
	p := path.Join(rel, name)
	fd, st, err := openPinned(dirfd, name)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open /%s: %w", p, err)
	}
	defer unix.Close(fd)
	le, err := lowerLookup(lower, name)
	if err != nil {
		return false, fmt.Errorf("lower layers at /%s: %w", p, err)
	}
	defer func() { closeAll(le.stack) }()
	kind := st.Mode & unix.S_IFMT
	switch {
	case isWhiteout(&st):
		if le.exists {
			c.out = append(c.out, Change{Deleted, "/" + p})
			return true, nil
		}
		return false, nil
	case kind == unix.S_IFSOCK:
		return false, nil
	case kind == unix.S_IFREG && st.Size == 0 && c.skip[p]:
		return false, nil
	}
	if kind != unix.S_IFDIR {
		k := Added
		if le.exists {
			k = Modified
		}
		c.out = append(c.out, Change{k, "/" + p})
		return true, nil
	}
	child, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("open directory /%s: %w", p, err)
	}
	defer unix.Close(child)
	var below []int
	if le.exists && le.st.Mode&unix.S_IFMT == unix.S_IFDIR {
		below = le.stack
	}
	changed, err := c.dir(child, below, p, isOpaque(fd))
	if err != nil {
		return false, err
	}
	sameDir := le.exists && le.st.Mode == st.Mode && le.st.Uid == st.Uid && le.st.Gid == st.Gid
	if sameDir && !changed {
		return false, nil // copied up for a mount target only
	}
	k := Added
	if le.exists {
		k = Modified
	}
	c.out = append(c.out, Change{k, "/" + p})
	return true, nil
}
