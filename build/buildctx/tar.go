package buildctx

import (
	"archive/tar"
	"fmt"
	"io"
	"sync"

	"berth.dev/berth/internal/errdefs"
)

// WriteTar writes the uncompressed tar of the entries (PAX format; mtimes
// of the sources kept; uid/gid from chown, else 0, except that entries
// extracted from an archive keep the archive's; uname/gname empty) to w,
// with the end-of-archive marker. Entries come in groups in source order:
// the files of consecutive context sources sorted by name (so parents come
// before their contents and a hardlink after its target), then each
// extracted archive in its own order.
func (p *CopyPlan) WriteTar(w io.Writer) error {
	tw := tar.NewWriter(writeErrs{w})
	if err := p.c.withRoot(func(rootfd int) error {
		_, err := p.emit(rootfd, tw)
		return err
	}); err != nil {
		return err
	}
	return tw.Close()
}

// writeErrs marks the errors of the destination writer.
type writeErrs struct{ w io.Writer }

func (e writeErrs) Write(b []byte) (int, error) {
	n, err := e.w.Write(b)
	if err != nil {
		err = writeErr{err}
	}
	return n, err
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// emit walks the stream in order, checking that nothing is written through
// a symlink or below a file, and writes it to tw when tw is set. It returns
// the number of entries.
func (p *CopyPlan) emit(rootfd int, tw *tar.Writer) (int, error) {
	t := newTracker()
	n := 0
	for gi := range p.groups {
		g := &p.groups[gi]
		if a := g.arc; a != nil {
			c, err := p.emitArchive(rootfd, a, t, tw)
			n += c
			if tw == nil {
				a.count = c
			}
			if err != nil {
				return n, err
			}
			continue
		}
		for i := range g.entries {
			e := &g.entries[i]
			if b := t.blocked(e.name); b != "" {
				return n, errdefs.Invalidf("COPY/ADD to %s: /%s is a file or symlink in what is copied, yet /%s would go inside it (the sources disagree about it); rename one of them", p.o.Dest, b, e.name)
			}
			t.add(e.name, e.typ == tar.TypeDir)
			n++
			if tw != nil {
				if err := p.writeEntry(rootfd, tw, e); err != nil {
					return n, err
				}
			}
		}
	}
	return n, nil
}

func (p *CopyPlan) emitArchive(rootfd int, a *archiveSrc, t *tracker, tw *tar.Writer) (int, error) {
	f, err := p.c.openVerified(rootfd, a.rel, a.id)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := decompress(f, a.comp)
	if err != nil {
		if err == errNoXZ {
			return 0, errdefs.Unavailablef("ADD %s: %s needs the xz program to unpack, which is not installed; install xz", a.arg, p.c.abs(a.rel))
		}
		return 0, errdefs.Invalidf("ADD %s: archive %s: %v; fix the archive, or COPY it to add it as a file", a.arg, p.c.abs(a.rel), err)
	}
	defer r.Close()
	return p.streamArchive(a, r, t, tw)
}

func (p *CopyPlan) writeEntry(rootfd int, tw *tar.Writer, e *entry) error {
	hdr := &tar.Header{
		Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: unixMode(e.mode),
		Uid: e.uid, Gid: e.gid, ModTime: e.mtime, Format: tar.FormatPAX,
	}
	switch e.typ {
	case tar.TypeDir:
		hdr.Name += "/"
	case tar.TypeReg:
		hdr.Size = e.size
	case tar.TypeLink:
		hdr.Mode = 0
	}
	if e.typ != tar.TypeReg {
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write %s: %w", e.name, err)
		}
		return nil
	}
	f, err := p.c.openVerified(rootfd, e.src, e.id)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", e.name, err)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	m, err := io.CopyBuffer(tw, io.LimitReader(f, e.size), *bp)
	if err != nil {
		if isWriteErr(err) {
			return fmt.Errorf("write %s: %w", e.name, err)
		}
		return p.c.readErr(e.src, err)
	}
	if m != e.size {
		return errdefs.Conflictf("build context: %s changed while the build used it (it shrank); run the build again", p.c.abs(e.src))
	}
	return nil
}
