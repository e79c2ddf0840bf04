package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/network"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
)

// Connect attaches container c to the networks its spec asks for, in
// order (the first gets the default route), and records the endpoints for
// its start with SetNetworking. Attaching is idempotent, so Connect runs
// again before every start to re-ensure the attachments. hosts are the
// extra /etc/hosts lines (legacy link aliases); nil keeps those recorded
// earlier. A container without a network namespace of its own (NetNS()
// "") or without networks is left alone.
func Connect(ctx context.Context, nm network.Manager, c runtime.Container, s runtime.ContainerSpec, hosts []runtime.HostEntry) error {
	path := c.NetNS()
	if path == "" || len(s.Networks) == 0 {
		return nil
	}
	if nm == nil {
		return errdefs.Unavailablef("container %s: no network manager to attach it to %s", s.Name, s.Networks[0].Network)
	}
	prev, err := c.Networking(ctx)
	if err != nil {
		return err
	}
	if hosts == nil {
		hosts = prev.Hosts
	}
	nw := runtime.Networking{Hosts: hosts}
	for i, na := range s.Networks {
		es := network.EndpointSpec{Name: s.Name, ContainerID: c.ID(), NetNS: path, IfName: fmt.Sprintf("eth%d", i),
			Aliases: na.Aliases, DefaultRoute: i == 0}
		if na.IPv4 != "" {
			if es.IPv4, err = netip.ParseAddr(na.IPv4); err != nil || !es.IPv4.Is4() {
				return errdefs.Invalidf("container %s: network %s: ip %q is not an IPv4 address", s.Name, na.Network, na.IPv4)
			}
		}
		if na.IPv6 != "" {
			if es.IPv6, err = netip.ParseAddr(na.IPv6); err != nil || !es.IPv6.Is6() {
				return errdefs.Invalidf("container %s: network %s: ip6 %q is not an IPv6 address", s.Name, na.Network, na.IPv6)
			}
		}
		ep, err := nm.Attach(ctx, na.Network, es)
		if err != nil {
			return fmt.Errorf("container %s: %w", s.Name, err)
		}
		n, err := nm.Inspect(ctx, na.Network)
		if err != nil {
			return fmt.Errorf("container %s: %w", s.Name, err)
		}
		ne := runtime.NetEndpoint{Network: na.Network, IPv4: ep.IPv4.String(), Prefix: ep.Prefix, MAC: ep.MAC,
			Aliases: ep.Aliases, Records: n.Records}
		if ep.Gateway.IsValid() {
			ne.Gateway = ep.Gateway.String()
		}
		if ep.IPv6.IsValid() {
			ne.IPv6 = ep.IPv6.String()
		}
		nw.Endpoints = append(nw.Endpoints, ne)
	}
	return c.SetNetworking(ctx, nw)
}

// Disconnect detaches the endpoint named name (a container's name) from
// each network, as after the container was removed or before its name
// goes to a replacement. A missing endpoint or network is not an error;
// the others are joined.
func Disconnect(ctx context.Context, nm network.Manager, name string, networks []string) error {
	if nm == nil {
		return nil
	}
	return eachNetwork(name, networks, func(n string) error { return nm.Detach(ctx, n, name) })
}

// eachNetwork runs fn once per distinct network, joining the errors.
func eachNetwork(name string, networks []string, fn func(network string) error) error {
	if name == "" {
		return nil
	}
	var errs []error
	seen := map[string]bool{}
	for _, n := range networks {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if err := fn(n); err != nil {
			errs = append(errs, fmt.Errorf("container %s: network %s: %w", name, n, err))
		}
	}
	return errors.Join(errs...)
}

// forgetter is a network manager that can drop a removed container's
// endpoints without deleting links the kernel deletes with the namespace
// (network/bridge: saves an RCU grace period per endpoint).
type forgetter interface {
	Forget(ctx context.Context, network, endpoint string) error
}

// Release is Disconnect for a container already removed (its network
// namespace gone or going).
func Release(ctx context.Context, nm network.Manager, name string, networks []string) error {
	f, ok := nm.(forgetter)
	if !ok {
		return Disconnect(ctx, nm, name, networks)
	}
	return eachNetwork(name, networks, func(n string) error { return f.Forget(ctx, n, name) })
}

// EndpointNetworks are the networks of a recorded Networking, in order.
func EndpointNetworks(n runtime.Networking) []string {
	out := make([]string, 0, len(n.Endpoints))
	for _, ep := range n.Endpoints {
		out = append(out, ep.Network)
	}
	return out
}

// LinkTarget is what a legacy link needs of the container it points at.
type LinkTarget struct {
	Name       string             // the target container's name
	Networking runtime.Networking // its endpoints (Container.Networking)
	Ports      []project.LinkPort // its exposed ports (see LinkPorts)
	Env        []string           // its environment, "K=V"
	// Names are more /etc/hosts names for it beside the alias and Name
	// (compose adds the service name).
	Names []string
}

// LinkVars resolves one legacy link from the container being created
// with spec s to target t under alias ("" = t.Name): the target's address
// on the first network of s it shares, the ALIAS_PORT_…, ALIAS_NAME and
// ALIAS_ENV_… variables (project.LinkEnv) and the /etc/hosts line (the
// alias, then t.Names and t.Name). A target on none of s's networks is
// ErrInvalid.
func LinkVars(s runtime.ContainerSpec, alias string, t LinkTarget) ([]string, runtime.HostEntry, error) {
	name := strings.TrimPrefix(t.Name, "/")
	if alias == "" {
		alias = name
	}
	ip := ""
	for _, na := range s.Networks {
		for _, ep := range t.Networking.Endpoints {
			if ip == "" && ep.Network == na.Network && ep.IPv4 != "" {
				ip = ep.IPv4
			}
		}
	}
	if ip == "" {
		return nil, runtime.HostEntry{}, errdefs.Invalidf("link to %s: container %s is on no network of container %s; put them on one network", alias, name, s.Name)
	}
	env := project.LinkEnv(alias, s.Name, name, ip, t.Ports, t.Env)
	var names []string
	for _, n := range append(append([]string{alias}, t.Names...), name) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return env, runtime.HostEntry{IP: ip, Names: names}, nil
}

// LinkPorts turns exposed-port lists ("80/tcp", "5432", "8000-8010/udp":
// an image's EXPOSE, expose:) into link ports, each port and protocol
// once, sorted by number then protocol. Entries that do not parse are
// skipped.
func LinkPorts(lists ...[]string) []project.LinkPort {
	var out []project.LinkPort
	for _, list := range lists {
		for _, p := range list {
			num, proto, _ := strings.Cut(strings.TrimSpace(p), "/")
			proto = strings.ToLower(proto)
			if proto == "" {
				proto = "tcp"
			}
			lo, hi, _ := strings.Cut(num, "-")
			a, err := strconv.ParseUint(lo, 10, 16)
			if err != nil || a == 0 {
				continue
			}
			lp := project.LinkPort{Port: uint16(a), Proto: proto}
			if hi != "" {
				if b, err := strconv.ParseUint(hi, 10, 16); err == nil && b > a {
					lp.End = uint16(b)
				}
			}
			out = AppendLinkPort(out, lp)
		}
	}
	slices.SortFunc(out, func(a, b project.LinkPort) int {
		if a.Port != b.Port {
			return int(a.Port) - int(b.Port)
		}
		return strings.Compare(a.Proto, b.Proto)
	})
	return out
}

// AppendLinkPort adds p unless ps has the same port and protocol.
func AppendLinkPort(ps []project.LinkPort, p project.LinkPort) []project.LinkPort {
	for _, q := range ps {
		if q.Port == p.Port && q.End == p.End && strings.EqualFold(q.Proto, p.Proto) {
			return ps
		}
	}
	return append(ps, p)
}
