package rootfs

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// Mount is one mount into the container root.
type Mount struct {
	Type     string // "bind" | "tmpfs" | "volume" (a bind of a volume's _data, see MountVolume)
	Source   string // host path for bind and volume (absolute); ignored for tmpfs
	Target   string // absolute path inside the container
	ReadOnly bool
	// Options: for tmpfs "size=N[k|m|g|%]", "mode=OCTAL", "exec" (tmpfs is
	// noexec by default, as in Docker); for both "nosuid", "nodev",
	// "noexec" and at most one propagation of "rprivate" (a bind's
	// default), "private", "rslave", "slave", "rshared", "shared"; for a
	// volume also "nocopy".
	Options []string
}

// Mount types.
const (
	MountBind  = "bind"
	MountTmpfs = "tmpfs"
)

// The propagation options and the mount(2) flags they set.
var propagations = map[string]uintptr{
	"rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"private":  unix.MS_PRIVATE,
	"rslave":   unix.MS_SLAVE | unix.MS_REC,
	"slave":    unix.MS_SLAVE,
	"rshared":  unix.MS_SHARED | unix.MS_REC,
	"shared":   unix.MS_SHARED,
}

// The per-mount flag options both types accept.
var mountFlagOptions = map[string]uintptr{
	"nosuid": unix.MS_NOSUID,
	"nodev":  unix.MS_NODEV,
	"noexec": unix.MS_NOEXEC,
}

// mountPlan is a validated Mount.
type mountPlan struct {
	m           Mount
	rel         string  // target relative to the root, cleaned, never ""
	flags       uintptr // MS_NOSUID/NODEV/NOEXEC/RDONLY wanted on the mount
	propagation uintptr // 0: leave as mounted (tmpfs without the option)
	data        string  // tmpfs only
	nocopy      bool    // volume only
}

// Validate reports whether m can be mounted: a known type, an absolute
// target that is neither / nor under /proc, an absolute bind source, and
// known options. It needs no root and touches nothing, so a plan can
// refuse a bad mount before any action.
func (m Mount) Validate() error {
	_, err := m.plan()
	return err
}

func (m Mount) plan() (mountPlan, error) {
	p := mountPlan{m: m}
	if !path.IsAbs(m.Target) {
		return p, errdefs.Invalidf("mount target %q: must be an absolute path inside the container", m.Target)
	}
	if strings.ContainsRune(m.Target, 0) {
		return p, errdefs.Invalidf("mount target %q: contains a NUL byte", m.Target)
	}
	clean := path.Clean(m.Target)
	if err := checkTargetRel(m.Target, strings.TrimPrefix(clean, "/")); err != nil {
		return p, err
	}
	p.rel = strings.TrimPrefix(clean, "/")
	seenProp := ""
	for _, o := range m.Options {
		if f, ok := propagations[o]; ok {
			if seenProp != "" && seenProp != o {
				return p, errdefs.Invalidf("mount %s: options %q and %q conflict; give one propagation", m.Target, seenProp, o)
			}
			seenProp, p.propagation = o, f
		}
	}
	switch m.Type {
	case MountBind, MountVolume:
		if m.Type == MountVolume {
			if err := checkVolumeSource(m.Target, m.Source); err != nil {
				return p, err
			}
		}
		if !path.IsAbs(m.Source) || strings.ContainsRune(m.Source, 0) {
			return p, errdefs.Invalidf("mount %s: bind source %q must be an absolute host path", m.Target, m.Source)
		}
		if seenProp == "" {
			p.propagation = propagations["rprivate"]
		}
		for _, o := range m.Options {
			if propagations[o] != 0 {
				continue
			}
			if f, ok := mountFlagOptions[o]; ok {
				p.flags |= f
				continue
			}
			if o == "nocopy" && m.Type == MountVolume {
				p.nocopy = true
				continue
			}
			return p, errdefs.Invalidf("mount %s: unknown bind option %q (use rprivate, private, rslave, slave, rshared, shared, nosuid, nodev or noexec)", m.Target, o)
		}
	case MountTmpfs:
		p.flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
		var data []string
		for _, o := range m.Options {
			k, v, hasValue := strings.Cut(o, "=")
			switch {
			case hasValue && k == "size" && validTmpfsSize(v):
				data = append(data, o)
			case hasValue && k == "mode" && validTmpfsMode(v):
				data = append(data, o)
			case !hasValue && propagations[o] != 0: // set after mounting
			case !hasValue && o == "exec":
				p.flags &^= unix.MS_NOEXEC
			case !hasValue && mountFlagOptions[o] != 0:
				p.flags |= mountFlagOptions[o]
			case hasValue && (k == "size" || k == "mode"):
				return p, errdefs.Invalidf("mount %s: tmpfs option %q: %s must be %s", m.Target, o, k,
					map[string]string{"size": "a number of bytes with an optional k, m, g or % suffix", "mode": "an octal mode such as 1777"}[k])
			default:
				return p, errdefs.Invalidf("mount %s: unknown tmpfs option %q (use size=, mode=, exec, nosuid, nodev, noexec or a propagation)", m.Target, o)
			}
		}
		p.data = strings.Join(data, ",")
	default:
		return p, errdefs.Invalidf("mount %s: unknown type %q (use bind, tmpfs or volume)", m.Target, m.Type)
	}
	if m.ReadOnly {
		p.flags |= unix.MS_RDONLY
	}
	return p, nil
}

// checkTargetRel refuses a target whose root-relative path rel is the
// root itself or lies under /proc.
func checkTargetRel(target, rel string) error {
	switch {
	case rel == "" || rel == ".":
		return errdefs.Invalidf("mount target %s: mounting over the container's / is refused; choose a directory inside it", target)
	case rel == "proc" || strings.HasPrefix(rel, "proc/"):
		return errdefs.Invalidf("mount target %s: mounts onto /proc are refused (they would hide the masked paths); choose a target outside /proc", target)
	}
	return nil
}

func validTmpfsSize(v string) bool {
	if v == "" {
		return false
	}
	if last := v[len(v)-1]; strings.IndexByte("kKmMgG%", last) >= 0 {
		v = v[:len(v)-1]
	}
	return v != "" && len(v) <= 20 && strings.Trim(v, "0123456789") == ""
}

func validTmpfsMode(v string) bool {
	return v != "" && len(v) <= 4 && strings.Trim(v, "01234567") == ""
}

// applyMounts mounts each of mounts into the root dirfd refers to, in
// order. It runs in the container's mount namespace before pivot_root.
func applyMounts(root int, mounts []Mount) error {
	if len(mounts) == 0 {
		return nil
	}
	rp, err := readlinkFD(root)
	if err != nil {
		return fmt.Errorf("rootfs: resolve the container root: %w", err)
	}
	for _, m := range mounts {
		if err := applyMount(root, rp, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMount(root int, rootPath string, m Mount) error {
	p, err := m.plan()
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	src := bindSource{fd: -1}
	if p.m.Type == MountBind || p.m.Type == MountVolume {
		if src, err = openBindSource(p.m.Source); err != nil {
			return fmt.Errorf("rootfs: mount %s: %w", p.m.Target, err)
		}
		defer src.close()
	}
	if p.m.Type == MountVolume { // copy-up, then a bind like any other
		if err := prepareVolume(root, rootPath, p, src); err != nil {
			return fmt.Errorf("rootfs: mount %s: %w", p.m.Target, err)
		}
		p.m.Type = MountBind
	}
	return mountPlanned(root, rootPath, p, src)
}

// bindSource is a host path opened once, O_PATH: the mount is made from
// this fd, so a rename or symlink swap of the host path after it was
// opened has no effect.
type bindSource struct {
	fd    int
	isDir bool
	path  string
}

func openBindSource(p string) (bindSource, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return bindSource{fd: -1}, errdefs.Invalidf("bind source %s does not exist on the host; create it or fix the path: %w", p, err)
		}
		return bindSource{fd: -1}, fmt.Errorf("open bind source %s: %w", p, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return bindSource{fd: -1}, fmt.Errorf("stat bind source %s: %w", p, err)
	}
	return bindSource{fd: fd, isDir: st.Mode&unix.S_IFMT == unix.S_IFDIR, path: p}, nil
}

func (s bindSource) close() {
	if s.fd >= 0 {
		unix.Close(s.fd)
	}
}

// mountPlanned resolves (creating what is missing) the target inside the
// root, mounts onto its fd and checks where the mount landed.
func mountPlanned(root int, rootPath string, p mountPlan, src bindSource) error {
	wantDir := p.m.Type == MountTmpfs || src.isDir
	target, err := openTarget(root, rootPath, p.m.Target, p.rel, wantDir)
	if err != nil {
		return err
	}
	defer unix.Close(target)

	switch p.m.Type {
	case MountTmpfs:
		if err := mountAt("tmpfs", target, "tmpfs", p.flags, p.data); err != nil {
			return fmt.Errorf("rootfs: mount tmpfs on %s: %w", p.m.Target, err)
		}
	case MountBind:
		if err := mountAt(fdPath(src.fd), target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("rootfs: bind %s to %s: %w", src.path, p.m.Target, err)
		}
	}
	// Where the mount was made, and what the target resolves to now: both
	// must be inside the root, and the latter must be the new mount.
	if err := checkUnderRoot(target, rootPath, p.m.Target, false); err != nil {
		return err
	}
	mnt, err := openat2(root, p.rel, unix.O_PATH|unix.O_CLOEXEC, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
	if err != nil {
		return fmt.Errorf("rootfs: mount target %s: reopen after mounting: %w", p.m.Target, err)
	}
	defer unix.Close(mnt)
	if err := checkUnderRoot(mnt, rootPath, p.m.Target, false); err != nil {
		return err
	}
	var stx unix.Statx_t
	if err := unix.Statx(mnt, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &stx); err != nil {
		return fmt.Errorf("rootfs: mount target %s: statx: %w", p.m.Target, err)
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return fmt.Errorf("rootfs: mount target %s: the path no longer leads to the new mount (was it replaced while mounting?); refusing to go on", p.m.Target)
	}
	if p.m.Type != MountBind {
		if p.propagation == 0 {
			return nil
		}
		if err := mountAt("", mnt, "", p.propagation, ""); err != nil {
			return fmt.Errorf("rootfs: mount %s: set propagation: %w", p.m.Target, err)
		}
		return nil
	}
	// What the target leads to now must be the source itself before its
	// propagation and flags are changed.
	var st unix.Stat_t
	if err := unix.Fstat(src.fd, &st); err != nil {
		return fmt.Errorf("rootfs: mount %s: stat bind source %s: %w", p.m.Target, src.path, err)
	}
	if uint64(stx.Dev_major) != uint64(unix.Major(st.Dev)) || uint64(stx.Dev_minor) != uint64(unix.Minor(st.Dev)) || stx.Ino != st.Ino {
		return fmt.Errorf("rootfs: mount target %s: the path no longer leads to the bind of %s (was it replaced while mounting?); refusing to go on", p.m.Target, src.path)
	}
	if err := mountAt("", mnt, "", p.propagation, ""); err != nil {
		return fmt.Errorf("rootfs: mount %s: set propagation: %w", p.m.Target, err)
	}
	if p.flags == 0 {
		return nil
	}
	// A bind takes its flags only on a remount; keep the flags the source
	// mount has (a host nosuid or nodev mount stays so).
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(mnt, &sfs); err != nil {
		return fmt.Errorf("rootfs: mount %s: statfs: %w", p.m.Target, err)
	}
	keep := uintptr(sfs.Flags) & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	if err := mountAt("", mnt, "", unix.MS_REMOUNT|unix.MS_BIND|p.flags|keep, ""); err != nil {
		return fmt.Errorf("rootfs: mount %s: remount with %s: %w", p.m.Target, flagNames(p.flags), err)
	}
	return nil
}

func flagNames(f uintptr) string {
	var out []string
	for _, n := range []struct {
		f    uintptr
		name string
	}{{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"}, {unix.MS_NOEXEC, "noexec"}} {
		if f&n.f != 0 {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, ",")
}

func openat2(dirfd int, p string, flags uint64, resolve uint64) (int, error) {
	for {
		fd, err := unix.Openat2(dirfd, p, &unix.OpenHow{Flags: flags, Resolve: resolve})
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) { // a rename raced the lookup
			continue
		}
		return fd, err
	}
}

// openTarget opens rel inside root (RESOLVE_IN_ROOT: symlinks, absolute
// or with "..", stay in the root) as an O_PATH fd, creating missing
// components one at a time in their resolved parent: directories, and
// the last one a directory when wantDir, else an empty file. Each
// component is checked to resolve inside the root and outside /proc
// before anything is created in it.
func openTarget(root int, rootPath, target, rel string, wantDir bool) (int, error) {
	const resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS
	comps := strings.Split(rel, "/")
	parent, err := unix.Dup(root)
	if err != nil {
		return -1, fmt.Errorf("rootfs: mount target %s: %w", target, err)
	}
	defer func() { unix.Close(parent) }()
	for i, c := range comps {
		last := i == len(comps)-1
		sofar := strings.Join(comps[:i+1], "/")
		flags := uint64(unix.O_PATH | unix.O_CLOEXEC)
		if !last {
			flags |= unix.O_DIRECTORY
		}
		fd, err := openat2(root, sofar, flags, resolve)
		if errors.Is(err, unix.ENOENT) {
			if err := createIn(parent, c, !last || wantDir); err != nil {
				return -1, fmt.Errorf("rootfs: mount target %s: create /%s in the container: %w", target, sofar, err)
			}
			fd, err = openat2(root, sofar, flags, resolve)
		}
		if err != nil {
			if errors.Is(err, unix.ENOTDIR) {
				return -1, errdefs.Invalidf("rootfs: mount target %s: /%s is not a directory in the container; choose another target: %w", target, sofar, err)
			}
			return -1, fmt.Errorf("rootfs: mount target %s: open /%s in the container: %w", target, sofar, err)
		}
		if err := checkUnderRoot(fd, rootPath, target, !last); err != nil {
			unix.Close(fd)
			return -1, err
		}
		if last {
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("rootfs: mount target %s: %w", target, err)
			}
			if isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR; isDir != wantDir {
				unix.Close(fd)
				what := map[bool]string{true: "a directory", false: "a file"}
				return -1, errdefs.Invalidf("rootfs: mount target %s is %s in the container but the source is %s; make the two kinds match", target, what[isDir], what[wantDir])
			}
			return fd, nil
		}
		unix.Close(parent)
		parent = fd
	}
	return -1, errdefs.Invalidf("rootfs: mount target %s: empty path", target)
}

// createIn makes name (one component, never a path) in dirfd: a
// directory, or an empty file. One that exists already (a race, or a
// dangling symlink, which is not followed) is left for the caller's
// reopen to judge.
func createIn(dirfd int, name string, dir bool) error {
	if dir {
		if err := unix.Mkdirat(dirfd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		return err
	}
	return unix.Close(fd)
}

// readlinkFD returns the path the kernel has for fd.
func readlinkFD(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlink(fdPath(fd), buf)
	if err != nil {
		return "", err
	}
	if n >= len(buf) {
		return "", fmt.Errorf("readlink %s: path too long", fdPath(fd))
	}
	return string(buf[:n]), nil
}

// checkUnderRoot verifies the kernel's path of fd lies inside rootPath
// and, unless intermediate (a directory on the way, which may be the root
// itself), is neither the root nor under its /proc.
func checkUnderRoot(fd int, rootPath, target string, intermediate bool) error {
	p, err := readlinkFD(fd)
	if err != nil {
		return fmt.Errorf("rootfs: mount target %s: readlink: %w", target, err)
	}
	var rel string
	switch {
	case rootPath == "/":
		rel = strings.TrimPrefix(p, "/")
	case strings.HasPrefix(p, rootPath+"/"):
		rel = p[len(rootPath)+1:]
	case p == rootPath:
		rel = ""
	default:
		return fmt.Errorf("rootfs: mount target %s resolved to %s, outside the container root %s; refusing to mount", target, p, rootPath)
	}
	if intermediate && rel == "" {
		return nil
	}
	if err := checkTargetRel(target, rel); err != nil {
		return fmt.Errorf("rootfs: %w (it resolves to /%s through a symlink)", err, rel)
	}
	return nil
}
