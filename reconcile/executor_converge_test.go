package reconcile

import (
	"context"
	"fmt"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"berth.dev/berth/network"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
	rtfake "berth.dev/berth/runtime/fake"
	"berth.dev/berth/volumes"
)

const exConvergeV1 = `
services:
  db:
    image: busybox
    environment: {V: "1"}
    healthcheck: {test: ["CMD", "true"]}
  web:
    image: busybox
    scale: 2
    depends_on: {db: {condition: service_healthy}}
  worker:
    image: busybox
    links: [db]
    depends_on: [web]
`

// v2 changes db and web: both are recreated, worker is left alone.
var exConvergeV2 = strings.Replace(strings.Replace(exConvergeV1, `V: "1"`, `V: "2"`, 1),
	"scale: 2", "scale: 2\n    environment: {W: \"x\"}", 1)

// exUp observes the fakes, computes the plan for m and runs it on e with
// ctx; it returns the plan.
func exUp(t *testing.T, ctx context.Context, e *Executor, m *project.Model, opt Options) (*Plan, error) {
	t.Helper()
	o, err := ObserveDeps(context.Background(), e.Deps, m)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	p, err := Compute(m, o, opt)
	if err != nil {
		t.Fatalf("compute: %v", err)
	}
	e.Model = m
	return p, e.Run(ctx, p)
}

// exState is what a converged machine looks like, addresses aside.
func exState(t *testing.T, x *exEnv) string {
	t.Helper()
	ctx := context.Background()
	var lines []string
	infos, err := x.rt.List(ctx, runtime.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		c, _ := x.rt.Load(ctx, i.ID)
		nw, _ := c.Networking(ctx)
		lines = append(lines, fmt.Sprintf("container %s %s %s hash=%.12s nets=%v hosts=%d", i.Name, i.Status, i.Health,
			i.Labels[runtime.LabelConfigHash], EndpointNetworks(nw), len(nw.Hosts)))
	}
	ns, _ := x.nm.List(ctx, network.Filter{})
	for _, n := range ns {
		var eps []string
		for _, ep := range n.Endpoints {
			eps = append(eps, ep.Name)
		}
		lines = append(lines, fmt.Sprintf("network %s %v", n.Name, eps))
	}
	vs, _ := x.vm.List(ctx, volumes.Filter{})
	for _, v := range vs {
		lines = append(lines, "volume "+v.Name)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestExecutorConvergesAfterCrashAtEveryCall is TESTING.md §3's
// convergence check, at the finest grain the fakes allow: for every
// state-changing call k of a plan (fresh up; an up recreating two
// services), the process "crashes" right before call k (the action's
// goroutine ends on the spot, no clean-up, nothing new starts), then a
// fresh Observe → Compute → Run must reach the state an uninterrupted run
// reaches, and the plan after that must be empty.
func TestExecutorConvergesAfterCrashAtEveryCall(t *testing.T) {
	for _, sc := range []struct {
		name   string
		before string // applied first, uninterrupted ("" for a fresh machine)
		yml    string
	}{
		{"fresh up", "", exConvergeV1},
		{"recreate", exConvergeV1, exConvergeV2},
	} {
		t.Run(sc.name, func(t *testing.T) {
			setup := func() (*exEnv, *Executor, *project.Model) {
				x := newExEnv(t, sc.yml)
				x.rt.SetBehaviour("demo-db-1", rtfake.Behaviour{Healthy: true})
				e := x.executor(1)
				if sc.before != "" {
					if _, err := exUp(t, context.Background(), e, exLoad(t, sc.before), Options{}); err != nil {
						t.Fatalf("before: %v", err)
					}
				}
				return x, e, x.m
			}

			// The uninterrupted run: its final state and how many calls
			// it makes.
			x, e, m := setup()
			var total int
			var mu sync.Mutex
			x.hook(func(op, name string) { mu.Lock(); total++; mu.Unlock() })
			p, err := exUp(t, context.Background(), e, m, Options{})
			if err != nil {
				t.Fatalf("clean run:\n%s\n%v", p, err)
			}
			want := exState(t, x)
			if total < 5 {
				t.Fatalf("the plan made only %d calls:\n%s", total, p)
			}
			t.Logf("plan (%d state-changing calls):\n%s", total, p)

			for k := 1; k <= total; k++ {
				x, e, m := setup()
				ctx, cancel := context.WithCancel(context.Background())
				var n int
				crashed := false
				x.hook(func(op, name string) {
					mu.Lock()
					n++
					crash := n == k && !crashed
					if crash {
						crashed = true
					}
					mu.Unlock()
					if crash {
						cancel()           // nothing else starts
						goruntime.Goexit() // and this action stops dead, before the call
					}
				})
				exUp(t, ctx, e, m, Options{})
				cancel()
				mu.Lock()
				n = -1 << 30 // no more crashes
				mu.Unlock()

				p, err := exUp(t, context.Background(), e, m, Options{})
				if err != nil {
					t.Fatalf("crash before call %d: the next up failed:\n%s\n%v", k, p, err)
				}
				if got := exState(t, x); got != want {
					t.Fatalf("crash before call %d: after the next up (plan below):\n%s\nwant:\n%s\nplan:\n%s", k, got, want, p)
				}
				o, err := ObserveDeps(context.Background(), e.Deps, m)
				if err != nil {
					t.Fatal(err)
				}
				third, err := Compute(m, o, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if len(third.Actions) != 0 {
					t.Fatalf("crash before call %d: converged machine still plans:\n%s", k, third)
				}
			}
		})
	}
}

func TestObserveDepsReadsTheFakes(t *testing.T) {
	x := newExEnv(t, `
services:
  web: {image: busybox, networks: [default, shared]}
  built: {build: .}
networks:
  shared: {external: true, name: outside}
`)
	ctx := context.Background()
	x.nm.Create(ctx, network.Spec{Name: "outside"})
	x.nm.Create(ctx, network.Spec{Name: "other-project", Labels: map[string]string{runtime.LabelProject: "other"}})
	x.mustRun(exPlan(exNet("default"), exCreate("web", 1, Edge{1, Done}), exStart("web", 1, Edge{2, Done})))
	o, err := ObserveDeps(ctx, x.deps(), x.m)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Containers) != 1 {
		t.Fatalf("containers: %+v", o.Containers)
	}
	c := o.Containers[0]
	if c.Name != "demo-web-1" || c.Service != "web" || c.Number != 1 || c.OneOff || c.Status != runtime.StatusRunning ||
		c.ConfigHash == "" || len(c.HashFields) == 0 {
		t.Fatalf("container: %+v", c)
	}
	var nets []string
	for _, n := range o.Networks {
		nets = append(nets, fmt.Sprintf("%s=%s ext=%v", n.Key, n.Name, n.External))
	}
	if want := []string{"default=demo_default ext=false", "shared=outside ext=true"}; !slices.Equal(nets, want) {
		t.Fatalf("networks: %v", nets)
	}
	if o.Images["busybox"] != "sha256:busybox" || o.Images["demo-built"] != "" {
		t.Fatalf("images: %v", o.Images)
	}
	if _, ok := o.Images["demo-built"]; !ok {
		t.Fatal("a missing image is not recorded as missing")
	}
	// Against that, Compute plans nothing for web.
	p, err := Compute(x.m, o, Options{Services: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Actions) != 0 {
		t.Fatalf("plan:\n%s", p)
	}
}
