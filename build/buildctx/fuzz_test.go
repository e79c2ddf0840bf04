package buildctx

import (
	"strings"
	"testing"

	"berth.dev/berth/internal/errdefs"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// FuzzDockerignore parses arbitrary .dockerignore content and matches an
// arbitrary path. Besides never panicking it checks that the per-pattern
// matching agrees with patternmatcher's own combined matcher over Docker's
// ignorefile reader, that carrying parent results down a walk agrees with
// matching from scratch, and that the walk's pruning of excluded
// directories never hides a re-included path.
func FuzzDockerignore(f *testing.F) {
	f.Add("*.log\n!keep.log\n", "keep.log")
	f.Add("docs\n!docs/README.md\n", "docs/README.md")
	f.Add("# comment\n/abs\n./rel\n**/tmp\n", "a/b/tmp/c")
	f.Add("\xEF\xBB\xBF!!x\n*\n", "!x")
	f.Add("[a-\n", "a")
	f.Add("a/**/b\n!a/x/b/c\n", "a/x/b/c")
	f.Add("*\n!src\nsrc/*.o\n!src/keep.o\n", "src/keep.o")
	f.Add("\\\n", `\`)
	f.Fuzz(func(t *testing.T, content, p string) {
		ig, err := parseIgnore(".dockerignore", strings.NewReader(content))
		if err != nil {
			if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), ".dockerignore line ") {
				t.Fatalf("parse error %q is not an invalid-input error naming the line", err)
			}
			return
		}
		rel := cleanRel(p)
		got, _ := ig.match(rel, nil)

		if pats, err := ignorefile.ReadAll(strings.NewReader(content)); err == nil && rel != "" {
			pm, err := patternmatcher.New(pats)
			if err != nil {
				t.Fatalf("patternmatcher rejects %q, which parseIgnore accepted: %v", pats, err)
			}
			want, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				t.Fatalf("patternmatcher fails on %q with %q, which parseIgnore accepted: %v", rel, pats, err)
			}
			if got != want {
				t.Fatalf("match(%q) = %v, patternmatcher says %v (patterns %q)", rel, got, want, pats)
			}
		}

		// the walk: each element matched with its parent's state
		var ms matchState
		elems := splitRel(rel)
		walked := false
		for i := range elems {
			d := strings.Join(elems[:i+1], "/")
			var ex bool
			ex, ms = ig.match(d, ms)
			walked = ex
			if i < len(elems)-1 && ex {
				if fresh, _ := ig.match(rel, nil); !fresh && !ig.exceptionBelow(d) {
					t.Fatalf("%q is re-included but the walk would prune its excluded parent %q", rel, d)
				}
			}
		}
		if rel != "" && walked != got {
			t.Fatalf("walk says %v for %q, fresh match %v", walked, rel, got)
		}
	})
}
