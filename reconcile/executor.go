package reconcile

import (
	"context"
	"errors"

	"berth.dev/berth/project"
)

// Executor runs a plan's actions as its edges allow.
type Executor struct {
	Deps     Deps
	Model    *project.Model
	Options  Options
	Sink     Sink // nil: no events
	Parallel int  // at most this many actions at once; 0 = unlimited
}

// Run executes p: each action once its edges hold; the first failure
// cancels actions not yet started (running ones finish) and dependents of
// a failed action are skipped; the errors are joined, each naming its
// action and service.
func (e *Executor) Run(ctx context.Context, p *Plan) error {
	return errors.New("Executor: not yet written")
}
