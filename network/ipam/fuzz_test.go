package ipam

import (
	"net/netip"
	"testing"

	"berth.dev/berth/internal/errdefs"
)

// fuzzSubnets are the small subnets FuzzAllocate plays on; the first input
// byte picks one.
var fuzzSubnets = []struct{ prefix, gw, rng string }{
	{"10.0.0.0/29", "", ""},
	{"10.0.0.0/28", "10.0.0.9", ""},
	{"10.0.0.0/30", "", ""},
	{"10.0.0.0/28", "", "10.0.0.8/29"},
	{"10.0.0.0/28", "10.0.0.14", "10.0.0.12/30"},
	{"fd00::/125", "", ""},
	{"fd00::/124", "fd00::f", "fd00::8/125"},
	{"fd00::/126", "", ""},
}

// FuzzAllocate runs a random script of Allocate and Release on a small
// subnet. Each op is two bytes: the first picks release (high bit) or
// allocate and the endpoint name (low 3 bits); for an allocate the second
// is 0 for a dynamic address or 1+offset of a static one in the subnet
// (offsets past the subnet make addresses outside it). It checks that no
// lease is ever the network, broadcast or gateway address, that no two
// names share an address, that dynamic addresses are the lowest free of the
// range, and that failures are conflicts or invalid input.
func FuzzAllocate(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 2, 0, 3, 0, 0x81, 0, 4, 0})
	f.Fuzz(fuzzAllocate)
}

// fuzzMaxOps bounds a script's length, so that an execution (and the
// fuzzer's minimising of a new input) stays cheap.
const fuzzMaxOps = 128

func fuzzAllocate(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	if len(data) > 1+2*fuzzMaxOps {
		data = data[:1+2*fuzzMaxOps]
	}
	cfg := fuzzSubnets[int(data[0])%len(fuzzSubnets)]
	s := mustSubnet(t, cfg.prefix, cfg.gw, cfg.rng)
	base := s.Prefix.Addr()
	size := 1 << (s.Prefix.Addr().BitLen() - s.Prefix.Bits())
	nth := func(i int) netip.Addr {
		a := base
		for range i {
			a = a.Next()
		}
		return a
	}
	for i := 1; i+1 < len(data); i += 2 {
		name := string(rune('a' + data[i]&7))
		if data[i]&0x80 != 0 {
			s.Release(name)
			if _, ok := s.Leases[name]; ok {
				t.Fatalf("%q leased after Release", name)
			}
			continue
		}
		var static netip.Addr
		if data[i+1] != 0 {
			static = nth(int(data[i+1]-1) % (2 * size))
		}
		before, had := s.Leases[name]
		lowest := lowestFree(s)
		got, err := s.Allocate(name, static)
		after, has := s.Leases[name]
		switch {
		case err != nil:
			if !errdefs.IsConflict(err) && !errdefs.IsInvalid(err) {
				t.Fatalf("Allocate(%q, %v): unclassified error %v", name, static, err)
			}
			if has != had || after != before {
				t.Fatalf("failed Allocate(%q, %v) changed the lease", name, static)
			}
			if !had && !static.IsValid() && lowest.IsValid() {
				t.Fatalf("Allocate(%q) failed (%v) with %v free", name, err, lowest)
			}
		case had:
			if got != before {
				t.Fatalf("Allocate(%q) = %v, leased %v", name, got, before)
			}
		case !static.IsValid():
			if got != lowest {
				t.Fatalf("Allocate(%q) = %v, lowest free is %v", name, got, lowest)
			}
		default:
			if got != static {
				t.Fatalf("Allocate(%q, %v) = %v", name, static, got)
			}
		}
		if err == nil && after != got {
			t.Fatalf("Allocate(%q) = %v but the lease is %v", name, got, after)
		}
		holders := map[netip.Addr]string{}
		for n, a := range s.Leases {
			if !s.Prefix.Contains(a) || a == base || a == s.Gateway || a.Is4() && a == nth(size-1) {
				t.Fatalf("%q has reserved or foreign address %v in %+v", n, a, s)
			}
			if h, dup := holders[a]; dup {
				t.Fatalf("%q and %q share %v", n, h, a)
			}
			holders[a] = n
		}
	}
}

// lowestFree is the reference: the first address of the range, in order,
// that is not reserved or leased (the zero Addr when there is none).
func lowestFree(s *Subnet) netip.Addr {
	r := s.Range
	if !r.IsValid() {
		r = s.Prefix
	}
	leased := map[netip.Addr]bool{}
	for _, a := range s.Leases {
		leased[a] = true
	}
	for a := r.Addr(); r.Contains(a); a = a.Next() {
		if a != s.Prefix.Addr() && a != s.Gateway && !(a.Is4() && a == lastAddr(s.Prefix)) && !leased[a] {
			return a
		}
	}
	return netip.Addr{}
}
