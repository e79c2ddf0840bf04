package reconcile

import (
	"fmt"
	"sort"

	"berth.dev/berth/project"
)

// down plans removing the project: every container (those of the selected
// services only, when some are), dependents stopped before their
// dependencies; then, for a whole-project down, the project's networks and,
// with DownVolumes, its volumes.
func (pl *planner) down() {
	sel := map[string]bool{}
	for _, s := range pl.opt.Services {
		sel[s] = true
	}
	var cs []Container
	for _, c := range pl.o.Containers {
		if len(sel) == 0 || sel[c.Service] {
			cs = append(cs, c)
		}
	}
	// Dependents first: services later in dependency order come first;
	// services the model does not know (orphans, disabled) lead, by name.
	rank := func(svc string) int {
		if r, ok := pl.rank[svc]; ok {
			return len(pl.order) - r
		}
		return 0
	}
	sort.Slice(cs, func(i, j int) bool {
		if ri, rj := rank(cs[i].Service), rank(cs[j].Service); ri != rj {
			return ri < rj
		}
		return lessContainer(cs[i], cs[j])
	})
	var removes []planEdge
	for _, c := range cs {
		removes = append(removes, planEdge{pl.removeContainer(c, "down"), Done})
	}
	if len(sel) > 0 {
		return
	}

	nets := map[string]bool{}
	for _, n := range pl.o.Networks {
		if n.Key == "" || n.External || bool(pl.m.Project.Networks[n.Key].External) {
			continue
		}
		nets[n.Key] = true
	}
	for _, k := range keysSorted(nets) {
		pl.g.add(&Action{Kind: RemoveNetwork, Resource: "network:" + k, Cause: "down"}, removes...)
	}
	if !pl.opt.DownVolumes {
		return
	}
	vols := map[string]bool{}
	for _, v := range pl.o.Volumes {
		name := v.Key
		if name == "" {
			name = v.Name // anonymous, or no longer in the file
		} else if pl.m.Project.Volumes[v.Key].External {
			continue
		}
		if name != "" {
			vols[name] = true
		}
	}
	for _, k := range keysSorted(vols) {
		pl.g.add(&Action{Kind: RemoveVolume, Resource: "volume:" + k, Cause: "down"}, removes...)
	}
}

// orphanContainers are the project's containers (one-offs aside) of
// services that are not active in the model, sorted.
func orphanContainers(m *project.Model, o *Observed) []Container {
	var out []Container
	for _, c := range o.Containers {
		if c.OneOff {
			continue
		}
		if _, ok := m.Project.Services[c.Service]; !ok {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return lessContainer(out[i], out[j]) })
	return out
}

// removeOrphans stops and removes the orphan containers (--remove-orphans).
func (pl *planner) removeOrphans() {
	for _, c := range orphanContainers(pl.m, pl.o) {
		pl.removeContainer(c, "orphan")
	}
}

// orderStops makes each StopContainer wait for the stops of the containers
// that depend on it, so dependencies stop last. The edges go to the
// nearest dependents with a stop in the plan: a service with nothing to
// stop is looked through, one with stops carries the order on.
func (pl *planner) orderStops() {
	for _, x := range keysSorted(pl.stops) {
		seen := map[string]bool{x: true}
		var visit func(string)
		visit = func(n string) {
			for _, d := range pl.dependenciesOf(n) {
				if seen[d] {
					continue
				}
				seen[d] = true
				if len(pl.stops[d]) == 0 {
					visit(d)
					continue
				}
				for _, stopD := range pl.stops[d] {
					for _, stopX := range pl.stops[x] {
						pl.g.dep(stopD, planEdge{stopX, Done})
					}
				}
			}
		}
		visit(x)
	}
}

// dependenciesOf is m.Dependencies for a service of the model, active or
// not; nothing for a service the model does not know.
func (pl *planner) dependenciesOf(svc string) []string {
	cfg, ok := pl.m.Project.Services[svc]
	if !ok {
		if cfg, ok = pl.m.Project.DisabledServices[svc]; !ok {
			return nil
		}
	}
	return pl.m.Dependencies(cfg)
}

// Warnings are what up or down should tell the user beside the plan
// Compute makes for the same inputs, sorted: orphan containers left alone
// without --remove-orphans (compose's wording).
func Warnings(m *project.Model, o *Observed, opt Options) []string {
	if m == nil || m.Project == nil || o == nil || opt.Down || opt.RemoveOrphans {
		return nil
	}
	var out []string
	if orph := orphanContainers(m, o); len(orph) > 0 {
		names := make([]string, len(orph))
		for i, c := range orph {
			names[i] = c.Name
			if names[i] == "" {
				names[i] = ContainerName(o.Project, c.Service, c.Number, "")
			}
		}
		sort.Strings(names)
		out = append(out, fmt.Sprintf("Found orphan containers (%v) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.", names))
	}
	sort.Strings(out)
	return out
}
