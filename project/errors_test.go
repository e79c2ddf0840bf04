package project

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every load error is a *Error whose text starts FILE:LINE:COL where the
// position is known.
func TestLoadErrorsNamePosition(t *testing.T) {
	cases := []struct {
		name, yml string
		want      string // after "<dir>/compose.yaml"
	}{
		{"unclosed flow sequence", "services:\n  web:\n    image: busybox\n    ports: [\"80:80\"\n    command: x\n",
			`:5:5: did not find expected ',' or ']'`},
		{"bad indentation", "services:\n  web:\n    image: busybox\n   command: x\n", ":4:"},
		{"tab indentation", "services:\n\tweb:\n", ":2:1: found character that cannot start any token"},
		{"unknown key", "services:\n  web:\n    image: busybox\n    imagee: x\n",
			":4:5: services.web.imagee: unknown key 'imagee'"},
		{"wrong type", "services:\n  web:\n    image: busybox\n    ports: 80\n", ":4:5:"},
		{"depends_on unknown", "services:\n  web:\n    image: busybox\n    depends_on: [dbx]\n  db:\n    image: busybox\n",
			`:4:18: services.web.depends_on: service "web" depends on service "dbx", which is not defined; the services of this project are: db, web`},
		{"depends_on map unknown", "services:\n  web:\n    image: busybox\n    depends_on:\n      dbx: {condition: service_healthy}\n",
			`:5:7: services.web.depends_on: service "web" depends on service "dbx"`},
		{"links unknown", "services:\n  web:\n    image: busybox\n    links: ['db:database']\n", `:4:13: services.web.links: service "web" links to service "db"`},
		{"volumes_from unknown", "services:\n  web:\n    image: busybox\n    volumes_from: [data]\n", `service "web" takes volumes from service "data"`},
		{"network_mode unknown", "services:\n  web:\n    image: busybox\n    network_mode: service:vpn\n", `:4:19: services.web.network_mode: service "web" shares the network of service "vpn"`},
		{"undefined volume", "services:\n  web:\n    image: busybox\n    volumes: ['data:/data']\n", `refers to undefined volume data`},
		{"cycle", "services:\n  a: {image: b, depends_on: [b]}\n  b: {image: b, depends_on: [a]}\n", ":2:17: services.a.depends_on: dependency cycle detected: a -> b -> a"},
		{"no image", "services:\n  web:\n    command: x\n", `:2:3: service "web" has neither an image nor a build context`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTree(t, map[string]string{"compose.yaml": c.yml})
			_, err := loadIn(t, dir, Options{ProjectName: "x"})
			if err == nil {
				t.Fatal("load succeeded")
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.File == "" {
				t.Fatalf("error %T %v is not a *project.Error with a file", err, err)
			}
			if !pe.Invalid() {
				t.Error("Invalid() = false for bad input")
			}
			want := filepath.Join(dir, "compose.yaml") + c.want
			if !strings.HasPrefix(err.Error(), filepath.Join(dir, "compose.yaml")) || !strings.Contains(err.Error(), strings.TrimPrefix(want, filepath.Join(dir, "compose.yaml"))) {
				t.Fatalf("error:\n  %v\nwant it to contain:\n  %s", err, want)
			}
		})
	}
}

func TestFigErrorsPointAtTheFigFile(t *testing.T) {
	dir := writeTree(t, map[string]string{"fig.yml": "web:\n  image: busybox\n  links:\n    - db:database\n"})
	_, err := loadIn(t, dir, Options{ProjectName: "x"})
	want := filepath.Join(dir, "fig.yml") + `:4:7: services.web.links: service "web" links to service "db"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v\nwant %s", err, want)
	}
	dir = writeTree(t, map[string]string{"fig.yml": "web:\n  image: busybox\n  net: container\n"})
	if _, err := loadIn(t, dir, Options{}); err == nil || !strings.Contains(err.Error(), "fig.yml:3:3: web.net") {
		t.Fatalf("error = %v", err)
	}
}

func TestMissingFileIsNotFound(t *testing.T) {
	dir := t.TempDir()
	_, err := loadIn(t, dir, Options{Files: []string{"nope.yaml"}})
	pe, ok := AsError(err)
	if !ok || !pe.NotFound() || pe.File != filepath.Join(dir, "nope.yaml") {
		t.Fatalf("err = %#v", err)
	}
	_, err = loadIn(t, dir, Options{})
	if pe, ok := AsError(err); !ok || !pe.NotFound() || !strings.Contains(err.Error(), "no project file found") {
		t.Fatalf("err = %v", err)
	}
}

func TestNamesRejected(t *testing.T) {
	ok := writeTree(t, map[string]string{"compose.yaml": "services:\n  web: {image: busybox}\n"})
	for _, name := range []string{"../etc", "..", ".", "a/b", "Upper", "", "-lead", "_lead", "x\x00y", "a b"} {
		if name == "" {
			continue // empty -p means "not given"
		}
		if _, err := loadIn(t, ok, Options{ProjectName: name}); err == nil || !strings.Contains(err.Error(), "project name") {
			t.Errorf("-p %q: err = %v", name, err)
		}
	}
	if _, err := loadIn(t, ok, Options{Env: map[string]string{"COMPOSE_PROJECT_NAME": "../x"}}); err == nil {
		t.Error("COMPOSE_PROJECT_NAME=../x accepted")
	}
	for _, c := range []struct{ yml, want string }{
		{"services:\n  ..: {image: b}\n", `:2:3: services...: service name ".." is not allowed`},
		{"services:\n  .: {image: b}\n", `service name "." is not allowed`},
		{"services:\n  'a/b': {image: b}\n", `invalid service name "a/b"`},
		{"services:\n  web: {image: b, volumes: ['d:/d']}\nvolumes:\n  d: {name: '../escape'}\n", `:4:7: volumes.d.name: invalid volume name "../escape"`},
		{"services:\n  web: {image: b}\nnetworks:\n  '..': {}\n", `network name ".." is not allowed`},
		{"services:\n  web: {image: b, container_name: '../x'}\n", `invalid container name "../x"`},
		{"services:\n  web: {image: b, container_name: '${CN}'}\n", `:2:19: services.web.container_name 'a/b' does not match pattern`},
		{"services:\n  web: {image: b, volumes: ['d:/d']}\nvolumes:\n  d: {name: '${VN}'}\n", `volume name ".." is not allowed`},
	} {
		dir := writeTree(t, map[string]string{"compose.yaml": c.yml})
		_, err := loadIn(t, dir, Options{ProjectName: "x", Env: map[string]string{"CN": "a/b", "VN": ".."}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.yml, err, c.want)
		}
	}
	// A directory whose name normalises to nothing needs an explicit name.
	base := t.TempDir()
	dir := filepath.Join(base, "___")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("services:\n  web: {image: b}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadIn(t, dir, Options{}); err == nil || !strings.Contains(err.Error(), "cannot derive a project name") {
		t.Errorf("dir ___: err = %v", err)
	}
	if m, err := loadIn(t, dir, Options{ProjectName: "ok"}); err != nil || m.Name != "ok" {
		t.Errorf("dir ___ with -p ok: %v", err)
	}
}

func TestUnknownCapability(t *testing.T) {
	dir := writeTree(t, map[string]string{"compose.yaml": "services:\n  web:\n    image: b\n    cap_add: [NET_ADMIN, CAP_SYS_TIME, NOT_A_CAP]\n"})
	_, err := loadIn(t, dir, Options{ProjectName: "x"})
	if err == nil || !strings.Contains(err.Error(), `:4:40: services.web.cap_add: unknown capability "NOT_A_CAP"`) {
		t.Fatalf("err = %v", err)
	}
	dir = writeTree(t, map[string]string{"compose.yaml": "services:\n  web:\n    image: b\n    cap_drop: [ALL]\n    cap_add: [net_admin, CAP_SYS_TIME]\n"})
	if _, err := loadIn(t, dir, Options{ProjectName: "x"}); err != nil {
		t.Fatal(err)
	}
}

// The YAML library's positions differ by error kind; each is corrected to
// 1-based line and column.
func TestYAMLErrorPositions(t *testing.T) {
	for _, c := range []struct {
		in        string
		line, col int
	}{
		{"a: 1\n  b: 2\n", 2, 4},        // scanner error
		{"a:\n  b: [1\n  c: 2\n", 3, 4}, // parser error
		{"a: *nope\n", 1, 4},            // unknown anchor
		{"a: \"x\n", 2, 1},              // unterminated quote
		{"services:\n\tweb:\n", 2, 1},   // tab
		{"a: 1\nb\n", 3, 1},             // missing ':' at end of stream
		{"- a\nb: 1\n", 2, 1},           // mixed sequence and mapping
	} {
		_, err := parseDoc("f.yaml", []byte(c.in))
		pe, ok := AsError(err)
		if !ok {
			t.Fatalf("%q: err = %v", c.in, err)
		}
		if pe.Line != c.line || pe.Col != c.col {
			t.Errorf("%q: at %d:%d, want %d:%d (%v)", c.in, pe.Line, pe.Col, c.line, c.col, err)
		}
	}
}
