// Package errdefs defines berth's error classes. Wrap one with %w and test
// with errors.Is or the Is* predicates; the CLI maps classes to exit codes.
package errdefs

import (
	"errors"
	"fmt"
)

// The error classes.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")    // exists, in use, name taken, lock held
	ErrInvalid     = errors.New("invalid")     // bad input
	ErrUnavailable = errors.New("unavailable") // kernel feature, binary or registry missing
	ErrCanceled    = errors.New("canceled")
)

// markers let packages that may not import errdefs (project/) classify
// their own error types.
type (
	invalidMarker  interface{ Invalid() bool }
	notFoundMarker interface{ NotFound() bool }
	conflictMarker interface{ Conflict() bool }
)

// IsInvalid reports bad input: ErrInvalid in the chain, or an error that
// says Invalid() == true.
func IsInvalid(err error) bool {
	var m invalidMarker
	return errors.Is(err, ErrInvalid) || errors.As(err, &m) && m.Invalid()
}

// IsNotFound reports ErrNotFound or a NotFound() == true error.
func IsNotFound(err error) bool {
	var m notFoundMarker
	return errors.Is(err, ErrNotFound) || errors.As(err, &m) && m.NotFound()
}

// IsConflict reports ErrConflict or a Conflict() == true error.
func IsConflict(err error) bool {
	var m conflictMarker
	return errors.Is(err, ErrConflict) || errors.As(err, &m) && m.Conflict()
}

// IsUnavailable reports ErrUnavailable.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// IsCanceled reports ErrCanceled.
func IsCanceled(err error) bool { return errors.Is(err, ErrCanceled) }

// Invalidf returns a formatted error wrapping ErrInvalid.
func Invalidf(format string, args ...any) error { return wrapf(ErrInvalid, format, args...) }

// NotFoundf returns a formatted error wrapping ErrNotFound.
func NotFoundf(format string, args ...any) error { return wrapf(ErrNotFound, format, args...) }

// Conflictf returns a formatted error wrapping ErrConflict.
func Conflictf(format string, args ...any) error { return wrapf(ErrConflict, format, args...) }

// Unavailablef returns a formatted error wrapping ErrUnavailable.
func Unavailablef(format string, args ...any) error { return wrapf(ErrUnavailable, format, args...) }

// classed prints only its message; errors.Is still finds the class.
type classed struct {
	class error
	msg   string
	cause error
}

func (e *classed) Error() string   { return e.msg }
func (e *classed) Unwrap() []error { return []error{e.class, e.cause} }

func wrapf(class error, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &classed{class: class, msg: err.Error(), cause: errors.Unwrap(err)}
}

// ExitCode maps an error to berth's exit code: 0 for nil, 2 for invalid
// input or usage, 1 otherwise.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case IsInvalid(err):
		return 2
	}
	return 1
}
