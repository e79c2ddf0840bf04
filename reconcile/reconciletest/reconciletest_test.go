package reconciletest_test

import (
	"strings"
	"testing"

	"berth.dev/berth/project/projecttest"
	"berth.dev/berth/reconcile"
	rt "berth.dev/berth/reconcile/reconciletest"
	"berth.dev/berth/runtime"
)

const yml = `
services:
  web: {image: web, environment: {MODE: prod}, networks: [front]}
  app: {build: .}
networks:
  front: {}
  ext: {external: true, name: corp_net}
volumes:
  data: {}
`

func TestDefaultReplicasMatchTheModel(t *testing.T) {
	m := projecttest.Load(t, yml)
	// Images declared after the containers: hashes are computed at Observed.
	o := rt.New(m).Network("front").Running("web", 1).Exited("app", 1, 0).AllImages().Observed()
	if o.Project != "demo" || len(o.Containers) != 2 {
		t.Fatalf("observed: %+v", o)
	}
	want, err := m.Hash("web", rt.FakeDigest("web"))
	if err != nil {
		t.Fatal(err)
	}
	c := o.Containers[0]
	if c.ConfigHash != want.Hash || c.Image != rt.FakeDigest("web") || c.Name != "demo-web-1" || c.ID == "" {
		t.Errorf("web-1: %+v", c)
	}
	for k, v := range c.HashFields {
		if len(v) != 12 || !strings.HasPrefix(want.Fields[k], v) {
			t.Errorf("field %s: %q is not the 12-hex prefix of %q", k, v, want.Fields[k])
		}
	}
	if c.Labels[runtime.LabelConfigHash] != c.ConfigHash || c.Labels[reconcile.LabelHashFields] == "" {
		t.Errorf("labels: %v", c.Labels)
	}
	if o.Images["demo-app"] != rt.FakeDigest("demo-app") {
		t.Errorf("built image ref missing: %v", o.Images)
	}
	if a := o.Containers[1]; a.Status != runtime.StatusExited || a.Exit == nil || a.Exit.Code != 0 {
		t.Errorf("app-1: %+v", a)
	}
	p, err := reconcile.Compute(m, o, reconcile.Options{Services: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Actions) != 0 {
		t.Errorf("a matching machine plans something:\n%s", p)
	}
}

func TestOptionsMakeReplicasDiverge(t *testing.T) {
	m := projecttest.Load(t, yml)
	cases := []struct {
		opt  rt.Option
		want string
	}{
		{rt.ImageDigest("sha256:old"), "config hash changed: image_digest"},
		{rt.Env("MODE", "dev"), "config hash changed: environment"},
		{rt.Diverged("command", "labels"), "config hash changed: command, labels"},
		{rt.Diverged("not_a_field"), "config hash changed: not_a_field"},
	}
	for _, c := range cases {
		o := rt.New(m).Network("front").AllImages().Running("web", 1, c.opt).Observed()
		p, err := reconcile.Compute(m, o, reconcile.Options{Services: []string{"web"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Actions) == 0 || p.Actions[0].Cause != c.want {
			t.Errorf("want cause %q, got plan:\n%s", c.want, p)
		}
	}
	// Env copies the environment: the model is untouched.
	if v := m.Project.Services["web"].Environment["MODE"]; v == nil || *v != "prod" {
		t.Errorf("Env changed the model: %v", v)
	}
}

func TestResourcesAndSpecialContainers(t *testing.T) {
	m := projecttest.Load(t, yml)
	o := rt.New(m).Network("front").ExternalNetwork("corp_net").Volume("data").AnonymousVolume("abc").
		Image("web", "").Orphan("old", 3).OneOff("web").OneOff("web").
		Created("web", 2, rt.ID("x"), rt.Health("starting"), rt.Status(runtime.StatusDead)).Observed()
	if n := o.Networks; len(n) != 2 || n[0].Key != "front" || n[0].Name != "demo_front" || n[0].External ||
		n[1].Key != "ext" || n[1].Name != "corp_net" || !n[1].External {
		t.Errorf("networks: %+v", n)
	}
	if v := o.Volumes; len(v) != 2 || v[0].Key != "data" || v[0].Name != "demo_data" || v[1].Key != "" || v[1].Name != "abc" {
		t.Errorf("volumes: %+v", v)
	}
	if d, ok := o.Images["web"]; !ok || d != "" {
		t.Errorf("Image(web, \"\") is not recorded absent: %v", o.Images)
	}
	cs := o.Containers
	if cs[0].Service != "old" || cs[0].Number != 3 || cs[0].Name != "demo-old-3" || cs[0].OneOff {
		t.Errorf("orphan: %+v", cs[0])
	}
	if !cs[1].OneOff || !strings.HasPrefix(cs[1].Name, "demo-web-run-") || len(cs[1].Name) != len("demo-web-run-")+12 ||
		cs[1].Name == cs[2].Name {
		t.Errorf("one-offs: %q %q", cs[1].Name, cs[2].Name)
	}
	if c := cs[3]; c.ID != "x" || c.Health != "starting" || c.Status != runtime.StatusDead {
		t.Errorf("options: %+v", c)
	}
	// Observed is repeatable and returns fresh values.
	o2 := rt.New(m).OneOff("web").Observed()
	if o2.Containers[0].Name != cs[1].Name {
		t.Errorf("one-off names are not stable: %q vs %q", o2.Containers[0].Name, cs[1].Name)
	}
}
