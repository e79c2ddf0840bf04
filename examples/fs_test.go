package examples

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// fsScript changes a busybox container's filesystem: a new file, a
// removed image file, a changed one, and two symlinks (one a directory
// link leading to /tmp).
const fsScript = "echo hi > /newfile; rm /bin/vi; echo x:x:1:1::/:/bin/sh >> /etc/passwd; ln -s /etc/passwd /link; ln -s /tmp /test"

// fsContainer runs fsScript in container c, stopped after it or kept
// running.
func fsContainer(t *testing.T, r *testutil.Root, running bool) {
	t.Helper()
	if !running {
		r.Must("container", "run", "--name", "c", "busybox", "sh", "-c", fsScript)
		// run returns with the exit; the shim may take a moment longer.
		t.Cleanup(func() { r.Run("container", "rm", "-f", "c") })
		testutil.Eventually(t, func() bool { return testutil.ShimsGone(r.Path) }, 10*time.Second, "the shim of the exited container to end")
		return
	}
	r.Must("container", "run", "-d", "--name", "c", "busybox", "sh", "-c", fsScript+"; touch /ready; sleep 1000")
	t.Cleanup(func() { r.Run("container", "rm", "-f", "c") })
	testutil.Eventually(t, func() bool { return r.Run("container", "cp", "c:/ready", "-").Code == 0 },
		10*time.Second, "the container's script")
}

func fsStates() map[string]bool { return map[string]bool{"stopped": false, "running": true} }

// tarNames lists the entry names of a tar.
func tarNames(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("not a tar: %v", err)
		}
		out[h.Name] = h
	}
}

// TestContainerFsChangesMustDiffCommitAndExport: diff lists what the
// container changed as docker diff does; commit makes an image of it
// that runs with the change and without the removed file; export is the
// flattened filesystem.
func TestContainerFsChangesMustDiffCommitAndExport(t *testing.T) {
	for name, running := range fsStates() {
		t.Run(name, func(t *testing.T) {
			r := testutil.NewRoot(t)
			fsContainer(t, r, running)
			diff := r.Must("container", "diff", "c")
			lines := map[string]bool{}
			for _, l := range strings.Split(strings.TrimSpace(diff), "\n") {
				lines[l] = true
			}
			for _, want := range []string{"A /newfile", "D /bin/vi", "C /etc", "C /etc/passwd", "A /link", "A /test", "C /bin"} {
				if !lines[want] {
					t.Errorf("diff lacks %q:\n%s", want, diff)
				}
			}
			for _, not := range []string{"A /etc/hosts", "A /etc/hostname", "A /etc/resolv.conf"} {
				if lines[not] {
					t.Errorf("diff lists berth's mount target: %q", not)
				}
			}

			id := strings.TrimSpace(r.Must("container", "commit", "-m", "the fs test", "-a", "Ada", "-c", "ENV COMMITTED=yes", "c", "newimage"))
			if !strings.HasPrefix(id, "sha256:") {
				t.Errorf("commit printed %q, want the image ID", id)
			}
			if out := r.Must("container", "run", "--rm", "newimage", "sh", "-c", "cat /newfile; echo $COMMITTED; tail -1 /etc/passwd"); out != "hi\nyes\nx:x:1:1::/:/bin/sh\n" {
				t.Errorf("the committed image runs with %q", out)
			}
			if res := r.Run("container", "run", "--rm", "newimage", "ls", "/bin/vi"); res.Code == 0 {
				t.Errorf("/bin/vi is still in the committed image: %s", res.Stdout)
			}
			hist := r.Must("image", "history", "newimage")
			if !strings.Contains(hist, "the fs test") || !strings.Contains(hist, "echo hi > /newfile") {
				t.Errorf("history:\n%s", hist)
			}
			// Same layers below: the busybox layer is shared, one layer added.
			inspect := r.Must("image", "inspect", "newimage")
			base := r.Must("image", "inspect", "busybox")
			if n := strings.Count(inspect, `"sha256:`) - strings.Count(base, `"sha256:`); n != 1 {
				t.Errorf("the committed image has %d more digests than busybox, want 1 (its new layer)", n)
			}

			exp := r.Run("container", "export", "c")
			if exp.Code != 0 {
				t.Fatalf("export: %s", exp.Stderr)
			}
			names := tarNames(t, []byte(exp.Stdout))
			if _, ok := names["newfile"]; !ok {
				t.Error("export lacks newfile")
			}
			if _, ok := names["bin/vi"]; ok {
				t.Error("export has bin/vi")
			}
			if h := names["link"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc/passwd" {
				t.Errorf("export link: %+v", h)
			}
			for n := range names {
				if strings.HasPrefix(n, "proc/") && n != "proc/" || strings.HasPrefix(n, "sys/") && n != "sys/" {
					t.Errorf("export has %s", n)
				}
			}
			out := filepath.Join(t.TempDir(), "c.tar")
			r.Must("container", "export", "-o", out, "c")
			if b, err := os.ReadFile(out); err != nil || len(tarNames(t, b)) != len(names) {
				t.Errorf("export -o: %d entries (%v), want %d", len(tarNames(t, b)), err, len(names))
			}
		})
	}
}

// TestContainerCopyMustStayInTheContainer: cp resolves container paths in
// the container. A symlink to /etc/passwd copies as the link, and with -L
// as the container's passwd (the image's plus the change, not the
// host's); a copy into /test (→ /tmp) lands in the container's /tmp and
// the host's /tmp gets nothing.
func TestContainerCopyMustStayInTheContainer(t *testing.T) {
	hostPasswd, _ := os.ReadFile("/etc/passwd")
	for name, running := range fsStates() {
		t.Run(name, func(t *testing.T) {
			r := testutil.NewRoot(t)
			imagePasswd := r.Must("container", "run", "--rm", "busybox", "cat", "/etc/passwd")
			if imagePasswd == string(hostPasswd) {
				t.Fatal("test bug: the image's passwd is the host's")
			}
			fsContainer(t, r, running)
			dir := t.TempDir()
			r.Must("container", "cp", "c:/link", dir)
			if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != "/etc/passwd" {
				t.Errorf("cp of the link: %q %v, want the link itself", target, err)
			}
			r.Must("container", "cp", "-L", "c:/link", filepath.Join(dir, "passwd"))
			got, err := os.ReadFile(filepath.Join(dir, "passwd"))
			if want := imagePasswd + "x:x:1:1::/:/bin/sh\n"; err != nil || string(got) != want {
				t.Errorf("cp -L of the link: %q %v, want the container's %q", got, err, want)
			}

			canary := fmt.Sprintf("berth-cp-canary-%d", time.Now().UnixNano())
			src := filepath.Join(dir, canary)
			os.WriteFile(src, []byte("copied in\n"), 0o640)
			t.Cleanup(func() { os.Remove(filepath.Join("/tmp", canary)) })
			r.Must("container", "cp", src, "c:/test/")
			r.Must("container", "cp", src, "c:/test/renamed")
			if _, err := os.Lstat(filepath.Join("/tmp", canary)); err == nil {
				t.Fatalf("cp into c:/test/ wrote the host's /tmp/%s", canary)
			}
			if _, err := os.Lstat("/tmp/renamed"); err == nil {
				t.Error("cp into c:/test/renamed wrote the host's /tmp/renamed")
			}
			for _, p := range []string{"/tmp/" + canary, "/tmp/renamed"} {
				res := r.Run("container", "cp", "c:"+p, "-")
				names := tarNames(t, []byte(res.Stdout))
				if h := names[filepath.Base(p)]; res.Code != 0 || h == nil || h.Mode&0o777 != 0o640 || h.Uid != 0 {
					t.Errorf("cp c:%s -: %+v %s", p, h, res.Stderr)
				}
			}
			// A tar on stdin, into the link too.
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Name: "fromstdin", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
			tw.Write([]byte("in\n"))
			tw.Close()
			cmd := exec.Command(r.Bin, "container", "cp", "-", "c:/test")
			cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
			cmd.Stdin = &buf
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("cp - c:/test: %v %s", err, out)
			}
			// What the container itself sees: a commit run from scratch.
			r.Must("container", "commit", "c", "copied")
			if out := r.Must("container", "run", "--rm", "copied", "cat", "/tmp/"+canary, "/tmp/renamed", "/tmp/fromstdin"); out != "copied in\ncopied in\nin\n" {
				t.Errorf("the container's /tmp holds %q", out)
			}
			if _, err := os.Lstat("/tmp/fromstdin"); err == nil {
				t.Error("cp - c:/test wrote the host's /tmp/fromstdin")
			}

			// Directories, docker's way: into an existing dir, or as a new one.
			r.Must("container", "cp", "c:/etc", dir)
			r.Must("container", "cp", "c:/etc/.", filepath.Join(dir, "etc2"))
			for _, p := range []string{"etc/passwd", "etc2/passwd"} {
				if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || !strings.Contains(string(b), "x:x:1:1") {
					t.Errorf("%s: %q %v", p, b, err)
				}
			}
			for args, code := range map[string]int{"c:/nope " + dir: 1, "c:/etc " + filepath.Join(dir, "passwd"): 2, "c:/a c:/b": 2, "x y": 2} {
				res := r.Run(append([]string{"container", "cp"}, strings.Fields(args)...)...)
				if res.Code != code || strings.Contains(res.Stderr, "goroutine ") {
					t.Errorf("cp %s: exit %d, want %d: %s", args, res.Code, code, res.Stderr)
				}
			}
		})
	}
}
