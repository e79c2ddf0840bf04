package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/network"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
	"berth.dev/berth/volumes"
)

// Label keys compose puts on networks and volumes (the key in the file).
const (
	LabelNetworkKey = "com.docker.compose.network"
	LabelVolumeKey  = "com.docker.compose.volume"
)

// defaultStopTimeout is Docker's, when neither -t nor stop_grace_period
// says otherwise.
const defaultStopTimeout = 10 * time.Second

// do runs one action.
func (r *exRun) do(ctx context.Context, n *exNode) error {
	a := n.a
	switch a.Kind {
	case PullImage, BuildImage:
		return r.doImage(ctx, a)
	case CreateNetwork:
		return r.doCreateNetwork(ctx, a)
	case RemoveNetwork:
		return r.doRemoveNetwork(ctx, a)
	case CreateVolume:
		return r.doCreateVolume(ctx, a)
	case RemoveVolume:
		return r.doRemoveVolume(ctx, a)
	case CreateContainer:
		_, err := r.createContainer(ctx, n, "")
		return err
	case StartContainer:
		return r.doStart(ctx, n, false)
	case RestartContainer:
		return r.doStart(ctx, n, true)
	case StopContainer:
		return r.doStop(ctx, n)
	case RemoveContainer:
		return r.doRemove(ctx, n)
	case RecreateContainer:
		return r.doRecreate(ctx, n)
	}
	return errdefs.Invalidf("unknown action kind %d", a.Kind)
}

// resource is the Resource of a's events, with the real name; live
// allows asking the runtime (an orphan's name comes from its container).
func (r *exRun) resource(a *Action, live bool) string {
	m := r.e.Model
	kind, key, _ := strings.Cut(a.Resource, ":")
	switch a.Kind {
	case CreateNetwork, RemoveNetwork:
		if nc, ok := m.Project.Networks[key]; ok {
			return kind + ":" + exNetworkName(m, key, nc)
		}
	case CreateVolume, RemoveVolume:
		if vc, ok := m.Project.Volumes[key]; ok {
			return kind + ":" + exVolumeName(m, key, vc)
		}
	case CreateContainer, StartContainer, StopContainer, RemoveContainer, RecreateContainer, RestartContainer:
		// The container's own name (a duplicate, an orphan), except for a
		// recreate, which makes the replica's.
		if live && a.Target != "" && a.Kind != RecreateContainer && r.e.Deps.Runtime != nil {
			if c, err := r.e.Deps.Runtime.Load(r.ctx, a.Target); err == nil {
				if info, err := c.Info(r.ctx); err == nil {
					return "container:" + info.Name
				}
			}
		}
		if name := r.desiredName(a); name != "" {
			return "container:" + name
		}
	}
	return a.Resource
}

// resourceKey is what follows "network:", "volume:" or "image:".
func resourceKey(a *Action) string {
	_, key, _ := strings.Cut(a.Resource, ":")
	return key
}

func exNetworkName(m *project.Model, key string, nc types.NetworkConfig) string {
	if nc.Name != "" {
		return nc.Name
	}
	if nc.External {
		return key
	}
	return m.Name + "_" + key
}

func exVolumeName(m *project.Model, key string, vc types.VolumeConfig) string {
	if vc.Name != "" {
		return vc.Name
	}
	if vc.External {
		return key
	}
	return m.Name + "_" + key
}

// exImageRef is the reference a service runs: image:, else the name
// compose gives a built image, <project>-<service>.
func exImageRef(m *project.Model, svc types.ServiceConfig) string {
	if ref := ImageRef(m.Name, svc); ref != "" {
		return ref
	}
	return m.Name + "-" + svc.Name
}

// resolveImage finds a local image, with a message saying what to do
// when it is not there.
func (r *exRun) resolveImage(ctx context.Context, ref string, build bool) (ResolvedImage, error) {
	if r.e.Deps.Images == nil {
		return ResolvedImage{}, errdefs.Unavailablef("image %s: no image store to resolve it in", ref)
	}
	img, err := r.e.Deps.Images.Resolve(ctx, ref)
	if err == nil {
		return img, nil
	}
	if !errdefs.IsNotFound(err) {
		return ResolvedImage{}, fmt.Errorf("image %s: %w", ref, err)
	}
	todo := "pull it (berth pull, berth image pull " + ref + ") or import or load it (berth image import FILE " + ref + ")"
	if build {
		todo = "build it (berth build, or up without --no-build)"
	}
	return ResolvedImage{}, &exMissingImage{ref: ref, todo: todo, err: err}
}

// exMissingImage says an image is not local and what to do; it unwraps
// to the resolver's error.
type exMissingImage struct {
	ref, todo string
	err       error
}

func (e *exMissingImage) Error() string {
	return fmt.Sprintf("image %s is not present locally: %s", e.ref, e.todo)
}

func (e *exMissingImage) Unwrap() error { return e.err }

func (r *exRun) doImage(ctx context.Context, a *Action) error {
	ref := resourceKey(a)
	if svc, ok := r.e.Model.Project.Services[a.Service]; ok && ref == "" {
		ref = exImageRef(r.e.Model, svc)
	}
	_, err := r.resolveImage(ctx, ref, a.Kind == BuildImage)
	return err
}

// ---- networks and volumes ----

// NetworkSpec is the network.Spec of the project network key: its real
// name, its labels plus the project's and compose's key label, internal,
// enable_ipv6, the first IPv4 and IPv6 ipam.config pools and the bridge
// name and MTU driver_opts.
func NetworkSpec(m *project.Model, key string) (network.Spec, error) {
	nc, ok := m.Project.Networks[key]
	if !ok {
		return network.Spec{}, errdefs.Invalidf("network %q is not defined in the project", key)
	}
	bad := func(format string, args ...any) error {
		return errdefs.Invalidf("network %q: "+format, append([]any{key}, args...)...)
	}
	if d := nc.Driver; d != "" && d != "bridge" {
		return network.Spec{}, bad("driver %q is not supported: berth makes bridge networks (leave driver out)", d)
	}
	s := network.Spec{Name: exNetworkName(m, key, nc), Internal: nc.Internal}
	s.Labels = maps.Clone(map[string]string(nc.Labels))
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels[runtime.LabelProject] = m.Name
	s.Labels[LabelNetworkKey] = key
	if nc.EnableIPv6 != nil {
		s.EnableIPv6 = *nc.EnableIPv6
	}
	for i, pool := range nc.Ipam.Config {
		if pool == nil || pool.Subnet == "" {
			continue
		}
		sub, err := netip.ParsePrefix(pool.Subnet)
		if err != nil {
			return network.Spec{}, bad("ipam.config[%d].subnet %q is not a subnet such as 172.28.0.0/16", i, pool.Subnet)
		}
		if sub.Addr().Is6() {
			if !s.Subnet6.IsValid() {
				s.Subnet6 = sub.Masked()
			}
			continue
		}
		if s.Subnet.IsValid() {
			continue
		}
		s.Subnet = sub.Masked()
		if pool.Gateway != "" {
			gw, err := netip.ParseAddr(pool.Gateway)
			if err != nil || !sub.Contains(gw) {
				return network.Spec{}, bad("ipam.config[%d].gateway %q is not an address in %s", i, pool.Gateway, pool.Subnet)
			}
			s.Gateway = gw
		}
		if pool.IPRange != "" {
			rg, err := netip.ParsePrefix(pool.IPRange)
			if err != nil || !sub.Contains(rg.Addr()) || rg.Bits() < sub.Bits() {
				return network.Spec{}, bad("ipam.config[%d].ip_range %q is not a subnet of %s", i, pool.IPRange, pool.Subnet)
			}
			s.IPRange = rg.Masked()
		}
	}
	if b := nc.DriverOpts["com.docker.network.bridge.name"]; b != "" {
		s.BridgeName = b
	}
	if v := nc.DriverOpts["com.docker.network.driver.mtu"]; v != "" {
		mtu, err := strconv.Atoi(v)
		if err != nil || mtu < 68 || mtu > 65535 {
			return network.Spec{}, bad("driver_opts com.docker.network.driver.mtu %q is not an MTU (68-65535)", v)
		}
		s.MTU = mtu
	}
	return s, nil
}

func (r *exRun) networks() (network.Manager, error) {
	if r.e.Deps.Networks == nil {
		return nil, errdefs.Unavailablef("no network manager")
	}
	return r.e.Deps.Networks, nil
}

func (r *exRun) doCreateNetwork(ctx context.Context, a *Action) error {
	nm, err := r.networks()
	if err != nil {
		return err
	}
	m := r.e.Model
	key := resourceKey(a)
	nc, ok := m.Project.Networks[key]
	if ok && bool(nc.External) {
		name := exNetworkName(m, key, nc)
		if _, err := nm.Inspect(ctx, name); errdefs.IsNotFound(err) {
			return errdefs.NotFoundf("network %s is external but does not exist; create it with 'berth network create %s'", name, name)
		} else if err != nil {
			return err
		}
		return nil
	}
	s, err := NetworkSpec(m, key)
	if err != nil {
		return err
	}
	_, err = nm.Create(ctx, s)
	return err
}

func (r *exRun) doRemoveNetwork(ctx context.Context, a *Action) error {
	nm, err := r.networks()
	if err != nil {
		return err
	}
	m := r.e.Model
	key := resourceKey(a)
	if nc, ok := m.Project.Networks[key]; ok {
		if nc.External {
			return nil // never ours to remove
		}
		return nm.Remove(ctx, exNetworkName(m, key, nc))
	}
	// A network no longer in the file: find it by its labels.
	ns, err := nm.List(ctx, network.Filter{Labels: map[string]string{runtime.LabelProject: m.Name, LabelNetworkKey: key}})
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range ns {
		errs = append(errs, nm.Remove(ctx, n.Name))
	}
	return errors.Join(errs...)
}

// VolumeSpec is the volumes.Spec of the project volume key: its real
// name, labels (plus the project's and compose's key label), driver and
// driver_opts.
func VolumeSpec(m *project.Model, key string) (volumes.Spec, error) {
	vc, ok := m.Project.Volumes[key]
	if !ok {
		return volumes.Spec{}, errdefs.Invalidf("volume %q is not defined in the project", key)
	}
	s := volumes.Spec{Name: exVolumeName(m, key, vc), Driver: vc.Driver, DriverOpts: maps.Clone(map[string]string(vc.DriverOpts))}
	s.Labels = maps.Clone(map[string]string(vc.Labels))
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels[runtime.LabelProject] = m.Name
	s.Labels[LabelVolumeKey] = key
	return s, nil
}

func (r *exRun) doCreateVolume(ctx context.Context, a *Action) error {
	vm := r.e.Deps.Volumes
	if vm == nil {
		return errdefs.Unavailablef("named volumes are not available: berth has no volume manager yet (it comes with the volumes issue)")
	}
	m := r.e.Model
	key := resourceKey(a)
	if vc, ok := m.Project.Volumes[key]; ok && bool(vc.External) {
		name := exVolumeName(m, key, vc)
		if _, err := vm.Inspect(ctx, name); errdefs.IsNotFound(err) {
			return errdefs.NotFoundf("volume %s is external but does not exist; create it with 'berth volume create %s'", name, name)
		} else if err != nil {
			return err
		}
		return nil
	}
	s, err := VolumeSpec(m, key)
	if err != nil {
		return err
	}
	_, err = vm.Create(ctx, s)
	return err
}

func (r *exRun) doRemoveVolume(ctx context.Context, a *Action) error {
	vm := r.e.Deps.Volumes
	if vm == nil {
		return nil // nothing can exist
	}
	m := r.e.Model
	key := resourceKey(a)
	if vc, ok := m.Project.Volumes[key]; ok {
		if vc.External {
			return nil
		}
		return vm.Remove(ctx, exVolumeName(m, key, vc))
	}
	vs, err := vm.List(ctx, volumes.Filter{Labels: map[string]string{runtime.LabelProject: m.Name, LabelVolumeKey: key}})
	if err != nil {
		return err
	}
	if len(vs) == 0 { // an anonymous volume, named by its real name
		return vm.Remove(ctx, key)
	}
	var errs []error
	for _, v := range vs {
		errs = append(errs, vm.Remove(ctx, v.Name))
	}
	return errors.Join(errs...)
}

// ---- containers ----

func (r *exRun) needRuntime() (runtime.Runtime, error) {
	if r.e.Deps.Runtime == nil {
		return nil, errdefs.Unavailablef("no container runtime")
	}
	return r.e.Deps.Runtime, nil
}

// exIsReplica reports an action on a replica ("container:web-2"), not
// on a one-off (whose Resource is its name).
func exIsReplica(a *Action) bool {
	return a.Number > 0 && a.Resource == "container:"+a.Service+"-"+strconv.Itoa(a.Number)
}

// desiredName is the name of a's replica under the model ("" for a
// one-off or a service the model does not have).
func (r *exRun) desiredName(a *Action) string {
	m := r.e.Model
	svc, ok := m.Project.Services[a.Service]
	if !ok || !exIsReplica(a) {
		return ""
	}
	return ContainerName(m.Name, a.Service, a.Number, svc.ContainerName)
}

// findContainer is a's container: id (what this run made), else its
// Target, else, for an action without a Target, the replica's name. A
// Target that is gone is not looked for by name: the name may be
// another container's (a duplicate's keeper, a replacement).
func (r *exRun) findContainer(ctx context.Context, a *Action, id string) (runtime.Container, error) {
	rt, err := r.needRuntime()
	if err != nil {
		return nil, err
	}
	if id != "" {
		if c, err := rt.Load(ctx, id); err == nil || !errdefs.IsNotFound(err) {
			return c, err
		}
	}
	if a.Target != "" {
		c, err := rt.Load(ctx, a.Target)
		if err == nil && !strings.HasPrefix(c.ID(), a.Target) {
			// A container named like the ID, not the container.
			return nil, errdefs.NotFoundf("no such container: %.12s", a.Target)
		}
		return c, err
	}
	name := r.desiredName(a)
	if name == "" && !exIsReplica(a) {
		name = strings.TrimPrefix(a.Resource, "container:")
	}
	if name == "" {
		return nil, errdefs.NotFoundf("no such container: %s", strings.TrimPrefix(a.Resource, "container:"))
	}
	return rt.Load(ctx, name)
}

// stopTimeout is -t, else stop_grace_period, else 10 s.
func (r *exRun) stopTimeout(service string) time.Duration {
	if t := r.e.Options.Timeout; t != nil {
		return *t
	}
	if svc, ok := r.e.Model.Project.Services[service]; ok && svc.StopGracePeriod != nil {
		return time.Duration(*svc.StopGracePeriod)
	}
	return defaultStopTimeout
}

// desired is the spec of a replica under the model, links unresolved.
func (r *exRun) desired(ctx context.Context, service string, number int) (Built, project.ServiceHash, error) {
	m := r.e.Model
	svc, ok := m.Project.Services[service]
	if !ok {
		return Built{}, project.ServiceHash{}, errdefs.Invalidf("service %q is not in the project", service)
	}
	img, err := r.resolveImage(ctx, exImageRef(m, svc), svc.Build != nil)
	if err != nil {
		return Built{}, project.ServiceHash{}, err
	}
	hash, err := project.HashService(svc, img.Digest)
	if err != nil {
		return Built{}, project.ServiceHash{}, err
	}
	built, err := BuildSpec(m, SpecInput{Service: service, Number: number, Image: img, Hash: hash})
	if err != nil {
		return Built{}, project.ServiceHash{}, err
	}
	return built, hash, nil
}

// createContainer makes a's replica and attaches it to its networks;
// oldID is the container a recreate replaces (left alone here). A
// container of that name with the desired config hash is taken as it is
// (a re-run after a crash); anything failing after Create removes the
// container again so the next run starts clean.
func (r *exRun) createContainer(ctx context.Context, n *exNode, oldID string) (runtime.Container, error) {
	a := n.a
	rt, err := r.needRuntime()
	if err != nil {
		return nil, err
	}
	built, hash, err := r.desired(ctx, a.Service, a.Number)
	if err != nil {
		return nil, err
	}
	spec := built.Spec
	if err := r.removeLeftovers(ctx, a, spec.Name, oldID); err != nil {
		return nil, err
	}
	env, hosts, err := r.resolveLinks(ctx, spec, built.Links)
	if err != nil {
		return nil, err
	}
	if len(env) > 0 && spec.OCI != nil && spec.OCI.Process != nil {
		spec.OCI.Process.Env = append(slices.Clone(spec.OCI.Process.Env), env...)
	}
	undoMounts, err := r.resolveMounts(ctx, a, built, &spec, oldID)
	if err != nil {
		return nil, err
	}
	c, err := rt.Create(ctx, spec)
	if errdefs.IsConflict(err) {
		if c, err = r.reuse(ctx, spec, hash, err); err == nil {
			undoMounts() // the container there has mounts of its own
		}
	}
	if err != nil {
		undoMounts()
		return nil, err
	}
	if err := Connect(ctx, r.e.Deps.Networks, c, spec, hosts); err != nil {
		undo := context.WithoutCancel(ctx)
		rerr := c.Remove(undo, runtime.RemoveOptions{Force: true})
		derr := r.disconnectSpec(undo, spec)
		undoMounts()
		return nil, errors.Join(err, exUndoErr(rerr), exUndoErr(derr))
	}
	n.containerID, n.containerName = c.ID(), spec.Name
	r.mu.Lock()
	r.noHealth[c.ID()] = spec.Health == nil
	r.mu.Unlock()
	return c, nil
}

func exUndoErr(err error) error {
	if err == nil || errdefs.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("cleaning up: %w", err)
}

func (r *exRun) disconnectSpec(ctx context.Context, s runtime.ContainerSpec) error {
	var nets []string
	for _, na := range s.Networks {
		nets = append(nets, na.Network)
	}
	return Disconnect(ctx, r.e.Deps.Networks, s.Name, nets)
}

// reuse takes the container holding spec's name when it is the one this
// action would create (same project, service, number and config hash).
func (r *exRun) reuse(ctx context.Context, spec runtime.ContainerSpec, hash project.ServiceHash, conflict error) (runtime.Container, error) {
	c, err := r.e.Deps.Runtime.Load(ctx, spec.Name)
	if err != nil {
		return nil, conflict
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{runtime.LabelProject, runtime.LabelService, runtime.LabelNumber, runtime.LabelOneOff} {
		if info.Labels[k] != spec.Labels[k] {
			return nil, fmt.Errorf("container name %s is taken by another container (%.12s); remove or rename it: %w", spec.Name, info.ID, conflict)
		}
	}
	if info.Labels[runtime.LabelConfigHash] != hash.Hash {
		return nil, fmt.Errorf("container %s exists with another configuration; run again to recreate it: %w", spec.Name, conflict)
	}
	return c, nil
}

// exRenamed matches a container renamed out of the way by a recreate:
// <12 hex of its ID>_<name>.
var exRenamed = regexp.MustCompile(`^([0-9a-f]{12})_(.+)$`)

// removeLeftovers removes what a crashed recreate of this replica left:
// the old container under its <id12>_<name> name (except keep, the one
// being recreated now).
func (r *exRun) removeLeftovers(ctx context.Context, a *Action, name, keep string) error {
	left, err := r.renamedLeftovers(ctx)
	if err != nil {
		return err
	}
	for _, info := range left[a.Service+"\x00"+strconv.Itoa(a.Number)] {
		mm := exRenamed.FindStringSubmatch(info.Name)
		if mm == nil || mm[2] != name || !strings.HasPrefix(info.ID, mm[1]) || info.ID == keep {
			continue
		}
		c, err := r.e.Deps.Runtime.Load(ctx, info.ID)
		if errdefs.IsNotFound(err) {
			continue
		} else if err != nil {
			return err
		}
		if err := r.removeContainer(ctx, c, info.Name, false); err != nil {
			return fmt.Errorf("removing %s, left by an interrupted recreate: %w", info.Name, err)
		}
	}
	return nil
}

// renamedLeftovers are the project's containers named like a recreate's
// old container (<id12>_<name>), by service and number, listed once per
// run: only an interrupted run leaves them, and this run's own recreates
// remove theirs (listing the project for every create made an up of N
// services read N² records).
func (r *exRun) renamedLeftovers(ctx context.Context) (map[string][]runtime.Info, error) {
	r.leftOnce.Do(func() {
		infos, err := r.e.Deps.Runtime.List(ctx, runtime.Filter{Labels: map[string]string{runtime.LabelProject: r.e.Model.Name}})
		if err != nil {
			r.leftErr = err
			return
		}
		r.leftovers = map[string][]runtime.Info{}
		for _, info := range infos {
			if exRenamed.MatchString(info.Name) {
				key := info.Labels[runtime.LabelService] + "\x00" + info.Labels[runtime.LabelNumber]
				r.leftovers[key] = append(r.leftovers[key], info)
			}
		}
	})
	return r.leftovers, r.leftErr
}

// removeContainer force-removes c and detaches its endpoints (named name).
func (r *exRun) removeContainer(ctx context.Context, c runtime.Container, name string, anonVolumes bool) error {
	nw, _ := c.Networking(ctx)
	nets := EndpointNetworks(nw)
	if len(nets) == 0 {
		if info, err := c.Info(ctx); err == nil {
			nets = r.labelNetworks(info.Labels)
		}
	}
	if err := r.removeWithMounts(ctx, c, anonVolumes); err != nil {
		return err
	}
	return Release(ctx, r.e.Deps.Networks, name, nets)
}

// labelNetworks are the real names of the networks LabelNetworks lists.
func (r *exRun) labelNetworks(labels map[string]string) []string {
	m := r.e.Model
	var out []string
	for key := range strings.SplitSeq(labels[LabelNetworks], ",") {
		key = strings.TrimSpace(key)
		if key == "" {
			continue
		}
		if nc, ok := m.Project.Networks[key]; ok {
			out = append(out, exNetworkName(m, key, nc))
		} else {
			out = append(out, m.Name+"_"+key)
		}
	}
	return out
}

// resolveLinks turns links into environment variables and /etc/hosts
// lines: each target must run on a network of spec's.
func (r *exRun) resolveLinks(ctx context.Context, spec runtime.ContainerSpec, links []Link) ([]string, []runtime.HostEntry, error) {
	var env []string
	var hosts []runtime.HostEntry
	m := r.e.Model
	rt := r.e.Deps.Runtime
	for _, l := range links {
		alias := l.Alias
		if alias == "" {
			alias = l.Service
		}
		var c runtime.Container
		var err error
		t := LinkTarget{}
		if l.External {
			c, err = rt.Load(ctx, l.Service)
			if errdefs.IsNotFound(err) {
				return nil, nil, errdefs.NotFoundf("external_links %s: no such container: start it first", l.Service)
			}
		} else {
			c, err = r.linkReplica(ctx, l.Service)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("link to %s: %w", alias, err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("link to %s: %w", alias, err)
		}
		if info.Status != runtime.StatusRunning {
			return nil, nil, errdefs.Conflictf("link to %s: container %s is %s; start it first", alias, info.Name, info.Status)
		}
		t.Name = info.Name
		if t.Networking, err = c.Networking(ctx); err != nil {
			return nil, nil, fmt.Errorf("link to %s: %w", alias, err)
		}
		if ts, ok := m.Project.Services[l.Service]; ok && !l.External {
			t.Names = []string{l.Service}
			var exposed []string
			var imgEnv []string
			if img, err := r.resolveImage(ctx, exImageRef(m, ts), ts.Build != nil); err == nil {
				exposed, imgEnv = img.Config.ExposedPorts, img.Config.Env
			}
			t.Ports = LinkPorts(exposed, ts.Expose)
			for _, p := range ts.Ports {
				if p.Target > 0 && p.Target <= 65535 {
					proto := strings.ToLower(p.Protocol)
					if proto == "" {
						proto = "tcp"
					}
					t.Ports = AppendLinkPort(t.Ports, project.LinkPort{Port: uint16(p.Target), Proto: proto})
				}
			}
			t.Env = specEnv(imgEnv, ts.Environment)
		}
		e, h, err := LinkVars(spec, alias, t)
		if err != nil {
			return nil, nil, err
		}
		env = append(env, e...)
		hosts = append(hosts, h)
	}
	return env, hosts, nil
}

// linkReplica is the container a link to a service points at: replica
// 1, else the lowest-numbered one.
func (r *exRun) linkReplica(ctx context.Context, service string) (runtime.Container, error) {
	infos, err := r.e.Deps.Runtime.List(ctx, runtime.Filter{Labels: map[string]string{
		runtime.LabelProject: r.e.Model.Name, runtime.LabelService: service}})
	if err != nil {
		return nil, err
	}
	best, bestN := "", 0
	for _, info := range infos {
		if info.Labels[runtime.LabelOneOff] == "True" || exRenamed.MatchString(info.Name) {
			continue
		}
		n, err := strconv.Atoi(info.Labels[runtime.LabelNumber])
		if err != nil || n < 1 {
			continue
		}
		if best == "" || n < bestN {
			best, bestN = info.ID, n
		}
	}
	if best == "" {
		return nil, errdefs.NotFoundf("service %s has no container; start it first", service)
	}
	return r.e.Deps.Runtime.Load(ctx, best)
}

// connectSpec is what Connect needs to re-attach an existing container:
// its name and its networks as recorded at its last attach (with the
// model's static addresses), else (fresh: it was never attached, as a
// crash between Create and the attach leaves it) as the model wants them.
func (r *exRun) connectSpec(ctx context.Context, a *Action, c runtime.Container, info runtime.Info) (s runtime.ContainerSpec, fresh bool, err error) {
	s = runtime.ContainerSpec{Name: info.Name}
	if c.NetNS() == "" {
		return s, false, nil
	}
	nw, err := c.Networking(ctx)
	if err != nil {
		return s, false, err
	}
	if len(nw.Endpoints) > 0 {
		static := r.staticAddrs(a.Service)
		for _, ep := range nw.Endpoints {
			na := runtime.NetworkAttachment{Network: ep.Network, Aliases: slices.Clone(ep.Aliases)}
			if st, ok := static[ep.Network]; ok {
				na.IPv4, na.IPv6 = st.IPv4, st.IPv6
			}
			s.Networks = append(s.Networks, na)
		}
		return s, false, nil
	}
	if _, ok := r.e.Model.Project.Services[a.Service]; !ok || info.Labels[runtime.LabelService] != a.Service {
		return s, false, nil
	}
	number, err := strconv.Atoi(info.Labels[runtime.LabelNumber])
	if err != nil {
		number = a.Number
	}
	built, _, err := r.desired(ctx, a.Service, number)
	if err != nil {
		return s, true, err
	}
	s.Networks = built.Spec.Networks
	return s, true, nil
}

// linkHosts are the /etc/hosts lines of the model's links of a's service
// for the container s, resolved now (nil without links).
func (r *exRun) linkHosts(ctx context.Context, a *Action, s runtime.ContainerSpec) ([]runtime.HostEntry, error) {
	svc, ok := r.e.Model.Project.Services[a.Service]
	if !ok {
		return nil, nil
	}
	links := exModelLinks(svc)
	if len(links) == 0 {
		return nil, nil
	}
	_, hosts, err := r.resolveLinks(ctx, s, links)
	return hosts, err
}

// exModelLinks are a service's links then external_links; an alias
// defaults to the name.
func exModelLinks(svc types.ServiceConfig) []Link {
	var out []Link
	for i, list := range [][]string{svc.Links, svc.ExternalLinks} {
		for _, l := range list {
			name, alias, _ := strings.Cut(l, ":")
			if alias == "" {
				alias = name
			}
			out = append(out, Link{Service: name, Alias: alias, External: i == 1})
		}
	}
	return out
}

// staticAddrs are the ipv4_address/ipv6_address a service asks for, by
// real network name.
func (r *exRun) staticAddrs(service string) map[string]runtime.NetworkAttachment {
	m := r.e.Model
	svc, ok := m.Project.Services[service]
	if !ok {
		return nil
	}
	out := map[string]runtime.NetworkAttachment{}
	for key, cfg := range svc.Networks {
		nc, ok := m.Project.Networks[key]
		if !ok || cfg == nil || (cfg.Ipv4Address == "" && cfg.Ipv6Address == "") {
			continue
		}
		out[exNetworkName(m, key, nc)] = runtime.NetworkAttachment{IPv4: cfg.Ipv4Address, IPv6: cfg.Ipv6Address}
	}
	return out
}

// doStart starts a's container (stopping it first for a restart) once
// the services it needs meet their conditions, re-ensuring its network
// attachments.
func (r *exRun) doStart(ctx context.Context, n *exNode, restart bool) error {
	a := n.a
	c, err := r.findContainer(ctx, a, "")
	if err != nil {
		return err
	}
	if restart {
		if err := c.Stop(ctx, r.stopTimeout(a.Service)); err != nil {
			return err
		}
	}
	if err := r.checkNeeds(ctx, a); err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	n.containerID, n.containerName = c.ID(), info.Name
	if info.Status == runtime.StatusRunning || info.Status == runtime.StatusPaused {
		return nil
	}
	s, fresh, err := r.connectSpec(ctx, a, c, info)
	if err != nil {
		return err
	}
	// Link targets may have moved (recreated): their addresses are
	// looked up again. Only a container never attached must have them;
	// others keep the lines they have when a target cannot be resolved.
	hosts, err := r.linkHosts(ctx, a, s)
	if err != nil {
		if fresh {
			return err
		}
		hosts = nil
	}
	if err := Connect(ctx, r.e.Deps.Networks, c, s, hosts); err != nil {
		return err
	}
	err = c.Start(ctx)
	// A published port in use: nothing of the container stays (as run
	// does); a re-run after the port is free creates it again.
	var se *runtime.StartError
	if errors.As(err, &se) && se.PortInUse {
		if rerr := r.removeContainer(context.WithoutCancel(ctx), c, info.Name, false); rerr != nil {
			return errors.Join(err, exUndoErr(rerr))
		}
	}
	return err
}

func (r *exRun) doStop(ctx context.Context, n *exNode) error {
	c, err := r.findContainer(ctx, n.a, "")
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return c.Stop(ctx, r.stopTimeout(n.a.Service))
}

func (r *exRun) doRemove(ctx context.Context, n *exNode) error {
	c, err := r.findContainer(ctx, n.a, "")
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	info, err := c.Info(ctx)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return r.removeContainer(ctx, c, info.Name, r.e.Options.DownVolumes)
}

// doRecreate replaces a's container (Target) with one built from the
// model: stop the old one, detach its endpoints (they are keyed by the
// name the new one takes), rename it <id12>_<name> to free the name,
// create and attach the new one, remove the old one. Every step may run
// again after a crash: a missing old container is skipped, a renamed one
// is not renamed again. The plan's next action starts the new container.
func (r *exRun) doRecreate(ctx context.Context, n *exNode) error {
	a := n.a
	rt, err := r.needRuntime()
	if err != nil {
		return err
	}
	name := r.desiredName(a)
	if name == "" {
		return errdefs.Invalidf("service %q is not in the project", a.Service)
	}
	var old runtime.Container
	var oldName string
	if a.Target != "" {
		old, err = rt.Load(ctx, a.Target)
		if errdefs.IsNotFound(err) {
			old = nil // removed already by an interrupted recreate
		} else if err != nil {
			return err
		}
	}
	if old != nil {
		info, err := old.Info(ctx)
		if err != nil {
			return err
		}
		oldName = info.Name
		if err := old.Stop(ctx, r.stopTimeout(a.Service)); err != nil {
			return fmt.Errorf("stopping the old container: %w", err)
		}
		nw, err := old.Networking(ctx)
		if err != nil {
			return err
		}
		if err := Disconnect(ctx, r.e.Deps.Networks, oldName, EndpointNetworks(nw)); err != nil {
			return err
		}
		if oldName == name {
			oldName = old.ID()[:12] + "_" + name
			if err := old.Rename(ctx, oldName); err != nil {
				return fmt.Errorf("renaming the old container out of the way: %w", err)
			}
		}
	}
	var keep string
	if old != nil {
		keep = old.ID()
	}
	if _, err := r.createContainer(ctx, n, keep); err != nil {
		return err
	}
	if old != nil {
		// Its endpoints went before the rename.
		if err := r.removeWithMounts(ctx, old, r.e.Options.RenewAnon); err != nil {
			return fmt.Errorf("removing the old container %s: %w", oldName, err)
		}
	}
	return nil
}

// ---- waits ----

// checkNeeds checks the depends_on conditions of a on the services that
// have no action in the plan, on every replica found.
func (r *exRun) checkNeeds(ctx context.Context, a *Action) error {
	if len(a.Needs) == 0 {
		return nil
	}
	rt := r.e.Deps.Runtime
	for _, need := range a.Needs {
		infos, err := rt.List(ctx, runtime.Filter{Labels: map[string]string{
			runtime.LabelProject: r.e.Model.Name, runtime.LabelService: need.Service}})
		if err != nil {
			return err
		}
		var ids []string
		for _, info := range infos {
			if info.Labels[runtime.LabelOneOff] != "True" && !exRenamed.MatchString(info.Name) {
				ids = append(ids, info.ID)
			}
		}
		if len(ids) == 0 {
			if !need.Required {
				continue
			}
			return errdefs.NotFoundf("it depends on service %s, which has no container; start it too (berth up %s %s)", need.Service, a.Service, need.Service)
		}
		slices.Sort(ids)
		for _, id := range ids {
			c, err := rt.Load(ctx, id)
			if err != nil {
				return err
			}
			if err := r.waitContainer(ctx, c, need.Service, need.Cond, false); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *Executor) pollEvery() time.Duration {
	if e.poll > 0 {
		return e.poll
	}
	return 100 * time.Millisecond
}

// waitContainer polls c until it meets cond: Started (it ran), Healthy
// (health "healthy"; unhealthy, exited or without a healthcheck fails),
// CompletedSuccessfully (exited 0; another code fails).
func (r *exRun) waitContainer(ctx context.Context, c runtime.Container, service string, cond Condition, noHealth bool) error {
	timeout := r.e.WaitTimeout
	if timeout <= 0 {
		timeout = DefaultWaitTimeout
	}
	grace := r.e.noHealthGrace
	if grace <= 0 {
		grace = 3 * time.Second
	}
	start := time.Now()
	var noHealthSince time.Time
	tick := time.NewTicker(r.e.pollEvery())
	defer tick.Stop()
	for {
		info, err := c.Info(ctx)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return errdefs.NotFoundf("service %s: its container was removed while waiting for it", service)
			}
			return fmt.Errorf("service %s: %w", service, err)
		}
		done, err := exCheck(info, service, cond)
		if done || err != nil {
			return err
		}
		if cond == Healthy && info.Status == runtime.StatusRunning && info.Health == "" {
			if noHealth {
				return exNoHealthcheck(service)
			}
			if noHealthSince.IsZero() {
				noHealthSince = time.Now()
			} else if time.Since(noHealthSince) >= grace {
				return exNoHealthcheck(service)
			}
		} else {
			noHealthSince = time.Time{}
		}
		if time.Since(start) >= timeout {
			what := "become healthy"
			if cond == CompletedSuccessfully {
				what = "complete"
			}
			return fmt.Errorf("service %s did not %s within %s (it is %s)", service, what, timeout, exDescribe(info))
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}

func exNoHealthcheck(service string) error {
	return errdefs.Invalidf("service %s has no healthcheck, so it never becomes healthy; add a healthcheck to it or use depends_on condition service_started", service)
}

// exCheck reports whether info meets cond, or why it never will.
func exCheck(info runtime.Info, service string, cond Condition) (bool, error) {
	ended := info.Status == runtime.StatusExited || info.Status == runtime.StatusDead
	code := -1
	if info.Exit != nil {
		code = info.Exit.Code
	}
	detail := ""
	if info.Error != "" {
		detail = ": " + info.Error
	}
	switch cond {
	case Healthy:
		switch {
		case info.Health == "healthy" && info.Status == runtime.StatusRunning:
			return true, nil
		case info.Health == "unhealthy":
			return false, fmt.Errorf("service %s is unhealthy%s", service, detail)
		case ended:
			return false, fmt.Errorf("service %s exited (%d) before it was healthy%s", service, code, detail)
		case info.Status == runtime.StatusCreated:
			return false, errdefs.Conflictf("service %s is not running (created); start it first", service)
		}
	case CompletedSuccessfully:
		switch {
		case ended && code == 0:
			return true, nil
		case ended:
			return false, fmt.Errorf("service %s didn't complete successfully: exit %d%s", service, code, detail)
		case info.Status == runtime.StatusCreated:
			return false, errdefs.Conflictf("service %s has not run (created); start it first", service)
		}
	default: // Started
		if info.Status == runtime.StatusCreated {
			return false, errdefs.Conflictf("service %s is not running (created); start it first", service)
		}
		return true, nil
	}
	return false, nil
}

func exDescribe(info runtime.Info) string {
	s := info.Status.String()
	if info.Health != "" {
		s += ", " + info.Health
	}
	return s
}
