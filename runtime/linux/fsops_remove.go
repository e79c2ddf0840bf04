package linux

// Removal of paths inside a container's root, for file sync (berth watch):
// the counterpart of CopyIn, with the same discipline (fsops.go). The path
// is resolved inside the root with its parents' symlinks followed there
// and its last element never followed; what is removed is reached through
// directory fds pinned one element at a time, never by a host path string,
// so no removal escapes the container. A running container is changed
// through its /proc/<pid>/root (mount points inside it are left alone); a
// stopped one in its upper dir, with a whiteout hiding what the image
// layers have at the path, as overlayfs does, under the container's lock.

import (
	"context"
	"errors"
	"fmt"
	"path"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// fsMaxRemoveDepth bounds how deep a removal descends.
const fsMaxRemoveDepth = 4096

// RemoveSpec is one path RemovePaths removes.
type RemoveSpec struct {
	Path string // absolute path in the container
	// Retype removes the entry only when it is not of the kind Dir says:
	// the host now has the other kind of file there (a sync replacing a
	// file with a directory, or the other way round).
	Retype bool
	Dir    bool
}

// RemovePath removes p, and everything under it when it is a directory,
// from the container's filesystem; a missing p is not an error. A symlink
// at p is removed itself, not what it points to.
func (c *Container) RemovePath(ctx context.Context, p string) error {
	return c.RemovePaths(ctx, []RemoveSpec{{Path: p}})
}

// RemovePaths removes several paths with one view of the container (see
// RemovePath). It stops at the first failure.
func (c *Container) RemovePaths(ctx context.Context, specs []RemoveSpec) error {
	if len(specs) == 0 {
		return nil
	}
	m, err := c.meta()
	if err != nil {
		return err
	}
	v, release, err := c.openView(ctx, m, true)
	if err != nil {
		return fmt.Errorf("remove in container %s: %w", m.Name, err)
	}
	defer release()
	defer v.close()
	for _, s := range specs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fsRemove(v, m, s); err != nil {
			return fmt.Errorf("remove in container %s: %s: %w", m.Name, s.Path, err)
		}
	}
	return nil
}

func fsRemove(v *fsView, m *Meta, s RemoveSpec) error {
	clean := path.Clean("/" + s.Path)
	if clean == "/" {
		return errdefs.Invalidf("berth does not remove a container's root directory; name a path inside it")
	}
	sc := &fsScope{}
	defer sc.close()
	res, err := v.resolve(sc, clean, false, false)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil // a parent is missing: nothing there to remove
		}
		return err
	}
	if res.ent == nil {
		return nil
	}
	if s.Retype && res.ent.isDir() == s.Dir {
		return nil
	}
	parent := res.parent
	if fs, ok := fsPseudo(parent.fds[0].fd); ok {
		return errdefs.Invalidf("%s is on %s, a kernel pseudo filesystem; berth does not remove anything there", parent.path(), fs)
	}
	if !v.overlay {
		// A live root: remove from the mounted view, leaving mounts alone.
		if res.ent.st.Dev != parent.st.Dev {
			return errdefs.Conflictf("%s is a mount point in the container (a volume, bind or tmpfs); berth leaves it in place", res.path())
		}
		return fsRemoveAll(parent.fds[0].fd, res.name, parent.st.Dev, 0)
	}
	if mnt := fsInMount(m, res.path()); mnt != "" {
		return fsMountErr(s.Path, mnt)
	}
	pfd, err := v.writable(sc, parent)
	if err != nil {
		return err
	}
	if res.ent.layer == 0 {
		var st unix.Stat_t
		if err := unix.Fstat(pfd, &st); err != nil {
			return err
		}
		if err := fsRemoveAll(pfd, res.name, st.Dev, 0); err != nil {
			return err
		}
	}
	if fsLowerHas(parent, res.name) {
		// The image has it: a whiteout hides it, as overlayfs's rm does.
		if err := unix.Mknodat(pfd, res.name, unix.S_IFCHR, 0); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("whiteout: %w", err)
		}
	}
	return nil
}

// fsLowerHas reports whether an image layer under the upper dir shows
// name in the merged directory d (a whiteout or an opaque directory above
// hides the layers under it).
func fsLowerHas(d *fsDir, name string) bool {
	for _, l := range d.fds {
		if l.layer == 0 {
			continue
		}
		fd, st, err := fsPin(l.fd, name)
		if err != nil {
			continue
		}
		unix.Close(fd)
		return !fsIsWhiteout(&st)
	}
	return false
}

// fsRemoveAll removes name in the directory dirfd, and what is under it,
// through fds pinned one element at a time; it never follows a symlink
// and never descends into another filesystem (dev is the one removed
// from).
func fsRemoveAll(dirfd int, name string, dev uint64, depth int) error {
	if depth > fsMaxRemoveDepth {
		return fmt.Errorf("%s: nested more than %d directories deep", name, fsMaxRemoveDepth)
	}
	fd, st, err := fsPin(dirfd, name)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if st.Dev != dev {
		return errdefs.Conflictf("%s is a mount point (a volume, bind or tmpfs); berth leaves it in place", name)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
		return nil
	}
	names, err := fsReadDir(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := fsRemoveAll(fd, n, dev, depth+1); err != nil {
			return fmt.Errorf("%s/%w", name, err)
		}
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}
