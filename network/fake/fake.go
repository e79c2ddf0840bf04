// Package fake is an in-memory network.Manager for tests of what drives
// networks (the reconcile executor). It follows the interface rules:
// Create is idempotent for the same Spec and ErrConflict for another one
// or over an unlabelled network; Remove of a missing network is nil and
// of one with endpoints ErrConflict; Attach is idempotent per endpoint
// name (a recreated container keeps its address); Detach of a missing
// endpoint is nil. The n-th network created gets 10.0.n.0/24 unless its
// Spec names a subnet, and endpoints addresses from .2 upwards, lowest
// free first. Records is "" (no DNS file).
//
// Everything is safe for concurrent use.
package fake

import (
	"berth.dev/berth/internal/labels"

	"berth.dev/berth/internal/fakelog"

	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/network"
)

// Manager is the fake. The zero value is not usable: call New.
type Manager struct {
	mu   sync.Mutex
	seq  int
	nets map[string]*fakeNet
	// FailNext(op, name, err) fails the next call of op ("create",
	// "inspect", "list", "remove", "attach", "detach") naming the network
	// or, for attach and detach, the endpoint; Calls logs "create
	// demo_default", "attach demo_default demo-web-1", …; OnCall's hook
	// gets the arguments joined ("demo_default demo-web-1").
	fakelog.Log
}

type fakeNet struct {
	asked     network.Spec // as requested, to compare Creates
	n         network.Network
	endpoints map[string]network.Endpoint
}

// New returns a manager without networks.
func New() *Manager { return &Manager{nets: map[string]*fakeNet{}} }

// Endpoints lists network name → endpoint names, sorted, of every network.
func (m *Manager) Endpoints() map[string][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]string{}
	for name, n := range m.nets {
		out[name] = slices.Sorted(maps.Keys(n.endpoints))
	}
	return out
}

func (m *Manager) call(op string, args ...string) error {
	return m.Call(op, op != "inspect" && op != "list", args, strings.Join(args, " "), args...)
}

// sameSpec compares what was asked for.
func sameSpec(a, b network.Spec) bool {
	return a.Name == b.Name && maps.Equal(a.Labels, b.Labels) && a.Subnet == b.Subnet &&
		a.Gateway == b.Gateway && a.IPRange == b.IPRange && a.Subnet6 == b.Subnet6 &&
		a.Internal == b.Internal && a.EnableIPv6 == b.EnableIPv6 && a.MTU == b.MTU && a.BridgeName == b.BridgeName
}

// Create makes the network or returns the identical one.
func (m *Manager) Create(ctx context.Context, s network.Spec) (network.Network, error) {
	if err := m.call("create", s.Name); err != nil {
		return network.Network{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.Name == "" || strings.ContainsAny(s.Name, "/\x00 ") {
		return network.Network{}, errdefs.Invalidf("invalid network name %q", s.Name)
	}
	if n, ok := m.nets[s.Name]; ok {
		if sameSpec(n.asked, s) {
			return m.viewLocked(n), nil
		}
		if len(n.asked.Labels) == 0 && len(s.Labels) > 0 {
			return network.Network{}, errdefs.Conflictf("network %q already exists and was not created by this project; remove it or declare it external: true", s.Name)
		}
		return network.Network{}, errdefs.Conflictf("network %q already exists with a different configuration; remove it first", s.Name)
	}
	m.seq++
	idx := m.seq
	s.Labels = maps.Clone(s.Labels)
	n := network.Network{Spec: s}
	if !n.Subnet.IsValid() {
		n.Subnet = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(idx), 0}), 24)
	}
	n.Subnet = n.Subnet.Masked()
	if !n.Gateway.IsValid() {
		n.Gateway = n.Subnet.Addr().Next()
	}
	if !n.IPRange.IsValid() {
		n.IPRange = n.Subnet
	}
	if s.EnableIPv6 {
		if !n.Subnet6.IsValid() {
			n.Subnet6 = netip.MustParsePrefix(fmt.Sprintf("fd00:0:0:%x::/64", idx))
		}
		n.Gateway6 = n.Subnet6.Masked().Addr().Next()
	}
	if n.MTU == 0 {
		n.MTU = 1500
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "fake-network-%d", idx))
	n.ID = hex.EncodeToString(sum[:])
	n.Bridge = s.BridgeName
	if n.Bridge == "" {
		n.Bridge = "fake-" + n.ID[:8]
	}
	n.Created = time.Now().UTC().Format(time.RFC3339)
	fn := &fakeNet{asked: s, n: n, endpoints: map[string]network.Endpoint{}}
	m.nets[s.Name] = fn
	return m.viewLocked(fn), nil
}

func (m *Manager) viewLocked(n *fakeNet) network.Network {
	v := n.n
	v.Labels = maps.Clone(v.Labels)
	v.Endpoints = nil
	for _, name := range slices.Sorted(maps.Keys(n.endpoints)) {
		ep := n.endpoints[name]
		ep.Aliases = slices.Clone(ep.Aliases)
		v.Endpoints = append(v.Endpoints, ep)
	}
	return v
}

// Inspect returns the network; ErrNotFound when there is none.
func (m *Manager) Inspect(ctx context.Context, name string) (network.Network, error) {
	if err := m.call("inspect", name); err != nil {
		return network.Network{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nets[name]
	if !ok {
		return network.Network{}, errdefs.NotFoundf("no such network: %s", name)
	}
	return m.viewLocked(n), nil
}

// List returns the networks whose labels include f's, by name.
func (m *Manager) List(ctx context.Context, f network.Filter) ([]network.Network, error) {
	if err := m.call("list"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []network.Network
	for _, name := range slices.Sorted(maps.Keys(m.nets)) {
		n := m.nets[name]
		if labels.Match(n.n.Labels, f.Labels) {
			out = append(out, m.viewLocked(n))
		}
	}
	return out, nil
}

// Remove deletes a network without endpoints; a missing one is nil.
func (m *Manager) Remove(ctx context.Context, name string) error {
	if err := m.call("remove", name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nets[name]
	if !ok {
		return nil
	}
	if len(n.endpoints) > 0 {
		return errdefs.Conflictf("network %q has containers attached (%s); stop and remove them first",
			name, strings.Join(slices.Sorted(maps.Keys(n.endpoints)), ", "))
	}
	delete(m.nets, name)
	return nil
}

// Attach gives the endpoint an address on the network, or returns the one
// it has (a renamed container keeps its endpoint under the new name).
func (m *Manager) Attach(ctx context.Context, name string, e network.EndpointSpec) (network.Endpoint, error) {
	if err := m.call("attach", name, e.Name); err != nil {
		return network.Endpoint{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Name == "" || e.NetNS == "" {
		return network.Endpoint{}, errdefs.Invalidf("network %q: an endpoint needs a container name and a network namespace", name)
	}
	n, ok := m.nets[name]
	if !ok {
		return network.Endpoint{}, errdefs.NotFoundf("no such network: %s", name)
	}
	if e.IfName == "" {
		e.IfName = "eth0"
	}
	for old, ep := range n.endpoints {
		if old != e.Name && e.ContainerID != "" && ep.ContainerID == e.ContainerID {
			delete(n.endpoints, old)
			ep.Name = e.Name
			n.endpoints[e.Name] = ep
		}
	}
	if old, ok := n.endpoints[e.Name]; ok {
		if e.IPv4.IsValid() && e.IPv4.Unmap() != old.IPv4 {
			return network.Endpoint{}, errdefs.Conflictf("network %q: endpoint %q already has address %s, not %s", name, e.Name, old.IPv4, e.IPv4)
		}
		old.ContainerID, old.IfName, old.Aliases = e.ContainerID, e.IfName, slices.Clone(e.Aliases)
		n.endpoints[e.Name] = old
		return old, nil
	}
	ip4, err := m.allocateLocked(n, e.Name, e.IPv4, false)
	if err != nil {
		return network.Endpoint{}, err
	}
	ep := network.Endpoint{
		Name: e.Name, ContainerID: e.ContainerID, IfName: e.IfName, IPv4: ip4,
		Prefix: n.n.Subnet.Bits(), Gateway: n.n.Gateway, Aliases: slices.Clone(e.Aliases),
		MAC: macOf(ip4), HostIf: "fth" + hostIf(n.n.ID, e.Name),
	}
	if n.n.Internal {
		ep.Gateway = netip.Addr{}
	}
	if n.n.EnableIPv6 {
		if ep.IPv6, err = m.allocateLocked(n, e.Name, e.IPv6, true); err != nil {
			return network.Endpoint{}, err
		}
	}
	n.endpoints[e.Name] = ep
	return ep, nil
}

// allocateLocked picks static (checked) or the lowest free address.
func (m *Manager) allocateLocked(n *fakeNet, name string, static netip.Addr, v6 bool) (netip.Addr, error) {
	pool, gw := n.n.IPRange, n.n.Gateway
	if v6 {
		pool, gw = n.n.Subnet6, n.n.Gateway6
	}
	used := map[netip.Addr]bool{gw: true}
	for _, ep := range n.endpoints {
		used[ep.IPv4], used[ep.IPv6] = true, true
	}
	if static.IsValid() {
		static = static.Unmap()
		if !pool.Contains(static) {
			return netip.Addr{}, errdefs.Invalidf("network %q: container %s: address %s is not in %s", n.n.Name, name, static, pool)
		}
		if used[static] {
			return netip.Addr{}, errdefs.Conflictf("network %q: container %s: address %s is in use", n.n.Name, name, static)
		}
		return static, nil
	}
	var broadcast netip.Addr
	if !v6 {
		b := n.n.Subnet.Masked().Addr().As4()
		host := uint32(1)<<(32-n.n.Subnet.Bits()) - 1
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
		broadcast = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	for a := pool.Masked().Addr().Next(); a.IsValid() && pool.Contains(a); a = a.Next() {
		if a != gw && a != broadcast && !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, errdefs.Conflictf("network %q: no free address left in %s", n.n.Name, pool)
}

func macOf(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

func hostIf(netID, endpoint string) string {
	sum := sha256.Sum256([]byte(netID + "/" + endpoint))
	return hex.EncodeToString(sum[:])[:9]
}

// Detach forgets the endpoint; a missing network or endpoint is nil.
func (m *Manager) Detach(ctx context.Context, name, endpoint string) error {
	if err := m.call("detach", name, endpoint); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.nets[name]; ok {
		delete(n.endpoints, endpoint)
	}
	return nil
}
