package buildctx

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustDigest(t testing.TB, c *Context, srcs []string, o CopyOptions) string {
	t.Helper()
	p, err := c.Plan(srcs, o)
	must(t, err)
	d, err := p.Digest()
	must(t, err)
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	return d.String()
}

var digestTree = []string{"a.txt=A", "src/main.go=M", "src/lib/u.go=U", "src/l->main.go", "skip.log=S", ".dockerignore=**/*.log\n", "src/", "src/lib/"}

// TestDigestGolden pins the encoding: a digest change invalidates every
// build cache, so it must be deliberate (bump digestVersion).
func TestDigestGolden(t *testing.T) {
	dir := mk(t, t.TempDir(), digestTree...)
	got := mustDigest(t, openCtx(t, dir), []string{"src", "a.txt"}, CopyOptions{Dest: "/app", DestIsDir: true})
	const want = "sha256:1bab6203f6f8396ffc4d158757bab59b9fe0d149d77138f80e9e0b2594848726"
	if got != want {
		t.Errorf("digest = %s, want %s", got, want)
	}
}

func TestDigest(t *testing.T) {
	srcs := []string{"."}
	base := CopyOptions{Dest: "/app"}
	mode := fs.FileMode(0o600)
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		o      *CopyOptions // nil: base
		same   bool
	}{
		{name: "nothing", change: func(*testing.T, string) {}, same: true},
		{name: "mtime", same: true, change: func(t *testing.T, dir string) {
			for _, p := range []string{"a.txt", "src", "src/lib/u.go"} {
				must(t, os.Chtimes(filepath.Join(dir, p), epoch, epoch))
			}
			must(t, os.Lchown(filepath.Join(dir, "src/l"), os.Getuid(), os.Getgid())) // ctime only
		}},
		{name: "ignored file changed", same: true, change: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "skip.log"), []byte("other"), 0o600))
			must(t, os.WriteFile(filepath.Join(dir, "src/new.log"), []byte("new"), 0o644))
		}},
		{name: "content, same size", change: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "src/lib/u.go"), []byte("V"), 0o644))
		}},
		{name: "mode", change: func(t *testing.T, dir string) { must(t, os.Chmod(filepath.Join(dir, "a.txt"), 0o600)) }},
		{name: "dir mode", change: func(t *testing.T, dir string) { must(t, os.Chmod(filepath.Join(dir, "src/lib"), 0o700)) }},
		{name: "name", change: func(t *testing.T, dir string) {
			must(t, os.Rename(filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")))
		}},
		{name: "symlink target", change: func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "src/l")))
			must(t, os.Symlink("lib", filepath.Join(dir, "src/l")))
		}},
		{name: "new empty dir", change: func(t *testing.T, dir string) { must(t, os.Mkdir(filepath.Join(dir, "e"), 0o755)) }},
		{name: "new file", change: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "src/main2.go"), []byte("M"), 0o644))
		}},
		{name: "chmod option", change: func(*testing.T, string) {}, o: &CopyOptions{Dest: "/app", Chmod: &mode}},
		{name: "chown option", change: func(*testing.T, string) {}, o: &CopyOptions{Dest: "/app", Chown: &Owner{1, 0}}},
		{name: "chown 0:0 is the default", same: true, change: func(*testing.T, string) {}, o: &CopyOptions{Dest: "/app", Chown: &Owner{0, 0}}},
		{name: "dest", change: func(*testing.T, string) {}, o: &CopyOptions{Dest: "/srv"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := mk(t, t.TempDir(), digestTree...)
			before := mustDigest(t, openCtx(t, dir), srcs, base)
			tc.change(t, dir)
			o := base
			if tc.o != nil {
				o = *tc.o
			}
			after := mustDigest(t, openCtx(t, dir), srcs, o)
			if (before == after) != tc.same {
				t.Errorf("before %s, after %s; want same=%v", before, after, tc.same)
			}
		})
	}
}

func TestDigestHardlinkVersusCopy(t *testing.T) {
	dir := mk(t, t.TempDir(), "d/a=same")
	must(t, os.WriteFile(filepath.Join(dir, "d/b"), []byte("same"), 0o644))
	must(t, os.Chmod(filepath.Join(dir, "d/b"), 0o644))
	copied := mustDigest(t, openCtx(t, dir), []string{"d"}, CopyOptions{Dest: "/x"})
	must(t, os.Remove(filepath.Join(dir, "d/b")))
	must(t, os.Link(filepath.Join(dir, "d/a"), filepath.Join(dir, "d/b")))
	linked := mustDigest(t, openCtx(t, dir), []string{"d"}, CopyOptions{Dest: "/x"})
	if copied == linked {
		t.Errorf("a hardlink and a copy must differ (the layer differs)")
	}
}

func TestDigestArchive(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) {
		must(t, os.WriteFile(filepath.Join(dir, "a.tar"), mkTar(t, tarEntry{name: "x", typ: tar.TypeReg, body: body}), 0o644))
	}
	o := CopyOptions{Dest: "/opt", ExtractArchives: true}
	write("one")
	d1 := mustDigest(t, openCtx(t, dir), []string{"a.tar"}, o)
	asFile := mustDigest(t, openCtx(t, dir), []string{"a.tar"}, CopyOptions{Dest: "/opt"})
	write("two")
	d2 := mustDigest(t, openCtx(t, dir), []string{"a.tar"}, o)
	mode := fs.FileMode(0o700)
	d3 := mustDigest(t, openCtx(t, dir), []string{"a.tar"}, CopyOptions{Dest: "/opt", ExtractArchives: true, Chmod: &mode})
	if d1 == d2 || d1 == asFile || d2 == d3 {
		t.Errorf("archive digests: %s %s %s %s", d1, d2, asFile, d3)
	}
	must(t, os.Chtimes(filepath.Join(dir, "a.tar"), epoch, epoch))
	if d := mustDigest(t, openCtx(t, dir), []string{"a.tar"}, o); d != d2 {
		t.Errorf("the archive's mtime changed the digest")
	}
}

// Digest and WriteTar describe the same entries: every context entry the
// digest hashes is in the tar, in order, with the same metadata and content.
func TestDigestAgreesWithTar(t *testing.T) {
	dir := mk(t, t.TempDir(), digestTree...)
	must(t, os.Link(filepath.Join(dir, "a.txt"), filepath.Join(dir, "src/hard")))
	must(t, os.WriteFile(filepath.Join(dir, "x.tar"), mkTar(t, sampleArchive...), 0o644))
	mode := fs.FileMode(0o751)
	for _, o := range []CopyOptions{
		{Dest: "/app"},
		{Dest: "/", Chown: &Owner{3, 4}, Chmod: &mode},
		{Dest: "/app", DestIsDir: true, ExtractArchives: true},
	} {
		srcs := []string{"."}
		if o.ExtractArchives {
			srcs = []string{"src", "x.tar", "a.txt"}
		}
		p, err := openCtx(t, dir).Plan(srcs, o)
		must(t, err)
		var buf bytes.Buffer
		must(t, p.WriteTar(&buf))
		tr := tar.NewReader(&buf)
		n := 0
		for _, g := range p.groups {
			if g.arc != nil {
				for range g.arc.count {
					_, err := tr.Next()
					must(t, err)
					n++
				}
				continue
			}
			for _, e := range g.entries {
				h, err := tr.Next()
				must(t, err)
				n++
				body, _ := io.ReadAll(tr)
				if strings.TrimSuffix(h.Name, "/") != e.name || h.Typeflag != e.typ || h.Linkname != e.link || h.Uid != e.uid || h.Gid != e.gid || h.Size != e.size {
					t.Errorf("%+v: tar has %+v", e, h)
				}
				if e.typ != tar.TypeLink && h.Mode != unixMode(e.mode) {
					t.Errorf("%s: mode %o in the tar, %o digested", e.name, h.Mode, unixMode(e.mode))
				}
				if e.typ == tar.TypeReg {
					want, _ := os.ReadFile(filepath.Join(dir, e.src))
					if !bytes.Equal(body, want) {
						t.Errorf("%s: content differs", e.name)
					}
				}
			}
		}
		if _, err := tr.Next(); err != io.EOF || n != p.Entries() {
			t.Errorf("%+v: trailing entries (%v) or Entries %d != %d", o, err, p.Entries(), n)
		}
	}
}

func TestDigestConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	for i := range 50 {
		mk(t, dir, filepath.Join("d", string(rune('a'+i%26))+strings.Repeat("x", i))+"="+strings.Repeat("y", i))
	}
	mk(t, dir, ".dockerignore=d/b*\n!d/bxx*\n**/z*\n")
	c := openCtx(t, dir)
	p, err := c.Plan([]string{"d"}, CopyOptions{Dest: "/x"})
	must(t, err)
	want, err := p.Digest()
	must(t, err)
	done := make(chan string)
	for range 4 {
		go func() {
			q, err := c.Plan([]string{"d"}, CopyOptions{Dest: "/x"})
			if err != nil {
				done <- err.Error()
				return
			}
			d, err := q.Digest()
			if err != nil {
				done <- err.Error()
				return
			}
			var buf bytes.Buffer
			if err := p.WriteTar(&buf); err != nil {
				done <- err.Error()
				return
			}
			done <- d.String()
		}()
	}
	deadline := time.After(30 * time.Second)
	for range 4 {
		select {
		case d := <-done:
			if d != want.String() {
				t.Errorf("concurrent Digest: %s, want %s", d, want)
			}
		case <-deadline:
			t.Fatal("timeout")
		}
	}
}
