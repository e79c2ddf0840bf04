package buildctx

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/errdefs"
	"github.com/klauspost/compress/zstd"
)

// tarEntry describes an archive entry for mkTar: "name" with a type
// (0 regular, 5 dir, 2 symlink, 1 hardlink, 3 char device), a target, a
// body and owners.
type tarEntry struct {
	name     string
	typ      byte
	link     string
	body     string
	mode     int64
	uid, gid int
}

func mkTar(t testing.TB, es ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: epoch, Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
			if e.typ == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		must(t, tw.WriteHeader(h))
		if e.typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			must(t, err)
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// compressWith compresses data with a Go encoder or a program; ok is false
// when the program is missing.
func compressWith(t testing.TB, kind string, data []byte) ([]byte, bool) {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "tar":
		return data, true
	case "gzip":
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		must(t, zw.Close())
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		must(t, err)
		zw.Write(data)
		must(t, zw.Close())
	default: // bzip2, xz: the programs
		bin, err := exec.LookPath(kind)
		if err != nil {
			return nil, false
		}
		cmd := exec.Command(bin, "-c")
		cmd.Stdin = bytes.NewReader(data)
		cmd.Stdout = &buf
		must(t, cmd.Run())
	}
	return buf.Bytes(), true
}

var sampleArchive = []tarEntry{
	{name: "./", typ: tar.TypeDir},
	{name: "etc/", typ: tar.TypeDir, mode: 0o750, uid: 10},
	{name: "etc/conf", typ: tar.TypeReg, body: "conf", mode: 0o600, uid: 10, gid: 20},
	{name: "bin/sh", typ: tar.TypeReg, body: "sh", mode: 0o4755},
	{name: "bin/ash", typ: tar.TypeLink, link: "bin/sh"},
	{name: "lib", typ: tar.TypeSymlink, link: "/usr/lib"},
	{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
}

var sampleWant = []string{
	"opt/ 5 755 0:0", // Dest's own entry
	"opt/ 5 755 0:0", // the archive's "./"
	"opt/etc/ 5 750 10:0",
	"opt/etc/conf 0 600 10:20 =conf",
	"opt/bin/sh 0 4755 0:0 =sh",
	"opt/bin/ash 1 0 0:0 => opt/bin/sh",
	"opt/lib 2 777 0:0 -> /usr/lib",
}

func TestAddExtractsArchives(t *testing.T) {
	raw := mkTar(t, sampleArchive...)
	for _, kind := range []string{"tar", "gzip", "bzip2", "xz", "zstd"} {
		t.Run(kind, func(t *testing.T) {
			data, ok := compressWith(t, kind, raw)
			if !ok {
				t.Skip(kind, "is not installed")
			}
			dir := t.TempDir()
			// named misleadingly: detection is by content
			must(t, os.WriteFile(filepath.Join(dir, "archive.txt"), data, 0o644))
			c := openCtx(t, dir)
			got, _, err := planTar(t, c, []string{"archive.txt"}, CopyOptions{Dest: "/opt", ExtractArchives: true})
			must(t, err)
			if strings.Join(got, "\n") != strings.Join(sampleWant, "\n") {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(sampleWant, "\n\t"))
			}
			// COPY (no extraction) copies the file as it is
			got, _, err = planTar(t, c, []string{"archive.txt"}, CopyOptions{Dest: "/opt/", DestIsDir: true})
			must(t, err)
			if len(got) != 2 || !strings.HasPrefix(got[1], "opt/archive.txt 0 644 0:0 =") {
				t.Errorf("COPY of an archive: %q", got)
			}
		})
	}
}

func TestAddArchiveOwnersAndModes(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "a.tar"), mkTar(t, sampleArchive...), 0o644))
	mode := fs.FileMode(0o640)
	got, _, err := planTar(t, openCtx(t, dir), []string{"a.tar"}, CopyOptions{Dest: "/opt", ExtractArchives: true, Chown: &Owner{7, 8}, Chmod: &mode})
	must(t, err)
	want := []string{
		"opt/ 5 640 7:8", "opt/ 5 640 7:8", "opt/etc/ 5 640 7:8", "opt/etc/conf 0 640 7:8 =conf",
		"opt/bin/sh 0 640 7:8 =sh", "opt/bin/ash 1 0 7:8 => opt/bin/sh", "opt/lib 2 777 7:8 -> /usr/lib",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func TestAddNotAnArchive(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("just text, no tar inside"))
	zw.Close()
	dir := mk(t, t.TempDir(), "notes.txt=hello", "zeros=", "bad.gz=\x1f\x8b\x08garbage")
	must(t, os.WriteFile(filepath.Join(dir, "text.gz"), gz.Bytes(), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "zeros"), make([]byte, 2048), 0o644)) // an empty tar: no first header
	must(t, os.WriteFile(filepath.Join(dir, "a.tar"), mkTar(t, tarEntry{name: "x", typ: tar.TypeReg, body: "X"}), 0o644))
	c := openCtx(t, dir)
	got, _, err := planTar(t, c, []string{"notes.txt", "text.gz", "zeros", "bad.gz", "a.tar"}, CopyOptions{Dest: "/d", DestIsDir: true, ExtractArchives: true})
	must(t, err)
	var names []string
	for _, l := range got {
		names = append(names, strings.Fields(l)[0])
	}
	want := "d/ d/bad.gz d/notes.txt d/text.gz d/zeros d/x"
	if strings.Join(names, " ") != want {
		t.Errorf("got %s, want %s", strings.Join(names, " "), want)
	}
}

func TestAddArchiveToRoot(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "rootfs.tar"), mkTar(t,
		tarEntry{name: "./", typ: tar.TypeDir},
		tarEntry{name: "./bin/", typ: tar.TypeDir},
		tarEntry{name: "./bin/busybox", typ: tar.TypeReg, body: "bb", mode: 0o755},
		tarEntry{name: "./bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
	), 0o644))
	got, _, err := planTar(t, openCtx(t, dir), []string{"rootfs.tar"}, CopyOptions{Dest: "/", ExtractArchives: true})
	must(t, err)
	want := "bin/ 5 755 0:0\nbin/busybox 0 755 0:0 =bb\nbin/sh 2 777 0:0 -> /bin/busybox"
	if strings.Join(got, "\n") != want {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
}

// Unsafe archives: names climbing out with ".." are rejected, absolute
// names are clamped into Dest, nothing is written through a symlink, and
// hardlinks only point to earlier entries of the archive.
func TestAddUnsafeArchives(t *testing.T) {
	reg := func(name string) tarEntry { return tarEntry{name: name, typ: tar.TypeReg, body: "x"} }
	tests := []struct {
		name    string
		entries []tarEntry
		want    []string // nil: rejected with errHas
		errHas  string
	}{
		{name: "dotdot", entries: []tarEntry{reg("ok"), reg("../evil")}, errHas: `"../evil" climbs out`},
		{name: "dotdot inside", entries: []tarEntry{reg("a/../../evil")}, errHas: "climbs out"},
		{name: "absolute name clamped", entries: []tarEntry{reg("/etc/passwd"), reg("//x")}, want: []string{"opt/ 5 755 0:0", "opt/etc/passwd 0 644 0:0 =x", "opt/x 0 644 0:0 =x"}},
		{name: "absolute dotdot clamped", entries: []tarEntry{reg("/../x")}, errHas: "climbs out"},
		{name: "write through absolute symlink", entries: []tarEntry{{name: "l", typ: tar.TypeSymlink, link: "/etc"}, reg("l/passwd")}, errHas: "written through /opt/l"},
		{name: "write through relative symlink", entries: []tarEntry{{name: "l", typ: tar.TypeSymlink, link: "../../.."}, reg("l/x")}, errHas: "written through"},
		{name: "write below a file", entries: []tarEntry{reg("f"), reg("f/x")}, errHas: "written through /opt/f"},
		{name: "symlink replaced by a dir is fine", entries: []tarEntry{{name: "l", typ: tar.TypeSymlink, link: "/etc"}, {name: "l/", typ: tar.TypeDir}, reg("l/x")}, want: []string{"opt/ 5 755 0:0", "opt/l 2 777 0:0 -> /etc", "opt/l/ 5 755 0:0", "opt/l/x 0 644 0:0 =x"}},
		{name: "hardlink out", entries: []tarEntry{{name: "h", typ: tar.TypeLink, link: "../x"}}, errHas: "hard link"},
		{name: "hardlink to absolute host path", entries: []tarEntry{{name: "h", typ: tar.TypeLink, link: "/etc/shadow"}}, errHas: "not an earlier file"},
		{name: "hardlink forward", entries: []tarEntry{{name: "h", typ: tar.TypeLink, link: "later"}, reg("later")}, errHas: "not an earlier file"},
		{name: "hardlink to a dir", entries: []tarEntry{{name: "d/", typ: tar.TypeDir}, {name: "h", typ: tar.TypeLink, link: "d"}}, errHas: "not an earlier file"},
		{name: "hardlink to itself", entries: []tarEntry{{name: "h", typ: tar.TypeLink, link: "h"}}, errHas: "not an earlier file"},
		{name: "hardlink through a dir turned symlink", entries: []tarEntry{{name: "d/", typ: tar.TypeDir}, reg("d/f"), {name: "d", typ: tar.TypeSymlink, link: "/etc"}, {name: "h", typ: tar.TypeLink, link: "d/f"}}, errHas: "not an earlier file"},
		{name: "file replacing the destination", entries: []tarEntry{reg(".")}, errHas: "replace the destination"},
		{name: "devices skipped", entries: []tarEntry{{name: "null", typ: tar.TypeChar}, {name: "fifo", typ: tar.TypeFifo}, {name: "sda", typ: tar.TypeBlock}, reg("ok")}, want: []string{"opt/ 5 755 0:0", "opt/ok 0 644 0:0 =x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			must(t, os.WriteFile(filepath.Join(dir, "a.tar"), mkTar(t, tc.entries...), 0o644))
			got, _, err := planTar(t, openCtx(t, dir), []string{"a.tar"}, CopyOptions{Dest: "/opt", ExtractArchives: true})
			if tc.want == nil {
				if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(err.Error(), "a.tar") {
					t.Fatalf("err = %v, want an invalid error naming a.tar with %q", err, tc.errHas)
				}
				return
			}
			must(t, err)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

func TestAddArchiveAfterContextSymlink(t *testing.T) {
	dir := mk(t, t.TempDir(), "d/l->/etc")
	must(t, os.WriteFile(filepath.Join(dir, "a.tar"), mkTar(t, tarEntry{name: "l/passwd", typ: tar.TypeReg, body: "x"}), 0o644))
	_, err := openCtx(t, dir).Plan([]string{"d", "a.tar"}, CopyOptions{Dest: "/opt", DestIsDir: true, ExtractArchives: true})
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "written through /opt/l") {
		t.Fatalf("err = %v", err)
	}
}

func TestAddDamagedArchive(t *testing.T) {
	data := mkTar(t, tarEntry{name: "a", typ: tar.TypeReg, body: "a"}, tarEntry{name: "b", typ: tar.TypeReg, body: strings.Repeat("b", 4096)})
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "a.tar"), data[:1024+512+100], 0o644))
	_, err := openCtx(t, dir).Plan([]string{"a.tar"}, CopyOptions{Dest: "/opt", ExtractArchives: true})
	if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("err = %v", err)
	}
}

// Archives and context files in one ADD: the order of the sources decides
// which wins, as if copied one after the other.
func TestAddArchiveAndFiles(t *testing.T) {
	dir := mk(t, t.TempDir(), "x=from-context")
	must(t, os.WriteFile(filepath.Join(dir, "a.tar"), mkTar(t, tarEntry{name: "x", typ: tar.TypeReg, body: "from-archive"}), 0o644))
	c := openCtx(t, dir)
	o := CopyOptions{Dest: "/opt", DestIsDir: true, ExtractArchives: true}
	for _, tc := range []struct {
		srcs []string
		last string
	}{
		{[]string{"a.tar", "x"}, "opt/x 0 644 0:0 =from-context"},
		{[]string{"x", "a.tar"}, "opt/x 0 644 0:0 =from-archive"},
	} {
		got, p, err := planTar(t, c, tc.srcs, o)
		must(t, err)
		if got[len(got)-1] != tc.last {
			t.Errorf("%v: got %q, want the last entry %q", tc.srcs, got, tc.last)
		}
		if p.Entries() != 3 {
			t.Errorf("%v: Entries = %d", tc.srcs, p.Entries())
		}
	}
	d1 := mustDigest(t, c, []string{"a.tar", "x"}, o)
	d2 := mustDigest(t, c, []string{"x", "a.tar"}, o)
	if d1 == d2 {
		t.Errorf("source order decides the result but not the digest")
	}
}
