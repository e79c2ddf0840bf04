package watch

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runWatcher watches dir and returns the batches it hands over.
func runWatcher(t *testing.T, dir string, skip func(string) bool) (*Watcher, <-chan Batch) {
	t.Helper()
	w, err := NewWatcher(Options{Skip: skip})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddTree(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Batch)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx, out) }()
	t.Cleanup(func() { cancel(); <-done; w.Close() })
	return w, out
}

func next(t *testing.T, out <-chan Batch, d time.Duration) (Batch, bool) {
	t.Helper()
	select {
	case b := <-out:
		return b, true
	case <-time.After(d):
		return Batch{}, false
	}
}

func paths(b Batch, dir string) []string {
	var out []string
	for _, c := range b.Changes {
		r, _ := filepath.Rel(dir, c.Path)
		out = append(out, r)
	}
	return out
}

// TestWatcherMustFollowNewDirectories: a tree created after watching
// began (mkdir -p and files at once) is reported whole, and changes in it
// later are seen: its directories are watched too.
func TestWatcherMustFollowNewDirectories(t *testing.T) {
	dir := t.TempDir()
	w, out := runWatcher(t, dir, func(d string) bool { return filepath.Base(d) == ".git" })
	os.MkdirAll(filepath.Join(dir, "a", "b", "c"), 0o755)
	os.WriteFile(filepath.Join(dir, "a", "b", "c", "f.txt"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(dir, ".git", "objects"), 0o755)
	var seen []string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && !strings.Contains(strings.Join(seen, " "), "a/b/c/f.txt"); {
		b, ok := next(t, out, 500*time.Millisecond)
		if ok {
			seen = append(seen, paths(b, dir)...)
		}
	}
	if !strings.Contains(strings.Join(seen, " "), "a/b/c/f.txt") {
		t.Fatalf("the new tree's file was not reported: %v", seen)
	}
	if n := w.Watched(); n != 4 { // dir, a, a/b, a/b/c; not .git
		t.Errorf("%d directories watched, want 4", n)
	}
	os.WriteFile(filepath.Join(dir, "a", "b", "c", "g.txt"), []byte("y"), 0o644)
	b, ok := next(t, out, 2*time.Second)
	if !ok || strings.Join(paths(b, dir), " ") != "a/b/c/g.txt" {
		t.Fatalf("a change in the new tree: %+v %v", b, ok)
	}
	os.RemoveAll(filepath.Join(dir, "a"))
	next(t, out, 2*time.Second)
	if n := w.Watched(); n != 1 {
		t.Errorf("%d directories watched after removing the tree, want 1", n)
	}
}

// TestWatcherMustBatchAThousandFiles: 1,000 files written at once, and an
// editor's write-temp-then-rename save, each arrive as one batch.
func TestWatcherMustBatchAThousandFiles(t *testing.T) {
	dir := t.TempDir()
	_, out := runWatcher(t, dir, nil)
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d.txt", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, ok := next(t, out, 5*time.Second)
	if !ok || len(b.Changes) != 1000 || b.Overflow {
		t.Fatalf("first batch: %d changes, overflow %v (ok %v)", len(b.Changes), b.Overflow, ok)
	}
	if extra, ok := next(t, out, 500*time.Millisecond); ok {
		t.Fatalf("a second batch: %d changes", len(extra.Changes))
	}
	tmp := filepath.Join(dir, ".main.go.tmp")
	os.WriteFile(tmp, []byte("saved"), 0o644)
	os.Rename(tmp, filepath.Join(dir, "main.go"))
	b, ok = next(t, out, 2*time.Second)
	if !ok || !strings.Contains(strings.Join(paths(b, dir), " "), "main.go") {
		t.Fatalf("save: %+v", b)
	}
	if extra, ok := next(t, out, 300*time.Millisecond); ok {
		t.Fatalf("the save made a second batch: %+v", extra)
	}
}

// TestSyncTarMustCarryModesAndDeletions: what PrepareSync and WriteTar
// make of a batch: gone paths are removed (a removed directory once),
// others copied with their modes under their container paths; a tree op
// applies the rule's ignores to every path.
func TestSyncTarMustCarryModesAndDeletions(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "bin", "run"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(src, "conf"), []byte("c"), 0o600)
	os.WriteFile(filepath.Join(src, "x.tmp"), []byte("t"), 0o644)
	os.Symlink("conf", filepath.Join(src, "link"))
	r := mustRule(t, &Rule{Service: "web", Action: Sync, Path: src, Target: "/app", Ignore: []string{"*.tmp"}})
	op := func(rel string, o Op) SyncOp {
		p := filepath.Join(src, rel)
		return SyncOp{Rule: r, HostPath: p, ContainerPath: r.ContainerPath(p), Op: o}
	}
	work := PrepareSync([]SyncOp{op("bin/run", OpWrite), op("conf", OpCreate|OpRemove), op("gone", OpRemove), op("gone/sub", OpRemove), op("link", OpCreate)})
	if strings.Join(work.Remove, " ") != "/app/gone" || len(work.Retype) != 1 || work.Retype[0] != (Retype{"/app/conf", false}) || len(work.Copy) != 3 {
		t.Fatalf("work: %+v", work)
	}
	got := tarList(t, work.Copy)
	if got != "app/bin/run 755 reg;app/conf 600 reg;app/link 777 link->conf" {
		t.Errorf("tar: %s", got)
	}
	tree := []SyncOp{{Rule: r, HostPath: src, ContainerPath: "/app", Op: OpCreate, Tree: true}}
	if got := tarList(t, tree); got != "app/ 755 dir;app/bin/ 755 dir;app/bin/run 755 reg;app/conf 600 reg;app/link 777 link->conf" {
		t.Errorf("tree tar: %s", got)
	}
}

func tarList(t *testing.T, ops []SyncOp) string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := WriteTar(&buf, ops); err != nil {
		t.Fatal(err)
	}
	var out []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kind := map[byte]string{tar.TypeReg: "reg", tar.TypeDir: "dir", tar.TypeSymlink: "link->" + h.Linkname}[h.Typeflag]
		out = append(out, fmt.Sprintf("%s %o %s", h.Name, h.Mode, kind))
	}
	return strings.Join(out, ";")
}
