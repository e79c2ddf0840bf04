// Package volumes defines berth's volume manager. volumes/local implements
// it (later) as directories under the state root.
package volumes

import (
	"context"
	"time"
)

// Manager follows network.Manager's rules: Create is idempotent for the
// same Spec, a conflicting or unlabelled volume of that name is
// errdefs.ErrConflict, Remove of a volume in use is ErrConflict and of a
// missing one nil.
type Manager interface {
	Create(ctx context.Context, s Spec) (Volume, error)
	Inspect(ctx context.Context, name string) (Volume, error)
	List(ctx context.Context, f Filter) ([]Volume, error)
	Remove(ctx context.Context, name string) error
}

// Spec describes a volume.
type Spec struct {
	Name       string
	Labels     map[string]string
	Driver     string            // local
	DriverOpts map[string]string // type, o, device
}

// Volume is an existing volume.
type Volume struct {
	Spec
	Mountpoint string
	Created    time.Time
	Anonymous  bool
}

// Filter selects volumes by labels.
type Filter struct{ Labels map[string]string }
