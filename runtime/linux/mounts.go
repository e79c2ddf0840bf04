package linux

import (
	"context"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mounts returns the mounts the container was created with: its recorded
// OCI mounts, sources resolved (a volume's _data dir, a bind's host path,
// a tmpfs), without the /etc/hostname, /etc/hosts and /etc/resolv.conf
// binds berth adds at each start. It is an optional accessor beside
// runtime.Container (reconcile.MountLister documents it): volumes_from
// copies a provider's mounts from it, and a recreate finds the anonymous
// volumes to carry over.
func (c *Container) Mounts(ctx context.Context) ([]specs.Mount, error) {
	m, err := c.meta()
	if err != nil {
		return nil, err
	}
	if m.Spec.OCI == nil {
		return nil, nil
	}
	out := slices.Clone(m.Spec.OCI.Mounts)
	for i := range out {
		out[i].Options = slices.Clone(out[i].Options)
	}
	return out, nil
}
