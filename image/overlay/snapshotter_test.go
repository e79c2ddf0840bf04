package overlay

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
)

func TestSnapshotChain(t *testing.T) {
	ctx := context.Background()
	s, err := New(filepath.Join(t.TempDir(), "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Prepare(ctx, "extract-1", "")
	if err != nil || len(m) != 1 || m[0].Type != "bind" {
		t.Fatalf("prepare base: %+v %v", m, err)
	}
	os.WriteFile(filepath.Join(m[0].Source, "a"), []byte("1"), 0o644)
	if err := s.Commit(ctx, "sha256:l1", "extract-1"); err != nil {
		t.Fatal(err)
	}
	m2, _ := s.Prepare(ctx, "extract-2", "sha256:l1")
	if err := s.Commit(ctx, "sha256:l2", "extract-2"); err != nil {
		t.Fatal(err)
	}
	c, err := s.Prepare(ctx, "container-x", "sha256:l2")
	if err != nil {
		t.Fatal(err)
	}
	l1, _ := s.FSDir(ctx, "sha256:l1")
	l2, _ := s.FSDir(ctx, "sha256:l2")
	if c[0].Type != "overlay" || len(c[0].Lower) != 2 || c[0].Lower[0] != l2 || c[0].Lower[1] != l1 || c[0].Upper == "" || c[0].Work == "" {
		t.Fatalf("container mounts: %+v (l1=%s l2=%s)", c, l1, l2)
	}
	_ = m2
	v, err := s.View(ctx, "view", "sha256:l1")
	if err != nil || v[0].Type != "bind" || !v[0].RO || v[0].Source != l1 {
		t.Fatalf("view: %+v %v", v, err)
	}
	if err := s.Remove(ctx, "sha256:l2"); !errdefs.IsConflict(err) {
		t.Fatalf("remove with child: %v", err)
	}
	// A second unpack of the same layer loses the commit race and drops its copy.
	s.Prepare(ctx, "extract-dup", "sha256:l1")
	dupDir, _ := s.FSDir(ctx, "extract-dup")
	if err := s.Commit(ctx, "sha256:l2", "extract-dup"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dupDir); !os.IsNotExist(err) {
		t.Fatal("loser's copy kept")
	}
	for _, k := range []string{"container-x", "view", "sha256:l2", "sha256:l1", "missing"} {
		if err := s.Remove(ctx, k); err != nil {
			t.Fatalf("remove %s: %v", k, err)
		}
	}
	var n int
	s.Walk(ctx, func(context.Context, image.SnapshotInfo) error { n++; return nil })
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		if e.IsDir() {
			t.Errorf("snapshot dir left: %s", e.Name())
		}
	}
	if n != 0 {
		t.Fatalf("%d snapshots left", n)
	}
	if _, err := s.Prepare(ctx, "x", "missing"); !errdefs.IsNotFound(err) {
		t.Fatalf("missing parent: %v", err)
	}
}
