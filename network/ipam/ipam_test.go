package ipam

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"berth.dev/berth/internal/errdefs"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, pfx(s))
	}
	return out
}

func TestNextSubnet(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pool        string
		bits        int
		used, avoid []netip.Prefix
		want        string
	}{
		{"empty", "10.89.0.0/16", 24, nil, nil, "10.89.0.0/24"},
		{"skips used", "10.89.0.0/16", 24, pfxs("10.89.0.0/24", "10.89.1.0/24"), nil, "10.89.2.0/24"},
		{"fills a hole", "10.89.0.0/16", 24, pfxs("10.89.0.0/24", "10.89.2.0/24"), nil, "10.89.1.0/24"},
		{"host route /20", "10.89.0.0/16", 24, nil, pfxs("10.89.0.0/20"), "10.89.16.0/24"},
		{"host route and used", "10.89.0.0/16", 24, pfxs("10.89.16.0/24"), pfxs("10.89.0.0/20"), "10.89.17.0/24"},
		{"host address inside a candidate", "10.89.0.0/16", 24, nil, pfxs("10.89.0.77/32"), "10.89.1.0/24"},
		{"route covering the pool's start", "10.89.0.0/16", 24, nil, pfxs("10.0.0.0/9"), "ERR"},
		{"other family ignored", "10.89.0.0/16", 24, pfxs("fd00::/8"), pfxs("::/0"), "10.89.0.0/24"},
		{"invalid ignored", "10.89.0.0/16", 24, []netip.Prefix{{}}, nil, "10.89.0.0/24"},
		{"unmasked pool", "10.89.3.4/16", 24, nil, nil, "10.89.0.0/24"},
		{"unmasked used", "10.89.0.0/16", 24, pfxs("10.89.0.9/24"), nil, "10.89.1.0/24"},
		{"larger used network", "10.89.0.0/16", 24, pfxs("10.89.0.0/23"), nil, "10.89.2.0/24"},
		{"whole pool", "10.89.0.0/16", 16, nil, nil, "10.89.0.0/16"},
		{"whole pool used", "10.89.0.0/16", 16, pfxs("10.89.200.0/24"), nil, "ERR"},
		{"exhausted", "10.89.0.0/23", 24, pfxs("10.89.0.0/24"), pfxs("10.89.1.0/24"), "ERR"},
		{"end of address space", "255.255.255.0/24", 25, pfxs("255.255.255.0/25", "255.255.255.128/25"), nil, "ERR"},
		{"end of address space free", "255.255.255.0/24", 25, pfxs("255.255.255.0/25"), nil, "255.255.255.128/25"},
		{"ipv6 /64", "fd00:b17e::/48", 64, nil, nil, "fd00:b17e::/64"},
		{"ipv6 skips", "fd00:b17e::/48", 64, pfxs("fd00:b17e::/64", "fd00:b17e:0:1::/64"), pfxs("fd00:b17e:0:2::1/128"), "fd00:b17e:0:3::/64"},
		{"ipv6 route /56", "fd00:b17e::/48", 64, nil, pfxs("fd00:b17e::/56"), "fd00:b17e:0:100::/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NextSubnet(pfx(tc.pool), tc.bits, tc.used, tc.avoid)
			if tc.want == "ERR" {
				if !errdefs.IsConflict(err) {
					t.Fatalf("got %v, %v; want a conflict error", got, err)
				}
				if !strings.Contains(err.Error(), pfx(tc.pool).Masked().String()) {
					t.Errorf("error %q does not name the pool", err)
				}
				return
			}
			if err != nil || got != pfx(tc.want) {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestNextSubnetErrors(t *testing.T) {
	_, err := NextSubnet(pfx("10.89.0.0/16"), 24, pfxs("10.89.0.0/17"), pfxs("10.89.128.0/17"))
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "10.89.0.0/16") || !strings.Contains(err.Error(), "BERTH_NET_POOL") {
		t.Errorf("exhausted: %v", err)
	}
	for _, bits := range []int{8, 33, -1} {
		if _, err := NextSubnet(pfx("10.89.0.0/16"), bits, nil, nil); !errdefs.IsInvalid(err) {
			t.Errorf("bits %d: %v, want invalid", bits, err)
		}
	}
	if _, err := NextSubnet(netip.Prefix{}, 24, nil, nil); !errdefs.IsInvalid(err) {
		t.Errorf("zero pool: %v", err)
	}
}

// A pool with thousands of networks (and many routes) stays cheap: every
// rejected candidate skips past one blocking prefix.
func TestNextSubnetMany(t *testing.T) {
	var used []netip.Prefix
	for i := range 4000 {
		v := 4 * i
		used = append(used, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}), 30))
	}
	// 4000 /30s end at 10.0.62.127; a route takes the rest of that /24.
	got, err := NextSubnet(pfx("10.0.0.0/8"), 30, used, pfxs("10.0.62.128/25"))
	if err != nil || got != pfx("10.0.63.0/30") {
		t.Fatalf("got %v, %v", got, err)
	}
	got, err = NextSubnet(pfx("fd00:b17e::/48"), 64, nil, pfxs("fd00:b17e::/49"))
	if err != nil || got != pfx("fd00:b17e:0:8000::/64") {
		t.Fatalf("ipv6: got %v, %v", got, err)
	}
}

func TestOverlaps(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"10.0.0.0/24", "10.0.0.0/24", true},
		{"10.0.0.0/24", "10.0.0.128/25", true},
		{"10.0.0.0/8", "10.200.0.0/16", true},
		{"10.0.0.0/24", "10.0.1.0/24", false},
		{"10.0.0.5/24", "10.0.0.200/32", true}, // unmasked forms count by their network
		{"10.0.0.0/24", "::/0", false},
		{"::ffff:10.0.0.0/120", "10.0.0.7/32", true},
		{"fd00::/64", "fd00::1/128", true},
		{"fd00::/64", "fd00:0:0:1::/64", false},
	} {
		if got := Overlaps(pfx(tc.a), pfx(tc.b)); got != tc.want {
			t.Errorf("Overlaps(%s, %s) = %v", tc.a, tc.b, got)
		}
		if got := Overlaps(pfx(tc.b), pfx(tc.a)); got != tc.want {
			t.Errorf("Overlaps(%s, %s) = %v", tc.b, tc.a, got)
		}
	}
	if Overlaps(netip.Prefix{}, pfx("0.0.0.0/0")) {
		t.Error("zero prefix overlaps")
	}
}

func TestNewSubnet(t *testing.T) {
	for _, tc := range []struct {
		prefix, gw, rng string
		wantGW          string
		wantErr         string
	}{
		{prefix: "10.0.0.0/24", wantGW: "10.0.0.1"},
		{prefix: "10.0.0.0/24", gw: "10.0.0.254", wantGW: "10.0.0.254"},
		{prefix: "10.0.0.0/24", rng: "10.0.0.128/25", wantGW: "10.0.0.1"},
		{prefix: "10.0.0.0/24", rng: "10.0.0.0/24", wantGW: "10.0.0.1"},
		{prefix: "10.0.0.0/30", wantGW: "10.0.0.1"},
		{prefix: "fd00:b17e::/64", wantGW: "fd00:b17e::1"},
		{prefix: "fd00:b17e::/64", gw: "fd00:b17e::ffff:ffff:ffff:ffff", wantGW: "fd00:b17e::ffff:ffff:ffff:ffff"}, // no broadcast in IPv6
		{prefix: "10.0.0.0/24", gw: "::ffff:10.0.0.9", wantGW: "10.0.0.9"},
		{prefix: "", wantErr: "subnet is not set"},
		{prefix: "10.0.0.7/24", wantErr: "subnet 10.0.0.7/24 has host bits set; did you mean 10.0.0.0/24?"},
		{prefix: "10.0.0.0/31", wantErr: "subnet 10.0.0.0/31 is too small for a gateway and an endpoint (/30 at the smallest)"},
		{prefix: "fd00::/127", wantErr: "subnet fd00::/127 is too small for a gateway and an endpoint (/126 at the smallest)"},
		{prefix: "::ffff:10.0.0.0/120", wantErr: "subnet ::ffff:10.0.0.0/120 is an IPv4-mapped IPv6 prefix; write it as IPv4"},
		{prefix: "10.0.0.0/24", gw: "10.0.1.1", wantErr: "gateway 10.0.1.1 is outside subnet 10.0.0.0/24"},
		{prefix: "10.0.0.0/24", gw: "fd00::1", wantErr: "gateway fd00::1 is outside subnet 10.0.0.0/24"},
		{prefix: "10.0.0.0/24", gw: "10.0.0.0", wantErr: "gateway 10.0.0.0 is the network address of subnet 10.0.0.0/24"},
		{prefix: "10.0.0.0/24", gw: "10.0.0.255", wantErr: "gateway 10.0.0.255 is the broadcast address of subnet 10.0.0.0/24"},
		{prefix: "fd00::/64", gw: "fd00::", wantErr: "gateway fd00:: is the network address of subnet fd00::/64"},
		{prefix: "fe80::/64", gw: "fe80::1%eth0", wantErr: "gateway fe80::1%eth0 has a zone"},
		{prefix: "10.0.0.0/24", rng: "10.0.1.0/25", wantErr: "ip_range 10.0.1.0/25 is outside subnet 10.0.0.0/24"},
		{prefix: "10.0.0.0/24", rng: "10.0.0.0/23", wantErr: "ip_range 10.0.0.0/23 is outside subnet 10.0.0.0/24"},
		{prefix: "10.0.0.0/24", rng: "fd00::/64", wantErr: "ip_range fd00::/64 is outside subnet 10.0.0.0/24"},
		{prefix: "10.0.0.0/24", rng: "10.0.0.130/25", wantErr: "ip_range 10.0.0.130/25 has host bits set; did you mean 10.0.0.128/25?"},
	} {
		t.Run(tc.prefix+" "+tc.gw+" "+tc.rng, func(t *testing.T) {
			var p, r netip.Prefix
			var g netip.Addr
			if tc.prefix != "" {
				p = pfx(tc.prefix)
			}
			if tc.gw != "" {
				g = addr(tc.gw)
			}
			if tc.rng != "" {
				r = pfx(tc.rng)
			}
			s, err := NewSubnet(p, g, r)
			if tc.wantErr != "" {
				if !errdefs.IsInvalid(err) || err.Error() != tc.wantErr {
					t.Fatalf("got %+v, %v; want invalid %q", s, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Prefix != p || s.Gateway != addr(tc.wantGW) || s.Range != r || s.Leases == nil || len(s.Leases) != 0 {
				t.Fatalf("got %+v", s)
			}
		})
	}
}

func mustSubnet(t testing.TB, prefix, gw, rng string) *Subnet {
	t.Helper()
	var g netip.Addr
	var r netip.Prefix
	if gw != "" {
		g = addr(gw)
	}
	if rng != "" {
		r = pfx(rng)
	}
	s, err := NewSubnet(pfx(prefix), g, r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// op is one step of an allocation script: allocate (static may be "") or,
// with release set, release.
type op struct {
	name, static string
	release      bool
	want         string // address, or an error class: "conflict", "invalid"
	wantMsg      string // substring of the error
}

func run(t *testing.T, s *Subnet, ops []op) {
	t.Helper()
	for i, o := range ops {
		if o.release {
			s.Release(o.name)
			if _, ok := s.Leases[o.name]; ok {
				t.Fatalf("step %d: %q still leased after Release", i, o.name)
			}
			continue
		}
		var st netip.Addr
		if o.static != "" {
			st = addr(o.static)
		}
		got, err := s.Allocate(o.name, st)
		switch o.want {
		case "conflict", "invalid":
			if o.want == "conflict" && !errdefs.IsConflict(err) || o.want == "invalid" && !errdefs.IsInvalid(err) {
				t.Fatalf("step %d: Allocate(%q, %q) = %v, %v; want %s", i, o.name, o.static, got, err, o.want)
			}
			if !strings.Contains(err.Error(), o.wantMsg) {
				t.Fatalf("step %d: error %q does not contain %q", i, err, o.wantMsg)
			}
		default:
			if err != nil || got != addr(o.want) {
				t.Fatalf("step %d: Allocate(%q, %q) = %v, %v; want %s", i, o.name, o.static, got, err, o.want)
			}
			if s.Leases[o.name] != got {
				t.Fatalf("step %d: lease of %q is %v", i, o.name, s.Leases[o.name])
			}
		}
	}
}

func TestAllocate(t *testing.T) {
	for _, tc := range []struct {
		name            string
		prefix, gw, rng string
		ops             []op
	}{
		{name: "idempotent", prefix: "10.89.0.0/24", ops: []op{
			{name: "web_1", want: "10.89.0.2"},
			{name: "web_1", want: "10.89.0.2"},
			{name: "db_1", want: "10.89.0.3"},
			{name: "web_1", static: "10.89.0.2", want: "10.89.0.2"},
			{name: "web_1", static: "10.89.0.9", want: "conflict", wantMsg: `endpoint "web_1" already has address 10.89.0.2`},
		}},
		{name: "static", prefix: "10.89.0.0/24", ops: []op{
			{name: "a", static: "10.89.0.2", want: "10.89.0.2"},
			{name: "b", want: "10.89.0.3"},
			{name: "c", static: "10.89.0.2", want: "conflict", wantMsg: `address 10.89.0.2 for endpoint "c" is already leased to "a"`},
			{name: "c", static: "10.89.0.1", want: "conflict", wantMsg: "is the gateway of subnet 10.89.0.0/24"},
			{name: "c", static: "10.89.0.0", want: "invalid", wantMsg: "is the network address"},
			{name: "c", static: "10.89.0.255", want: "invalid", wantMsg: "is the broadcast address"},
			{name: "c", static: "10.89.1.5", want: "invalid", wantMsg: "10.89.1.5 for endpoint \"c\" is outside subnet 10.89.0.0/24"},
			{name: "c", static: "fd00::5", want: "invalid", wantMsg: "outside subnet"},
			{name: "c", static: "::ffff:10.89.0.77", want: "10.89.0.77"},
			{name: "d", want: "10.89.0.4"},
			{name: "", want: "invalid", wantMsg: "endpoint name is empty"},
		}},
		{name: "release and reuse lowest", prefix: "10.89.0.0/24", ops: []op{
			{name: "a", want: "10.89.0.2"},
			{name: "b", want: "10.89.0.3"},
			{name: "c", want: "10.89.0.4"},
			{name: "b", release: true},
			{name: "a", release: true},
			{name: "missing", release: true},
			{name: "d", want: "10.89.0.2"},
			{name: "e", want: "10.89.0.3"},
			{name: "f", want: "10.89.0.5"},
			{name: "b", static: "10.89.0.4", want: "conflict", wantMsg: `leased to "c"`},
		}},
		{name: "gateway elsewhere", prefix: "10.89.0.0/24", gw: "10.89.0.3", ops: []op{
			{name: "a", want: "10.89.0.1"},
			{name: "b", want: "10.89.0.2"},
			{name: "c", want: "10.89.0.4"},
		}},
		{name: "ip_range", prefix: "10.89.0.0/24", rng: "10.89.0.252/30", ops: []op{
			{name: "a", want: "10.89.0.252"},
			{name: "b", want: "10.89.0.253"},
			{name: "c", want: "10.89.0.254"}, // .255 is the subnet's broadcast
			{name: "d", want: "conflict", wantMsg: "no free address left in 10.89.0.252/30 of subnet 10.89.0.0/24"},
			{name: "d", static: "10.89.0.9", want: "10.89.0.9"}, // static may lie outside the range
		}},
		{name: "ip_range holding the gateway", prefix: "10.89.0.0/24", rng: "10.89.0.0/30", ops: []op{
			{name: "a", want: "10.89.0.2"},
			{name: "b", want: "10.89.0.3"},
			{name: "c", want: "conflict", wantMsg: "no free address"},
		}},
		{name: "/30", prefix: "10.89.0.0/30", ops: []op{
			{name: "a", want: "10.89.0.2"},
			{name: "b", want: "conflict", wantMsg: "no free address left in 10.89.0.0/30"},
			{name: "a", release: true},
			{name: "b", want: "10.89.0.2"},
		}},
		{name: "ipv6 /64", prefix: "fd00:b17e::/64", ops: []op{
			{name: "a", want: "fd00:b17e::2"},
			{name: "b", want: "fd00:b17e::3"},
			{name: "c", static: "fd00:b17e::ffff:ffff:ffff:ffff", want: "fd00:b17e::ffff:ffff:ffff:ffff"}, // no broadcast
			{name: "d", static: "fd00:b17e::", want: "invalid", wantMsg: "network address"},
			{name: "d", static: "fd00:b17e::1", want: "conflict", wantMsg: "gateway"},
			{name: "a", release: true},
			{name: "d", want: "fd00:b17e::2"},
		}},
		{name: "ipv6 /126", prefix: "fd00::/126", ops: []op{
			{name: "a", want: "fd00::2"},
			{name: "b", want: "fd00::3"},
			{name: "c", want: "conflict", wantMsg: "no free address"},
		}},
		{name: "ipv6 range at the top", prefix: "fd00::/64", rng: "fd00::ffff:ffff:ffff:fffe/127", ops: []op{
			{name: "a", want: "fd00::ffff:ffff:ffff:fffe"},
			{name: "b", want: "fd00::ffff:ffff:ffff:ffff"},
			{name: "c", want: "conflict", wantMsg: "no free address"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run(t, mustSubnet(t, tc.prefix, tc.gw, tc.rng), tc.ops)
		})
	}
}

// The state the caller loads from its JSON file may have no leases map.
func TestAllocateNilLeases(t *testing.T) {
	s := &Subnet{Prefix: pfx("10.89.3.0/24"), Gateway: addr("10.89.3.1")}
	s.Release("x")
	if a, err := s.Allocate("x", netip.Addr{}); err != nil || a != addr("10.89.3.2") {
		t.Fatalf("got %v, %v", a, err)
	}
}

func TestSubnetJSON(t *testing.T) {
	s := mustSubnet(t, "10.89.0.0/24", "", "")
	if _, err := s.Allocate("proj_web_1", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"subnet":"10.89.0.0/24","gateway":"10.89.0.1","leases":{"proj_web_1":"10.89.0.2"}}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	r := mustSubnet(t, "fd00:b17e::/64", "", "fd00:b17e::/120")
	b, err = json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"subnet":"fd00:b17e::/64","gateway":"fd00:b17e::1","ip_range":"fd00:b17e::/120","leases":{}}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	var back Subnet
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, r) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

// host returns 10.89.0.0/16's address number i (0 is the network address).
func host(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 89, byte(i >> 8), byte(i)}) }

// A /16 with tens of thousands of leases: each Allocate builds one used-set,
// so it is linear in the number of leases.
func TestAllocateLarge(t *testing.T) {
	s := mustSubnet(t, "10.89.0.0/16", "", "")
	const n = 60000
	for i := 2; i < n; i++ {
		s.Leases[fmt.Sprintf("c%d", i)] = host(i)
	}
	if got, err := s.Allocate("next", netip.Addr{}); err != nil || got != host(n) {
		t.Fatalf("got %v, %v; want %v", got, err, host(n))
	}
	s.Release("c1234")
	if got, err := s.Allocate("again", netip.Addr{}); err != nil || got != addr("10.89.4.210") {
		t.Fatalf("reuse: got %v, %v", got, err)
	}
	// Fill all but one address directly, then take it and overflow.
	for i := n + 1; i < 65535; i++ {
		s.Leases[fmt.Sprintf("c%d", i)] = host(i)
	}
	s.Release("c65000")
	if got, err := s.Allocate("last", netip.Addr{}); err != nil || got != host(65000) {
		t.Fatalf("last: got %v, %v", got, err)
	}
	if got, err := s.Allocate("overflow", netip.Addr{}); !errdefs.IsConflict(err) || len(s.Leases) != 65536-3 {
		t.Fatalf("full /16: got %v, %v with %d leases", got, err, len(s.Leases))
	}
}

func BenchmarkAllocate5000(b *testing.B) {
	s := mustSubnet(b, "10.89.0.0/16", "", "")
	for i := range 5000 {
		if _, err := s.Allocate(fmt.Sprintf("c%d", i), netip.Addr{}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := s.Allocate("x", netip.Addr{}); err != nil {
			b.Fatal(err)
		}
		s.Release("x")
	}
}

func TestDefaultPools(t *testing.T) {
	if DefaultPool != pfx("10.89.0.0/16") || DefaultPool6 != pfx("fd00:b17e::/48") {
		t.Fatalf("pools: %v %v", DefaultPool, DefaultPool6)
	}
	if _, err := NextSubnet(DefaultPool6, 64, nil, nil); err != nil {
		t.Fatal(err)
	}
}
