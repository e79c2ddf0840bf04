package reconcile

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/project"
)

// Sources of mounts in a built spec that the executor turns into real ones
// before Create (executor_volumes.go):
//   - "volume-key:data" is the project's volume "data";
//   - "volume-anonymous:" an anonymous volume the service declares
//     (volumes: [/data]): a new one, or on a recreate the old container's
//     anonymous volume at the same target;
//   - "volume-anonymous:image" the same for a VOLUME of the image that no
//     mount of the service covers (a volumes_from mount at that target
//     takes its place, as in Docker);
//   - "secret:NAME" and "config:NAME" a file the executor writes with
//     the content, mode and owner Built.Files gives for that target.
const (
	VolumeKeyPrefix       = "volume-key:"
	AnonymousVolumeSource = "volume-anonymous:"
	ImageVolumeSource     = "volume-anonymous:image"
	SecretSourcePrefix    = "secret:"
	ConfigSourcePrefix    = "config:"
)

// VolumesFrom is one volumes_from entry: the container of a service of
// the project (its lowest-numbered replica) or a container by name, whose
// mounts (volumes, anonymous ones included, and binds) the container
// gets; all read-only with ReadOnly, else each in the provider's mode.
type VolumesFrom struct {
	Service   string `json:",omitempty"`
	Container string `json:",omitempty"`
	ReadOnly  bool   `json:",omitempty"`
}

// SpecFile is a secret or config the executor writes for the container
// and binds read-only at Target (the mount whose Source is
// "secret:Name" or "config:Name").
type SpecFile struct {
	Kind   string // "secret" | "config"
	Name   string // the top-level key
	Target string
	UID    int
	GID    int
	Mode   uint32
}

// HostPath is a bind source the executor checks before Create: a
// missing one is created as a directory when Create (short syntax, or
// bind.create_host_path), else an error. For names the secret or config
// ("secret pw") whose file it is, "" for a volumes: bind.
type HostPath struct {
	Path   string
	Create bool   `json:",omitempty"`
	For    string `json:",omitempty"`
}

// specTmpfsDefaults are the options every tmpfs gets first, as in Docker
// (an "exec" among the user's options lifts noexec).
var specTmpfsDefaults = []string{"nosuid", "nodev", "noexec"}

// Secrets and configs default to mode 0444 (compose's default).
const specFileMode = 0o444

// specMountSet is what a service's mounts come to.
type specMountSet struct {
	mounts    []specs.Mount
	files     []SpecFile
	hostPaths []HostPath
	from      []VolumesFrom
}

// specMounts are the service's volumes:, tmpfs:, secrets: and configs: as
// OCI mounts, then anonymous volumes for the image's VOLUMEs that none of
// them covers, parents before children (sorted by depth, stable, as
// Docker does). A target must be an absolute path other than / and
// outside /proc (SECURITY.md: refused at plan time), and no two mounts
// may share one.
//
// Binds: the source is what compose-go resolved (relative paths against
// the project directory, ~ against $HOME). A missing source is created as
// a directory for the short syntax and with bind.create_host_path (the
// loader's default once a bind: section is written), as compose does; a
// long-syntax bind without it must exist (HostPath). bind.selinux (and
// the short syntax's :z/:Z) is accepted and ignored: berth runs without
// SELinux labelling.
func specMounts(m *project.Model, svc types.ServiceConfig, ic ImageConfig) (specMountSet, error) {
	var set specMountSet
	for i, v := range svc.Volumes {
		mt, err := specVolumeMount(v)
		if err != nil {
			return set, errdefs.Invalidf("service %q: volumes[%d]: %v", svc.Name, i, err)
		}
		if v.Type == types.VolumeTypeBind {
			set.hostPaths = append(set.hostPaths, HostPath{Path: v.Source, Create: v.Bind != nil && bool(v.Bind.CreateHostPath)})
		}
		set.mounts = append(set.mounts, mt)
	}
	for _, t := range svc.Tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		mt := specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: dst, Options: append([]string{}, specTmpfsDefaults...)}
		if opts != "" {
			mt.Options = append(mt.Options, strings.Split(opts, ",")...)
		}
		set.mounts = append(set.mounts, mt)
	}
	if err := specFiles(&set, m, svc); err != nil {
		return set, err
	}
	seen := map[string]bool{}
	for _, mt := range set.mounts {
		clean := path.Clean(mt.Destination)
		switch {
		case !path.IsAbs(mt.Destination):
			return set, errdefs.Invalidf("service %q: mount target %q: must be an absolute path inside the container", svc.Name, mt.Destination)
		case clean == "/":
			return set, errdefs.Invalidf("service %q: mount target %s: mounting over the container's / is refused; choose a directory inside it", svc.Name, mt.Destination)
		case clean == "/proc" || strings.HasPrefix(clean, "/proc/"):
			return set, errdefs.Invalidf("service %q: mount target %s: mounts onto /proc are refused (they would hide the masked paths); choose a target outside /proc", svc.Name, mt.Destination)
		case seen[clean]:
			return set, errdefs.Invalidf("service %q: two mounts target %s; keep one", svc.Name, clean)
		}
		seen[clean] = true
	}
	// The image's VOLUMEs (sorted by the resolver) that nothing covers;
	// one that could not be mounted (relative, /, under /proc) is left
	// out, as the image's business.
	for _, v := range ic.Volumes {
		clean := path.Clean(v)
		if !path.IsAbs(v) || clean == "/" || clean == "/proc" || strings.HasPrefix(clean, "/proc/") || seen[clean] {
			continue
		}
		seen[clean] = true
		set.mounts = append(set.mounts, specs.Mount{Type: "volume", Source: ImageVolumeSource, Destination: clean})
	}
	sortMounts(set.mounts)
	var err error
	if set.from, err = specVolumesFrom(m, svc); err != nil {
		return set, err
	}
	return set, nil
}

// sortMounts orders mounts parents first, keeping the given order among
// targets of the same depth.
func sortMounts(ms []specs.Mount) {
	sort.SliceStable(ms, func(i, j int) bool {
		return specDepth(ms[i].Destination) < specDepth(ms[j].Destination)
	})
}

func specDepth(p string) int { return strings.Count(path.Clean(p), "/") }

// specVolumeMount is one volumes: entry.
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
		// The executor resolves the key to the volume's mount, or makes
		// the anonymous volume.
		m := specs.Mount{Type: "volume", Source: VolumeKeyPrefix + v.Source, Destination: v.Target}
		if v.Source == "" {
			m.Source = AnonymousVolumeSource
		}
		if v.ReadOnly {
			m.Options = append(m.Options, "ro")
		}
		if v.Volume != nil && v.Volume.NoCopy {
			m.Options = append(m.Options, "nocopy")
		}
		return m, nil
	}
	return specs.Mount{}, fmt.Errorf("%s: type %q is not supported (berth mounts volumes, binds and tmpfs)", v.Target, v.Type)
}

// specFiles adds the service's secrets (at /run/secrets/<source>, or the
// target, a relative one under /run/secrets) and configs (at /<source>, or
// the target, a relative one under /) as read-only mounts. A file: source
// without uid, gid or mode is bound from the host as it is (changes show
// through, and its own mode applies); any other is written by the
// executor with the mode (default 0444) and owner (default 0:0) asked.
func specFiles(set *specMountSet, m *project.Model, svc types.ServiceConfig) error {
	type ref struct {
		field string
		cfg   types.FileReferenceConfig
	}
	var refs []ref
	for i, s := range svc.Secrets {
		refs = append(refs, ref{fmt.Sprintf("secrets[%d]", i), types.FileReferenceConfig(s)})
	}
	for i, c := range svc.Configs {
		refs = append(refs, ref{fmt.Sprintf("configs[%d]", i), types.FileReferenceConfig(c)})
	}
	for _, r := range refs {
		kind, prefix, dir := "secret", SecretSourcePrefix, "/run/secrets/"
		sec, ok := m.Project.Secrets[r.cfg.Source]
		def := types.FileObjectConfig(sec)
		if strings.HasPrefix(r.field, "configs") {
			kind, prefix, dir = "config", ConfigSourcePrefix, "/"
			var cfg types.ConfigObjConfig
			cfg, ok = m.Project.Configs[r.cfg.Source]
			def = types.FileObjectConfig(cfg)
		}
		bad := func(format string, args ...any) error {
			return errdefs.Invalidf("service %q: %s: %s %q: "+format, append([]any{svc.Name, r.field, kind, r.cfg.Source}, args...)...)
		}
		switch {
		case r.cfg.Source == "":
			return errdefs.Invalidf("service %q: %s: give the %s's source (a key of the top-level %ss:)", svc.Name, r.field, kind, kind)
		case !ok:
			return bad("not defined; add it to the top-level %ss: section", kind)
		case bool(def.External):
			return bad("external %ss live in a swarm; give it file:, environment: or content: instead", kind)
		case def.Driver != "" || def.TemplateDriver != "":
			return bad("drivers are not supported; give it file:, environment: or content: instead")
		}
		if def.Environment != "" {
			if _, set := m.Project.Environment[def.Environment]; !set {
				return bad("its environment variable %s is not set; set it in the shell or the .env file", def.Environment)
			}
		}
		target := r.cfg.Target
		switch {
		case target == "":
			target = dir + r.cfg.Source
		case !path.IsAbs(target):
			target = dir + target
		}
		target = path.Clean(target)
		uid, err := specID(r.cfg.UID)
		if err != nil {
			return bad("uid %q: %v", r.cfg.UID, err)
		}
		gid, err := specID(r.cfg.GID)
		if err != nil {
			return bad("gid %q: %v", r.cfg.GID, err)
		}
		if def.File != "" && r.cfg.UID == "" && r.cfg.GID == "" && r.cfg.Mode == nil {
			if !path.IsAbs(def.File) {
				return bad("file %q must be an absolute host path", def.File)
			}
			set.mounts = append(set.mounts, specs.Mount{Type: "bind", Source: def.File, Destination: target, Options: []string{"rbind", "ro"}})
			set.hostPaths = append(set.hostPaths, HostPath{Path: def.File, For: kind + " " + r.cfg.Source})
			continue
		}
		mode := uint32(specFileMode)
		if r.cfg.Mode != nil {
			if *r.cfg.Mode < 0 || *r.cfg.Mode > 0o777 {
				return bad("mode %#o: give permission bits, such as 0440", int64(*r.cfg.Mode))
			}
			mode = uint32(*r.cfg.Mode)
		}
		set.mounts = append(set.mounts, specs.Mount{Type: "bind", Source: prefix + r.cfg.Source, Destination: target, Options: []string{"rbind", "ro"}})
		set.files = append(set.files, SpecFile{Kind: kind, Name: r.cfg.Source, Target: target, UID: uid, GID: gid, Mode: mode})
	}
	return nil
}

// specID is a numeric uid or gid; "" is 0.
func specID(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("must be a number (berth does not look names up in the image)")
	}
	return n, nil
}

// specVolumesFrom parses volumes_from: SERVICE[:ro|rw], service:SERVICE
// [:ro|rw], container:NAME[:ro|rw].
func specVolumesFrom(m *project.Model, svc types.ServiceConfig) ([]VolumesFrom, error) {
	var out []VolumesFrom
	for i, e := range svc.VolumesFrom {
		var vf VolumesFrom
		rest, isContainer := strings.CutPrefix(e, types.ContainerPrefix)
		if !isContainer {
			rest = strings.TrimPrefix(e, types.ServicePrefix)
		}
		name, mode, _ := strings.Cut(rest, ":")
		switch mode {
		case "", "rw":
		case "ro":
			vf.ReadOnly = true
		default:
			return nil, errdefs.Invalidf("service %q: volumes_from[%d] %q: mode %q is neither ro nor rw", svc.Name, i, e, mode)
		}
		switch {
		case name == "":
			return nil, errdefs.Invalidf("service %q: volumes_from[%d] %q: name a service, or a container as container:NAME", svc.Name, i, e)
		case isContainer:
			vf.Container = name
		default:
			if _, ok := m.Project.Services[name]; !ok {
				return nil, errdefs.Invalidf("service %q: volumes_from[%d]: no service %q in the project (the services are: %s); name a container as container:%s",
					svc.Name, i, name, strings.Join(specSortedServices(m), ", "), name)
			}
			if name == svc.Name {
				return nil, errdefs.Invalidf("service %q: volumes_from[%d]: a service cannot take volumes from itself", svc.Name, i)
			}
			vf.Service = name
		}
		out = append(out, vf)
	}
	return out, nil
}
