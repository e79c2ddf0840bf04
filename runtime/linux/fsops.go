package linux

// Host-side access to a container's files: cp (CopyIn, CopyOut, StatPath),
// export and the layers diff and commit read (RootfsLayers).
//
// No path inside a container is ever used as a string on the host
// (SECURITY.md §3 rule 1, the CVE-2018-15664 class). A container's files
// are seen through an fsView: directory fds, one for a running container
// (its /proc/<init>/root: the mounted view, volumes included) or, for a
// stopped one, the upper dir followed by the image layers (overlay's
// rules applied by hand: nothing is mounted, so nothing can leak). Paths
// are resolved one element at a time, each element opened with
// O_PATH|O_NOFOLLOW relative to the fd of its parent and examined through
// that fd; a symlink is read and its target resolved again inside the
// container root, as openat2 RESOLVE_IN_ROOT does (absolute targets and
// '..' stop at the root), so a symlink in one layer may point into
// another and never out of the container. Files are created with *at
// calls in the resolved parent, and owners, modes and times are set
// through fds that pin what was created. A stopped container's writes go
// to its upper dir, copying directories up and replacing whiteouts as
// overlayfs would, under the container's lock so it cannot start
// meanwhile.

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

	"berth.dev/berth/internal/errdefs"
)

// Overlay's markers in layer dirs.
const (
	fsOpaqueXattr  = "trusted.overlay.opaque"
	fsOverlayXattr = "trusted.overlay."
	fsMaxSymlinks  = 40 // as the kernel's MAXSYMLINKS
	fsCopyBuffer   = 256 << 10
)

// CopyOptions tune CopyOutWith.
type CopyOptions struct {
	// FollowLink copies what a symlink at src points to (inside the
	// container) instead of the link itself: cp -L.
	FollowLink bool
}

// PathStat describes a path of a container.
type PathStat struct {
	Name       string      // last element of the path as given
	Path       string      // where it resolved: absolute, without symlinks in its parents (nor itself when followed)
	Mode       os.FileMode // type and permission bits
	Size       int64
	Mtime      time.Time
	LinkTarget string // a symlink's target, when not followed
}

// RootfsLayers are the directories of a container's filesystem: its
// upper dir and the image layers under it, topmost first, plus the paths
// where the runtime creates mount targets in the upper dir (the /etc
// files it bind-mounts, volume and bind destinations).
type RootfsLayers struct {
	Upper        string
	Lower        []string
	MountTargets []string
}

// RootfsLayers returns the container's layer directories, for diff and
// commit (image/archive.Changes and Diff). They are read as they are: a
// running container may be changing its upper dir meanwhile.
func (c *Container) RootfsLayers(ctx context.Context) (RootfsLayers, error) {
	m, err := c.meta()
	if err != nil {
		return RootfsLayers{}, err
	}
	mounts, err := c.r.snaps.Mounts(ctx, SnapshotKey(c.id))
	if err != nil {
		return RootfsLayers{}, fmt.Errorf("container %s: snapshot: %w", m.Name, err)
	}
	if len(mounts) != 1 || mounts[0].Type != "overlay" || mounts[0].Upper == "" {
		return RootfsLayers{}, errdefs.Invalidf("container %s: its snapshot is not an overlay with an upper dir (%+v); recreate the container", m.Name, mounts)
	}
	l := RootfsLayers{Upper: mounts[0].Upper, Lower: mounts[0].Lower,
		MountTargets: []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}}
	if m.Spec.OCI != nil {
		for _, om := range m.Spec.OCI.Mounts {
			l.MountTargets = append(l.MountTargets, om.Destination)
		}
	}
	return l, nil
}

// CopyOut returns a tar of src in the container, as docker cp does: its
// one top entry is named after src's last element, and a symlink at src is
// copied as the link (see CopyOutWith).
func (c *Container) CopyOut(ctx context.Context, src string) (io.ReadCloser, error) {
	return c.CopyOutWith(ctx, src, CopyOptions{})
}

// CopyOutWith is CopyOut with options. A running container is read
// through its root (mounted volumes included; the contents of /proc, /sys
// and other pseudo filesystems are left out); a stopped one from its
// layers. src with a trailing '/' must be a directory.
func (c *Container) CopyOutWith(ctx context.Context, src string, o CopyOptions) (io.ReadCloser, error) {
	m, err := c.meta()
	if err != nil {
		return nil, err
	}
	v, release, err := c.openView(ctx, m, false)
	if err != nil {
		return nil, fmt.Errorf("copy from container %s: %w", m.Name, err)
	}
	sc := &fsScope{}
	fail := func(err error) (io.ReadCloser, error) {
		sc.close()
		v.close()
		release()
		return nil, err
	}
	wantDir := strings.HasSuffix(src, "/") || strings.HasSuffix(src, "/.")
	res, err := v.resolve(sc, src, o.FollowLink || wantDir, false)
	if err != nil {
		return fail(fmt.Errorf("copy from container %s: %s: %w", m.Name, src, err))
	}
	if res.ent == nil {
		return fail(errdefs.NotFoundf("copy from container %s: %s: no such file or directory in the container", m.Name, src))
	}
	if wantDir && !res.ent.isDir() {
		return fail(errdefs.Invalidf("copy from container %s: %s is not a directory; drop the trailing slash to copy the file", m.Name, src))
	}
	if mnt := fsInMount(m, res.path()); v.overlay && mnt != "" {
		return fail(fmt.Errorf("copy from container %s: %w", m.Name, fsMountErr(src, mnt)))
	}
	if fs, ok := fsPseudo(res.ent.fd); ok && !res.ent.isDir() {
		return fail(errdefs.Invalidf("copy from container %s: %s is on %s, a kernel pseudo filesystem; berth cp copies the container's files only", m.Name, src, fs))
	}
	pr, pw := io.Pipe()
	go func() {
		defer release()
		defer v.close()
		defer sc.close()
		t := newFsTar(ctx, v, pw)
		err := t.write(res.ent, fsTarName(src))
		if err == nil {
			err = t.tw.Close()
		}
		if err != nil {
			err = fmt.Errorf("copy from container %s: %s: %w", m.Name, src, err)
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// fsTarName is the name of the top entry of a copy of src: its last
// element ("." for the root).
func fsTarName(src string) string {
	b := path.Base(path.Clean("/" + src))
	if b == "/" {
		return "."
	}
	return b
}

// StatPath describes p in the container; with follow, a symlink at p is
// followed (inside the container) and the target described.
func (c *Container) StatPath(ctx context.Context, p string, follow bool) (PathStat, error) {
	m, err := c.meta()
	if err != nil {
		return PathStat{}, err
	}
	v, release, err := c.openView(ctx, m, false)
	if err != nil {
		return PathStat{}, fmt.Errorf("stat in container %s: %w", m.Name, err)
	}
	defer release()
	defer v.close()
	sc := &fsScope{}
	defer sc.close()
	res, err := v.resolve(sc, p, follow || strings.HasSuffix(p, "/"), false)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		// A missing parent: p does not exist either.
		return PathStat{}, errdefs.NotFoundf("container %s: %s: %v", m.Name, p, err)
	}
	if err != nil {
		return PathStat{}, fmt.Errorf("stat in container %s: %s: %w", m.Name, p, err)
	}
	if res.ent == nil {
		return PathStat{}, errdefs.NotFoundf("container %s: %s: no such file or directory in the container", m.Name, p)
	}
	st := res.ent.st
	ps := PathStat{Name: fsTarName(p), Path: res.path(), Mode: fsFileMode(st.Mode), Size: st.Size, Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec)}
	if ps.Mode&os.ModeSymlink != 0 {
		ps.LinkTarget, _ = fsReadlink(res.ent.fd)
	}
	return ps, nil
}

// fsFileMode turns a stat mode into an os.FileMode.
func fsFileMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= os.ModeDir
	case unix.S_IFLNK:
		mode |= os.ModeSymlink
	case unix.S_IFCHR:
		mode |= os.ModeDevice | os.ModeCharDevice
	case unix.S_IFBLK:
		mode |= os.ModeDevice
	case unix.S_IFIFO:
		mode |= os.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= os.ModeSocket
	}
	if m&unix.S_ISUID != 0 {
		mode |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= os.ModeSticky
	}
	return mode
}

// CopyIn extracts a tar into the directory dst of the container (a
// symlink at dst is followed inside the container), as docker cp does:
// dst must exist; entries keep their owners, modes and times; a directory
// is never replaced by a non-directory or the other way round; device
// nodes and xattrs are not copied. A running container is written through
// its root, so a write into a volume reaches the volume; a stopped one in
// its upper dir.
func (c *Container) CopyIn(ctx context.Context, dst string, r io.Reader) error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	v, release, err := c.openView(ctx, m, true)
	if err != nil {
		return fmt.Errorf("copy to container %s: %w", m.Name, err)
	}
	defer release()
	defer v.close()
	o := fsExtractOptions{chown: true}
	if v.overlay {
		o.checkBase = func(base string) error {
			if mnt := fsInMount(m, base); mnt != "" {
				return fsMountErr(dst, mnt)
			}
			return nil
		}
	}
	if err := fsExtract(ctx, v, dst, r, o); err != nil {
		return fmt.Errorf("copy to container %s: %w", m.Name, err)
	}
	return nil
}

// fsInMount returns the destination of the container's mount (volume,
// bind or tmpfs) that p is at or under, "" for none: a stopped
// container's layers hold only the empty mount point there.
func fsInMount(m *Meta, p string) string {
	if m.Spec.OCI == nil {
		return ""
	}
	for _, om := range m.Spec.OCI.Mounts {
		d := path.Clean("/" + om.Destination)
		if p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") {
			return d
		}
	}
	return ""
}

func fsMountErr(p, mnt string) error {
	return errdefs.Unavailablef("%s is in the container's mount %s, which exists only while it runs; start the container to copy there, or copy from the volume's directory", p, mnt)
}

// ExtractOptions tune ExtractTar.
type ExtractOptions struct {
	// Chown keeps the owners the tar names (cp -a); otherwise files belong
	// to the caller and lose setuid and setgid bits.
	Chown bool
}

// ExtractTar extracts a tar (a CopyOut of a container, so untrusted) into
// the host directory dir with the same in-root discipline as CopyIn:
// nothing is created or changed outside dir, whatever names, symlinks or
// hardlinks the tar holds; symlinks already in dir are followed inside
// dir only.
func ExtractTar(ctx context.Context, dir string, r io.Reader, o ExtractOptions) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("extract into %s: %w", dir, err)
	}
	v, err := newFsView([]int{fd}, false)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("extract into %s: %w", dir, err)
	}
	defer v.close()
	if err := fsExtract(ctx, v, "/", r, fsExtractOptions{chown: o.Chown, stripSetuid: !o.Chown}); err != nil {
		return fmt.Errorf("extract into %s: %w", dir, err)
	}
	return nil
}

// Export writes the container's filesystem as one tar, flattened as a
// container sees it (image layers plus its changes, whiteouts applied),
// with the mount points /proc, /sys and /dev but not their contents, and
// no volume contents, as docker export does. It reads the layers, so it
// works for running and stopped containers alike.
func (c *Container) Export(ctx context.Context, w io.Writer) error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	v, err := c.layersView(ctx, m)
	if err != nil {
		return fmt.Errorf("export container %s: %w", m.Name, err)
	}
	defer v.close()
	t := newFsTar(ctx, v, w)
	t.skipContents = map[string]bool{"proc": true, "sys": true, "dev": true}
	if err := t.children(v.root, ""); err != nil {
		return fmt.Errorf("export container %s: %w", m.Name, err)
	}
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("export container %s: %w", m.Name, err)
	}
	return nil
}

// openView returns the view of the container to copy with: its live root
// while it runs, else its layers. For writing to a stopped container the
// container's lock is held (so it cannot start) until release.
func (c *Container) openView(ctx context.Context, m *Meta, write bool) (*fsView, func(), error) {
	nothing := func() {}
	if v, err := c.liveView(); v != nil || err != nil {
		return v, nothing, err
	}
	if !write {
		v, err := c.layersView(ctx, m)
		return v, nothing, err
	}
	if m.Spec.Rootfs.ReadOnly {
		return nil, nothing, errdefs.Conflictf("its root filesystem is read-only (--read-only); copy into a volume of the running container instead")
	}
	release := nothing
	if c.lock == nil {
		l, err := lockContainer(c.dir(), true)
		if err != nil {
			return nil, nothing, err
		}
		release = l.unlock
		// It may have started while we waited for the lock.
		if v, err := c.liveView(); v != nil || err != nil {
			release()
			return v, nothing, err
		}
	}
	v, err := c.layersView(ctx, m)
	if err != nil {
		release()
		return nil, nothing, err
	}
	return v, release, nil
}

// liveView opens the root of the running container's init through
// /proc/<pid>/root, checking the pid still names the recorded process
// after the open (so a recycled pid cannot hand over another process's
// root). It returns nil when the container is not running.
func (c *Container) liveView() (*fsView, error) {
	st, err := c.state()
	if err != nil || st.Status != "running" {
		return nil, nil
	}
	pidfd, err := st.Init.open()
	if err != nil {
		return nil, nil // gone
	}
	defer unix.Close(pidfd)
	fd, err := unix.Open("/proc/"+strconv.Itoa(st.Init.Pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return nil, nil
		}
		return nil, fmt.Errorf("open the root of process %d: %w", st.Init.Pid, err)
	}
	if !st.Init.Alive() {
		unix.Close(fd)
		return nil, nil
	}
	v, err := newFsView([]int{fd}, false)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return v, nil
}

// layersView opens the container's upper dir and image layers.
func (c *Container) layersView(ctx context.Context, m *Meta) (*fsView, error) {
	mounts, err := c.r.snaps.Mounts(ctx, SnapshotKey(c.id))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if len(mounts) != 1 || mounts[0].Type != "overlay" || mounts[0].Upper == "" {
		return nil, errdefs.Invalidf("its snapshot is not an overlay with an upper dir; recreate the container")
	}
	var fds []int
	for _, d := range append([]string{mounts[0].Upper}, mounts[0].Lower...) {
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			fsCloseAll(fds)
			return nil, fmt.Errorf("open layer %s: %w", d, err)
		}
		fds = append(fds, fd)
	}
	v, err := newFsView(fds, true)
	if err != nil {
		fsCloseAll(fds)
		return nil, err
	}
	return v, nil
}

// fsScope collects the fds an operation opened, to close them together.
type fsScope struct{ fds []int }

func (s *fsScope) add(fd int) int { s.fds = append(s.fds, fd); return fd }

func (s *fsScope) close() {
	fsCloseAll(s.fds)
	s.fds = nil
}

func fsCloseAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// fsView is a container's filesystem seen from the host: directory fds,
// topmost first. With overlay, they are a stopped container's upper dir
// (layer 0, the one written) and image layers, merged by overlay's rules.
type fsView struct {
	layers  []int
	overlay bool
	root    *fsDir
}

// fsLayerFd is one layer's directory fd at some path.
type fsLayerFd struct{ layer, fd int }

// fsDir is a directory of a view: the fds of the layers' directories at
// its path (one for a live root), topmost first.
type fsDir struct {
	parent *fsDir
	name   string
	fds    []fsLayerFd
	st     unix.Stat_t // the topmost directory's
}

// fsEnt is an entry of a view: the topmost layer's inode, pinned by an
// O_PATH fd; a directory also has its merged fsDir.
type fsEnt struct {
	name  string
	layer int
	fd    int
	st    unix.Stat_t
	dir   *fsDir
}

func (e *fsEnt) isDir() bool  { return e.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (e *fsEnt) isLink() bool { return e.st.Mode&unix.S_IFMT == unix.S_IFLNK }

func newFsView(fds []int, overlay bool) (*fsView, error) {
	v := &fsView{layers: fds, overlay: overlay, root: &fsDir{}}
	if err := unix.Fstat(fds[0], &v.root.st); err != nil {
		return nil, err
	}
	for i, fd := range fds {
		v.root.fds = append(v.root.fds, fsLayerFd{i, fd})
		if !overlay || fsIsOpaque(fd) {
			break
		}
	}
	return v, nil
}

func (v *fsView) close() { fsCloseAll(v.layers) }

func (v *fsView) rootEnt() *fsEnt {
	return &fsEnt{layer: v.root.fds[0].layer, fd: v.root.fds[0].fd, st: v.root.st, dir: v.root}
}

// path is the absolute path of d in the view.
func (d *fsDir) path() string {
	if d.parent == nil {
		return "/"
	}
	return path.Join(d.parent.path(), d.name)
}

// lookup finds one element in d; nil when d has no such entry. In an
// overlay view the topmost layer's entry wins, a whiteout hides what is
// below, and directories merge downwards until a layer has something else
// there or is opaque.
func (v *fsView) lookup(sc *fsScope, d *fsDir, name string) (*fsEnt, error) {
	var e *fsEnt
	for _, l := range d.fds {
		fd, st, err := fsPin(l.fd, name)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc.add(fd)
		if v.overlay && fsIsWhiteout(&st) {
			break
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if e == nil {
				e = &fsEnt{name: name, layer: l.layer, fd: fd, st: st}
			}
			break
		}
		if e == nil {
			e = &fsEnt{name: name, layer: l.layer, fd: fd, st: st, dir: &fsDir{parent: d, name: name, st: st}}
		}
		e.dir.fds = append(e.dir.fds, fsLayerFd{l.layer, fd})
		if !v.overlay || fsIsOpaque(fd) {
			break
		}
	}
	return e, nil
}

// names lists the entries of d, sorted.
func (v *fsView) names(d *fsDir) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, l := range d.fds {
		names, err := fsReadDir(l.fd)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if seen[n] {
				continue
			}
			seen[n] = true
			if len(d.fds) > 1 || v.overlay {
				tsc := &fsScope{}
				e, err := v.lookup(tsc, d, n)
				tsc.close()
				if err != nil {
					return nil, err
				}
				if e == nil {
					continue // a whiteout, or hidden
				}
			}
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// fsResolved is where a path led: the directory holding its last element,
// that element, and its entry (nil when missing). For the root, parent is
// the root and name is "".
type fsResolved struct {
	parent *fsDir
	name   string
	ent    *fsEnt
}

func (r fsResolved) path() string {
	if r.name == "" {
		return r.parent.path()
	}
	return path.Join(r.parent.path(), r.name)
}

// resolve walks p inside the view's root: element by element, symlinks
// read and resolved again from the root (absolute targets) or their
// directory, '..' never above the root. A symlink as the last element is
// followed only with follow. With mkdirs, missing directories on the way
// are created (0755, the caller's) in the top layer.
func (v *fsView) resolve(sc *fsScope, p string, follow, mkdirs bool) (fsResolved, error) {
	stack := []*fsDir{v.root}
	comps := fsSplit(p)
	hops := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		last := len(comps) == 0
		e, err := v.lookup(sc, cur, c)
		if err != nil {
			return fsResolved{}, err
		}
		if e == nil {
			if last {
				return fsResolved{parent: cur, name: c}, nil
			}
			if !mkdirs {
				return fsResolved{}, fmt.Errorf("%s: %w", path.Join(cur.path(), c), unix.ENOENT)
			}
			if e, err = v.mkdir(sc, cur, c, 0o755); err != nil {
				return fsResolved{}, fmt.Errorf("create directory %s: %w", path.Join(cur.path(), c), err)
			}
		}
		if e.isLink() && (!last || follow) {
			if hops++; hops > fsMaxSymlinks {
				return fsResolved{}, fmt.Errorf("%s: %w", path.Join(cur.path(), c), unix.ELOOP)
			}
			target, err := fsReadlink(e.fd)
			if err != nil {
				return fsResolved{}, err
			}
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			comps = append(fsSplit(target), comps...)
			continue
		}
		if last {
			return fsResolved{parent: cur, name: c, ent: e}, nil
		}
		if !e.isDir() {
			return fsResolved{}, fmt.Errorf("%s: %w", path.Join(cur.path(), c), unix.ENOTDIR)
		}
		stack = append(stack, e.dir)
	}
	top := stack[len(stack)-1]
	if top.parent == nil {
		return fsResolved{parent: top, ent: v.rootEnt()}, nil
	}
	return fsResolved{parent: top.parent, name: top.name,
		ent: &fsEnt{name: top.name, layer: top.fds[0].layer, fd: top.fds[0].fd, st: top.st, dir: top}}, nil
}

func fsSplit(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// writable returns an fd of d in the layer writes go to: a live root's
// directory itself, or an overlay view's upper dir, copying d (and its
// parents) up from the image layers when it is not there yet, as
// overlayfs does: same owner, mode, xattrs and times.
func (v *fsView) writable(sc *fsScope, d *fsDir) (int, error) {
	if d.fds[0].layer == 0 {
		return d.fds[0].fd, nil
	}
	if d.parent == nil {
		return -1, fmt.Errorf("the root has no upper directory")
	}
	pfd, err := v.writable(sc, d.parent)
	if err != nil {
		return -1, err
	}
	if err := unix.Mkdirat(pfd, d.name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("copy up %s: %w", d.path(), err)
	}
	fd, st, err := fsPin(pfd, d.name)
	if err != nil {
		return -1, fmt.Errorf("copy up %s: %w", d.path(), err)
	}
	sc.add(fd)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -1, fmt.Errorf("copy up %s: the upper dir has a non-directory there", d.path())
	}
	src := d.fds[0].fd
	if err := unix.Fchownat(fd, "", int(d.st.Uid), int(d.st.Gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return -1, fmt.Errorf("copy up %s: chown: %w", d.path(), err)
	}
	if err := unix.Chmod(fsProcFd(fd), d.st.Mode&0o7777); err != nil {
		return -1, fmt.Errorf("copy up %s: chmod: %w", d.path(), err)
	}
	if xattrs, err := fsReadXattrs(src); err == nil {
		for k, val := range xattrs {
			unix.Setxattr(fsProcFd(fd), k, []byte(val), 0)
		}
	}
	fsSetTimes(fd, d.st.Atim, d.st.Mtim)
	d.fds = append([]fsLayerFd{{0, fd}}, d.fds...)
	return fd, nil
}

// mkdir creates the directory name in d (which has no entry name) in the
// top layer. In an overlay view a whiteout there is replaced and the new
// directory made opaque, so what the lower layers had stays hidden.
func (v *fsView) mkdir(sc *fsScope, d *fsDir, name string, mode uint32) (*fsEnt, error) {
	pfd, err := v.writable(sc, d)
	if err != nil {
		return nil, err
	}
	opaque := false
	if v.overlay {
		if fd, st, err := fsPin(pfd, name); err == nil {
			unix.Close(fd)
			if !fsIsWhiteout(&st) {
				return nil, unix.EEXIST
			}
			if err := unix.Unlinkat(pfd, name, 0); err != nil {
				return nil, fmt.Errorf("remove whiteout: %w", err)
			}
			opaque = true
		}
	}
	if err := unix.Mkdirat(pfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, err
	}
	fd, st, err := fsPin(pfd, name)
	if err != nil {
		return nil, err
	}
	sc.add(fd)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, unix.ENOTDIR
	}
	if opaque {
		if err := unix.Setxattr(fsProcFd(fd), fsOpaqueXattr, []byte("y"), 0); err != nil {
			return nil, fmt.Errorf("mark opaque: %w", err)
		}
	}
	if err := unix.Chmod(fsProcFd(fd), mode); err != nil {
		return nil, err
	}
	unix.Fstat(fd, &st)
	return &fsEnt{name: name, layer: 0, fd: fd, st: st, dir: &fsDir{parent: d, name: name, st: st, fds: []fsLayerFd{{0, fd}}}}, nil
}

// fsExtractOptions tune fsExtract.
type fsExtractOptions struct {
	chown       bool                    // keep the tar's owners
	stripSetuid bool                    // drop setuid and setgid bits
	checkBase   func(base string) error // vets where dst resolved
}

// fsExtract extracts tar r into the directory dst of v (dst followed if
// a symlink; it must exist).
func fsExtract(ctx context.Context, v *fsView, dst string, r io.Reader, o fsExtractOptions) error {
	sc := &fsScope{}
	res, err := v.resolve(sc, dst, true, false)
	if err != nil {
		sc.close()
		return fmt.Errorf("%s: %w", dst, err)
	}
	if res.ent == nil {
		sc.close()
		return errdefs.NotFoundf("%s: no such directory; create it first", dst)
	}
	if !res.ent.isDir() {
		sc.close()
		return errdefs.Invalidf("%s is not a directory; extract into a directory", dst)
	}
	if fs, ok := fsPseudo(res.ent.fd); ok {
		sc.close()
		return errdefs.Invalidf("%s is on %s, a kernel pseudo filesystem; copy into the container's files", dst, fs)
	}
	x := &fsExtractor{v: v, base: res.path(), o: o, buf: make([]byte, fsCopyBuffer)}
	sc.close()
	if o.checkBase != nil {
		if err := o.checkBase(x.base); err != nil {
			return err
		}
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read the archive: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("%s: %w", path.Join(x.base, hdr.Name), err)
		}
	}
	// Directory times last: creating their children changed them.
	for i := len(x.dirTimes) - 1; i >= 0; i-- {
		d := x.dirTimes[i]
		sc := &fsScope{}
		res, err := v.resolve(sc, d.path, false, false)
		if err == nil && res.ent != nil && res.ent.isDir() && res.ent.layer == 0 {
			fsSetTimes(res.ent.fd, d.atime, d.mtime)
		}
		sc.close()
	}
	return nil
}

type fsDirTime struct {
	path         string
	atime, mtime unix.Timespec
}

type fsExtractor struct {
	v        *fsView
	base     string // where dst resolved
	o        fsExtractOptions
	buf      []byte
	dirTimes []fsDirTime
}

// fsCleanRel makes a tar name relative to the extraction dir: '..' and a
// leading '/' cannot climb out of it ("" is the dir itself).
func fsCleanRel(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (x *fsExtractor) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil
	case tar.TypeChar, tar.TypeBlock:
		return nil // device nodes are not copied into containers or onto the host
	}
	rel := fsCleanRel(hdr.Name)
	if rel == "" {
		return nil // the destination keeps its own metadata
	}
	full := path.Join(x.base, rel)
	dir, base := path.Split(full)
	sc := &fsScope{}
	defer sc.close()
	// The parent, followed and created as needed, inside the root: a
	// symlink in the container (or one this tar made) leads elsewhere in
	// the container, never out of it.
	pres, err := x.v.resolve(sc, dir+"/.", true, true)
	if err != nil {
		return fmt.Errorf("parent directory: %w", err)
	}
	parent := pres.ent.dir
	if fs, ok := fsPseudo(parent.fds[0].fd); ok {
		return errdefs.Invalidf("%s is on %s, a kernel pseudo filesystem; berth does not write there", parent.path(), fs)
	}
	e, err := x.v.lookup(sc, parent, base)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		return x.dir(sc, parent, base, e, hdr)
	}
	if e != nil && e.isDir() {
		return errdefs.Conflictf("cannot overwrite directory %s with a non-directory", full)
	}
	pfd, err := x.v.writable(sc, parent)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeLink {
		return x.hardlink(sc, pfd, base, hdr.Linkname)
	}
	// What the top layer has there goes: the file being replaced, or a
	// whiteout (the name comes back).
	if err := unix.Unlinkat(pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("replace: %w", err)
	}
	mode := x.mode(hdr)
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		return x.file(pfd, base, mode, hdr, r)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
		if x.o.chown {
			if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("chown: %w", err)
			}
		}
		ts := []unix.Timespec{fsTimespec(fsAtime(hdr)), fsTimespec(hdr.ModTime)}
		unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
		return nil
	case tar.TypeFifo:
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0); err != nil {
			return err
		}
		fd, st, err := fsPin(pfd, base)
		if err != nil {
			return err
		}
		sc.add(fd)
		if st.Mode&unix.S_IFMT != unix.S_IFIFO {
			return fmt.Errorf("replaced while being created")
		}
		return x.meta(fd, mode, hdr)
	}
	return nil // other types (contiguous files, …) are skipped, as tar does
}

func (x *fsExtractor) mode(hdr *tar.Header) uint32 {
	m := uint32(hdr.Mode) & 0o7777
	if x.o.stripSetuid {
		m &^= unix.S_ISUID | unix.S_ISGID
	}
	return m
}

// dir makes (or updates) the directory base in parent; e is what is
// there now.
func (x *fsExtractor) dir(sc *fsScope, parent *fsDir, base string, e *fsEnt, hdr *tar.Header) error {
	if e != nil && !e.isDir() {
		return errdefs.Conflictf("cannot overwrite non-directory %s with a directory", path.Join(parent.path(), base))
	}
	var fd int
	if e == nil {
		ne, err := x.v.mkdir(sc, parent, base, 0o700)
		if err != nil {
			return err
		}
		fd = ne.fd
	} else {
		var err error
		if fd, err = x.v.writable(sc, e.dir); err != nil {
			return err
		}
	}
	x.dirTimes = append(x.dirTimes, fsDirTime{path.Join(parent.path(), base), fsTimespec(fsAtime(hdr)), fsTimespec(hdr.ModTime)})
	return x.meta(fd, x.mode(hdr), hdr)
}

// file writes a regular file; it is created exclusively and never
// through a symlink, and its metadata is set on the fd that wrote it.
func (x *fsExtractor) file(pfd int, base string, mode uint32, hdr *tar.Header, r io.Reader) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	if _, err := io.CopyBuffer(f, io.LimitReader(r, hdr.Size), x.buf); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if x.o.chown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	fsSetTimes(fd, fsTimespec(fsAtime(hdr)), fsTimespec(hdr.ModTime))
	return nil
}

// hardlink links base to the regular file the link names, resolved in
// the root from the extraction dir, without following it; the link is
// made from the pinned inode. In an overlay view the target must be in
// the upper dir.
func (x *fsExtractor) hardlink(sc *fsScope, pfd int, base, linkname string) error {
	target := path.Join(x.base, fsCleanRel(linkname))
	res, err := x.v.resolve(sc, target, false, false)
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", linkname, err)
	}
	if res.ent == nil || res.ent.st.Mode&unix.S_IFMT != unix.S_IFREG {
		return errdefs.Invalidf("hardlink target %s is not a regular file in the destination", linkname)
	}
	if res.ent.layer != 0 {
		return errdefs.Invalidf("hardlink target %s is in the container's image, not copied with it; copy the file itself", linkname)
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("replace: %w", err)
	}
	if err := unix.Linkat(res.ent.fd, "", pfd, base, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("hardlink to %s: %w", linkname, err)
	}
	return nil
}

// meta sets owner, mode and (not for directories, whose times are set
// last) times on the inode a pinned fd holds.
func (x *fsExtractor) meta(fd int, mode uint32, hdr *tar.Header) error {
	if x.o.chown {
		if err := unix.Fchownat(fd, "", hdr.Uid, hdr.Gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Chmod(fsProcFd(fd), mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if hdr.Typeflag != tar.TypeDir {
		fsSetTimes(fd, fsTimespec(fsAtime(hdr)), fsTimespec(hdr.ModTime))
	}
	return nil
}

func fsAtime(hdr *tar.Header) time.Time {
	if !hdr.AccessTime.IsZero() {
		return hdr.AccessTime
	}
	return hdr.ModTime
}

func fsTimespec(t time.Time) unix.Timespec { return unix.NsecToTimespec(t.UnixNano()) }

// fsSetTimes sets the times of the inode behind fd (any kind of fd; the
// magic link leads to that very inode).
func fsSetTimes(fd int, atime, mtime unix.Timespec) {
	unix.UtimesNanoAt(unix.AT_FDCWD, fsProcFd(fd), []unix.Timespec{atime, mtime}, 0)
}

// fsTar writes entries of a view as a tar.
type fsTar struct {
	ctx          context.Context
	v            *fsView
	tw           *tar.Writer
	links        map[[2]uint64]string
	buf          []byte
	skipContents map[string]bool // directories (by tar name) written without their contents
}

func newFsTar(ctx context.Context, v *fsView, w io.Writer) *fsTar {
	return &fsTar{ctx: ctx, v: v, tw: tar.NewWriter(w), links: map[[2]uint64]string{}, buf: make([]byte, fsCopyBuffer)}
}

// write writes e, named name in the tar, and for a directory everything
// beneath. Regular files are read through the fd that pins them, so a
// file swapped for a device node or a fifo meanwhile is never opened.
func (t *fsTar) write(e *fsEnt, name string) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	kind := e.st.Mode & unix.S_IFMT
	if kind == unix.S_IFSOCK {
		return nil
	}
	hdr := &tar.Header{Name: name, Mode: int64(e.st.Mode & 0o7777), Uid: int(e.st.Uid), Gid: int(e.st.Gid),
		ModTime: time.Unix(e.st.Mtim.Sec, e.st.Mtim.Nsec), Format: tar.FormatPAX}
	if xattrs, err := fsReadXattrs(e.fd); err == nil {
		for k, val := range xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = val
		}
	}
	switch kind {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, e.st.Size
		if e.st.Nlink > 1 {
			key := [2]uint64{uint64(e.st.Dev), e.st.Ino}
			if first, ok := t.links[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size, hdr.PAXRecords = tar.TypeLink, first, 0, nil
			} else {
				t.links[key] = name
			}
		}
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		target, err := fsReadlink(e.fd)
		if err != nil {
			return fmt.Errorf("%s: read symlink: %w", name, err)
		}
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if kind == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(uint64(e.st.Rdev))), int64(unix.Minor(uint64(e.st.Rdev)))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	switch {
	case hdr.Typeflag == tar.TypeReg:
		if err := fsCopyPinned(t.tw, e.fd, e.st.Size, t.buf); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	case hdr.Typeflag == tar.TypeDir:
		if t.skipContents[name] {
			return nil
		}
		if _, ok := fsPseudo(e.fd); ok {
			return nil // /proc, /sys, …: a mount point, not content
		}
		return t.children(e.dir, name)
	}
	return nil
}

// children writes the entries of d, named prefix/NAME ("" for none).
func (t *fsTar) children(d *fsDir, prefix string) error {
	names, err := t.v.names(d)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", d.path(), err)
	}
	for _, n := range names {
		csc := &fsScope{}
		e, err := t.v.lookup(csc, d, n)
		if err == nil && e != nil {
			name := n
			if prefix != "" {
				name = prefix + "/" + n
			}
			err = t.write(e, name)
		}
		csc.close()
		if err != nil {
			return err
		}
	}
	return nil
}

// fsPin opens name, one path element under dirfd, as an O_PATH fd
// without following it, and stats it: the fd pins the inode examined.
func fsPin(dirfd int, name string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return -1, st, fmt.Errorf("%q is not one path element: %w", name, unix.EINVAL)
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

func fsProcFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

func fsIsWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func fsIsOpaque(fd int) bool {
	v, err := fsGetxattr(fsProcFd(fd), fsOpaqueXattr)
	return err == nil && v == "y"
}

// fsReadlink reads the target of the symlink a pinned fd holds.
func fsReadlink(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// fsReadDir lists a directory fd (O_PATH is fine), unsorted.
func fsReadDir(fd int) ([]string, error) {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dfd), "")
	defer f.Close()
	return f.Readdirnames(-1)
}

// fsCopyPinned writes exactly size bytes of the regular file a pinned fd
// holds, reopened through its magic link (that very inode, checked to be
// a regular file), padding with zeros if it shrank meanwhile.
func fsCopyPinned(w io.Writer, fd int, size int64, buf []byte) error {
	rfd, err := unix.Open(fsProcFd(fd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	f := os.NewFile(uintptr(rfd), "")
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(rfd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("open: not the regular file examined")
	}
	n, err := io.CopyBuffer(w, io.LimitReader(f, size), buf)
	if err != nil {
		return err
	}
	for n < size {
		chunk := min(int64(len(buf)), size-n)
		clear(buf[:chunk])
		m, err := w.Write(buf[:chunk])
		if err != nil {
			return err
		}
		n += int64(m)
	}
	return nil
}

// fsReadXattrs returns the xattrs of the inode a pinned fd holds, without
// overlay's own.
func fsReadXattrs(fd int) (map[string]string, error) {
	p := fsProcFd(fd)
	size, err := unix.Listxattr(p, nil)
	if err != nil || size == 0 {
		return nil, err
	}
	buf := make([]byte, size)
	n, err := unix.Listxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var out map[string]string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, fsOverlayXattr) {
			continue
		}
		v, err := fsGetxattr(p, name)
		if err != nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out, nil
}

func fsGetxattr(p, name string) (string, error) {
	size, err := unix.Getxattr(p, name, nil)
	if err != nil {
		return "", err
	}
	buf := make([]byte, size)
	n, err := unix.Getxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// fsMqueueMagic is mqueue's f_type (x/sys/unix does not name it).
const fsMqueueMagic = 0x19800202

// fsPseudoMagic are kernel filesystems whose files are not content.
var fsPseudoMagic = map[int64]string{
	unix.PROC_SUPER_MAGIC: "procfs", unix.SYSFS_MAGIC: "sysfs", unix.CGROUP_SUPER_MAGIC: "cgroupfs",
	unix.CGROUP2_SUPER_MAGIC: "cgroup2fs", unix.DEBUGFS_MAGIC: "debugfs", unix.TRACEFS_MAGIC: "tracefs",
	unix.SECURITYFS_MAGIC: "securityfs", unix.BPF_FS_MAGIC: "bpffs", unix.DEVPTS_SUPER_MAGIC: "devpts",
	unix.NSFS_MAGIC: "nsfs", unix.PSTOREFS_MAGIC: "pstorefs", unix.EFIVARFS_MAGIC: "efivarfs",
	unix.SELINUX_MAGIC: "selinuxfs", fsMqueueMagic: "mqueue",
}

// fsPseudo reports whether fd is on a kernel pseudo filesystem.
func fsPseudo(fd int) (string, bool) {
	var s unix.Statfs_t
	if err := unix.Fstatfs(fd, &s); err != nil {
		return "", false
	}
	name, ok := fsPseudoMagic[int64(s.Type)]
	return name, ok
}
