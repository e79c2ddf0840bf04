package reconcile

import (
	"fmt"
	"sort"
	"strings"

	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
	"github.com/compose-spec/compose-go/v2/types"
)

// hashPrefix is how many hex digits of a field digest the
// LabelHashFields label keeps.
const hashPrefix = 12

// TruncateHashFields returns the field digests of h cut to the 12 hex
// digits LabelHashFields stores (a new map; h is not modified).
func TruncateHashFields(fields map[string]string) map[string]string {
	out := make(map[string]string, len(fields))
	for k, v := range fields {
		if len(v) > hashPrefix {
			v = v[:hashPrefix]
		}
		out[k] = v
	}
	return out
}

// service plans the replicas of one desired service: scale down, then
// each kept replica (recreate, start or nothing), then the missing ones,
// then the restarts its recreated dependencies ask for.
func (pl *planner) service(s types.ServiceConfig, n int, ref string) error {
	desired, err := project.HashService(s, pl.o.Images[ref])
	if err != nil {
		return err
	}
	want := project.ServiceHash{Hash: desired.Hash, Fields: TruncateHashFields(desired.Fields)}
	diverged := func(c Container) bool { return c.ConfigHash != desired.Hash }

	var mine []Container
	for _, c := range pl.o.Containers {
		if c.Service == s.Name && !c.OneOff {
			mine = append(mine, c)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return lessContainer(mine[i], mine[j]) })

	// One container per number: the best of several is kept (matching
	// the config, then live), the others removed.
	byNumber := map[int][]Container{}
	for _, c := range mine {
		byNumber[c.Number] = append(byNumber[c.Number], c)
	}
	var kept, dups []Container
	for _, num := range intKeysSorted(byNumber) {
		cs := byNumber[num]
		sort.SliceStable(cs, func(i, j int) bool {
			if di, dj := diverged(cs[i]), diverged(cs[j]); di != dj {
				return !di
			}
			if ai, aj := liveStatus(cs[i].Status), liveStatus(cs[j].Status); ai != aj {
				return ai
			}
			return cs[i].ID < cs[j].ID
		})
		kept = append(kept, cs[0])
		dups = append(dups, cs[1:]...)
	}
	// What the kept replica of a number does waits for its duplicates to
	// be gone (they may hold its name and network endpoints).
	dupGone := map[int][]planEdge{}
	for _, c := range dups {
		dupGone[c.Number] = append(dupGone[c.Number], planEdge{pl.removeContainer(c, "duplicate replica"), Done})
	}

	// Scale down: diverged replicas go first, then the highest numbers.
	if len(kept) > n {
		cause := fmt.Sprintf("scale %d→%d", len(mine), n)
		order := append([]Container(nil), kept...)
		sort.SliceStable(order, func(i, j int) bool {
			if di, dj := diverged(order[i]), diverged(order[j]); di != dj {
				return di
			}
			return order[i].Number > order[j].Number
		})
		gone := map[int]bool{} // numbers are unique among kept
		for _, c := range order[:len(kept)-n] {
			pl.removeContainer(c, cause)
			gone[c.Number] = true
		}
		var rest []Container
		for _, c := range kept {
			if !gone[c.Number] {
				rest = append(rest, c)
			}
		}
		kept = rest
	}

	var unchangedRunning []Container
	for _, c := range kept {
		div := diverged(c)
		if pl.opt.ForceRecreate || (div && !pl.opt.NoRecreate) {
			cause := "--force-recreate"
			if div {
				cause = hashCause(c, want)
			}
			rec := pl.g.add(&Action{Kind: RecreateContainer, Resource: containerResource(c), Cause: cause,
				Service: s.Name, Number: c.Number, Target: c.ID}, append(pl.createDeps(s, ref), dupGone[c.Number]...)...)
			pl.creates[s.Name] = append(pl.creates[s.Name], rec)
			pl.recreated[s.Name] = true
			if !pl.opt.NoStart {
				pl.start(s, &Action{Kind: StartContainer, Resource: containerResource(c),
					Service: s.Name, Number: c.Number}, planEdge{rec, Done})
			}
			continue
		}
		switch c.Status {
		case runtime.StatusRunning, runtime.StatusRestarting:
			unchangedRunning = append(unchangedRunning, c)
			continue
		case runtime.StatusPaused:
			continue
		}
		if !pl.opt.NoStart {
			pl.start(s, &Action{Kind: StartContainer, Resource: containerResource(c), Cause: statusCause(c),
				Service: s.Name, Number: c.Number, Target: c.ID}, dupGone[c.Number]...)
		}
	}

	// Missing replicas take the lowest free numbers.
	used := map[int]bool{}
	for _, c := range kept {
		used[c.Number] = true
	}
	for num, have := 1, len(kept); have < n; num++ {
		if used[num] {
			continue
		}
		have++
		res := fmt.Sprintf("container:%s-%d", s.Name, num)
		cr := pl.g.add(&Action{Kind: CreateContainer, Resource: res, Cause: "missing", Service: s.Name, Number: num},
			pl.createDeps(s, ref)...)
		pl.creates[s.Name] = append(pl.creates[s.Name], cr)
		if !pl.opt.NoStart {
			pl.start(s, &Action{Kind: StartContainer, Resource: res, Service: s.Name, Number: num}, planEdge{cr, Done})
		}
	}

	// depends_on.<D>.restart: a recreated dependency restarts the running
	// replicas this plan leaves alone.
	if pl.opt.NoStart {
		return nil
	}
	var because []string
	for _, d := range keysSorted(s.DependsOn) {
		if s.DependsOn[d].Restart && pl.recreated[d] {
			because = append(because, d)
		}
	}
	if len(because) == 0 {
		return nil
	}
	cause := "dependency " + because[0] + " recreated"
	if len(because) > 1 {
		cause = "dependencies " + strings.Join(because, ", ") + " recreated"
	}
	for _, c := range unchangedRunning {
		pl.start(s, &Action{Kind: RestartContainer, Resource: containerResource(c), Cause: cause,
			Service: s.Name, Number: c.Number, Target: c.ID})
	}
	return nil
}

// start adds a start (or restart) of one of s's containers, waiting for
// the edges given and for s's dependencies: on their start actions in
// this plan, else as Needs the executor checks on the machine.
func (pl *planner) start(s types.ServiceConfig, a *Action, deps ...planEdge) {
	for _, d := range serviceDeps(pl.m, s) {
		ids := pl.starts[d.service]
		if len(ids) == 0 {
			a.Needs = append(a.Needs, Need{Service: d.service, Cond: d.cond, Required: d.required})
			continue
		}
		for _, id := range ids {
			deps = append(deps, planEdge{id, d.cond})
		}
	}
	id := pl.g.add(a, deps...)
	pl.starts[s.Name] = append(pl.starts[s.Name], id)
}

// createDeps are the edges a create or recreate of s waits for: the
// networks, volumes and image this plan makes, the start of legacy link
// targets (the link needs their address), and the creation of the
// services whose namespace or volumes s takes.
func (pl *planner) createDeps(s types.ServiceConfig, ref string) []planEdge {
	deps := pl.infraDeps(s, ref)
	for _, t := range linkTargets(s) {
		for _, id := range pl.starts[t] {
			deps = append(deps, planEdge{id, Started})
		}
	}
	for _, t := range sharedFrom(s) {
		for _, id := range pl.creates[t] {
			deps = append(deps, planEdge{id, Done})
		}
	}
	return deps
}

// startDependency is one service a service's start waits for.
type startDependency struct {
	service  string
	cond     Condition
	required bool
}

// serviceDeps is s's depends_on, plus the links, volumes_from and
// namespace services the loader did not already turn into depends_on
// (as service_started), sorted by service.
func serviceDeps(m *project.Model, s types.ServiceConfig) []startDependency {
	var out []startDependency
	seen := map[string]bool{}
	for _, name := range keysSorted(s.DependsOn) {
		d := s.DependsOn[name]
		seen[name] = true
		out = append(out, startDependency{service: name, cond: conditionOf(d.Condition), required: d.Required})
	}
	for _, name := range m.Dependencies(s) {
		if !seen[name] {
			out = append(out, startDependency{service: name, cond: Started, required: true})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].service < out[j].service })
	return out
}

func conditionOf(c string) Condition {
	switch c {
	case types.ServiceConditionHealthy:
		return Healthy
	case types.ServiceConditionCompletedSuccessfully:
		return CompletedSuccessfully
	}
	return Started
}

// linkTargets are the services s has legacy links to, sorted.
func linkTargets(s types.ServiceConfig) []string {
	set := map[string]bool{}
	for _, l := range s.Links {
		name, _, _ := strings.Cut(l, ":")
		set[name] = true
	}
	return keysSorted(set)
}

// sharedFrom are the services whose container s joins or copies from
// (network_mode, ipc service:X; volumes_from X), sorted.
func sharedFrom(s types.ServiceConfig) []string {
	set := map[string]bool{}
	if name, ok := strings.CutPrefix(s.NetworkMode, types.ServicePrefix); ok {
		set[name] = true
	}
	if name, ok := strings.CutPrefix(s.Ipc, types.ServicePrefix); ok {
		set[name] = true
	}
	for _, vf := range s.VolumesFrom {
		if strings.HasPrefix(vf, types.ContainerPrefix) {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(vf, types.ServicePrefix), ":")
		set[name] = true
	}
	return keysSorted(set)
}

// hashCause explains a diverged container by the fields whose digests
// differ from the desired ones.
func hashCause(c Container, want project.ServiceHash) string {
	if len(c.HashFields) == 0 {
		return "config hash changed"
	}
	fields := project.ChangedFields(project.ServiceHash{Fields: TruncateHashFields(c.HashFields)}, want)
	if len(fields) == 0 {
		return "config hash changed"
	}
	return "config hash changed: " + strings.Join(fields, ", ")
}

// statusCause says why a container that is not running is started.
func statusCause(c Container) string {
	switch c.Status {
	case runtime.StatusExited:
		if c.Exit != nil {
			return fmt.Sprintf("exited (%d)", c.Exit.Code)
		}
		return "exited"
	case runtime.StatusCreated, runtime.StatusDead:
		return c.Status.String()
	}
	return "not running"
}

// liveStatus reports a container whose processes exist: it needs a stop
// before it can be removed.
func liveStatus(s runtime.Status) bool {
	return s == runtime.StatusRunning || s == runtime.StatusPaused || s == runtime.StatusRestarting
}

// containerResource names a container in plan text: <service>-<n> for a
// replica, its observed name for a one-off.
func containerResource(c Container) string {
	if c.OneOff {
		return "container:" + c.Name
	}
	return fmt.Sprintf("container:%s-%d", c.Service, c.Number)
}

// removeContainer stops (when live) and removes an observed container; it
// returns the remove's node.
func (pl *planner) removeContainer(c Container, cause string) int {
	res := containerResource(c)
	var deps []planEdge
	if liveStatus(c.Status) {
		stop := pl.g.add(&Action{Kind: StopContainer, Resource: res, Cause: cause,
			Service: c.Service, Number: c.Number, Target: c.ID})
		pl.stops[c.Service] = append(pl.stops[c.Service], stop)
		deps = append(deps, planEdge{stop, Done})
	}
	return pl.g.add(&Action{Kind: RemoveContainer, Resource: res, Cause: cause,
		Service: c.Service, Number: c.Number, Target: c.ID}, deps...)
}

// lessContainer orders containers by service, replicas before one-offs,
// number, name, ID.
func lessContainer(a, b Container) bool {
	if a.Service != b.Service {
		return a.Service < b.Service
	}
	if a.OneOff != b.OneOff {
		return !a.OneOff
	}
	if a.Number != b.Number {
		return a.Number < b.Number
	}
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.ID < b.ID
}

func intKeysSorted[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
