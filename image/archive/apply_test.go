package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// entry is one tar entry of a test layer.
type entry struct {
	name, link string
	typ        byte
	body       string
	mode       int64
	uid, gid   int
}

func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func hardlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeLink, link: target, mode: 0o644}
}

func layer(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)),
			Uid: e.uid, Gid: e.gid, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// sandbox is a parent dir holding the layer root and, beside it, sentinel
// files that must survive any layer.
type sandbox struct {
	parent, root string
	sentinels    map[string]sentinel
}

type sentinel struct {
	content string
	mtime   time.Time
	nlink   uint64
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	parent := t.TempDir()
	s := &sandbox{parent: parent, root: filepath.Join(parent, "root"), sentinels: map[string]sentinel{}}
	if err := os.Mkdir(s.root, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"host/etc/passwd", "host/etc/shadow", "host/secret", "outside"} {
		full := filepath.Join(parent, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte("sentinel "+p), 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Unix(1000000000, 0)
		os.Chtimes(full, old, old)
		var st unix.Stat_t
		unix.Stat(full, &st)
		s.sentinels[full] = sentinel{"sentinel " + p, old, uint64(st.Nlink)}
	}
	return s
}

// check asserts the sentinels are untouched and nothing was created
// outside root.
func (s *sandbox) check(t testing.TB) {
	t.Helper()
	for p, want := range s.sentinels {
		b, err := os.ReadFile(p)
		var st unix.Stat_t
		unix.Stat(p, &st)
		fi, _ := os.Stat(p)
		if err != nil || string(b) != want.content || fi == nil || !fi.ModTime().Equal(want.mtime) || uint64(st.Nlink) != want.nlink {
			t.Fatalf("host file %s changed (err=%v, content=%q, nlink=%d)", p, err, b, st.Nlink)
		}
	}
	filepath.WalkDir(s.parent, func(p string, d fs.DirEntry, err error) error {
		if p == s.parent || p == s.root || strings.HasPrefix(p, s.root+"/") {
			return nil
		}
		if _, ok := s.sentinels[p]; ok || d.IsDir() && strings.HasPrefix(s.parent+"/host", p) || p == filepath.Join(s.parent, "host", "etc") {
			return nil
		}
		t.Fatalf("created outside the layer root: %s", p)
		return nil
	})
}

func apply(t testing.TB, s *sandbox, data []byte) error {
	t.Helper()
	_, err := Apply(context.Background(), s.root, bytes.NewReader(data))
	return err
}

// TestApplyBreakouts runs hostile layers; none may touch anything outside
// the layer root. Some are refused, the rest land inside the root.
func TestApplyBreakouts(t *testing.T) {
	long := strings.Repeat("d/", 60) + "f" // PAX name > 100 bytes
	cases := []struct {
		name    string
		layers  [][]entry // applied in turn to the same root
		inRoot  []string  // must exist inside the root afterwards
		wantErr bool
	}{
		{name: "DotDotName", layers: [][]entry{{file("../outside", "pwn")}}, inRoot: []string{"outside"}},
		{name: "DeepDotDot", layers: [][]entry{{file("a/../../../host/secret", "pwn")}}, inRoot: []string{"host/secret"}},
		{name: "AbsoluteName", layers: [][]entry{{file("/host/etc/passwd", "pwn")}}, inRoot: []string{"host/etc/passwd"}},
		{name: "PAXLongDotDot", layers: [][]entry{{file("../../"+long, "pwn")}}, inRoot: []string{long}},
		{name: "SymlinkThenWrite", layers: [][]entry{{symlink("etc", "../host/etc"), file("etc/passwd", "pwn")}}, inRoot: []string{"host/etc/passwd"}},
		{name: "AbsoluteSymlinkThenWrite", layers: [][]entry{{symlink("etc", "/"+"PARENT/host/etc"), file("etc/passwd", "pwn")}}},
		{name: "DirReplacedBySymlink", layers: [][]entry{{dir("etc"), file("etc/a", "1"), symlink("etc", "../host/etc"), file("etc/passwd", "pwn")}}, inRoot: []string{"host/etc/passwd"}},
		{name: "SymlinkChainUpAndOut", layers: [][]entry{{symlink("a", "b/../.."), symlink("b", "c"), dir("c"), file("a/host/secret", "pwn")}}, inRoot: []string{"host/secret"}},
		{name: "SymlinkToRootThenWrite", layers: [][]entry{{symlink("r", "/"), file("r/../../host/secret", "pwn")}}, inRoot: []string{"host/secret"}},
		{name: "SymlinkInLowerLayerThenWrite", layers: [][]entry{{symlink("etc", "../../host/etc")}, {file("etc/shadow", "pwn")}}, inRoot: []string{"host/etc/shadow"}},
		{name: "HardlinkOutside", layers: [][]entry{{hardlink("x", "../host/etc/shadow")}}, wantErr: true},
		{name: "HardlinkOutsideExistingInRoot", layers: [][]entry{{file("host/etc/shadow", "inside"), hardlink("x", "../../host/etc/shadow")}}, inRoot: []string{"x"}},
		{name: "HardlinkThroughSymlink", layers: [][]entry{{symlink("evil", "../host/etc"), hardlink("x", "evil/shadow")}}, wantErr: true},
		{name: "HardlinkToDirectory", layers: [][]entry{{dir("d"), hardlink("x", "d")}}, wantErr: true},
		{name: "HardlinkToSymlink", layers: [][]entry{{symlink("s", "../outside"), hardlink("x", "s")}}, wantErr: true},
		{name: "HardlinkAbsolute", layers: [][]entry{{hardlink("x", "/etc/passwd")}}, wantErr: true},
		{name: "WriteThroughDanglingSymlinkParent", layers: [][]entry{{symlink("d", "../newdir"), file("d/f", "pwn")}}, inRoot: []string{"newdir/f"}},
		{name: "FileOverSymlinkReplacesLink", layers: [][]entry{{symlink("f", "../outside"), file("f", "pwn")}}, inRoot: []string{"f"}},
		{name: "WhiteoutDotDot", layers: [][]entry{{file(".wh..", "")}}, wantErr: true},
		{name: "WhiteoutParentEscape", layers: [][]entry{{file("../.wh.host", "")}}, inRoot: []string{"host"}},
		{name: "WhiteoutThroughSymlink", layers: [][]entry{{symlink("h", "../host"), file("h/.wh.secret", "")}}, inRoot: []string{"host/secret"}},
		{name: "OpaqueThroughSymlink", layers: [][]entry{{symlink("h", "../host"), file("h/.wh..wh..opq", "")}}, inRoot: []string{"host"}},
		{name: "DeviceOutside", layers: [][]entry{{{name: "../dev-null", typ: tar.TypeChar, mode: 0o666}}}},
		// Parents that are symlinks into each other: refused, not followed forever.
		{name: "SymlinkCycleParent", layers: [][]entry{{symlink("a", "b/c/d/e/f/g"), symlink("b", "a/h/i/j/k/l"), file("a/x", "y")}}, wantErr: true},
		{name: "RootEntryIgnored", layers: [][]entry{{dir("/"), dir("."), dir("..")}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t)
			var err error
			for _, l := range c.layers {
				for i := range l {
					l[i].link = strings.ReplaceAll(l[i].link, "PARENT", strings.TrimPrefix(s.parent, "/"))
				}
				if err = apply(t, s, layer(t, l...)); err != nil {
					break
				}
			}
			s.check(t)
			if c.wantErr {
				if err == nil {
					t.Fatal("hostile layer was accepted")
				}
				if !errors.Is(err, ErrInvalidEntry) {
					t.Logf("refused with: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			for _, p := range c.inRoot {
				if _, err := os.Lstat(filepath.Join(s.root, p)); err != nil {
					t.Errorf("%s not inside the root: %v", p, err)
				}
			}
		})
	}
}

func TestWhiteouts(t *testing.T) {
	s := newSandbox(t)
	err := apply(t, s, layer(t,
		dir("etc"), file("etc/.wh.hosts", ""), // delete a lower file
		dir("var"), file("var/.wh..wh..opq", ""), file("var/new", "n"), // opaque dir
		file("a/b/.wh.c", ""), // whiteout under an implied parent
	))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"etc/hosts", "a/b/c"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(s.root, p), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s is not a 0:0 whiteout: %v mode=%o rdev=%d", p, err, st.Mode, st.Rdev)
		}
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(s.root, "var"), opaqueXattr, buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("var not opaque: %v %q", err, buf[:n])
	}
	filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if strings.HasPrefix(d.Name(), ".wh.") {
			t.Errorf("whiteout file materialised: %s", p)
		}
		return nil
	})
	// Invalid names are refused and leave what exists alone.
	os.WriteFile(filepath.Join(s.root, "keep"), []byte("k"), 0o644)
	for _, bad := range []string{".wh.", ".wh..", ".wh..wh.x", "etc/.wh.."} {
		if err := apply(t, s, layer(t, file(bad, ""))); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	if _, err := os.Stat(filepath.Join(s.root, "keep")); err != nil {
		t.Error("an invalid whiteout removed a file")
	}
	s.check(t)
}

func TestApplyKeepsModesInsideRoot(t *testing.T) {
	s := newSandbox(t)
	suid := entry{name: "bin/su", typ: tar.TypeReg, body: "x", mode: 0o4755, uid: 0, gid: 0}
	sticky := entry{name: "tmp", typ: tar.TypeDir, mode: 0o1777}
	owned := entry{name: "home/u/f", typ: tar.TypeReg, body: "x", mode: 0o600, uid: 1000, gid: 1000}
	dev := entry{name: "dev/null", typ: tar.TypeChar, mode: 0o666}
	if err := apply(t, s, layer(t, suid, sticky, owned, dev, hardlink("bin/su2", "bin/su"), symlink("bin/sh", "busybox"))); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(s.root, "bin/su"))
	if fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("setuid lost: %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(s.root, "tmp")); fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("sticky lost: %v", fi.Mode())
	}
	if !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("mtime = %v", fi.ModTime())
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(s.root, "bin/su2"), &st)
	if st.Nlink != 2 {
		t.Errorf("hardlink: nlink = %d", st.Nlink)
	}
	if l, _ := os.Readlink(filepath.Join(s.root, "bin/sh")); l != "busybox" {
		t.Errorf("symlink = %q", l)
	}
	if os.Geteuid() == 0 {
		unix.Stat(filepath.Join(s.root, "home/u/f"), &st)
		if st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("owner = %d:%d", st.Uid, st.Gid)
		}
		unix.Stat(filepath.Join(s.root, "dev/null"), &st)
		if st.Mode&unix.S_IFMT != unix.S_IFCHR {
			t.Errorf("device not created")
		}
	}
	// The layer root of a real store sits under a 0700 state root.
	if fi, _ := os.Stat(s.root); fi.Mode().Perm() != 0o700 {
		t.Errorf("root mode %v", fi.Mode())
	}
}

// fatalRecorder records Fatalf instead of stopping the test.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (r *fatalRecorder) Fatalf(string, ...any) { r.failed = true }
func (r *fatalRecorder) Helper()               {}

// The sandbox check must catch what a naive extractor does, or the
// breakout table proves nothing.
func TestSandboxCheckDetectsEscape(t *testing.T) {
	s := newSandbox(t)
	os.WriteFile(filepath.Join(s.root, "..", "outside"), []byte("pwn"), 0o644) // filepath.Join(root, "../outside")
	r := &fatalRecorder{TB: t}
	s.check(r)
	if !r.failed {
		t.Fatal("overwritten sentinel not detected")
	}
	s = newSandbox(t)
	os.WriteFile(filepath.Join(s.parent, "new-file"), nil, 0o644)
	r = &fatalRecorder{TB: t}
	s.check(r)
	if !r.failed {
		t.Fatal("file created outside the root not detected")
	}
}

func TestDecompress(t *testing.T) {
	plain := layer(t, file("a", strings.Repeat("x", 1000)))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	enc, _ := zstd.NewWriter(nil)
	zs := enc.EncodeAll(plain, nil)
	for _, c := range []struct {
		in   []byte
		want Compression
	}{{plain, Uncompressed}, {gz.Bytes(), Gzip}, {zs, Zstd}} {
		rc, got, err := Decompress(bytes.NewReader(c.in))
		if err != nil || got != c.want {
			t.Fatalf("%v: got %v, %v", c.want, got, err)
		}
		s := newSandbox(t)
		if _, err := Apply(context.Background(), s.root, rc); err != nil {
			t.Fatalf("%v: %v", c.want, err)
		}
		rc.Close()
		if b, _ := os.ReadFile(filepath.Join(s.root, "a")); len(b) != 1000 {
			t.Fatalf("%v: content %d bytes", c.want, len(b))
		}
	}
}

func TestApplyKeepsXattrs(t *testing.T) {
	s := newSandbox(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX,
		PAXRecords: map[string]string{"SCHILY.xattr.user.berth": "kept"}})
	tw.Close()
	if err := apply(t, s, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 16)
	n, err := unix.Getxattr(filepath.Join(s.root, "f"), "user.berth", val)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			t.Skip("the temp filesystem has no user xattrs")
		}
		t.Fatal(err)
	}
	if string(val[:n]) != "kept" {
		t.Fatalf("xattr = %q", val[:n])
	}
}
