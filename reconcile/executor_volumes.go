package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
	"berth.dev/berth/volumes"
)

// volumeMounter is what a volume manager may add: how one of its volumes
// is mounted (a bind of its data dir, of a device dir, or a tmpfs).
// volumes/local implements it; without it a volume's Mountpoint is bound.
type volumeMounter interface {
	MountFor(v volumes.Volume) (typ, source string, options []string)
}

// resolveVolumes turns the "volume-key:KEY" mounts BuildSpec writes into
// the project volumes' real mounts.
func (r *exRun) resolveVolumes(ctx context.Context, service string, spec *runtime.ContainerSpec) error {
	if spec.OCI == nil {
		return nil
	}
	for i := range spec.OCI.Mounts {
		mt := &spec.OCI.Mounts[i]
		if mt.Type != "volume" || !strings.HasPrefix(mt.Source, VolumeKeyPrefix) {
			continue
		}
		key := strings.TrimPrefix(mt.Source, VolumeKeyPrefix)
		name := key
		if vc, ok := r.e.Model.Project.Volumes[key]; ok && vc.Name != "" {
			name = vc.Name
		}
		vm := r.e.Deps.Volumes
		if vm == nil {
			return errdefs.Unavailablef("service %s: volume %s: berth was started without a volume manager", service, key)
		}
		v, err := vm.Inspect(ctx, name)
		if err != nil {
			return fmt.Errorf("service %s: volume %s: %w", service, key, err)
		}
		typ, src, opts := "volume", v.Mountpoint, []string(nil)
		if mv, ok := vm.(volumeMounter); ok {
			typ, src, opts = mv.MountFor(v)
		}
		mt.Type, mt.Source = typ, src
		if typ != "volume" {
			mt.Options = slices.DeleteFunc(slices.Clone(mt.Options), func(o string) bool { return o == "nocopy" })
		}
		mt.Options = append(mt.Options, opts...)
	}
	return nil
}
