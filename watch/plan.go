package watch

import (
	"os"
	"path/filepath"
	"sort"
)

// Set is what one watch session reacts to: the rules of the watched
// services and the project's own files (compose files, .env, env_file).
type Set struct {
	Rules        []*Rule
	ProjectFiles []string // absolute

	project map[string]bool
}

// NewSet compiles the rules; the first bad one is the error.
func NewSet(rules []*Rule, projectFiles []string) (*Set, error) {
	s := &Set{Rules: rules, project: map[string]bool{}}
	for _, r := range rules {
		if err := r.Compile(); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	for _, f := range projectFiles {
		f = filepath.Clean(f)
		if !seen[f] {
			seen[f] = true
			s.ProjectFiles = append(s.ProjectFiles, f)
			s.project[f] = true
		}
	}
	sort.Strings(s.ProjectFiles)
	return s, nil
}

// Roots are what to watch: the rules' directories as trees, the rules'
// single files and the project files as files.
func (s *Set) Roots() (trees, files []string) {
	seenT, seenF := map[string]bool{}, map[string]bool{}
	for _, r := range s.Rules {
		if st, err := os.Stat(r.Path); err == nil && !st.IsDir() {
			if !seenF[r.Path] {
				seenF[r.Path] = true
				files = append(files, r.Path)
			}
			continue
		}
		if !seenT[r.Path] {
			seenT[r.Path] = true
			trees = append(trees, r.Path)
		}
	}
	for _, f := range s.ProjectFiles {
		if !seenF[f] {
			seenF[f] = true
			files = append(files, f)
		}
	}
	sort.Strings(trees)
	sort.Strings(files)
	return trees, files
}

// SkipDir reports a directory no rule needs watched.
func (s *Set) SkipDir(dir string) bool {
	for _, r := range s.Rules {
		if _, ok := r.Rel(dir); ok && !r.SkipDir(dir) {
			return false
		}
	}
	for _, f := range s.ProjectFiles {
		if filepath.Dir(f) == dir {
			return false
		}
	}
	return true
}

// Plan is what a batch asks for, in the order it is carried out: reload
// the project, then per service (sorted) rebuild, or sync, restart, exec.
type Plan struct {
	Reload   []string // project files that changed
	Services []*ServicePlan
}

// Empty reports a plan with nothing to do.
func (p *Plan) Empty() bool { return len(p.Reload) == 0 && len(p.Services) == 0 }

// Service is the plan of one service, nil when it has none.
func (p *Plan) Service(name string) *ServicePlan {
	for _, sp := range p.Services {
		if sp.Service == name {
			return sp
		}
	}
	return nil
}

// ServicePlan is what one service's rules ask for. A rebuild recreates
// the containers, so it replaces the service's syncs, restart and execs.
type ServicePlan struct {
	Service string
	Rebuild bool
	Restart bool
	Syncs   []SyncOp
	Execs   []*Rule  // sync+exec rules to run after the syncs
	Files   []string // the host paths that triggered it, sorted
}

// SyncOp copies (or, when the host path is gone, deletes) one path.
type SyncOp struct {
	Rule          *Rule
	HostPath      string
	ContainerPath string
	Op            Op
	// Tree copies the whole tree under HostPath (initial sync, or after
	// changes were lost), applying the rule's ignores to every path.
	Tree bool
}

// Plan turns a batch into a plan. An overflow batch counts as a change
// of everything watched: the project is reloaded, every rule fires, and
// syncs copy their whole trees.
func (s *Set) Plan(b Batch) *Plan {
	p := &Plan{}
	byService := map[string]*ServicePlan{}
	get := func(name string) *ServicePlan {
		sp := byService[name]
		if sp == nil {
			sp = &ServicePlan{Service: name}
			byService[name] = sp
		}
		return sp
	}
	files := map[string]map[string]bool{}
	note := func(svc, f string) {
		if files[svc] == nil {
			files[svc] = map[string]bool{}
		}
		files[svc][f] = true
	}
	execs := map[*Rule]bool{}
	fire := func(r *Rule, c Change, tree bool) {
		sp := get(r.Service)
		note(r.Service, c.Path)
		switch r.Action {
		case Rebuild:
			sp.Rebuild = true
		case Restart:
			sp.Restart = true
		case Sync, SyncRestart, SyncExec:
			sp.Syncs = append(sp.Syncs, SyncOp{Rule: r, HostPath: c.Path, ContainerPath: r.ContainerPath(c.Path), Op: c.Op, Tree: tree})
			if r.Action == SyncRestart {
				sp.Restart = true
			}
			if r.Action == SyncExec && !execs[r] {
				execs[r] = true
				sp.Execs = append(sp.Execs, r)
			}
		}
	}
	if b.Overflow {
		p.Reload = append(p.Reload, s.ProjectFiles...)
		for _, r := range s.Rules {
			fire(r, Change{Path: r.Path, Op: OpCreate}, true)
		}
	} else {
		for _, c := range b.Changes {
			if s.project[c.Path] {
				p.Reload = append(p.Reload, c.Path)
			}
			dir := false
			if st, err := os.Lstat(c.Path); err == nil && st.IsDir() {
				dir = true
			}
			for _, r := range s.Rules {
				if r.Match(c.Path, dir) {
					fire(r, c, false)
				}
			}
		}
	}
	for name, sp := range byService {
		if sp.Rebuild {
			sp.Restart, sp.Syncs, sp.Execs = false, nil, nil
		}
		for f := range files[name] {
			sp.Files = append(sp.Files, f)
		}
		sort.Strings(sp.Files)
		p.Services = append(p.Services, sp)
	}
	sort.Slice(p.Services, func(i, j int) bool { return p.Services[i].Service < p.Services[j].Service })
	return p
}

// InitialSync is the plan of the rules with initial_sync: each sync rule
// copies its whole tree once, before watching starts.
func (s *Set) InitialSync() *Plan {
	p := &Plan{}
	byService := map[string]*ServicePlan{}
	for _, r := range s.Rules {
		if !r.InitialSync || !r.Action.Syncs() {
			continue
		}
		sp := byService[r.Service]
		if sp == nil {
			sp = &ServicePlan{Service: r.Service}
			byService[r.Service] = sp
			p.Services = append(p.Services, sp)
		}
		sp.Syncs = append(sp.Syncs, SyncOp{Rule: r, HostPath: r.Path, ContainerPath: r.Target, Op: OpCreate, Tree: true})
		sp.Files = append(sp.Files, r.Path)
	}
	sort.Slice(p.Services, func(i, j int) bool { return p.Services[i].Service < p.Services[j].Service })
	return p
}
