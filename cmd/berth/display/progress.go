package display

import (
	"fmt"
	"os"
	"strings"
)

// Progress is how events are rendered (--progress).
type Progress string

// The --progress values compose accepts.
const (
	ProgressAuto  Progress = "auto"
	ProgressTTY   Progress = "tty"
	ProgressPlain Progress = "plain"
	ProgressJSON  Progress = "json"
	ProgressQuiet Progress = "quiet"
)

// ParseProgress validates a --progress value.
func ParseProgress(s string) (Progress, error) {
	switch p := Progress(strings.ToLower(s)); p {
	case ProgressAuto, ProgressTTY, ProgressPlain, ProgressJSON, ProgressQuiet:
		return p, nil
	}
	return "", fmt.Errorf("--progress %q: use one of auto, tty, plain, json, quiet", s)
}

// Resolve turns auto into tty or plain depending on whether f is a
// terminal.
func (p Progress) Resolve(f *os.File) Progress {
	if p != ProgressAuto {
		return p
	}
	if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return ProgressTTY
	}
	return ProgressPlain
}
