package project

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/template"
	yaml "go.yaml.in/yaml/v4"
)

// Source says where an interpolation variable's value came from.
type Source int

// Precedence, highest first, as compose documents it: the shell, then the
// --env-file files (the last one wins), then the project's .env (read only
// when no --env-file is given), then a default written in the file.
const (
	SourceUnset   Source = iota // no value anywhere
	SourceShell                 // the environment berth runs in
	SourceEnvFile               // a file given with --env-file
	SourceDotEnv                // the project directory's .env
	SourceDefault               // ${X:-default} / ${X-default} in the project file
)

func (s Source) String() string {
	switch s {
	case SourceShell:
		return "shell"
	case SourceEnvFile:
		return "env-file"
	case SourceDotEnv:
		return ".env"
	case SourceDefault:
		return "default"
	}
	return "unset"
}

// Variable is one variable used by interpolation in the project files, with
// the value it resolves to and where that value came from.
type Variable struct {
	Name     string   `json:"name"`
	Value    string   `json:"value"`
	Set      bool     `json:"set"` // false: interpolates to "" (or fails when required)
	Source   Source   `json:"-"`
	From     string   `json:"source"`         // Source as text
	File     string   `json:"file,omitempty"` // env file defining it, or project file with the default
	Line     int      `json:"line,omitempty"`
	Default  string   `json:"default,omitempty"` // the default expression as written
	Required bool     `json:"required,omitempty"`
	Uses     []Pos    `json:"-"`
	UsedAt   []string `json:"used_at"`
}

// origin is where an env-file variable was defined.
type origin struct {
	src  Source
	file string
	line int
}

// environment is the interpolation environment: the shell overlaid on the
// env files, with the origin of every value that came from a file.
type environment struct {
	values map[string]string
	shell  map[string]string
	origin map[string]origin
	files  []string // env files read, in order
}

// loadEnvironment builds the interpolation environment as compose does.
// explicit env files replace the default .env; a missing explicit file is an
// error, a missing default one is not.
func loadEnvironment(shell map[string]string, envFiles []string, dotEnv string) (*environment, error) {
	env := &environment{values: map[string]string{}, shell: shell, origin: map[string]origin{}}
	src := SourceEnvFile
	files := envFiles
	if len(files) == 0 && dotEnv != "" {
		if fi, err := os.Stat(dotEnv); err == nil && !fi.IsDir() && !envFileDisabled(shell) {
			files = []string{dotEnv}
			src = SourceDotEnv
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			e := &Error{File: f, Msg: "cannot read env file: " + err.Error(), Err: err,
				Hint: "check the --env-file path (relative paths are taken from the current directory)"}
			e.notFound = os.IsNotExist(err)
			return nil, e
		}
		for k, line := range envFileLines(b) {
			env.origin[k] = origin{src: src, file: f, line: line}
		}
	}
	env.files = files
	fromFiles, err := dotenv.GetEnvFromFile(shell, files)
	if err != nil {
		return nil, &Error{Msg: err.Error(), Err: err, Hint: "fix the env file's syntax (KEY=VALUE per line)"}
	}
	for k, v := range fromFiles {
		env.values[k] = v
		if _, ok := env.origin[k]; !ok {
			env.origin[k] = origin{src: src}
		}
	}
	for k, v := range shell {
		env.values[k] = v
	}
	return env, nil
}

func envFileDisabled(shell map[string]string) bool {
	v := strings.ToLower(shell["COMPOSE_DISABLE_ENV_FILE"])
	return v == "1" || v == "true"
}

var envKeyRe = regexp.MustCompile(`^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:([=:])\s*(.*))?$`)

// envFileLines maps each key of an env file to the line of its last
// definition. Lines inside multi-line quoted values are skipped.
func envFileLines(b []byte) map[string]int {
	out := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	n := 0
	var openQuote byte
	for sc.Scan() {
		n++
		line := sc.Text()
		if openQuote != 0 {
			if strings.IndexByte(line, openQuote) >= 0 {
				openQuote = 0
			}
			continue
		}
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		m := envKeyRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		out[m[1]] = n
		if v := m[3]; len(v) > 0 && (v[0] == '"' || v[0] == '\'') {
			if strings.IndexByte(v[1:], v[0]) < 0 {
				openQuote = v[0]
			}
		}
	}
	return out
}

// varUse is one ${…} reference found in a project file.
type varUse struct {
	name     string
	op       string // "", ":-", "-", ":?", "?", ":+", "+"
	arg      string // default, message or alternative
	pos      Pos
	required bool
}

var braceOps = []string{":-", ":?", ":+", "-", "?", "+"}

// scanVariables returns every variable referenced by interpolation in the
// scalar values of a document (keys are not interpolated).
func scanVariables(d *doc) []varUse {
	var out []varUse
	if d.root == nil {
		return nil
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 1; i < len(n.Content); i += 2 {
				walk(n.Content[i])
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.ScalarNode:
			out = append(out, scanString(n.Value, Pos{d.file, n.Line, n.Column})...)
		}
	}
	walk(d.root)
	return out
}

func scanString(s string, pos Pos) []varUse {
	var out []varUse
	for _, m := range template.DefaultPattern.FindAllStringSubmatch(s, -1) {
		groups := map[string]string{}
		for i, name := range template.DefaultPattern.SubexpNames() {
			if name != "" && i < len(m) {
				groups[name] = m[i]
			}
		}
		if groups["escaped"] != "" {
			continue
		}
		if n := groups["named"]; n != "" {
			out = append(out, varUse{name: n, pos: pos})
			continue
		}
		braced := groups["braced"]
		if braced == "" {
			continue
		}
		u := varUse{name: braced, pos: pos}
		for i, c := range braced {
			if c == ':' || c == '-' || c == '?' || c == '+' {
				u.name = braced[:i]
				rest := braced[i:]
				for _, op := range braceOps {
					if strings.HasPrefix(rest, op) {
						u.op, u.arg = op, rest[len(op):]
						break
					}
				}
				break
			}
		}
		u.required = u.op == ":?" || u.op == "?"
		out = append(out, u)
		if u.arg != "" { // defaults may reference variables themselves
			out = append(out, scanString(u.arg, pos)...)
		}
	}
	return out
}

// provenance resolves every used variable against the environment.
func (env *environment) provenance(uses []varUse) []Variable {
	byName := map[string]*Variable{}
	defaultOp := map[string]string{} // ":-" (unset or empty) or "-" (unset only)
	var names []string
	for _, u := range uses {
		v, ok := byName[u.name]
		if !ok {
			v = &Variable{Name: u.name}
			byName[u.name] = v
			names = append(names, u.name)
		}
		v.Uses = append(v.Uses, u.pos)
		v.UsedAt = append(v.UsedAt, u.pos.String())
		v.Required = v.Required || u.required
		if _, seen := defaultOp[u.name]; !seen && (u.op == ":-" || u.op == "-") {
			defaultOp[u.name] = u.op
			v.Default = u.arg
			v.File, v.Line = u.pos.File, u.pos.Line
		}
	}
	sort.Strings(names)
	out := make([]Variable, 0, len(names))
	for _, n := range names {
		v := byName[n]
		op, hasDefault := defaultOp[n]
		val, set := env.values[n]
		switch {
		case set && !(val == "" && op == ":-"):
			v.Value, v.Set = val, true
			v.Source, v.File, v.Line = SourceShell, "", 0
			if _, inShell := env.shell[n]; !inShell {
				o := env.origin[n]
				v.Source, v.File, v.Line = o.src, o.file, o.line
			}
		case hasDefault:
			def, err := template.Substitute(v.Default, env.lookup)
			if err != nil {
				def = v.Default
			}
			v.Value, v.Set, v.Source = def, true, SourceDefault
		default:
			v.File, v.Line = "", 0
		}
		v.From = v.Source.String()
		if v.File != "" {
			v.From = fmt.Sprintf("%s %s:%d", v.From, v.File, v.Line)
		}
		out = append(out, *v)
	}
	return out
}

func (env *environment) lookup(k string) (string, bool) {
	v, ok := env.values[k]
	return v, ok
}
