package buildctx

import (
	"archive/tar"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"

	"berth.dev/berth/internal/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// compression of an ADD source, told by its first bytes.
type compression int

const (
	uncompressed compression = iota
	gzipped
	bzip2ed
	xzed
	zstded
)

func (c compression) String() string {
	return [...]string{"tar", "gzip", "bzip2", "xz", "zstd"}[c]
}

func sniff(head []byte) compression {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b, 0x08}):
		return gzipped
	case bytes.HasPrefix(head, []byte("BZh")):
		return bzip2ed
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return xzed
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return zstded
	}
	return uncompressed
}

// decompress wraps r. xz runs the xz program, as Docker does; the others
// are decoded in process.
func decompress(r io.Reader, c compression) (io.ReadCloser, error) {
	switch c {
	case gzipped:
		return gzip.NewReader(r)
	case bzip2ed:
		return io.NopCloser(bzip2.NewReader(r)), nil
	case zstded:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case xzed:
		return runXZ(r)
	}
	return io.NopCloser(r), nil
}

// errNoXZ: the xz program is not installed.
var errNoXZ = errors.New("the xz program is not installed")

func runXZ(r io.Reader) (io.ReadCloser, error) {
	bin, err := exec.LookPath("xz")
	if err != nil {
		return nil, errNoXZ
	}
	cmd := exec.Command(bin, "-d", "-c", "-q")
	cmd.Stdin = r
	x := &xzReader{cmd: cmd}
	cmd.Stderr = &x.stderr
	if x.out, err = cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return x, nil
}

type xzReader struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr bytes.Buffer
	waited bool
	err    error
}

func (x *xzReader) Read(p []byte) (int, error) {
	n, err := x.out.Read(p)
	if err == io.EOF {
		if werr := x.wait(); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (x *xzReader) wait() error {
	if !x.waited {
		x.waited = true
		if err := x.cmd.Wait(); err != nil {
			x.err = fmt.Errorf("xz: %v: %s", err, strings.TrimSpace(x.stderr.String()))
		}
	}
	return x.err
}

func (x *xzReader) Close() error {
	if !x.waited {
		x.cmd.Process.Kill()
		x.wait()
	}
	return nil
}

// openVerified opens the regular file rel and checks that it is still the
// file planned (same inode, size, mtime and ctime).
func (c *Context) openVerified(rootfd int, rel string, id fileID) (*os.File, error) {
	f, err := openFileAt(rootfd, rel)
	if err != nil {
		if isNotExist(err) {
			return nil, errdefs.Conflictf("build context: %s was removed while the build used it; run the build again", c.abs(rel))
		}
		return nil, c.readErr(rel, err)
	}
	st, err := fstat(f)
	if err != nil {
		f.Close()
		return nil, c.readErr(rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || idOf(&st) != id {
		f.Close()
		return nil, errdefs.Conflictf("build context: %s changed while the build used it; run the build again", c.abs(rel))
	}
	return f, nil
}

// detectArchive tells whether the ADD source s is a tar archive (maybe
// compressed): it is when the first tar header of its decompressed content
// parses, as in Docker. Anything else is copied as a file.
func (c *Context) detectArchive(rootfd int, s *source) (*archiveSrc, error) {
	id := idOf(&s.st)
	f, err := c.openVerified(rootfd, s.real, id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 6)
	n, _ := f.ReadAt(head, 0)
	comp := sniff(head[:n])
	r, err := decompress(f, comp)
	if err == errNoXZ {
		return nil, errdefs.Unavailablef("ADD %s: %s is xz-compressed and unpacking it needs the xz program, which is not installed; install xz (xz-utils), or unpack it into the context and COPY the files", s.arg, c.abs(s.real))
	}
	if err != nil {
		return nil, nil // not valid gzip/zstd: a plain file
	}
	defer r.Close()
	if _, err := tar.NewReader(r).Next(); err != nil {
		return nil, nil
	}
	return &archiveSrc{arg: s.arg, rel: s.real, id: id, comp: comp}, nil
}

// tracker follows, in stream order, which names are not directories, so
// that no entry is written through a symlink or below a file.
type tracker struct {
	nonDir map[string]bool
	dirs   map[string]bool
}

func newTracker() *tracker {
	return &tracker{nonDir: map[string]bool{}, dirs: map[string]bool{}}
}

// blocked returns the parent of name that is a file or symlink, or "".
func (t *tracker) blocked(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' && t.nonDir[name[:i]] {
			return name[:i]
		}
	}
	return ""
}

// add records name; it reports whether a directory became a non-directory.
func (t *tracker) add(name string, dir bool) bool {
	if dir {
		delete(t.nonDir, name)
		t.dirs[name] = true
		return false
	}
	t.nonDir[name] = true
	if t.dirs[name] {
		delete(t.dirs, name)
		return true
	}
	return false
}

// archiveName makes an archive entry's name relative to the destination:
// leading slashes are dropped (absolute names land inside Dest), and a name
// that climbs out with ".." is refused.
func archiveName(n string) (string, bool) {
	c := path.Clean(strings.TrimLeft(n, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	if c == "." {
		return "", true
	}
	return c, true
}

// streamArchive reads the archive a (decompressed r) and, when tw is set,
// writes its entries re-rooted under p.dest. It returns the number of
// entries (written or, without tw, that would be written).
func (p *CopyPlan) streamArchive(a *archiveSrc, r io.Reader, t *tracker, tw *tar.Writer) (int, error) {
	where := p.c.abs(a.rel)
	bad := func(format string, args ...any) error {
		return errdefs.Invalidf("ADD %s: archive %s: "+format+"; fix the archive, or COPY it to add it as a file", append([]any{a.arg, where}, args...)...)
	}
	tr := tar.NewReader(r)
	files := map[string]bool{} // regular files and hardlinks seen, for hardlink targets
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			if errors.Is(err, errNoXZ) {
				return n, errdefs.Unavailablef("ADD %s: %s needs the xz program to unpack, which is not installed; install xz", a.arg, where)
			}
			return n, bad("damaged after %d entries: %v", n, err)
		}
		var typ byte
		switch h.Typeflag {
		case tar.TypeReg, '\x00', tar.TypeGNUSparse:
			typ = tar.TypeReg
		case tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
			typ = h.Typeflag
		default:
			continue // devices, fifos and other kinds are not copied
		}
		rel, ok := archiveName(h.Name)
		if !ok {
			return n, bad("entry %q climbs out of the destination with \"..\" and is refused", h.Name)
		}
		name := path.Join(p.dest, rel)
		if rel == "" {
			if typ != tar.TypeDir {
				return n, bad("entry %q is not a directory but would replace the destination %s", h.Name, p.o.Dest)
			}
			if name == "" {
				continue // the image root itself: nothing to write
			}
		}
		if b := t.blocked(name); b != "" {
			return n, bad("entry %q would be written through /%s, which is a symlink or file at that point, and is refused", h.Name, b)
		}
		hdr := &tar.Header{
			Typeflag: typ, Name: name, Mode: h.Mode & 0o7777, Uid: h.Uid, Gid: h.Gid,
			ModTime: h.ModTime, Format: tar.FormatPAX,
		}
		if p.o.Chown != nil {
			hdr.Uid, hdr.Gid = p.o.Chown.UID, p.o.Chown.GID
		}
		switch typ {
		case tar.TypeReg:
			hdr.Size = h.Size
		case tar.TypeDir:
			hdr.Name += "/"
		case tar.TypeSymlink:
			hdr.Linkname = h.Linkname // resolved in the container, never here
			hdr.Mode = 0o777
		case tar.TypeLink:
			lrel, ok := archiveName(h.Linkname)
			target := path.Join(p.dest, lrel)
			if !ok || lrel == "" || !files[target] || target == name {
				return n, bad("entry %q is a hard link to %q, which is not an earlier file of the archive, and is refused", h.Name, h.Linkname)
			}
			hdr.Linkname = target
			hdr.Mode = 0
		}
		if p.o.Chmod != nil && (typ == tar.TypeReg || typ == tar.TypeDir) {
			hdr.Mode = unixMode(chmodBits(*p.o.Chmod))
		}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				if hdr.PAXRecords == nil {
					hdr.PAXRecords = map[string]string{}
				}
				hdr.PAXRecords[k] = v
			}
		}
		if t.add(name, typ == tar.TypeDir) {
			for k := range files {
				if strings.HasPrefix(k, name+"/") {
					delete(files, k)
				}
			}
		}
		if typ == tar.TypeReg || typ == tar.TypeLink {
			files[name] = true
		} else {
			delete(files, name)
		}
		n++
		if tw == nil {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return n, fmt.Errorf("ADD %s: write entry %q: %w", a.arg, h.Name, err)
		}
		if typ == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				if errors.Is(err, errNoXZ) || isWriteErr(err) {
					return n, fmt.Errorf("ADD %s: entry %q: %w", a.arg, h.Name, err)
				}
				return n, bad("entry %q is damaged: %v", h.Name, err)
			}
		}
	}
}

// writeErr marks errors of the tar's writer, as opposed to the archive's
// reader.
type writeErr struct{ err error }

func (e writeErr) Error() string { return e.err.Error() }
func (e writeErr) Unwrap() error { return e.err }

func isWriteErr(err error) bool {
	var we writeErr
	return errors.As(err, &we)
}
