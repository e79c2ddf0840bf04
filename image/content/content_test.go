package content

import (
	"bytes"
	"context"

	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/errdefs"
)

func TestIngestVerifies(t *testing.T) {
	ctx := context.Background()
	s, err := New(filepath.Join(t.TempDir(), "content"))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("layer bytes")
	d := digest.FromBytes(data)
	// Tampered: one byte changed.
	bad := bytes.Clone(data)
	bad[0] ^= 1
	if err := s.Ingest(ctx, d, int64(len(data)), bytes.NewReader(bad)); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("tampered blob: %v", err)
	}
	// Truncated.
	if err := s.Ingest(ctx, d, int64(len(data)), bytes.NewReader(data[:4])); !errdefs.IsInvalid(err) {
		t.Fatalf("truncated blob: %v", err)
	}
	if _, err := s.Size(ctx, d); !errdefs.IsNotFound(err) {
		t.Fatalf("a failed ingest left a blob: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.dir, "ingest")); len(entries) != 0 {
		t.Fatalf("ingest dir not clean: %v", entries)
	}
	// Retry succeeds.
	if err := s.Ingest(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(s.dir, "blobs", "sha256", d.Encoded()))
	if fi.Mode().Perm() != 0o444 {
		t.Fatalf("blob mode %v", fi.Mode())
	}
	got, err := s.ReadAll(ctx, d)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %q %v", got, err)
	}
	// Corruption on disk is caught on read.
	p := filepath.Join(s.dir, "blobs", "sha256", d.Encoded())
	os.Chmod(p, 0o644)
	os.WriteFile(p, bad, 0o444)
	if _, err := s.ReadAll(ctx, d); !errdefs.IsInvalid(err) {
		t.Fatalf("corrupted blob read: %v", err)
	}
	var n int
	s.Walk(ctx, func(digest.Digest, int64) error { n++; return nil })
	if n != 1 {
		t.Fatalf("walk saw %d blobs", n)
	}
	if err := s.Delete(ctx, d); err != nil || s.Delete(ctx, d) != nil {
		t.Fatal("delete")
	}
	if _, err := s.Open(ctx, "sha256:../../etc"); !errdefs.IsInvalid(err) {
		t.Fatalf("hostile digest: %v", err)
	}
	pd, size, err := s.Put(ctx, strings.NewReader("x"))
	if err != nil || pd != digest.FromString("x") || size != 1 {
		t.Fatalf("put: %v %v %v", pd, size, err)
	}

}
