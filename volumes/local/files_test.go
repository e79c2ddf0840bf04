package local

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/volumes"
)

// WriteFiles writes each file with its mode (and, as root, its owner)
// into a fresh private directory per call; ReleaseFiles removes the
// directories of the paths given and nothing else.
func TestWriteAndReleaseFiles(t *testing.T) {
	m, root := newManager(t)
	src := filepath.Join(t.TempDir(), "pw.txt")
	if err := os.WriteFile(src, []byte("from-host"), 0o600); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 70, 71
	}
	files := []volumes.File{
		{Kind: "secrets", Name: "pw", Source: src, Mode: 0o400, UID: uid, GID: gid},
		{Kind: "configs", Name: "app.conf", Content: []byte("debug=1\n"), Mode: 0o444, UID: os.Getuid(), GID: os.Getgid()},
	}
	a, err := m.WriteFiles(ctx, "demo", files)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.WriteFiles(ctx, "demo", files[1:])
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(root.Path, "projects", "demo", "files")
	for i, p := range a {
		if !strings.HasPrefix(p, base+"/") || !m.OwnsFile(p) {
			t.Fatalf("path %s is not under %s", p, base)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode().Perm() != os.FileMode(files[i].Mode) || int(sys.Uid) != files[i].UID || int(sys.Gid) != files[i].GID {
			t.Errorf("%s: mode %v owner %d:%d, want %+v", p, st.Mode(), sys.Uid, sys.Gid, files[i])
		}
	}
	if got, _ := os.ReadFile(a[0]); string(got) != "from-host" {
		t.Errorf("copied secret: %q", got)
	}
	if got, _ := os.ReadFile(a[1]); string(got) != "debug=1\n" {
		t.Errorf("config: %q", got)
	}
	if filepath.Dir(filepath.Dir(a[0])) == filepath.Dir(filepath.Dir(b[0])) {
		t.Error("two calls share a directory")
	}
	for _, d := range []string{base, filepath.Dir(filepath.Dir(a[0])), filepath.Dir(a[0])} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want 0700", d, st.Mode(), err)
		}
	}
	if m.OwnsFile(src) || m.OwnsFile(filepath.Join(root.Path, "volumes", "x", "_data")) {
		t.Error("OwnsFile claims a path that is not its own")
	}
	if err := m.ReleaseFiles(ctx, "demo", []string{a[1], src, "/etc/passwd", base}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(a[0]))); !os.IsNotExist(err) {
		t.Errorf("released dir still there: %v", err)
	}
	if _, err := os.Stat(b[0]); err != nil {
		t.Errorf("the other call's file went too: %v", err)
	}
	if _, err := os.Stat(src); err != nil {
		t.Errorf("the host file went: %v", err)
	}
}

// Bad input leaves nothing behind.
func TestWriteFilesRefusesBadInput(t *testing.T) {
	m, root := newManager(t)
	for name, f := range map[string]volumes.File{
		"traversal": {Kind: "secrets", Name: "../x", Content: []byte("x"), Mode: 0o444},
		"kind":      {Kind: "other", Name: "x", Mode: 0o444},
		"missing":   {Kind: "secrets", Name: "x", Source: "/nonexistent/berth-secret", Mode: 0o444},
		"relative":  {Kind: "secrets", Name: "x", Source: "rel/x", Mode: 0o444},
		"dir":       {Kind: "secrets", Name: "x", Source: t.TempDir(), Mode: 0o444},
	} {
		ok := volumes.File{Kind: "configs", Name: "fine", Content: []byte("ok"), Mode: 0o444}
		if _, err := m.WriteFiles(ctx, "demo", []volumes.File{ok, f}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(root.Path, "projects", "demo", "files"))
	if len(entries) != 0 {
		t.Errorf("left: %v", entries)
	}
	if _, err := m.WriteFiles(ctx, "../x", nil); !errdefs.IsInvalid(err) {
		t.Errorf("project ../x: %v", err)
	}
}

func TestEnsureHostPath(t *testing.T) {
	m, _ := newManager(t)
	dir := t.TempDir()
	if err := m.EnsureHostPath(ctx, dir, false); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "a", "b")
	if err := m.EnsureHostPath(ctx, missing, false); !errdefs.IsNotFound(err) {
		t.Fatalf("missing without create: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatal("created without create")
	}
	if err := m.EnsureHostPath(ctx, missing, true); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(missing); err != nil || !st.IsDir() {
		t.Fatalf("not created: %v", err)
	}
	if err := m.EnsureHostPath(ctx, "rel", true); !errdefs.IsInvalid(err) {
		t.Fatalf("relative: %v", err)
	}
}
