package reconcile

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
	"berth.dev/berth/volumes"
)

// MountLister is what a runtime.Container may add beside the interface:
// the mounts it was created with, sources resolved (a volume's data dir,
// a bind's host path). runtime/linux and runtime/fake containers
// implement it. The executor needs it for volumes_from (the provider's
// mounts), to carry a recreated container's anonymous volumes over, and
// to release what a removed container held (its anonymous volumes, its
// secret and config files); without it volumes_from fails with
// ErrUnavailable and a removal leaves those behind.
type MountLister interface {
	Mounts(ctx context.Context) ([]specs.Mount, error)
}

// volumeMounter is what a volume manager may add: how one of its volumes
// is mounted (a bind of its data dir, of a device dir, or a tmpfs).
// volumes/local implements it; without it a volume's Mountpoint is bound.
type volumeMounter interface {
	MountFor(v volumes.Volume) (typ, source string, options []string)
}

// mountsOf is c's mounts (MountLister).
func mountsOf(ctx context.Context, c runtime.Container) ([]specs.Mount, error) {
	ml, ok := c.(MountLister)
	if !ok {
		return nil, errdefs.Unavailablef("the runtime does not report a container's mounts")
	}
	return ml.Mounts(ctx)
}

// volumeMount is how v is mounted: its type, source and options.
func (r *exRun) volumeMount(v volumes.Volume) (typ, src string, opts []string) {
	if mv, ok := r.e.Deps.Volumes.(volumeMounter); ok {
		return mv.MountFor(v)
	}
	return "volume", v.Mountpoint, nil
}

// setVolume points mt (a placeholder) at v, keeping its ro and, for a
// volume of its own data dir, nocopy.
func (r *exRun) setVolume(mt *specs.Mount, v volumes.Volume) {
	typ, src, opts := r.volumeMount(v)
	mt.Type, mt.Source = typ, src
	if typ != "volume" {
		mt.Options = slices.DeleteFunc(slices.Clone(mt.Options), func(o string) bool { return o == "nocopy" })
	}
	mt.Options = append(mt.Options, opts...)
}

// resolveMounts turns the placeholders BuildSpec leaves in spec's mounts
// into real mounts, for a's container (oldID: the container a recreate
// replaces, "" otherwise):
//   - bind sources are checked on the host (created when Built says so);
//   - "volume-key:KEY" becomes the project volume's mount;
//   - volumes_from adds each provider's volume and bind mounts (not its
//     tmpfs, nor the files written for it) at the targets the service's
//     own mounts leave free, in the provider's mode or read-only; later
//     entries win a target, as in Docker, and take it from an image
//     VOLUME;
//   - an anonymous volume is the old container's at that target when
//     recreating (unless RenewAnon), else a new one labelled with the
//     project, service, number and "<container>:<target>";
//   - secrets and configs are written by the volume manager's FileStore.
//
// undo removes what it made (new anonymous volumes, written files) when
// the container will not exist after all (Create failed, or a container
// already there was taken instead); it is never nil.
func (r *exRun) resolveMounts(ctx context.Context, a *Action, b Built, spec *runtime.ContainerSpec, oldID string) (undo func(), err error) {
	m := r.e.Model
	vm := r.e.Deps.Volumes
	var made, files []string
	undo = func() {
		uctx := context.WithoutCancel(ctx)
		for _, name := range made {
			vm.Remove(uctx, name)
		}
		if fs, ok := vm.(volumes.FileStore); ok && len(files) > 0 {
			fs.ReleaseFiles(uctx, m.Name, files)
		}
	}
	defer func() {
		if err != nil {
			undo()
			undo = func() {}
		}
	}()
	if spec.OCI == nil {
		return undo, nil
	}
	service := a.Service
	if hp, ok := vm.(volumes.HostPaths); ok {
		for _, p := range b.HostPaths {
			err := hp.EnsureHostPath(ctx, p.Path, p.Create)
			switch {
			case errdefs.IsNotFound(err) && p.For != "":
				return undo, errdefs.NotFoundf("service %s: %s: file %s does not exist on the host; create it or fix the path", service, p.For, p.Path)
			case errdefs.IsNotFound(err):
				return undo, errdefs.NotFoundf("service %s: bind source %s does not exist on the host; create it (a long-syntax bind creates its source only with bind: {create_host_path: true})", service, p.Path)
			case err != nil:
				return undo, fmt.Errorf("service %s: %w", service, err)
			}
		}
	}
	needVolumes := len(b.Files) > 0
	for _, mt := range spec.OCI.Mounts {
		needVolumes = needVolumes || mt.Type == "volume"
	}
	if needVolumes && vm == nil {
		return undo, errdefs.Unavailablef("service %s: berth was started without a volume manager", service)
	}

	for i := range spec.OCI.Mounts {
		mt := &spec.OCI.Mounts[i]
		key, ok := strings.CutPrefix(mt.Source, VolumeKeyPrefix)
		if mt.Type != "volume" || !ok {
			continue
		}
		name := key
		if vc, ok := m.Project.Volumes[key]; ok {
			name = exVolumeName(m, key, vc)
		}
		v, err := vm.Inspect(ctx, name)
		if err != nil {
			return undo, fmt.Errorf("service %s: volume %s: %w", service, key, err)
		}
		r.setVolume(mt, v)
	}

	if len(b.VolumesFrom) > 0 {
		if err := r.addVolumesFrom(ctx, service, b.VolumesFrom, spec); err != nil {
			return undo, err
		}
	}

	var reuse map[string]volumes.Volume
	for i := range spec.OCI.Mounts {
		mt := &spec.OCI.Mounts[i]
		if mt.Type != "volume" || (mt.Source != AnonymousVolumeSource && mt.Source != ImageVolumeSource) {
			continue
		}
		if reuse == nil {
			reuse = map[string]volumes.Volume{}
			if oldID != "" && !r.e.Options.RenewAnon {
				if reuse, err = r.anonymousOf(ctx, oldID, service); err != nil {
					return undo, fmt.Errorf("service %s: the anonymous volumes of the container it replaces: %w", service, err)
				}
			}
		}
		target := path.Clean(mt.Destination)
		v, ok := reuse[target]
		if !ok {
			v, err = vm.Create(ctx, volumes.Spec{Labels: map[string]string{
				runtime.LabelProject:      m.Name,
				runtime.LabelService:      service,
				runtime.LabelNumber:       strconv.Itoa(a.Number),
				volumes.LabelAnonymous:    "",
				volumes.LabelAnonymousFor: spec.Name + ":" + target,
			}})
			if err != nil {
				return undo, fmt.Errorf("service %s: anonymous volume %s: %w", service, target, err)
			}
			made = append(made, v.Name)
		}
		r.setVolume(mt, v)
	}

	if len(b.Files) > 0 {
		fs, ok := vm.(volumes.FileStore)
		if !ok {
			return undo, errdefs.Unavailablef("service %s: the volume manager cannot write secrets and configs", service)
		}
		var req []volumes.File
		var at []int
		for _, f := range b.Files {
			src := SecretSourcePrefix + f.Name
			def := types.FileObjectConfig(m.Project.Secrets[f.Name])
			if f.Kind == "config" {
				src = ConfigSourcePrefix + f.Name
				def = types.FileObjectConfig(m.Project.Configs[f.Name])
			}
			i := slices.IndexFunc(spec.OCI.Mounts, func(mt specs.Mount) bool { return mt.Source == src && mt.Destination == f.Target })
			if i < 0 {
				return undo, fmt.Errorf("service %s: %s %s has no mount at %s", service, f.Kind, f.Name, f.Target)
			}
			vf := volumes.File{Kind: f.Kind + "s", Name: f.Name, Mode: f.Mode, UID: f.UID, GID: f.GID, Source: def.File}
			if def.File == "" {
				vf.Content = []byte(def.Content)
			}
			req = append(req, vf)
			at = append(at, i)
		}
		paths, err := fs.WriteFiles(ctx, m.Name, req)
		if err != nil {
			return undo, fmt.Errorf("service %s: %w", service, err)
		}
		files = paths
		for k, i := range at {
			spec.OCI.Mounts[i].Source = paths[k]
		}
	}
	sortMounts(spec.OCI.Mounts)
	return undo, nil
}

// addVolumesFrom adds the providers' mounts to spec (see resolveMounts).
func (r *exRun) addVolumesFrom(ctx context.Context, service string, vfs []VolumesFrom, spec *runtime.ContainerSpec) error {
	fs, _ := r.e.Deps.Volumes.(volumes.FileStore)
	own := map[string]bool{}
	for _, mt := range spec.OCI.Mounts {
		if mt.Source != ImageVolumeSource {
			own[path.Clean(mt.Destination)] = true
		}
	}
	from := map[string]specs.Mount{}
	var order []string
	for _, vf := range vfs {
		what := vf.Service
		if vf.Container != "" {
			what = types.ContainerPrefix + vf.Container
		}
		ms, err := r.providerMounts(ctx, vf)
		if err != nil {
			return fmt.Errorf("service %s: volumes_from %s: %w", service, what, err)
		}
		for _, pm := range ms {
			if (pm.Type != "volume" && pm.Type != "bind") || (fs != nil && fs.OwnsFile(pm.Source)) {
				continue
			}
			d := path.Clean(pm.Destination)
			if own[d] {
				continue
			}
			pm.Options = slices.Clone(pm.Options)
			if vf.ReadOnly {
				pm.Options = slices.DeleteFunc(pm.Options, func(o string) bool { return o == "rw" || o == "ro" })
				pm.Options = append(pm.Options, "ro")
			}
			if _, ok := from[d]; !ok {
				order = append(order, d)
			}
			from[d] = pm
		}
	}
	ms := slices.DeleteFunc(slices.Clone(spec.OCI.Mounts), func(mt specs.Mount) bool {
		_, covered := from[path.Clean(mt.Destination)]
		return mt.Source == ImageVolumeSource && covered
	})
	for _, d := range order {
		ms = append(ms, from[d])
	}
	spec.OCI.Mounts = ms
	return nil
}

// providerMounts are the mounts of a volumes_from provider: a
// container by name, or the lowest-numbered replica of a service,
// running or not.
func (r *exRun) providerMounts(ctx context.Context, vf VolumesFrom) ([]specs.Mount, error) {
	rt, err := r.needRuntime()
	if err != nil {
		return nil, err
	}
	var c runtime.Container
	if vf.Container != "" {
		c, err = rt.Load(ctx, vf.Container)
		if errdefs.IsNotFound(err) {
			return nil, errdefs.NotFoundf("no such container: %s; create it first", vf.Container)
		}
	} else {
		c, err = r.linkReplica(ctx, vf.Service)
	}
	if err != nil {
		return nil, err
	}
	return mountsOf(ctx, c)
}

// projectAnonymous are the project's anonymous volumes (of service,
// unless ""), by the source their mount has.
func (r *exRun) projectAnonymous(ctx context.Context, service string) (map[string]volumes.Volume, error) {
	labels := map[string]string{runtime.LabelProject: r.e.Model.Name}
	if service != "" {
		labels[runtime.LabelService] = service
	}
	vs, err := r.e.Deps.Volumes.List(ctx, volumes.Filter{Labels: labels})
	if err != nil {
		return nil, err
	}
	out := map[string]volumes.Volume{}
	for _, v := range vs {
		if !v.Anonymous {
			continue
		}
		if _, src, _ := r.volumeMount(v); src != "" {
			out[src] = v
		}
	}
	return out, nil
}

// anonymousOf are the anonymous volumes of service's that container id
// mounts, by target (none when it is gone).
func (r *exRun) anonymousOf(ctx context.Context, id, service string) (map[string]volumes.Volume, error) {
	out := map[string]volumes.Volume{}
	c, err := r.e.Deps.Runtime.Load(ctx, id)
	if errdefs.IsNotFound(err) {
		return out, nil
	} else if err != nil {
		return nil, err
	}
	ms, err := mountsOf(ctx, c)
	if errdefs.IsNotFound(err) {
		return out, nil
	} else if err != nil {
		return nil, err
	}
	anon, err := r.projectAnonymous(ctx, service)
	if err != nil {
		return nil, err
	}
	for _, mt := range ms {
		if v, ok := anon[mt.Source]; ok {
			out[path.Clean(mt.Destination)] = v
		}
	}
	return out, nil
}

// removeWithMounts force-removes c, then releases what its mounts held:
// the secret and config files written for it and, with anonVolumes, its
// anonymous volumes (those another container still uses stay: the
// manager refuses them). A container already gone is no error.
func (r *exRun) removeWithMounts(ctx context.Context, c runtime.Container, anonVolumes bool) error {
	ms, _ := mountsOf(ctx, c)
	if err := c.Remove(ctx, runtime.RemoveOptions{Force: true, RemoveVolumes: anonVolumes}); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	vm := r.e.Deps.Volumes
	if vm == nil || len(ms) == 0 {
		return nil
	}
	var errs []error
	if fs, ok := vm.(volumes.FileStore); ok {
		var owned []string
		for _, mt := range ms {
			if fs.OwnsFile(mt.Source) {
				owned = append(owned, mt.Source)
			}
		}
		if len(owned) > 0 {
			errs = append(errs, fs.ReleaseFiles(ctx, r.e.Model.Name, owned))
		}
	}
	if anonVolumes {
		anon, err := r.projectAnonymous(ctx, "")
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, mt := range ms {
			if v, ok := anon[mt.Source]; ok {
				if err := vm.Remove(ctx, v.Name); err != nil && !errdefs.IsConflict(err) {
					errs = append(errs, fmt.Errorf("anonymous volume %s: %w", v.Name, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// ResolveMounts does to a built spec's mounts what the executor does
// before Create (see resolveMounts), for a container made outside a plan
// (compose run's one-off, spec.Name set): its anonymous volumes are new,
// labelled with service and number. Call undo when the container is not
// created after all; it is never nil.
func ResolveMounts(ctx context.Context, d Deps, m *project.Model, service string, number int, b Built, spec *runtime.ContainerSpec) (undo func(), err error) {
	r := &exRun{e: &Executor{Deps: d, Model: m}}
	return r.resolveMounts(ctx, &Action{Service: service, Number: number}, b, spec, "")
}

// RemoveWithMounts force-removes c as the executor does: then the secret
// and config files written for it go and, with anonVolumes, its
// anonymous volumes of project m that no other container uses.
func RemoveWithMounts(ctx context.Context, d Deps, m *project.Model, c runtime.Container, anonVolumes bool) error {
	r := &exRun{e: &Executor{Deps: d, Model: m}}
	return r.removeWithMounts(ctx, c, anonVolumes)
}
