// Package ipam is berth's address management: it picks a subnet for a new
// network from an address pool and hands out endpoint addresses inside a
// network's subnet.
//
// The package is pure: it reads no files and makes no system calls. The
// caller (network/bridge) keeps one Subnet per network in its JSON state,
// holds the state lock around Allocate and Release, and gathers the host's
// routes and interface addresses (over netlink) that NextSubnet must avoid.
package ipam

import (
	"net/netip"
	"slices"

	"berth.dev/berth/internal/errdefs"
)

// DefaultPool is the IPv4 pool networks without a subnet get a /24 from.
// The caller may override it (BERTH_NET_POOL).
var DefaultPool = netip.MustParsePrefix("10.89.0.0/16")

// DefaultPool6 is the IPv6 pool (a fixed unique local /48) networks with
// enable_ipv6 and no IPv6 subnet get a /64 from.
var DefaultPool6 = netip.MustParsePrefix("fd00:b17e::/48")

// NextSubnet returns the first /bits subnet of pool, in address order, that
// overlaps none of used (the subnets of other networks) and none of avoid
// (the host's routes and interface networks). Prefixes of the other address
// family and invalid prefixes in used or avoid are ignored. When every
// candidate overlaps, the error wraps errdefs.ErrConflict.
func NextSubnet(pool netip.Prefix, bits int, used, avoid []netip.Prefix) (netip.Prefix, error) {
	if !pool.IsValid() {
		return netip.Prefix{}, errdefs.Invalidf("address pool is not set")
	}
	pool = pool.Masked()
	if bits < pool.Bits() || bits > pool.Addr().BitLen() {
		return netip.Prefix{}, errdefs.Invalidf("cannot carve a /%d subnet out of address pool %s", bits, pool)
	}
	// The blocking prefixes of the pool's family, in address order (a
	// prefix before the smaller ones it contains). Prefixes nest or are
	// disjoint, so the first blocker that does not end before a candidate
	// decides whether the candidate is free; a rejected candidate moves
	// past that blocker or past itself, whichever ends later. The search
	// is O(n log n) in the number of blockers however large the pool is.
	var block []netip.Prefix
	for _, list := range [][]netip.Prefix{used, avoid} {
		for _, p := range list {
			if p = unmapPrefix(p); p.IsValid() && p.Addr().Is4() == pool.Addr().Is4() {
				block = append(block, p.Masked())
			}
		}
	}
	slices.SortFunc(block, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	addr := pool.Addr()
	for j := 0; addr.IsValid() && pool.Contains(addr); {
		cand := netip.PrefixFrom(addr, bits)
		for j < len(block) && lastAddr(block[j]).Less(addr) {
			j++
		}
		if j == len(block) || !block[j].Overlaps(cand) {
			return cand, nil
		}
		skip := cand
		if block[j].Bits() < bits {
			skip = block[j]
		}
		addr = lastAddr(skip).Next() // invalid past the end of the address space
	}
	hint := "set BERTH_NET_POOL to a larger or different range, or remove networks you no longer use"
	if pool.Addr().Is6() {
		hint = "give the network an explicit IPv6 subnet, or remove networks you no longer use"
	}
	return netip.Prefix{}, errdefs.Conflictf("address pool %s has no free /%d subnet (%d networks, %d host routes and addresses to avoid); %s",
		pool, bits, countFamily(used, pool), countFamily(avoid, pool), hint)
}

func countFamily(list []netip.Prefix, pool netip.Prefix) int {
	n := 0
	for _, p := range list {
		if p = unmapPrefix(p); p.IsValid() && p.Addr().Is4() == pool.Addr().Is4() {
			n++
		}
	}
	return n
}

// Overlaps reports whether a and b share an address. Prefixes of different
// address families and invalid prefixes never overlap; an IPv4-mapped IPv6
// prefix is compared as the IPv4 prefix it maps.
func Overlaps(a, b netip.Prefix) bool {
	a, b = unmapPrefix(a), unmapPrefix(b)
	return a.IsValid() && b.IsValid() && a.Overlaps(b)
}

func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.IsValid() && p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// lastAddr is the highest address of p (the broadcast address of an IPv4
// subnet).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
