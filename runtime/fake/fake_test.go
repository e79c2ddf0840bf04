package fake

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
)

func spec(name string, labels map[string]string) runtime.ContainerSpec {
	return runtime.ContainerSpec{
		Name: name, Labels: labels,
		OCI:    &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}},
		Rootfs: runtime.RootfsSpec{ChainID: "sha256:chain"},
		NetNS:  "private",
	}
}

// conformance are the runtime.Runtime interface rules, one case each: the
// seed of runtime/suite, which the linux runtime will run too.
var conformance = []struct {
	name string
	run  func(t *testing.T, r runtime.Runtime)
}{
	{"duplicate name is ErrConflict", func(t *testing.T, r runtime.Runtime) {
		ctx := context.Background()
		if _, err := r.Create(ctx, spec("dup", nil)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Create(ctx, spec("dup", nil)); !errdefs.IsConflict(err) {
			t.Fatalf("second Create: %v, want ErrConflict", err)
		}
	}},
	{"Load finds by ID, ID prefix and name; else ErrNotFound", func(t *testing.T, r runtime.Runtime) {
		ctx := context.Background()
		c, err := r.Create(ctx, spec("findme", nil))
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range []string{c.ID(), c.ID()[:12], "findme", "/findme"} {
			got, err := r.Load(ctx, ref)
			if err != nil || got.ID() != c.ID() {
				t.Errorf("Load(%q) = %v, %v", ref, got, err)
			}
		}
		if _, err := r.Load(ctx, "nosuch"); !errdefs.IsNotFound(err) {
			t.Errorf("Load(nosuch): %v, want ErrNotFound", err)
		}
	}},
	{"List filters by labels", func(t *testing.T, r runtime.Runtime) {
		ctx := context.Background()
		r.Create(ctx, spec("a1", map[string]string{"p": "a", "s": "x"}))
		r.Create(ctx, spec("a2", map[string]string{"p": "a", "s": "y"}))
		r.Create(ctx, spec("b1", map[string]string{"p": "b"}))
		infos, err := r.List(ctx, runtime.Filter{Labels: map[string]string{"p": "a"}})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, i := range infos {
			names = append(names, i.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"a1", "a2"}) {
			t.Fatalf("List p=a: %v", names)
		}
		infos, _ = r.List(ctx, runtime.Filter{Labels: map[string]string{"p": "a", "s": "y"}})
		if len(infos) != 1 || infos[0].Name != "a2" {
			t.Fatalf("List p=a,s=y: %v", infos)
		}
	}},
	{"Start runs, again is a no-op; Stop ends it", func(t *testing.T, r runtime.Runtime) {
		ctx := context.Background()
		c, _ := r.Create(ctx, spec("run", nil))
		if info, _ := c.Info(ctx); info.Status != runtime.StatusCreated {
			t.Fatalf("new container is %v", info.Status)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatalf("second Start: %v", err)
		}
		if info, _ := c.Info(ctx); info.Status != runtime.StatusRunning {
			t.Fatalf("started container is %v", info.Status)
		}
		if err := c.Stop(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		info, _ := c.Info(ctx)
		if info.Status != runtime.StatusExited || info.Exit == nil {
			t.Fatalf("stopped container: %+v", info)
		}
		if err := c.Stop(ctx, time.Second); err != nil {
			t.Fatalf("Stop of a stopped container: %v", err)
		}
	}},
	{"Remove of a running container needs Force; then it is gone", func(t *testing.T, r runtime.Runtime) {
		ctx := context.Background()
		c, _ := r.Create(ctx, spec("rm", nil))
		c.Start(ctx)
		if err := c.Remove(ctx, runtime.RemoveOptions{}); !errdefs.IsConflict(err) {
			t.Fatalf("Remove running: %v, want ErrConflict", err)
		}
		if err := c.Remove(ctx, runtime.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Load(ctx, "rm"); !errdefs.IsNotFound(err) {
			t.Fatalf("Load after Remove: %v", err)
		}
		if _, err := c.Info(ctx); !errdefs.IsNotFound(err) {
			t.Fatalf("Info after Remove: %v", err)
		}
		if _, err := r.Create(ctx, spec("rm", nil)); err != nil {
			t.Fatalf("the name is free again: %v", err)
		}
	}},
	{"Rename frees the old name; a taken one is ErrConflict", func(t *testing.T, r runtime.Runtime) {
		ctx := context.Background()
		c, _ := r.Create(ctx, spec("old", nil))
		r.Create(ctx, spec("taken", nil))
		if err := c.Rename(ctx, "taken"); !errdefs.IsConflict(err) {
			t.Fatalf("Rename to a taken name: %v", err)
		}
		if err := c.Rename(ctx, "new"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rename(ctx, "new"); err != nil {
			t.Fatalf("Rename to its own name: %v", err)
		}
		if info, _ := c.Info(ctx); info.Name != "new" {
			t.Fatalf("name after Rename: %q", info.Name)
		}
		if _, err := r.Create(ctx, spec("old", nil)); err != nil {
			t.Fatalf("old name not freed: %v", err)
		}
	}},
	{"Networking returns what SetNetworking recorded", func(t *testing.T, r runtime.Runtime) {
		ctx := context.Background()
		c, _ := r.Create(ctx, spec("net", nil))
		if c.NetNS() == "" {
			t.Fatal("a private-netns container has no NetNS path")
		}
		if n, err := c.Networking(ctx); err != nil || len(n.Endpoints) != 0 {
			t.Fatalf("Networking before Set: %+v, %v", n, err)
		}
		want := runtime.Networking{Endpoints: []runtime.NetEndpoint{{Network: "n", IPv4: "10.0.1.2"}},
			Hosts: []runtime.HostEntry{{IP: "10.0.1.3", Names: []string{"db"}}}}
		if err := c.SetNetworking(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, _ := c.Networking(ctx)
		if len(got.Endpoints) != 1 || !reflect.DeepEqual(got.Endpoints, want.Endpoints) || got.Hosts[0].Names[0] != "db" {
			t.Fatalf("Networking: %+v", got)
		}
		h, _ := r.Create(ctx, runtime.ContainerSpec{Name: "hostnet", NetNS: "host",
			OCI: &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}}, Rootfs: runtime.RootfsSpec{ChainID: "c"}})
		if h.NetNS() != "" {
			t.Fatalf("host-netns container has NetNS %q", h.NetNS())
		}
	}},
	{"Wait returns the exit code", func(t *testing.T, r runtime.Runtime) {
		ctx := context.Background()
		c, _ := r.Create(ctx, spec("wait", nil))
		if _, err := c.Wait(ctx); !errdefs.IsConflict(err) {
			t.Fatalf("Wait on a container that never ran: %v", err)
		}
		c.Start(ctx)
		done := make(chan runtime.ExitStatus)
		go func() {
			e, err := c.Wait(ctx)
			if err != nil {
				t.Error(err)
			}
			done <- e
		}()
		c.Stop(ctx, time.Second)
		select {
		case e := <-done:
			if e.Code == 0 {
				t.Fatalf("stopped container exit: %+v", e)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Wait did not return after Stop")
		}
	}},
}

func TestConformance(t *testing.T) {
	for _, c := range conformance {
		t.Run(c.name, func(t *testing.T) { c.run(t, New()) })
	}
}

func TestBehaviourScripts(t *testing.T) {
	ctx := context.Background()
	r := New()
	r.SetBehaviour("ok", Behaviour{ExitAfterStart: true, ExitCode: 0})
	r.SetBehaviour("bad", Behaviour{ExitAfterStart: true, ExitCode: 3, Delay: 30 * time.Millisecond})
	r.SetBehaviour("healthy", Behaviour{Healthy: true, Delay: 30 * time.Millisecond})
	r.SetBehaviour("sick", Behaviour{Unhealthy: true})
	r.SetBehaviour("port", Behaviour{StartErr: &runtime.StartError{Code: 125, Msg: "port 8080 is already in use", PortInUse: true}})
	r.SetBehaviour("nocmd", Behaviour{StartErr: &runtime.StartError{Code: 127, Msg: "exec: nope: not found"}})
	for _, n := range []string{"ok", "bad", "healthy", "sick", "port", "nocmd"} {
		if _, err := r.Create(ctx, spec(n, nil)); err != nil {
			t.Fatal(err)
		}
	}
	start := func(name string) (runtime.Container, error) {
		c, err := r.Load(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return c, c.Start(ctx)
	}

	c, _ := start("ok")
	if info, _ := c.Info(ctx); info.Status != runtime.StatusExited || info.Exit.Code != 0 {
		t.Errorf("ok: %+v", info)
	}
	c, _ = start("bad")
	if info, _ := c.Info(ctx); info.Status != runtime.StatusRunning {
		t.Errorf("bad before its delay: %v", info.Status)
	}
	if e, err := c.Wait(ctx); err != nil || e.Code != 3 {
		t.Errorf("bad: Wait = %+v, %v", e, err)
	}
	c, _ = start("healthy")
	if info, _ := c.Info(ctx); info.Health != "starting" {
		t.Errorf("healthy before its delay: %q", info.Health)
	}
	time.Sleep(40 * time.Millisecond)
	if info, _ := c.Info(ctx); info.Health != "healthy" {
		t.Errorf("healthy after its delay: %q", info.Health)
	}
	c, _ = start("sick")
	if info, _ := c.Info(ctx); info.Health != "unhealthy" || info.Status != runtime.StatusRunning {
		t.Errorf("sick: %+v", info)
	}
	var se *runtime.StartError
	if _, err := start("port"); !errors.As(err, &se) || !se.PortInUse {
		t.Errorf("port: %v", err)
	}
	c, err := start("nocmd")
	if !errors.As(err, &se) || se.Code != 127 {
		t.Errorf("nocmd: %v", err)
	}
	if info, _ := c.Info(ctx); info.Exit == nil || info.Exit.Code != 127 {
		t.Errorf("nocmd exit: %+v", info.Exit)
	}
}

func TestFailNextCallsAndSpec(t *testing.T) {
	ctx := context.Background()
	r := New()
	boom := errors.New("boom")
	r.FailNext("create", "b", boom)
	if _, err := r.Create(ctx, spec("a", map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Create(ctx, spec("b", nil)); !errors.Is(err, boom) {
		t.Fatalf("FailNext create b: %v", err)
	}
	if _, err := r.Create(ctx, spec("b", nil)); err != nil {
		t.Fatalf("FailNext fails once: %v", err)
	}
	c, _ := r.Load(ctx, "a")
	c.Start(ctx)
	c.Rename(ctx, "a2")
	c.Stop(ctx, 7*time.Second)
	c.Remove(ctx, runtime.RemoveOptions{})
	want := []string{"create a", "create b", "create b", "start a", "rename a a2", "stop a2", "remove a2"}
	if got := r.Calls(); !slices.Equal(got, want) {
		t.Fatalf("Calls:\n got %q\nwant %q", got, want)
	}
	if s := r.Spec("b"); s.Name != "b" || s.OCI == nil {
		t.Fatalf("Spec(b) = %+v", s)
	}
	if s := r.Spec("a2"); s.Name != "" {
		t.Fatal("Spec of a removed container")
	}
	if _, err := c.Exec(ctx, runtime.ProcessSpec{}, runtime.Stdio{}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "fake") {
		t.Fatalf("Exec: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	r := New()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			name := "c" + string(rune('a'+i))
			c, err := r.Create(ctx, spec(name, map[string]string{"p": "x"}))
			if err != nil {
				t.Error(err)
				return
			}
			c.Start(ctx)
			c.SetNetworking(ctx, runtime.Networking{})
			r.List(ctx, runtime.Filter{Labels: map[string]string{"p": "x"}})
			c.Stop(ctx, 0)
			c.Remove(ctx, runtime.RemoveOptions{})
		})
	}
	wg.Wait()
	if n := r.Names(); len(n) != 0 {
		t.Fatalf("left: %v", n)
	}
}
