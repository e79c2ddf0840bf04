package reconcile

import (
	"fmt"
	"sort"
	"strings"

	"berth.dev/berth/project"
	"github.com/compose-spec/compose-go/v2/types"
)

// Compute is the plan that converges o to m under opt: pure (no syscall,
// no clock), deterministic (the same inputs give the same text),
// golden-tested (testdata/*.plan).
//
// Neither m nor o is modified. Errors are input problems (an unknown or
// disabled service, a missing external network or volume, a scale the
// service cannot have) and name the service and resource concerned.
func Compute(m *project.Model, o *Observed, opt Options) (*Plan, error) {
	if m == nil || m.Project == nil {
		return nil, fmt.Errorf("compute: no project model")
	}
	if o == nil {
		o = &Observed{}
	}
	if opt.ForceRecreate && opt.NoRecreate {
		return nil, fmt.Errorf("--force-recreate and --no-recreate are incompatible; pass one of them")
	}
	order, err := m.Order()
	if err != nil {
		return nil, err
	}
	pl := newPlanner(m, o, opt, order)
	if err := pl.checkSelection(); err != nil {
		return nil, err
	}
	if opt.Down {
		pl.down()
	} else if err := pl.up(); err != nil {
		return nil, err
	}
	pl.orderStops()
	return pl.g.plan()
}

// planner holds what one Compute call derives from its inputs.
type planner struct {
	m     *project.Model
	o     *Observed
	opt   Options
	order []string       // active services, dependencies first
	rank  map[string]int // position in order
	g     planGraph

	// Per resource key, the action that makes it exist.
	netAction map[string]int
	volAction map[string]int
	imgAction map[string]int
	// Per service, the actions of this plan that create a container
	// (create, recreate) and that start one (start, restart).
	creates map[string][]int
	starts  map[string][]int
	// recreated lists the services with a RecreateContainer action.
	recreated map[string]bool
	// stops are the StopContainer actions, by service, for the reverse
	// dependency edges between them.
	stops map[string][]int
}

func newPlanner(m *project.Model, o *Observed, opt Options, order []string) *planner {
	rank := make(map[string]int, len(order))
	for i, s := range order {
		rank[s] = i
	}
	return &planner{
		m: m, o: o, opt: opt, order: order, rank: rank,
		netAction: map[string]int{}, volAction: map[string]int{}, imgAction: map[string]int{},
		creates: map[string][]int{}, starts: map[string][]int{},
		recreated: map[string]bool{}, stops: map[string][]int{},
	}
}

// checkSelection validates opt.Services and opt.Scale against the model.
func (pl *planner) checkSelection() error {
	for _, s := range stringsSorted(pl.opt.Services) {
		if err := pl.checkService(s, pl.opt.Down); err != nil {
			return err
		}
	}
	for _, s := range keysSorted(pl.opt.Scale) {
		if err := pl.checkService(s, false); err != nil {
			return fmt.Errorf("--scale %s=%d: %w", s, pl.opt.Scale[s], err)
		}
		if n := pl.opt.Scale[s]; n < 0 {
			return fmt.Errorf("--scale %s=%d: service %q: a scale cannot be negative", s, n, s)
		}
	}
	return nil
}

// checkService reports a service name that is not an active service of
// the project (disabledOK: a service of an inactive profile is accepted).
func (pl *planner) checkService(name string, disabledOK bool) error {
	if _, ok := pl.m.Project.Services[name]; ok {
		return nil
	}
	if d, ok := pl.m.Project.DisabledServices[name]; ok {
		if disabledOK {
			return nil
		}
		profiles := stringsSorted(d.Profiles)
		which := "profile " + firstOrDefault(quotedAll(profiles), `""`) + ", which is not enabled"
		if len(profiles) > 1 {
			which = "profiles " + strings.Join(quotedAll(profiles), ", ") + ", none of which is enabled"
		}
		return fmt.Errorf("service %q is not active: it belongs to %s; enable it with --profile %s",
			name, which, firstOrDefault(profiles, "PROFILE"))
	}
	return fmt.Errorf("no such service: %q; the services are: %s", name, strings.Join(pl.serviceNames(), ", "))
}

func (pl *planner) serviceNames() []string {
	return keysSorted(pl.m.Project.Services)
}

// desired is the set of services up converges: the selection (all active
// services when empty) plus, unless NoDeps, their transitive dependencies.
func (pl *planner) desired() map[string]bool {
	want := map[string]bool{}
	if pl.opt.Down {
		return want
	}
	var queue []string
	if len(pl.opt.Services) == 0 {
		queue = append(queue, pl.order...)
	} else {
		queue = append(queue, pl.opt.Services...)
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if want[s] {
			continue
		}
		want[s] = true
		if pl.opt.NoDeps {
			continue
		}
		queue = append(queue, pl.m.Dependencies(pl.m.Project.Services[s])...)
	}
	return want
}

// up plans the desired services: networks, volumes, images, orphans,
// then each service's replicas in dependency order.
func (pl *planner) up() error {
	want := pl.desired()
	type svcPlan struct {
		name     string
		svc      types.ServiceConfig
		replicas int
		ref      string
	}
	var todo []svcPlan
	for _, name := range pl.order {
		if !want[name] {
			continue
		}
		s := pl.m.Project.Services[name]
		n := pl.replicas(s)
		if err := checkScale(s, n); err != nil {
			return err
		}
		todo = append(todo, svcPlan{name: name, svc: s, replicas: n, ref: ImageRef(pl.m.Name, s)})
	}
	// Infrastructure first, each kind sorted by key so the plan reads in
	// a fixed order whatever the services' order. A service scaled to 0
	// needs none.
	var users []types.ServiceConfig
	for _, p := range todo {
		if p.replicas > 0 {
			users = append(users, p.svc)
		}
	}
	if err := pl.ensureNetworks(users); err != nil {
		return err
	}
	if err := pl.ensureVolumes(users); err != nil {
		return err
	}
	for _, s := range users {
		if err := pl.ensureImage(s, ImageRef(pl.m.Name, s)); err != nil {
			return err
		}
	}
	if pl.opt.RemoveOrphans {
		pl.removeOrphans()
	}
	for _, p := range todo {
		if err := pl.service(p.svc, p.replicas, p.ref); err != nil {
			return err
		}
	}
	return nil
}

// ImageRef is the image a service runs, as Observed.Images keys it:
// service.image, or <project>-<service> for a service built without one
// (compose's default name).
func ImageRef(projectName string, s types.ServiceConfig) string {
	if s.Image == "" && s.Build != nil {
		return projectName + "-" + s.Name
	}
	return s.Image
}

// replicas is how many containers a service should have: --scale, else
// scale:, else deploy.replicas, else 1.
func (pl *planner) replicas(s types.ServiceConfig) int {
	if n, ok := pl.opt.Scale[s.Name]; ok {
		return n
	}
	if s.Scale != nil {
		return *s.Scale
	}
	if s.Deploy != nil && s.Deploy.Replicas != nil {
		return *s.Deploy.Replicas
	}
	return 1
}

// checkScale refuses more than one replica of a service whose name or
// host port is fixed: the second container could not have it.
func checkScale(s types.ServiceConfig, n int) error {
	if n <= 1 {
		return nil
	}
	if s.ContainerName != "" {
		return fmt.Errorf("service %q: container_name %q fixes the name; it cannot scale to %d: remove container_name or keep one replica",
			s.Name, s.ContainerName, n)
	}
	for i, p := range s.Ports {
		if fixedHostPort(p.Published) {
			return fmt.Errorf("service %q: ports[%d] publishes fixed host port %s, which only one container can bind; it cannot scale to %d: publish a host port range or leave the host port out",
				s.Name, i, p.Published, n)
		}
	}
	return nil
}

// fixedHostPort reports a published port that names one host port (not
// empty, not 0, not a range).
func fixedHostPort(published string) bool {
	return published != "" && published != "0" && !strings.Contains(published, "-")
}

// usedNetworks is the network keys a service is attached to: none with a
// network_mode, else its networks (default when it lists none), sorted.
func usedNetworks(s types.ServiceConfig) []string {
	if s.NetworkMode != "" {
		return nil
	}
	if len(s.Networks) == 0 {
		return []string{"default"}
	}
	return keysSorted(s.Networks)
}

// usedVolumes is the named project volumes a service mounts, sorted.
func usedVolumes(m *project.Model, s types.ServiceConfig) []string {
	set := map[string]bool{}
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			continue
		}
		if _, ok := m.Project.Volumes[v.Source]; ok {
			set[v.Source] = true
		}
	}
	return keysSorted(set)
}

// firstUsers maps each key used gives to the first service (in the
// order given: dependency order) that uses it.
func firstUsers(services []types.ServiceConfig, used func(types.ServiceConfig) []string) map[string]string {
	users := map[string]string{}
	for _, s := range services {
		for _, k := range used(s) {
			if _, ok := users[k]; !ok {
				users[k] = s.Name
			}
		}
	}
	return users
}

func (pl *planner) ensureNetworks(services []types.ServiceConfig) error {
	users := firstUsers(services, usedNetworks)
	for _, key := range keysSorted(users) {
		cfg := pl.m.Project.Networks[key]
		if pl.networkExists(key, cfg) {
			continue
		}
		if cfg.External {
			return fmt.Errorf("service %q: %s is external but does not exist; create it with 'berth network create %s'",
				users[key], describeResource("network", key, cfg.Name), resourceRealName(key, cfg.Name))
		}
		pl.netAction[key] = pl.g.add(&Action{Kind: CreateNetwork, Resource: "network:" + key, Cause: "missing"})
	}
	return nil
}

func (pl *planner) ensureVolumes(services []types.ServiceConfig) error {
	users := firstUsers(services, func(s types.ServiceConfig) []string { return usedVolumes(pl.m, s) })
	for _, key := range keysSorted(users) {
		cfg := pl.m.Project.Volumes[key]
		if pl.volumeExists(key, cfg) {
			continue
		}
		if cfg.External {
			return fmt.Errorf("service %q: %s is external but does not exist; create it with 'berth volume create %s'",
				users[key], describeResource("volume", key, cfg.Name), resourceRealName(key, cfg.Name))
		}
		pl.volAction[key] = pl.g.add(&Action{Kind: CreateVolume, Resource: "volume:" + key, Cause: "missing"})
	}
	return nil
}

// networkExists reports whether the network with that key was observed:
// by key, or for an external one also by its real name (Observe may not
// know which key an external network it found answers to).
func (pl *planner) networkExists(key string, cfg types.NetworkConfig) bool {
	for _, n := range pl.o.Networks {
		if n.Key == key || (cfg.External && n.Key == "" && n.Name == resourceRealName(key, cfg.Name)) {
			return true
		}
	}
	return false
}

// volumeExists is networkExists for volumes.
func (pl *planner) volumeExists(key string, cfg types.VolumeConfig) bool {
	for _, v := range pl.o.Volumes {
		if v.Key == key || (cfg.External && v.Key == "" && v.Name == resourceRealName(key, cfg.Name)) {
			return true
		}
	}
	return false
}

func resourceRealName(key, name string) string {
	if name == "" {
		return key
	}
	return name
}

// describeResource names a network or volume as the file does, with its real
// name when that differs: network "outside" (name "corp_net").
func describeResource(kind, key, name string) string {
	if name == "" || name == key {
		return fmt.Sprintf("%s %q", kind, key)
	}
	return fmt.Sprintf("%s %q (name %q)", kind, key, name)
}

// ensureImage adds the pull or build of a service's image when it is not
// present locally, once per reference.
func (pl *planner) ensureImage(s types.ServiceConfig, ref string) error {
	if ref == "" {
		return fmt.Errorf("service %q has neither image nor build; set one of them", s.Name)
	}
	if pl.o.Images[ref] != "" {
		return nil
	}
	build := s.Build != nil || s.PullPolicy == types.PullPolicyBuild
	if id, ok := pl.imgAction[ref]; ok {
		// A later service building what an earlier one would pull
		// turns the pull into the build.
		if a := pl.g.nodes[id].a; build && a.Kind == PullImage {
			a.Kind, a.Service = BuildImage, s.Name
		}
		return nil
	}
	if !build && s.PullPolicy == types.PullPolicyNever {
		return fmt.Errorf("service %q: image %q is not present locally and pull_policy is never; pull or build it first", s.Name, ref)
	}
	kind := PullImage
	if build {
		if s.Build == nil {
			return fmt.Errorf("service %q: pull_policy is build but the service has no build section; add one", s.Name)
		}
		kind = BuildImage
	}
	pl.imgAction[ref] = pl.g.add(&Action{Kind: kind, Resource: "image:" + ref, Cause: "missing", Service: s.Name})
	return nil
}

// infraDeps are the edges a container creation waits for: the networks,
// volumes and image it needs, when this plan makes them.
func (pl *planner) infraDeps(s types.ServiceConfig, ref string) []planEdge {
	var out []planEdge
	for _, k := range usedNetworks(s) {
		if id, ok := pl.netAction[k]; ok {
			out = append(out, planEdge{id, Done})
		}
	}
	for _, k := range usedVolumes(pl.m, s) {
		if id, ok := pl.volAction[k]; ok {
			out = append(out, planEdge{id, Done})
		}
	}
	if id, ok := pl.imgAction[ref]; ok {
		out = append(out, planEdge{id, Done})
	}
	return out
}

func keysSorted[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func stringsSorted(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

func quotedAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

func firstOrDefault(in []string, def string) string {
	if len(in) > 0 {
		return in[0]
	}
	return def
}
