package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/testutil"
)

// mountPoints returns the mount points (field 5 of mountinfo) listed in
// the output lines prefixed "mp=".
func mountPoints(out string) map[string]string {
	mp := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "mp="); ok {
			f := strings.Fields(v)
			if len(f) >= 2 {
				mp[f[0]] = f[1]
			}
		}
	}
	return mp
}

// mountinfoScript prints "mp=<mount point> <fstype>" for every mount.
const mountinfoScript = `awk '{for (i = 7; $i != "-"; i++); print "mp=" $5 " " $(i+1)}' /proc/self/mountinfo
`

// rootfs.TestMountTargetSymlinks: image symlinks a → /, b → ../../.. and
// c → /tmp used as targets of binds and tmpfs: every mount lands inside
// the container root, and the host gains no mount and no file.
func TestMountTargetSymlinks(t *testing.T) {
	testutil.RequireRoot(t)
	for _, p := range []string{"/x", "/xt", "/y", "/yt", "/tmp/z", "/tmp/zt"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("test premise: host %s exists", p)
		}
	}
	overlay, target := busyboxRoot(t)
	for name, dest := range map[string]string{"a": "/", "b": "../../..", "c": "/tmp"} {
		if err := os.Symlink(dest, filepath.Join(overlay.Upper, name)); err != nil {
			t.Fatal(err)
		}
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "marker"), []byte("from-host\n"), 0o644)
	mounts := []Mount{
		{Type: "bind", Source: src, Target: "/a/x"},
		{Type: "tmpfs", Target: "/a/xt"},
		{Type: "bind", Source: src, Target: "/b/y"},
		{Type: "tmpfs", Target: "/b/yt"},
		{Type: "bind", Source: src, Target: "/c/z"},
		{Type: "tmpfs", Target: "/c/zt"},
	}
	before := hostMountinfo(t)
	out, code := runInit(t, Config{Root: target, Overlay: overlay, Mounts: mounts},
		mountinfoScript+`for d in /x /y /tmp/z; do echo "$d=$(cat $d/marker)"; done`)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	mp := mountPoints(out)
	for p, tmpfs := range map[string]bool{"/x": false, "/xt": true, "/y": false, "/yt": true, "/tmp/z": false, "/tmp/zt": true} {
		got, ok := mp[p]
		if !ok {
			t.Errorf("no mount at %s inside the container:\n%s", p, out)
		} else if tmpfs && got != "tmpfs" {
			t.Errorf("%s is %s, want tmpfs", p, got)
		}
	}
	for _, d := range []string{"/x", "/y", "/tmp/z"} {
		if !strings.Contains(out, d+"=from-host\n") {
			t.Errorf("%s does not show the bind source:\n%s", d, out)
		}
	}
	if after := hostMountinfo(t); after != before {
		t.Errorf("host mount table changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, p := range []string{"/x", "/xt", "/y", "/yt", "/tmp/z", "/tmp/zt"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("host %s appeared", p)
			os.Remove(p)
		}
	}
	// The directories were made in the container's layer.
	for _, p := range []string{"x", "xt", "y", "yt", "tmp/z", "tmp/zt"} {
		if st, err := os.Lstat(filepath.Join(overlay.Upper, p)); err != nil || !st.IsDir() {
			t.Errorf("upper/%s: %v", p, err)
		}
	}
}

// A target that reaches /proc or / through an image symlink is refused
// after resolution, with nothing mounted.
func TestMountTargetSymlinkIntoProcRefused(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct{ link, target, want string }{
		{"p", "/p/sys", "mounts onto /proc are refused"},
		{"p", "/p", "mounts onto /proc are refused"},
		{"r", "/r", "mounting over the container's / is refused"},
	} {
		overlay, target := busyboxRoot(t)
		dest := map[string]string{"p": "/proc", "r": "../.."}[tc.link]
		os.Symlink(dest, filepath.Join(overlay.Upper, tc.link))
		out, code := runInit(t, Config{Root: target, Overlay: overlay, Mounts: []Mount{{Type: "tmpfs", Target: tc.target}}}, "true")
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%s (%s → %s): exit %d: %s", tc.target, tc.link, dest, code, out)
		}
	}
}

// A file bind (like /etc/hostname) creates the file target, missing parent
// directories included; a read-only bind refuses writes with EROFS; tmpfs
// takes size and mode and is noexec by default.
func TestMountFileReadOnlyAndTmpfsOptions(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	dir := t.TempDir()
	hostname := filepath.Join(dir, "hostname")
	os.WriteFile(hostname, []byte("berth-test\n"), 0o644)
	roDir := filepath.Join(dir, "ro")
	os.Mkdir(roDir, 0o755)
	os.WriteFile(filepath.Join(roDir, "data"), []byte("ro-data\n"), 0o644)
	mounts := []Mount{
		{Type: "bind", Source: hostname, Target: "/etc/hostname"},
		{Type: "bind", Source: hostname, Target: "/new/dir/file", ReadOnly: true},
		{Type: "bind", Source: roDir, Target: "/ro", ReadOnly: true, Options: []string{"nosuid", "nodev"}},
		{Type: "tmpfs", Target: "/scratch", Options: []string{"size=1m", "mode=1777"}},
		{Type: "tmpfs", Target: "/run/exec", Options: []string{"exec", "rprivate"}},
	}
	script := `
echo "hostname=$(cat /etc/hostname)"
echo "file=$(cat /new/dir/file)"
echo "ro=$(cat /ro/data)"
touch /ro/new 2>&1 | grep -q 'Read-only file system' && echo ro-write=EROFS
echo x >> /new/dir/file 2>/dev/null || echo file-write=refused
echo "scratch-mode=$(stat -c %a /scratch)"
grep ' /scratch ' /proc/self/mountinfo | grep -q 'size=1024k' && echo scratch-size=1024k
grep ' /scratch ' /proc/self/mountinfo | grep -q 'noexec' && echo scratch=noexec
grep ' /run/exec ' /proc/self/mountinfo | grep -q 'noexec' || echo run-exec=exec
grep ' /ro ' /proc/self/mountinfo | grep -q ' ro,nosuid,nodev' && echo ro-flags=ok
touch /scratch/ok && echo scratch=rw
`
	out, code := runInit(t, Config{Root: target, Overlay: overlay, Mounts: mounts}, script)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"hostname=berth-test", "file=berth-test", "ro=ro-data", "ro-write=EROFS", "file-write=refused",
		"scratch-mode=1777", "scratch-size=1024k", "scratch=noexec", "run-exec=exec", "ro-flags=ok", "scratch=rw"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile(hostname); string(b) != "berth-test\n" {
		t.Errorf("host file changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(roDir, "new")); err == nil {
		t.Error("a write through the read-only bind reached the host")
	}
	if st, err := os.Lstat(filepath.Join(overlay.Upper, "new/dir/file")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("file target not created as a file in the layer: %v", err)
	}
}

// A missing bind source and a kind mismatch fail with clear errors.
func TestMountErrors(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		m    Mount
		want string
	}{
		{Mount{Type: "bind", Source: filepath.Join(dir, "missing"), Target: "/m"}, "does not exist on the host"},
		{Mount{Type: "bind", Source: file, Target: "/etc"}, "is a directory in the container but the source is a file"},
		{Mount{Type: "tmpfs", Target: "/etc/passwd"}, "is a file in the container but the source is a directory"},
		{Mount{Type: "tmpfs", Target: "/etc/passwd/x"}, "/etc/passwd is not a directory"},
	} {
		overlay, target := busyboxRoot(t)
		out, code := runInit(t, Config{Root: target, Overlay: overlay, Mounts: []Mount{tc.m}}, "true")
		if code == 0 || !strings.Contains(out, tc.want) || !strings.Contains(out, tc.m.Target) {
			t.Errorf("%+v: exit %d: %s", tc.m, code, out)
		}
	}
}

// inMountNS runs fn on a thread of its own in a new, rprivate mount
// namespace; the thread ends with fn, and its mounts with it.
func inMountNS(t *testing.T, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
			errc <- fmt.Errorf("make / rprivate: %w", err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// rootfs.TestBindSourceResolvedOnce: the bind source is opened once; a
// swap of the host path for a symlink after that has no effect on what is
// mounted.
func TestBindSourceResolvedOnce(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	src := filepath.Join(dir, "src")
	other := filepath.Join(dir, "other")
	for _, d := range []string{root, src, other} {
		os.Mkdir(d, 0o755)
	}
	os.WriteFile(filepath.Join(src, "original"), nil, 0o644)
	os.WriteFile(filepath.Join(other, "swapped"), nil, 0o644)
	inMountNS(t, func() error {
		rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(rootFD)
		rootPath, err := readlinkFD(rootFD)
		if err != nil {
			return err
		}
		p, err := Mount{Type: "bind", Source: src, Target: "/data"}.plan()
		if err != nil {
			return err
		}
		s, err := openBindSource(src)
		if err != nil {
			return err
		}
		defer s.close()
		// The swap, after resolution and before the mount.
		if err := os.Rename(src, src+".old"); err != nil {
			return err
		}
		if err := os.Symlink(other, src); err != nil {
			return err
		}
		if err := mountPlanned(rootFD, rootPath, p, s); err != nil {
			return err
		}
		entries, err := os.ReadDir(filepath.Join(root, "data"))
		if err != nil {
			return err
		}
		if len(entries) != 1 || entries[0].Name() != "original" {
			return fmt.Errorf("the mount shows %v, want [original]", entries)
		}
		return unix.Unmount(filepath.Join(root, "data"), unix.MNT_DETACH)
	})
	if mp := mountpoints(t, dir); len(mp) != 0 {
		t.Errorf("host mounts under the test dir: %v", mp)
	}
}

// Mount.Validate refuses what can never be mounted, before any action.
func TestMountValidate(t *testing.T) {
	ok := []Mount{
		{Type: "bind", Source: "/srv", Target: "/data"},
		{Type: "bind", Source: "/srv", Target: "/data", ReadOnly: true, Options: []string{"rslave", "nosuid", "nodev", "noexec"}},
		{Type: "bind", Source: "/srv", Target: "/processes"},
		{Type: "tmpfs", Target: "/run", Options: []string{"size=64m", "mode=1777", "exec"}},
		{Type: "tmpfs", Target: "/run", Options: []string{"size=50%", "mode=755", "rprivate", "nosuid"}},
	}
	for _, m := range ok {
		if err := m.Validate(); err != nil {
			t.Errorf("%+v: %v", m, err)
		}
	}
	bad := []struct {
		m    Mount
		want string
	}{
		{Mount{Type: "tmpfs", Target: "/"}, "over the container's /"},
		{Mount{Type: "tmpfs", Target: "/x/.."}, "over the container's /"},
		{Mount{Type: "tmpfs", Target: "/proc"}, "onto /proc"},
		{Mount{Type: "bind", Source: "/srv", Target: "/proc/sys/kernel"}, "onto /proc"},
		{Mount{Type: "tmpfs", Target: "//proc/../proc/./x"}, "onto /proc"},
		{Mount{Type: "tmpfs", Target: "data"}, "absolute"},
		{Mount{Type: "bind", Source: "srv", Target: "/data"}, "absolute host path"},
		{Mount{Type: "volume", Target: "/data"}, "volume source"},
		{Mount{Type: "bind", Source: "/srv", Target: "/d", Options: []string{"rbind"}}, "unknown bind option"},
		{Mount{Type: "bind", Source: "/srv", Target: "/d", Options: []string{"private", "rshared"}}, "conflict"},
		{Mount{Type: "tmpfs", Target: "/d", Options: []string{"size=1m,uid=0"}}, "size must be"},
		{Mount{Type: "tmpfs", Target: "/d", Options: []string{"mode=999"}}, "mode must be"},
		{Mount{Type: "tmpfs", Target: "/d", Options: []string{"uid=1000"}}, "unknown tmpfs option"},
		{Mount{Type: "tmpfs", Target: "/d", Options: []string{"private", "rslave"}}, "conflict"},
		{Mount{Type: "tmpfs", Target: "/d", Options: []string{"rbind"}}, "unknown tmpfs option"},
	}
	for _, tc := range bad {
		err := tc.m.Validate()
		if err == nil || !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalid with %q", tc.m, err, tc.want)
		}
	}
}
