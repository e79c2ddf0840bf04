package linux

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
)

// TestFsRemoveStaysInRoot: removals in a live root follow parent symlinks
// inside the root only, remove a symlink itself, never what it points
// to, and climb no higher than the root.
func TestFsRemoveStaysInRoot(t *testing.T) {
	root := t.TempDir()
	sentinel, check := fstSentinel(t)
	fstWrite(t, filepath.Join(root, "app", "a.txt"), "a")
	fstWrite(t, filepath.Join(root, "app", "sub", "deep", "b.txt"), "b")
	fstWrite(t, filepath.Join(root, "keep", "k"), "k")
	os.Symlink("/", filepath.Join(root, "evil"))
	os.Symlink(filepath.Dir(sentinel), filepath.Join(root, "hostdir")) // absolute: resolves inside the root
	os.Symlink("/keep", filepath.Join(root, "viakeep"))
	v := fstView(t, false, root)
	m := &Meta{}
	for _, p := range []string{"/app/a.txt", "/app/sub", "/evil", "/hostdir/sentinel", "/../../" + sentinel, "/missing/x", "/viakeep/k", "/app/a.txt/x"} {
		if err := fsRemove(v, m, RemoveSpec{Path: p}); err != nil {
			t.Errorf("remove %s: %v", p, err)
		}
	}
	check()
	for p, exists := range map[string]bool{"app": true, "app/a.txt": false, "app/sub": false, "evil": false, "keep": true, "keep/k": false, "viakeep": true, "hostdir": true} {
		if _, err := os.Lstat(filepath.Join(root, p)); (err == nil) != exists {
			t.Errorf("%s: exists %v, want %v", p, err == nil, exists)
		}
	}
	if err := fsRemove(v, m, RemoveSpec{Path: "/"}); err == nil {
		t.Error("removing the root: no error")
	}
	// Retype keeps an entry of the kind the host has.
	fstWrite(t, filepath.Join(root, "same"), "x")
	if err := fsRemove(v, m, RemoveSpec{Path: "/same", Retype: true, Dir: false}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "same")); err != nil {
		t.Error("Retype removed a file the host still has as a file")
	}
	if err := fsRemove(v, m, RemoveSpec{Path: "/same", Retype: true, Dir: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "same")); err == nil {
		t.Error("Retype kept a file the host now has as a directory")
	}
}

// TestFsRemoveFromLayers: in a stopped container's layers, a path of the
// image is hidden by a whiteout, a path only in the upper dir is simply
// removed, and the image layer is never touched.
func TestFsRemoveFromLayers(t *testing.T) {
	testutil.RequireRoot(t)
	upper, lower := fstLayers(t)
	v := fstView(t, true, upper, lower)
	m := &Meta{}
	for _, p := range []string{"/bin/sh", "/opq/mine", "/etc", "/gone", "/test", "/nothing"} {
		if err := fsRemove(v, m, RemoveSpec{Path: p}); err != nil {
			t.Fatalf("remove %s: %v", p, err)
		}
	}
	var st unix.Stat_t
	for _, w := range []string{"bin/sh", "etc", "gone"} {
		if err := unix.Lstat(filepath.Join(upper, w), &st); err != nil || !fsIsWhiteout(&st) {
			t.Errorf("upper %s: not a whiteout (%v)", w, err)
		}
	}
	for _, gone := range []string{"opq/mine", "test"} {
		if _, err := os.Lstat(filepath.Join(upper, gone)); err == nil {
			t.Errorf("upper %s is still there", gone)
		}
	}
	if b, err := os.ReadFile(filepath.Join(lower, "bin", "sh")); err != nil || string(b) != "sh" {
		t.Errorf("the image layer changed: %q %v", b, err)
	}
	sc := &fsScope{}
	defer sc.close()
	for p, exists := range map[string]bool{"/bin/sh": false, "/etc/passwd": false, "/opq": true, "/opq/hidden": false, "/imglink": true} {
		res, err := v.resolve(sc, p, false, false)
		if (err == nil && res.ent != nil) != exists {
			t.Errorf("%s: exists %v (%v), want %v", p, res.ent != nil, err, exists)
		}
	}
}
