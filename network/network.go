// Package network defines berth's network manager: one bridge per project
// network, endpoints per container. network/bridge implements it (later).
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
	Gateway    netip.Addr
	IPRange    netip.Prefix
	Internal   bool // no NAT, no route out
	EnableIPv6 bool
	MTU        int
	BridgeName string // driver_opts override
}

// Network is an existing network.
type Network struct {
	Spec
	ID        string
	Bridge    string
	Endpoints []Endpoint
}

// EndpointSpec attaches one container (by name) to a network.
type EndpointSpec struct {
	Name     string // container name; IPs are keyed by it, so a recreated replica keeps its address
	NetNS    string // path of the pinned network namespace
	Aliases  []string
	IPv4     netip.Addr // static ipv4_address, if any
	Priority int
}

// Endpoint is an attached container.
type Endpoint struct {
	Name    string
	IPv4    netip.Addr
	MAC     string
	HostIf  string // bth<12 hex>
	Aliases []string
}

// Filter selects networks by labels.
type Filter struct{ Labels map[string]string }
