package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
)

// inPrivateMountNS runs fn on a locked OS thread that has its own mount
// namespace (propagation private), so mounts made by fn never reach the
// host and vanish with the thread, which is never unlocked.
func inPrivateMountNS(t *testing.T, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("unshare mount namespace: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- fmt.Errorf("make / private: %w", err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func mountOverlay(target string, lowers []string, upper, work string) error {
	opts := "lowerdir=" + strings.Join(lowers, ":")
	var flags uintptr = unix.MS_RDONLY
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + work
		flags = 0
	}
	if err := unix.Mount("overlay", target, "overlay", flags, opts); err != nil {
		return fmt.Errorf("mount overlay %s: %w", opts, err)
	}
	return nil
}

// node describes one path of a merged view for comparison.
type node struct {
	Kind, Perm       string
	UID, GID         uint32
	Size             int64
	Nlink            uint64
	Body, Link, Dev  string
	Xattrs, MtimeStr string
}

// describe walks a mounted tree into path → description.
func describe(root string) (map[string]node, error) {
	out := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{Perm: fmt.Sprintf("%o", st.Mode&0o7777), UID: st.Uid, GID: st.Gid,
			MtimeStr: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC().Format(time.RFC3339Nano)}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			n.Kind = "dir"
		case unix.S_IFREG:
			n.Kind, n.Size, n.Nlink = "file", st.Size, st.Nlink
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			n.Body = hex.EncodeToString(sum[:8])
		case unix.S_IFLNK:
			n.Kind, n.Perm = "symlink", ""
			n.Link, _ = os.Readlink(p)
		case unix.S_IFCHR, unix.S_IFBLK:
			n.Kind, n.Dev = "dev", fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			n.Kind = "fifo"
		}
		if v, err := lgetxattr(p, "user.test"); err == nil {
			n.Xattrs = "user.test=" + v
		}
		out[rel] = n
		return nil
	})
	return out, err
}

func lgetxattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func applyLayer(t *testing.T, dir string, entries ...entry) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(context.Background(), dir, bytes.NewReader(layer(t, entries...))); err != nil {
		t.Fatal(err)
	}
}

// TestDiffRoundTrip makes changes through a real overlay mount, turns the
// upper dir into a layer with Diff, applies that layer with Apply on the
// same lowers, and checks the two merged views are the same; Changes
// lists what docker diff would.
func TestDiffRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	base := t.TempDir()
	l1, l2 := filepath.Join(base, "l1"), filepath.Join(base, "l2")
	applyLayer(t, l1,
		dir("bin/"), file("bin/busybox", "bb"), file("bin/vi", "vi"), file("bin/sh", "sh"),
		dir("etc/"), file("etc/passwd", "root:x:0:0\n"), file("etc/group", "root:x:0:\n"),
		dir("olddir/"), file("olddir/x", "x"), dir("olddir/sub/"), file("olddir/sub/y", "y"),
		dir("opq/"), file("opq/a", "a"), file("opq/b", "b"),
		file("chm", "chm"), file("chown", "chown"), file("f2", "f2"), dir("d2/"), file("d2/z", "z"),
		dir("dev/"), file("hlow1", "shared"), hardlink("hlow2", "hlow1"), symlink("lnk", "/etc"))
	applyLayer(t, l2,
		dir("etc/"), file("etc/passwd", "root:x:0:0\nbin:x:1:1\n"), dir("bin/"), file("bin/.wh.sh", ""),
		dir("opq/"), file("opq/c", "c"))
	upper, work, merged := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	applied, view := filepath.Join(base, "applied"), filepath.Join(base, "view")
	for _, d := range []string{upper, work, merged, applied, view} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stamp := time.Date(2020, 2, 2, 2, 2, 2, 123456789, time.UTC)
	var want, got map[string]node
	var layerTar bytes.Buffer
	inPrivateMountNS(t, func() error {
		if err := mountOverlay(merged, []string{l2, l1}, upper, work); err != nil {
			return err
		}
		m := func(p string) string { return filepath.Join(merged, p) }
		steps := []error{
			os.WriteFile(m("newfile"), []byte("hi\n"), 0o644),
			appendFile(m("etc/passwd"), "x:x:1:1::/:/bin/sh\n"),
			os.Remove(m("bin/vi")),
			os.RemoveAll(m("olddir")),
			os.RemoveAll(m("opq")), os.Mkdir(m("opq"), 0o750), os.WriteFile(m("opq/new"), []byte("new"), 0o600),
			os.Chmod(m("chm"), 0o700),
			os.Lchown(m("chown"), 1000, 1000),
			os.Symlink("/etc/passwd", m("link")),
			os.WriteFile(m("hl1"), []byte("linked"), 0o644), os.Link(m("hl1"), m("hl2")),
			unix.Mkfifo(m("fifo"), 0o600),
			unix.Mknod(m("dev/null2"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))),
			unix.Setxattr(m("newfile"), "user.test", []byte("v1"), 0),
			os.Remove(m("f2")), os.Mkdir(m("f2"), 0o755), os.WriteFile(m("f2/x"), []byte("x"), 0o644),
			os.RemoveAll(m("d2")), os.WriteFile(m("d2"), []byte("now a file"), 0o644),
			os.MkdirAll(m("new/a/b"), 0o755), os.WriteFile(m("new/a/b/c"), []byte("c"), 0o644),
			os.Chtimes(m("etc/group"), stamp, stamp),
			os.WriteFile(m("etc/hosts"), nil, 0o644), // a runtime's mount target
		}
		if err := errors.Join(steps...); err != nil {
			return fmt.Errorf("changes through the overlay: %w", err)
		}
		var err error
		if want, err = describe(merged); err != nil {
			return err
		}
		if err := unix.Unmount(merged, 0); err != nil {
			return err
		}
		// Diff must not need the mount: it reads the upper dir alone.
		if err := Diff(ctx, &layerTar, upper, DiffOptions{}); err != nil {
			return err
		}
		if _, err := Apply(ctx, applied, bytes.NewReader(layerTar.Bytes())); err != nil {
			return fmt.Errorf("apply the diff: %w", err)
		}
		if err := mountOverlay(view, []string{applied, l2, l1}, "", ""); err != nil {
			return err
		}
		got, err = describe(view)
		unix.Unmount(view, 0)
		return err
	})
	t.Logf("merged view: %d paths", len(want))
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing after the round trip (want %+v)", p, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s:\n   merged %+v\n  applied %+v", p, w, g))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, p+": appeared after the round trip")
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("merged views differ:\n%s", strings.Join(diffs, "\n"))
	}
	for _, p := range []string{"bin/vi", "olddir", "opq/a", "opq/c", "bin/sh"} {
		if _, ok := want[p]; ok {
			t.Errorf("%s should be gone from the merged view", p)
		}
	}

	// The layer itself: whiteouts, the opaque marker, the hardlink.
	entries := tarEntries(t, layerTar.Bytes())
	for name, typ := range map[string]byte{"bin/.wh.vi": tar.TypeReg, ".wh.olddir": tar.TypeReg, "opq/": tar.TypeDir,
		"opq/.wh..wh..opq": tar.TypeReg, "hl2": tar.TypeLink, "dev/null2": tar.TypeChar, "fifo": tar.TypeFifo,
		"link": tar.TypeSymlink, "newfile": tar.TypeReg} {
		h, ok := entries[name]
		if !ok || h.Typeflag != typ {
			t.Errorf("layer entry %s: %+v, want type %q", name, h, typ)
		}
	}
	if h := entries["hl2"]; h != nil && h.Linkname != "hl1" {
		t.Errorf("hl2 links to %q, want hl1", h.Linkname)
	}
	if h := entries["newfile"]; h != nil && h.PAXRecords["SCHILY.xattr.user.test"] != "v1" {
		t.Errorf("newfile xattrs: %v", h.PAXRecords)
	}
	for name, h := range entries {
		for k := range h.PAXRecords {
			if strings.Contains(k, "trusted.overlay") {
				t.Errorf("%s carries overlay's own xattr %s", name, k)
			}
		}
	}
	var again bytes.Buffer
	if err := Diff(ctx, &again, upper, DiffOptions{}); err != nil || !bytes.Equal(again.Bytes(), layerTar.Bytes()) {
		t.Errorf("a second diff of the same upper dir differs (%v): layers must be reproducible", err)
	}
	var skipped bytes.Buffer
	if err := Diff(ctx, &skipped, upper, DiffOptions{MountTargets: []string{"/etc/hosts"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := tarEntries(t, skipped.Bytes())["etc/hosts"]; ok {
		t.Error("an empty mount target is in the layer")
	}

	changes, err := Changes(ctx, upper, []string{l2, l1}, DiffOptions{MountTargets: []string{"/etc/hosts"}})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range changes {
		lines = append(lines, c.String())
	}
	wantChanges := []string{"C /bin", "D /bin/vi", "C /chm", "C /chown", "C /d2", "C /dev", "A /dev/null2", "C /etc",
		"C /etc/group", "C /etc/passwd", "C /f2", "A /f2/x", "A /fifo", "A /hl1", "A /hl2", "A /link",
		"A /new", "A /new/a", "A /new/a/b", "A /new/a/b/c", "A /newfile", "D /olddir",
		"C /opq", "D /opq/a", "D /opq/b", "D /opq/c", "A /opq/new"}
	if strings.Join(lines, "\n") != strings.Join(wantChanges, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantChanges, "\n"))
	}
}

func appendFile(p, s string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	return errors.Join(err, f.Close())
}

func tarEntries(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

// TestDiffNeverFollowsSymlinks: symlinks in the upper dir, even to
// directories and to the host's /etc, are layer entries, never paths.
func TestDiffNeverFollowsSymlinks(t *testing.T) {
	upper := t.TempDir()
	os.Symlink("/etc", filepath.Join(upper, "etc"))
	os.Symlink("../../../../../../etc/passwd", filepath.Join(upper, "pw"))
	os.Mkdir(filepath.Join(upper, "d"), 0o755)
	os.Symlink("/", filepath.Join(upper, "d", "root"))
	var buf bytes.Buffer
	if err := Diff(context.Background(), &buf, upper, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	got := tarEntries(t, buf.Bytes())
	if len(got) != 4 {
		t.Errorf("entries: %v", got)
	}
	for _, n := range []string{"etc", "pw", "d/root"} {
		if h := got[n]; h == nil || h.Typeflag != tar.TypeSymlink {
			t.Errorf("%s: %+v, want a symlink entry", n, h)
		}
	}
	if _, err := Changes(context.Background(), upper, []string{t.TempDir()}, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestDiffRefusesRedirects: a renamed directory (redirect_dir) cannot be
// expressed from the upper dir alone, and Diff says so.
func TestDiffRefusesRedirects(t *testing.T) {
	testutil.RequireRoot(t)
	upper := t.TempDir()
	d := filepath.Join(upper, "moved")
	os.Mkdir(d, 0o755)
	if err := unix.Setxattr(d, "trusted.overlay.redirect", []byte("/orig"), 0); err != nil {
		t.Skipf("trusted xattrs on %s: %v", upper, err)
	}
	err := Diff(context.Background(), io.Discard, upper, DiffOptions{})
	if err == nil || !strings.Contains(err.Error(), "redirect_dir") {
		t.Fatalf("diff of a redirect: %v", err)
	}
}
