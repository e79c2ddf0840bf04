package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/network"
	netfake "berth.dev/berth/network/fake"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
	rtfake "berth.dev/berth/runtime/fake"
	volfake "berth.dev/berth/volumes/fake"
)

// exLoad loads an inline compose file as project "demo" with an empty
// shell environment.
func exLoad(t testing.TB, yml string) *project.Model {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := project.Load(context.Background(), project.Options{WorkDir: dir, ProjectName: "demo", Env: map[string]string{}})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return m
}

// exImages is an ImageResolver over a fixed map; a missing reference is
// ErrNotFound.
type exImages map[string]ResolvedImage

func (im exImages) Resolve(ctx context.Context, ref string) (ResolvedImage, error) {
	if img, ok := im[ref]; ok {
		return img, nil
	}
	return ResolvedImage{}, errdefs.NotFoundf("no such image: %s", ref)
}

func exImage(digest string, exposed ...string) ResolvedImage {
	return ResolvedImage{Digest: digest, ChainID: "sha256:chain-" + digest,
		Config: ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}, ExposedPorts: exposed}}
}

// exEnv is a model with fakes to run plans on, recording events and a
// merged log of the state-changing calls of all three fakes.
type exEnv struct {
	t      *testing.T
	m      *project.Model
	rt     *rtfake.Runtime
	nm     *netfake.Manager
	vm     *volfake.Manager
	images exImages

	mu     sync.Mutex
	events []Event
	log    []string
	hooks  []func(op, name string)
}

func newExEnv(t *testing.T, yml string) *exEnv {
	x := &exEnv{t: t, m: exLoad(t, yml), rt: rtfake.New(), nm: netfake.New(), vm: volfake.New(),
		images: exImages{"busybox": exImage("sha256:busybox")}}
	logged := func(prefix string) func(op, name string) {
		return func(op, name string) {
			switch op {
			case "load", "list", "info", "networking", "wait", "inspect":
			default:
				x.mu.Lock()
				x.log = append(x.log, strings.TrimSpace(prefix+op+" "+name))
				hooks := slices.Clone(x.hooks)
				x.mu.Unlock()
				for _, h := range hooks {
					h(prefix+op, name)
				}
			}
		}
	}
	x.rt.OnCall(logged(""))
	x.nm.OnCall(logged("net "))
	x.vm.OnCall(logged("vol "))
	return x
}

// hook runs fn before every state-changing call ("create", "start", "net
// attach", "vol create"…) with the container, network or volume name.
func (x *exEnv) hook(fn func(op, name string)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.hooks = append(x.hooks, fn)
}

func (x *exEnv) deps() Deps {
	return Deps{Runtime: x.rt, Networks: x.nm, Volumes: x.vm, Images: x.images}
}

func (x *exEnv) executor(parallel int) *Executor {
	return &Executor{Deps: x.deps(), Model: x.m, Parallel: parallel,
		Sink: SinkFunc(func(e Event) {
			x.mu.Lock()
			x.events = append(x.events, e)
			x.mu.Unlock()
		}),
		poll: 2 * time.Millisecond, noHealthGrace: 100 * time.Millisecond, WaitTimeout: 5 * time.Second}
}

func (x *exEnv) run(p *Plan) error {
	return x.executor(0).Run(context.Background(), p)
}

func (x *exEnv) mustRun(p *Plan) {
	x.t.Helper()
	if err := x.run(p); err != nil {
		x.t.Fatalf("run:\n%s\nerror: %v", p, err)
	}
}

// calls is the merged call log so far.
func (x *exEnv) calls() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.log)
}

func (x *exEnv) resetLog() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.log, x.events = nil, nil
}

// eventLines are "status text resource" for each event.
func (x *exEnv) eventLines() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for _, e := range x.events {
		out = append(out, e.Status.String()+" "+e.Text+" "+e.Resource)
	}
	return out
}

func (x *exEnv) info(name string) runtime.Info {
	x.t.Helper()
	c, err := x.rt.Load(context.Background(), name)
	if err != nil {
		x.t.Fatalf("container %s: %v", name, err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		x.t.Fatal(err)
	}
	return info
}

func (x *exEnv) exists(name string) bool {
	_, err := x.rt.Load(context.Background(), name)
	return err == nil
}

// exIndex is the position of want in log, failing when absent.
func exIndex(t *testing.T, log []string, want string) int {
	t.Helper()
	i := slices.Index(log, want)
	if i < 0 {
		t.Fatalf("%q not in the call log:\n%s", want, strings.Join(log, "\n"))
	}
	return i
}

func exBefore(t *testing.T, log []string, first, then string) {
	t.Helper()
	if a, b := exIndex(t, log, first), exIndex(t, log, then); a > b {
		t.Fatalf("%q came after %q:\n%s", first, then, strings.Join(log, "\n"))
	}
}

func exPlan(actions ...*Action) *Plan {
	for i, a := range actions {
		a.ID = i + 1
	}
	return &Plan{Actions: actions}
}

func exNet(key string, deps ...Edge) *Action {
	return &Action{Kind: CreateNetwork, Resource: "network:" + key, Cause: "missing", Deps: deps}
}

func exCreate(svc string, n int, deps ...Edge) *Action {
	return &Action{Kind: CreateContainer, Resource: exRes(svc, n), Cause: "missing", Service: svc, Number: n, Deps: deps}
}

func exStart(svc string, n int, deps ...Edge) *Action {
	return &Action{Kind: StartContainer, Resource: exRes(svc, n), Service: svc, Number: n, Deps: deps}
}

func exRes(svc string, n int) string { return "container:" + svc + "-" + string(rune('0'+n)) }

const exHealthyYAML = `
services:
  db:
    image: busybox
    healthcheck: {test: ["CMD", "true"], interval: 1s}
  web:
    image: busybox
    depends_on: {db: {condition: service_healthy}}
`

// upPlan is db and web on the default network, web started once db is
// healthy.
func exUpPlan(cond Condition) *Plan {
	return exPlan(
		exNet("default"),
		exCreate("db", 1, Edge{1, Done}),
		exStart("db", 1, Edge{2, Done}),
		exCreate("web", 1, Edge{1, Done}),
		exStart("web", 1, Edge{4, Done}, Edge{3, cond}),
	)
}

func TestExecutorStartsDependentOnlyOnceDependencyIsHealthy(t *testing.T) {
	x := newExEnv(t, exHealthyYAML)
	x.rt.SetBehaviour("demo-db-1", rtfake.Behaviour{Healthy: true, Delay: 30 * time.Millisecond})
	var dbHealthAtWebStart atomic.Value
	x.hook(func(op, name string) {
		if op == "start" && name == "demo-web-1" {
			dbHealthAtWebStart.Store(x.info("demo-db-1").Health)
		}
	})
	x.mustRun(exUpPlan(Healthy))

	log := x.calls()
	exBefore(t, log, "net create demo_default", "create demo-db-1")
	exBefore(t, log, "create demo-db-1", "net attach demo_default demo-db-1")
	exBefore(t, log, "net attach demo_default demo-db-1", "setnetworking demo-db-1")
	exBefore(t, log, "setnetworking demo-db-1", "start demo-db-1")
	exBefore(t, log, "start demo-db-1", "start demo-web-1")
	if h := dbHealthAtWebStart.Load(); h != "healthy" {
		t.Fatalf("db's health when web started: %v", h)
	}
	for _, name := range []string{"demo-db-1", "demo-web-1"} {
		if info := x.info(name); info.Status != runtime.StatusRunning {
			t.Errorf("%s is %v", name, info.Status)
		}
	}
	ev := x.eventLines()
	for _, want := range []string{
		"working Creating network:demo_default", "done Created network:demo_default",
		"working Creating container:demo-db-1", "done Created container:demo-db-1",
		"working Starting container:demo-db-1", "done Started container:demo-db-1",
		"working Waiting container:demo-db-1", "done Healthy container:demo-db-1",
		"working Starting container:demo-web-1", "done Started container:demo-web-1",
	} {
		if !slices.Contains(ev, want) {
			t.Errorf("event %q missing:\n%s", want, strings.Join(ev, "\n"))
		}
	}
	if slices.Index(ev, "done Healthy container:demo-db-1") > slices.Index(ev, "working Starting container:demo-web-1") {
		t.Errorf("web started before db was reported healthy:\n%s", strings.Join(ev, "\n"))
	}
	// The endpoints were recorded for the start.
	c, _ := x.rt.Load(context.Background(), "demo-web-1")
	nw, _ := c.Networking(context.Background())
	if len(nw.Endpoints) != 1 || nw.Endpoints[0].Network != "demo_default" || nw.Endpoints[0].IPv4 == "" ||
		!slices.Contains(nw.Endpoints[0].Aliases, "web") {
		t.Fatalf("web's networking: %+v", nw)
	}
}

// exBlockingCreates makes every container create wait until want creates
// are in flight at once (or wait passes), and reports the most seen.
func exBlockingCreates(x *exEnv, want int, wait time.Duration) *atomic.Int32 {
	var mu sync.Mutex
	var inflight int
	var most atomic.Int32
	x.hook(func(op, name string) {
		if op != "create" {
			return
		}
		mu.Lock()
		inflight++
		most.Store(max(most.Load(), int32(inflight)))
		mu.Unlock()
		deadline := time.Now().Add(wait)
		for most.Load() < int32(want) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		inflight--
		mu.Unlock()
	})
	return &most
}

func TestExecutorRunsIndependentActionsConcurrentlyUpToParallel(t *testing.T) {
	const yml = `
services:
  a: {image: busybox}
  b: {image: busybox}
  c: {image: busybox}
`
	plan := func() *Plan {
		return exPlan(exNet("default"), exCreate("a", 1, Edge{1, Done}), exCreate("b", 1, Edge{1, Done}), exCreate("c", 1, Edge{1, Done}))
	}
	for _, tc := range []struct{ parallel, want int }{{0, 3}, {1, 1}, {2, 2}} {
		x := newExEnv(t, yml)
		// Unlimited: all three meet (quickly). Limited: a create waits
		// a while for others that must not come.
		wait := 50 * time.Millisecond
		if tc.parallel == 0 {
			wait = 10 * time.Second
		}
		most := exBlockingCreates(x, 3, wait)
		if err := x.executor(tc.parallel).Run(context.Background(), plan()); err != nil {
			t.Fatal(err)
		}
		if got := int(most.Load()); got != tc.want {
			t.Errorf("Parallel=%d: %d creates at once, want %d", tc.parallel, got, tc.want)
		}
		if n := x.rt.Names(); len(n) != 3 {
			t.Errorf("Parallel=%d: containers %v", tc.parallel, n)
		}
	}
}

func TestExecutorFailureSkipsDependentsAndNamesService(t *testing.T) {
	x := newExEnv(t, exHealthyYAML)
	boom := errors.New("disk on fire")
	x.rt.FailNext("create", "demo-db-1", boom)
	plan := exPlan(
		exNet("default"),
		exCreate("db", 1, Edge{1, Done}),
		exStart("db", 1, Edge{2, Done}),
		exCreate("web", 1, Edge{3, Started}),
		exStart("web", 1, Edge{4, Done}, Edge{3, Healthy}),
	)
	err := x.run(plan)
	if !errors.Is(err, boom) {
		t.Fatalf("error %v does not wrap the cause", err)
	}
	if want := "service db: create container:db-1: disk on fire"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	for _, c := range x.calls() {
		if strings.Contains(c, "demo-web-1") || c == "start demo-db-1" {
			t.Errorf("ran after the failure: %q", c)
		}
	}
	ev := x.eventLines()
	for _, want := range []string{"failed Error container:demo-db-1", "skipped Skipped container:demo-web-1"} {
		if !slices.Contains(ev, want) {
			t.Errorf("event %q missing:\n%s", want, strings.Join(ev, "\n"))
		}
	}
	if n := slices.IndexFunc(ev, func(s string) bool { return s == "skipped Skipped container:demo-db-1" }); n < 0 {
		t.Errorf("db's start not reported skipped:\n%s", strings.Join(ev, "\n"))
	}
}

func TestExecutorFailureLetsRunningActionsFinishAndSkipsUnstarted(t *testing.T) {
	const yml = `
services:
  db: {image: busybox}
  other: {image: busybox}
`
	x := newExEnv(t, yml)
	ctx := context.Background()
	s, _ := NetworkSpec(x.m, "default")
	x.nm.Create(ctx, s)
	boom := errors.New("boom")
	x.rt.FailNext("create", "demo-db-1", boom)
	// other's create is under way when db's fails.
	otherRunning, dbTried := make(chan struct{}), make(chan struct{})
	x.hook(func(op, name string) {
		switch {
		case op == "create" && name == "demo-db-1":
			<-otherRunning
			close(dbTried)
		case op == "create" && name == "demo-other-1":
			close(otherRunning)
			<-dbTried
			time.Sleep(30 * time.Millisecond) // the failure lands meanwhile
		}
	})
	plan := exPlan(exCreate("db", 1), exCreate("other", 1), exStart("other", 1, Edge{2, Done}))
	err := x.run(plan)
	if !errors.Is(err, boom) || strings.Contains(err.Error(), "other") {
		t.Fatalf("error: %v", err)
	}
	if !x.exists("demo-other-1") {
		t.Fatal("the running create of other did not finish")
	}
	if slices.Contains(x.calls(), "start demo-other-1") {
		t.Fatal("other was started after the failure")
	}
	if !slices.Contains(x.eventLines(), "skipped Skipped container:demo-other-1") {
		t.Fatalf("other's start not skipped: %v", x.eventLines())
	}
}

func TestExecutorUnhealthyDependencyFailsAndDependentNeverStarts(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    rtfake.Behaviour
		want string
	}{
		{"unhealthy", rtfake.Behaviour{Unhealthy: true, Delay: 10 * time.Millisecond}, "service db is unhealthy"},
		{"exited", rtfake.Behaviour{ExitAfterStart: true, ExitCode: 1, Delay: 10 * time.Millisecond}, "service db exited (1) before it was healthy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newExEnv(t, exHealthyYAML)
			x.rt.SetBehaviour("demo-db-1", tc.b)
			err := x.run(exUpPlan(Healthy))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if slices.Contains(x.calls(), "start demo-web-1") {
				t.Fatal("web was started")
			}
			ev := x.eventLines()
			if !slices.Contains(ev, "skipped Skipped container:demo-web-1") {
				t.Fatalf("web's start not skipped:\n%s", strings.Join(ev, "\n"))
			}
			if tc.name == "unhealthy" && !slices.Contains(ev, "failed Unhealthy container:demo-db-1") {
				t.Fatalf("no Unhealthy event:\n%s", strings.Join(ev, "\n"))
			}
		})
	}
}

func TestExecutorHealthyWaitOnContainerWithoutHealthcheckFails(t *testing.T) {
	const yml = `
services:
  db: {image: busybox}
  web: {image: busybox, depends_on: {db: {condition: service_healthy}}}
`
	x := newExEnv(t, yml)
	err := x.run(exUpPlan(Healthy))
	if err == nil || !strings.Contains(err.Error(), "service db has no healthcheck") {
		t.Fatalf("error: %v", err)
	}
	if slices.Contains(x.calls(), "start demo-web-1") {
		t.Fatal("web was started")
	}
}

func TestExecutorCompletedSuccessfully(t *testing.T) {
	const yml = `
services:
  migrate: {image: busybox}
  web: {image: busybox, depends_on: {migrate: {condition: service_completed_successfully}}}
`
	plan := func() *Plan {
		return exPlan(
			exNet("default"),
			exCreate("migrate", 1, Edge{1, Done}),
			exStart("migrate", 1, Edge{2, Done}),
			exCreate("web", 1, Edge{1, Done}),
			exStart("web", 1, Edge{4, Done}, Edge{3, CompletedSuccessfully}),
		)
	}
	t.Run("exit 0", func(t *testing.T) {
		x := newExEnv(t, yml)
		x.rt.SetBehaviour("demo-migrate-1", rtfake.Behaviour{ExitAfterStart: true, ExitCode: 0, Delay: 20 * time.Millisecond})
		x.mustRun(plan())
		if x.info("demo-web-1").Status != runtime.StatusRunning {
			t.Fatal("web not started")
		}
		if !slices.Contains(x.eventLines(), "done Exited container:demo-migrate-1") {
			t.Fatalf("events: %v", x.eventLines())
		}
	})
	t.Run("exit 1", func(t *testing.T) {
		x := newExEnv(t, yml)
		x.rt.SetBehaviour("demo-migrate-1", rtfake.Behaviour{ExitAfterStart: true, ExitCode: 1, Delay: 20 * time.Millisecond})
		err := x.run(plan())
		if err == nil || !strings.Contains(err.Error(), "service migrate didn't complete successfully: exit 1") {
			t.Fatalf("error: %v", err)
		}
		if slices.Contains(x.calls(), "start demo-web-1") {
			t.Fatal("web was started")
		}
	})
}

func TestExecutorCancelStopsLaunchingActions(t *testing.T) {
	x := newExEnv(t, exHealthyYAML)
	x.rt.SetBehaviour("demo-db-1", rtfake.Behaviour{Healthy: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x.hook(func(op, name string) {
		if op == "start" && name == "demo-db-1" {
			cancel()
		}
	})
	plan := exPlan(
		exNet("default"),
		exCreate("db", 1, Edge{1, Done}),
		exStart("db", 1, Edge{2, Done}),
		exCreate("web", 1, Edge{3, Done}),
		exStart("web", 1, Edge{4, Done}),
	)
	err := x.executor(1).Run(ctx, plan)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	for _, c := range x.calls() {
		if strings.Contains(c, "demo-web-1") {
			t.Fatalf("launched after the cancel: %q", c)
		}
	}
}

func TestExecutorRecreateRenamesCreatesThenRemovesOld(t *testing.T) {
	const v1 = `
services:
  web: {image: busybox, environment: {V: "1"}}
`
	const v2 = `
services:
  web: {image: busybox, environment: {V: "2"}}
`
	x := newExEnv(t, v1)
	x.mustRun(exPlan(exNet("default"), exCreate("web", 1, Edge{1, Done}), exStart("web", 1, Edge{2, Done})))
	old := x.info("demo-web-1")
	oldNet, _ := x.nm.Inspect(context.Background(), "demo_default")
	oldIP := oldNet.Endpoints[0].IPv4

	x.m = exLoad(t, v2)
	x.resetLog()
	x.mustRun(exPlan(
		&Action{Kind: RecreateContainer, Resource: "container:web-1", Cause: "config hash changed: environment", Service: "web", Number: 1, Target: old.ID},
		exStart("web", 1, Edge{1, Done}),
	))
	renamed := old.ID[:12] + "_demo-web-1"
	want := []string{
		"stop demo-web-1",
		"net detach demo_default demo-web-1",
		"rename demo-web-1",
		"create demo-web-1",
		"net attach demo_default demo-web-1",
		"setnetworking demo-web-1",
		"remove " + renamed,
		"net attach demo_default demo-web-1", // the start re-ensures it
		"setnetworking demo-web-1",
		"start demo-web-1",
	}
	if got := x.calls(); !slices.Equal(got, want) {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if names := x.rt.Names(); !slices.Equal(names, []string{"demo-web-1"}) {
		t.Fatalf("containers: %v", names)
	}
	cur := x.info("demo-web-1")
	if cur.ID == old.ID || cur.Status != runtime.StatusRunning || cur.Labels[runtime.LabelConfigHash] == old.Labels[runtime.LabelConfigHash] {
		t.Fatalf("new container: %+v", cur)
	}
	spec := x.rt.Spec("demo-web-1")
	if !slices.Contains(spec.OCI.Process.Env, "V=2") {
		t.Fatalf("new env: %v", spec.OCI.Process.Env)
	}
	n, _ := x.nm.Inspect(context.Background(), "demo_default")
	if len(n.Endpoints) != 1 || n.Endpoints[0].ContainerID != cur.ID || n.Endpoints[0].IPv4 != oldIP {
		t.Fatalf("endpoints after recreate: %+v (old IP %v)", n.Endpoints, oldIP)
	}
	ev := x.eventLines()
	if !slices.Contains(ev, "working Recreating container:demo-web-1") || !slices.Contains(ev, "done Recreated container:demo-web-1") {
		t.Fatalf("events:\n%s", strings.Join(ev, "\n"))
	}
}

func TestExecutorRemoveContainerDetachesItsEndpoints(t *testing.T) {
	x := newExEnv(t, `
services:
  web: {image: busybox}
`)
	x.mustRun(exPlan(exNet("default"), exCreate("web", 1, Edge{1, Done}), exStart("web", 1, Edge{2, Done})))
	id := x.info("demo-web-1").ID
	x.mustRun(exPlan(
		&Action{Kind: StopContainer, Resource: "container:web-1", Cause: "down", Service: "web", Number: 1, Target: id},
		&Action{Kind: RemoveContainer, Resource: "container:web-1", Cause: "down", Service: "web", Number: 1, Target: id, Deps: []Edge{{1, Done}}},
		&Action{Kind: RemoveNetwork, Resource: "network:default", Cause: "down", Deps: []Edge{{2, Done}}},
	))
	if x.exists("demo-web-1") {
		t.Fatal("container left")
	}
	if _, err := x.nm.Inspect(context.Background(), "demo_default"); !errdefs.IsNotFound(err) {
		t.Fatalf("network left: %v", err)
	}
	exBefore(t, x.calls(), "remove demo-web-1", "net detach demo_default demo-web-1")
	// Again: everything is gone already, which is fine.
	x.mustRun(exPlan(
		&Action{Kind: RemoveContainer, Resource: "container:web-1", Service: "web", Number: 1, Target: id},
		&Action{Kind: RemoveNetwork, Resource: "network:default"},
	))
}

func TestExecutorNeedsOnServicesOutsideThePlan(t *testing.T) {
	x := newExEnv(t, exHealthyYAML)
	x.rt.SetBehaviour("demo-db-1", rtfake.Behaviour{Healthy: true})
	x.mustRun(exPlan(exNet("default"), exCreate("db", 1, Edge{1, Done}), exStart("db", 1, Edge{2, Done})))

	start := exStart("web", 1, Edge{1, Done})
	start.Needs = []Need{{Service: "db", Cond: Healthy, Required: true}}
	x.mustRun(exPlan(exCreate("web", 1), start))
	if x.info("demo-web-1").Status != runtime.StatusRunning {
		t.Fatal("web not started")
	}

	// An unhealthy dependency fails the start.
	x.rt.SetHealth("demo-db-1", "unhealthy")
	c, _ := x.rt.Load(context.Background(), "demo-web-1")
	c.Stop(context.Background(), 0)
	start = exStart("web", 1)
	start.Needs = []Need{{Service: "db", Cond: Healthy, Required: true}}
	err := x.run(exPlan(start))
	if err == nil || !strings.Contains(err.Error(), "service web: start container:web-1: service db is unhealthy") {
		t.Fatalf("error: %v", err)
	}

	// Missing services: skipped unless required.
	start = exStart("web", 1)
	start.Needs = []Need{{Service: "cache", Cond: Started, Required: false}}
	x.mustRun(exPlan(start))
	c.Stop(context.Background(), 0)
	start = exStart("web", 1)
	start.Needs = []Need{{Service: "cache", Cond: Started, Required: true}}
	if err := x.run(exPlan(start)); err == nil || !strings.Contains(err.Error(), "service cache") {
		t.Fatalf("required missing service: %v", err)
	}
}

func TestExecutorLinksReachTheCreatedSpec(t *testing.T) {
	x := newExEnv(t, `
services:
  db:
    image: postgres
    environment: {POSTGRES_DB: app}
    expose: ["6000-6001"]
  web:
    image: busybox
    links: ["db:database"]
`)
	x.images["postgres"] = exImage("sha256:pg", "5432/tcp")
	x.mustRun(exPlan(
		exNet("default"),
		exCreate("db", 1, Edge{1, Done}),
		exStart("db", 1, Edge{2, Done}),
		exCreate("web", 1, Edge{3, Started}),
	))
	n, _ := x.nm.Inspect(context.Background(), "demo_default")
	var dbIP string
	for _, ep := range n.Endpoints {
		if ep.Name == "demo-db-1" {
			dbIP = ep.IPv4.String()
		}
	}
	spec := x.rt.Spec("demo-web-1")
	if spec.OCI == nil {
		t.Fatal("web not created")
	}
	for _, want := range []string{
		"DATABASE_NAME=/demo-web-1/database",
		"DATABASE_PORT=tcp://" + dbIP + ":5432",
		"DATABASE_PORT_5432_TCP_ADDR=" + dbIP,
		"DATABASE_PORT_6000_TCP_START=tcp://" + dbIP + ":6000",
		"DATABASE_ENV_POSTGRES_DB=app",
	} {
		if !slices.Contains(spec.OCI.Process.Env, want) {
			t.Errorf("%s missing from web's env:\n%s", want, strings.Join(spec.OCI.Process.Env, "\n"))
		}
	}
	if slices.ContainsFunc(spec.OCI.Process.Env, func(s string) bool { return strings.HasPrefix(s, "DATABASE_ENV_PATH=") }) {
		t.Error("the target's PATH was copied")
	}
	c, _ := x.rt.Load(context.Background(), "demo-web-1")
	nw, _ := c.Networking(context.Background())
	if len(nw.Hosts) != 1 || nw.Hosts[0].IP != dbIP || !slices.Equal(nw.Hosts[0].Names, []string{"database", "db", "demo-db-1"}) {
		t.Fatalf("hosts: %+v", nw.Hosts)
	}
	// The start keeps the link hosts.
	x.mustRun(exPlan(exStart("web", 1)))
	nw, _ = c.Networking(context.Background())
	if len(nw.Hosts) != 1 {
		t.Fatalf("hosts after start: %+v", nw.Hosts)
	}
}

func TestExecutorLinkToStoppedTargetFails(t *testing.T) {
	x := newExEnv(t, `
services:
  db: {image: busybox}
  web: {image: busybox, links: [db]}
`)
	x.mustRun(exPlan(exNet("default"), exCreate("db", 1, Edge{1, Done})))
	err := x.run(exPlan(exCreate("web", 1)))
	if err == nil || !strings.Contains(err.Error(), "container demo-db-1 is created; start it first") {
		t.Fatalf("error: %v", err)
	}
	if x.exists("demo-web-1") {
		t.Fatal("web created")
	}
}

func TestExecutorMissingImageSaysWhatToDo(t *testing.T) {
	x := newExEnv(t, `
services:
  web: {image: "busybox:2"}
`)
	err := x.run(exPlan(&Action{Kind: PullImage, Resource: "image:busybox:2", Cause: "missing", Service: "web"}))
	want := "service web: pull image:busybox:2: image busybox:2 is not present locally: pull it (berth pull, berth image pull busybox:2) or import or load it (berth image import FILE busybox:2)"
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
	if !errdefs.IsNotFound(err) {
		t.Fatal("the resolver's error is not in the chain")
	}
	err = x.run(exPlan(&Action{Kind: BuildImage, Resource: "image:demo-web", Cause: "missing", Service: "web"}))
	if err == nil || !strings.Contains(err.Error(), "image demo-web is not present locally: build it (berth build, or up without --no-build)") {
		t.Fatalf("build error: %v", err)
	}
	err = x.run(exPlan(exNet("default"), exCreate("web", 1, Edge{1, Done})))
	if err == nil || !strings.Contains(err.Error(), "service web: create container:web-1: image busybox:2 is not present locally") {
		t.Fatalf("create error: %v", err)
	}
}

func TestExecutorCreateNetworkFromModel(t *testing.T) {
	x := newExEnv(t, `
services:
  web: {image: busybox, networks: [back]}
networks:
  back:
    internal: true
    enable_ipv6: true
    labels: {team: core}
    driver_opts:
      com.docker.network.bridge.name: br-back
      com.docker.network.driver.mtu: "1400"
    ipam:
      config:
        - subnet: 172.28.0.0/16
          gateway: 172.28.0.254
          ip_range: 172.28.5.0/24
        - subnet: fd00:28::/64
  outside:
    external: true
    name: shared
`)
	x.mustRun(exPlan(exNet("back")))
	n, err := x.nm.Inspect(context.Background(), "demo_back")
	if err != nil {
		t.Fatal(err)
	}
	if !n.Internal || !n.EnableIPv6 || n.MTU != 1400 || n.BridgeName != "br-back" ||
		n.Subnet.String() != "172.28.0.0/16" || n.Gateway.String() != "172.28.0.254" ||
		n.IPRange.String() != "172.28.5.0/24" || n.Subnet6.String() != "fd00:28::/64" {
		t.Fatalf("network: %+v", n.Spec)
	}
	if n.Labels["team"] != "core" || n.Labels[runtime.LabelProject] != "demo" || n.Labels[LabelNetworkKey] != "back" {
		t.Fatalf("labels: %v", n.Labels)
	}
	x.mustRun(exPlan(exNet("back"))) // idempotent
	// An external network is never created; missing, it is an error.
	if err := x.run(exPlan(exNet("outside"))); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "shared") {
		t.Fatalf("external: %v", err)
	}
	if ns, _ := x.nm.List(context.Background(), network.Filter{}); len(ns) != 1 {
		t.Fatalf("networks: %+v", ns)
	}
}

func TestExecutorVolumes(t *testing.T) {
	const yml = `
services:
  db: {image: busybox, volumes: ["data:/data"]}
volumes:
  data: {labels: {backup: "yes"}}
`
	x := newExEnv(t, yml)
	plan := exPlan(&Action{Kind: CreateVolume, Resource: "volume:data", Cause: "missing"})
	x.mustRun(plan)
	v, err := x.vm.Inspect(context.Background(), "demo_data")
	if err != nil || v.Labels["backup"] != "yes" || v.Labels[runtime.LabelProject] != "demo" || v.Labels[LabelVolumeKey] != "data" {
		t.Fatalf("volume: %+v, %v", v, err)
	}
	x.mustRun(plan)
	x.mustRun(exPlan(&Action{Kind: RemoveVolume, Resource: "volume:data", Cause: "down"}))
	if names := x.vm.Names(); len(names) != 0 {
		t.Fatalf("volumes left: %v", names)
	}

	e := x.executor(0)
	e.Deps.Volumes = nil
	err = e.Run(context.Background(), plan)
	if err == nil || !strings.Contains(err.Error(), "create volume:data: named volumes are not available") {
		t.Fatalf("without a volume manager: %v", err)
	}
}

func TestExecutorCreateReusesTheSameContainerAndRefusesAnother(t *testing.T) {
	const v1 = `
services:
  web: {image: busybox, environment: {V: "1"}}
`
	x := newExEnv(t, v1)
	x.mustRun(exPlan(exNet("default"), exCreate("web", 1, Edge{1, Done})))
	id := x.info("demo-web-1").ID
	x.mustRun(exPlan(exCreate("web", 1))) // a re-run after a crash
	if got := x.info("demo-web-1").ID; got != id {
		t.Fatalf("container replaced: %s → %s", id, got)
	}
	x.m = exLoad(t, strings.ReplaceAll(v1, `"1"`, `"2"`))
	err := x.run(exPlan(exCreate("web", 1)))
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "exists with another configuration") {
		t.Fatalf("error: %v", err)
	}
}

func TestExecutorCreateRemovesLeftoverOfCrashedRecreate(t *testing.T) {
	x := newExEnv(t, `
services:
  web: {image: busybox}
`)
	x.mustRun(exPlan(exNet("default"), exCreate("web", 1, Edge{1, Done})))
	c, _ := x.rt.Load(context.Background(), "demo-web-1")
	left := c.ID()[:12] + "_demo-web-1"
	if err := c.Rename(context.Background(), left); err != nil {
		t.Fatal(err)
	}
	x.mustRun(exPlan(exCreate("web", 1)))
	if names := x.rt.Names(); !slices.Equal(names, []string{"demo-web-1"}) {
		t.Fatalf("containers: %v", names)
	}
}

func TestExecutorStopTimeout(t *testing.T) {
	x := newExEnv(t, `
services:
  slow: {image: busybox, stop_grace_period: 42s}
  plain: {image: busybox}
`)
	x.mustRun(exPlan(exNet("default"), exCreate("slow", 1, Edge{1, Done}), exCreate("plain", 1, Edge{1, Done})))
	stop := func(svc string) *Action {
		return &Action{Kind: StopContainer, Resource: exRes(svc, 1), Service: svc, Number: 1}
	}
	x.mustRun(exPlan(stop("slow"), stop("plain")))
	if d, _ := x.rt.StopTimeout("demo-slow-1"); d != 42*time.Second {
		t.Errorf("stop_grace_period: %v", d)
	}
	if d, _ := x.rt.StopTimeout("demo-plain-1"); d != 10*time.Second {
		t.Errorf("default: %v", d)
	}
	e := x.executor(0)
	three := 3 * time.Second
	e.Options.Timeout = &three
	if err := e.Run(context.Background(), exPlan(stop("slow"))); err != nil {
		t.Fatal(err)
	}
	if d, _ := x.rt.StopTimeout("demo-slow-1"); d != three {
		t.Errorf("-t: %v", d)
	}
}

func TestExecutorStartErrorKeepsCause(t *testing.T) {
	x := newExEnv(t, `
services:
  web: {image: busybox, ports: ["8080:80"]}
`)
	x.rt.SetBehaviour("demo-web-1", rtfake.Behaviour{StartErr: &runtime.StartError{Code: 125, Msg: "port 8080 is already in use", PortInUse: true}})
	err := x.run(exPlan(exNet("default"), exCreate("web", 1, Edge{1, Done}), exStart("web", 1, Edge{2, Done})))
	if err == nil || err.Error() != "service web: start container:web-1: port 8080 is already in use" {
		t.Fatalf("error: %v", err)
	}
	var se *runtime.StartError
	if !errors.As(err, &se) || !se.PortInUse {
		t.Fatal("StartError not in the chain")
	}
	if x.exists("demo-web-1") {
		t.Error("a container whose port was in use is left behind")
	}
}

func TestExecutorAttachFailureRemovesTheNewContainer(t *testing.T) {
	x := newExEnv(t, `
services:
  web: {image: busybox}
`)
	boom := errors.New("no more veths")
	x.nm.FailNext("attach", "demo-web-1", boom)
	err := x.run(exPlan(exNet("default"), exCreate("web", 1, Edge{1, Done})))
	if !errors.Is(err, boom) {
		t.Fatalf("error: %v", err)
	}
	if x.exists("demo-web-1") {
		t.Fatal("the half-made container is left")
	}
	x.mustRun(exPlan(exCreate("web", 1))) // and the re-run converges
}

func TestExecutorStartReattachesAContainerNeverAttached(t *testing.T) {
	x := newExEnv(t, `
services:
  web: {image: busybox}
`)
	x.mustRun(exPlan(exNet("default")))
	// As a crash between Create and the attach leaves it.
	built, _, err := (&exRun{e: x.executor(0)}).desired(context.Background(), "web", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.rt.Create(context.Background(), built.Spec); err != nil {
		t.Fatal(err)
	}
	x.mustRun(exPlan(exStart("web", 1)))
	if eps := x.nm.Endpoints()["demo_default"]; !slices.Equal(eps, []string{"demo-web-1"}) {
		t.Fatalf("endpoints: %v", eps)
	}
}

func TestExecutorRejectsInvalidPlan(t *testing.T) {
	x := newExEnv(t, exHealthyYAML)
	p := &Plan{Actions: []*Action{{ID: 1, Kind: CreateNetwork, Resource: "network:default", Deps: []Edge{{2, Done}}}, {ID: 2, Kind: CreateNetwork, Resource: "network:default"}}}
	if err := x.run(p); err == nil {
		t.Fatal("a plan with a forward edge ran")
	}
	if err := x.run(&Plan{}); err != nil {
		t.Fatalf("empty plan: %v", err)
	}
}

func TestExecutorActionOnAGoneTargetLeavesTheNameAlone(t *testing.T) {
	x := newExEnv(t, `
services:
  web: {image: busybox}
`)
	x.mustRun(exPlan(exNet("default"), exCreate("web", 1, Edge{1, Done}), exStart("web", 1, Edge{2, Done})))
	gone := strings.Repeat("ab", 32) // a duplicate removed meanwhile
	x.mustRun(exPlan(
		&Action{Kind: StopContainer, Resource: "container:web-1", Cause: "duplicate of web-1", Service: "web", Number: 1, Target: gone},
		&Action{Kind: RemoveContainer, Resource: "container:web-1", Cause: "duplicate of web-1", Service: "web", Number: 1, Target: gone, Deps: []Edge{{1, Done}}},
	))
	if info := x.info("demo-web-1"); info.Status != runtime.StatusRunning {
		t.Fatalf("the replica was touched: %v", info.Status)
	}
}

func TestExecutorRestartStopsThenStartsAfterNeeds(t *testing.T) {
	x := newExEnv(t, exHealthyYAML)
	x.rt.SetBehaviour("demo-db-1", rtfake.Behaviour{Healthy: true})
	x.mustRun(exUpPlan(Healthy))
	x.resetLog()
	restart := &Action{Kind: RestartContainer, Resource: "container:web-1", Cause: "dependency db recreated",
		Service: "web", Number: 1, Target: x.info("demo-web-1").ID, Needs: []Need{{Service: "db", Cond: Healthy, Required: true}}}
	x.mustRun(exPlan(restart))
	exBefore(t, x.calls(), "stop demo-web-1", "start demo-web-1")
	if x.info("demo-web-1").Status != runtime.StatusRunning {
		t.Fatal("web not running after the restart")
	}
	ev := x.eventLines()
	if !slices.Contains(ev, "working Restarting container:demo-web-1") || !slices.Contains(ev, "done Restarted container:demo-web-1") {
		t.Fatalf("events: %v", ev)
	}
}

func TestExecutorRemovesOneOffByItsName(t *testing.T) {
	x := newExEnv(t, `
services:
  web: {image: busybox}
`)
	x.mustRun(exPlan(exNet("default"), exCreate("web", 1, Edge{1, Done})))
	s := x.rt.Spec("demo-web-1")
	s.Name = "demo-web-run-0123456789ab"
	s.Labels[runtime.LabelOneOff] = "True"
	if _, err := x.rt.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	x.mustRun(exPlan(&Action{Kind: RemoveContainer, Resource: "container:demo-web-run-0123456789ab", Cause: "down", Service: "web", Number: 1}))
	if names := x.rt.Names(); !slices.Equal(names, []string{"demo-web-1"}) {
		t.Fatalf("containers: %v", names)
	}
	if !slices.Contains(x.eventLines(), "done Removed container:demo-web-run-0123456789ab") {
		t.Fatalf("events: %v", x.eventLines())
	}
}

// A plan whose image cannot be had fails before it makes anything: no
// half-created network.
func TestExecutorMissingImageCreatesNothing(t *testing.T) {
	x := newExEnv(t, `
services:
  web: {image: "busybox:2"}
`)
	err := x.run(exPlan(exNet("default"), &Action{Kind: PullImage, Resource: "image:busybox:2", Cause: "missing", Service: "web"},
		exCreate("web", 1, Edge{1, Done}, Edge{2, Done})))
	if err == nil || !strings.Contains(err.Error(), "busybox:2") {
		t.Fatalf("error: %v", err)
	}
	if nets, _ := x.nm.List(context.Background(), network.Filter{}); len(nets) != 0 {
		t.Errorf("networks made before the image failed: %v", nets)
	}
}
