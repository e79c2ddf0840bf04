package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/image/archive"
	"berth.dev/berth/internal/testutil"
)

type tarEntry struct {
	name, body string
	dir        bool
}

func tarOf(t *testing.T, entries ...tarEntry) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e.body)), ModTime: time.Unix(1, 0)}
		if e.dir {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return bytes.NewReader(buf.Bytes())
}

// mountpoints lists mountinfo entries under dir.
func mountpoints(t *testing.T, dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

func mountT(t *testing.T, o Overlay, target string) {
	t.Helper()
	if err := MountOverlay(o, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Unmount(target) })
}

// tree lists every path under dir with file contents.
func tree(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		b, _ := os.ReadFile(p)
		out = append(out, rel+"="+string(b))
		return nil
	})
	sort.Strings(out)
	return out
}

// A 3-layer image whose layer 2 deletes a file of layer 1 and makes a
// directory opaque must mount with exactly the expected tree.
func TestThreeLayerWhiteoutsMount(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	layers := []*bytes.Reader{
		tarOf(t, tarEntry{name: "etc", dir: true}, tarEntry{name: "etc/hosts", body: "1"}, tarEntry{name: "etc/keep", body: "1"},
			tarEntry{name: "var", dir: true}, tarEntry{name: "var/old", body: "1"}, tarEntry{name: "var/sub", dir: true}, tarEntry{name: "var/sub/x", body: "1"}),
		tarOf(t, tarEntry{name: "etc", dir: true}, tarEntry{name: "etc/.wh.hosts"},
			tarEntry{name: "var", dir: true}, tarEntry{name: "var/.wh..wh..opq"}, tarEntry{name: "var/new", body: "2"}),
		tarOf(t, tarEntry{name: "etc/keep", body: "3"}, tarEntry{name: "bin", dir: true}, tarEntry{name: "bin/sh", body: "3"}),
	}
	var lowers []string
	for i, l := range layers {
		dir := filepath.Join(base, fmt.Sprintf("layer%d", i))
		os.Mkdir(dir, 0o755)
		if _, err := archive.Apply(context.Background(), dir, l); err != nil {
			t.Fatal(err)
		}
		lowers = append([]string{dir}, lowers...) // top-most first
	}
	for _, withUpper := range []bool{false, true} {
		t.Run(fmt.Sprintf("upper=%v", withUpper), func(t *testing.T) {
			target := filepath.Join(base, fmt.Sprintf("mnt-%v", withUpper))
			os.Mkdir(target, 0o755)
			o := Overlay{Lower: lowers}
			if withUpper {
				o.Upper, o.Work = filepath.Join(base, "upper"), filepath.Join(base, "work")
				os.Mkdir(o.Upper, 0o755)
				os.Mkdir(o.Work, 0o755)
			}
			mountT(t, o, target)
			want := []string{"bin/", "bin/sh=3", "etc/", "etc/keep=3", "var/", "var/new=2"}
			if got := tree(t, target); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("tree:\n%v\nwant:\n%v", got, want)
			}
			err := os.WriteFile(filepath.Join(target, "written"), nil, 0o644)
			if withUpper != (err == nil) {
				t.Fatalf("write with upper=%v: %v", withUpper, err)
			}
		})
	}
}

// An image of 120 layers needs more than a page of mount options; it must
// mount, show every layer, and unmount leaving nothing behind.
func TestManyLayersMountAndUnmount(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	const n = 120
	var lowers []string
	for i := 0; i < n; i++ {
		// long-ish paths, as a real store's snapshots/<n>/fs under a state root
		dir := filepath.Join(base, "snapshots", fmt.Sprintf("%04d-%s", i, strings.Repeat("x", 24)), "fs")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("layer-%03d", i)), []byte("x"), 0o644)
		os.WriteFile(filepath.Join(dir, "top"), []byte(fmt.Sprint(i)), 0o644)
		lowers = append([]string{dir}, lowers...)
	}
	if opts := strings.Join(lowers, ":"); len(opts) < os.Getpagesize() {
		t.Fatalf("test bug: %d bytes of lowerdir fit in a page", len(opts))
	}
	target := filepath.Join(base, "rootfs")
	upper, work := filepath.Join(base, "upper"), filepath.Join(base, "work")
	for _, d := range []string{target, upper, work} {
		os.Mkdir(d, 0o755)
	}
	if err := MountOverlay(Overlay{Lower: lowers, Upper: upper, Work: work}, target); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(target)
	top, _ := os.ReadFile(filepath.Join(target, "top"))
	if len(entries) != n+1 || string(top) != fmt.Sprint(n-1) {
		Unmount(target)
		t.Fatalf("%d entries, top=%q", len(entries), top)
	}
	if err := Unmount(target); err != nil {
		t.Fatal(err)
	}
	if m := mountpoints(t, base); len(m) != 0 {
		t.Fatalf("still mounted: %v", m)
	}
}

func TestSingleLayerReadOnlyView(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	layer, target := filepath.Join(base, "l"), filepath.Join(base, "m")
	os.Mkdir(layer, 0o755)
	os.Mkdir(target, 0o755)
	os.WriteFile(filepath.Join(layer, "f"), []byte("v"), 0o644)
	mountT(t, Overlay{Lower: []string{layer}}, target)
	if b, _ := os.ReadFile(filepath.Join(target, "f")); string(b) != "v" {
		t.Fatalf("f = %q", b)
	}
	if err := os.WriteFile(filepath.Join(target, "g"), nil, 0o644); err == nil {
		t.Fatal("read-only view is writable")
	}
}

func TestMountErrorsSayWhy(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	err := MountOverlay(Overlay{Lower: []string{filepath.Join(base, "missing1"), filepath.Join(base, "missing2")}}, base)
	if err == nil || !strings.Contains(err.Error(), "missing1") {
		t.Fatalf("err = %v", err)
	}
}

// TestVolatileMountsAgain: a Volatile overlay is mounted with overlayfs's
// volatile option (no sync of the upper dir), and the same upper and work
// dirs mount volatile again after it (a restart), though overlayfs marks a
// work dir it used that way.
func TestVolatileMountsAgain(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	o := Overlay{Lower: []string{filepath.Join(base, "l1"), filepath.Join(base, "l2")}, Upper: filepath.Join(base, "upper"), Work: filepath.Join(base, "work"), Volatile: true}
	for _, d := range append(o.Lower, o.Upper, o.Work) {
		os.Mkdir(d, 0o755)
	}
	target := filepath.Join(base, "mnt")
	os.Mkdir(target, 0o755)
	// The mount is made in this thread's mount namespace, which other
	// tests of the package may have left different from the main
	// thread's: read this thread's mount table.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; i < 2; i++ {
		if err := MountOverlay(o, target); err != nil {
			t.Fatalf("mount %d: %v", i+1, err)
		}
		b, _ := os.ReadFile("/proc/thread-self/mountinfo")
		var line string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, " "+target+" ") {
				line = l
			}
		}
		if !strings.Contains(line, "volatile") {
			Unmount(target)
			t.Fatalf("mount %d is not volatile: %q", i+1, line)
		}
		if err := os.WriteFile(filepath.Join(target, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Unmount(target); err != nil {
			t.Fatal(err)
		}
	}
}
