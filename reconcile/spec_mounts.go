package reconcile

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
)

// VolumeKeyPrefix starts the Source of a named volume's mount in a built
// spec: "volume-key:data" is the project's volume "data", which the
// executor turns into the volume's real mount before Create.
const VolumeKeyPrefix = "volume-key:"

// specTmpfsDefaults are the options every tmpfs gets first, as in Docker
// (an "exec" among the user's options lifts noexec).
var specTmpfsDefaults = []string{"nosuid", "nodev", "noexec"}

// specMounts are the service's volumes: and tmpfs: as OCI mounts, parents
// before children (sorted by depth, stable, as Docker does). A target must
// be an absolute path other than / and outside /proc (SECURITY.md: refused
// at plan time), and no two mounts may share one.
func specMounts(svc types.ServiceConfig) ([]specs.Mount, error) {
	var out []specs.Mount
	for i, v := range svc.Volumes {
		m, err := specVolumeMount(v)
		if err != nil {
			return nil, errdefs.Invalidf("service %q: volumes[%d]: %v", svc.Name, i, err)
		}
		out = append(out, m)
	}
	for _, t := range svc.Tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		m := specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: dst, Options: append([]string{}, specTmpfsDefaults...)}
		if opts != "" {
			m.Options = append(m.Options, strings.Split(opts, ",")...)
		}
		out = append(out, m)
	}
	seen := map[string]bool{}
	for _, m := range out {
		clean := path.Clean(m.Destination)
		switch {
		case !path.IsAbs(m.Destination):
			return nil, errdefs.Invalidf("service %q: mount target %q: must be an absolute path inside the container", svc.Name, m.Destination)
		case clean == "/":
			return nil, errdefs.Invalidf("service %q: mount target %s: mounting over the container's / is refused; choose a directory inside it", svc.Name, m.Destination)
		case clean == "/proc" || strings.HasPrefix(clean, "/proc/"):
			return nil, errdefs.Invalidf("service %q: mount target %s: mounts onto /proc are refused (they would hide the masked paths); choose a target outside /proc", svc.Name, m.Destination)
		case seen[clean]:
			return nil, errdefs.Invalidf("service %q: two mounts target %s; keep one", svc.Name, clean)
		}
		seen[clean] = true
	}
	sort.SliceStable(out, func(i, j int) bool {
		return specDepth(out[i].Destination) < specDepth(out[j].Destination)
	})
	return out, nil
}

func specDepth(p string) int { return strings.Count(path.Clean(p), "/") }

// specVolumeMount is one volumes: entry. Binds and tmpfs are mounted as
// written; named and anonymous volumes wait for a volumes implementation
// (volumes/ has only the interface yet): this is the one place to change
// when it lands.
func specVolumeMount(v types.ServiceVolumeConfig) (specs.Mount, error) {
	switch v.Type {
	case types.VolumeTypeBind:
		if !path.IsAbs(v.Source) {
			return specs.Mount{}, fmt.Errorf("bind %q → %s: the source must be an absolute host path", v.Source, v.Target)
		}
		m := specs.Mount{Type: "bind", Source: v.Source, Destination: v.Target, Options: []string{"rbind"}}
		if v.ReadOnly {
			m.Options = append(m.Options, "ro")
		}
		if v.Bind != nil && v.Bind.Propagation != "" {
			m.Options = append(m.Options, v.Bind.Propagation)
		}
		return m, nil
	case types.VolumeTypeTmpfs:
		m := specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: v.Target, Options: append([]string{}, specTmpfsDefaults...)}
		if v.Tmpfs != nil {
			if v.Tmpfs.Size < 0 {
				return specs.Mount{}, fmt.Errorf("tmpfs %s: size cannot be negative", v.Target)
			}
			if v.Tmpfs.Size > 0 {
				m.Options = append(m.Options, fmt.Sprintf("size=%d", v.Tmpfs.Size))
			}
			if v.Tmpfs.Mode != 0 {
				m.Options = append(m.Options, fmt.Sprintf("mode=%o", v.Tmpfs.Mode))
			}
		}
		if v.ReadOnly {
			m.Options = append(m.Options, "ro")
		}
		return m, nil
	case types.VolumeTypeVolume:
		if v.Source == "" {
			return specs.Mount{}, fmt.Errorf("anonymous volume %s: anonymous volumes are not supported yet; name it (a top-level volumes: entry) or use a bind or a tmpfs", v.Target)
		}
		// The executor resolves the key to the volume's mount (VolumeSource).
		m := specs.Mount{Type: "volume", Source: VolumeKeyPrefix + v.Source, Destination: v.Target}
		if v.ReadOnly {
			m.Options = append(m.Options, "ro")
		}
		if v.Volume != nil && v.Volume.NoCopy {
			m.Options = append(m.Options, "nocopy")
		}
		return m, nil
	}
	return specs.Mount{}, fmt.Errorf("%s: type %q is not supported (berth mounts bind and tmpfs volumes)", v.Target, v.Type)
}
