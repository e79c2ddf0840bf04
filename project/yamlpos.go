package project

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v4"
)

// Pos is a position in a project file; Line and Col are 1-based.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// doc is one parsed project file: its bytes, its YAML tree and an index from
// dotted paths (services.web.ports[1]) to positions.
type doc struct {
	file    string
	content []byte
	root    *yaml.Node // mapping node of the (single) document, nil when empty
	fig     bool       // converted by the fig v1 pre-pass; root is the converted tree
	index   map[string]Pos
}

var yamlErrRe = regexp.MustCompile(`^yaml: (?:.*? at (?:line (\d+)(?:, column (\d+))?|<unknown position>): )?(?:line (\d+)(?:, column (\d+))?: )?(.*)$`)

// yamlError turns a YAML library error into an *Error carrying file, line
// and column (both 1-based).
//
// The library prints marks inconsistently: scanner errors carry 1-based
// lines, parser errors 0-based ones, an unknown-anchor error a 1-based line
// with a column one too far; a column of 0 is left out. The type of the
// error tells which case applies; TestYAMLErrorPositions pins each one.
func yamlError(file string, err error) *Error {
	msg := err.Error()
	e := &Error{File: file, Msg: msg, Err: err, Hint: "fix the YAML syntax at that position"}
	var le *yaml.LoadErrors
	if errors.As(err, &le) && len(le.Errors) > 0 {
		first := le.Errors[0]
		e.Line, e.Col, e.Msg = first.Line, first.Column, first.Err.Error()
		return e
	}
	var ce *yaml.LoadError
	if errors.As(err, &ce) {
		e.Line, e.Col, e.Msg = ce.Line, ce.Column, ce.Err.Error()
		return e
	}
	line := strings.SplitN(msg, "\n", 2)[0]
	m := yamlErrRe.FindStringSubmatch(line)
	if m == nil {
		return e
	}
	e.Msg = m[5]
	lineStr, colStr := m[3], m[4]
	if lineStr == "" { // only a context mark
		lineStr, colStr = m[1], m[2]
	}
	if lineStr == "" {
		return e
	}
	e.Line, _ = strconv.Atoi(lineStr)
	e.Col = 1
	if colStr != "" {
		e.Col, _ = strconv.Atoi(colStr)
	}
	switch fmt.Sprintf("%T", errors.Unwrap(err)) + "|" + fmt.Sprintf("%T", err) {
	case "<nil>|libyaml.ParserError":
		e.Line++
	case "<nil>|*libyaml.ParserError":
		if e.Col > 1 {
			e.Col--
		}
	}
	return e
}

// parseDoc parses one project file. Only single-document files are
// accepted: compose files are one mapping.
func parseDoc(file string, content []byte) (*doc, error) {
	d := &doc{file: file, content: content}
	dec := yaml.NewDecoder(bytes.NewReader(content))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return d, nil // empty file
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: file, Line: extra.Line, Col: extra.Column,
			Msg:  "more than one YAML document in a project file",
			Hint: "remove the '---' separator or split the documents into files passed with -f"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(file, err)
	}
	root := &n
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return d, nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return d, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: root.Line, Col: root.Column,
			Msg:  "the top level of a project file must be a mapping",
			Hint: "start with 'services:' (or, for a fig file, one key per service)"}
	}
	d.root = root
	return d, nil
}

// buildIndex records the position of every mapping key and sequence item.
// A fig file is indexed in its converted form, whose nodes keep the
// positions of what the user wrote.
func (d *doc) buildIndex() {
	d.index = map[string]Pos{}
	if d.root == nil {
		return
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n.Kind == yaml.AliasNode {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if _, seen := d.index[p]; !seen && k.Line > 0 {
					d.index[p] = Pos{d.file, k.Line, k.Column}
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				d.index[p] = Pos{d.file, c.Line, c.Column}
				walk(c, p)
			}
		}
	}
	walk(d.root, "")
}

// lookup finds the position of path (dotted, with [i] or .i for items),
// falling back to its longest known prefix.
func (d *doc) lookup(path string) (Pos, bool) {
	path = normalizePath(path)
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := d.index[p]; ok {
			return pos, true
		}
	}
	return Pos{File: d.file}, false
}

var numSeg = regexp.MustCompile(`\.(\d+)(\.|$)`)

// normalizePath rewrites compose-go's services.web.ports.1 into
// services.web.ports[1].
func normalizePath(p string) string {
	for {
		q := numSeg.ReplaceAllString(p, "[$1]$2")
		if q == p {
			return p
		}
		p = q
	}
}

func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i > 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i > 0 {
		return p[:i]
	}
	return ""
}

// mapGet returns the value node of key in mapping n.
func mapGet(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

// resolveAlias follows an alias node to its anchor.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}
