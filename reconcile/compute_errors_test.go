package reconcile_test

import (
	"reflect"
	"strings"
	"testing"

	"berth.dev/berth/project/projecttest"
	"berth.dev/berth/reconcile"
	rt "berth.dev/berth/reconcile/reconciletest"
)

// Compute's input errors name the service and resource and say what to
// do; each is a plain error, never a panic, and comes with no plan.
func TestComputeErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		obs  func(*rt.B) *rt.B
		opt  reconcile.Options
		want []string // substrings of the message
	}{
		{
			name: "missing external network",
			yaml: `
services:
  web: {image: web, networks: [outside]}
networks:
  outside: {external: true, name: corp_net}
`,
			want: []string{`service "web"`, `network "outside" (name "corp_net") is external but does not exist`, "berth network create corp_net"},
		},
		{
			name: "missing external volume",
			yaml: `
services:
  db: {image: db, volumes: ["data:/data"]}
volumes:
  data: {external: true, name: shared_data}
`,
			obs:  func(b *rt.B) *rt.B { return b.Network("default") },
			want: []string{`service "db"`, `volume "data" (name "shared_data") is external but does not exist`, "berth volume create shared_data"},
		},
		{
			name: "container_name with scale 2",
			yaml: `services: {web: {image: web, container_name: fixed}}`,
			opt:  reconcile.Options{Scale: map[string]int{"web": 2}},
			want: []string{`service "web"`, `container_name "fixed" fixes the name; it cannot scale to 2`},
		},
		{
			name: "fixed host port with scale 2",
			yaml: `services: {web: {image: web, ports: ["8080:80"], scale: 2}}`,
			want: []string{`service "web"`, "ports[0]", "fixed host port 8080", "cannot scale to 2"},
		},
		{
			name: "unknown service selected",
			yaml: `services: {web: {image: web}, db: {image: db}}`,
			opt:  reconcile.Options{Services: []string{"wbe"}},
			want: []string{`no such service: "wbe"`, "the services are: db, web"},
		},
		{
			name: "service of an inactive profile selected",
			yaml: `services: {web: {image: web}, debug: {image: busybox, profiles: [debug]}}`,
			opt:  reconcile.Options{Services: []string{"debug"}},
			want: []string{`service "debug" is not active`, `profile "debug"`, "enable it with --profile debug"},
		},
		{
			name: "service of several inactive profiles selected",
			yaml: `services: {web: {image: web}, debug: {image: busybox, profiles: [tools, debug]}}`,
			opt:  reconcile.Options{Services: []string{"debug"}},
			want: []string{`service "debug" is not active`, `profiles "debug", "tools", none of which is enabled`, "--profile debug"},
		},
		{
			name: "scale of an unknown service",
			yaml: `services: {web: {image: web}}`,
			opt:  reconcile.Options{Scale: map[string]int{"db": 2}},
			want: []string{"--scale db=2", `no such service: "db"`},
		},
		{
			name: "negative scale",
			yaml: `services: {web: {image: web}}`,
			opt:  reconcile.Options{Scale: map[string]int{"web": -1}},
			want: []string{"--scale web=-1", `service "web"`, "cannot be negative"},
		},
		{
			name: "force-recreate with no-recreate",
			yaml: `services: {web: {image: web}}`,
			opt:  reconcile.Options{ForceRecreate: true, NoRecreate: true},
			want: []string{"--force-recreate and --no-recreate are incompatible"},
		},
		{
			name: "pull_policy never with the image missing",
			yaml: `services: {web: {image: web, pull_policy: never}}`,
			obs:  func(b *rt.B) *rt.B { return b.Network("default") },
			want: []string{`service "web"`, `image "web" is not present locally and pull_policy is never`},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := projecttest.Load(t, c.yaml)
			b := rt.New(m)
			if c.obs != nil {
				b = c.obs(b)
			}
			p, err := reconcile.Compute(m, b.Observed(), c.opt)
			if err == nil {
				t.Fatalf("no error; plan:\n%s", p)
			}
			if p != nil {
				t.Errorf("a plan came with the error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// The same inputs in down mode are not errors: a missing external
// network does not matter to removing containers, and a service of an
// inactive profile may be taken down.
func TestDownAcceptsWhatUpRefuses(t *testing.T) {
	m := projecttest.Load(t, `
services:
  web: {image: web, networks: [outside], ports: ["8080:80"], scale: 2}
  debug: {image: busybox, profiles: [debug]}
networks:
  outside: {external: true, name: corp_net}
`)
	obs := rt.New(m).Running("debug", 1).Observed()
	p, err := reconcile.Compute(m, obs, reconcile.Options{Down: true, Services: []string{"debug"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.String(), "#1 stop   container:debug-1 down\n#2 remove container:debug-1 down <- #1\n"; got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// Compute takes an empty Observed (nil maps and slices) as a machine
// with nothing on it.
func TestComputeOnEmptyObserved(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web}}`)
	p, err := reconcile.Compute(m, &reconcile.Observed{}, reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := "#1 create network:default missing\n#2 pull   image:web       missing\n" +
		"#3 create container:web-1 missing <- #1 #2\n#4 start  container:web-1         <- #3\n"
	if got := p.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// The payload executors use.
	a := p.Actions[2]
	if a.Service != "web" || a.Number != 1 || a.Target != "" || a.Kind != reconcile.CreateContainer {
		t.Errorf("create action payload: %+v", a)
	}
}

// Actions on existing containers carry the observed container's ID.
func TestActionsTargetObservedContainers(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web}, db: {image: db}}`)
	obs := rt.New(m).Network("default").AllImages().
		Exited("web", 1, 2, rt.ID("abc123")).Running("db", 1, rt.ID("def456"), rt.Diverged("image"))
	p, err := reconcile.Compute(m, obs.Observed(), reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range p.Actions {
		got[a.Kind.String()+" "+a.Resource] = a.Target
	}
	want := map[string]string{
		"recreate container:db-1": "def456",
		"start container:db-1":    "", // the new container, not yet known
		"start container:web-1":   "abc123",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("targets: got %v, want %v\n%s", got, want, p)
	}
}

func TestWarnings(t *testing.T) {
	m := projecttest.Load(t, `
services:
  web: {image: web}
  debug: {image: busybox, profiles: [debug]}
`)
	obs := rt.New(m).Network("default").AllImages().Running("web", 1).
		Orphan("old", 2).Orphan("gone", 1).Running("debug", 1).OneOff("removed").Observed()

	got := reconcile.Warnings(m, obs, reconcile.Options{})
	want := []string{"Found orphan containers ([demo-debug-1 demo-gone-1 demo-old-2]) for this project. " +
		"If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up."}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("warnings:\n got %q\nwant %q", got, want)
	}
	for _, opt := range []reconcile.Options{{RemoveOrphans: true}, {Down: true}} {
		if w := reconcile.Warnings(m, obs, opt); w != nil {
			t.Errorf("%+v: warnings %q, want none", opt, w)
		}
	}
	if w := reconcile.Warnings(m, rt.New(m).Running("web", 1).OneOff("gone").Observed(), reconcile.Options{}); w != nil {
		t.Errorf("no orphans (a one-off is not one): warnings %q", w)
	}
	// With --remove-orphans the same containers are in the plan instead.
	p, err := reconcile.Compute(m, obs, reconcile.Options{RemoveOrphans: true})
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, a := range p.Actions {
		if a.Kind == reconcile.RemoveContainer && a.Cause == "orphan" {
			removed++
		}
	}
	if removed != 3 {
		t.Errorf("--remove-orphans removes %d containers, want 3:\n%s", removed, p)
	}
}

// An external network or volume Observe found by name, without knowing
// the project's key for it, counts as present.
func TestExternalResourcesMatchByRealName(t *testing.T) {
	m := projecttest.Load(t, `
services:
  web: {image: web, networks: [outside], volumes: ["data:/data"]}
networks:
  outside: {external: true, name: corp_net}
volumes:
  data: {external: true, name: shared_data}
`)
	o := rt.New(m).AllImages().Observed()
	o.Networks = []reconcile.Network{{Name: "corp_net", External: true}}
	o.Volumes = []reconcile.Volume{{Name: "shared_data"}}
	p, err := reconcile.Compute(m, o, reconcile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "#1 create container:web-1 missing\n#2 start  container:web-1         <- #1\n"; p.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", p, want)
	}
}
