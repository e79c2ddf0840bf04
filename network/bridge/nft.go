package bridge

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"berth.dev/berth/network/netnames"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// syncRules rewrites the root's nftables table (family inet) from every
// network, in one netlink batch, so the kernel sees the old rules or the
// new ones and never a half. With no networks left the table is deleted.
//
//	forward (filter, policy accept):
//	  iifname BR oifname BR accept                  traffic inside a network
//	  iifname BR drop; oifname BR drop               internal: true, nothing in or out
//	  iifname BRa oifname BRb drop                   networks are isolated from each other
//	postrouting (nat):
//	  ip saddr SUBNET oifname != BR masquerade       egress of non-internal networks
func (m *Manager) syncRules() error {
	names, err := m.names()
	if err != nil {
		return err
	}
	type netRules struct {
		bridge   string
		internal bool
		v4, v6   netip.Prefix
	}
	var nets []netRules
	for _, n := range names {
		r, l, err := m.load(n)
		if err != nil {
			continue
		}
		nr := netRules{bridge: r.Bridge, internal: r.Spec.Internal, v4: l.V4.Prefix}
		if l.V6 != nil {
			nr.v6 = l.V6.Prefix
		}
		nets = append(nets, nr)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: netnames.Table(m.root.Path)}
	c.AddTable(t)
	c.DelTable(t)
	if len(nets) > 0 {
		c.AddTable(t)
		accept := nftables.ChainPolicyAccept
		fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
		post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
		rule := func(ch *nftables.Chain, parts ...[]expr.Any) {
			var e []expr.Any
			for _, p := range parts {
				e = append(e, p...)
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e})
		}
		for _, n := range nets {
			rule(fwd, ifname(unix.NFT_META_IIFNAME, n.bridge, true), ifname(unix.NFT_META_OIFNAME, n.bridge, true), verdict(expr.VerdictAccept))
		}
		for _, n := range nets {
			if n.internal {
				rule(fwd, ifname(unix.NFT_META_IIFNAME, n.bridge, true), verdict(expr.VerdictDrop))
				rule(fwd, ifname(unix.NFT_META_OIFNAME, n.bridge, true), verdict(expr.VerdictDrop))
			}
		}
		for _, a := range nets {
			for _, b := range nets {
				if a.bridge != b.bridge {
					rule(fwd, ifname(unix.NFT_META_IIFNAME, a.bridge, true), ifname(unix.NFT_META_OIFNAME, b.bridge, true), verdict(expr.VerdictDrop))
				}
			}
		}
		for _, n := range nets {
			if n.internal {
				continue
			}
			for _, p := range []netip.Prefix{n.v4, n.v6} {
				if p.IsValid() {
					rule(post, saddrIn(p), ifname(unix.NFT_META_OIFNAME, n.bridge, false), []expr.Any{&expr.Masq{}})
				}
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", t.Name, err)
	}
	egress := false
	for _, n := range nets {
		egress = egress || !n.internal
	}
	return m.ensureForwarding(egress)
}

// ensureForwarding turns on IPv4 forwarding when a network needs NAT, and
// says so: it is a host setting berth changes (and, like Docker, leaves on).
func (m *Manager) ensureForwarding(need bool) error {
	if !need {
		return nil
	}
	const p = "/proc/sys/net/ipv4/ip_forward"
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable IPv4 forwarding (%s), which containers need to reach outside: %w", p, err)
	}
	m.note("berth: set net.ipv4.ip_forward=1 (was 0) so containers on bridge networks can reach outside through NAT")
	return nil
}

// ifname matches (eq) or excludes an interface by exact name.
func ifname(key uint32, name string, eq bool) []expr.Any {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	op := expr.CmpOpEq
	if !eq {
		op = expr.CmpOpNeq
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKey(key), Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func saddrIn(p netip.Prefix) []expr.Any {
	proto, off, ln := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if p.Addr().Is6() {
		proto, off, ln = unix.NFPROTO_IPV6, 8, 16
	}
	mask := net.CIDRMask(p.Bits(), p.Addr().BitLen())
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: ln},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: ln, Mask: mask, Xor: make([]byte, ln)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}
