package shim

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"

	"berth.dev/berth/internal/state"
	"berth.dev/berth/network/dns"
	"berth.dev/berth/network/proxy"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
	"berth.dev/berth/runtime/linux/nsenter"
)

// netServers are the DNS server and port proxies a shim runs for its
// container, for as long as the shim lives (across restarts).
type netServers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	dns    *dns.Server
	ls     []*proxy.Listener
	ports  []runtime.PortMapping // as bound: ephemeral ports resolved
}

// startNetwork binds the published ports (in the host's namespace) and the
// embedded DNS (on 127.0.0.11:53 in the container's), before init starts:
// a port in use fails the start with a message naming it, and nothing runs.
func (s *shim) startNetwork() (*netServers, error) {
	ns := &netServers{}
	ctx, cancel := context.WithCancel(context.Background())
	ns.cancel = cancel
	fail := func(err error) (*netServers, error) {
		ns.stop()
		return nil, err
	}
	type bound struct {
		l       *proxy.Listener
		backend netip.AddrPort
	}
	var ls []bound
	for _, p := range s.cfg.Ports {
		backend, err := netip.ParseAddrPort(p.Backend)
		if err != nil {
			return fail(fmt.Errorf("port %d/%s: backend %q: %w", p.ContainerPort, p.Protocol, p.Backend, err))
		}
		l, err := proxy.Listen(proxy.Mapping{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
		if err != nil {
			return fail(err)
		}
		ls = append(ls, bound{l, backend})
		ns.ls = append(ns.ls, l)
		got := p.PortMapping
		got.HostPort = l.Addr().Port()
		ns.ports = append(ns.ports, got)
	}
	for _, b := range ls {
		ns.wg.Add(1)
		go func() {
			defer ns.wg.Done()
			b.l.Serve(ctx, b.backend)
		}()
	}
	if s.cfg.DNS != nil && s.cfg.NetNS != "" {
		var ups []netip.AddrPort
		for _, u := range s.cfg.DNS.Upstreams {
			if a, err := netip.ParseAddrPort(u); err == nil {
				ups = append(ups, a)
			}
		}
		srv, err := dns.New(dns.Config{Zones: s.cfg.DNS.Zones, Upstreams: ups, Alive: s.aliveFunc()})
		if err != nil {
			return fail(fmt.Errorf("embedded DNS: %w", err))
		}
		ns.dns = srv
		var udp net.PacketConn
		var tcp net.Listener
		addr := net.JoinHostPort(linux.EmbeddedDNS, "53")
		err = nsenter.InNetNS(s.cfg.NetNS, func() (err error) {
			if udp, err = net.ListenPacket("udp4", addr); err != nil {
				return err
			}
			if tcp, err = net.Listen("tcp4", addr); err != nil {
				udp.Close()
			}
			return err
		})
		if err != nil {
			return fail(fmt.Errorf("embedded DNS on %s: %w", addr, err))
		}
		ns.wg.Add(1)
		go func() {
			defer ns.wg.Done()
			srv.Serve(ctx, udp, tcp)
			udp.Close()
			tcp.Close()
		}()
	}
	return ns, nil
}

func (ns *netServers) stop() {
	if ns == nil {
		return
	}
	ns.cancel()
	for _, l := range ns.ls {
		l.Close()
	}
	if ns.dns != nil {
		ns.dns.Close()
	}
	ns.wg.Wait()
}

// aliveFunc says whether a container (by ID) is running, from its
// state.json, so the DNS answers only for running replicas.
func (s *shim) aliveFunc() func(string) bool {
	return func(id string) bool {
		if id == s.id {
			return true
		}
		dir, err := s.root.ContainerDir(id)
		if err != nil {
			return false
		}
		var st linux.State
		if state.ReadJSON(filepath.Join(dir, linux.StateFile), &st) != nil {
			return false
		}
		return st.Status == "running" && st.Init.Alive()
	}
}
