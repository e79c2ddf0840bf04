package reconcile

import (
	"context"
	"reflect"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/network"
	netfake "berth.dev/berth/network/fake"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
	rtfake "berth.dev/berth/runtime/fake"
)

func exAttachSpec(name string, nets ...runtime.NetworkAttachment) runtime.ContainerSpec {
	return runtime.ContainerSpec{Name: name, NetNS: "private", Networks: nets,
		OCI: &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}}, Rootfs: runtime.RootfsSpec{ChainID: "c"}}
}

func TestConnectAttachesEveryNetworkInOrderAndRecords(t *testing.T) {
	ctx := context.Background()
	rt, nm := rtfake.New(), netfake.New()
	nm.Create(ctx, network.Spec{Name: "front", Labels: map[string]string{"p": "x"}})
	nm.Create(ctx, network.Spec{Name: "back", Labels: map[string]string{"p": "x"}})
	s := exAttachSpec("web",
		runtime.NetworkAttachment{Network: "front", Aliases: []string{"web", "www"}},
		runtime.NetworkAttachment{Network: "back", IPv4: "10.0.2.50"})
	c, err := rt.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []runtime.HostEntry{{IP: "10.0.1.9", Names: []string{"db"}}}
	if err := Connect(ctx, nm, c, s, hosts); err != nil {
		t.Fatal(err)
	}
	nw, _ := c.Networking(ctx)
	if len(nw.Endpoints) != 2 || nw.Endpoints[0].Network != "front" || nw.Endpoints[1].Network != "back" ||
		nw.Endpoints[1].IPv4 != "10.0.2.50" || nw.Endpoints[0].Gateway != "10.0.1.1" || nw.Endpoints[0].Prefix != 24 ||
		!slices.Equal(nw.Endpoints[0].Aliases, []string{"web", "www"}) || !reflect.DeepEqual(nw.Hosts, hosts) {
		t.Fatalf("networking: %+v", nw)
	}
	front, _ := nm.Inspect(ctx, "front")
	back, _ := nm.Inspect(ctx, "back")
	if front.Endpoints[0].IfName != "eth0" || back.Endpoints[0].IfName != "eth1" || front.Endpoints[0].ContainerID != c.ID() {
		t.Fatalf("endpoints: %+v %+v", front.Endpoints, back.Endpoints)
	}
	// Again, with hosts nil: the same addresses, the hosts kept.
	if err := Connect(ctx, nm, c, s, nil); err != nil {
		t.Fatal(err)
	}
	again, _ := c.Networking(ctx)
	if !reflect.DeepEqual(again, nw) {
		t.Fatalf("second Connect changed the record:\n%+v\n%+v", again, nw)
	}
	if err := Disconnect(ctx, nm, "web", EndpointNetworks(nw)); err != nil {
		t.Fatal(err)
	}
	if eps := nm.Endpoints(); len(eps["front"])+len(eps["back"]) != 0 {
		t.Fatalf("left after Disconnect: %v", eps)
	}
	if err := Disconnect(ctx, nm, "web", EndpointNetworks(nw)); err != nil {
		t.Fatalf("second Disconnect: %v", err)
	}
}

func TestConnectLeavesContainersWithoutOwnNamespace(t *testing.T) {
	ctx := context.Background()
	rt := rtfake.New()
	s := exAttachSpec("h", runtime.NetworkAttachment{Network: "front"})
	s.NetNS = "host"
	c, _ := rt.Create(ctx, s)
	if err := Connect(ctx, nil, c, s, nil); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(rt.Calls(), "setnetworking h") {
		t.Fatal("recorded networking for a host-network container")
	}
}

func TestConnectRefusesBadStaticAddress(t *testing.T) {
	ctx := context.Background()
	rt, nm := rtfake.New(), netfake.New()
	nm.Create(ctx, network.Spec{Name: "front"})
	s := exAttachSpec("web", runtime.NetworkAttachment{Network: "front", IPv4: "fd00::1"})
	c, _ := rt.Create(ctx, s)
	if err := Connect(ctx, nm, c, s, nil); !errdefs.IsInvalid(err) {
		t.Fatalf("IPv6 as ipv4_address: %v", err)
	}
}

func TestLinkVars(t *testing.T) {
	s := exAttachSpec("demo-web-1", runtime.NetworkAttachment{Network: "other"}, runtime.NetworkAttachment{Network: "demo_default"})
	target := LinkTarget{
		Name:       "demo-db-1",
		Networking: runtime.Networking{Endpoints: []runtime.NetEndpoint{{Network: "demo_default", IPv4: "10.0.1.3"}}},
		Ports:      LinkPorts([]string{"5432/tcp"}),
		Env:        []string{"POSTGRES_DB=app", "PATH=/bin"},
		Names:      []string{"db"},
	}
	env, host, err := LinkVars(s, "database", target)
	if err != nil {
		t.Fatal(err)
	}
	if want := project.LinkEnv("database", "demo-web-1", "demo-db-1", "10.0.1.3", target.Ports, target.Env); !slices.Equal(env, want) {
		t.Fatalf("env %v, want %v", env, want)
	}
	if host.IP != "10.0.1.3" || !slices.Equal(host.Names, []string{"database", "db", "demo-db-1"}) {
		t.Fatalf("host: %+v", host)
	}
	_, host, _ = LinkVars(s, "", target)
	if !slices.Equal(host.Names, []string{"demo-db-1", "db"}) {
		t.Fatalf("no alias: %+v", host)
	}
	target.Networking.Endpoints[0].Network = "elsewhere"
	if _, _, err := LinkVars(s, "database", target); !errdefs.IsInvalid(err) {
		t.Fatalf("no shared network: %v", err)
	}
}

func TestLinkPorts(t *testing.T) {
	got := LinkPorts([]string{"80/tcp", "53/udp", "bad", "0"}, []string{"8000-8002", "80", "53/UDP"})
	want := []project.LinkPort{{Port: 53, Proto: "udp"}, {Port: 80, Proto: "tcp"}, {Port: 8000, End: 8002, Proto: "tcp"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
