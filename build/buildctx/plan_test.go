package buildctx

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"berth.dev/berth/internal/errdefs"
)

// stdTree is the context most plan tests use; ../outside.txt is next to it.
var stdTree = []string{
	"a.txt=A", "b.txt=B", "c.go=C",
	"src/main.go=M", "src/lib/util.go=U", "src/lib/x.log=L", "src/rel->../a.txt",
	"docs/keep.md=K", "docs/other.md=O", "empty/",
	"link->a.txt", "dirlink->src/lib", "out->../outside.txt", "abs->/etc/passwd", "loop->loop",
}

func TestPlan(t *testing.T) {
	dirOpt := func(dest string) CopyOptions { return CopyOptions{Dest: dest, DestIsDir: true} }
	chmod := fs.FileMode(0o640)
	setuid := fs.FileMode(0o4755)
	tests := []struct {
		name   string
		tree   []string // nil: stdTree
		ignore string
		srcs   []string
		o      CopyOptions
		want   []string
		class  func(error) bool
		errHas string
	}{
		{
			name: "dir copies its contents", srcs: []string{"src"}, o: CopyOptions{Dest: "/app"},
			want: []string{
				"app/ 5 755 0:0", "app/lib/ 5 755 0:0", "app/lib/util.go 0 644 0:0 =U", "app/lib/x.log 0 644 0:0 =L",
				"app/main.go 0 644 0:0 =M", "app/rel 2 777 0:0 -> ../a.txt",
			},
		},
		{name: "file into dir", srcs: []string{"a.txt"}, o: dirOpt("/app"), want: []string{"app/ 5 755 0:0", "app/a.txt 0 644 0:0 =A"}},
		{name: "file to file", srcs: []string{"a.txt"}, o: CopyOptions{Dest: "/app/b.txt"}, want: []string{"app/b.txt 0 644 0:0 =A"}},
		{name: "nested file keeps only its base name", srcs: []string{"src/lib/util.go"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/util.go 0 644 0:0 =U"}},
		{name: "wildcard", srcs: []string{"*.txt"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/a.txt 0 644 0:0 =A", "d/b.txt 0 644 0:0 =B"}},
		{name: "wildcard per element", srcs: []string{"src/*/*.go"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/util.go 0 644 0:0 =U"}},
		{name: "wildcard star does not cross slash", srcs: []string{"*.go"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/c.go 0 644 0:0 =C"}},
		{name: "question mark and class", srcs: []string{"?.txt", "[c].go"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/a.txt 0 644 0:0 =A", "d/b.txt 0 644 0:0 =B", "d/c.go 0 644 0:0 =C"}},
		{name: "wildcard dirs copy their contents", tree: []string{"p1/a=1", "p2/b=2", "q/c=3"}, srcs: []string{"p*"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/a 0 644 0:0 =1", "d/b 0 644 0:0 =2"}},
		{name: "bad wildcard", srcs: []string{"[a-"}, o: dirOpt("/d"), class: errdefs.IsInvalid, errHas: "bad wildcard"},
		{name: "dot", tree: []string{"a=1", "d/b=2"}, srcs: []string{"."}, o: dirOpt("/app"), want: []string{"app/ 5 755 0:0", "app/a 0 644 0:0 =1", "app/d/ 5 755 0:0", "app/d/b 0 644 0:0 =2"}},
		{name: "dot slash and root", tree: []string{"a=1"}, srcs: []string{"./", "/"}, o: dirOpt("/app"), want: []string{"app/ 5 755 0:0", "app/a 0 644 0:0 =1"}},
		{name: "missing source", srcs: []string{"nope.txt"}, o: dirOpt("/d"), class: errdefs.IsNotFound, errHas: "file not found in build context or excluded by .dockerignore: nope.txt"},
		{name: "missing among several", srcs: []string{"a.txt", "nope/x"}, o: dirOpt("/d"), class: errdefs.IsNotFound, errHas: "excluded by .dockerignore: nope/x"},
		{name: "wildcard matching nothing", srcs: []string{"*.rs"}, o: dirOpt("/d"), class: errdefs.IsNotFound, errHas: ": *.rs"},
		{name: "file used as a dir", srcs: []string{"a.txt/x"}, o: dirOpt("/d"), class: errdefs.IsNotFound},
		{name: "dotdot clamped to the root", srcs: []string{"../a.txt", "/b.txt", "./c.go", "../../src/main.go"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/a.txt 0 644 0:0 =A", "d/b.txt 0 644 0:0 =B", "d/c.go 0 644 0:0 =C", "d/main.go 0 644 0:0 =M"}},
		{
			name: "ignore with exception", tree: []string{"a=1", "docs/keep.md=K", "docs/other.md=O", "docs/sub/deep.md=D"},
			ignore: ".dockerignore\ndocs\n!docs/keep.md\n!docs/sub/deep.md\n", srcs: []string{"."}, o: dirOpt("/app"),
			want: []string{"app/ 5 755 0:0", "app/a 0 644 0:0 =1", "app/docs/ 5 755 0:0", "app/docs/keep.md 0 644 0:0 =K", "app/docs/sub/ 5 755 0:0", "app/docs/sub/deep.md 0 644 0:0 =D"},
		},
		{
			name: "excluded dir named directly shows its exceptions", ignore: "docs\n!docs/keep.md\n", srcs: []string{"docs"}, o: CopyOptions{Dest: "/app"},
			want: []string{"app/ 5 755 0:0", "app/keep.md 0 644 0:0 =K"},
		},
		{name: "excluded dir whose exception matches nothing", tree: []string{"a=1", "docs/x.md=X"}, ignore: ".dockerignore\ndocs\n!docs/none.md\n", srcs: []string{"."}, o: dirOpt("/app"), want: []string{"app/ 5 755 0:0", "app/a 0 644 0:0 =1"}},
		{name: "excluded dir named directly, no exception", ignore: "docs\n", srcs: []string{"docs"}, o: dirOpt("/app"), class: errdefs.IsNotFound},
		{name: "ignored file inside a selected dir", ignore: "src/lib/*.log\n", srcs: []string{"src/lib"}, o: CopyOptions{Dest: "/app"}, want: []string{"app/ 5 755 0:0", "app/util.go 0 644 0:0 =U"}},
		{name: "ignored file named directly", ignore: "a.txt\n", srcs: []string{"a.txt"}, o: dirOpt("/d"), class: errdefs.IsNotFound, errHas: ": a.txt"},
		{name: "dir whose contents are all ignored keeps its entry", ignore: "src/lib/*\n", srcs: []string{"src"}, o: CopyOptions{Dest: "/app"}, want: []string{"app/ 5 755 0:0", "app/lib/ 5 755 0:0", "app/main.go 0 644 0:0 =M", "app/rel 2 777 0:0 -> ../a.txt"}},
		{name: "wildcard skips ignored files", ignore: "b.txt\n", srcs: []string{"*.txt"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/a.txt 0 644 0:0 =A"}},
		{name: "empty dir", srcs: []string{"empty"}, o: CopyOptions{Dest: "/e"}, want: []string{"e/ 5 755 0:0"}},
		{name: "symlinks inside a dir are kept", tree: []string{"d/l->/etc/passwd", "d/m->../../x", "d/f=1"}, srcs: []string{"d"}, o: CopyOptions{Dest: "/x"}, want: []string{"x/ 5 755 0:0", "x/f 0 644 0:0 =1", "x/l 2 777 0:0 -> /etc/passwd", "x/m 2 777 0:0 -> ../../x"}},
		{name: "top-level symlink inside is followed", srcs: []string{"link"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/link 0 644 0:0 =A"}},
		{name: "top-level symlink to a dir is followed", srcs: []string{"dirlink"}, o: CopyOptions{Dest: "/app"}, want: []string{"app/ 5 755 0:0", "app/util.go 0 644 0:0 =U", "app/x.log 0 644 0:0 =L"}},
		{name: "source through a symlinked dir", srcs: []string{"dirlink/util.go"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/util.go 0 644 0:0 =U"}},
		{name: "top-level symlink outside", srcs: []string{"out"}, o: dirOpt("/d"), class: errdefs.IsInvalid, errHas: "outside the build context"},
		{name: "top-level absolute symlink outside", srcs: []string{"abs"}, o: dirOpt("/d"), class: errdefs.IsInvalid, errHas: "/etc/passwd"},
		{name: "wildcard matching an outside symlink", srcs: []string{"o?t"}, o: dirOpt("/d"), class: errdefs.IsInvalid, errHas: "outside the build context"},
		{name: "symlink loop", srcs: []string{"loop"}, o: dirOpt("/d"), class: errdefs.IsInvalid, errHas: "symlink loop"},
		{
			name: "chown and chmod", srcs: []string{"src"}, o: CopyOptions{Dest: "/app", Chown: &Owner{1000, 1001}, Chmod: &chmod},
			want: []string{
				"app/ 5 640 1000:1001", "app/lib/ 5 640 1000:1001", "app/lib/util.go 0 640 1000:1001 =U", "app/lib/x.log 0 640 1000:1001 =L",
				"app/main.go 0 640 1000:1001 =M", "app/rel 2 777 1000:1001 -> ../a.txt",
			},
		},
		{name: "chmod of the created dest dir", srcs: []string{"a.txt"}, o: CopyOptions{Dest: "/d", DestIsDir: true, Chmod: &chmod, Chown: &Owner{5, 6}}, want: []string{"d/ 5 640 5:6", "d/a.txt 0 640 5:6 =A"}},
		{name: "chmod setuid as octal", srcs: []string{"a.txt"}, o: CopyOptions{Dest: "/bin/a", Chmod: &setuid}, want: []string{"bin/a 0 4755 0:0 =A"}},
		{name: "several sources need a dir dest", srcs: []string{"a.txt", "b.txt"}, o: CopyOptions{Dest: "/x"}, class: errdefs.IsInvalid, errHas: "directory destination"},
		{name: "wildcard with several matches needs a dir dest", srcs: []string{"*.txt"}, o: CopyOptions{Dest: "/x"}, class: errdefs.IsInvalid, errHas: "end the destination with a /"},
		{name: "wildcard with one match to a file", srcs: []string{"*.go"}, o: CopyOptions{Dest: "/x.go"}, want: []string{"x.go 0 644 0:0 =C"}},
		{name: "dest root gets no entry of its own", srcs: []string{"src/lib", "a.txt"}, o: dirOpt("/"), want: []string{"a.txt 0 644 0:0 =A", "util.go 0 644 0:0 =U", "x.log 0 644 0:0 =L"}},
		{name: "dest root is a dir even without DestIsDir", srcs: []string{"a.txt"}, o: CopyOptions{Dest: "/"}, want: []string{"a.txt 0 644 0:0 =A"}},
		{name: "dest is cleaned", srcs: []string{"a.txt"}, o: CopyOptions{Dest: "/x//y/../z/", DestIsDir: true}, want: []string{"x/z/ 5 755 0:0", "x/z/a.txt 0 644 0:0 =A"}},
		{name: "relative dest", srcs: []string{"a.txt"}, o: CopyOptions{Dest: "app"}, class: errdefs.IsInvalid, errHas: "absolute"},
		{name: "no sources", o: dirOpt("/d"), class: errdefs.IsInvalid},
		{name: "negative owner", srcs: []string{"a.txt"}, o: CopyOptions{Dest: "/d", Chown: &Owner{-1, 0}}, class: errdefs.IsInvalid},
		{name: "later source wins", tree: []string{"x/f=1", "y/f=2", "x/g=3"}, srcs: []string{"x", "y"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/f 0 644 0:0 =2", "d/g 0 644 0:0 =3"}},
		{name: "dir replaces an earlier file", tree: []string{"x/f=1", "y/f/g=2"}, srcs: []string{"x", "y"}, o: dirOpt("/d"), want: []string{"d/ 5 755 0:0", "d/f/ 5 755 0:0", "d/f/g 0 644 0:0 =2"}},
		{name: "file in one source, dir in another", tree: []string{"x/f=1", "y/f/g=2"}, srcs: []string{"y", "x"}, o: dirOpt("/d"), class: errdefs.IsInvalid, errHas: "/d/f"},
		{name: "symlink in one source, dir in another", tree: []string{"x/f->/etc", "y/f/passwd=2"}, srcs: []string{"y", "x"}, o: dirOpt("/d"), class: errdefs.IsInvalid, errHas: "/d/f/passwd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			mk(t, tmp, "outside.txt=SECRET")
			tree := tc.tree
			if tree == nil {
				tree = stdTree
			}
			dir := mk(t, filepath.Join(tmp, "ctx"), tree...)
			if tc.ignore != "" {
				must(t, os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(tc.ignore), 0o644))
			}
			got, _, err := planTar(t, openCtx(t, dir), tc.srcs, tc.o)
			if tc.class != nil {
				if err == nil || !tc.class(err) {
					t.Fatalf("err = %v, want another class (got %q)", err, got)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %q does not contain %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

func TestPlanAbsoluteSymlinkInside(t *testing.T) {
	dir := mk(t, t.TempDir(), "a.txt=A", "sub/b=B")
	mk(t, dir, "alink->"+filepath.Join(dir, "a.txt"), "dlink->"+dir+"/sub/")
	// the context named through a symlink: targets under either path count
	via := filepath.Join(t.TempDir(), "via")
	must(t, os.Symlink(dir, via))
	for _, d := range []string{dir, via} {
		got, _, err := planTar(t, openCtx(t, d), []string{"alink", "dlink"}, CopyOptions{Dest: "/d", DestIsDir: true})
		must(t, err)
		want := "d/ 5 755 0:0\nd/alink 0 644 0:0 =A\nd/b 0 644 0:0 =B"
		if strings.Join(got, "\n") != want {
			t.Errorf("context %s: got\n%s\nwant\n%s", d, strings.Join(got, "\n"), want)
		}
	}
}

func TestPlanHardlinks(t *testing.T) {
	dir := mk(t, t.TempDir(), "d/a=same", "d/c=other", "e=x")
	must(t, os.Link(filepath.Join(dir, "d/a"), filepath.Join(dir, "d/b")))
	must(t, os.Link(filepath.Join(dir, "d/a"), filepath.Join(dir, "outside-of-copy")))
	c := openCtx(t, dir)
	got, _, err := planTar(t, c, []string{"d"}, CopyOptions{Dest: "/x"})
	must(t, err)
	want := "x/ 5 755 0:0\nx/a 0 644 0:0 =same\nx/b 1 0 0:0 => x/a\nx/c 0 644 0:0 =other"
	if strings.Join(got, "\n") != want {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
	// a link partner that is not copied: a plain file
	got, _, err = planTar(t, c, []string{"d/b"}, CopyOptions{Dest: "/y"})
	must(t, err)
	if strings.Join(got, "\n") != "y 0 644 0:0 =same" {
		t.Errorf("single link partner: %q", got)
	}
	// partners in two sources
	got, _, err = planTar(t, c, []string{"outside-of-copy", "d/a"}, CopyOptions{Dest: "/z", DestIsDir: true})
	must(t, err)
	if want := "z/ 5 755 0:0\nz/a 0 644 0:0 =same\nz/outside-of-copy 1 0 0:0 => z/a"; strings.Join(got, "\n") != want {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
}

func TestPlanSkipsSpecialFiles(t *testing.T) {
	dir := mk(t, t.TempDir(), "d/a=1")
	if err := syscall.Mkfifo(filepath.Join(dir, "d/fifo"), 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	c := openCtx(t, dir)
	got, _, err := planTar(t, c, []string{"d"}, CopyOptions{Dest: "/x"})
	must(t, err)
	if strings.Join(got, "\n") != "x/ 5 755 0:0\nx/a 0 644 0:0 =1" {
		t.Errorf("fifo not skipped: %q", got)
	}
	if _, err := c.Plan([]string{"d/fifo"}, CopyOptions{Dest: "/x"}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "fifo") {
		t.Errorf("fifo named directly: %v", err)
	}
	if got, _, err := planTar(t, c, []string{"d/*"}, CopyOptions{Dest: "/x", DestIsDir: true}); err != nil || len(got) != 2 {
		t.Errorf("fifo matched by a wildcard: %q, %v", got, err)
	}
}

func TestWriteTarHeaders(t *testing.T) {
	long := strings.Repeat("n", 120)
	dir := mk(t, t.TempDir(), "d/a=hello", "d/l->a", "d/"+long+"=x")
	mtime := epoch.Add(123456789) // sub-second: needs a PAX record
	must(t, os.Chtimes(filepath.Join(dir, "d/a"), mtime, mtime))
	p, err := openCtx(t, dir).Plan([]string{"d"}, CopyOptions{Dest: "/x"})
	must(t, err)
	var buf bytes.Buffer
	must(t, p.WriteTar(&buf))
	_, hdrs := readTar(t, buf.Bytes())
	if len(hdrs) != 4 {
		t.Fatalf("%d entries", len(hdrs))
	}
	if a := hdrs[1]; a.Name != "x/a" || !a.ModTime.Equal(mtime) || a.Size != 5 || a.Format&tar.FormatPAX == 0 {
		t.Errorf("file header %+v: mtime, size or PAX format lost", a)
	}
	if h := hdrs[3]; h.Name != "x/"+long {
		t.Errorf("long name: %q", h.Name)
	}
	if !bytes.HasSuffix(buf.Bytes(), make([]byte, 1024)) {
		t.Errorf("no end-of-archive marker")
	}
}

func TestOpenat2Fallback(t *testing.T) {
	defer noOpenat2.Store(noOpenat2.Load())
	dir := mk(t, t.TempDir(), "a/b/c=deep", "top=1")
	c := openCtx(t, dir)
	var digests []string
	for _, off := range []bool{false, true} {
		noOpenat2.Store(off)
		got, p, err := planTar(t, c, []string{"."}, CopyOptions{Dest: "/x"})
		must(t, err)
		if len(got) != 5 || got[3] != "x/a/b/c 0 644 0:0 =deep" {
			t.Errorf("openat2 off=%v: %q", off, got)
		}
		d, err := p.Digest()
		must(t, err)
		digests = append(digests, d.String())
	}
	if digests[0] != digests[1] {
		t.Errorf("digest differs between openat2 and the fallback")
	}
}

// The context changes between Plan and WriteTar: the copy fails, and never
// reads outside the context.
func TestChangedDuringBuild(t *testing.T) {
	tmp := t.TempDir()
	mk(t, tmp, "secret=SECRET")
	for _, off := range []bool{false, true} {
		noOpenat2.Store(off)
		dir := mk(t, filepath.Join(tmp, "ctx"+map[bool]string{false: "1", true: "2"}[off]), "d/f=data", "d/g=more", "h=1")
		c := openCtx(t, dir)
		o := CopyOptions{Dest: "/x"}
		p, err := c.Plan([]string{"d"}, o)
		must(t, err)
		// the file replaced by a symlink out of the context
		must(t, os.Remove(filepath.Join(dir, "d/f")))
		must(t, os.Symlink(filepath.Join(tmp, "secret"), filepath.Join(dir, "d/f")))
		var buf bytes.Buffer
		err = p.WriteTar(&buf)
		if err == nil || bytes.Contains(buf.Bytes(), []byte("SECRET")) {
			t.Fatalf("openat2 off=%v: WriteTar after a swap: %v", off, err)
		}
		if _, err := p.Digest(); err == nil {
			t.Errorf("Digest after a swap: no error")
		}
		// the parent dir replaced by a symlink
		p, err = c.Plan([]string{"d"}, o)
		if err != nil {
			t.Fatal(err)
		}
		must(t, os.Rename(filepath.Join(dir, "d"), filepath.Join(dir, "d.old")))
		must(t, os.Symlink(tmp, filepath.Join(dir, "d")))
		buf.Reset()
		if err := p.WriteTar(&buf); err == nil || bytes.Contains(buf.Bytes(), []byte("SECRET")) {
			t.Fatalf("openat2 off=%v: WriteTar after a parent swap: %v", off, err)
		}
		// content changed in place
		p, err = c.Plan([]string{"h"}, o)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, "h"), []byte("longer"), 0o644))
		if _, err := p.Digest(); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "changed") {
			t.Errorf("Digest after a change: %v", err)
		}
	}
	noOpenat2.Store(false)
}
