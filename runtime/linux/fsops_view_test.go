package linux

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

// fstEntry is one entry of a test tar.
type fstEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func fstFile(name, body string) fstEntry {
	return fstEntry{name: name, body: body, typ: tar.TypeReg, mode: 0o644}
}
func fstDir(name string) fstEntry { return fstEntry{name: name, typ: tar.TypeDir, mode: 0o755} }
func fstLink(name, target string) fstEntry {
	return fstEntry{name: name, link: target, typ: tar.TypeSymlink, mode: 0o777}
}
func fstHard(name, target string) fstEntry {
	return fstEntry{name: name, link: target, typ: tar.TypeLink, mode: 0o644}
}

func fstTar(t testing.TB, entries ...fstEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, ModTime: time.Unix(1700000000, 0)}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

// fstView opens dirs (topmost first) as a view.
func fstView(t testing.TB, overlay bool, dirs ...string) *fsView {
	t.Helper()
	var fds []int
	for _, d := range dirs {
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	v, err := newFsView(fds, overlay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.close)
	return v
}

func fstWrite(t testing.TB, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fstRead reads p of a view through a tar of it (CopyOut's path).
func fstRead(t testing.TB, v *fsView, p string, follow bool) (string, *tar.Header) {
	t.Helper()
	sc := &fsScope{}
	defer sc.close()
	res, err := v.resolve(sc, p, follow, false)
	if err != nil || res.ent == nil {
		t.Fatalf("resolve %s: %+v %v", p, res, err)
	}
	var buf bytes.Buffer
	tt := newFsTar(context.Background(), v, &buf)
	if err := tt.write(res.ent, "x"); err != nil {
		t.Fatal(err)
	}
	tt.tw.Close()
	tr := tar.NewReader(&buf)
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(tr)
	return string(b), h
}

// fstSentinel is a file outside every root a test uses; it must keep its
// content.
func fstSentinel(t *testing.T) (string, func()) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "sentinel")
	fstWrite(t, p, "host")
	st0, _ := os.Stat(p)
	return p, func() {
		t.Helper()
		b, err := os.ReadFile(p)
		st, _ := os.Stat(p)
		if err != nil || string(b) != "host" || !st.ModTime().Equal(st0.ModTime()) {
			t.Errorf("the host file %s changed: %q %v", p, b, err)
		}
	}
}

// TestFsResolveStaysInRoot: symlinks, absolute or climbing, resolve
// inside the view's root, as RESOLVE_IN_ROOT does.
func TestFsResolveStaysInRoot(t *testing.T) {
	root := t.TempDir()
	fstWrite(t, filepath.Join(root, "etc", "passwd"), "container passwd")
	os.Mkdir(filepath.Join(root, "tmp"), 0o755)
	os.Symlink("/tmp", filepath.Join(root, "test"))
	os.Symlink("../../../../..", filepath.Join(root, "up"))
	os.Symlink("/etc/passwd", filepath.Join(root, "abs"))
	os.Symlink("loop", filepath.Join(root, "loop"))
	os.Mkdir(filepath.Join(root, "d"), 0o755)
	os.Symlink("../etc", filepath.Join(root, "d", "rel"))
	v := fstView(t, false, root)
	sc := &fsScope{}
	defer sc.close()
	for p, want := range map[string]string{"/test/x": "/tmp/x", "/up/etc/passwd": "/etc/passwd", "up/up/abs": "/abs",
		"/d/rel/passwd": "/etc/passwd", "/../../etc/../etc/passwd": "/etc/passwd", "/": "/", "d/..": "/"} {
		res, err := v.resolve(sc, p, false, false)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if res.path() != want {
			t.Errorf("%s resolved to %s, want %s", p, res.path(), want)
		}
	}
	if res, err := v.resolve(sc, "/test/x", false, false); err != nil || res.ent != nil {
		t.Errorf("/test/x: %+v %v (the container has no /tmp/x; the host's must not count)", res, err)
	}
	if _, err := v.resolve(sc, "/loop", true, false); !errors.Is(err, unix.ELOOP) {
		t.Errorf("loop: %v", err)
	}
	if body, h := fstRead(t, v, "/abs", true); body != "container passwd" || h.Typeflag != tar.TypeReg {
		t.Errorf("-L /abs: %q %c", body, h.Typeflag)
	}
	if _, h := fstRead(t, v, "/abs", false); h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc/passwd" {
		t.Errorf("/abs: %+v, want the link itself", h)
	}
}

// TestFsExtractStaysInRoot: hostile names, symlinks the tar makes and
// symlinks already there never lead a write out of the root.
func TestFsExtractStaysInRoot(t *testing.T) {
	ctx := context.Background()
	sentinel, check := fstSentinel(t)
	defer check()
	root := t.TempDir()
	fstWrite(t, filepath.Join(root, "etc", "passwd"), "root:x:0:0")
	os.Mkdir(filepath.Join(root, "tmp"), 0o755)
	os.Symlink("/tmp", filepath.Join(root, "test"))
	os.Symlink(sentinel, filepath.Join(root, "sent"))
	rel, _ := filepath.Rel(root, sentinel)
	v := fstView(t, false, root)
	entries := []fstEntry{
		fstFile("../../../../../../tmp/dotdot", "1"),
		fstFile("/etc/abs", "2"),
		fstLink("evil", "/"), fstFile("evil/etc/through", "3"),
		fstLink("out", "../../../../../../../tmp"), fstFile("out/outfile", "4"),
		fstFile("test/viatest", "5"),
		fstFile("sent", "6"), // replaces the link, never writes through it
		fstFile(rel, "7"),    // ../../…/sentinel, cleaned into the root
		fstHard("hl", "/etc/passwd"),
		fstDir("newdir/sub/"), fstFile("newdir/sub/f", "8"),
	}
	if err := fsExtract(ctx, v, "/", bytes.NewReader(fstTar(t, entries...)), fsExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"tmp/dotdot": "1", "etc/abs": "2", "etc/through": "3", "tmp/outfile": "4",
		"tmp/viatest": "5", "sent": "6", strings.TrimPrefix(filepath.Clean("/"+rel), "/"): "7", "newdir/sub/f": "8"} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	for _, p := range []string{"/tmp/dotdot", "/tmp/outfile", "/tmp/viatest", "/etc/abs", "/etc/through"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("the host has %s", p)
		}
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(root, "hl"), &a)
	unix.Lstat(filepath.Join(root, "etc", "passwd"), &b)
	if a.Ino != b.Ino {
		t.Error("hl is not a link to the root's etc/passwd")
	}
	// Into a symlinked destination: /test is the root's /tmp.
	if err := fsExtract(ctx, v, "/test", bytes.NewReader(fstTar(t, fstFile("intest", "9"))), fsExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "tmp", "intest")); err != nil || string(b) != "9" {
		t.Errorf("tmp/intest: %q %v", b, err)
	}
	for name, tarb := range map[string][]byte{
		"hardlink out":       fstTar(t, fstHard("h2", "/etc/shadow")),
		"dir over file":      fstTar(t, fstDir("etc/passwd/")),
		"file over dir":      fstTar(t, fstFile("etc", "x")),
		"hardlink to a dir":  fstTar(t, fstHard("h3", "etc")),
		"dst is not a dir":   nil,
		"dst does not exist": nil,
	} {
		dst := "/"
		switch name {
		case "dst is not a dir":
			dst, tarb = "/etc/passwd", fstTar(t, fstFile("x", "x"))
		case "dst does not exist":
			dst, tarb = "/nope", fstTar(t, fstFile("x", "x"))
		}
		if err := fsExtract(ctx, v, dst, bytes.NewReader(tarb), fsExtractOptions{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := os.Stat("/etc/shadow"); err == nil {
		var st unix.Stat_t
		unix.Stat("/etc/shadow", &st)
		if st.Nlink != 1 {
			t.Errorf("the host's /etc/shadow has %d links", st.Nlink)
		}
	}
}

// fstInMountNS runs fn on a locked thread with a private mount namespace;
// its mounts die with the thread.
func fstInMountNS(t *testing.T, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- err
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// fstLayers makes a stopped container's layers: an image layer and an
// upper dir holding what `rm /bin/vi; rm -r /gone; ln -s /tmp /test` left.
func fstLayers(t *testing.T) (upper, lower string) {
	t.Helper()
	base := t.TempDir()
	upper, lower = filepath.Join(base, "upper"), filepath.Join(base, "lower")
	fstWrite(t, filepath.Join(lower, "etc", "passwd"), "image passwd")
	fstWrite(t, filepath.Join(lower, "bin", "vi"), "vi")
	fstWrite(t, filepath.Join(lower, "bin", "sh"), "sh")
	fstWrite(t, filepath.Join(lower, "gone", "old"), "old")
	fstWrite(t, filepath.Join(lower, "opq", "hidden"), "hidden")
	os.Mkdir(filepath.Join(lower, "tmp"), 0o755)
	unix.Chmod(filepath.Join(lower, "tmp"), 0o1777)
	os.Symlink("/etc/passwd", filepath.Join(lower, "imglink"))
	os.MkdirAll(filepath.Join(upper, "bin"), 0o755)
	os.MkdirAll(filepath.Join(upper, "opq"), 0o755)
	for _, w := range []string{"bin/vi", "gone"} {
		if err := unix.Mknod(filepath.Join(upper, w), unix.S_IFCHR, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Setxattr(filepath.Join(upper, "opq"), fsOpaqueXattr, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	fstWrite(t, filepath.Join(upper, "opq", "mine"), "mine")
	os.Symlink("/tmp", filepath.Join(upper, "test"))
	os.Symlink("/etc/passwd", filepath.Join(upper, "link"))
	return upper, lower
}

// TestFsLayersView: a stopped container's merged view, read without a
// mount: whiteouts and opaque dirs hide, symlinks resolve across layers
// inside the root.
func TestFsLayersView(t *testing.T) {
	testutil.RequireRoot(t)
	upper, lower := fstLayers(t)
	v := fstView(t, true, upper, lower)
	sc := &fsScope{}
	defer sc.close()
	for p, exists := range map[string]bool{"/bin/vi": false, "/bin/sh": true, "/gone": false, "/gone/old": false,
		"/opq/hidden": false, "/opq/mine": true, "/etc/passwd": true, "/test": true} {
		res, err := v.resolve(sc, p, false, false)
		if (err == nil && res.ent != nil) != exists {
			t.Errorf("%s: exists %v (%v), want %v", p, res.ent != nil, err, exists)
		}
	}
	if body, _ := fstRead(t, v, "/link", true); body != "image passwd" {
		t.Errorf("-L /link (upper link into the image layer): %q", body)
	}
	var buf bytes.Buffer
	tt := newFsTar(context.Background(), v, &buf)
	if err := tt.children(v.root, ""); err != nil {
		t.Fatal(err)
	}
	tt.tw.Close()
	var names []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	want := "bin/ bin/sh etc/ etc/passwd imglink link opq/ opq/mine test tmp/"
	if strings.Join(names, " ") != want {
		t.Errorf("merged view:\n%s\nwant:\n%s", strings.Join(names, " "), want)
	}
}

// TestFsExtractIntoLayers: a copy into a stopped container writes its
// upper dir as overlayfs would (directories copied up, whiteouts
// replaced, a directory made over a whiteout opaque); mounting the layers
// then shows what was copied, and nothing reaches the host.
func TestFsExtractIntoLayers(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	upper, lower := fstLayers(t)
	v := fstView(t, true, upper, lower)
	canary := fmt.Sprintf("berth-canary-%d", time.Now().UnixNano())
	steps := []struct {
		dst string
		tar []byte
	}{
		{"/test", fstTar(t, fstFile(canary, "through /test"))},
		{"/test/", fstTar(t, fstFile(canary+"-2", "through /test/"))},
		{"/bin", fstTar(t, fstFile("vi", "new vi"))},
		{"/", fstTar(t, fstDir("gone/"), fstFile("gone/new", "new"), fstFile("etc/passwd", "copied passwd"))},
		{"/", fstTar(t, fstLink("evil", "/"), fstFile("evil/etc/group", "in the container"))},
	}
	for _, s := range steps {
		if err := fsExtract(ctx, v, s.dst, bytes.NewReader(s.tar), fsExtractOptions{chown: true}); err != nil {
			t.Fatalf("extract into %s: %v", s.dst, err)
		}
	}
	if _, err := os.Stat(filepath.Join("/tmp", canary)); err == nil {
		t.Fatalf("/tmp/%s is on the host", canary)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "tmp"), &st); err != nil || st.Mode&0o7777 != 0o1777 {
		t.Errorf("upper tmp: mode %o (%v), want the image's 1777 (copied up)", st.Mode&0o7777, err)
	}
	if !fsIsOpaqueAt(filepath.Join(upper, "gone")) {
		t.Error("gone/ made over a whiteout is not opaque")
	}
	got := map[string]string{}
	fstInMountNS(t, func() error {
		m := t.TempDir()
		work := filepath.Join(filepath.Dir(upper), "work")
		os.Mkdir(work, 0o755)
		opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
		if err := unix.Mount("overlay", m, "overlay", unix.MS_RDONLY, opts); err != nil {
			return fmt.Errorf("mount %s: %w", opts, err)
		}
		defer unix.Unmount(m, unix.MNT_DETACH)
		for _, p := range []string{"tmp/" + canary, "tmp/" + canary + "-2", "bin/vi", "bin/sh", "gone/new", "gone/old", "etc/passwd", "etc/group"} {
			b, err := os.ReadFile(filepath.Join(m, p))
			if err != nil {
				b = []byte("<" + errors.Unwrap(err).Error() + ">")
			}
			got[p] = string(b)
		}
		return nil
	})
	want := map[string]string{"tmp/" + canary: "through /test", "tmp/" + canary + "-2": "through /test/", "bin/vi": "new vi",
		"bin/sh": "sh", "gone/new": "new", "gone/old": "<no such file or directory>", "etc/passwd": "copied passwd",
		"etc/group": "in the container"}
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("mounted %s: %q, want %q", k, got[k], want[k])
		}
	}
	if b, _ := os.ReadFile(filepath.Join(lower, "etc", "passwd")); string(b) != "image passwd" {
		t.Errorf("the image layer changed: %q", b)
	}
}

func fsIsOpaqueAt(p string) bool {
	buf := make([]byte, 8)
	n, err := unix.Getxattr(p, fsOpaqueXattr, buf)
	return err == nil && string(buf[:n]) == "y"
}

// TestFsExtractTarOnHost: the host side of cp (a container's tar, so
// untrusted) stays in the destination dir and, without -a, gives no
// setuid file and no foreign owner.
func TestFsExtractTarOnHost(t *testing.T) {
	sentinel, check := fstSentinel(t)
	defer check()
	dst := t.TempDir()
	rel, _ := filepath.Rel(dst, sentinel)
	e := fstFile("suid", "x")
	e.mode = 0o4755
	tb := fstTar(t, fstLink("s", sentinel), fstFile("s", "replaced link"), fstLink("up", "../../../.."), fstFile("up/"+rel, "no"), e)
	if err := ExtractTar(context.Background(), dst, bytes.NewReader(tb), ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dst, "suid"))
	if err != nil || fi.Mode()&os.ModeSetuid != 0 {
		t.Errorf("suid: %v %v", fi, err)
	}
}
