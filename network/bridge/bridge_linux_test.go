package bridge

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/network"
	"berth.dev/berth/runtime/linux/nsenter"
)

func newManager(t *testing.T) (*Manager, *state.Root) { return newManagerB(t) }

func newManagerB(t testing.TB) (*Manager, *state.Root) {
	t.Helper()
	testutil.RequireRoot(t)
	dir := testutil.TempRoot(t)
	testutil.CheckLeaks(t, dir)
	root, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m, root
}

func pin(t *testing.T, root *state.Root, name string) string { return pinB(t, root, name) }

func pinB(t testing.TB, root *state.Root, name string) string {
	t.Helper()
	os.MkdirAll(filepath.Join(root.RunDir, "netns"), 0o700)
	p := filepath.Join(root.RunDir, "netns", name)
	if err := nsenter.PinNetNS(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsenter.UnpinNetNS(p) })
	return p
}

// TestBridgeAttachMustPlumbTheNamespace (K): a network is a bridge with
// the gateway; an endpoint is a veth whose container end is eth0 in the
// namespace with its address, MAC and default route; attaching again is
// a no-op; detach and remove leave no link, rule or lease.
func TestBridgeAttachMustPlumbTheNamespace(t *testing.T) {
	ctx := context.Background()
	m, root := newManager(t)
	n, err := m.Create(ctx, network.Spec{Name: "t1", Labels: map[string]string{"k": "v"}, Subnet: netip.MustParsePrefix("10.89.240.0/24"), MTU: 1400})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(ctx, "t1") })
	if n.Gateway.String() != "10.89.240.1" || !strings.HasPrefix(n.Bridge, "br-"+m.tag) || len(n.Bridge) > 15 {
		t.Errorf("network: %+v", n)
	}
	if again, err := m.Create(ctx, network.Spec{Name: "t1", Labels: map[string]string{"k": "v"}}); err != nil || again.ID != n.ID {
		t.Errorf("same spec again: %v %v", again.ID, err)
	}
	if _, err := m.Create(ctx, network.Spec{Name: "t1", Internal: true, Labels: map[string]string{"k": "v"}}); !errdefs.IsConflict(err) {
		t.Errorf("other spec, same name: %v", err)
	}
	p := pin(t, root, "c1")
	ep, err := m.Attach(ctx, "t1", network.EndpointSpec{Name: "c1", ContainerID: strings.Repeat("ab", 32), NetNS: p, Aliases: []string{"web"}, DefaultRoute: true})
	if err != nil {
		t.Fatal(err)
	}
	if ep.IPv4.String() != "10.89.240.2" || ep.MAC != "02:42:0a:59:f0:02" || len(ep.HostIf) != 15 {
		t.Errorf("endpoint: %+v", ep)
	}
	again, err := m.Attach(ctx, "t1", network.EndpointSpec{Name: "c1", ContainerID: strings.Repeat("ab", 32), NetNS: p, Aliases: []string{"web"}, DefaultRoute: true})
	if err != nil || again.IPv4 != ep.IPv4 || again.HostIf != ep.HostIf {
		t.Errorf("attach again: %+v %v", again, err)
	}
	ns, err := netns.GetFromPath(p)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if eth0.Attrs().MTU != 1400 || eth0.Attrs().HardwareAddr.String() != ep.MAC {
		t.Errorf("eth0: mtu %d mac %s", eth0.Attrs().MTU, eth0.Attrs().HardwareAddr)
	}
	addrs, _ := h.AddrList(eth0, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.89.240.2/24" {
		t.Errorf("eth0 addresses: %v", addrs)
	}
	routes, _ := h.RouteList(nil, netlink.FAMILY_V4)
	def := false
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.String() == "10.89.240.1" {
			def = true
		}
	}
	if !def {
		t.Errorf("no default route via the gateway: %v", routes)
	}
	var recs network.Records
	if err := state.ReadJSON(n.Records, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs.Entries) != 1 || strings.Join(recs.Entries[0].Names, ",") != "c1,abababababab,web" || recs.Entries[0].IPv4 != ep.IPv4 {
		t.Errorf("records: %+v", recs)
	}
	if err := m.Remove(ctx, "t1"); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "c1") {
		t.Errorf("remove with an endpoint: %v", err)
	}
	// A second endpoint gets the next address; a static one is honoured.
	p2 := pin(t, root, "c2")
	ep2, err := m.Attach(ctx, "t1", network.EndpointSpec{Name: "c2", NetNS: p2, IPv4: netip.MustParseAddr("10.89.240.77")})
	if err != nil || ep2.IPv4.String() != "10.89.240.77" {
		t.Errorf("static address: %+v %v", ep2, err)
	}
	if _, err := m.Attach(ctx, "t1", network.EndpointSpec{Name: "c3", NetNS: p2, IPv4: netip.MustParseAddr("10.89.240.77")}); !errdefs.IsConflict(err) {
		t.Errorf("a taken static address: %v", err)
	}
	for _, e := range []string{"c1", "c2", "c2"} {
		if err := m.Detach(ctx, "t1", e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := netlink.LinkByName(ep.HostIf); err == nil {
		t.Errorf("veth %s left after detach", ep.HostIf)
	}
	if err := m.Remove(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, "t1"); err != nil {
		t.Errorf("remove of a missing network: %v", err)
	}
	if _, err := netlink.LinkByName(n.Bridge); err == nil {
		t.Errorf("bridge %s left", n.Bridge)
	}
	if _, err := os.Stat(filepath.Dir(n.Records)); !os.IsNotExist(err) {
		t.Errorf("state left: %v", err)
	}
}

// TestBridgeMustPruneRemovedContainers: an endpoint whose container is
// gone (removed by its own shim) is dropped by the next change.
func TestBridgeMustPruneRemovedContainers(t *testing.T) {
	ctx := context.Background()
	m, root := newManager(t)
	gone := map[string]bool{}
	m.exists = func(id string) bool { return !gone[id] }
	if _, err := m.Create(ctx, network.Spec{Name: "t2"}); err != nil {
		t.Fatal(err)
	}
	p := pin(t, root, "c1")
	if _, err := m.Attach(ctx, "t2", network.EndpointSpec{Name: "c1", ContainerID: "c1id", NetNS: p}); err != nil {
		t.Fatal(err)
	}
	gone["c1id"] = true
	if err := m.Remove(ctx, "t2"); err != nil {
		t.Errorf("remove after the container went: %v", err)
	}
}

// TestBridgeSubnetsMustAvoidEachOther: networks get distinct /24s; an
// explicit overlapping subnet is a conflict naming both.
func TestBridgeSubnetsMustAvoidEachOther(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t)
	a, err := m.Create(ctx, network.Spec{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(ctx, "a") })
	b, err := m.Create(ctx, network.Spec{Name: "b", Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(ctx, "b") })
	if a.Subnet.Overlaps(b.Subnet) {
		t.Errorf("overlapping subnets %s %s", a.Subnet, b.Subnet)
	}
	if _, err := m.Create(ctx, network.Spec{Name: "c", Subnet: a.Subnet}); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), a.Subnet.String()) {
		t.Errorf("an overlapping explicit subnet: %v", err)
	}
	list, err := m.List(ctx, network.Filter{})
	if err != nil || len(list) != 2 {
		t.Errorf("list: %v %v", list, err)
	}
}

// TestBridgeReattachMustLeaveTheFilesAlone (K): attaching an endpoint
// that is attached already (every start does) rewrites neither ipam.json
// nor records.json, and a manager that remembers what it decoded still
// sees what another manager (another berth process) changed since.
func TestBridgeReattachMustLeaveTheFilesAlone(t *testing.T) {
	ctx := context.Background()
	m, root := newManager(t)
	n, err := m.Create(ctx, network.Spec{Name: "t3", Subnet: netip.MustParsePrefix("10.89.242.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(ctx, "t3") })
	spec := func(name string) network.EndpointSpec {
		return network.EndpointSpec{Name: name, NetNS: pin(t, root, name), DefaultRoute: true}
	}
	c1 := spec("c1")
	if _, err := m.Attach(ctx, "t3", c1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Detach(ctx, "t3", "c1") })
	dir := filepath.Dir(n.Records)
	stamps := func() string {
		var out []string
		for _, f := range []string{IPAMFile, RecordsFile} {
			fi, err := os.Stat(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			out = append(out, fmt.Sprint(f, st.Ino, st.Ctim))
		}
		return strings.Join(out, " ")
	}
	before := stamps()
	if _, err := m.Attach(ctx, "t3", c1); err != nil {
		t.Fatal(err)
	}
	if after := stamps(); after != before {
		t.Errorf("attach again rewrote the files:\n%s\n%s", before, after)
	}
	other, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ep2, err := other.Attach(ctx, "t3", spec("c2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Detach(ctx, "t3", "c2") })
	ep3, err := m.Attach(ctx, "t3", spec("c3"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Detach(ctx, "t3", "c3") })
	if ep3.IPv4 == ep2.IPv4 {
		t.Fatalf("c3 got c2's address %s: the other manager's lease was not seen", ep3.IPv4)
	}
	got, err := m.Inspect(ctx, "t3")
	if err != nil || len(got.Endpoints) != 3 {
		t.Fatalf("inspect: %d endpoints, %v", len(got.Endpoints), err)
	}
}
