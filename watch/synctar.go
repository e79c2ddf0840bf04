package watch

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// SyncWork is a service's syncs sorted out against the host as it is
// now: what to copy, and what to remove in the containers first.
type SyncWork struct {
	// Remove are container paths to delete: gone on the host. Each is
	// removed with whatever is under it.
	Remove []string
	// Retype are container paths the host now has as another kind of file
	// (a directory where a file was, or the other way round): the
	// container's entry goes unless it is already of kind Dir.
	Retype []Retype
	// Copy exist on the host and are copied.
	Copy []SyncOp
}

// Retype is one path whose kind may have changed.
type Retype struct {
	Path string
	Dir  bool // what the host has there now
}

// Empty reports nothing to do.
func (w SyncWork) Empty() bool { return len(w.Remove) == 0 && len(w.Copy) == 0 }

// PrepareSync looks at the host paths of ops once (for all replicas).
func PrepareSync(ops []SyncOp) SyncWork {
	var w SyncWork
	seen := map[string]bool{}
	for _, op := range ops {
		if seen[op.ContainerPath] {
			continue
		}
		seen[op.ContainerPath] = true
		st, err := os.Lstat(op.HostPath)
		if err != nil {
			w.Remove = append(w.Remove, op.ContainerPath)
			continue
		}
		if op.Op&(OpRemove|OpRename) != 0 {
			w.Retype = append(w.Retype, Retype{op.ContainerPath, st.IsDir()})
		}
		w.Copy = append(w.Copy, op)
	}
	// A removed directory takes its contents along: drop what is under it.
	sort.Strings(w.Remove)
	var rm []string
	for _, p := range w.Remove {
		if n := len(rm); n > 0 && (p == rm[n-1] || strings.HasPrefix(p, strings.TrimSuffix(rm[n-1], "/")+"/")) {
			continue
		}
		rm = append(rm, p)
	}
	w.Remove = rm
	sort.Slice(w.Copy, func(i, j int) bool { return w.Copy[i].ContainerPath < w.Copy[j].ContainerPath })
	return w
}

// TarStats are what WriteTar wrote.
type TarStats struct {
	Files, Dirs, Links int
	Bytes              int64
}

// Entries is the number of entries written.
func (s TarStats) Entries() int { return s.Files + s.Dirs + s.Links }

// WriteTar writes the copies as one tar whose entry names are the
// container paths without their leading '/' (to extract at the
// container's root). Modes, owners and times are the host's; a directory
// copies only itself unless the op is a Tree, whose every path the rule
// must match. Host files that vanish meanwhile are skipped.
func WriteTar(w io.Writer, copies []SyncOp) (TarStats, error) {
	tw := tar.NewWriter(w)
	t := &tarWriter{tw: tw, buf: make([]byte, 256<<10)}
	for _, op := range copies {
		if !op.Tree {
			if err := t.entry(op.HostPath, op.ContainerPath); err != nil {
				return t.st, err
			}
			continue
		}
		err := filepath.WalkDir(op.HostPath, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // gone meanwhile
			}
			if p != op.HostPath && !op.Rule.Match(p, d.IsDir()) {
				if d.IsDir() && op.Rule.SkipDir(p) {
					return filepath.SkipDir
				}
				return nil // its children may still match
			}
			return t.entry(p, op.Rule.ContainerPath(p))
		})
		if err != nil {
			return t.st, err
		}
	}
	return t.st, tw.Close()
}

type tarWriter struct {
	tw  *tar.Writer
	buf []byte
	st  TarStats
}

func (t *tarWriter) entry(host, ctr string) error {
	name := strings.TrimPrefix(filepath.ToSlash(filepath.Clean(ctr)), "/")
	if name == "" || name == "." {
		return nil // the container's root keeps its own metadata
	}
	st, err := os.Lstat(host)
	if err != nil {
		return nil
	}
	hdr := &tar.Header{Name: name, Mode: int64(st.Mode().Perm()), ModTime: st.ModTime(), Format: tar.FormatPAX}
	if st.Mode()&os.ModeSetuid != 0 {
		hdr.Mode |= 0o4000
	}
	if st.Mode()&os.ModeSetgid != 0 {
		hdr.Mode |= 0o2000
	}
	if st.Mode()&os.ModeSticky != 0 {
		hdr.Mode |= 0o1000
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		hdr.Uid, hdr.Gid = int(sys.Uid), int(sys.Gid)
		hdr.AccessTime = time.Unix(sys.Atim.Sec, sys.Atim.Nsec)
	}
	switch {
	case st.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		if err := t.tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("sync %s: %w", host, err)
		}
		t.st.Dirs++
		return nil
	case st.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(host)
		if err != nil {
			return nil
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		if err := t.tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("sync %s: %w", host, err)
		}
		t.st.Links++
		return nil
	case st.Mode().IsRegular():
		return t.file(host, hdr)
	}
	return nil // sockets, fifos, devices: not synced
}

// file writes a regular file from an open fd: its size as the fd sees it,
// zero-padded if it shrinks while being read.
func (t *tarWriter) file(host string, hdr *tar.Header) error {
	f, err := os.Open(host)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	hdr.Typeflag, hdr.Size, hdr.ModTime = tar.TypeReg, st.Size(), st.ModTime()
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("sync %s: %w", host, err)
	}
	n, err := io.CopyBuffer(t.tw, io.LimitReader(f, hdr.Size), t.buf)
	if err != nil {
		return fmt.Errorf("sync %s: %w", host, err)
	}
	for n < hdr.Size {
		chunk := min(int64(len(t.buf)), hdr.Size-n)
		clear(t.buf[:chunk])
		m, err := t.tw.Write(t.buf[:chunk])
		if err != nil {
			return fmt.Errorf("sync %s: %w", host, err)
		}
		n += int64(m)
	}
	t.st.Files++
	t.st.Bytes += hdr.Size
	return nil
}
