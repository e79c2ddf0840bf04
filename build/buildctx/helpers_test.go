package buildctx

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain fixes the umask: the expected modes in the tables assume 022.
func TestMain(m *testing.M) {
	syscall.Umask(0o022)
	os.Exit(m.Run())
}

// mk builds files under dir from specs:
//
//	"d/"          a directory (0755)
//	"f=content"   a file (0644), parents created
//	"l->target"   a symlink
//
// and returns dir.
func mk(t testing.TB, dir string, specs ...string) string {
	t.Helper()
	for _, s := range specs {
		switch {
		case strings.Contains(s, "->"):
			name, target, _ := strings.Cut(s, "->")
			p := filepath.Join(dir, name)
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			must(t, os.Symlink(target, p))
		case strings.HasSuffix(s, "/"):
			p := filepath.Join(dir, s)
			must(t, os.MkdirAll(p, 0o755))
			must(t, os.Chmod(p, 0o755))
		default:
			name, content, _ := strings.Cut(s, "=")
			p := filepath.Join(dir, name)
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			must(t, os.WriteFile(p, []byte(content), 0o644))
			must(t, os.Chmod(p, 0o644))
		}
	}
	return dir
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tarLine describes one tar entry for comparisons:
// "name type mode uid:gid" plus " =content", " -> target" or " => target".
func tarLine(h *tar.Header, content []byte) string {
	s := fmt.Sprintf("%s %c %o %d:%d", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid)
	switch h.Typeflag {
	case tar.TypeReg:
		s += " =" + string(content)
	case tar.TypeSymlink:
		s += " -> " + h.Linkname
	case tar.TypeLink:
		s += " => " + h.Linkname
	}
	return s
}

// readTar lists a tar's entries as tarLines and checks the invariants of
// WriteTar's output.
func readTar(t testing.TB, data []byte) ([]string, []*tar.Header) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var lines []string
	var hdrs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: uname/gname %q/%q, want empty", h.Name, h.Uname, h.Gname)
		}
		if strings.HasPrefix(h.Name, "/") {
			t.Errorf("%s: leading slash", h.Name)
		}
		lines = append(lines, tarLine(h, body))
		hdrs = append(hdrs, h)
	}
	return lines, hdrs
}

// planTar plans and writes a copy, checks that Entries matches, and returns
// the tar's lines.
func planTar(t testing.TB, c *Context, srcs []string, o CopyOptions) ([]string, *CopyPlan, error) {
	t.Helper()
	p, err := c.Plan(srcs, o)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := p.WriteTar(&buf); err != nil {
		return nil, p, err
	}
	lines, _ := readTar(t, buf.Bytes())
	if len(lines) != p.Entries() {
		t.Errorf("Entries() = %d, the tar has %d:\n%s", p.Entries(), len(lines), strings.Join(lines, "\n"))
	}
	return lines, p, nil
}

func openCtx(t testing.TB, dir string) *Context {
	t.Helper()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var epoch = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
