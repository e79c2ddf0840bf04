package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/network"
	"berth.dev/berth/runtime"
)

func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network COMMAND",
		Short: "Manage networks",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newNetworkLsCmd(g), newNetworkCreateCmd(g), newNetworkRmCmd(g), newNetworkInspectCmd(g),
		newNetworkPruneCmd(g), newNetworkConnectCmd(g, true), newNetworkConnectCmd(g, false))
	return cmd
}

func newNetworkLsCmd(g *globals) *cobra.Command {
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nm, err := g.openNetworks()
			if err != nil {
				return err
			}
			nets, err := nm.List(cmd.Context(), network.Filter{})
			if err != nil {
				return err
			}
			switch {
			case quiet:
				for _, n := range nets {
					fmt.Fprintln(g.stdout, n.ID[:12])
				}
				return nil
			case format == "json":
				return jsonLines(g.stdout, nets, func(x network.Network) any { return networkRow(x) })
			case format != "" && format != "table":
				return errUsage("--format %q: use table or json", format)
			}
			t := display.NewTable("NETWORK ID", "NAME", "DRIVER", "SUBNET", "GATEWAY", "INTERNAL", "CONTAINERS")
			for _, n := range nets {
				t.Row(n.ID[:12], n.Name, "bridge", n.Subnet.String(), n.Gateway.String(), strconv.FormatBool(n.Internal), strconv.Itoa(len(n.Endpoints)))
			}
			return t.Write(g.stdout)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "Format output: table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	return cmd
}

// networkRow is ls --format json, with Docker's field names.
func networkRow(n network.Network) map[string]any {
	labels := []string{}
	for k, v := range n.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	return map[string]any{"ID": n.ID[:12], "Name": n.Name, "Driver": "bridge", "Scope": "local",
		"Internal": strconv.FormatBool(n.Internal), "IPv6": strconv.FormatBool(n.EnableIPv6),
		"Labels": strings.Join(labels, ","), "CreatedAt": n.Created, "Subnet": n.Subnet.String()}
}

func newNetworkCreateCmd(g *globals) *cobra.Command {
	var subnet, gateway, ipRange, driver string
	var internal, ipv6 bool
	var labels, opts []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if driver != "" && driver != "bridge" {
				return errUsage("--driver %q: berth networks are Linux bridges (bridge)", driver)
			}
			s := network.Spec{Name: args[0], Internal: internal, EnableIPv6: ipv6, Labels: map[string]string{}}
			var err error
			parse := func(flag, v string, p *netip.Prefix) error {
				if v == "" {
					return nil
				}
				if *p, err = netip.ParsePrefix(v); err != nil || p.Masked() != *p {
					return errUsage("--%s %q: give a subnet in CIDR form, e.g. 10.90.0.0/24", flag, v)
				}
				return nil
			}
			if err := parse("subnet", subnet, &s.Subnet); err != nil {
				return err
			}
			if err := parse("ip-range", ipRange, &s.IPRange); err != nil {
				return err
			}
			if gateway != "" {
				if s.Gateway, err = netip.ParseAddr(gateway); err != nil {
					return errUsage("--gateway %q: give an IPv4 address", gateway)
				}
			}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				s.Labels[k] = v
			}
			for _, o := range opts {
				k, v, _ := strings.Cut(o, "=")
				switch k {
				case "com.docker.network.bridge.name":
					s.BridgeName = v
				case "com.docker.network.driver.mtu":
					if s.MTU, err = strconv.Atoi(v); err != nil {
						return errUsage("--opt %s: the MTU must be a number", o)
					}
				default:
					return errUsage("--opt %q: berth knows com.docker.network.bridge.name and com.docker.network.driver.mtu", o)
				}
			}
			nm, err := g.openNetworks()
			if err != nil {
				return err
			}
			if _, err := nm.Inspect(cmd.Context(), s.Name); err == nil {
				return errdefs.Conflictf("network with name %s already exists", s.Name)
			}
			n, err := nm.Create(cmd.Context(), s)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, n.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "bridge", "Driver to manage the Network")
	f.StringVar(&subnet, "subnet", "", "Subnet in CIDR format that represents a network segment")
	f.StringVar(&gateway, "gateway", "", "IPv4 Gateway for the master subnet")
	f.StringVar(&ipRange, "ip-range", "", "Allocate container ip from a sub-range")
	f.BoolVar(&internal, "internal", false, "Restrict external access to the network")
	f.BoolVar(&ipv6, "ipv6", false, "Enable IPv6 networking")
	f.StringArrayVar(&labels, "label", nil, "Set metadata on a network")
	f.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options")
	return cmd
}

func newNetworkRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nm, err := g.openNetworks()
			if err != nil {
				return err
			}
			var errs []error
			for _, n := range args {
				if _, err := nm.Inspect(cmd.Context(), n); err != nil {
					errs = append(errs, err)
					continue
				}
				if err := nm.Remove(cmd.Context(), n); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(g.stdout, n)
			}
			return errors.Join(errs...)
		},
	}
}

func newNetworkInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nm, err := g.openNetworks()
			if err != nil {
				return err
			}
			var out []any
			for _, name := range args {
				n, err := nm.Inspect(cmd.Context(), name)
				if err != nil {
					return err
				}
				ctrs := map[string]any{}
				for _, e := range n.Endpoints {
					c := map[string]any{"Name": e.Name, "MacAddress": e.MAC, "IPv4Address": fmt.Sprintf("%s/%d", e.IPv4, e.Prefix), "Aliases": e.Aliases, "HostInterface": e.HostIf}
					if e.IPv6.IsValid() {
						c["IPv6Address"] = e.IPv6.String()
					}
					ctrs[e.ContainerID] = c
				}
				ipam := []map[string]string{{"Subnet": n.Subnet.String(), "Gateway": n.Gateway.String()}}
				if n.IPRange.IsValid() {
					ipam[0]["IPRange"] = n.IPRange.String()
				}
				if n.Subnet6.IsValid() {
					ipam = append(ipam, map[string]string{"Subnet": n.Subnet6.String(), "Gateway": n.Gateway6.String()})
				}
				out = append(out, map[string]any{"Name": n.Name, "Id": n.ID, "Created": n.Created, "Driver": "bridge", "Scope": "local",
					"EnableIPv6": n.EnableIPv6, "Internal": n.Internal, "IPAM": map[string]any{"Driver": "default", "Config": ipam},
					"Options": map[string]string{"com.docker.network.bridge.name": n.Bridge, "com.docker.network.driver.mtu": strconv.Itoa(mtuOf(n))},
					"Labels":  n.Labels, "Containers": ctrs})
			}
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		},
	}
}

func mtuOf(n network.Network) int {
	if n.MTU == 0 {
		return 1500
	}
	return n.MTU
}

func newNetworkPruneCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nm, err := g.openNetworks()
			if err != nil {
				return err
			}
			nets, err := nm.List(cmd.Context(), network.Filter{})
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "Deleted Networks:")
			for _, n := range nets {
				if len(n.Endpoints) > 0 {
					continue
				}
				if err := nm.Remove(cmd.Context(), n.Name); err == nil {
					fmt.Fprintln(g.stdout, n.Name)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}

func newNetworkConnectCmd(g *globals, connectIt bool) *cobra.Command {
	var aliases []string
	var ip, ip6 string
	var force bool
	use, short := "connect [OPTIONS] NETWORK CONTAINER", "Connect a container to a network"
	if !connectIt {
		use, short = "disconnect [OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, _, err := g.openRuntime()
			if err != nil {
				return err
			}
			nm, err := g.openNetworks()
			if err != nil {
				return err
			}
			if _, err := nm.Inspect(ctx, args[0]); err != nil {
				return err
			}
			c, err := rt.Find(args[1])
			if err != nil {
				return err
			}
			m, err := c.Meta()
			if err != nil {
				return err
			}
			var nets []runtime.NetworkAttachment
			found := false
			for _, na := range m.Spec.Networks {
				if na.Network == args[0] {
					found = true
					if !connectIt {
						continue
					}
				}
				nets = append(nets, na)
			}
			if connectIt {
				if found {
					return errdefs.Conflictf("container %s is already connected to network %s", m.Name, args[0])
				}
				nets = append(nets, runtime.NetworkAttachment{Network: args[0], Aliases: aliases, IPv4: ip, IPv6: ip6})
			} else if !found {
				return errdefs.NotFoundf("container %s is not connected to network %s", m.Name, args[0])
			}
			if err := c.SetNetworks(ctx, nets); err != nil {
				return err
			}
			if !connectIt {
				if err := nm.Detach(ctx, args[0], m.Name); err != nil {
					return err
				}
			}
			m.Spec.Networks = nets
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			if info.Status == runtime.StatusRunning || info.Status == runtime.StatusPaused {
				if err := connect(ctx, nm, c, m.Spec, nil); err != nil {
					return err
				}
				if connectIt {
					fmt.Fprintf(g.stderr, "berth: %s is connected; its name lookups cover %s from its next start\n", m.Name, args[0])
				}
			}
			return nil
		},
	}
	if connectIt {
		cmd.Flags().StringArrayVar(&aliases, "alias", nil, "Add network-scoped alias for the container")
		cmd.Flags().StringVar(&ip, "ip", "", "IPv4 address")
		cmd.Flags().StringVar(&ip6, "ip6", "", "IPv6 address")
	} else {
		cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	}
	return cmd
}

// portsString is ps's PORTS column: 127.0.0.1:8080->80/tcp, ...
func portsString(ps []runtime.PortMapping) string {
	var out []string
	for _, p := range ps {
		host := p.HostIP
		if host == "" {
			host = "0.0.0.0"
		}
		out = append(out, fmt.Sprintf("%s->%d/%s", net.JoinHostPort(host, strconv.Itoa(int(p.HostPort))), p.ContainerPort, p.Protocol))
	}
	return strings.Join(out, ", ")
}

func newPortCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.findContainer(args[0])
			if err != nil {
				return err
			}
			info, err := c.Info(cmd.Context())
			if err != nil {
				return err
			}
			want, proto := "", "tcp"
			if len(args) == 2 {
				want, proto, _ = strings.Cut(args[1], "/")
				if proto == "" {
					proto = "tcp"
				}
			}
			n := 0
			for _, p := range info.Ports {
				if want != "" && (strconv.Itoa(int(p.ContainerPort)) != want || p.Protocol != proto) {
					continue
				}
				host := p.HostIP
				if host == "" {
					host = "0.0.0.0"
				}
				addr := net.JoinHostPort(host, strconv.Itoa(int(p.HostPort)))
				if want != "" {
					fmt.Fprintln(g.stdout, addr)
				} else {
					fmt.Fprintf(g.stdout, "%d/%s -> %s\n", p.ContainerPort, p.Protocol, addr)
				}
				n++
			}
			if want != "" && n == 0 {
				return errdefs.NotFoundf("no public port '%s/%s' published for %s", want, proto, info.Name)
			}
			return nil
		},
	}
}
