// Package bridge is berth's network.Manager: a Linux bridge per network,
// a veth pair per endpoint with its container end moved into the
// container's pinned network namespace, masquerade and isolation rules in
// one nftables table per state root, and the state files under
// ROOT/networks/<name>/: network.json (the network), ipam.json (address
// leases), records.json (what the containers' DNS servers answer).
//
// Every mutation holds ROOT/networks/.lock, so allocation sees every
// network of the root. Kernel objects are re-ensured on every call, so a
// call after a crash (or a reboot, which drops bridges and rules) converges.
package bridge

import (
	"berth.dev/berth/internal/labels"

	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/network"
	"berth.dev/berth/network/ipam"
	"berth.dev/berth/network/netnames"
)

// File names inside a network's directory.
const (
	NetworkFile = "network.json"
	IPAMFile    = "ipam.json"
	RecordsFile = "records.json"
)

// hostLock serialises subnet allocation across state roots.
const hostLock = "/run/berth-networks.lock"

// Options tune a Manager.
type Options struct {
	// Pool is where subnets come from (BERTH_NET_POOL); zero: ipam.DefaultPool.
	Pool netip.Prefix
	// Notify receives what the manager changed on the host beyond its own
	// objects (net.ipv4.ip_forward); nil: discarded.
	Notify func(msg string)
	// Exists says whether a container (by ID) still exists: endpoints of
	// removed containers (a shim that removed its --rm container, a crash
	// between removal and Detach) are dropped by the next change. nil:
	// endpoints go only by Detach.
	Exists func(containerID string) bool
}

// Manager implements network.Manager on the host.
type Manager struct {
	root   *state.Root
	dir    string
	tag    string // 5 hex digits of the root's hash: in every kernel name
	pool   netip.Prefix
	note   func(string)
	exists func(string) bool
	sem    chan struct{} // in-process part of the networks lock

	memoMu sync.Mutex
	memo   map[string]*decoded // by network name
}

// decoded is the last decode of a network's network.json and ipam.json,
// kept with the bytes it came from. A load that reads the same bytes
// takes a copy instead of decoding again: every attach and inspect loads
// the network, and decoding the leases of a hundred endpoints for each of
// a hundred attaches was N² work under the networks lock.
type decoded struct {
	netRaw, ipamRaw []byte
	r               *record
	l               *leases
}

var _ network.Manager = (*Manager)(nil)

// New returns the manager of root's networks.
func New(root *state.Root, o Options) (*Manager, error) {
	m := &Manager{root: root, dir: filepath.Join(root.Path, "networks"), tag: netnames.Tag(root.Path), pool: o.Pool, note: o.Notify, exists: o.Exists, sem: make(chan struct{}, 1), memo: map[string]*decoded{}}
	if !m.pool.IsValid() {
		m.pool = ipam.DefaultPool
	}
	if m.note == nil {
		m.note = func(string) {}
	}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	return m, nil
}

// record is network.json.
type record struct {
	ID       string            `json:"id"`
	Spec     network.Spec      `json:"spec"`
	Bridge   string            `json:"bridge"`
	Gateway6 netip.Addr        `json:"gateway6,omitzero"`
	Created  time.Time         `json:"created"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// leases is ipam.json.
type leases struct {
	V4        *ipam.Subnet                `json:"ipv4"`
	V6        *ipam.Subnet                `json:"ipv6,omitempty"`
	Endpoints map[string]network.Endpoint `json:"endpoints"`
}

// lock takes the networks lock: first among this process's goroutines (a
// channel: parallel attaches of one up queue here and hand over at once),
// then across processes (the flock, which polls).
func (m *Manager) lock(ctx context.Context) (*heldLock, error) {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l, err := state.AcquireFile(ctx, filepath.Join(m.dir, ".lock"), "networks lock", state.LockOptions{})
	if err != nil {
		<-m.sem
		return nil, err
	}
	return &heldLock{l: l, sem: m.sem}, nil
}

type heldLock struct {
	l   *state.Lock
	sem chan struct{}
}

func (h *heldLock) Unlock() error {
	err := h.l.Unlock()
	<-h.sem
	return err
}

func (m *Manager) netDir(name string) (string, error) { return m.root.NetworkDir(name) }

func (m *Manager) load(name string) (*record, *leases, error) {
	dir, err := m.netDir(name)
	if err != nil {
		return nil, nil, err
	}
	netRaw, err := state.ReadFile(filepath.Join(dir, NetworkFile), 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, errdefs.NotFoundf("network %q not found; create it with 'berth network create %s' or declare it in the project file", name, name)
	} else if err != nil {
		return nil, nil, fmt.Errorf("network %q: %w", name, err)
	}
	ipamPath := filepath.Join(dir, IPAMFile)
	ipamRaw, err := state.ReadFile(ipamPath, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("network %q: %w", name, errdefs.NotFoundf("%s: %w", ipamPath, err))
	} else if err != nil {
		return nil, nil, fmt.Errorf("network %q: %w", name, err)
	}
	m.memoMu.Lock()
	d := m.memo[name]
	m.memoMu.Unlock()
	if d != nil && bytes.Equal(d.netRaw, netRaw) && bytes.Equal(d.ipamRaw, ipamRaw) {
		return d.r.clone(), d.l.clone(), nil
	}
	var r record
	if err := json.Unmarshal(netRaw, &r); err != nil {
		return nil, nil, fmt.Errorf("network %q: read %s: %w", name, filepath.Join(dir, NetworkFile), err)
	}
	var l leases
	if err := json.Unmarshal(ipamRaw, &l); err != nil {
		return nil, nil, fmt.Errorf("network %q: read %s: %w", name, ipamPath, err)
	}
	if l.Endpoints == nil {
		l.Endpoints = map[string]network.Endpoint{}
	}
	if l.V4 == nil {
		return nil, nil, fmt.Errorf("network %q: %s has no IPv4 subnet", name, ipamPath)
	}
	m.remember(name, &decoded{netRaw: netRaw, ipamRaw: ipamRaw, r: r.clone(), l: l.clone()})
	return &r, &l, nil
}

func (m *Manager) remember(name string, d *decoded) {
	m.memoMu.Lock()
	m.memo[name] = d
	m.memoMu.Unlock()
}

// writeLeases writes ipam.json (when it changed) and remembers what it
// holds now, so the next load does not decode it again.
func (m *Manager) writeLeases(name string, l *leases) error {
	dir, err := m.netDir(name)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, IPAMFile)
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	b = append(b, '\n')
	if old, err := state.ReadFile(path, int64(len(b))); err != nil || !bytes.Equal(old, b) {
		if err := state.WriteFileVolatile(path, b, 0o600); err != nil {
			m.forget(name)
			return err
		}
	}
	m.memoMu.Lock()
	if d := m.memo[name]; d != nil {
		m.memo[name] = &decoded{netRaw: d.netRaw, ipamRaw: b, r: d.r, l: l.clone()}
	}
	m.memoMu.Unlock()
	return nil
}

func (m *Manager) forget(name string) {
	m.memoMu.Lock()
	delete(m.memo, name)
	m.memoMu.Unlock()
}

func (r *record) clone() *record {
	c := *r
	c.Spec.Labels = cloneLabels(r.Spec.Labels)
	c.Labels = cloneLabels(r.Labels)
	return &c
}

func cloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (l *leases) clone() *leases {
	c := &leases{V4: l.V4.Clone(), V6: l.V6.Clone(), Endpoints: make(map[string]network.Endpoint, len(l.Endpoints))}
	for k, ep := range l.Endpoints {
		ep.Aliases = slices.Clone(ep.Aliases)
		c.Endpoints[k] = ep
	}
	return c
}

// loadPruned is load for a change: endpoints of containers that are gone
// are detached first (their veth went with their namespace).
func (m *Manager) loadPruned(name string) (*record, *leases, error) {
	r, l, err := m.load(name)
	if err != nil || m.exists == nil {
		return r, l, err
	}
	changed := false
	for n, ep := range l.Endpoints {
		if ep.ContainerID != "" && !m.exists(ep.ContainerID) {
			m.unplumb(ep.HostIf)
			delete(l.Endpoints, n)
			l.V4.Release(n)
			if l.V6 != nil {
				l.V6.Release(n)
			}
			changed = true
		}
	}
	if changed {
		if err := m.writeLeases(name, l); err != nil {
			return nil, nil, err
		}
		if err := m.writeRecords(r, l); err != nil {
			return nil, nil, err
		}
	}
	return r, l, nil
}

func (m *Manager) names() ([]string, error) {
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			if _, err := os.Stat(filepath.Join(m.dir, e.Name(), NetworkFile)); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func (m *Manager) view(r *record, l *leases) network.Network {
	n := network.Network{Spec: r.Spec, ID: r.ID, Bridge: r.Bridge, Gateway6: r.Gateway6, Created: r.Created.Format(time.RFC3339)}
	n.Labels = r.Spec.Labels
	n.Subnet, n.Gateway, n.IPRange = l.V4.Prefix, l.V4.Gateway, l.V4.Range
	if l.V6 != nil {
		n.Subnet6 = l.V6.Prefix
	}
	for _, e := range l.Endpoints {
		n.Endpoints = append(n.Endpoints, e)
	}
	sort.Slice(n.Endpoints, func(i, j int) bool { return n.Endpoints[i].Name < n.Endpoints[j].Name })
	dir, _ := m.netDir(r.Spec.Name)
	n.Records = filepath.Join(dir, RecordsFile)
	return n
}

// sameSpec says whether a request matches an existing network: the fields
// the user wrote must agree; zero fields mean "whatever was allocated".
func sameSpec(want network.Spec, have *record, l *leases) bool {
	h := have.Spec
	if !maps(want.Labels, h.Labels) || want.Internal != h.Internal || want.EnableIPv6 != h.EnableIPv6 {
		return false
	}
	if want.Subnet.IsValid() && want.Subnet != l.V4.Prefix {
		return false
	}
	if want.Gateway.IsValid() && want.Gateway != l.V4.Gateway {
		return false
	}
	if want.IPRange.IsValid() && want.IPRange != l.V4.Range {
		return false
	}
	if want.MTU != 0 && want.MTU != h.MTU || want.BridgeName != "" && want.BridgeName != have.Bridge {
		return false
	}
	return true
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Create makes the network, or ensures an identical one exists.
func (m *Manager) Create(ctx context.Context, s network.Spec) (network.Network, error) {
	if err := state.ValidName("network", s.Name); err != nil {
		return network.Network{}, err
	}
	lk, err := m.lock(ctx)
	if err != nil {
		return network.Network{}, err
	}
	defer lk.Unlock()
	if r, l, err := m.loadPruned(s.Name); err == nil {
		if !sameSpec(s, r, l) {
			if len(r.Spec.Labels) == 0 && len(s.Labels) > 0 {
				return network.Network{}, errdefs.Conflictf("network %q already exists and was not created by this project; remove it ('berth network rm %s') or declare it external: true", s.Name, s.Name)
			}
			return network.Network{}, errdefs.Conflictf("network %q already exists with a different configuration; remove it first ('berth network rm %s'; 'berth down' does for a project's networks)", s.Name, s.Name)
		}
		if err := m.ensureBridge(r, l); err != nil {
			return network.Network{}, err
		}
		if err := m.syncRules(); err != nil {
			return network.Network{}, err
		}
		return m.view(r, l), nil
	} else if !errdefs.IsNotFound(err) {
		return network.Network{}, err
	}
	// Subnets are a host-wide resource: other state roots (tests, a
	// second BERTH_ROOT) allocate from the same pool, so allocation and
	// the bridge that claims the subnet (its route) happen under a host
	// lock too.
	hl, err := state.AcquireFile(ctx, hostLock, "host network allocation lock", state.LockOptions{})
	if err != nil {
		return network.Network{}, err
	}
	defer hl.Unlock()
	r, l, err := m.allocate(s)
	if err != nil {
		return network.Network{}, err
	}
	dir, _ := m.netDir(s.Name)
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return network.Network{}, fmt.Errorf("network %q: %w", s.Name, err)
	}
	if err := m.writeRecords(r, l); err != nil {
		return network.Network{}, err
	}
	if err := state.UpdateJSONVolatile(filepath.Join(dir, IPAMFile), l, 0o600); err != nil {
		return network.Network{}, err
	}
	// network.json last: its presence is what makes the network exist.
	if err := state.WriteJSON(filepath.Join(dir, NetworkFile), r, 0o600); err != nil {
		return network.Network{}, err
	}
	undo := func(e error) (network.Network, error) {
		m.deleteBridge(r.Bridge)
		os.RemoveAll(dir)
		m.syncRules()
		return network.Network{}, e
	}
	if err := m.ensureBridge(r, l); err != nil {
		return undo(err)
	}
	if err := m.syncRules(); err != nil {
		return undo(err)
	}
	return m.view(r, l), nil
}

func (m *Manager) allocate(s network.Spec) (*record, *leases, error) {
	id := make([]byte, 32)
	rand.Read(id)
	r := &record{ID: hex.EncodeToString(id), Spec: s, Created: time.Now().UTC()}
	r.Spec.Subnet, r.Spec.Gateway, r.Spec.IPRange, r.Spec.Subnet6 = netip.Prefix{}, netip.Addr{}, netip.Prefix{}, netip.Prefix{}
	r.Bridge = s.BridgeName
	if r.Bridge == "" {
		r.Bridge = "br-" + m.tag + r.ID[:7]
	}
	if len(r.Bridge) > 15 {
		return nil, nil, errdefs.Invalidf("network %q: bridge name %q is longer than 15 characters", s.Name, r.Bridge)
	}
	if s.MTU < 0 || s.MTU > 65535 || (s.MTU > 0 && s.MTU < 68) {
		return nil, nil, errdefs.Invalidf("network %q: mtu %d is out of range (68-65535)", s.Name, s.MTU)
	}
	used4, used6, err := m.usedSubnets()
	if err != nil {
		return nil, nil, err
	}
	prefix := s.Subnet
	if !prefix.IsValid() {
		avoid, err := hostPrefixes()
		if err != nil {
			return nil, nil, err
		}
		if prefix, err = ipam.NextSubnet(m.pool, 24, used4, avoid); err != nil {
			return nil, nil, fmt.Errorf("network %q: %w", s.Name, err)
		}
	} else {
		for _, u := range used4 {
			if ipam.Overlaps(u, prefix) {
				return nil, nil, errdefs.Conflictf("network %q: subnet %s overlaps %s of another network", s.Name, prefix, u)
			}
		}
	}
	v4, err := ipam.NewSubnet(prefix, s.Gateway, s.IPRange)
	if err != nil {
		return nil, nil, fmt.Errorf("network %q: %w", s.Name, err)
	}
	l := &leases{V4: v4, Endpoints: map[string]network.Endpoint{}}
	if s.EnableIPv6 {
		p6 := s.Subnet6
		if !p6.IsValid() {
			if p6, err = ipam.NextSubnet(ipam.DefaultPool6, 64, used6, nil); err != nil {
				return nil, nil, fmt.Errorf("network %q: %w", s.Name, err)
			}
		}
		if l.V6, err = ipam.NewSubnet(p6, netip.Addr{}, netip.Prefix{}); err != nil {
			return nil, nil, fmt.Errorf("network %q: %w", s.Name, err)
		}
		r.Gateway6 = l.V6.Gateway
	}
	return r, l, nil
}

func (m *Manager) usedSubnets() (v4, v6 []netip.Prefix, err error) {
	names, err := m.names()
	if err != nil {
		return nil, nil, err
	}
	for _, n := range names {
		_, l, err := m.load(n)
		if err != nil {
			return nil, nil, err
		}
		v4 = append(v4, l.V4.Prefix)
		if l.V6 != nil {
			v6 = append(v6, l.V6.Prefix)
		}
	}
	return v4, v6, nil
}

// hostPrefixes are the host's routes and addresses (but the default
// route), which a new subnet must not overlap.
func hostPrefixes() ([]netip.Prefix, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list host routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 {
			out = append(out, p)
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err == nil {
		for _, a := range addrs {
			if p, ok := prefixOf(a.IPNet); ok {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}
}

// ensureBridge makes the bridge with the gateway address, up.
func (m *Manager) ensureBridge(r *record, l *leases) error {
	link, err := netlink.LinkByName(r.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("network %q: bridge %s: %w", r.Spec.Name, r.Bridge, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = r.Bridge
		la.MTU = r.Spec.MTU
		br := &netlink.Bridge{LinkAttrs: la}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("network %q: create bridge %s: %w", r.Spec.Name, r.Bridge, err)
		}
		if link, err = netlink.LinkByName(r.Bridge); err != nil {
			return fmt.Errorf("network %q: bridge %s: %w", r.Spec.Name, r.Bridge, err)
		}
	} else if link.Type() != "bridge" {
		return errdefs.Conflictf("network %q: %s exists on the host and is not a bridge; choose another com.docker.network.bridge.name", r.Spec.Name, r.Bridge)
	}
	want := []*netlink.Addr{{IPNet: ipNet(l.V4.Gateway, l.V4.Prefix.Bits())}}
	if l.V6 != nil {
		want = append(want, &netlink.Addr{IPNet: ipNet(l.V6.Gateway, l.V6.Prefix.Bits())})
	}
	for _, a := range want {
		if err := netlink.AddrReplace(link, a); err != nil {
			return fmt.Errorf("network %q: address %s on %s: %w", r.Spec.Name, a.IPNet, r.Bridge, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("network %q: bring %s up: %w", r.Spec.Name, r.Bridge, err)
	}
	return nil
}

func (m *Manager) deleteBridge(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	return nil
}

// Inspect returns a network.
func (m *Manager) Inspect(ctx context.Context, name string) (network.Network, error) {
	r, l, err := m.load(name)
	if err != nil {
		return network.Network{}, err
	}
	return m.view(r, l), nil
}

// List returns the networks whose labels match f.
func (m *Manager) List(ctx context.Context, f network.Filter) ([]network.Network, error) {
	names, err := m.names()
	if err != nil {
		return nil, err
	}
	var out []network.Network
	for _, n := range names {
		r, l, err := m.load(n)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		if labels.Match(r.Spec.Labels, f.Labels) {
			out = append(out, m.view(r, l))
		}
	}
	return out, nil
}

// Remove deletes a network without endpoints.
func (m *Manager) Remove(ctx context.Context, name string) error {
	if err := state.ValidName("network", name); err != nil {
		return err
	}
	lk, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	r, l, err := m.loadPruned(name)
	if errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if len(l.Endpoints) > 0 {
		var names []string
		for n := range l.Endpoints {
			names = append(names, n)
		}
		sort.Strings(names)
		return errdefs.Conflictf("network %q has containers attached (%s); stop and remove them or 'berth network disconnect' them first", name, strings.Join(names, ", "))
	}
	dir, _ := m.netDir(name)
	// network.json first: a crash after it leaves a dir the next Create
	// of that name reuses.
	if err := os.Remove(filepath.Join(dir, NetworkFile)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("network %q: %w", name, err)
	}
	if err := m.deleteBridge(r.Bridge); err != nil {
		return fmt.Errorf("network %q: %w", name, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("network %q: %w", name, err)
	}
	return m.syncRules()
}

// Attach connects a container's network namespace to the network.
func (m *Manager) Attach(ctx context.Context, name string, e network.EndpointSpec) (network.Endpoint, error) {
	if e.Name == "" || e.NetNS == "" {
		return network.Endpoint{}, errdefs.Invalidf("network %q: an endpoint needs a container name and a network namespace", name)
	}
	if e.IfName == "" {
		e.IfName = "eth0"
	}
	lk, err := m.lock(ctx)
	if err != nil {
		return network.Endpoint{}, err
	}
	defer lk.Unlock()
	r, l, err := m.loadPruned(name)
	if err != nil {
		return network.Endpoint{}, err
	}
	if err := m.ensureBridge(r, l); err != nil {
		return network.Endpoint{}, err
	}
	ep, err := m.lease(r, l, e)
	if err != nil {
		return network.Endpoint{}, err
	}
	if err := m.writeLeases(name, l); err != nil {
		return network.Endpoint{}, err
	}
	if err := m.plumb(r, l, ep, e); err != nil {
		m.unplumb(ep.HostIf)
		delete(l.Endpoints, e.Name)
		l.V4.Release(e.Name)
		if l.V6 != nil {
			l.V6.Release(e.Name)
		}
		m.writeLeases(name, l)
		return network.Endpoint{}, err
	}
	if err := m.writeRecords(r, l); err != nil {
		return network.Endpoint{}, err
	}
	return ep, nil
}

// lease allocates (or finds) the endpoint's addresses and names.
func (m *Manager) lease(r *record, l *leases, e network.EndpointSpec) (network.Endpoint, error) {
	// A renamed container keeps its endpoint (and address) under its new name.
	for n, old := range l.Endpoints {
		if n != e.Name && e.ContainerID != "" && old.ContainerID == e.ContainerID {
			delete(l.Endpoints, n)
			l.V4.Release(n)
			if _, err := l.V4.Allocate(e.Name, old.IPv4); err != nil {
				return network.Endpoint{}, fmt.Errorf("network %q: container %s: %w", r.Spec.Name, e.Name, err)
			}
			if l.V6 != nil && old.IPv6.IsValid() {
				l.V6.Release(n)
				l.V6.Allocate(e.Name, old.IPv6)
			}
			old.Name = e.Name
			l.Endpoints[e.Name] = old
		}
	}
	if old, ok := l.Endpoints[e.Name]; ok && (!e.IPv4.IsValid() || e.IPv4 == old.IPv4) {
		old.ContainerID, old.IfName, old.Aliases = e.ContainerID, e.IfName, slices.Clone(e.Aliases)
		l.Endpoints[e.Name] = old
		return old, nil
	}
	ip4, err := l.V4.Allocate(e.Name, e.IPv4)
	if err != nil {
		return network.Endpoint{}, fmt.Errorf("network %q: container %s: %w", r.Spec.Name, e.Name, err)
	}
	ep := network.Endpoint{
		Name: e.Name, ContainerID: e.ContainerID, IfName: e.IfName, IPv4: ip4,
		Prefix: l.V4.Prefix.Bits(), Gateway: l.V4.Gateway, Aliases: slices.Clone(e.Aliases),
		MAC: macOf(ip4), HostIf: m.vethName(r.ID, e.Name),
	}
	if r.Spec.Internal {
		ep.Gateway = netip.Addr{}
	}
	if l.V6 != nil {
		if ep.IPv6, err = l.V6.Allocate(e.Name, e.IPv6); err != nil {
			l.V4.Release(e.Name)
			return network.Endpoint{}, fmt.Errorf("network %q: container %s: %w", r.Spec.Name, e.Name, err)
		}
	}
	l.Endpoints[e.Name] = ep
	return ep, nil
}

// vethName is bth<tag><7 hex of network ID and endpoint>: deterministic,
// 15 characters.
func (m *Manager) vethName(netID, endpoint string) string {
	sum := sha256.Sum256([]byte(netID + "/" + endpoint))
	return "bth" + m.tag + hex.EncodeToString(sum[:])[:7]
}

// macOf is Docker's scheme: 02:42 and the IPv4 address, so a recreated
// container with the same address keeps its MAC (and neighbours' caches).
func macOf(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// plumb makes the veth pair, moves the container end into the namespace
// as e.IfName with its addresses and routes, and enslaves the host end.
func (m *Manager) plumb(r *record, l *leases, ep network.Endpoint, e network.EndpointSpec) error {
	ns, err := netns.GetFromPath(e.NetNS)
	if err != nil {
		return fmt.Errorf("network %q: container %s: network namespace %s: %w", r.Spec.Name, e.Name, e.NetNS, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("network %q: container %s: netlink in its namespace: %w", r.Spec.Name, e.Name, err)
	}
	defer h.Close()
	br, err := netlink.LinkByName(r.Bridge)
	if err != nil {
		return fmt.Errorf("network %q: bridge %s: %w", r.Spec.Name, r.Bridge, err)
	}
	mtu := r.Spec.MTU
	if mtu == 0 {
		mtu = 1500
	}
	// Already plumbed (Attach again, e.g. at each start): both ends exist.
	if host, err := netlink.LinkByName(ep.HostIf); err == nil {
		if peer, err := h.LinkByName(e.IfName); err == nil && peer.Type() == "veth" {
			if host.Attrs().MasterIndex != br.Attrs().Index {
				netlink.LinkSetMaster(host, br)
			}
			netlink.LinkSetUp(host)
			return m.configure(h, peer, r, l, ep, e)
		}
		netlink.LinkDel(host)
	}
	if _, err := h.LinkByName(e.IfName); err == nil {
		return errdefs.Conflictf("network %q: container %s already has an interface %s; give this network another interface name", r.Spec.Name, e.Name, e.IfName)
	}
	mac, _ := net.ParseMAC(ep.MAC)
	la := netlink.NewLinkAttrs()
	la.Name = ep.HostIf
	la.MTU = mtu
	la.MasterIndex = br.Attrs().Index
	v := &netlink.Veth{LinkAttrs: la, PeerName: e.IfName, PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(ns), PeerMTU: uint32(mtu)}
	if err := netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("network %q: container %s: create veth %s: %w", r.Spec.Name, e.Name, ep.HostIf, err)
	}
	host, err := netlink.LinkByName(ep.HostIf)
	if err != nil {
		return fmt.Errorf("network %q: veth %s: %w", r.Spec.Name, ep.HostIf, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("network %q: bring %s up: %w", r.Spec.Name, ep.HostIf, err)
	}
	peer, err := h.LinkByName(e.IfName)
	if err != nil {
		return fmt.Errorf("network %q: container %s: %s: %w", r.Spec.Name, e.Name, e.IfName, err)
	}
	return m.configure(h, peer, r, l, ep, e)
}

func (m *Manager) configure(h *netlink.Handle, peer netlink.Link, r *record, l *leases, ep network.Endpoint, e network.EndpointSpec) error {
	fail := func(what string, err error) error {
		return fmt.Errorf("network %q: container %s: %s: %w", r.Spec.Name, e.Name, what, err)
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return fail("loopback up", err)
		}
	}
	if err := h.AddrReplace(peer, &netlink.Addr{IPNet: ipNet(ep.IPv4, ep.Prefix)}); err != nil {
		return fail("address "+ep.IPv4.String(), err)
	}
	if ep.IPv6.IsValid() {
		if err := h.AddrReplace(peer, &netlink.Addr{IPNet: ipNet(ep.IPv6, l.V6.Prefix.Bits()), Flags: unix.IFA_F_NODAD}); err != nil {
			return fail("address "+ep.IPv6.String(), err)
		}
	}
	if err := h.LinkSetUp(peer); err != nil {
		return fail("bring "+e.IfName+" up", err)
	}
	if e.DefaultRoute && !r.Spec.Internal {
		rt := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: l.V4.Gateway.AsSlice()}
		if err := h.RouteReplace(rt); err != nil {
			return fail("default route via "+l.V4.Gateway.String(), err)
		}
		if l.V6 != nil {
			rt6 := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: l.V6.Gateway.AsSlice(), Dst: ipNet(netip.IPv6Unspecified(), 0)}
			if err := h.RouteReplace(rt6); err != nil {
				return fail("IPv6 default route via "+l.V6.Gateway.String(), err)
			}
		}
	}
	return nil
}

func (m *Manager) unplumb(hostIf string) {
	if l, err := netlink.LinkByName(hostIf); err == nil {
		netlink.LinkDel(l)
	}
}

// Detach removes the endpoint: its veth pair, its lease and its records.
func (m *Manager) Detach(ctx context.Context, name, endpoint string) error {
	return m.detach(ctx, name, endpoint, true)
}

// Forget is Detach for an endpoint whose network namespace is gone or
// going (its container was removed): the kernel deletes the veth pair
// with the namespace, so only the lease and the records go here. Deleting
// the link ourselves would wait out an RCU grace period (~20 ms) for
// nothing.
func (m *Manager) Forget(ctx context.Context, name, endpoint string) error {
	return m.detach(ctx, name, endpoint, false)
}

func (m *Manager) detach(ctx context.Context, name, endpoint string, unplumb bool) error {
	lk, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	r, l, err := m.load(name)
	if errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	ep, ok := l.Endpoints[endpoint]
	if !ok {
		return nil
	}
	if unplumb {
		m.unplumb(ep.HostIf)
	}
	delete(l.Endpoints, endpoint)
	l.V4.Release(endpoint)
	if l.V6 != nil {
		l.V6.Release(endpoint)
	}
	if err := m.writeLeases(name, l); err != nil {
		return err
	}
	return m.writeRecords(r, l)
}

// writeRecords rewrites records.json from the endpoints.
func (m *Manager) writeRecords(r *record, l *leases) error {
	recs := network.Records{Version: network.RecordsVersion, Network: r.Spec.Name}
	names := make([]string, 0, len(l.Endpoints))
	for n := range l.Endpoints {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ep := l.Endpoints[n]
		rec := network.Record{ContainerID: ep.ContainerID, IPv4: ep.IPv4, IPv6: ep.IPv6, Names: []string{ep.Name}}
		if len(ep.ContainerID) >= 12 {
			rec.Names = append(rec.Names, ep.ContainerID[:12])
		}
		for _, a := range ep.Aliases {
			if !slices.Contains(rec.Names, a) {
				rec.Names = append(rec.Names, a)
			}
		}
		recs.Entries = append(recs.Entries, rec)
	}
	dir, _ := m.netDir(r.Spec.Name)
	return state.UpdateJSONVolatile(filepath.Join(dir, RecordsFile), recs, 0o644)
}
