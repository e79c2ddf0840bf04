package buildctx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/errdefs"
)

func TestOpenErrors(t *testing.T) {
	tmp := t.TempDir()
	mk(t, tmp, "file=x", "ctx/")
	tests := []struct {
		name         string
		dir          string
		ignore       *string // nil: Open; else OpenWithIgnore
		dockerignore string  // content of ctx/.dockerignore
		class        func(error) bool
		want         []string
	}{
		{name: "missing dir", dir: filepath.Join(tmp, "nope"), class: errdefs.IsNotFound, want: []string{"nope", "not found"}},
		{name: "missing parent", dir: filepath.Join(tmp, "file", "x"), class: errdefs.IsNotFound, want: []string{"file/x"}},
		{name: "not a dir", dir: filepath.Join(tmp, "file"), class: errdefs.IsInvalid, want: []string{"not a directory"}},
		{name: "empty dir", dir: "", class: errdefs.IsInvalid, want: []string{"no directory"}},
		{name: "bad pattern", dir: filepath.Join(tmp, "ctx"), dockerignore: "# c\nok\n\n[z-\n", class: errdefs.IsInvalid, want: []string{".dockerignore line 4", "[z-"}},
		{name: "bad range", dir: filepath.Join(tmp, "ctx"), dockerignore: "a\n[z-a]\n", class: errdefs.IsInvalid, want: []string{".dockerignore line 2"}},
		{name: "lone bang", dir: filepath.Join(tmp, "ctx"), dockerignore: "a\n  !  \n", class: errdefs.IsInvalid, want: []string{".dockerignore line 2", "'!'"}},
		{name: "named ignore file missing", dir: filepath.Join(tmp, "ctx"), ignore: ptr(filepath.Join(tmp, "Dockerfile.dockerignore")), class: errdefs.IsNotFound, want: []string{"Dockerfile.dockerignore"}},
		{name: "named ignore file is a dir", dir: filepath.Join(tmp, "ctx"), ignore: ptr(tmp), class: errdefs.IsInvalid, want: []string{tmp}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(tmp, "ctx", ".dockerignore"))
			if tc.dockerignore != "" {
				must(t, os.WriteFile(filepath.Join(tmp, "ctx", ".dockerignore"), []byte(tc.dockerignore), 0o644))
			}
			var err error
			if tc.ignore != nil {
				_, err = OpenWithIgnore(tc.dir, *tc.ignore)
			} else {
				_, err = Open(tc.dir)
			}
			if err == nil || !tc.class(err) {
				t.Fatalf("err = %v, want another class", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestOpenWithIgnore(t *testing.T) {
	dir := mk(t, t.TempDir(), "a.txt=a", "b.txt=b", ".dockerignore=a.txt\n")
	other := filepath.Join(t.TempDir(), "Dockerfile.dockerignore")
	must(t, os.WriteFile(other, []byte("b.txt\n"), 0o644))
	c, err := OpenWithIgnore(dir, other)
	must(t, err)
	if c.Ignored("a.txt") || !c.Ignored("b.txt") {
		t.Errorf("the named ignore file must replace .dockerignore")
	}
	c, err = OpenWithIgnore(dir, "")
	must(t, err)
	if c.Ignored("a.txt") || c.Ignored("b.txt") {
		t.Errorf(`"" must mean no ignore file`)
	}
	if c.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", c.Dir(), dir)
	}
	c = openCtx(t, dir)
	if !c.Ignored("a.txt") || c.Ignored("b.txt") {
		t.Errorf("Open must read .dockerignore")
	}
}

func TestIgnored(t *testing.T) {
	tests := []struct {
		name     string
		ignore   string
		ignored  []string
		included []string
	}{
		{name: "comments and blanks", ignore: "# a.txt\n\n   \nb.txt\n", ignored: []string{"b.txt"}, included: []string{"a.txt", "# a.txt"}},
		{name: "comment only at line start", ignore: " # c.txt\n", ignored: []string{"# c.txt"}},
		{name: "leading slash and dot", ignore: "/a.txt\n./b.txt\nc/../d.txt\n", ignored: []string{"a.txt", "b.txt", "d.txt", "/a.txt", "./b.txt"}, included: []string{"c.txt"}},
		{name: "dir excludes contents", ignore: "node_modules\n", ignored: []string{"node_modules", "node_modules/x/y.js"}, included: []string{"src/node_modules"}},
		{name: "trailing slash", ignore: "build/\n", ignored: []string{"build", "build/out"}},
		{name: "wildcards", ignore: "*.log\nsrc/*/tmp\n", ignored: []string{"a.log", "src/x/tmp", "src/x/tmp/f"}, included: []string{"d/a.log", "src/tmp", "src/x/y/tmp"}},
		{name: "double star", ignore: "**/*.o\n", ignored: []string{"a.o", "x/y/z.o"}, included: []string{"a.c"}},
		{name: "exception", ignore: "*.md\n!README.md\n", ignored: []string{"CHANGES.md"}, included: []string{"README.md"}},
		{name: "exception in excluded dir", ignore: "docs\n!docs/keep.md\n", ignored: []string{"docs", "docs/other.md"}, included: []string{"docs/keep.md"}},
		{name: "last match wins", ignore: "!a.txt\na.txt\n", ignored: []string{"a.txt"}},
		{name: "everything but", ignore: "*\n!src\n", ignored: []string{"a", "b/c"}, included: []string{"src", "src/main.go"}},
		{name: "bom and crlf", ignore: "\xEF\xBB\xBFa.txt\r\nb.txt\r\n", ignored: []string{"a.txt", "b.txt"}},
		{name: "spaces trimmed", ignore: "  a.txt  \n!  b.txt\n*.txt\n! c.txt\n", ignored: []string{"a.txt", "b.txt"}, included: []string{"c.txt"}},
		{name: "double bang re-includes a literal bang", ignore: "*\n!!x\n", ignored: []string{"x", "!y"}, included: []string{"!x"}},
		{name: "root never", ignore: "*\n", ignored: []string{"a"}, included: []string{"", ".", "/"}},
		{name: "dotdot clamps", ignore: "a\n", ignored: []string{"../a", "x/../a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := mk(t, t.TempDir(), ".dockerignore="+tc.ignore)
			c := openCtx(t, dir)
			for _, p := range tc.ignored {
				if !c.Ignored(p) {
					t.Errorf("Ignored(%q) = false, want true", p)
				}
			}
			for _, p := range tc.included {
				if c.Ignored(p) {
					t.Errorf("Ignored(%q) = true, want false", p)
				}
			}
		})
	}
}
