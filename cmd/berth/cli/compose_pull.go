package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
)

// pullRecord remembers when each reference was last pulled
// (ROOT/registry/pulls.json), for pull_policy daily, weekly, every_<d>.
type pullRecord struct {
	Pulled map[string]time.Time `json:"pulled"`
}

func (g *globals) pullsPath() (string, error) {
	root, err := state.Open(g.stateRoot())
	if err != nil {
		return "", err
	}
	return filepath.Join(root.Path, "registry", "pulls.json"), nil
}

func (g *globals) lastPulls() map[string]time.Time {
	var rec pullRecord
	if p, err := g.pullsPath(); err == nil {
		state.ReadJSON(p, &rec)
	}
	if rec.Pulled == nil {
		rec.Pulled = map[string]time.Time{}
	}
	return rec.Pulled
}

func (g *globals) notePulled(ctx context.Context, refs []string) error {
	p, err := g.pullsPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	l, err := state.AcquireFile(ctx, p+".lock", "the pull record", state.LockOptions{})
	if err != nil {
		return err
	}
	defer l.Unlock()
	rec := pullRecord{Pulled: g.lastPulls()}
	now := time.Now().UTC()
	for _, r := range refs {
		if n, err := local.NormalizeRef(r); err == nil {
			rec.Pulled[n] = now
		}
	}
	return state.WriteJSONVolatile(p, rec, 0o600)
}

// pullDue says whether a policy wants a pull of an image (present or
// not, last pulled at last): compose's missing/if_not_present, always,
// never, daily, weekly and every_<duration>.
func pullDue(policy string, present bool, last time.Time) (bool, error) {
	every := time.Duration(0)
	switch policy {
	case "", types.PullPolicyMissing, types.PullPolicyIfNotPresent:
		return !present, nil
	case types.PullPolicyAlways:
		return true, nil
	case types.PullPolicyNever, types.PullPolicyBuild:
		return false, nil
	case "daily":
		every = 24 * time.Hour
	case "weekly":
		every = 7 * 24 * time.Hour
	default:
		d, ok := strings.CutPrefix(policy, "every_")
		if !ok {
			return false, errdefs.Invalidf("pull_policy %q: use always, missing, never, build, daily, weekly or every_<duration>", policy)
		}
		var err error
		if every, err = time.ParseDuration(d); err != nil || every <= 0 {
			return false, errdefs.Invalidf("pull_policy %q: %q is not a duration such as 12h", policy, d)
		}
	}
	return !present || time.Since(last) >= every, nil
}

// pullService is one image to pull and the services that run it.
type pullService struct {
	ref      string
	services []string
	optional bool // a failure is a warning (compose pull of a buildable service)
}

// runPulls pulls in parallel with one display and names the failing
// service; optional failures are warnings.
func (g *globals) runPulls(ctx context.Context, store *local.Store, pulls []*pullService, quiet, ignoreFailures bool) error {
	if len(pulls) == 0 {
		return nil
	}
	d := g.newPullDisplay(quiet)
	var wg sync.WaitGroup
	errs := make([]error, len(pulls))
	for i, p := range pulls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.event(registryLine(p.services[0] + " Pulling"))
			if _, err := g.pullImage(ctx, store, p.ref, "", d); err != nil {
				errs[i] = fmt.Errorf("service %s: %w", strings.Join(p.services, ", "), err)
				return
			}
			d.event(registryLine(p.services[0] + " Pulled"))
		}()
	}
	wg.Wait()
	var pulled []string
	var firstErr error
	for i, err := range errs {
		switch {
		case err == nil:
			pulled = append(pulled, pulls[i].ref)
		case pulls[i].optional || ignoreFailures:
			fmt.Fprintln(g.stderr, "berth: warning:", err)
		case firstErr == nil:
			firstErr = err
		}
	}
	if len(pulled) > 0 {
		if err := g.notePulled(ctx, pulled); err != nil {
			fmt.Fprintln(g.stderr, "berth: warning: the pull record:", err)
		}
	}
	return firstErr
}

// collectPulls is the images of the scope's services that want a pull,
// one per reference with the services that run it: want says, for a
// service and whether its image is present, if it is pulled and if a
// failure is only a warning.
func collectPulls(ctx context.Context, e *composeEnv, scope []string, want func(svc types.ServiceConfig, ref string, present bool) (pull, optional bool, err error)) ([]*pullService, error) {
	byRef := map[string]*pullService{}
	var pulls []*pullService
	for _, name := range scope {
		svc, ok := e.m.Project.Services[name]
		if !ok || svc.Image == "" {
			continue // built, not pulled
		}
		n, err := local.NormalizeRef(svc.Image)
		if err != nil {
			return nil, fmt.Errorf("service %s: image: %w", name, err)
		}
		_, gerr := e.store.Get(ctx, n)
		pull, optional, err := want(svc, n, gerr == nil)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
		if !pull {
			continue
		}
		if p, ok := byRef[n]; ok {
			p.services = append(p.services, name)
			continue
		}
		p := &pullService{ref: svc.Image, services: []string{name}, optional: optional}
		byRef[n] = p
		pulls = append(pulls, p)
	}
	return pulls, nil
}

// pullForUp pulls what up needs before it plans: the images of services
// without a build section as their pull_policy (or --pull) says. A
// service with a build section is built instead (buildForUp).
func (g *globals) pullForUp(ctx context.Context, e *composeEnv, scope []string, override string) error {
	if g.dryRun {
		return nil
	}
	last := g.lastPulls()
	pulls, err := collectPulls(ctx, e, scope, func(svc types.ServiceConfig, ref string, present bool) (bool, bool, error) {
		if svc.Build != nil {
			return false, false, nil
		}
		policy := svc.PullPolicy
		if override != "" && override != "policy" {
			policy = override
		}
		due, err := pullDue(policy, present, last[ref])
		return due, false, err
	})
	if err != nil {
		return err
	}
	return g.runPulls(ctx, e.store, pulls, false, false)
}

func newPullComposeCmd(g *globals) *cobra.Command {
	var ignoreFailures, includeDeps, quiet bool
	var policy string
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] [SERVICE...]",
		Short: "Pull service images",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			switch policy {
			case "", "always", "missing":
			default:
				return errUsage("--policy %q: use missing or always", policy)
			}
			e, err := g.composeServices(ctx, args)
			if err != nil {
				return err
			}
			// A buildable service's image may not be in any registry: its
			// failure is a warning.
			pulls, err := collectPulls(ctx, e, upScope(e, args, !includeDeps), func(svc types.ServiceConfig, _ string, present bool) (bool, bool, error) {
				return policy != "missing" || !present, svc.Build != nil, nil
			})
			if err != nil {
				return err
			}
			if g.dryRun {
				for _, p := range pulls {
					fmt.Fprintf(g.stdout, "pull image %s for %s\n", p.ref, strings.Join(p.services, ", "))
				}
				return nil
			}
			return g.runPulls(ctx, e.store, pulls, quiet, ignoreFailures)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&ignoreFailures, "ignore-pull-failures", false, "Pull what it can and ignores images with pull failures")
	f.BoolVar(&includeDeps, "include-deps", false, "Also pull services declared as dependencies")
	f.BoolVarP(&quiet, "quiet", "q", false, "Pull without printing progress information")
	f.StringVar(&policy, "policy", "", `Apply pull policy ("missing"|"always")`)
	return g.compose(cmd)
}

func newPushComposeCmd(g *globals) *cobra.Command {
	var ignoreFailures, includeDeps, quiet bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] [SERVICE...]",
		Short: "Push service images",
		Long: `Push the images of services that have both a build section and an
image name (the images this project builds) to their registries.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := g.composeServices(ctx, args)
			if err != nil {
				return err
			}
			var refs []string
			for _, name := range upScope(e, args, !includeDeps) {
				svc := e.m.Project.Services[name]
				if svc.Build == nil || svc.Image == "" {
					continue
				}
				if !slices.Contains(refs, svc.Image) {
					refs = append(refs, svc.Image)
				}
			}
			for _, ref := range refs {
				if g.dryRun {
					fmt.Fprintf(g.stdout, "push image %s\n", ref)
					continue
				}
				if err := g.pushImage(ctx, e.store, ref, quiet); err != nil {
					if !ignoreFailures {
						return err
					}
					fmt.Fprintln(g.stderr, "berth: warning:", err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&ignoreFailures, "ignore-push-failures", false, "Push what it can and ignores images with push failures")
	f.BoolVar(&includeDeps, "include-deps", false, "Also push images of services declared as dependencies")
	f.BoolVarP(&quiet, "quiet", "q", false, "Push without printing progress information")
	return g.compose(cmd)
}
