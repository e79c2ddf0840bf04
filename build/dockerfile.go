// Package build is berth's Dockerfile builder: the buildkit parser reads
// the file (parsing only), and berth executes it: each RUN in a berth
// container on the previous step's image, each COPY/ADD written into a
// step container's root, the changes committed as layers in the image
// store, every step's image cached under a key of parent image +
// instruction (args expanded) + content digest of the files it copies.
package build

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"berth.dev/berth/internal/errdefs"
)

// Dockerfile is a parsed Dockerfile.
type Dockerfile struct {
	// Name is how messages name the file ("Dockerfile", "app/Dockerfile.dev").
	Name     string
	Stages   []instructions.Stage
	MetaArgs []instructions.ArgCommand // ARGs before the first FROM
	Escape   rune
	// Notes are things the user should know that are not errors (a
	// "# syntax=" directive berth does not follow).
	Notes []string
}

// Error is a Dockerfile problem at a line.
type Error struct {
	File  string
	Line  int    // 0: the whole file
	Instr string // the instruction, "" when unknown
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Instr != "" {
		b.WriteString(": " + e.Instr)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Invalid reports whether the problem is bad input (errdefs.IsInvalid),
// not a step that ran and failed or an image that is missing.
func (e *Error) Invalid() bool { return errdefs.IsInvalid(e.Err) }

// errStep marks a step that ran and failed (not bad input).
var errStep = errors.New("step failed")

// Parse parses a Dockerfile. Syntax errors name the file, the line and the
// instruction.
func Parse(name string, data []byte) (*Dockerfile, error) {
	df := &Dockerfile{Name: name}
	if syntax, _, _, ok := parser.DetectSyntax(data); ok {
		df.Notes = append(df.Notes, fmt.Sprintf("%s: the syntax directive (%s) is ignored: berth builds with its own Dockerfile frontend", name, syntax))
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, locate(name, data, err)
	}
	if len(res.AST.Children) == 0 {
		return nil, &Error{File: name, Err: errdefs.Invalidf("the file has no instructions; it needs at least a FROM")}
	}
	df.Escape = res.EscapeToken
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		df.Notes = append(df.Notes, fmt.Sprintf("%s:%d: %s", name, line, w.Short))
	}
	stages, meta, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, locate(name, data, err)
	}
	if len(stages) == 0 {
		return nil, &Error{File: name, Err: errdefs.Invalidf("no FROM instruction: a Dockerfile starts with FROM (ARG may come before it)")}
	}
	df.Stages, df.MetaArgs = stages, meta
	return df, nil
}

// locate turns a parser error into an *Error with the line and the
// instruction found at it.
func locate(name string, data []byte, err error) error {
	line := 0
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
	}
	msg := err.Error()
	// The parser's messages repeat their location ("dockerfile parse error on line 3: ...").
	if i := strings.Index(msg, ": "); i > 0 && strings.HasPrefix(msg, "dockerfile parse error") {
		msg = msg[i+2:]
	}
	// buildkit picks among equally close suggestions at random; berth
	// names the first in alphabetical order, so a message is the same
	// on every run.
	if i := strings.Index(msg, " (did you mean "); i > 0 && strings.HasPrefix(msg, "unknown instruction: ") {
		word := strings.TrimPrefix(msg[:i], "unknown instruction: ")
		msg = msg[:i]
		if s := suggest(word); s != "" {
			msg += " (did you mean " + s + "?)"
		}
	}
	return &Error{File: name, Line: line, Instr: instructionAt(data, line), Err: errdefs.Invalidf("%s", msg)}
}

// instructionNames are the Dockerfile instructions, sorted.
var instructionNames = []string{"add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
	"label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir"}

// suggest is the instruction closest to word (edit distance at most 2).
func suggest(word string) string {
	word = strings.ToLower(word)
	best, bestD := "", 3
	for _, n := range instructionNames {
		if d := editDistance(word, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// instructionAt is the instruction word at a 1-based line, "" if none.
func instructionAt(data []byte, line int) string {
	if line <= 0 {
		return ""
	}
	lines := strings.Split(string(data), "\n")
	if line > len(lines) {
		return ""
	}
	f := strings.Fields(lines[line-1])
	if len(f) == 0 || strings.HasPrefix(f[0], "#") {
		return ""
	}
	return strings.ToUpper(f[0])
}

// lineOf is the first line of an instruction (0 if unknown).
func lineOf(c interface{ Location() []parser.Range }) int {
	if l := c.Location(); len(l) > 0 {
		return l[0].Start.Line
	}
	return 0
}
