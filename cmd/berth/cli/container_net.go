package cli

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"berth.dev/berth/project"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

// netOpts are run/create's networking flags.
type netOpts struct {
	networks, aliases, publish, expose, links []string
	dns, dnsSearch, dnsOptions, addHosts      []string
	ip, ip6                                   string
	publishAll                                bool
}

func (o *netOpts) register(f interface {
	StringArrayVar(p *[]string, name string, value []string, usage string)
	StringArrayVarP(p *[]string, name, shorthand string, value []string, usage string)
	StringVar(p *string, name string, value string, usage string)
	BoolVarP(p *bool, name, shorthand string, value bool, usage string)
}) {
	f.StringArrayVar(&o.networks, "network", nil, "Connect a container to a network (bridge: the default; none; host; container:NAME; or a network's name)")
	f.StringArrayVar(&o.aliases, "network-alias", nil, "Add network-scoped alias for the container")
	f.StringVar(&o.ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	f.StringVar(&o.ip6, "ip6", "", "IPv6 address")
	f.StringArrayVarP(&o.publish, "publish", "p", nil, "Publish a container's port(s) to the host ([ip:][hostPort:]containerPort[/proto])")
	f.BoolVarP(&o.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	f.StringArrayVar(&o.expose, "expose", nil, "Expose a port or a range of ports (documentation, and for -P and links)")
	f.StringArrayVar(&o.links, "link", nil, "Add link to another container (NAME[:ALIAS])")
	f.StringArrayVar(&o.dns, "dns", nil, "Set custom DNS servers")
	f.StringArrayVar(&o.dnsSearch, "dns-search", nil, "Set custom DNS search domains")
	f.StringArrayVar(&o.dnsOptions, "dns-option", nil, "Set DNS options")
	f.StringArrayVar(&o.addHosts, "add-host", nil, "Add a custom host-to-IP mapping (host:ip, or host:host-gateway)")
}

// apply sets the spec's networking from the flags and the image's
// EXPOSE; it returns warnings.
func (o *netOpts) apply(s *runtime.ContainerSpec, ic imageConfig) ([]string, error) {
	var warnings []string
	mode := ""
	var named []string
	for _, n := range o.networks {
		switch {
		case n == "host" || n == "none" || strings.HasPrefix(n, "container:"):
			if mode != "" || len(named) > 0 || len(o.networks) > 1 {
				return nil, errUsage("--network %s cannot be combined with other networks", n)
			}
			mode = n
		case n == "" || n == "default":
			named = append(named, DefaultNetwork)
		default:
			named = append(named, n)
		}
	}
	switch {
	case mode == "host":
		s.NetNS = "host"
	case mode == "none":
		s.NetNS = "none"
	case mode != "":
		s.NetNS = runtime.NetNSMode(mode)
	default:
		s.NetNS = "private"
		if len(named) == 0 {
			named = []string{DefaultNetwork}
		}
		for i, n := range named {
			na := runtime.NetworkAttachment{Network: n}
			if i == 0 {
				na.Aliases, na.IPv4, na.IPv6 = o.aliases, o.ip, o.ip6
			}
			s.Networks = append(s.Networks, na)
		}
	}
	if len(s.Networks) == 0 && (len(o.aliases) > 0 || o.ip != "" || o.ip6 != "") {
		return nil, errUsage("--network-alias, --ip and --ip6 need a bridge network (not --network %s)", mode)
	}
	s.DNS, s.DNSSearch, s.DNSOptions = o.dns, o.dnsSearch, o.dnsOptions
	s.Expose = o.expose
	for _, h := range o.addHosts {
		if _, _, ok := linux.SplitExtraHost(h); !ok {
			return nil, errUsage("--add-host %q: write HOST:IP, e.g. db.local:10.0.0.5 (or HOST:host-gateway)", h)
		}
		s.ExtraHosts = append(s.ExtraHosts, h)
	}
	for _, p := range o.publish {
		pcs, err := types.ParsePortConfig(p)
		if err != nil {
			return nil, errUsage("--publish %q: %v; write [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO], e.g. 127.0.0.1:8080:80", p, err)
		}
		for _, pc := range pcs {
			pm, err := portMapping(pc)
			if err != nil {
				return nil, errUsage("--publish %q: %v", p, err)
			}
			s.Ports = append(s.Ports, pm)
		}
	}
	if o.publishAll {
		for _, e := range exposedPorts(ic, o.expose) {
			if e.End != 0 && e.End != e.Port {
				for p := e.Port; p <= e.End && p >= e.Port; p++ {
					s.Ports = append(s.Ports, runtime.PortMapping{ContainerPort: p, Protocol: e.Proto})
				}
				continue
			}
			s.Ports = append(s.Ports, runtime.PortMapping{ContainerPort: e.Port, Protocol: e.Proto})
		}
	}
	if len(s.Ports) > 0 && len(s.Networks) == 0 {
		warnings = append(warnings, fmt.Sprintf("published ports are discarded with --network %s", mode))
		s.Ports = nil
	}
	return warnings, nil
}

func portMapping(pc types.ServicePortConfig) (runtime.PortMapping, error) {
	pm := runtime.PortMapping{HostIP: pc.HostIP, ContainerPort: uint16(pc.Target), Protocol: pc.Protocol}
	if pm.Protocol == "" {
		pm.Protocol = "tcp"
	}
	if pm.Protocol != "tcp" && pm.Protocol != "udp" {
		return pm, fmt.Errorf("protocol %q: berth publishes tcp and udp", pm.Protocol)
	}
	if pc.Published != "" {
		n, err := strconv.ParseUint(pc.Published, 10, 16)
		if err != nil {
			return pm, fmt.Errorf("host port %q is not a port number", pc.Published)
		}
		pm.HostPort = uint16(n)
	}
	if pc.Target == 0 || pc.Target > 65535 {
		return pm, fmt.Errorf("container port %d is out of range", pc.Target)
	}
	if pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil {
		return pm, fmt.Errorf("host IP %q is not an address", pm.HostIP)
	}
	return pm, nil
}

// exposedPorts are the image's EXPOSE and --expose, sorted.
func exposedPorts(ic imageConfig, extra []string) []project.LinkPort {
	set := map[string]bool{}
	for p := range ic.ExposedPorts {
		set[p] = true
	}
	for _, p := range extra {
		set[p] = true
	}
	var out []project.LinkPort
	for p := range set {
		num, proto, _ := strings.Cut(p, "/")
		if proto == "" {
			proto = "tcp"
		}
		lo, hi, _ := strings.Cut(num, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			continue
		}
		lp := project.LinkPort{Port: uint16(a), Proto: proto}
		if hi != "" {
			if b, err := strconv.ParseUint(hi, 10, 16); err == nil && b >= a {
				lp.End = uint16(b)
			}
		}
		out = append(out, lp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Proto < out[j].Proto
	})
	return out
}

// linkTargets resolves --link NAME[:ALIAS]: the linked container must run
// on one of this container's networks. It returns the env vars to add and
// the /etc/hosts lines (alias, name), as Docker's legacy links give.
func (g *globals) linkTargets(ctx context.Context, rt *linux.Runtime, s runtime.ContainerSpec, links []string) ([]string, []runtime.HostEntry, error) {
	var env []string
	var hosts []runtime.HostEntry
	for _, l := range links {
		name, alias, _ := strings.Cut(l, ":")
		name = strings.TrimPrefix(name, "/")
		if alias == "" {
			alias = name
		}
		t, err := rt.Find(name)
		if err != nil {
			return nil, nil, fmt.Errorf("--link %s: %w", l, err)
		}
		tm, err := t.Meta()
		if err != nil {
			return nil, nil, err
		}
		info, err := t.Info(ctx)
		if err != nil {
			return nil, nil, err
		}
		if info.Status != runtime.StatusRunning {
			return nil, nil, errUsage("--link %s: container %s is not running; start it first", l, tm.Name)
		}
		tn, err := t.Networking(ctx)
		if err != nil {
			return nil, nil, err
		}
		var imageExpose, published []string
		if img, err := g.imageConfigOf(ctx, tm.Spec.ImageRef); err == nil {
			for p := range img.ExposedPorts {
				imageExpose = append(imageExpose, p)
			}
		}
		for _, p := range tm.Spec.Ports {
			published = append(published, fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol))
		}
		e, h, err := reconcile.LinkVars(s, alias, reconcile.LinkTarget{Name: tm.Name, Networking: tn,
			Ports: reconcile.LinkPorts(imageExpose, tm.Spec.Expose, published), Env: tm.Spec.OCI.Process.Env})
		if err != nil {
			return nil, nil, usageError{fmt.Errorf("--link %s: %w", l, err)}
		}
		env = append(env, e...)
		hosts = append(hosts, h)
	}
	return env, hosts, nil
}

// imageConfigOf is the config of a stored image.
func (g *globals) imageConfigOf(ctx context.Context, ref string) (imageConfig, error) {
	_, store, err := g.openRuntime()
	if err != nil {
		return imageConfig{}, err
	}
	img, err := store.Get(ctx, ref)
	if err != nil {
		return imageConfig{}, err
	}
	return img.Config.Config, nil
}
