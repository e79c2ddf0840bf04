package dns

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"berth.dev/berth/network"
)

// rec is a record with an IPv4 and/or IPv6 address ("" for none).
func rec(id, v4, v6 string, names ...string) network.Record {
	r := network.Record{ContainerID: id, Names: names}
	if v4 != "" {
		r.IPv4 = netip.MustParseAddr(v4)
	}
	if v6 != "" {
		r.IPv6 = netip.MustParseAddr(v6)
	}
	return r
}

// writeZone replaces path atomically (temp file + rename), as network/bridge does.
func writeZone(t testing.TB, path string, recs ...network.Record) {
	t.Helper()
	b, err := json.Marshal(network.Records{Version: network.RecordsVersion, Network: "test", Entries: recs})
	if err != nil {
		t.Fatal(err)
	}
	writeRaw(t, path, b)
}

func writeRaw(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// leakCheck fails the test if, once everything else has been cleaned up,
// a goroutine of the server is still there (it starts none of its own but
// Serve's; a watcher of the zone files once had one).
func leakCheck(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			left := ourGoroutines()
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines left behind:\n%s", strings.Join(left, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "berth.dev/berth/network/dns.(*Server)") ||
			strings.Contains(g, "berth.dev/berth/network/dns.(*watcher)") ||
			strings.Contains(g, "github.com/fsnotify/fsnotify") {
			out = append(out, g)
		}
	}
	return out
}

// testServer is a Server serving on 127.0.0.1 over UDP and TCP.
type testServer struct {
	*Server
	udp, tcp string
}

func startServer(t testing.TB, c Config) *testServer {
	t.Helper()
	return startServerOpts(t, c, options{watch: true})
}

func startServerOpts(t testing.TB, c Config, o options) *testServer {
	t.Helper()
	s, err := newServer(c, o)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
		s.Close()
	})
	return &testServer{Server: s, udp: pc.LocalAddr().String(), tcp: l.Addr().String()}
}

// ask sends one query over network ("udp" or "tcp") and returns the answer.
func ask(t testing.TB, network, addr, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	return askMsg(t, network, addr, m)
}

func askMsg(t testing.TB, network, addr string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, m.Question[0].Name, mdns.TypeToString[m.Question[0].Qtype], err)
	}
	return r
}

// rawUDP sends b to addr and returns the datagram that comes back (nil on
// timeout).
func rawUDP(t testing.TB, addr string, b []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// addrs lists the A/AAAA answers of r in order.
func addrs(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *mdns.A:
			out = append(out, rr.A.String())
		case *mdns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

// upstream is a fake resolver on 127.0.0.1, UDP and TCP on one port.
type upstream struct {
	addr  netip.AddrPort
	mu    sync.Mutex
	seen  []string // "udp example.test. A" per query received
	count atomic.Int32
}

func (u *upstream) log() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

// startUpstream runs h on a fresh port for both UDP and TCP.
func startUpstream(t testing.TB, h func(w mdns.ResponseWriter, r *mdns.Msg)) *upstream {
	t.Helper()
	u := &upstream{}
	pc, l := listenPair(t)
	u.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		u.count.Add(1)
		if len(r.Question) == 1 {
			u.mu.Lock()
			u.seen = append(u.seen, w.RemoteAddr().Network()+" "+r.Question[0].Name+" "+mdns.TypeToString[r.Question[0].Qtype])
			u.mu.Unlock()
		}
		h(w, r)
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: handler}, {Listener: l, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return u
}

// answerA answers every query with one A record.
func answerA(ip string) func(w mdns.ResponseWriter, r *mdns.Msg) {
	return func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		m.Answer = []mdns.RR{&mdns.A{
			Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 77},
			A:   net.ParseIP(ip),
		}}
		w.WriteMsg(m)
	}
}

// blackhole is an upstream that reads queries (UDP and TCP) and never answers.
func blackhole(t testing.TB) netip.AddrPort {
	t.Helper()
	pc, l := listenPair(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// listenPair listens on one 127.0.0.1 port for both UDP and TCP.
func listenPair(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l
		}
		pc.Close()
		if i > 20 {
			t.Fatal(err)
		}
	}
}
