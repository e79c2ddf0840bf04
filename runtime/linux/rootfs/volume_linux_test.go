package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/testutil"
)

// newVolume makes an empty volume dir (as volumes/local does) and returns
// its _data path.
func newVolume(t *testing.T) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "vol", "_data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	return data
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func initialized(data string) bool {
	_, err := os.Lstat(filepath.Join(filepath.Dir(data), volumeInitialized))
	return err == nil
}

// imageTree puts /srv/app into the container's layer: files with owners
// and modes, a setuid file, a private subdir, symlinks (one pointing at
// the host's /root), a hardlink and an xattr.
func imageTree(t *testing.T, upper string) {
	t.Helper()
	app := filepath.Join(upper, "srv", "app")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(app, "sub", "deep"), 0o755))
	must(os.WriteFile(filepath.Join(app, "conf"), []byte("image conf\n"), 0o640))
	must(os.WriteFile(filepath.Join(app, "tool"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(app, "sub", "deep", "leaf"), []byte("leaf\n"), 0o600))
	must(unix.Chmod(filepath.Join(app, "tool"), 0o4755))
	must(os.Chmod(filepath.Join(app, "sub"), 0o700))
	must(os.Chmod(app, 0o750))
	must(os.Symlink("conf", filepath.Join(app, "rel")))
	must(os.Symlink("/root", filepath.Join(app, "abs")))
	must(os.Link(filepath.Join(app, "conf"), filepath.Join(app, "hard")))
	must(os.Lchown(filepath.Join(app, "conf"), 1000, 1001))
	must(os.Lchown(filepath.Join(app, "sub"), 1000, 1000))
	must(os.Lchown(filepath.Join(app, "rel"), 1002, 1002))
	must(os.Lchown(app, 1000, 1000))
	must(unix.Chmod(filepath.Join(app, "tool"), 0o4755)) // after the chown
	unix.Setxattr(filepath.Join(app, "conf"), "user.berth", []byte("x"), 0)
}

// rootfs.TestVolumeCopyUp: an empty volume gets the image's content at
// the target, with owners, modes (setuid included), symlinks as symlinks,
// hardlinks as copies and xattrs; the volume's root takes the image dir's
// owner and mode; the marker is written and no staging dir stays.
func TestVolumeCopyUp(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	imageTree(t, overlay.Upper)
	data := newVolume(t)
	before := hostMountinfo(t)
	out, code := runInit(t, Config{Root: target, Overlay: overlay, Mounts: []Mount{{Type: MountVolume, Source: data, Target: "/srv/app"}}},
		`cat /srv/app/conf; echo new > /srv/app/written; awk '$5=="/srv/app"{print "mounted"}' /proc/self/mountinfo`)
	if code != 0 || !strings.Contains(out, "image conf\n") || !strings.Contains(out, "mounted\n") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if after := hostMountinfo(t); after != before {
		t.Errorf("host mount table changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got, want := names(t, data), []string{"abs", "conf", "hard", "rel", "sub", "tool", "written"}; !slices.Equal(got, want) {
		t.Fatalf("volume holds %v, want %v", got, want)
	}
	check := func(name string, mode os.FileMode, uid, gid uint32) {
		t.Helper()
		st, err := os.Lstat(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode() != mode || sys.Uid != uid || sys.Gid != gid {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", name, st.Mode(), sys.Uid, sys.Gid, mode, uid, gid)
		}
	}
	check(".", os.ModeDir|0o750, 1000, 1000)
	check("conf", 0o640, 1000, 1001)
	check("tool", os.ModeSetuid|0o755, 0, 0)
	check("sub", os.ModeDir|0o700, 1000, 1000)
	check("sub/deep/leaf", 0o600, 0, 0)
	check("rel", os.ModeSymlink|0o777, 1002, 1002)
	for link, want := range map[string]string{"rel": "conf", "abs": "/root"} {
		if got, err := os.Readlink(filepath.Join(data, link)); err != nil || got != want {
			t.Errorf("%s → %q (%v), want %q", link, got, err, want)
		}
	}
	a, _ := os.Stat(filepath.Join(data, "conf"))
	b, _ := os.Stat(filepath.Join(data, "hard"))
	if os.SameFile(a, b) || a.Sys().(*syscall.Stat_t).Nlink != 1 {
		t.Error("the hardlink was kept as a hardlink, want two copies")
	}
	if b, err := os.ReadFile(filepath.Join(data, "hard")); err != nil || string(b) != "image conf\n" {
		t.Errorf("hard: %q %v", b, err)
	}
	var x [8]byte
	if n, err := unix.Getxattr(filepath.Join(overlay.Upper, "srv/app/conf"), "user.berth", x[:]); err == nil && n == 1 {
		if n, err := unix.Getxattr(filepath.Join(data, "conf"), "user.berth", x[:]); err != nil || string(x[:n]) != "x" {
			t.Errorf("xattr user.berth not copied: %v", err)
		}
	}
	if !initialized(data) {
		t.Error("no .initialized marker")
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(data), volumeStaging)); err == nil {
		t.Error("the staging dir stayed")
	}
	// The image's layer is untouched by the copy and by the write.
	if _, err := os.Lstat(filepath.Join(overlay.Upper, "srv/app/written")); err == nil {
		t.Error("the write went to the container's layer, not the volume")
	}
}

// rootfs.TestVolumeNoCopy: with nocopy the volume stays empty (and is
// marked, so it stays so).
func TestVolumeNoCopy(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	imageTree(t, overlay.Upper)
	data := newVolume(t)
	out, code := runInit(t, Config{Root: target, Overlay: overlay,
		Mounts: []Mount{{Type: MountVolume, Source: data, Target: "/srv/app", Options: []string{"nocopy"}}}}, `ls -A /srv/app | wc -l`)
	if code != 0 || strings.TrimSpace(out) != "0" {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if n := names(t, data); len(n) != 0 {
		t.Errorf("volume holds %v", n)
	}
	if !initialized(data) {
		t.Error("no .initialized marker after the first mount with nocopy")
	}
}

// rootfs.TestVolumeNotOverwritten: a volume with content keeps exactly
// it.
func TestVolumeNotOverwritten(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	imageTree(t, overlay.Upper)
	data := newVolume(t)
	os.WriteFile(filepath.Join(data, "conf"), []byte("mine\n"), 0o644)
	out, code := runInit(t, Config{Root: target, Overlay: overlay, Mounts: []Mount{{Type: MountVolume, Source: data, Target: "/srv/app"}}}, `cat /srv/app/conf`)
	if code != 0 || out != "mine\n" {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if got := names(t, data); !slices.Equal(got, []string{"conf"}) {
		t.Errorf("volume holds %v", got)
	}
}

// rootfs.TestVolumeMarkerPreventsSecondCopy: once filled, a volume the
// user emptied stays empty at the next start.
func TestVolumeMarkerPreventsSecondCopy(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	imageTree(t, overlay.Upper)
	data := newVolume(t)
	cfg := Config{Root: target, Overlay: overlay, Mounts: []Mount{{Type: MountVolume, Source: data, Target: "/srv/app"}}}
	if out, code := runInit(t, cfg, `rm -rf /srv/app/* && echo emptied`); code != 0 || out != "emptied\n" {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if n := names(t, data); len(n) != 0 {
		t.Fatalf("volume holds %v after emptying", n)
	}
	if out, code := runInit(t, cfg, `ls -A /srv/app | wc -l`); code != 0 || strings.TrimSpace(out) != "0" {
		t.Fatalf("second start: exit %d:\n%s", code, out)
	}
	if n := names(t, data); len(n) != 0 {
		t.Errorf("copied again: %v", n)
	}
}

// rootfs.TestVolumeEmptyTargetLeavesItUninitialized: nothing at the
// target means nothing copied and no marker, so a later container with
// content there fills the volume (as Docker does).
func TestVolumeEmptyTargetLeavesItUninitialized(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	data := newVolume(t)
	if out, code := runInit(t, Config{Root: target, Overlay: overlay, Mounts: []Mount{{Type: MountVolume, Source: data, Target: "/nothing/here"}}}, `true`); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if initialized(data) || len(names(t, data)) != 0 {
		t.Fatalf("marker %v, content %v", initialized(data), names(t, data))
	}
	overlay2, target2 := busyboxRoot(t)
	imageTree(t, overlay2.Upper)
	if out, code := runInit(t, Config{Root: target2, Overlay: overlay2, Mounts: []Mount{{Type: MountVolume, Source: data, Target: "/srv/app"}}}, `cat /srv/app/conf`); code != 0 || out != "image conf\n" {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

// rootfs.TestCopyUpSymlinks: the image's /data is a symlink to /etc and
// holds links out (x → /root, y → ../../..): copy-up reads the
// container's /etc through the root, never the host's, and the volume
// holds the symlinks themselves; nothing on the host is read or written.
func TestCopyUpSymlinks(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	etc := filepath.Join(overlay.Upper, "etc")
	os.MkdirAll(etc, 0o755)
	os.WriteFile(filepath.Join(etc, "image-marker"), []byte("image\n"), 0o644)
	os.Symlink("/root", filepath.Join(etc, "x"))
	os.Symlink("../../..", filepath.Join(etc, "y"))
	if err := os.Symlink("/etc", filepath.Join(overlay.Upper, "data")); err != nil {
		t.Fatal(err)
	}
	// A host /etc entry the image's /etc lacks: it must not appear.
	var hostOnly string
	for _, e := range names(t, "/etc") {
		if _, err := os.Lstat(filepath.Join(overlay.Lower[0], "etc", e)); errors.Is(err, os.ErrNotExist) && e != "image-marker" && e != "x" && e != "y" {
			hostOnly = e
			break
		}
	}
	if hostOnly == "" {
		t.Fatal("test premise: no host /etc entry missing from the image's /etc")
	}
	hostEtc, _ := os.Stat("/etc")
	data := newVolume(t)
	out, code := runInit(t, Config{Root: target, Overlay: overlay, Mounts: []Mount{{Type: MountVolume, Source: data, Target: "/data"}}},
		`cat /etc/image-marker`)
	if code != 0 || out != "image\n" {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	got := names(t, data)
	if !slices.Contains(got, "image-marker") || !slices.Contains(got, "passwd") {
		t.Errorf("volume holds %v, want the image's /etc", got)
	}
	if slices.Contains(got, hostOnly) {
		t.Errorf("the host's /etc/%s was copied", hostOnly)
	}
	for link, want := range map[string]string{"x": "/root", "y": "../../.."} {
		if l, err := os.Readlink(filepath.Join(data, link)); err != nil || l != want {
			t.Errorf("%s: %q %v, want the symlink → %s", link, l, err, want)
		}
	}
	if now, _ := os.Stat("/etc"); !now.ModTime().Equal(hostEtc.ModTime()) {
		t.Error("the host's /etc changed")
	}
}

// Mount points inside the target (an earlier bind) are the container's,
// not the image's: copy-up leaves them out.
func TestVolumeCopySkipsMountPoints(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	imageTree(t, overlay.Upper)
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "host-secret"), []byte("host\n"), 0o600)
	data := newVolume(t)
	out, code := runInit(t, Config{Root: target, Overlay: overlay, Mounts: []Mount{
		{Type: MountBind, Source: host, Target: "/srv/app/sub"},
		{Type: MountVolume, Source: data, Target: "/srv/app"},
	}}, `true`)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if _, err := os.Lstat(filepath.Join(data, "sub", "host-secret")); err == nil {
		t.Error("the bind's content was copied into the volume")
	}
	if _, err := os.Lstat(filepath.Join(data, "conf")); err != nil {
		t.Errorf("the image's files were not copied: %v", err)
	}
}

// A target on a mount made earlier (a host bind over its parent) holds
// the host's files, not the image's: nothing is copied.
func TestVolumeCopyOnlyFromTheImage(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	imageTree(t, overlay.Upper)
	host := t.TempDir()
	os.MkdirAll(filepath.Join(host, "app"), 0o755)
	os.WriteFile(filepath.Join(host, "app", "host-secret"), []byte("host\n"), 0o600)
	data := newVolume(t)
	out, code := runInit(t, Config{Root: target, Overlay: overlay, Mounts: []Mount{
		{Type: MountBind, Source: host, Target: "/srv"},
		{Type: MountVolume, Source: data, Target: "/srv/app"},
	}}, `ls -A /srv/app | wc -l`)
	if code != 0 || strings.TrimSpace(out) != "0" {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if n := names(t, data); len(n) != 0 || initialized(data) {
		t.Errorf("volume holds %v (marker %v)", n, initialized(data))
	}
}

// Two containers starting on one new volume at once: one copies, under
// the volume's lock; both start and see the content once.
func TestVolumeConcurrentCopyUp(t *testing.T) {
	testutil.RequireRoot(t)
	data := newVolume(t)
	var wg sync.WaitGroup
	type res struct {
		out  string
		code int
	}
	results := make([]res, 2)
	cfgs := make([]Config, 2)
	for i := range cfgs {
		overlay, target := busyboxRoot(t)
		imageTree(t, overlay.Upper)
		cfgs[i] = Config{Root: target, Overlay: overlay, Mounts: []Mount{{Type: MountVolume, Source: data, Target: "/srv/app"}}}
	}
	for i := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, code := runInit(t, cfgs[i], `cat /srv/app/sub/deep/leaf`)
			results[i] = res{out, code}
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || r.out != "leaf\n" {
			t.Errorf("container %d: exit %d:\n%s", i, r.code, r.out)
		}
	}
	if got := names(t, data); !slices.Equal(got, []string{"abs", "conf", "hard", "rel", "sub", "tool"}) {
		t.Errorf("volume holds %v", got)
	}
}

func TestVolumeMountValidate(t *testing.T) {
	for _, m := range []Mount{
		{Type: MountVolume, Source: "/var/lib/berth/volumes/data/_data", Target: "/data"},
		{Type: MountVolume, Source: "/v/x/_data", Target: "/data", ReadOnly: true, Options: []string{"nocopy", "rslave"}},
	} {
		if err := m.Validate(); err != nil {
			t.Errorf("%+v: %v", m, err)
		}
	}
	for _, tc := range []struct {
		m    Mount
		want string
	}{
		{Mount{Type: MountVolume, Source: "/srv", Target: "/data"}, "volume's _data"},
		{Mount{Type: MountVolume, Source: "x/_data", Target: "/data"}, "volume's _data"},
		{Mount{Type: MountVolume, Source: "/v/x/../_data/", Target: "/data"}, "volume's _data"},
		{Mount{Type: MountVolume, Source: "/v/x/_data", Target: "/proc/x"}, "onto /proc"},
		{Mount{Type: MountBind, Source: "/srv", Target: "/data", Options: []string{"nocopy"}}, "unknown bind option"},
	} {
		if err := tc.m.Validate(); err == nil || !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalid with %q", tc.m, err, tc.want)
		}
	}
}

func TestSortMountsParentsFirst(t *testing.T) {
	ms := []Mount{{Target: "/etc/hosts", Source: "a"}, {Target: "/etc/resolv.conf"}, {Target: "/etc"}, {Target: "/etc/hosts", Source: "b"}, {Target: "/data/x/"}, {Target: "/"}}
	SortMounts(ms)
	var got []string
	for _, m := range ms {
		got = append(got, m.Target+m.Source)
	}
	want := []string{"/etc", "/", "/etc/hostsa", "/etc/resolv.conf", "/etc/hostsb", "/data/x/"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
