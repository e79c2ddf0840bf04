package fake

import (
	"context"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mounts returns the mounts the container was created with (its spec's
// OCI mounts, a copy), as runtime/linux's Container does: the optional
// accessor reconcile.MountLister documents. It is not a logged call.
func (h *handle) Mounts(ctx context.Context) ([]specs.Mount, error) {
	c, err := h.get()
	if err != nil {
		return nil, err
	}
	defer h.r.mu.Unlock()
	if c.spec.OCI == nil {
		return nil, nil
	}
	out := slices.Clone(c.spec.OCI.Mounts)
	for i := range out {
		out[i].Options = slices.Clone(out[i].Options)
	}
	return out, nil
}
