package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
)

const (
	minUDPSize = 512   // a client without EDNS(0) takes this much over UDP (RFC 1035)
	maxUDPSize = 4096  // the most we send over UDP, whatever the client offers
	maxTCPSize = 65535 // a TCP message's length prefix is 16 bits
	headerSize = 12
)

// forwardQuery is a request that has to go upstream.
type forwardQuery struct {
	msg *mdns.Msg     // the query sent upstream; its ID is replaced per attempt
	id  uint16        // the client's ID, restored on the answer
	q   mdns.Question // what the answer must be about
	max int           // the client's size limit
	tcp bool          // the client asked over TCP
}

// exchange is the whole path of one request packet: parse, answer from the
// zones or forward, and pack within the client's limit. It returns the
// response (nil: send nothing) and the limit it was packed to: 512 bytes
// over UDP without EDNS(0), the EDNS(0) size (512..4096) with it, 65535
// over TCP.
func (s *Server) exchange(ctx context.Context, req []byte, tcp bool) (resp []byte, limit int) {
	resp, fwd, limit := s.prepare(req, tcp)
	if fwd != nil {
		resp = s.forward(ctx, fwd)
	}
	return resp, limit
}

// prepare answers what can be answered without the network. Either resp
// is the answer, or fwd is the query to forward, or both are nil (drop).
// fwd does not refer to req.
func (s *Server) prepare(req []byte, tcp bool) (resp []byte, fwd *forwardQuery, limit int) {
	limit = minUDPSize
	if tcp {
		limit = maxTCPSize
	}
	if len(req) < headerSize || req[2]&0x80 != 0 {
		return nil, nil, limit // too short to answer, or a response: never answer one
	}
	m := new(mdns.Msg)
	if err := m.Unpack(req); err != nil {
		return formErr(req), nil, limit
	}
	opt, nopt := edns(m)
	if nopt > 1 {
		opt = nil // more than one OPT: a FORMERR, to a client without EDNS(0)
	}
	if opt != nil && !tcp {
		limit = min(max(int(opt.UDPSize()), minUDPSize), maxUDPSize)
	}
	reply := new(mdns.Msg)
	reply.SetReply(m)
	reply.RecursionAvailable = true
	if opt != nil {
		reply.SetEdns0(maxUDPSize, opt.Do()) // DO is echoed (RFC 3225)
	}
	switch {
	case nopt > 1:
		reply.Rcode = mdns.RcodeFormatError
	case opt != nil && opt.Version() != 0:
		reply.Rcode = mdns.RcodeBadVers
	case m.Opcode != mdns.OpcodeQuery:
		reply.Rcode = mdns.RcodeNotImplemented
	case len(m.Question) != 1:
		reply.Rcode = mdns.RcodeFormatError
	case s.answerLocal(m.Question[0], reply):
	default:
		return nil, s.forwardFor(m, opt, limit, tcp), limit
	}
	return packReply(reply, limit), nil, limit
}

// edns returns the request's OPT record and how many it has.
func edns(m *mdns.Msg) (*mdns.OPT, int) {
	var opt *mdns.OPT
	n := 0
	for _, rr := range m.Extra {
		if o, ok := rr.(*mdns.OPT); ok {
			if opt == nil {
				opt = o
			}
			n++
		}
	}
	return opt, n
}

// formErr answers a request that does not parse: its header with QR set,
// rcode FORMERR and no sections.
func formErr(req []byte) []byte {
	b := make([]byte, headerSize)
	copy(b[:2], req[:2])
	b[2] = 0x80 | req[2]&0x79 // QR, the opcode and RD
	b[3] = 0x80 | mdns.RcodeFormatError
	return b
}

// answerLocal fills reply from the zones and reports whether the question
// is theirs: A/AAAA of a name with a live record (an empty answer when it
// has no address of that family) and PTR of a live record's address.
func (s *Server) answerLocal(q mdns.Question, reply *mdns.Msg) bool {
	if q.Qclass != mdns.ClassINET {
		return false
	}
	if s.fresh {
		s.refresh()
	}
	idx := s.idx.Load()
	switch q.Qtype {
	case mdns.TypeA, mdns.TypeAAAA:
		ids := idx.names[canonical(q.Name)]
		if len(ids) == 0 {
			return false
		}
		var addrs []netip.Addr
		var seen map[netip.Addr]bool
		if len(ids) > 16 {
			seen = make(map[netip.Addr]bool, len(ids))
		}
		known := false
		for _, i := range ids {
			e := &idx.entries[i]
			if !s.alive.alive(e.id) {
				continue
			}
			known = true
			list := e.v4
			if q.Qtype == mdns.TypeAAAA {
				list = e.v6
			}
			for _, a := range list {
				if seen != nil {
					if seen[a] {
						continue
					}
					seen[a] = true
				} else if containsAddr(addrs, a) {
					continue
				}
				addrs = append(addrs, a)
			}
		}
		if !known {
			return false // every record is of a stopped container: not ours now
		}
		rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
		hdr := mdns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: mdns.ClassINET, Ttl: s.ttl}
		reply.Answer = make([]mdns.RR, 0, len(addrs))
		for _, a := range addrs {
			b := a.AsSlice()
			if q.Qtype == mdns.TypeA {
				reply.Answer = append(reply.Answer, &mdns.A{Hdr: hdr, A: net.IP(b)})
			} else {
				reply.Answer = append(reply.Answer, &mdns.AAAA{Hdr: hdr, AAAA: net.IP(b)})
			}
		}
		reply.Authoritative = true
		return true
	case mdns.TypePTR:
		a, ok := parseReverse(canonical(q.Name))
		if !ok {
			return false
		}
		for _, i := range idx.addrs[a] {
			e := &idx.entries[i]
			if !s.alive.alive(e.id) {
				continue
			}
			reply.Answer = []mdns.RR{&mdns.PTR{
				Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypePTR, Class: mdns.ClassINET, Ttl: s.ttl},
				Ptr: e.name + ".",
			}}
			reply.Authoritative = true
			return true
		}
	}
	return false
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, b := range list {
		if a == b {
			return true
		}
	}
	return false
}

// parseReverse turns a canonical in-addr.arpa or ip6.arpa name of a whole
// address into that address.
func parseReverse(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, p := range parts {
			if p == "" || len(p) > 1 && p[0] == '0' {
				return netip.Addr{}, false
			}
			v, err := strconv.ParseUint(p, 10, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			b[3-i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		if len(rest) != 63 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i := 0; i < 32; i++ {
			if i < 31 && rest[2*i+1] != '.' {
				return netip.Addr{}, false
			}
			v, ok := hexNibble(rest[2*i])
			if !ok {
				return netip.Addr{}, false
			}
			pos := 31 - i // nibble position from the most significant
			if pos%2 == 0 {
				b[pos/2] |= v << 4
			} else {
				b[pos/2] |= v
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// forwardFor builds the upstream query: the question, the RD, CD and AD
// bits and the client's OPT record; nothing else of the request travels.
func (s *Server) forwardFor(m *mdns.Msg, opt *mdns.OPT, limit int, tcp bool) *forwardQuery {
	q := new(mdns.Msg)
	q.Opcode = mdns.OpcodeQuery
	q.RecursionDesired = m.RecursionDesired
	q.CheckingDisabled = m.CheckingDisabled
	q.AuthenticatedData = m.AuthenticatedData
	q.Question = []mdns.Question{m.Question[0]}
	if opt != nil {
		q.Extra = []mdns.RR{mdns.Copy(opt)}
	}
	return &forwardQuery{msg: q, id: m.Id, q: m.Question[0], max: limit, tcp: tcp}
}

// forward asks the upstreams in turn and packs the first usable answer for
// the client. A SERVFAIL or REFUSED answer moves on to the next upstream
// and is passed back only if none does better; with no answer at all the
// client gets SERVFAIL. Each upstream takes at most s.timeout.
func (s *Server) forward(ctx context.Context, f *forwardQuery) []byte {
	var fallback *mdns.Msg
	var lastErr error = errors.New("no upstream resolvers")
	for _, u := range s.upstreams {
		if ctx.Err() != nil {
			lastErr = ctx.Err()
			break
		}
		r, err := s.askUpstream(ctx, u, f)
		if err != nil {
			lastErr = fmt.Errorf("upstream %s: %w", u, err)
			continue
		}
		if r.Rcode == mdns.RcodeServerFailure || r.Rcode == mdns.RcodeRefused {
			if fallback == nil {
				fallback = r
			}
			continue
		}
		return s.relay(r, f)
	}
	if fallback != nil {
		return s.relay(fallback, f)
	}
	if len(s.upstreams) > 0 && ctx.Err() == nil {
		s.logLimited("dns: forward %s %s: %v", f.q.Name, mdns.TypeToString[f.q.Qtype], lastErr)
	}
	reply := new(mdns.Msg)
	reply.SetReply(f.msg)
	reply.Id = f.id
	reply.RecursionAvailable = true
	reply.Rcode = mdns.RcodeServerFailure
	if _, n := edns(f.msg); n > 0 {
		reply.SetEdns0(maxUDPSize, false)
	}
	return packReply(reply, f.max)
}

// relay passes an upstream answer back under the client's ID.
func (s *Server) relay(r *mdns.Msg, f *forwardQuery) []byte {
	r.Id = f.id
	return packReply(r, f.max)
}

// askUpstream does one exchange with u: over the client's transport, and
// over TCP again when a UDP answer comes back truncated.
func (s *Server) askUpstream(ctx context.Context, u netip.AddrPort, f *forwardQuery) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	network := "udp"
	if f.tcp {
		network = "tcp"
	}
	r, err := s.roundTrip(ctx, network, u, f)
	if err != nil || !r.Truncated || f.tcp {
		return r, err
	}
	if rt, err := s.roundTrip(ctx, "tcp", u, f); err == nil {
		return rt, nil
	}
	return r, nil // the client retries over TCP itself
}

func (s *Server) roundTrip(ctx context.Context, network string, u netip.AddrPort, f *forwardQuery) (*mdns.Msg, error) {
	c := &mdns.Client{Net: network, UDPSize: maxUDPSize, Timeout: s.timeout}
	conn, err := c.DialContext(ctx, u.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// Exchange obeys the context's deadline; closing on cancel also ends it
	// early when the server shuts down.
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	f.msg.Id = mdns.Id()
	r, _, err := c.ExchangeWithConnContext(ctx, f.msg, conn)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", network, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", network, err)
	}
	if !r.Response {
		return nil, fmt.Errorf("%s: answer without the QR bit", network)
	}
	if len(r.Question) > 0 {
		aq := r.Question[0]
		if len(r.Question) != 1 || aq.Qtype != f.q.Qtype || aq.Qclass != f.q.Qclass || canonical(aq.Name) != canonical(f.q.Name) {
			return nil, fmt.Errorf("%s: answer to another question (%s)", network, aq.String())
		}
	}
	return r, nil
}

// packReply packs m within limit bytes: as is when it fits, else truncated
// (TC set), else as a bare header and question with TC, else a bare
// SERVFAIL header. The result never exceeds limit.
func packReply(m *mdns.Msg, limit int) []byte {
	m.Compress = true
	b, err := m.Pack()
	if err == nil && len(b) <= limit {
		return b
	}
	if err == nil {
		m.Truncate(limit)
		if b, err = m.Pack(); err == nil && len(b) <= limit {
			return b
		}
	}
	bare := new(mdns.Msg)
	bare.Id = m.Id
	bare.Response = true
	bare.Opcode = m.Opcode
	bare.RecursionDesired = m.RecursionDesired
	bare.RecursionAvailable = m.RecursionAvailable
	bare.Truncated = err == nil
	bare.Rcode = m.Rcode
	if err != nil {
		bare.Rcode = mdns.RcodeServerFailure
	}
	if len(m.Question) > 0 {
		bare.Question = m.Question[:1]
	}
	if opt := m.IsEdns0(); opt != nil {
		bare.SetEdns0(opt.UDPSize(), opt.Do())
	}
	if b, err := bare.Pack(); err == nil && len(b) <= limit {
		return b
	}
	h := make([]byte, headerSize)
	binary.BigEndian.PutUint16(h, m.Id)
	h[2] = 0x80 | byte(m.Opcode&0xf)<<3
	if m.RecursionDesired {
		h[2] |= 1
	}
	h[3] = 0x80 | mdns.RcodeServerFailure
	return h
}
