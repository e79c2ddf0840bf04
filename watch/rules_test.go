package watch

import (
	"strings"
	"testing"

	"berth.dev/berth/internal/errdefs"
)

type ignoreFunc func(string) bool

func (f ignoreFunc) Ignored(rel string) bool { return f(rel) }

func mustRule(t *testing.T, r *Rule) *Rule {
	t.Helper()
	if err := r.Compile(); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRuleMatchMustApplyEveryIgnore: a rule reacts to its path and what
// is under it, never to VCS or editor files, its ignore patterns or the
// build context's .dockerignore; include narrows files, not directories.
func TestRuleMatchMustApplyEveryIgnore(t *testing.T) {
	r := mustRule(t, &Rule{Service: "web", Action: Sync, Path: "/p/src", Target: "/app", Ignore: []string{"*.log", "cache/"},
		ContextDir: "/p", Context: ignoreFunc(func(rel string) bool { return strings.HasPrefix(rel, "src/secret") })})
	for p, want := range map[string]bool{
		"/p/src":                true,
		"/p/src/a.go":           true,
		"/p/src/sub/b.go":       true,
		"/p/srcx/a.go":          false, // a sibling with the same prefix
		"/p/other.go":           false,
		"/p/src/.git/index":     false,
		"/p/src/sub/.git":       false,
		"/p/src/.a.go.swp":      false,
		"/p/src/a.go~":          false,
		"/p/src/4913":           false,
		"/p/src/.#a.go":         false,
		"/p/src/#a.go#":         false,
		"/p/src/a___jb_tmp___":  false,
		"/p/src/x.log":          false,
		"/p/src/cache/x":        false,
		"/p/src/secret.txt":     false,
		"/p/src/secretive/file": false,
	} {
		if got := r.Match(p, false); got != want {
			t.Errorf("Match(%s) = %v, want %v", p, got, want)
		}
	}
	inc := mustRule(t, &Rule{Service: "web", Action: Restart, Path: "/p", Include: []string{"*.conf", "conf.d"}})
	for p, want := range map[string]bool{"/p/a.conf": true, "/p/a.txt": false, "/p/conf.d/x": true, "/p/sub/b.conf": false} {
		if got := inc.Match(p, false); got != want {
			t.Errorf("include: Match(%s) = %v, want %v", p, got, want)
		}
	}
	if !inc.Match("/p/sub", true) {
		t.Error("include must let directories through")
	}
}

func TestRuleContainerPathAndSkipDir(t *testing.T) {
	r := mustRule(t, &Rule{Service: "web", Action: Sync, Path: "/p/src", Target: "/app/", Ignore: []string{"node_modules"}})
	for host, want := range map[string]string{"/p/src": "/app", "/p/src/a/b.txt": "/app/a/b.txt"} {
		if got := r.ContainerPath(host); got != want {
			t.Errorf("ContainerPath(%s) = %s, want %s", host, got, want)
		}
	}
	file := mustRule(t, &Rule{Service: "web", Action: Sync, Path: "/p/package.json", Target: "/app/package.json"})
	if got := file.ContainerPath("/p/package.json"); got != "/app/package.json" {
		t.Errorf("a file rule: %s", got)
	}
	if !r.SkipDir("/p/src/node_modules") || !r.SkipDir("/p/src/.git") || r.SkipDir("/p/src/lib") {
		t.Error("SkipDir: node_modules and .git are skipped, lib is not")
	}
	ex := mustRule(t, &Rule{Service: "web", Action: Sync, Path: "/p", Target: "/app", Ignore: []string{"build", "!build/keep"}})
	if ex.SkipDir("/p/build") {
		t.Error("a directory an exception may bring back must stay watched")
	}
}

func TestRuleCompileMustNameTheField(t *testing.T) {
	for _, c := range []struct {
		r    *Rule
		want string
	}{
		{&Rule{Service: "web", Index: 2, Action: "copy", Path: "/p"}, "services.web.develop.watch[2].action"},
		{&Rule{Service: "web", Action: Sync, Path: "/p"}, "services.web.develop.watch[0].target"},
		{&Rule{Service: "web", Action: Sync, Path: "/p", Target: "app"}, "must be an absolute path"},
		{&Rule{Service: "web", Action: Rebuild, Path: "/p", Ignore: []string{"["}}, "services.web.develop.watch[0].ignore"},
	} {
		err := c.r.Compile()
		if err == nil || !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want an invalid error naming %q", c.r.Field(), c.r.Action, err, c.want)
		}
	}
}
