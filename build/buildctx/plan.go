package buildctx

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"berth.dev/berth/internal/errdefs"
	"golang.org/x/sys/unix"
)

// Owner of copied files (already resolved to numbers by the caller).
type Owner struct{ UID, GID int }

// CopyOptions are one COPY/ADD's flags and destination.
type CopyOptions struct {
	// Dest is the absolute destination in the image, cleaned, e.g. "/app"
	// (never relative). "/" is always a directory.
	Dest string
	// DestIsDir: the sources go inside Dest (Dest had a trailing slash,
	// there are several sources or a wildcard, or Dest is an existing
	// directory in the image: the caller decides).
	DestIsDir bool
	// Chown is the owner of everything copied; nil: 0:0 (Docker's COPY
	// default). Entries extracted from an archive keep the archive's owners
	// when Chown is nil.
	Chown *Owner
	// Chmod, when set, replaces the permission bits of the files and
	// directories copied (not of symlinks), as BuildKit does; nil: the
	// source's bits. The setuid, setgid and sticky bits may be given either
	// as fs.ModeSetuid/fs.ModeSetgid/fs.ModeSticky or as the octal
	// 0o4000/0o2000/0o1000.
	Chmod *fs.FileMode
	// ExtractArchives (ADD): a source that is a local tar archive (plain,
	// gzip, bzip2, xz or zstd compressed; detected by content, not by name)
	// is extracted into Dest instead of copied as a file. Its entries are
	// re-rooted under Dest: absolute names are made relative to Dest, an
	// entry whose name climbs out of Dest with ".." is rejected, an entry
	// that would be written through a symlink (or a file) is rejected,
	// hardlinks must point to an earlier entry of the same archive, and
	// device nodes and fifos are skipped. Symlink targets are kept as they
	// are: they are resolved in the container, never while copying.
	// Decompressing xz runs the xz program, as Docker does.
	ExtractArchives bool
}

// CopyPlan is the resolved list of entries of one COPY/ADD. Digest and
// WriteTar read the files when called; a file changed since Plan makes them
// fail (errdefs.ErrConflict) rather than produce something else. A plan is
// safe for concurrent use.
type CopyPlan struct {
	c      *Context
	o      CopyOptions
	dest   string // Dest without the leading slash; "" is the root
	groups []group
	n      int
}

// group is a run of the stream WriteTar writes: the files of consecutive
// context sources merged (later sources win, as when copied one after the
// other) and sorted by name, or one extracted archive.
type group struct {
	entries []entry
	arc     *archiveSrc
}

// entry is one tar entry from the context.
type entry struct {
	name     string      // in the image, no leading slash
	typ      byte        // tar.TypeReg, TypeDir, TypeSymlink or TypeLink
	mode     fs.FileMode // permission and special bits, after chmod
	uid, gid int
	link     string // symlink target or hardlink's entry name
	size     int64
	mtime    time.Time
	src      string // context path of a regular file's content
	id       fileID // its state at planning time
	nlink    uint64
}

// archiveSrc is an ADD source that is extracted.
type archiveSrc struct {
	arg   string // the source as written
	rel   string // its context path
	id    fileID
	comp  compression
	count int // entries it yields, counted by Plan
}

// source is one resolved COPY/ADD source.
type source struct {
	arg   string      // as written in the instruction
	shown string      // the path that matched, before resolving symlinks
	real  string      // context path with symlinks resolved ("" the root)
	st    unix.Stat_t // of real
	arc   *archiveSrc
}

func (s *source) isDir() bool { return s.st.Mode&unix.S_IFMT == unix.S_IFDIR }

// Plan resolves COPY/ADD sources into the entries the layer gets, applying
// Docker's COPY rules:
//
//   - sources are context-relative: ".", "./x" and "/x" are inside the
//     context, "../x" is clamped to the context root; * ? and [..] match
//     per path element (path.Match); a source matching nothing is an
//     errdefs.ErrNotFound "file not found in build context or excluded by
//     .dockerignore: <src>";
//   - a directory source copies its contents into Dest, and Dest gets a
//     directory entry with the source directory's bits (or Chmod);
//   - a file source goes to Dest/<basename> when DestIsDir (Dest then gets a
//     0755 directory entry, or Chmod's), else to Dest itself;
//   - symlinks inside copied directories are copied as symlinks; a source
//     named directly (or matched by a wildcard) that is a symlink, or whose
//     path goes through symlinks, is followed when it resolves inside the
//     context (absolute targets under the context directory count as
//     inside), and copied under its own name; one resolving outside the
//     context is an errdefs.ErrInvalid;
//   - files .dockerignore excludes are never selected; an excluded
//     directory is walked only when a '!' exception could re-include
//     something below it, and then gets its entry only if something inside
//     it is copied;
//   - files that are hardlinked to each other become one file and tar
//     hardlinks to it; devices, sockets and fifos are skipped;
//   - parent directories of Dest are not emitted, nor is the root "/".
//
// The same name from two sources: the later wins; a name that is a file or
// symlink in one source and has entries below it from another is an
// errdefs.ErrInvalid.
func (c *Context) Plan(srcs []string, o CopyOptions) (*CopyPlan, error) {
	if len(srcs) == 0 {
		return nil, errdefs.Invalidf("COPY/ADD to %s: no source given; name at least one file or directory of the build context", o.Dest)
	}
	if !path.IsAbs(o.Dest) {
		return nil, errdefs.Invalidf("COPY/ADD destination %q: must be an absolute path in the image; resolve it against WORKDIR first", o.Dest)
	}
	if o.Chown != nil && (o.Chown.UID < 0 || o.Chown.GID < 0) {
		return nil, errdefs.Invalidf("COPY/ADD to %s: owner %d:%d is negative; give user and group ids of 0 or more", o.Dest, o.Chown.UID, o.Chown.GID)
	}
	p := &CopyPlan{c: c, o: o, dest: cleanRel(o.Dest)}
	if p.dest == "" {
		p.o.DestIsDir = true
	}
	err := c.withRoot(func(rootfd int) error {
		if err := p.build(rootfd, srcs); err != nil {
			return err
		}
		n, err := p.emit(rootfd, nil)
		p.n = n
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Entries is the number of tar entries WriteTar will write.
func (p *CopyPlan) Entries() int { return p.n }

// build resolves the sources and collects the groups.
func (p *CopyPlan) build(rootfd int, srcs []string) error {
	var sources []source
	for _, s := range srcs {
		found, err := p.c.resolveSource(rootfd, s)
		if err != nil {
			return err
		}
		sources = append(sources, found...)
	}
	if !p.o.DestIsDir && len(sources) > 1 {
		var names []string
		for _, s := range sources {
			names = append(names, s.shown)
		}
		return errdefs.Invalidf("COPY/ADD to %s: %d sources (%s) need a directory destination; end the destination with a /", p.o.Dest, len(sources), strings.Join(names, ", "))
	}
	destDir := p.o.DestIsDir
	for i := range sources {
		s := &sources[i]
		if s.st.Mode&unix.S_IFMT == unix.S_IFREG && p.o.ExtractArchives {
			a, err := p.c.detectArchive(rootfd, s)
			if err != nil {
				return err
			}
			s.arc = a
		}
		destDir = destDir || s.isDir() || s.arc != nil
	}
	var cur *group
	add := func(e entry) {
		if cur == nil {
			p.groups = append(p.groups, group{})
			cur = &p.groups[len(p.groups)-1]
		}
		cur.entries = append(cur.entries, e)
	}
	if destDir && p.dest != "" {
		add(entry{name: p.dest, typ: tar.TypeDir, mode: p.mode(0o755), uid: p.uid(), gid: p.gid(), mtime: timespec(sources[0].st.Mtim)})
	}
	for i := range sources {
		s := &sources[i]
		switch {
		case s.arc != nil:
			p.groups = append(p.groups, group{arc: s.arc})
			cur = nil
		case s.isDir():
			if p.dest != "" {
				add(entry{name: p.dest, typ: tar.TypeDir, mode: p.mode(fileMode(s.st.Mode)), uid: p.uid(), gid: p.gid(), mtime: timespec(s.st.Mtim)})
			}
			f, err := openDirAt(rootfd, s.real)
			if err != nil {
				return p.c.readErr(s.real, err)
			}
			_, ms := p.c.ign.match(s.real, nil)
			w := walker{p: p}
			_, err = w.walk(f, s.real, p.dest, ms)
			f.Close()
			if err != nil {
				return err
			}
			for _, e := range w.out {
				add(e)
			}
		default: // a regular file
			name := p.dest
			if p.o.DestIsDir {
				name = path.Join(p.dest, path.Base("/"+s.shown))
			}
			add(p.fileEntry(name, s.real, &s.st))
		}
	}
	for i := range p.groups {
		if p.groups[i].arc == nil {
			p.groups[i].entries = finishGroup(p.groups[i].entries)
		}
	}
	return nil
}

// finishGroup keeps the last entry of each name, sorts by name, and turns
// regular files that share an inode into hardlinks to the first of them.
func finishGroup(es []entry) []entry {
	last := make(map[string]int, len(es))
	for i := range es {
		last[es[i].name] = i
	}
	kept := make([]entry, 0, len(last))
	for i := range es {
		if last[es[i].name] == i {
			kept = append(kept, es[i])
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].name < kept[j].name })
	type inode struct{ dev, ino uint64 }
	first := map[inode]string{}
	for i := range kept {
		e := &kept[i]
		if e.typ != tar.TypeReg || e.nlink < 2 {
			continue
		}
		k := inode{e.id.dev, e.id.ino}
		if f, ok := first[k]; ok {
			e.typ, e.link, e.size, e.src = tar.TypeLink, f, 0, ""
		} else {
			first[k] = e.name
		}
	}
	return kept
}

func (p *CopyPlan) uid() int {
	if p.o.Chown != nil {
		return p.o.Chown.UID
	}
	return 0
}

func (p *CopyPlan) gid() int {
	if p.o.Chown != nil {
		return p.o.Chown.GID
	}
	return 0
}

// mode is the mode a copied file or directory gets.
func (p *CopyPlan) mode(src fs.FileMode) fs.FileMode {
	if p.o.Chmod == nil {
		return src
	}
	return chmodBits(*p.o.Chmod)
}

// chmodBits accepts the special bits as Go flags or as octal.
func chmodBits(m fs.FileMode) fs.FileMode {
	out := m & 0o777
	if m&fs.ModeSetuid != 0 || m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&fs.ModeSetgid != 0 || m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&fs.ModeSticky != 0 || m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

func (p *CopyPlan) fileEntry(name, rel string, st *unix.Stat_t) entry {
	return entry{
		name: name, typ: tar.TypeReg, mode: p.mode(fileMode(st.Mode)), uid: p.uid(), gid: p.gid(),
		size: st.Size, mtime: timespec(st.Mtim), src: rel, id: idOf(st), nlink: uint64(st.Nlink),
	}
}

// walker collects a directory source's contents.
type walker struct {
	p   *CopyPlan
	out []entry
}

// walk adds the contents of the context directory rel (open as dir) under
// the image path dest, and returns how many entries it added. ms is rel's
// .dockerignore state.
func (w *walker) walk(dir *os.File, rel, dest string, ms matchState) (int, error) {
	c := w.p.c
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return 0, c.readErr(rel, err)
	}
	sort.Strings(names)
	dfd := int(dir.Fd())
	start := len(w.out)
	for _, name := range names {
		crel, cdest := path.Join(rel, name), path.Join(dest, name)
		var st unix.Stat_t
		if err := retryEINTR(func() error { return unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
			if isNotExist(err) {
				continue // removed while we walk
			}
			return len(w.out) - start, c.readErr(crel, err)
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		excluded, cms := c.ign.match(crel, ms)
		if excluded && (!isDir || !c.ign.exceptionBelow(crel)) {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			w.out = append(w.out, w.p.fileEntry(cdest, crel, &st))
		case unix.S_IFLNK:
			target, err := readlinkIn(dfd, name)
			if err != nil {
				if isNotExist(err) {
					continue
				}
				return len(w.out) - start, c.readErr(crel, err)
			}
			w.out = append(w.out, entry{name: cdest, typ: tar.TypeSymlink, mode: 0o777, uid: w.p.uid(), gid: w.p.gid(), link: target, mtime: timespec(st.Mtim)})
		case unix.S_IFDIR:
			sub, err := openChildDir(dfd, name, crel)
			if err != nil {
				if isNotExist(err) || errors.Is(err, unix.ELOOP) {
					continue // removed or replaced while we walk
				}
				return len(w.out) - start, c.readErr(crel, err)
			}
			mark := len(w.out)
			w.out = append(w.out, entry{name: cdest, typ: tar.TypeDir, mode: w.p.mode(fileMode(st.Mode)), uid: w.p.uid(), gid: w.p.gid(), mtime: timespec(st.Mtim)})
			n, err := w.walk(sub, crel, cdest, cms)
			sub.Close()
			if err != nil {
				return len(w.out) - start, err
			}
			if excluded && n == 0 {
				// Excluded, walked only for its exceptions, and none
				// matched: the directory is not part of the context.
				w.out = w.out[:mark]
			}
		default:
			// devices, sockets and fifos are not copied
		}
	}
	return len(w.out) - start, nil
}

// readErr reports a context path that cannot be read.
func (c *Context) readErr(rel string, err error) error {
	p := filepath.Join(c.dir, filepath.FromSlash(rel))
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return errdefs.Invalidf("build context: cannot read %s: %w; make it readable or exclude it in .dockerignore", p, err)
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return errdefs.Conflictf("build context: %s changed while the build read it (%w); run the build again", p, err)
	}
	return fmt.Errorf("build context: read %s: %w", p, err)
}
