// Package state owns berth's state root: its layout, atomic writes, locks
// and name reservations (ARCHITECTURE §5 and §8).
//
// Lock order, never backwards: global → project → network → volume →
// container. Callers take them in that order; this package does not check.
package state

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// DefaultRootPath is the state root when BERTH_ROOT is unset.
const DefaultRootPath = "/var/lib/berth"

// DefaultRuntimeDir is the runtime dir of the default root.
const DefaultRuntimeDir = "/run/berth"

// DefaultRoot returns BERTH_ROOT (made absolute) as getenv reports it, or
// DefaultRootPath.
func DefaultRoot(getenv func(string) string) string {
	if r := getenv("BERTH_ROOT"); r != "" {
		if abs, err := filepath.Abs(r); err == nil {
			return abs
		}
		return r
	}
	return DefaultRootPath
}

// RuntimeDirFor is where a root's sockets and netns pins live: /run/berth
// for the default root, ROOT/run otherwise (lost at reboot either way for
// the default; tests keep theirs inside their temp root).
func RuntimeDirFor(root string) string {
	if filepath.Clean(root) == DefaultRootPath {
		return DefaultRuntimeDir
	}
	return filepath.Join(root, "run")
}

// Root is an opened state root.
type Root struct {
	Path   string
	RunDir string
}

// Open opens (creating it 0700 if missing) the state root at path and its
// runtime dir. An existing root must be a directory owned by root with no
// group or other permissions, or berth refuses it.
func Open(path string) (*Root, error) {
	if path == "" {
		path = DefaultRoot(os.Getenv)
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("state root %q: %w", path, err)
	}
	r := &Root{Path: path, RunDir: RuntimeDirFor(path)}
	for _, d := range []string{r.Path, r.RunDir} {
		if err := ensurePrivateDir(d); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"tmp", "projects", "names", "containers", "snapshots"} {
		if err := os.Mkdir(filepath.Join(r.Path, d), 0o700); err != nil && !os.IsExist(err) {
			return nil, fmt.Errorf("state root %s: %w", r.Path, err)
		}
	}
	// Containers are staged in tmp/ and renamed into containers/; their
	// snapshots live in snapshots/.
	for _, d := range []string{"tmp", "containers", "snapshots"} {
		SpreadSubdirs(filepath.Join(r.Path, d))
	}
	return r, nil
}

// SpreadSubdirs asks the file system to place each new subdirectory of dir
// (a container's, a snapshot's) apart from its siblings, as it does for
// the subdirectories of "/" (ext4's FS_TOPDIR_FL, chattr +T; a file
// system without the flag ignores it and nothing changes).
//
// Without it ext4 puts all of them, and the files in them, in the inode
// group of dir. On ext4 without a journal, allocating an inode then skips
// one by one every inode of the group freed in the last minutes (it
// avoids reusing them before their deletion reached the disk), so after a
// `down` of a hundred containers each of the next `up`'s thousands of new
// files and directories walked thousands of freed inodes: the cost of a
// container grew with the number of containers removed and created
// before it. Spread over the file system's groups, each group sees the
// churn of a few containers only.
func SpreadSubdirs(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsTopdirFl != 0 {
		return
	}
	unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFl))
}

// fsTopdirFl is FS_TOPDIR_FL of linux/fs.h (x/sys/unix does not have it).
const fsTopdirFl = 0x00020000

// ensurePrivateDir creates dir 0700 (parents 0755) or checks an existing
// one is root-owned with mode 0700.
func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	return CheckPrivateDir(dir)
}

// CheckPrivateDir verifies dir is a real directory owned by uid 0 (or by
// the caller, when not root) with mode 0700.
func CheckPrivateDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return errdefs.Invalidf("state dir %s is not a directory (a symlink or file is refused); remove it or set BERTH_ROOT elsewhere", dir)
	}
	if want := uint32(os.Geteuid()); st.Uid != want {
		return errdefs.Invalidf("state dir %s is owned by uid %d, not %d; run 'chown %d %s' or set BERTH_ROOT elsewhere", dir, st.Uid, want, want, dir)
	}
	if perm := st.Mode & 0o7777; perm != 0o700 {
		return errdefs.Invalidf("state dir %s has mode %04o; berth keeps secrets there and needs 0700: run 'chmod 0700 %s'", dir, perm, dir)
	}
	return nil
}

var (
	nameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	idRe   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidName checks a path component built from a project, service,
// container, network or volume name: never empty, "." or "..", no
// separator or NUL, and of berth's name alphabet.
func ValidName(kind, s string) error {
	if s == "" || s == "." || s == ".." || len(s) > 255 || !nameRe.MatchString(s) {
		return errdefs.Invalidf("invalid %s name %q for a state path", kind, s)
	}
	return nil
}

// ValidID checks a 64-hex container (or object) ID.
func ValidID(id string) error {
	if !idRe.MatchString(id) {
		return errdefs.Invalidf("invalid ID %q: want 64 lower-case hex digits", id)
	}
	return nil
}

func (r *Root) named(kind, dir, name string) (string, error) {
	if err := ValidName(kind, name); err != nil {
		return "", err
	}
	return filepath.Join(r.Path, dir, name), nil
}

// ProjectDir is projects/<project>.
func (r *Root) ProjectDir(project string) (string, error) {
	return r.named("project", "projects", project)
}

// NetworkDir is networks/<name>.
func (r *Root) NetworkDir(name string) (string, error) { return r.named("network", "networks", name) }

// VolumeDir is volumes/<name>.
func (r *Root) VolumeDir(name string) (string, error) { return r.named("volume", "volumes", name) }

// NamePath is names/<container-name>.
func (r *Root) NamePath(name string) (string, error) { return r.named("container", "names", name) }

// ContainerDir is containers/<id>.
func (r *Root) ContainerDir(id string) (string, error) {
	if err := ValidID(id); err != nil {
		return "", err
	}
	return filepath.Join(r.Path, "containers", id), nil
}

// TmpDir is the staging dir for renames that cross directories.
func (r *Root) TmpDir() string { return filepath.Join(r.Path, "tmp") }
