// Package content is berth's blob store: sha256-addressed, immutable
// files under ROOT/content. A blob becomes visible only after its size and
// digest were verified while it streamed in; then it is renamed into
// blobs/sha256/<hex> and made read-only (0444).
package content

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
)

// Store is a content store rooted at dir (ROOT/content).
type Store struct{ dir string }

// New opens the store, creating its directories (0700).
func New(dir string) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "blobs"), filepath.Join(dir, "blobs", "sha256"), filepath.Join(dir, "ingest")} {
		if err := os.Mkdir(d, 0o700); err != nil && !os.IsExist(err) {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil || d.Algorithm() != digest.SHA256 {
		return "", errdefs.Invalidf("invalid blob digest %q", d)
	}
	return filepath.Join(s.dir, "blobs", "sha256", d.Encoded()), nil
}

// Ingest stores r as the blob expected, of size bytes (size < 0: unknown).
// If the stream's length or sha256 differ, nothing is kept and the error
// says so. Ingesting a blob already present drains nothing and succeeds.
func (s *Store) Ingest(ctx context.Context, expected digest.Digest, size int64, r io.Reader) error {
	final, err := s.path(expected)
	if err != nil {
		return err
	}
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	_, _, err = s.write(ctx, r, final, func(h hash.Hash, n int64) error {
		if size >= 0 && n != size {
			return errdefs.Invalidf("blob %s: got %d bytes, want %d", expected, n, size)
		}
		if d := digest.NewDigest(digest.SHA256, h); d != expected {
			return errdefs.Invalidf("blob %s: content has digest %s (corrupted or tampered)", expected, d)
		}
		return nil
	})
	return err
}

// Put stores r, whatever its digest, and returns the digest and size.
func (s *Store) Put(ctx context.Context, r io.Reader) (digest.Digest, int64, error) {
	return s.write(ctx, r, "", nil)
}

// write streams r into ingest/, hashing as it goes; verify (if any) runs
// before the rename into final (computed from the digest when "").
func (s *Store) write(ctx context.Context, r io.Reader, final string, verify func(hash.Hash, int64) error) (digest.Digest, int64, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(s.dir, "ingest", hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("content ingest: %w", err)
	}
	defer os.Remove(tmp) // no-op after the rename
	h := digest.SHA256.Hash()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", n, fmt.Errorf("content ingest: %w", err)
	}
	if verify != nil {
		if err := verify(h, n); err != nil {
			return "", n, err
		}
	}
	d := digest.NewDigest(digest.SHA256, h)
	if final == "" {
		final, _ = s.path(d)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return "", n, fmt.Errorf("content ingest: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", n, fmt.Errorf("content commit %s: %w", d, err)
	}
	return d, n, state.SyncDir(filepath.Dir(final))
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Open returns the blob's content. Reading it to the end verifies the
// digest again: a blob changed on disk fails with ErrInvalid at EOF rather
// than being trusted.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	p, err := s.path(d)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFoundf("blob %s not found", d)
	}
	if err != nil {
		return nil, err
	}
	return &verifier{f: f, d: d, h: digest.SHA256.Hash()}, nil
}

type verifier struct {
	f *os.File
	d digest.Digest
	h hash.Hash
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := digest.NewDigest(digest.SHA256, v.h); got != v.d {
			return n, errdefs.Invalidf("blob %s on disk has digest %s: the store is corrupted; remove the image and import or pull it again", v.d, got)
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.f.Close() }

// ReadAll reads a small blob (manifests, configs) fully, verified.
func (s *Store) ReadAll(ctx context.Context, d digest.Digest) ([]byte, error) {
	rc, err := s.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Size returns a blob's size; ErrNotFound when absent.
func (s *Store) Size(ctx context.Context, d digest.Digest) (int64, error) {
	p, err := s.path(d)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, errdefs.NotFoundf("blob %s not found", d)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Delete removes a blob; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	p, err := s.path(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Walk calls fn for each blob.
func (s *Store) Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
	entries, err := os.ReadDir(filepath.Join(s.dir, "blobs", "sha256"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if err := fn(d, fi.Size()); err != nil {
			return err
		}
	}
	return nil
}
