package project

import (
	"errors"
	"fmt"
	"strings"
)

// Error is the error type of every failure project.Load reports. It names
// where the problem is (file, line, column, service, field) and what to do.
//
// project/ imports nothing of berth's, so it cannot wrap errdefs.ErrInvalid;
// instead Error carries an Invalid marker that errdefs.IsInvalid recognises.
type Error struct {
	File    string // path of the project file, "" when not tied to one
	Line    int    // 1-based; 0 when unknown
	Col     int    // 1-based; 0 when unknown
	Service string // service the problem belongs to, if any
	Field   string // dotted path such as services.web.ports[1]
	Msg     string // what is wrong
	Hint    string // what to do about it
	Err     error  // underlying cause, if any
	// NotFound marks errors caused by a missing file or directory.
	notFound bool
}

// Invalid marks Error as bad input (see internal/errdefs.IsInvalid).
func (e *Error) Invalid() bool { return !e.notFound }

// NotFound reports whether the error is about a missing project file.
func (e *Error) NotFound() bool { return e.notFound }

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Col > 0 {
				fmt.Fprintf(&b, ":%d", e.Col)
			}
		}
		b.WriteString(": ")
	}
	switch {
	case e.Field != "" && !strings.HasPrefix(e.Msg, e.Field) &&
		!(e.Field == "services."+e.Service && strings.Contains(e.Msg, fmt.Sprintf("service %q", e.Service))):
		b.WriteString(e.Field)
		b.WriteString(": ")
	case e.Field == "" && e.Service != "" && !strings.Contains(e.Msg, fmt.Sprintf("%q", e.Service)):
		fmt.Fprintf(&b, "service %q: ", e.Service)
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// errorf builds an Error at a position.
func errorf(p Pos, field, hint, format string, args ...any) *Error {
	return &Error{File: p.File, Line: p.Line, Col: p.Col, Field: field, Service: serviceOfField(field),
		Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// serviceOfField extracts NAME from "services.NAME..." paths.
func serviceOfField(field string) string {
	rest, ok := strings.CutPrefix(field, "services.")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, ".["); i >= 0 {
		return rest[:i]
	}
	return rest
}

// AsError returns err as a *Error when it is one.
func AsError(err error) (*Error, bool) {
	var pe *Error
	ok := errors.As(err, &pe)
	return pe, ok
}
