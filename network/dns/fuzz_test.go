package dns

import (
	"context"
	"path/filepath"
	"testing"

	mdns "github.com/miekg/dns"
)

// seedQueries are packed queries covering every branch of prepare.
func seedQueries(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	add := func(name string, qtype uint16, mod func(m *mdns.Msg)) {
		m := new(mdns.Msg)
		m.SetQuestion(name, qtype)
		if mod != nil {
			mod(m)
		}
		b, err := m.Pack()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	add("web.", mdns.TypeA, nil)
	add("WEB.", mdns.TypeAAAA, nil)
	add("big.", mdns.TypeA, nil)
	add("big.", mdns.TypeA, func(m *mdns.Msg) { m.SetEdns0(1232, true) })
	add("big.", mdns.TypeA, func(m *mdns.Msg) { m.SetEdns0(100, false) })
	add("3.0.89.10.in-addr.arpa.", mdns.TypePTR, nil)
	add("5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.8.0.0.0.0.d.f.ip6.arpa.", mdns.TypePTR, nil)
	add("example.com.", mdns.TypeMX, nil)
	add("web.", mdns.TypeA, func(m *mdns.Msg) { m.Opcode = mdns.OpcodeNotify })
	add("web.", mdns.TypeA, func(m *mdns.Msg) { m.Question = append(m.Question, m.Question[0]) })
	add("web.", mdns.TypeA, func(m *mdns.Msg) { m.SetEdns0(4096, false); m.IsEdns0().SetVersion(1) })
	add("web.", mdns.TypeA, func(m *mdns.Msg) { m.SetEdns0(4096, false); m.Extra = append(m.Extra, m.Extra[0]) })
	out = append(out,
		[]byte{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01}, // name pointing at itself
		[]byte{0x12, 0x34, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0},                                                             // a response
		[]byte{0xff, 0xff},
	)
	return out
}

// clientLimit is what a client that sent req can take over UDP, computed
// apart from the code under test: 512 bytes without EDNS(0), its OPT's
// size (at least 512, at most 4096) with exactly one OPT record.
func clientLimit(req []byte) int {
	var m mdns.Msg
	if err := m.Unpack(req); err != nil {
		return 512
	}
	var opts []*mdns.OPT
	for _, rr := range m.Extra {
		if o, ok := rr.(*mdns.OPT); ok {
			opts = append(opts, o)
		}
	}
	if len(opts) != 1 {
		return 512
	}
	return min(max(int(opts[0].UDPSize()), 512), 4096)
}

// FuzzDNSQuery feeds raw packets to the query path of a server with local
// records (3 replicas, a 100-address name, IPv6, a dead container) and no
// upstreams. It must never panic; an answer is a parseable response with
// the query's ID that fits the client's limit.
func FuzzDNSQuery(f *testing.F) {
	zone := filepath.Join(f.TempDir(), "records.json")
	writeZone(f, zone, append(threeReplicas(), hundred()...)...)
	s, err := newServer(Config{Zones: []string{zone}, Alive: func(id string) bool { return id != "id050" }}, options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	for _, b := range seedQueries(f) {
		f.Add(b)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, req []byte) {
		for _, tcp := range []bool{false, true} {
			resp, limit := s.exchange(ctx, req, tcp)
			if resp == nil {
				if len(req) >= headerSize && req[2]&0x80 == 0 {
					t.Fatalf("tcp=%v: no answer to a query", tcp)
				}
				continue
			}
			want := clientLimit(req)
			if tcp {
				want = maxTCPSize
			}
			if limit != want {
				t.Fatalf("tcp=%v: packed to %d bytes, the client takes %d", tcp, limit, want)
			}
			if len(resp) > limit {
				t.Fatalf("tcp=%v: %d bytes over a limit of %d", tcp, len(resp), limit)
			}
			var m mdns.Msg
			if err := m.Unpack(resp); err != nil {
				t.Fatalf("tcp=%v: answer does not parse: %v", tcp, err)
			}
			if !m.Response || m.Id != uint16(req[0])<<8|uint16(req[1]) {
				t.Fatalf("tcp=%v: answer header %+v", tcp, m.MsgHdr)
			}
		}
	})
}

// The fuzzer's e4039ba52a324f1f: a packet with QR set and an OPT record.
// It is dropped before parsing; the client's EDNS(0) size is moot.
func TestFuzzRegressionResponseWithOPTIsDropped(t *testing.T) {
	s, err := newServer(Config{}, options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	req := []byte("00\xe40\x00\x01\x00\x00\x00\x0000\x000000\x00\x00)000000\x00\x00")
	for _, tcp := range []bool{false, true} {
		if resp, _ := s.exchange(context.Background(), req, tcp); resp != nil {
			t.Fatalf("tcp=%v: answered a response: %q", tcp, resp)
		}
	}
}
