package project

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

var fuzzSeeds = []string{
	"web:\n  image: busybox\n  links: [db:database]\n  net: host\ndb:\n  image: busybox\n",
	"web:\n  image: b\n  volumes_from: [data, 'c:ro']\ndata:\n  image: b\n  volumes: [/data]\n",
	"web:\n  build: .\n  dockerfile: D\n  log_driver: syslog\n  log_opt: {a: b}\n",
	"version: '1'\nweb: {image: b}\n",
	"version: '3'\nservices:\n  web: {image: b}\n",
	"services:\n  web:\n    image: b\n    depends_on: [db]\n  db: {image: b}\n",
	"x-a: &a {image: b}\nweb: *a\n",
	"web: busybox\n",
	"web:\n  net: container:x\n  image: b\n",
	"volumes: {data: {}}\n",
	"{}",
	"- a\n- b\n",
	"services:\n  ..: {image: b}\n",
	"a: &x [*x]\n",
}

func FuzzFigPrepass(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile(filepath.Join("..", "examples", "fig-legacy", "fig.yml")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out []byte
		var converted bool
		var err error
		testutil.Within(t, 10*time.Second, func() { out, converted, err = FigPrepass("fig.yml", in) })
		if err != nil {
			if _, ok := AsError(err); !ok {
				t.Fatalf("error %T is not a *project.Error: %v", err, err)
			}
			return
		}
		if !converted {
			if !bytes.Equal(out, in) {
				t.Fatal("a file that is not fig v1 was changed")
			}
			return
		}
		d, err := parseDoc("out.yml", out)
		if err != nil {
			t.Fatalf("converted output does not parse: %v\n%s", err, out)
		}
		if k, _ := mapGet(d.root, "services"); k == nil || isFigDoc(d.root) {
			t.Fatalf("converted output is not a compose-spec file:\n%s", out)
		}
		var again []byte
		var conv2 bool
		testutil.Within(t, 10*time.Second, func() { again, conv2, err = FigPrepass("fig.yml", out) })
		if err != nil || conv2 || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent (converted=%v, err=%v)", conv2, err)
		}
	})
}

func FuzzLoad(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), "")
	}
	f.Add([]byte("services:\n  web: {image: \"${A:-x}\"}\n"), "A=1\n")
	f.Add([]byte("services:\n  web: {image: b, ports: ['80:80:80']}\n"), "")
	f.Fuzz(func(t *testing.T, content []byte, dotenv string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), content, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(dotenv), 0o644); err != nil {
			t.Fatal(err)
		}
		var err error
		testutil.Within(t, 10*time.Second, func() {
			_, err = Load(context.Background(), Options{WorkDir: dir, ProjectName: "fuzz", Env: map[string]string{}})
		})
		if err == nil {
			return
		}
		var pe *Error
		if !errors.As(err, &pe) || pe.File == "" {
			t.Fatalf("error is not a *project.Error with File: %T %v", err, err)
		}
	})
}

func FuzzNames(f *testing.F) {
	for _, s := range []string{"web", "..", ".", "a/b", "My App", "___", "-x", "x\x00", "über", "db-1.2_3", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bad := func(n string) bool {
			return n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00")
		}
		if ValidateProjectName(s) == nil && (bad(s) || strings.ToLower(s) != s) {
			t.Fatalf("project name %q accepted", s)
		}
		for _, kind := range []string{"service", "volume", "network"} {
			if ValidateResourceName(kind, s) == nil && bad(s) {
				t.Fatalf("%s name %q accepted", kind, s)
			}
		}
		if ValidateContainerName(s) == nil && bad(strings.TrimPrefix(s, "/")) {
			t.Fatalf("container name %q accepted", s)
		}
		n, err := NormalizeProjectName(s)
		if err == nil {
			if verr := ValidateProjectName(n); verr != nil {
				t.Fatalf("normalised %q to invalid %q: %v", s, n, verr)
			}
			if again, _ := NormalizeProjectName(n); again != n {
				t.Fatalf("normalisation not idempotent: %q → %q → %q", s, n, again)
			}
		}
	})
}
