package buildctx

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"berth.dev/berth/internal/errdefs"
	"github.com/moby/patternmatcher"
)

// ignorePattern is one line of a .dockerignore.
type ignorePattern struct {
	line      int
	exclusion bool     // a '!' line: re-includes what it matches
	dirs      []string // the cleaned pattern's path elements
	// m holds this pattern alone, as an inclusion pattern. Matching each
	// pattern separately gives the same answer as patternmatcher's combined
	// matcher (see ignorer.match) and lets the walk carry each pattern's
	// parent result down the tree.
	m *patternmatcher.PatternMatcher
}

// ignorer applies a parsed .dockerignore. It is read-only after
// parseIgnore (every pattern is compiled there), so safe for concurrent use.
type ignorer struct {
	patterns   []ignorePattern
	exceptions bool
}

// matchState is the per-pattern result for a directory, handed to its
// children so that parent matches are not recomputed.
type matchState []patternmatcher.MatchInfo

// parseIgnore reads a .dockerignore the way Docker's ignorefile reader does:
// an UTF-8 BOM is dropped, lines starting with '#' are comments, the rest is
// trimmed, blank lines are skipped, a leading '!' marks an exception, and
// the pattern is filepath.Clean-ed with a leading '/' dropped. name is used
// in errors.
func parseIgnore(name string, r io.Reader) (*ignorer, error) {
	ig := &ignorer{}
	br := bufio.NewReader(r)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, errdefs.Invalidf("cannot read %s: %w; make it readable or remove it", name, err)
		}
		if line == "" && err == io.EOF {
			break
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if lineNo == 1 {
			line = string(bytes.TrimPrefix([]byte(line), []byte("\xEF\xBB\xBF")))
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.TrimSpace(line)
		if p == "" {
			continue
		}
		excl := p[0] == '!'
		if excl {
			p = strings.TrimSpace(p[1:])
			if p == "" {
				return nil, errdefs.Invalidf("%s line %d: %q: a '!' must be followed by the pattern to re-include; complete or remove the line", name, lineNo, line)
			}
		}
		p = filepath.ToSlash(filepath.Clean(p))
		if len(p) > 1 && p[0] == '/' {
			p = p[1:]
		}
		if !utf8.ValidString(p) || strings.ContainsRune(p, 0) {
			// patternmatcher would print a complaint to stderr and match
			// U+FFFD instead of the bytes: refuse it here.
			return nil, errdefs.Invalidf("%s line %d: pattern %q is not valid UTF-8 text; write the pattern in UTF-8 or remove the line", name, lineNo, line)
		}
		full := p
		if excl {
			full = "!" + p
		}
		// Check the pattern as patternmatcher.New sees Docker's reader's
		// output: it refuses some that compilePattern alone accepts ("!/").
		if _, err := patternmatcher.New([]string{full}); err != nil {
			return nil, errdefs.Invalidf("%s line %d: invalid pattern %q: %v; fix the pattern (Go filepath.Match syntax plus **) or remove the line", name, lineNo, line, err)
		}
		lit := p
		if lit[0] == '!' {
			// "!!x" excludes the literal name "!x": escape the '!' so
			// that patternmatcher does not take it as an exception again.
			lit = `\` + lit
		}
		m, err := compilePattern(lit)
		if err != nil {
			return nil, errdefs.Invalidf("%s line %d: invalid pattern %q: %v; fix the pattern (Go filepath.Match syntax plus **) or remove the line", name, lineNo, line, err)
		}
		ig.patterns = append(ig.patterns, ignorePattern{line: lineNo, exclusion: excl, dirs: strings.Split(lit, "/"), m: m})
		ig.exceptions = ig.exceptions || excl
	}
	return ig, nil
}

// compilePattern builds a single-pattern matcher and forces patternmatcher's
// lazy regexp compilation, so that a bad pattern fails here and matching
// later never writes to the matcher.
func compilePattern(p string) (*patternmatcher.PatternMatcher, error) {
	m, err := patternmatcher.New([]string{p})
	if err != nil {
		return nil, err
	}
	if len(m.Patterns()) != 1 {
		return nil, errors.New("pattern is empty")
	}
	if _, _, err := m.MatchesUsingParentResults("x", patternmatcher.MatchInfo{}); err != nil {
		return nil, err
	}
	return m, nil
}

// match reports whether the clean, context-relative slash path rel is
// excluded. parent is the state of rel's parent directory (nil: unknown,
// parents are checked from scratch); the returned state is rel's, for its
// children. The combination is patternmatcher's: the last pattern that
// matches wins, a pattern matches a path or any of its parents.
func (ig *ignorer) match(rel string, parent matchState) (bool, matchState) {
	if ig == nil || len(ig.patterns) == 0 || rel == "" {
		return false, nil
	}
	st := make(matchState, len(ig.patterns))
	matched := false
	for i, p := range ig.patterns {
		var pi patternmatcher.MatchInfo
		if parent != nil {
			pi = parent[i]
		}
		m, info, err := p.m.MatchesUsingParentResults(rel, pi)
		if err != nil {
			// Cannot happen: every pattern was compiled by parseIgnore.
			m = false
		}
		st[i] = info
		if m && p.exclusion == matched {
			matched = !p.exclusion
		}
	}
	return matched, st
}

// exceptionBelow reports whether a '!' pattern might re-include something
// strictly inside the excluded directory rel, so that the walk must look
// into it. It errs on the side of yes.
func (ig *ignorer) exceptionBelow(rel string) bool {
	if ig == nil || !ig.exceptions {
		return false
	}
	dir := strings.Split(rel, "/")
	for _, p := range ig.patterns {
		if p.exclusion && couldMatchBelow(p.dirs, dir) {
			return true
		}
	}
	return false
}

// couldMatchBelow reports whether a pattern with elements pat might match a
// path strictly below the directory with elements dir. A pattern that
// matches dir or one of its parents already decided dir's own result, and
// a match on a parent carries over to everything below it, so only longer
// patterns (or ones with "**", or a character class whose filepath.Match
// and regexp readings may differ) can change a descendant's result.
func couldMatchBelow(pat, dir []string) bool {
	for i, d := range dir {
		if i >= len(pat) {
			return false
		}
		if strings.Contains(pat[i], "**") || strings.ContainsRune(pat[i], '[') {
			return true
		}
		ok, err := path.Match(pat[i], d)
		if err != nil {
			return true
		}
		if !ok {
			return false
		}
	}
	return len(pat) > len(dir)
}
