package errdefs

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

type marked struct{}

func (marked) Error() string { return "bad" }
func (marked) Invalid() bool { return true }

func TestClasses(t *testing.T) {
	e := Invalidf("service %q: %w", "web", fs.ErrNotExist)
	if !IsInvalid(e) || !errors.Is(e, fs.ErrNotExist) || e.Error() != `service "web": file does not exist` {
		t.Fatalf("Invalidf: %v", e)
	}
	wrapped := fmt.Errorf("up: %w", Conflictf("name %q taken", "web-1"))
	if !IsConflict(wrapped) || IsInvalid(wrapped) || IsNotFound(wrapped) {
		t.Fatal("Conflictf misclassified")
	}
	if !IsInvalid(fmt.Errorf("load: %w", marked{})) {
		t.Fatal("Invalid() marker not recognised")
	}
	for err, want := range map[error]int{nil: 0, NotFoundf("x"): 1, Invalidf("x"): 2, marked{}: 2, errors.New("x"): 1} {
		if got := ExitCode(err); got != want {
			t.Errorf("ExitCode(%v) = %d, want %d", err, got, want)
		}
	}
}
