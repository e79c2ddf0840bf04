package reconcile

import (
	"errors"

	"berth.dev/berth/project"
)

// Compute is the plan that converges o to m under opt: pure (no syscall,
// no clock), deterministic (the same inputs give the same text),
// golden-tested (testdata/*.plan).
func Compute(m *project.Model, o *Observed, opt Options) (*Plan, error) {
	return nil, errors.New("Compute: not yet written")
}
