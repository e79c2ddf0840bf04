package buildctx

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"berth.dev/berth/internal/errdefs"
	"github.com/opencontainers/go-digest"
)

// digestVersion starts the hashed encoding; change it when the encoding
// changes, so old cache keys stop matching.
const digestVersion = "berth.dev/berth/build/buildctx copy v1"

// Digest is the content digest of what the copy produces: for every entry,
// sorted by name within its group (see WriteTar), its name, type,
// permission bits (after chmod), uid/gid (after chown), link target, size
// and the sha256 of its content; an extracted archive counts as one record:
// a marker, Dest, the chown/chmod applied, and the sha256 of the archive
// file's bytes. Modification times are not included. The same inputs give
// the same digest across runs and machines. Files are read (in parallel)
// on every call.
func (p *CopyPlan) Digest() (digest.Digest, error) {
	type job struct {
		rel string
		id  fileID
		sum [sha256.Size]byte
	}
	var jobs []job
	for gi := range p.groups {
		g := &p.groups[gi]
		if g.arc != nil {
			jobs = append(jobs, job{rel: g.arc.rel, id: g.arc.id})
			continue
		}
		for i := range g.entries {
			if e := &g.entries[i]; e.typ == tar.TypeReg {
				jobs = append(jobs, job{rel: e.src, id: e.id})
			}
		}
	}
	err := p.c.withRoot(func(rootfd int) error {
		return parallel(len(jobs), func(i int) error {
			sum, err := p.c.hashFile(rootfd, jobs[i].rel, jobs[i].id)
			jobs[i].sum = sum
			return err
		})
	})
	if err != nil {
		return "", err
	}

	var enc encoder
	enc.str(digestVersion)
	j := 0
	for gi := range p.groups {
		g := &p.groups[gi]
		if g.arc != nil {
			enc.byte('A')
			enc.str(p.dest)
			if p.o.Chown != nil {
				enc.int(int64(p.o.Chown.UID))
				enc.int(int64(p.o.Chown.GID))
			} else {
				enc.int(-1) // the archive's owners are kept
				enc.int(-1)
			}
			if p.o.Chmod != nil {
				enc.int(unixMode(chmodBits(*p.o.Chmod)))
			} else {
				enc.int(-1)
			}
			enc.int(g.arc.id.size)
			enc.buf = append(enc.buf, jobs[j].sum[:]...)
			j++
			continue
		}
		enc.byte('G')
		enc.int(int64(len(g.entries)))
		for i := range g.entries {
			e := &g.entries[i]
			enc.str(e.name)
			enc.byte(e.typ)
			enc.int(unixMode(e.mode))
			enc.int(int64(e.uid))
			enc.int(int64(e.gid))
			enc.str(e.link)
			enc.int(e.size)
			if e.typ == tar.TypeReg {
				enc.buf = append(enc.buf, jobs[j].sum[:]...)
				j++
			}
		}
	}
	sum := sha256.Sum256(enc.buf)
	return digest.NewDigestFromBytes(digest.SHA256, sum[:]), nil
}

// encoder is the unambiguous byte encoding that Digest hashes.
type encoder struct{ buf []byte }

func (e *encoder) byte(b byte)  { e.buf = append(e.buf, b) }
func (e *encoder) int(v int64)  { e.buf = binary.AppendVarint(e.buf, v) }
func (e *encoder) str(s string) { e.int(int64(len(s))); e.buf = append(e.buf, s...) }

// hashFile is the sha256 of the planned regular file rel.
func (c *Context) hashFile(rootfd int, rel string, id fileID) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := c.openVerified(rootfd, rel, id)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	n, err := io.CopyBuffer(h, io.LimitReader(f, id.size), *bp)
	if err != nil {
		return sum, c.readErr(rel, err)
	}
	if n != id.size {
		return sum, errdefs.Conflictf("build context: %s changed while the build used it (it shrank); run the build again", c.abs(rel))
	}
	h.Sum(sum[:0])
	return sum, nil
}

// parallel runs fn(0..n-1) on a few goroutines and returns the error of the
// lowest failing index.
func parallel(n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), 8, n)
	if workers <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		errAt  = n
		first  error
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if i < errAt {
						errAt, first = i, err
					}
					mu.Unlock()
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return first
}
