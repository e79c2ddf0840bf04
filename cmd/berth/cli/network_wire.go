package cli

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/network"
	"berth.dev/berth/network/bridge"
	"berth.dev/berth/reconcile"
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

// connect attaches a container to the networks its spec asks for (see
// reconcile.Connect: the compose executor attaches the same way).
func connect(ctx context.Context, nm network.Manager, c runtime.Container, s runtime.ContainerSpec, hosts []runtime.HostEntry) error {
	return reconcile.Connect(ctx, nm, c, s, hosts)
}

// disconnect forgets a removed container's endpoints on every network it
// asked for (its veths go with its namespace).
func disconnect(ctx context.Context, nm *bridge.Manager, name string, s runtime.ContainerSpec) error {
	var nets []string
	for _, na := range s.Networks {
		nets = append(nets, na.Network)
	}
	return reconcile.Release(ctx, nm, name, nets)
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
