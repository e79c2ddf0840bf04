// Package network defines berth's network manager: one Linux bridge per
// network, one veth endpoint per attached container. network/bridge
// implements it; network/ipam allocates subnets and addresses;
// network/dns and network/proxy are the servers a container's shim runs.
package network

import (
	"context"
	"net/netip"
)

// Manager creates networks and attaches containers. Create is idempotent
// for the same Spec; a different Spec or an unlabelled network of that name
// is errdefs.ErrConflict. Remove of a missing network is nil; with
// endpoints left it is ErrConflict. Attach is idempotent per endpoint name;
// Detach of a missing endpoint is nil.
type Manager interface {
	Create(ctx context.Context, s Spec) (Network, error)
	Inspect(ctx context.Context, name string) (Network, error)
	List(ctx context.Context, f Filter) ([]Network, error)
	Remove(ctx context.Context, name string) error
	Attach(ctx context.Context, network string, e EndpointSpec) (Endpoint, error)
	Detach(ctx context.Context, network, endpoint string) error
}

// Spec describes a network.
type Spec struct {
	Name       string
	Labels     map[string]string
	Subnet     netip.Prefix // zero: allocate a /24 from the pool
	Gateway    netip.Addr   // zero: the subnet's first address
	IPRange    netip.Prefix // endpoints get addresses from here (zero: the subnet)
	Subnet6    netip.Prefix // with EnableIPv6; zero: a /64 from the ULA pool
	Internal   bool         // no NAT, no route out
	EnableIPv6 bool
	MTU        int    // 0: 1500
	BridgeName string // driver_opts com.docker.network.bridge.name; "" = derived
}

// Network is an existing network.
type Network struct {
	Spec
	ID        string
	Bridge    string
	Gateway6  netip.Addr
	Created   string // RFC 3339
	Endpoints []Endpoint
	// Records is the path of the DNS records file of this network
	// (network/dns reads it); rewritten atomically on every change.
	Records string
}

// EndpointSpec attaches one container (by name) to a network.
type EndpointSpec struct {
	Name        string // container name; IPs are keyed by it, so a recreated replica keeps its address
	ContainerID string // full ID; its 12-character prefix resolves too
	NetNS       string // path of the pinned network namespace
	IfName      string // interface name inside the container (eth0, eth1, …)
	Aliases     []string
	IPv4        netip.Addr // static ipv4_address, if any
	IPv6        netip.Addr // static ipv6_address, if any
	// DefaultRoute installs the default route via this network's gateway
	// (ignored on internal networks, which have no route out).
	DefaultRoute bool
}

// Endpoint is an attached container.
type Endpoint struct {
	Name        string
	ContainerID string
	IfName      string
	IPv4        netip.Addr
	IPv6        netip.Addr
	Prefix      int // subnet bits
	Gateway     netip.Addr
	MAC         string
	HostIf      string // bth… on the bridge
	Aliases     []string
}

// Filter selects networks by labels.
type Filter struct{ Labels map[string]string }
