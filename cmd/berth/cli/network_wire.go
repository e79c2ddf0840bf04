package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/network"
	"berth.dev/berth/network/bridge"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

// DefaultNetwork is the network a container run without --network joins,
// as Docker's "bridge".
const DefaultNetwork = "bridge"

// openNetworks opens the bridge network manager of the state root.
func (g *globals) openNetworks() (*bridge.Manager, error) {
	root, err := state.Open(g.stateRoot())
	if err != nil {
		return nil, err
	}
	o := bridge.Options{Notify: func(msg string) { fmt.Fprintln(g.stderr, msg) }}
	if p := g.env["BERTH_NET_POOL"]; p != "" {
		pool, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, errdefs.Invalidf("BERTH_NET_POOL=%q is not a subnet such as 10.89.0.0/16", p)
		}
		o.Pool = pool.Masked()
	}
	o.Exists = func(id string) bool {
		dir, err := root.ContainerDir(id)
		if err != nil {
			return false
		}
		_, err = os.Stat(filepath.Join(dir, linux.MetaFile))
		return err == nil
	}
	return bridge.New(root, o)
}

// ensureDefaultNetwork creates the default network on first use.
func ensureDefaultNetwork(ctx context.Context, nm network.Manager) error {
	if _, err := nm.Inspect(ctx, DefaultNetwork); err == nil {
		return nil
	} else if !errdefs.IsNotFound(err) {
		return err
	}
	_, err := nm.Create(ctx, network.Spec{Name: DefaultNetwork, Labels: map[string]string{"berth.default": "true"}})
	return err
}

// connect attaches a container to the networks its spec asks for (again:
// attaching is idempotent) and records the endpoints for its start. Link
// hosts are kept from an earlier record.
func connect(ctx context.Context, nm network.Manager, c runtime.Container, s runtime.ContainerSpec, hosts []runtime.HostEntry) error {
	path := c.NetNS()
	if path == "" || len(s.Networks) == 0 {
		return nil
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
			if es.IPv4, err = netip.ParseAddr(na.IPv4); err != nil {
				return errdefs.Invalidf("container %s: network %s: ip %q is not an IPv4 address", s.Name, na.Network, na.IPv4)
			}
		}
		if na.IPv6 != "" {
			if es.IPv6, err = netip.ParseAddr(na.IPv6); err != nil {
				return errdefs.Invalidf("container %s: network %s: ip6 %q is not an IPv6 address", s.Name, na.Network, na.IPv6)
			}
		}
		ep, err := nm.Attach(ctx, na.Network, es)
		if err != nil {
			return fmt.Errorf("container %s: %w", s.Name, err)
		}
		n, err := nm.Inspect(ctx, na.Network)
		if err != nil {
			return err
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

// disconnect forgets a removed container's endpoints on every network it
// asked for (its veths go with its namespace).
func disconnect(ctx context.Context, nm *bridge.Manager, name string, s runtime.ContainerSpec) error {
	var errs []error
	for _, na := range s.Networks {
		if err := nm.Forget(ctx, na.Network, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startNetworked attaches the container and starts it.
func (g *globals) startNetworked(ctx context.Context, c *linux.Container, attach bool) error {
	m, err := c.Meta()
	if err != nil {
		return err
	}
	if len(m.Spec.Networks) > 0 {
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.Status != runtime.StatusRunning && info.Status != runtime.StatusPaused {
			nm, err := g.openNetworks()
			if err != nil {
				return err
			}
			if err := connect(ctx, nm, c, m.Spec, nil); err != nil {
				return err
			}
		}
	}
	if attach {
		return c.StartAttach(ctx)
	}
	return c.Start(ctx)
}

// removeNetworked removes a container and its endpoints.
func (g *globals) removeNetworked(ctx context.Context, c *linux.Container, o runtime.RemoveOptions) error {
	m, err := c.Meta()
	if err != nil {
		return err
	}
	if err := c.Remove(ctx, o); err != nil {
		return err
	}
	if len(m.Spec.Networks) == 0 {
		return nil
	}
	nm, err := g.openNetworks()
	if err != nil {
		return err
	}
	return disconnect(ctx, nm, m.Name, m.Spec)
}
