package ipam

import (
	"encoding/binary"
	"maps"
	"math/bits"
	"net/netip"

	"berth.dev/berth/internal/errdefs"
)

// Subnet is the address allocation state of one network, kept by the caller
// in its JSON state file. The field tags are part of that file's format.
//
// Subnet is not safe for concurrent use; the caller serialises access with
// its state lock.
type Subnet struct {
	Prefix  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	// Range is where dynamic addresses come from (compose ip_range); the
	// zero Prefix means the whole subnet. Static addresses may lie anywhere
	// in Prefix.
	Range  netip.Prefix          `json:"ip_range,omitzero"`
	Leases map[string]netip.Addr `json:"leases"` // endpoint name → address
}

// NewSubnet validates a network's subnet, gateway and ip_range and returns
// its empty allocation state. prefix must be in masked form
// (10.0.0.0/24, not 10.0.0.7/24) and leave room for the gateway and at least
// one endpoint (IPv4 /30, IPv6 /126 at the smallest). A zero gateway is the
// subnet's first host address (.1, ::1); otherwise it must lie in the subnet
// and be neither its network address nor, for IPv4, its broadcast address.
// A non-zero ipRange must be masked and lie inside the subnet. Errors wrap
// errdefs.ErrInvalid and name the offending value.
func NewSubnet(prefix netip.Prefix, gateway netip.Addr, ipRange netip.Prefix) (*Subnet, error) {
	if !prefix.IsValid() {
		return nil, errdefs.Invalidf("subnet is not set")
	}
	if prefix.Addr().Is4In6() {
		return nil, errdefs.Invalidf("subnet %s is an IPv4-mapped IPv6 prefix; write it as IPv4", prefix)
	}
	if prefix.Addr().Zone() != "" {
		return nil, errdefs.Invalidf("subnet %s has a zone", prefix)
	}
	if m := prefix.Masked(); m != prefix {
		return nil, errdefs.Invalidf("subnet %s has host bits set; did you mean %s?", prefix, m)
	}
	if smallest := prefix.Addr().BitLen() - 2; prefix.Bits() > smallest {
		return nil, errdefs.Invalidf("subnet %s is too small for a gateway and an endpoint (/%d at the smallest)", prefix, smallest)
	}
	s := &Subnet{Prefix: prefix, Gateway: gateway, Leases: map[string]netip.Addr{}}
	if !gateway.IsValid() {
		s.Gateway = prefix.Addr().Next()
	} else {
		if gateway.Is4In6() && prefix.Addr().Is4() {
			s.Gateway = gateway.Unmap()
		}
		switch {
		case s.Gateway.Zone() != "":
			return nil, errdefs.Invalidf("gateway %s has a zone", gateway)
		case !prefix.Contains(s.Gateway):
			return nil, errdefs.Invalidf("gateway %s is outside subnet %s", gateway, prefix)
		case s.Gateway == prefix.Addr():
			return nil, errdefs.Invalidf("gateway %s is the network address of subnet %s", gateway, prefix)
		case s.isBroadcast(s.Gateway):
			return nil, errdefs.Invalidf("gateway %s is the broadcast address of subnet %s", gateway, prefix)
		}
	}
	if ipRange.IsValid() {
		switch {
		case ipRange.Masked() != ipRange:
			return nil, errdefs.Invalidf("ip_range %s has host bits set; did you mean %s?", ipRange, ipRange.Masked())
		case ipRange.Addr().Is4() != prefix.Addr().Is4() || ipRange.Bits() < prefix.Bits() || !prefix.Contains(ipRange.Addr()):
			return nil, errdefs.Invalidf("ip_range %s is outside subnet %s", ipRange, prefix)
		}
		s.Range = ipRange
	}
	return s, nil
}

// isBroadcast reports whether a is the IPv4 broadcast address of the subnet.
// IPv6 has no broadcast: its last address is an ordinary host address.
func (s *Subnet) isBroadcast(a netip.Addr) bool {
	return a.Is4() && a == lastAddr(s.Prefix)
}

func (s *Subnet) pool() netip.Prefix {
	if s.Range.IsValid() {
		return s.Range
	}
	return s.Prefix
}

// Allocate returns the address of endpoint name, leasing one if it has none.
// It is idempotent per name: an existing lease is returned, and asking for a
// different static address than the leased one is errdefs.ErrConflict
// (release the name first).
//
// A non-zero static address is leased as given. It must lie in the subnet
// (not necessarily in Range, as with Docker's ip_range) and not be the
// network or broadcast address (errdefs.ErrInvalid); the gateway or an
// address leased to another name is errdefs.ErrConflict, naming the holder.
//
// Otherwise the lowest free address of Range is leased, skipping the
// network address, the IPv4 broadcast address and the gateway, so a
// released address is the first one handed out again. A full range is
// errdefs.ErrConflict.
//
// Allocate costs O(len(Leases)) whatever the size of the range.
func (s *Subnet) Allocate(name string, static netip.Addr) (netip.Addr, error) {
	if name == "" {
		return netip.Addr{}, errdefs.Invalidf("endpoint name is empty")
	}
	if static.IsValid() && static.Is4In6() && s.Prefix.Addr().Is4() {
		static = static.Unmap()
	}
	if have, ok := s.Leases[name]; ok {
		if static.IsValid() && static != have {
			return netip.Addr{}, errdefs.Conflictf("endpoint %q already has address %s in subnet %s, not %s", name, have, s.Prefix, static)
		}
		return have, nil
	}
	if s.Leases == nil {
		s.Leases = map[string]netip.Addr{}
	}
	if static.IsValid() {
		if err := s.checkStatic(name, static); err != nil {
			return netip.Addr{}, err
		}
		s.Leases[name] = static
		return static, nil
	}

	// Only len(Leases)+3 addresses (leases, network, gateway, broadcast)
	// can be taken, so the lowest free one is among the range's first
	// len(Leases)+4: a bitmap of those offsets is the used-set.
	r := s.pool()
	start := r.Addr()
	n := uint64(len(s.Leases)) + 4
	used := make([]uint64, (n+63)/64)
	for _, a := range s.Leases {
		if off, ok := offset(start, a); ok && off < n {
			used[off/64] |= 1 << (off % 64)
		}
	}
	network, bcast := s.Prefix.Addr(), netip.Addr{}
	if network.Is4() {
		bcast = lastAddr(s.Prefix)
	}
	a := start
	for off := uint64(0); off < n && a.IsValid() && r.Contains(a); off, a = off+1, a.Next() {
		if used[off/64]&(1<<(off%64)) != 0 || a == network || a == s.Gateway || a == bcast {
			continue
		}
		s.Leases[name] = a
		return a, nil
	}
	return netip.Addr{}, errdefs.Conflictf("no free address left in %s of subnet %s (%d leases)", r, s.Prefix, len(s.Leases))
}

// offset returns a-start when a is not below start and the difference fits
// in 64 bits (a borrow out of the high word means a is below start).
func offset(start, a netip.Addr) (uint64, bool) {
	if a.Is4() != start.Is4() {
		return 0, false
	}
	x, y := a.As16(), start.As16()
	xh, xl := binary.BigEndian.Uint64(x[:8]), binary.BigEndian.Uint64(x[8:])
	yh, yl := binary.BigEndian.Uint64(y[:8]), binary.BigEndian.Uint64(y[8:])
	lo, borrow := bits.Sub64(xl, yl, 0)
	if hi, _ := bits.Sub64(xh, yh, borrow); hi != 0 {
		return 0, false
	}
	return lo, true
}

func (s *Subnet) checkStatic(name string, a netip.Addr) error {
	switch {
	case a.Zone() != "" || !s.Prefix.Contains(a):
		return errdefs.Invalidf("address %s for endpoint %q is outside subnet %s", a, name, s.Prefix)
	case a == s.Prefix.Addr():
		return errdefs.Invalidf("address %s for endpoint %q is the network address of subnet %s", a, name, s.Prefix)
	case s.isBroadcast(a):
		return errdefs.Invalidf("address %s for endpoint %q is the broadcast address of subnet %s", a, name, s.Prefix)
	case a == s.Gateway:
		return errdefs.Conflictf("address %s for endpoint %q is the gateway of subnet %s", a, name, s.Prefix)
	}
	for holder, b := range s.Leases {
		if b == a {
			return errdefs.Conflictf("address %s for endpoint %q is already leased to %q", a, name, holder)
		}
	}
	return nil
}

// Release frees the address of endpoint name; releasing a name without a
// lease does nothing.
func (s *Subnet) Release(name string) { delete(s.Leases, name) }

// Clone returns a copy of s that shares nothing with it (nil for nil).
func (s *Subnet) Clone() *Subnet {
	if s == nil {
		return nil
	}
	c := *s
	c.Leases = maps.Clone(s.Leases)
	if c.Leases == nil {
		c.Leases = map[string]netip.Addr{}
	}
	return &c
}
