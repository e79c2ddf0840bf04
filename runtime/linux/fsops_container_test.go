package linux

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

	"berth.dev/berth/image/overlay"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/internal/testutil"
)

// fstContainer runs busybox's sh -c script as container c in a fresh
// root: detached and kept alive when running, else to its end. It
// returns the container as an in-process runtime sees it.
func fstContainer(t *testing.T, script string, running bool) (*testutil.Root, *Container) {
	t.Helper()
	r := testutil.NewRoot(t)
	if running {
		r.Must("container", "run", "-d", "--name", "c", "busybox", "sh", "-c", script+"; touch /ready; sleep 1000")
		t.Cleanup(func() { r.Run("container", "rm", "-f", "c") })
	} else {
		r.Must("container", "run", "--name", "c", "busybox", "sh", "-c", script)
		// run returns with the exit; the shim may take a moment longer.
		t.Cleanup(func() { r.Run("container", "rm", "-f", "c") })
		testutil.Eventually(t, func() bool { return testutil.ShimsGone(r.Path) }, 10*time.Second, "the shim of the exited container to end")
	}
	root, err := state.Open(r.Path)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := overlay.New(filepath.Join(r.Path, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(root, snaps, Options{Binary: r.Bin}).Find("c")
	if err != nil {
		t.Fatal(err)
	}
	if running {
		testutil.Eventually(t, func() bool {
			_, err := c.StatPath(context.Background(), "/ready", false)
			return err == nil
		}, 10*time.Second, "the container's script")
	}
	return r, c
}

func fstStates() map[string]bool { return map[string]bool{"running": true, "stopped": false} }

// fstCopyOut reads one file out of the container.
func fstCopyOut(t *testing.T, c *Container, p string, o CopyOptions) (*tar.Header, string) {
	t.Helper()
	rc, err := c.CopyOutWith(context.Background(), p, o)
	if err != nil {
		t.Fatalf("copy out %s: %v", p, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil {
		t.Fatalf("copy out %s: %v", p, err)
	}
	b, _ := io.ReadAll(tr)
	io.Copy(io.Discard, rc)
	return h, string(b)
}

// TestCopyInThroughContainerSymlink (SECURITY.md, CVE-2018-15664 class):
// with /test → /tmp in the container, a copy into /test lands in the
// container's /tmp, running or stopped; the host's /tmp is unchanged.
// So do entries that go through the link, or climb with '..'.
func TestCopyInThroughContainerSymlink(t *testing.T) {
	for name, running := range fstStates() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			_, c := fstContainer(t, "ln -s /tmp /test", running)
			canary := fmt.Sprintf("berth-canary-%d", time.Now().UnixNano())
			copies := []struct {
				dst  string
				tar  []byte
				file string
			}{
				{"/test", fstTar(t, fstFile(canary+"-a", "a")), canary + "-a"},
				{"/test/", fstTar(t, fstFile(canary+"-b", "b")), canary + "-b"},
				{"/", fstTar(t, fstFile("test/"+canary+"-c", "c")), canary + "-c"},
				{"/", fstTar(t, fstFile("../../../../../tmp/"+canary+"-d", "d")), canary + "-d"},
				{"/", fstTar(t, fstLink("toroot", "/"), fstFile("toroot/tmp/"+canary+"-e", "e")), canary + "-e"},
			}
			for _, cp := range copies {
				if err := c.CopyIn(ctx, cp.dst, bytes.NewReader(cp.tar)); err != nil {
					t.Fatalf("copy into %s: %v", cp.dst, err)
				}
			}
			for _, cp := range copies {
				if _, err := os.Lstat(filepath.Join("/tmp", cp.file)); err == nil {
					os.Remove(filepath.Join("/tmp", cp.file))
					t.Errorf("copy into %s wrote the host's /tmp/%s", cp.dst, cp.file)
				}
				h, body := fstCopyOut(t, c, "/tmp/"+cp.file, CopyOptions{})
				if h.Typeflag != tar.TypeReg || body != cp.file[len(cp.file)-1:] {
					t.Errorf("container /tmp/%s: %c %q", cp.file, h.Typeflag, body)
				}
			}
			if running {
				info, _ := c.Info(ctx)
				if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/tmp/%s-a", info.Pid, canary)); err != nil || string(b) != "a" {
					t.Errorf("the container's own /tmp does not have the file: %q %v", b, err)
				}
			} else {
				l, err := c.RootfsLayers(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(filepath.Join(l.Upper, "tmp", canary+"-a")); err != nil || string(b) != "a" {
					t.Errorf("the upper dir does not have tmp/%s-a: %q %v", canary, b, err)
				}
			}
		})
	}
}

// TestCopyOutFollowsInsideContainer: cp of a symlink to /etc/passwd
// copies the link; with -L the container's passwd, never the host's.
func TestCopyOutFollowsInsideContainer(t *testing.T) {
	host, _ := os.ReadFile("/etc/passwd")
	for name, running := range fstStates() {
		t.Run(name, func(t *testing.T) {
			_, c := fstContainer(t, "echo x:x:1:1::/:/bin/sh >> /etc/passwd; ln -s /etc/passwd /link; ln -s ../../../../etc/passwd /rel", running)
			h, _ := fstCopyOut(t, c, "/link", CopyOptions{})
			if h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc/passwd" || h.Name != "link" {
				t.Errorf("/link: %+v, want the symlink itself", h)
			}
			for _, p := range []string{"/link", "/rel"} {
				h, body := fstCopyOut(t, c, p, CopyOptions{FollowLink: true})
				if h.Typeflag != tar.TypeReg || !strings.Contains(body, "x:x:1:1::/:/bin/sh") || body == string(host) {
					t.Errorf("-L %s: %c %q, want the container's passwd", p, h.Typeflag, body)
				}
				if h.Name != strings.TrimPrefix(p, "/") {
					t.Errorf("-L %s: named %q, want the link's name", p, h.Name)
				}
			}
			if _, err := c.CopyOut(context.Background(), "/nope"); err == nil {
				t.Error("copy out of a missing path: no error")
			}
		})
	}
}
