package reconcile

import (
	"errors"

	"berth.dev/berth/project"
)

// buildSpec: see BuildSpec. (Being written.)
func buildSpec(m *project.Model, in SpecInput) (Built, error) {
	return Built{}, errors.New("BuildSpec: not yet written")
}
