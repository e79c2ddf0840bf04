package watch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testSet(t *testing.T, dir string) *Set {
	t.Helper()
	for _, d := range []string{"src", "api", "conf"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	s, err := NewSet([]*Rule{
		{Service: "web", Index: 0, Action: Sync, Path: filepath.Join(dir, "src"), Target: "/app", Ignore: []string{"*.tmp"}},
		{Service: "web", Index: 1, Action: SyncExec, Path: filepath.Join(dir, "src"), Target: "/app"},
		{Service: "web", Index: 2, Action: Restart, Path: filepath.Join(dir, "conf")},
		{Service: "api", Index: 0, Action: Sync, Path: filepath.Join(dir, "api"), Target: "/srv"},
		{Service: "api", Index: 1, Action: Rebuild, Path: filepath.Join(dir, "api", "Dockerfile")},
		{Service: "worker", Index: 0, Action: SyncRestart, Path: filepath.Join(dir, "src"), Target: "/w", InitialSync: true},
	}, []string{filepath.Join(dir, "compose.yaml"), filepath.Join(dir, ".env")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func summary(p *Plan) string {
	var b strings.Builder
	if len(p.Reload) > 0 {
		b.WriteString("reload;")
	}
	for _, sp := range p.Services {
		b.WriteString(sp.Service + ":")
		if sp.Rebuild {
			b.WriteString(" rebuild")
		}
		for _, s := range sp.Syncs {
			b.WriteString(" sync " + s.ContainerPath)
		}
		if sp.Restart {
			b.WriteString(" restart")
		}
		for _, r := range sp.Execs {
			b.WriteString(" exec#" + string(rune('0'+r.Index)))
		}
		b.WriteString(";")
	}
	return b.String()
}

// TestPlanMustFollowTheActions: each rule's action for the services it
// belongs to; a rebuild replaces that service's syncs; ignored paths plan
// nothing; a project file reloads.
func TestPlanMustFollowTheActions(t *testing.T) {
	dir := t.TempDir()
	s := testSet(t, dir)
	p := func(paths ...string) string {
		var b Batch
		for _, x := range paths {
			b.Changes = append(b.Changes, Change{filepath.Join(dir, x), OpWrite})
		}
		return summary(s.Plan(b))
	}
	for _, c := range []struct {
		paths []string
		want  string
	}{
		{[]string{"src/a.go"}, "web: sync /app/a.go sync /app/a.go exec#1;worker: sync /w/a.go restart;"},
		{[]string{"src/a.tmp"}, "web: sync /app/a.tmp exec#1;worker: sync /w/a.tmp restart;"}, // rule 0 ignores it, rule 1 does not
		{[]string{"src/.git/HEAD", "src/.x.swp", "other/file"}, ""},
		{[]string{"conf/nginx.conf"}, "web: restart;"},
		{[]string{"api/main.go"}, "api: sync /srv/main.go;"},
		{[]string{"api/main.go", "api/Dockerfile"}, "api: rebuild;"},
		{[]string{"compose.yaml"}, "reload;"},
		{[]string{".env", "conf/x"}, "reload;web: restart;"},
	} {
		if got := p(c.paths...); got != c.want {
			t.Errorf("%v:\n got %q\nwant %q", c.paths, got, c.want)
		}
	}
	if got := summary(s.Plan(Batch{Overflow: true})); got != "reload;api: rebuild;web: sync /app sync /app restart exec#1;worker: sync /w restart;" {
		t.Errorf("overflow: %q", got)
	}
	init := s.InitialSync()
	if got := summary(init); got != "worker: sync /w;" || !init.Services[0].Syncs[0].Tree {
		t.Errorf("initial sync: %q", got)
	}
}

func TestSetRootsAndSkip(t *testing.T) {
	dir := t.TempDir()
	s := testSet(t, dir)
	os.WriteFile(filepath.Join(dir, "api", "Dockerfile"), []byte("FROM x\n"), 0o644)
	trees, files := s.Roots()
	if len(trees) != 3 || len(files) != 3 {
		t.Errorf("roots: %v %v", trees, files)
	}
	if s.SkipDir(filepath.Join(dir, "src", "lib")) || !s.SkipDir(filepath.Join(dir, "src", ".git")) || !s.SkipDir(filepath.Join(dir, "unrelated")) {
		t.Error("SkipDir")
	}
}
