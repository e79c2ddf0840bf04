package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
	"berth.dev/berth/volumes"
	vlocal "berth.dev/berth/volumes/local"
)

// openVolumes opens the local volume manager of the state root; a volume
// is in use while a container of the runtime mounts it.
func (g *globals) openVolumes() (*vlocal.Manager, error) {
	root, err := state.Open(g.stateRoot())
	if err != nil {
		return nil, err
	}
	vm, err := vlocal.New(root)
	if err != nil {
		return nil, err
	}
	vm.InUse = func(name string) ([]string, error) {
		users, err := g.volumeUsers(context.Background(), vm)
		if err != nil {
			return nil, err
		}
		return users[name], nil
	}
	g.sweepAutoRemoved(context.Background(), vm)
	return vm, nil
}

// sweepAutoRemoved removes the anonymous volumes of --rm containers that
// are gone: a detached --rm container is removed by its shim, which
// cannot reach the volumes. A volume younger than a few seconds is left
// alone (its container may be being created right now).
func (g *globals) sweepAutoRemoved(ctx context.Context, vm *vlocal.Manager) {
	vols, err := vm.List(ctx, volumes.Filter{Labels: map[string]string{volumes.LabelAutoRemove: "true"}})
	if err != nil || len(vols) == 0 {
		return
	}
	users, err := g.volumeUsers(ctx, vm)
	if err != nil {
		return
	}
	for _, v := range vols {
		if v.Anonymous && time.Since(v.Created) > 2*time.Second && len(users[v.Name]) == 0 {
			vm.Remove(ctx, v.Name) // in use after all (a race): ErrConflict, kept
		}
	}
}

// volumeUsers maps each volume's name to the containers (names) whose
// spec mounts it.
func (g *globals) volumeUsers(ctx context.Context, vm *vlocal.Manager) (map[string][]string, error) {
	vols, err := vm.List(ctx, volumes.Filter{})
	if err != nil {
		return nil, err
	}
	bySource := map[string]string{}
	for _, v := range vols {
		if _, src, _ := vm.MountFor(v); src != "" {
			bySource[src] = v.Name
		}
	}
	rt, _, err := g.openRuntime()
	if err != nil {
		return nil, err
	}
	infos, err := rt.List(ctx, runtime.Filter{})
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	for _, in := range infos {
		c, err := rt.Find(in.ID)
		if err != nil {
			continue // removed meanwhile
		}
		m, err := c.Meta()
		if err != nil || m.Spec.OCI == nil {
			continue
		}
		for _, om := range m.Spec.OCI.Mounts {
			if name, ok := bySource[filepath.Clean(om.Source)]; ok && om.Source != "" && !slices.Contains(users[name], in.Name) {
				users[name] = append(users[name], in.Name)
			}
		}
	}
	return users, nil
}

// namedVolumeMount is run -v NAME:/PATH[:OPTS]: the volume (created when
// missing) mounted as its driver options say; OPTS are ro or rw and
// nocopy, comma-separated.
func (g *globals) namedVolumeMount(name, dst string, opts []string) (specs.Mount, error) {
	flag := strings.Join(append([]string{name, dst}, opts...), ":")
	if err := state.ValidName("volume", name); err != nil {
		return specs.Mount{}, errUsage("-v %q: %q is not a volume name (names are [a-zA-Z0-9][a-zA-Z0-9_.-]*; host paths must be absolute)", flag, name)
	}
	if !strings.HasPrefix(dst, "/") {
		return specs.Mount{}, errUsage("-v %q: the container path %q must be absolute", flag, dst)
	}
	if len(opts) > 1 {
		return specs.Mount{}, errUsage("-v %q: write VOLUME:/CONTAINER/PATH[:OPTIONS], options separated by commas", flag)
	}
	mode, nocopy := "rw", false
	if len(opts) == 1 {
		for _, o := range strings.Split(opts[0], ",") {
			switch o {
			case "ro", "rw":
				mode = o
			case "nocopy":
				nocopy = true
			case "z", "Z": // SELinux relabelling: nothing to do without SELinux
			default:
				return specs.Mount{}, errUsage("-v %q: unknown option %q (use ro, rw or nocopy)", flag, o)
			}
		}
	}
	vm, err := g.openVolumes()
	if err != nil {
		return specs.Mount{}, err
	}
	ctx := context.Background()
	v, err := vm.Inspect(ctx, name)
	if errdefs.IsNotFound(err) {
		v, err = vm.Create(ctx, volumes.Spec{Name: name})
	}
	if err != nil {
		return specs.Mount{}, err
	}
	typ, src, base := vm.MountFor(v)
	m := specs.Mount{Type: typ, Source: src, Destination: dst, Options: append(base, mode)}
	if nocopy && typ == "volume" {
		m.Options = append(m.Options, "nocopy")
	}
	return m, nil
}

// runMounts are the mounts of run and create, in Docker's order: the
// --tmpfs, -v and --mount ones (no two at one target), then those of
// --volumes-from at the targets they leave free, then an anonymous
// volume for each image VOLUME nothing covers.
func (g *globals) runMounts(o *createOpts, imageVolumes map[string]struct{}) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, t := range o.tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		m := specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: dst, Options: []string{"nosuid", "nodev", "noexec"}}
		if opts != "" {
			m.Options = append(m.Options, strings.Split(opts, ",")...)
		}
		out = append(out, m)
	}
	for _, v := range o.volumes {
		m, err := g.volumeFlagMount(o, v)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for _, v := range o.mounts {
		m, err := g.mountFlagMount(o, v)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	taken := map[string]bool{}
	for _, m := range out {
		d := path.Clean(m.Destination)
		if !path.IsAbs(m.Destination) {
			return nil, errUsage("mount target %q: the container path must be absolute", m.Destination)
		}
		if taken[d] {
			return nil, errUsage("duplicate mount point: %s", d)
		}
		taken[d] = true
	}
	for _, f := range o.volumesFrom {
		ms, err := g.volumesFromMounts(context.Background(), f)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if d := path.Clean(m.Destination); !taken[d] {
				taken[d] = true
				out = append(out, m)
			}
		}
	}
	for _, d := range slices.Sorted(maps.Keys(imageVolumes)) {
		clean := path.Clean(d)
		if !path.IsAbs(d) || clean == "/" || taken[clean] {
			continue
		}
		taken[clean] = true
		m, err := g.anonymousVolumeMount(o, clean, false, false)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// volumeFlagMount is one -v: /PATH (an anonymous volume),
// NAME:/PATH[:OPTS] (a named volume, created when missing) or
// /HOST:/PATH[:OPTS] (a bind; a missing host dir is created, as Docker
// does). Bind options: ro, rw, z, Z (no SELinux here: ignored) and a
// propagation.
func (g *globals) volumeFlagMount(o *createOpts, v string) (specs.Mount, error) {
	parts := strings.Split(v, ":")
	switch {
	case len(parts) == 1 && strings.HasPrefix(v, "/"):
		return g.anonymousVolumeMount(o, path.Clean(v), false, false)
	case len(parts) >= 2 && parts[0] != "" && !strings.Contains(parts[0], "/"):
		return g.namedVolumeMount(parts[0], parts[1], parts[2:])
	case len(parts) < 2 || len(parts) > 3 || !strings.HasPrefix(parts[0], "/") || !strings.HasPrefix(parts[1], "/"):
		return specs.Mount{}, errUsage("-v %q: write /CONTAINER/PATH (an anonymous volume), /HOST/PATH:/CONTAINER/PATH[:ro] or VOLUME:/CONTAINER/PATH[:ro|rw][,nocopy]", v)
	}
	m := specs.Mount{Type: "bind", Source: filepath.Clean(parts[0]), Destination: parts[1], Options: []string{"rbind"}}
	if len(parts) == 3 {
		for _, opt := range strings.Split(parts[2], ",") {
			switch opt {
			case "ro":
				m.Options = append(m.Options, "ro")
			case "rw", "z", "Z":
			case "private", "rprivate", "shared", "rshared", "slave", "rslave":
				m.Options = append(m.Options, opt)
			default:
				return specs.Mount{}, errUsage("-v %q: unknown bind option %q (use ro, rw or a propagation such as rslave)", v, opt)
			}
		}
	}
	vm, err := g.openVolumes()
	if err != nil {
		return specs.Mount{}, err
	}
	if err := vm.EnsureHostPath(context.Background(), m.Source, true); err != nil {
		return specs.Mount{}, fmt.Errorf("-v %s: %w", v, err)
	}
	return m, nil
}

// mountFlagMount is one --mount: type=bind|volume|tmpfs (volume when
// left out), source= (src=), target= (destination=, dst=), readonly (ro)
// [=true|false], volume-nocopy[=true|false], bind-propagation=,
// tmpfs-size=, tmpfs-mode=. A bind's source must exist; a volume without
// source is anonymous, a named one is created when missing.
func (g *globals) mountFlagMount(o *createOpts, flag string) (specs.Mount, error) {
	fields, err := csv.NewReader(strings.NewReader(flag)).Read()
	if err != nil {
		return specs.Mount{}, errUsage("--mount %q: %v", flag, err)
	}
	typ, src, dst, prop := "volume", "", "", ""
	var ro, nocopy bool
	var tmpfsOpts []string
	boolOf := func(k, v string, has bool) (bool, error) {
		switch {
		case !has:
			return true, nil
		case v == "true" || v == "1":
			return true, nil
		case v == "false" || v == "0":
			return false, nil
		}
		return false, errUsage("--mount %q: %s=%q is not true or false", flag, k, v)
	}
	for _, f := range fields {
		k, v, has := strings.Cut(strings.TrimSpace(f), "=")
		switch strings.ToLower(k) {
		case "type":
			typ = v
		case "source", "src":
			src = v
		case "target", "destination", "dst":
			dst = v
		case "readonly", "ro":
			if ro, err = boolOf(k, v, has); err != nil {
				return specs.Mount{}, err
			}
		case "volume-nocopy":
			if nocopy, err = boolOf(k, v, has); err != nil {
				return specs.Mount{}, err
			}
		case "bind-propagation":
			prop = v
		case "tmpfs-size":
			n, err := units.RAMInBytes(v)
			if err != nil || n <= 0 {
				return specs.Mount{}, errUsage("--mount %q: tmpfs-size %q is not a size such as 64m", flag, v)
			}
			tmpfsOpts = append(tmpfsOpts, "size="+strconv.FormatInt(n, 10))
		case "tmpfs-mode":
			if _, err := strconv.ParseUint(v, 8, 32); err != nil {
				return specs.Mount{}, errUsage("--mount %q: tmpfs-mode %q is not an octal mode such as 1777", flag, v)
			}
			tmpfsOpts = append(tmpfsOpts, "mode="+v)
		case "volume-driver":
			if v != "local" {
				return specs.Mount{}, errUsage("--mount %q: volume-driver %q: berth has the local driver only", flag, v)
			}
		case "consistency", "bind-selinux":
		default:
			return specs.Mount{}, errUsage("--mount %q: unknown key %q (berth knows type, source, target, readonly, volume-nocopy, bind-propagation, tmpfs-size and tmpfs-mode)", flag, k)
		}
	}
	if !strings.HasPrefix(dst, "/") {
		return specs.Mount{}, errUsage("--mount %q: give target=/CONTAINER/PATH", flag)
	}
	if prop != "" && typ != "bind" {
		return specs.Mount{}, errUsage("--mount %q: bind-propagation is for type=bind", flag)
	}
	if len(tmpfsOpts) > 0 && typ != "tmpfs" {
		return specs.Mount{}, errUsage("--mount %q: tmpfs-size and tmpfs-mode are for type=tmpfs", flag)
	}
	if nocopy && typ != "volume" {
		return specs.Mount{}, errUsage("--mount %q: volume-nocopy is for type=volume", flag)
	}
	switch typ {
	case "bind":
		if !strings.HasPrefix(src, "/") {
			return specs.Mount{}, errUsage("--mount %q: a bind needs source=/HOST/PATH", flag)
		}
		if _, err := os.Stat(src); err != nil {
			return specs.Mount{}, errdefs.Invalidf("--mount %q: bind source path %s does not exist (--mount never creates it; -v does)", flag, src)
		}
		m := specs.Mount{Type: "bind", Source: filepath.Clean(src), Destination: dst, Options: []string{"rbind"}}
		if ro {
			m.Options = append(m.Options, "ro")
		}
		if prop != "" {
			m.Options = append(m.Options, prop)
		}
		return m, nil
	case "tmpfs":
		if src != "" {
			return specs.Mount{}, errUsage("--mount %q: a tmpfs takes no source", flag)
		}
		m := specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: dst, Options: append([]string{"nosuid", "nodev", "noexec"}, tmpfsOpts...)}
		if ro {
			m.Options = append(m.Options, "ro")
		}
		return m, nil
	case "volume":
		if src == "" {
			return g.anonymousVolumeMount(o, path.Clean(dst), ro, nocopy)
		}
		var opts []string
		if ro {
			opts = append(opts, "ro")
		}
		if nocopy {
			opts = append(opts, "nocopy")
		}
		if len(opts) > 0 {
			return g.namedVolumeMount(src, dst, []string{strings.Join(opts, ",")})
		}
		return g.namedVolumeMount(src, dst, nil)
	}
	return specs.Mount{}, errUsage("--mount %q: type %q: use bind, volume or tmpfs", flag, typ)
}

// anonymousVolumeMount makes an anonymous volume for run -v /PATH,
// --mount type=volume without a source, or an image VOLUME: a 64-hex
// name, labelled com.docker.volume.anonymous (and, when the container is
// named, dev.berth.anonymous-for=NAME:PATH). o remembers it, so a run
// that leaves no container removes it again.
func (g *globals) anonymousVolumeMount(o *createOpts, dst string, ro, nocopy bool) (specs.Mount, error) {
	vm, err := g.openVolumes()
	if err != nil {
		return specs.Mount{}, err
	}
	labels := map[string]string{volumes.LabelAnonymous: ""}
	if o.rm {
		labels[volumes.LabelAutoRemove] = "true"
	}
	if o.name != "" {
		labels[volumes.LabelAnonymousFor] = o.name + ":" + dst
	}
	v, err := vm.Create(context.Background(), volumes.Spec{Labels: labels})
	if err != nil {
		return specs.Mount{}, err
	}
	o.anonVolumes = append(o.anonVolumes, v.Name)
	typ, src, base := vm.MountFor(v)
	m := specs.Mount{Type: typ, Source: src, Destination: dst, Options: base}
	if ro {
		m.Options = append(m.Options, "ro")
	}
	if nocopy {
		m.Options = append(m.Options, "nocopy")
	}
	return m, nil
}

// volumesFromMounts are the volume and bind mounts of the container ref
// (--volumes-from NAME[:ro|rw]): in its mode, or all read-only with :ro.
// Its tmpfs mounts and the secret and config files written for it stay
// its own.
func (g *globals) volumesFromMounts(ctx context.Context, flag string) ([]specs.Mount, error) {
	ref, mode, _ := strings.Cut(flag, ":")
	if ref == "" || (mode != "" && mode != "ro" && mode != "rw") {
		return nil, errUsage("--volumes-from %q: write CONTAINER[:ro|rw]", flag)
	}
	rt, _, err := g.openRuntime()
	if err != nil {
		return nil, err
	}
	c, err := rt.Find(ref)
	if err != nil {
		return nil, fmt.Errorf("--volumes-from %s: %w", ref, err)
	}
	ms, err := c.Mounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("--volumes-from %s: %w", ref, err)
	}
	vm, err := g.openVolumes()
	if err != nil {
		return nil, err
	}
	var out []specs.Mount
	for _, m := range ms {
		if (m.Type != "volume" && m.Type != "bind") || vm.OwnsFile(m.Source) {
			continue
		}
		if mode == "ro" {
			m.Options = slices.DeleteFunc(m.Options, func(o string) bool { return o == "ro" || o == "rw" })
			m.Options = append(m.Options, "ro")
		}
		out = append(out, m)
	}
	return out, nil
}

// removeAnonymous removes the anonymous volumes among the sources of
// mounts (a removed container's) that no container uses any more, and
// names (volumes made for a container that was never created).
func (g *globals) removeAnonymous(ctx context.Context, mounts []specs.Mount, names ...string) error {
	if len(mounts) == 0 && len(names) == 0 {
		return nil
	}
	vm, err := g.openVolumes()
	if err != nil {
		return err
	}
	vols, err := vm.List(ctx, volumes.Filter{})
	if err != nil {
		return err
	}
	sources := map[string]bool{}
	for _, m := range mounts {
		sources[filepath.Clean(m.Source)] = true
	}
	var errs []error
	for _, v := range vols {
		if !v.Anonymous {
			continue
		}
		_, src, _ := vm.MountFor(v)
		if !slices.Contains(names, v.Name) && (src == "" || !sources[src]) {
			continue
		}
		if err := vm.Remove(ctx, v.Name); err != nil && !errdefs.IsConflict(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeWithVolumes is container rm: the container and its endpoints,
// the secret and config files written for it and, with RemoveVolumes,
// its anonymous volumes no other container uses.
func (g *globals) removeWithVolumes(ctx context.Context, c *linux.Container, o runtime.RemoveOptions) error {
	ms, _ := c.Mounts(ctx)
	var project string
	if m, err := c.Meta(); err == nil {
		project = m.Spec.Labels[runtime.LabelProject]
	}
	if err := g.removeNetworked(ctx, c, o); err != nil {
		return err
	}
	var errs []error
	if vm, err := g.openVolumes(); err == nil && project != "" {
		var owned []string
		for _, m := range ms {
			if vm.OwnsFile(m.Source) {
				owned = append(owned, m.Source)
			}
		}
		if len(owned) > 0 {
			errs = append(errs, vm.ReleaseFiles(ctx, project, owned))
		}
	}
	if o.RemoveVolumes {
		errs = append(errs, g.removeAnonymous(ctx, ms))
	}
	return errors.Join(errs...)
}

func newVolumeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "volume COMMAND",
		Short: "Manage volumes",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newVolumeLsCmd(g), newVolumeCreateCmd(g), newVolumeInspectCmd(g), newVolumeRmCmd(g), newVolumePruneCmd(g))
	return cmd
}

// volumeFilter is --filter: label=KEY, label=KEY=VALUE, dangling=true|false.
type volumeFilter struct {
	labels   map[string]string // KEY=VALUE: the manager's filter
	has      []string          // KEY alone: present with any value
	dangling *bool
}

func parseVolumeFilters(fs []string) (volumeFilter, error) {
	vf := volumeFilter{labels: map[string]string{}}
	for _, f := range fs {
		k, v, ok := strings.Cut(f, "=")
		switch {
		case ok && k == "label":
			if lk, lv, hasValue := strings.Cut(v, "="); hasValue {
				vf.labels[lk] = lv
			} else {
				vf.has = append(vf.has, v)
			}
		case ok && k == "dangling" && (v == "true" || v == "1" || v == "false" || v == "0"):
			d := v == "true" || v == "1"
			vf.dangling = &d
		default:
			return vf, errUsage("--filter %q: berth filters volumes by label=KEY[=VALUE] and dangling=true|false", f)
		}
	}
	return vf, nil
}

// list returns the volumes matching the filter, with their users when
// the filter or the caller needs them.
func (vf volumeFilter) list(ctx context.Context, g *globals, vm *vlocal.Manager, needUsers bool) ([]volumes.Volume, map[string][]string, error) {
	vols, err := vm.List(ctx, volumes.Filter{Labels: vf.labels})
	if err != nil {
		return nil, nil, err
	}
	var users map[string][]string
	if needUsers || vf.dangling != nil {
		if users, err = g.volumeUsers(ctx, vm); err != nil {
			return nil, nil, err
		}
	}
	out := vols[:0]
	for _, v := range vols {
		ok := true
		for _, k := range vf.has {
			if _, has := v.Labels[k]; !has {
				ok = false
			}
		}
		if vf.dangling != nil && (len(users[v.Name]) == 0) != *vf.dangling {
			ok = false
		}
		if ok {
			out = append(out, v)
		}
	}
	return out, users, nil
}

func newVolumeLsCmd(g *globals) *cobra.Command {
	var format string
	var quiet bool
	var filters []string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "" && format != "table" && format != "json" {
				return errUsage("--format %q: use table or json", format)
			}
			vf, err := parseVolumeFilters(filters)
			if err != nil {
				return err
			}
			vm, err := g.openVolumes()
			if err != nil {
				return err
			}
			vols, _, err := vf.list(cmd.Context(), g, vm, false)
			if err != nil {
				return err
			}
			switch {
			case quiet:
				for _, v := range vols {
					fmt.Fprintln(g.stdout, v.Name)
				}
				return nil
			case format == "json":
				return jsonLines(g.stdout, vols, func(x volumes.Volume) any { return volumeRow(x) })
			}
			t := display.NewTable("DRIVER", "VOLUME NAME")
			for _, v := range vols {
				t.Row(v.Driver, v.Name)
			}
			return t.Write(g.stdout)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "Format output: table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "Provide filter values (label=KEY[=VALUE], dangling=true|false)")
	return cmd
}

// volumeRow is ls --format json, with Docker's field names.
func volumeRow(v volumes.Volume) map[string]string {
	labels := []string{}
	for k, val := range v.Labels {
		labels = append(labels, k+"="+val)
	}
	sort.Strings(labels)
	return map[string]string{"Name": v.Name, "Driver": v.Driver, "Scope": "local", "Mountpoint": v.Mountpoint,
		"Labels": strings.Join(labels, ","), "Links": "N/A", "Size": "N/A"}
}

func newVolumeCreateCmd(g *globals) *cobra.Command {
	var driver string
	var labels, opts []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s := volumes.Spec{Driver: driver}
			if len(args) == 1 {
				s.Name = args[0]
			}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				if k == "" {
					return errUsage("--label %q: write KEY=VALUE", l)
				}
				if s.Labels == nil {
					s.Labels = map[string]string{}
				}
				s.Labels[k] = v
			}
			for _, o := range opts {
				k, v, ok := strings.Cut(o, "=")
				if !ok || k == "" {
					return errUsage("--opt %q: write KEY=VALUE (type=, o=, device=)", o)
				}
				if s.DriverOpts == nil {
					s.DriverOpts = map[string]string{}
				}
				s.DriverOpts[k] = v
			}
			vm, err := g.openVolumes()
			if err != nil {
				return err
			}
			v, err := vm.Create(cmd.Context(), s)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, v.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "local", "Specify volume driver name")
	f.StringArrayVar(&labels, "label", nil, "Set metadata for a volume")
	f.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options (type=none o=bind device=/dir, or type=tmpfs o=size=64m)")
	return cmd
}

func newVolumeInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vm, err := g.openVolumes()
			if err != nil {
				return err
			}
			out := []any{}
			var errs []error
			for _, name := range args {
				v, err := vm.Inspect(cmd.Context(), name)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				out = append(out, map[string]any{"Name": v.Name, "Driver": v.Driver, "Mountpoint": v.Mountpoint,
					"Labels": nilIfEmpty(v.Labels), "Options": nilIfEmpty(v.DriverOpts), "Scope": "local",
					"CreatedAt": v.Created.Format(time.RFC3339)})
			}
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "    ")
			if err := enc.Encode(out); err != nil {
				return err
			}
			return errors.Join(errs...)
		},
	}
}

// nilIfEmpty gives Docker's null for an empty map.
func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func newVolumeRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vm, err := g.openVolumes()
			if err != nil {
				return err
			}
			var errs []error
			for _, name := range args {
				if _, err := vm.Inspect(cmd.Context(), name); err != nil {
					if !force || !errdefs.IsNotFound(err) {
						errs = append(errs, err)
					}
					continue
				}
				if err := vm.Remove(cmd.Context(), name); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(g.stdout, name)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not fail on volumes that do not exist (volumes in use are still refused)")
	return cmd
}

func newVolumePruneCmd(g *globals) *cobra.Command {
	var all, force bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused volumes (anonymous ones only, unless -a)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vf, err := parseVolumeFilters(filters)
			if err != nil {
				return err
			}
			vm, err := g.openVolumes()
			if err != nil {
				return err
			}
			vols, users, err := vf.list(cmd.Context(), g, vm, true)
			if err != nil {
				return err
			}
			var deleted []string
			var reclaimed int64
			var errs []error
			for _, v := range vols {
				if (!all && !v.Anonymous) || len(users[v.Name]) > 0 {
					continue
				}
				size := volumeSize(vm, v)
				if err := vm.Remove(cmd.Context(), v.Name); err != nil {
					if !errdefs.IsConflict(err) { // in use by now: not unused
						errs = append(errs, err)
					}
					continue
				}
				deleted = append(deleted, v.Name)
				reclaimed += size
			}
			if len(deleted) > 0 {
				fmt.Fprintln(g.stdout, "Deleted Volumes:")
				for _, n := range deleted {
					fmt.Fprintln(g.stdout, n)
				}
				fmt.Fprintln(g.stdout)
			}
			fmt.Fprintf(g.stdout, "Total reclaimed space: %s\n", units.HumanSize(float64(reclaimed)))
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "Provide filter values (label=KEY[=VALUE])")
	return cmd
}

// volumeSize is the bytes in a volume's own data dir (0 for bind and
// tmpfs volumes, whose data is not the volume's to reclaim).
func volumeSize(vm *vlocal.Manager, v volumes.Volume) int64 {
	if typ, _, _ := vm.MountFor(v); typ != "volume" {
		return 0
	}
	var n int64
	filepath.WalkDir(v.Mountpoint, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
