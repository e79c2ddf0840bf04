package fake

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/network"
)

var projectLabels = map[string]string{"com.docker.compose.project": "demo"}

func ep(name string) network.EndpointSpec {
	return network.EndpointSpec{Name: name, ContainerID: "id-" + name, NetNS: "/fake/netns/" + name, IfName: "eth0"}
}

// conformance are the network.Manager interface rules, one case each: the
// seed of network/suite, which the bridge manager will run too.
var conformance = []struct {
	name string
	run  func(t *testing.T, m network.Manager)
}{
	{"Create is idempotent for the same spec", func(t *testing.T, m network.Manager) {
		ctx := context.Background()
		a, err := m.Create(ctx, network.Spec{Name: "n1", Labels: projectLabels})
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Create(ctx, network.Spec{Name: "n1", Labels: projectLabels})
		if err != nil || a.ID != b.ID || a.Subnet != b.Subnet {
			t.Fatalf("second Create: %+v, %v (first %+v)", b, err, a)
		}
	}},
	{"Create with another spec is ErrConflict", func(t *testing.T, m network.Manager) {
		ctx := context.Background()
		m.Create(ctx, network.Spec{Name: "n1", Labels: projectLabels})
		if _, err := m.Create(ctx, network.Spec{Name: "n1", Labels: projectLabels, Internal: true}); !errdefs.IsConflict(err) {
			t.Fatalf("different spec: %v", err)
		}
	}},
	{"Create over an unlabelled network is ErrConflict", func(t *testing.T, m network.Manager) {
		ctx := context.Background()
		m.Create(ctx, network.Spec{Name: "plain"})
		if _, err := m.Create(ctx, network.Spec{Name: "plain", Labels: projectLabels}); !errdefs.IsConflict(err) {
			t.Fatalf("labelled over unlabelled: %v", err)
		}
	}},
	{"Inspect of a missing network is ErrNotFound", func(t *testing.T, m network.Manager) {
		if _, err := m.Inspect(context.Background(), "nosuch"); !errdefs.IsNotFound(err) {
			t.Fatal(err)
		}
	}},
	{"Remove of a missing network is nil", func(t *testing.T, m network.Manager) {
		if err := m.Remove(context.Background(), "nosuch"); err != nil {
			t.Fatal(err)
		}
	}},
	{"Remove with endpoints is ErrConflict", func(t *testing.T, m network.Manager) {
		ctx := context.Background()
		m.Create(ctx, network.Spec{Name: "n1", Labels: projectLabels})
		if _, err := m.Attach(ctx, "n1", ep("web")); err != nil {
			t.Fatal(err)
		}
		if err := m.Remove(ctx, "n1"); !errdefs.IsConflict(err) {
			t.Fatalf("Remove with an endpoint: %v", err)
		}
		if err := m.Detach(ctx, "n1", "web"); err != nil {
			t.Fatal(err)
		}
		if err := m.Remove(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Inspect(ctx, "n1"); !errdefs.IsNotFound(err) {
			t.Fatalf("Inspect after Remove: %v", err)
		}
	}},
	{"Attach is idempotent per endpoint name and keeps the address", func(t *testing.T, m network.Manager) {
		ctx := context.Background()
		m.Create(ctx, network.Spec{Name: "n1", Labels: projectLabels})
		a, err := m.Attach(ctx, "n1", ep("web"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Attach(ctx, "n1", ep("web"))
		if err != nil || a.IPv4 != b.IPv4 {
			t.Fatalf("second Attach: %+v, %v (first %v)", b, err, a.IPv4)
		}
		// A recreated container (same name, new ID) keeps the address.
		e := ep("web")
		e.ContainerID = "new-id"
		c, err := m.Attach(ctx, "n1", e)
		if err != nil || c.IPv4 != a.IPv4 || c.ContainerID != "new-id" {
			t.Fatalf("Attach of a recreated container: %+v, %v", c, err)
		}
		n, _ := m.Inspect(ctx, "n1")
		if len(n.Endpoints) != 1 {
			t.Fatalf("endpoints: %+v", n.Endpoints)
		}
	}},
	{"Attach to a missing network is ErrNotFound", func(t *testing.T, m network.Manager) {
		if _, err := m.Attach(context.Background(), "nosuch", ep("web")); !errdefs.IsNotFound(err) {
			t.Fatal(err)
		}
	}},
	{"Attach without a name or namespace is ErrInvalid", func(t *testing.T, m network.Manager) {
		ctx := context.Background()
		m.Create(ctx, network.Spec{Name: "n1", Labels: projectLabels})
		if _, err := m.Attach(ctx, "n1", network.EndpointSpec{NetNS: "/x"}); !errdefs.IsInvalid(err) {
			t.Fatalf("no name: %v", err)
		}
		if _, err := m.Attach(ctx, "n1", network.EndpointSpec{Name: "x"}); !errdefs.IsInvalid(err) {
			t.Fatalf("no netns: %v", err)
		}
	}},
	{"Detach of a missing endpoint or network is nil", func(t *testing.T, m network.Manager) {
		ctx := context.Background()
		m.Create(ctx, network.Spec{Name: "n1", Labels: projectLabels})
		if err := m.Detach(ctx, "n1", "nosuch"); err != nil {
			t.Fatal(err)
		}
		if err := m.Detach(ctx, "nosuch", "nosuch"); err != nil {
			t.Fatal(err)
		}
	}},
	{"a static address is honoured; a taken one is refused", func(t *testing.T, m network.Manager) {
		ctx := context.Background()
		n, err := m.Create(ctx, network.Spec{Name: "n1", Labels: projectLabels, Subnet: netip.MustParsePrefix("172.28.0.0/24")})
		if err != nil {
			t.Fatal(err)
		}
		if n.Subnet.String() != "172.28.0.0/24" || n.Gateway.String() != "172.28.0.1" {
			t.Fatalf("subnet %v gateway %v", n.Subnet, n.Gateway)
		}
		e := ep("db")
		e.IPv4 = netip.MustParseAddr("172.28.0.10")
		got, err := m.Attach(ctx, "n1", e)
		if err != nil || got.IPv4 != e.IPv4 {
			t.Fatalf("static: %+v, %v", got, err)
		}
		e2 := ep("other")
		e2.IPv4 = e.IPv4
		if _, err := m.Attach(ctx, "n1", e2); err == nil {
			t.Fatal("a taken static address was given out twice")
		}
	}},
	{"List filters by labels", func(t *testing.T, m network.Manager) {
		ctx := context.Background()
		m.Create(ctx, network.Spec{Name: "a", Labels: projectLabels})
		m.Create(ctx, network.Spec{Name: "b", Labels: map[string]string{"com.docker.compose.project": "other"}})
		m.Create(ctx, network.Spec{Name: "c"})
		ns, err := m.List(ctx, network.Filter{Labels: projectLabels})
		if err != nil || len(ns) != 1 || ns[0].Name != "a" {
			t.Fatalf("List: %+v, %v", ns, err)
		}
	}},
}

func TestConformance(t *testing.T) {
	for _, c := range conformance {
		t.Run(c.name, func(t *testing.T) { c.run(t, New()) })
	}
}

func TestAddressesAndLog(t *testing.T) {
	ctx := context.Background()
	m := New()
	m.Create(ctx, network.Spec{Name: "one", Labels: projectLabels})
	two, _ := m.Create(ctx, network.Spec{Name: "two", Labels: projectLabels})
	if two.Subnet.String() != "10.0.2.0/24" {
		t.Fatalf("second network's subnet: %v", two.Subnet)
	}
	a, _ := m.Attach(ctx, "two", ep("a"))
	b, _ := m.Attach(ctx, "two", ep("b"))
	if a.IPv4.String() != "10.0.2.2" || b.IPv4.String() != "10.0.2.3" || a.Gateway.String() != "10.0.2.1" || a.Prefix != 24 {
		t.Fatalf("addresses: %+v %+v", a, b)
	}
	m.Detach(ctx, "two", "a")
	c, _ := m.Attach(ctx, "two", ep("c"))
	if c.IPv4.String() != "10.0.2.2" {
		t.Fatalf("lowest free address first: %v", c.IPv4)
	}
	boom := errors.New("boom")
	m.FailNext("attach", "d", boom)
	if _, err := m.Attach(ctx, "two", ep("b")); err != nil {
		t.Fatalf("FailNext for d hit b: %v", err)
	}
	if _, err := m.Attach(ctx, "two", ep("d")); !errors.Is(err, boom) {
		t.Fatalf("FailNext: %v", err)
	}
	want := []string{"create one", "create two", "attach two a", "attach two b", "detach two a", "attach two c", "attach two b", "attach two d"}
	if got := m.Calls(); !slices.Equal(got, want) {
		t.Fatalf("Calls:\n got %q\nwant %q", got, want)
	}
	if got := m.Endpoints()["two"]; !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("Endpoints: %v", got)
	}
	v6, err := m.Create(ctx, network.Spec{Name: "six", Labels: projectLabels, EnableIPv6: true})
	if err != nil || !v6.Subnet6.IsValid() {
		t.Fatalf("IPv6 network: %+v, %v", v6, err)
	}
	e6, err := m.Attach(ctx, "six", ep("x"))
	if err != nil || !e6.IPv6.IsValid() || !v6.Subnet6.Contains(e6.IPv6) {
		t.Fatalf("IPv6 endpoint: %+v, %v", e6, err)
	}
}
