// Package watch is the pure half of berth's file watch (compose
// develop.watch): which rule a changed host path belongs to, what is
// ignored, how fsnotify events are debounced into batches, and the plan a
// batch turns into (reload the project, rebuild, sync, restart, exec).
// Nothing here touches a container: the CLI carries the plan out.
package watch

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"

	"berth.dev/berth/internal/errdefs"
)

// Action is what a rule does when a path it watches changes.
type Action string

// The actions of compose's develop.watch.
const (
	Sync        Action = "sync"
	Rebuild     Action = "rebuild"
	Restart     Action = "restart"
	SyncRestart Action = "sync+restart"
	SyncExec    Action = "sync+exec"
)

// Syncs reports whether the action copies files into the containers.
func (a Action) Syncs() bool { return a == Sync || a == SyncRestart || a == SyncExec }

// Ignorer is a build context's .dockerignore: Ignored takes a path
// relative to the context directory (slash separated).
type Ignorer interface {
	Ignored(rel string) bool
}

// Rule is one develop.watch entry of a service.
type Rule struct {
	Service     string
	Index       int    // position in the service's develop.watch list
	Action      Action // sync, rebuild, restart, sync+restart, sync+exec
	Path        string // absolute host path: a directory or a file
	Target      string // absolute container path (sync actions)
	Ignore      []string
	Include     []string
	InitialSync bool

	// ContextDir and Context apply a build context's .dockerignore to the
	// paths inside ContextDir (services with a build section).
	ContextDir string
	Context    Ignorer
	// ContextSkipsDirs says the .dockerignore has no '!' exception, so a
	// directory it ignores can be left unwatched.
	ContextSkipsDirs bool

	mu      sync.Mutex
	ignore  *patternmatcher.PatternMatcher
	include *patternmatcher.PatternMatcher
}

// Field names the rule in messages: services.web.develop.watch[1].
func (r *Rule) Field() string {
	return fmt.Sprintf("services.%s.develop.watch[%d]", r.Service, r.Index)
}

// Compile checks the rule and prepares its patterns. Errors are
// errdefs.ErrInvalid naming the service and the field.
func (r *Rule) Compile() error {
	switch r.Action {
	case Sync, Rebuild, Restart, SyncRestart, SyncExec:
	default:
		return errdefs.Invalidf("%s.action: %q is not a watch action; use sync, rebuild, restart, sync+restart or sync+exec", r.Field(), r.Action)
	}
	if r.Path == "" || !filepath.IsAbs(r.Path) {
		return errdefs.Invalidf("%s.path: %q must be a path (relative to the project directory); set path:", r.Field(), r.Path)
	}
	r.Path = filepath.Clean(r.Path)
	if r.Action.Syncs() {
		if r.Target == "" {
			return errdefs.Invalidf("%s.target: action %s needs the path in the container to sync to; set target:", r.Field(), r.Action)
		}
		if !path.IsAbs(r.Target) {
			return errdefs.Invalidf("%s.target: %q must be an absolute path in the container, e.g. /app", r.Field(), r.Target)
		}
		r.Target = path.Clean(r.Target)
	}
	var err error
	if r.ignore, err = compile(r.Ignore); err != nil {
		return errdefs.Invalidf("%s.ignore: %v; write .dockerignore-style patterns relative to path", r.Field(), err)
	}
	if r.include, err = compile(r.Include); err != nil {
		return errdefs.Invalidf("%s.include: %v; write .dockerignore-style patterns relative to path", r.Field(), err)
	}
	return nil
}

func compile(patterns []string) (*patternmatcher.PatternMatcher, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, err
	}
	if _, err := pm.MatchesOrParentMatches("x"); err != nil { // compiles every pattern now
		return nil, err
	}
	return pm, nil
}

// Rel is p relative to the rule's path, slash separated ("." for the path
// itself); ok is false when p is not the path or under it.
func (r *Rule) Rel(p string) (string, bool) {
	if p == r.Path {
		return ".", true
	}
	prefix := r.Path
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	rel, ok := strings.CutPrefix(p, prefix)
	if !ok || rel == "" {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// ContainerPath is where the host path p (under the rule's path) goes in
// the container.
func (r *Rule) ContainerPath(p string) string {
	rel, ok := r.Rel(p)
	if !ok || rel == "." {
		return r.Target
	}
	return path.Join(r.Target, rel)
}

// Match reports whether a change of the host path p concerns the rule:
// p is the rule's path or under it, and neither the default ignores (VCS
// and editor files), the rule's ignore, nor the build context's
// .dockerignore exclude it; with include, p must match one of those
// patterns. dir says p is a directory (include patterns select files, so
// a directory passes them).
func (r *Rule) Match(p string, dir bool) bool {
	rel, ok := r.Rel(p)
	if !ok {
		return false
	}
	if DefaultIgnored(p) || r.contextIgnored(p) {
		return false
	}
	if rel == "." {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ignore != nil {
		if m, _ := r.ignore.MatchesOrParentMatches(rel); m {
			return false
		}
	}
	if r.include != nil && !dir {
		if m, _ := r.include.MatchesOrParentMatches(rel); !m {
			return false
		}
	}
	return true
}

// SkipDir reports whether the directory p (under the rule's path) can be
// left unwatched: nothing under it can match.
func (r *Rule) SkipDir(p string) bool {
	rel, ok := r.Rel(p)
	if !ok {
		return true
	}
	if DefaultIgnored(p) {
		return true
	}
	if r.ContextSkipsDirs && r.contextIgnored(p) {
		return true
	}
	if rel == "." || r.ignore == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ignore.Exclusions() {
		return false // a '!' pattern may bring something under it back
	}
	m, _ := r.ignore.MatchesOrParentMatches(rel)
	return m
}

func (r *Rule) contextIgnored(p string) bool {
	if r.Context == nil || r.ContextDir == "" {
		return false
	}
	rel, err := filepath.Rel(r.ContextDir, p)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return false
	}
	return r.Context.Ignored(filepath.ToSlash(rel))
}

// DefaultIgnored reports the paths no watch ever reacts to: anything in a
// .git directory and editors' swap, backup and temp files (vim's *.swp,
// *.swx, *~ and its 4913 probe, emacs' .#* and #*#, JetBrains'
// *___jb_tmp___ and *___jb_old___).
func DefaultIgnored(p string) bool {
	for _, el := range strings.Split(filepath.ToSlash(p), "/") {
		if el == ".git" {
			return true
		}
	}
	base := filepath.Base(p)
	switch {
	case base == "4913",
		strings.HasSuffix(base, ".swp"), strings.HasSuffix(base, ".swx"), strings.HasSuffix(base, ".swo"),
		strings.HasSuffix(base, "~"),
		strings.HasPrefix(base, ".#"),
		len(base) > 1 && strings.HasPrefix(base, "#") && strings.HasSuffix(base, "#"),
		strings.HasSuffix(base, "___jb_tmp___"), strings.HasSuffix(base, "___jb_old___"):
		return true
	}
	return false
}
