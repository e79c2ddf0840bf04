package project

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiscovery(t *testing.T) {
	svc := func(img string) string { return "services:\n  web: {image: \"" + img + "\"}\n" }
	t.Run("parent directory", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"compose.yaml": svc("a"), "src/deep/x": ""})
		m := mustLoad(t, filepath.Join(dir, "src", "deep"), Options{})
		if m.Files[0] != filepath.Join(dir, "compose.yaml") || m.WorkingDir != dir {
			t.Fatalf("files=%v wd=%s", m.Files, m.WorkingDir)
		}
		if m.Name != strings.ToLower(filepath.Base(dir)) {
			t.Errorf("name = %q, want the directory's", m.Name)
		}
	})
	t.Run("preference and override", func(t *testing.T) {
		dir := writeTree(t, map[string]string{
			"docker-compose.yml":    svc("old"),
			"compose.yaml":          svc("new"),
			"compose.override.yaml": "services:\n  web: {environment: {X: \"1\"}}\n",
			"fig.yml":               "web: {image: fig}\n",
		})
		m := mustLoad(t, dir, Options{})
		if m.Project.Services["web"].Image != "new" || m.Project.Services["web"].Environment["X"] == nil {
			t.Fatalf("files=%v", m.Files)
		}
		if len(m.Warnings) != 2 {
			t.Errorf("warnings = %v, want two ignored files named", m.Warnings)
		}
	})
	t.Run("fig.yml alone", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"fig.yml": "web: {image: fig}\n", "compose.override.yaml": "services:\n  web: {image: no}\n"})
		m := mustLoad(t, dir, Options{})
		if !m.Fig || m.Project.Services["web"].Image != "fig" || len(m.Files) != 1 {
			t.Fatalf("fig=%v files=%v", m.Fig, m.Files)
		}
	})
	t.Run("COMPOSE_FILE and FIG_FILE", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"a.yml": svc("a"), "b.yml": "services:\n  web: {image: b}\n", "legacy.yml": "web: {image: legacy}\n"})
		m := mustLoad(t, dir, Options{Env: map[string]string{"COMPOSE_FILE": "a.yml" + string(os.PathListSeparator) + "b.yml"}})
		if m.Project.Services["web"].Image != "b" || len(m.Files) != 2 {
			t.Fatalf("files=%v", m.Files)
		}
		m = mustLoad(t, dir, Options{Env: map[string]string{"FIG_FILE": "legacy.yml"}})
		if m.Project.Services["web"].Image != "legacy" {
			t.Fatalf("files=%v", m.Files)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		dir := t.TempDir()
		m := mustLoad(t, dir, Options{Files: []string{"-"}, Stdin: strings.NewReader("web: {image: piped}\n"), ProjectName: "p"})
		if m.Project.Services["web"].Image != "piped" || m.Files[0] != StdinName || m.WorkingDir != dir {
			t.Fatalf("files=%v wd=%s", m.Files, m.WorkingDir)
		}
	})
	t.Run("project directory", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"proj/compose.yaml": svc("${IMG}"), "proj/.env": "IMG=fromdotenv\n"})
		m := mustLoad(t, t.TempDir(), Options{ProjectDir: filepath.Join(dir, "proj")})
		if m.Project.Services["web"].Image != "fromdotenv" || m.Name != "proj" {
			t.Fatalf("image=%q name=%q", m.Project.Services["web"].Image, m.Name)
		}
	})
}

func TestProjectNamePrecedence(t *testing.T) {
	dir := writeTree(t, map[string]string{"My_App/compose.yaml": "name: ${N:-From File}\nservices:\n  web: {image: b}\n"})
	wd := filepath.Join(dir, "My_App")
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{ProjectName: "flag", Env: map[string]string{"COMPOSE_PROJECT_NAME": "env"}}, "flag"},
		{Options{Env: map[string]string{"COMPOSE_PROJECT_NAME": "env", "FIG_PROJECT_NAME": "fig"}}, "env"},
		{Options{Env: map[string]string{"FIG_PROJECT_NAME": "fig"}}, "fig"},
		{Options{}, "fromfile"},
		{Options{Env: map[string]string{"N": "Interpolated-Name"}}, "interpolated-name"},
	} {
		m := mustLoad(t, wd, c.o)
		if m.Name != c.want {
			t.Errorf("%+v: name %q, want %q", c.o.Env, m.Name, c.want)
		}
	}
	dir = writeTree(t, map[string]string{"My_App/compose.yaml": "services:\n  web: {image: b}\n"})
	if m := mustLoad(t, filepath.Join(dir, "My_App"), Options{}); m.Name != "my_app" {
		t.Errorf("derived name %q, want my_app", m.Name)
	}
}
