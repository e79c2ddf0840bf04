package reconcile

import (
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
)

// specDefaultBridge is the network network_mode: bridge means: berth's
// default network, the one `berth run` uses (cmd/berth/cli.DefaultNetwork).
const specDefaultBridge = "bridge"

// specNetworking sets NetNS and Networks from network_mode and networks,
// and returns the compose network keys the container is attached to, in
// attachment order (for LabelNetworks).
//
// With a namespace of its own ("" or bridge), the container is on each of
// the service's networks by priority (higher first, ties by key), under
// the network's real name. Its aliases there are the service name (unless
// use_service_name_alias: false) and the configured aliases; a one-off
// gets none, as `compose run` without --use-aliases.
func specNetworking(s *runtime.ContainerSpec, m *project.Model, svc types.ServiceConfig, oneOff bool) ([]string, error) {
	mode := svc.NetworkMode
	switch {
	case mode == "host":
		s.NetNS = "host"
		return nil, nil
	case mode == "none":
		s.NetNS = "none"
		return nil, nil
	case strings.HasPrefix(mode, "service:"):
		name := strings.TrimPrefix(mode, "service:")
		other, ok := m.Project.Services[name]
		if !ok {
			return nil, errdefs.Invalidf("service %q: network_mode %s: no such active service", svc.Name, mode)
		}
		s.NetNS = runtime.NetNSMode("container:" + ContainerName(m.Name, name, 1, other.ContainerName))
		return nil, nil
	case strings.HasPrefix(mode, "container:"):
		if strings.TrimPrefix(mode, "container:") == "" {
			return nil, errdefs.Invalidf("service %q: network_mode %s: name the container", svc.Name, mode)
		}
		s.NetNS = runtime.NetNSMode(mode)
		return nil, nil
	case mode == "bridge":
		s.NetNS = "private"
		s.Networks = []runtime.NetworkAttachment{{Network: specDefaultBridge}}
		return nil, nil
	case mode != "":
		return nil, errdefs.Invalidf("service %q: network_mode %q: berth knows host, none, bridge, service:NAME and container:NAME; for a project network use networks:", svc.Name, mode)
	}
	s.NetNS = "private"
	keys := svc.NetworksByPriority()
	if len(keys) == 0 { // the loader adds default; a hand-built model may not
		keys = []string{"default"}
	}
	for _, key := range keys {
		nc, ok := m.Project.Networks[key]
		if !ok {
			return nil, errdefs.Invalidf("service %q: network %q is not defined in the project", svc.Name, key)
		}
		name := nc.Name
		if name == "" {
			name = m.Name + "_" + key
		}
		na := runtime.NetworkAttachment{Network: name}
		cfg := svc.Networks[key]
		if !oneOff {
			var aliases []string
			if cfg.ServiceNameAliasEnabled() {
				aliases = append(aliases, svc.Name)
			}
			if cfg != nil {
				aliases = append(aliases, cfg.Aliases...)
			}
			na.Aliases = specDedup(aliases)
		}
		if cfg != nil {
			na.IPv4, na.IPv6 = cfg.Ipv4Address, cfg.Ipv6Address
			if na.IPv4 != "" && net.ParseIP(na.IPv4).To4() == nil {
				return nil, errdefs.Invalidf("service %q: networks.%s.ipv4_address %q is not an IPv4 address", svc.Name, key, na.IPv4)
			}
			if na.IPv6 != "" && (net.ParseIP(na.IPv6) == nil || net.ParseIP(na.IPv6).To4() != nil) {
				return nil, errdefs.Invalidf("service %q: networks.%s.ipv6_address %q is not an IPv6 address", svc.Name, key, na.IPv6)
			}
		}
		s.Networks = append(s.Networks, na)
	}
	return keys, nil
}

// specPorts are the published ports, as written. A published range
// ("8000-8001") needs a target range of the same length, which the loader
// has already expanded into one port each; left with a single target, it
// is an error (Docker would pick one port of the range at random).
func specPorts(svc types.ServiceConfig) ([]runtime.PortMapping, error) {
	var out []runtime.PortMapping
	for i, p := range svc.Ports {
		bad := func(format string, args ...any) error {
			return errdefs.Invalidf("service %q: ports[%d]: "+format, append([]any{svc.Name, i}, args...)...)
		}
		pm := runtime.PortMapping{HostIP: p.HostIP, Protocol: strings.ToLower(p.Protocol)}
		if pm.Protocol == "" {
			pm.Protocol = "tcp"
		}
		if pm.Protocol != "tcp" && pm.Protocol != "udp" {
			return nil, bad("protocol %q: berth publishes tcp and udp", p.Protocol)
		}
		if p.Target == 0 || p.Target > 65535 {
			return nil, bad("container port %d is out of range (1-65535)", p.Target)
		}
		pm.ContainerPort = uint16(p.Target)
		if pm.HostIP != "" {
			ip := strings.TrimSuffix(strings.TrimPrefix(pm.HostIP, "["), "]")
			if net.ParseIP(ip) == nil {
				return nil, bad("host IP %q is not an address", p.HostIP)
			}
			pm.HostIP = ip
		}
		if pub := p.Published; pub != "" {
			lo, hi, isRange := strings.Cut(pub, "-")
			if isRange && lo != hi {
				return nil, bad("published range %s maps onto the single container port %d; give a container range of the same length (\"%s:%d-%d\") or one host port", pub, p.Target, pub, p.Target, p.Target+specRangeLen(lo, hi)-1)
			}
			n, err := strconv.ParseUint(lo, 10, 16)
			if err != nil || n == 0 {
				return nil, bad("host port %q is not a port number (1-65535)", pub)
			}
			pm.HostPort = uint16(n)
		}
		out = append(out, pm)
	}
	return out, nil
}

// specRangeLen is the number of ports in lo-hi (1 when it does not parse).
func specRangeLen(lo, hi string) uint32 {
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || b < a {
		return 1
	}
	return uint32(b-a) + 1
}

// specExtraHosts are extra_hosts as "name:ip", sorted (host-gateway kept).
func specExtraHosts(h types.HostsList) []string {
	if len(h) == 0 {
		return nil
	}
	out := h.AsList(":")
	sort.Strings(out)
	return out
}

// specDedup drops repeated and empty strings, keeping the first of each.
func specDedup(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
