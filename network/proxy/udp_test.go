package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

func dialUDP(t testing.TB, a netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(a))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond for up to 10s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestUDPRoundTrip(t *testing.T) {
	checkLeaks(t)
	backend, _ := udpEcho(t, "echo:")
	l, addr := startProxy(t, Mapping{HostIP: "127.0.0.1", Protocol: "udp"}, backend)
	c := dialUDP(t, addr)
	for i := range 10 {
		roundTrip(t, c, fmt.Sprintf("ping %d", i), "echo:")
	}
	// A datagram of the largest size IPv4 allows.
	big := make([]byte, 65507-len("echo:"))
	for i := range big {
		big[i] = byte(i)
	}
	roundTrip(t, c, string(big), "echo:")
	if n := l.udpFlows.Load(); n != 1 {
		t.Fatalf("%d flows for one client", n)
	}
}

func TestUDPTwoClients(t *testing.T) {
	checkLeaks(t)
	backend, seen := udpEcho(t, "echo:")
	l, addr := startProxy(t, Mapping{HostIP: "127.0.0.1", Protocol: "udp"}, backend)
	a, b := dialUDP(t, addr), dialUDP(t, addr)
	for i := range 5 {
		// Both send before either reads: each must get its own reply.
		for _, c := range []*net.UDPConn{a, b} {
			if _, err := c.Write(fmt.Appendf(nil, "%s #%d", c.LocalAddr(), i)); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []*net.UDPConn{a, b} {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 100)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("echo:%s #%d", c.LocalAddr(), i); string(buf[:n]) != want {
				t.Fatalf("got %q, want %q", buf[:n], want)
			}
		}
	}
	if n := l.udpFlows.Load(); n != 2 {
		t.Fatalf("%d flows for two clients", n)
	}
	sources := map[netip.AddrPort]bool{}
	for len(seen) > 0 {
		sources[<-seen] = true
	}
	if len(sources) != 2 {
		t.Fatalf("backend saw sources %v, want one per client", sources)
	}
}

func TestUDPFlowExpiry(t *testing.T) {
	checkLeaks(t)
	backend, seen := udpEcho(t, "")
	idle := 300 * time.Millisecond
	l, addr := startProxy(t, Mapping{HostIP: "127.0.0.1", Protocol: "udp"}, backend, func(l *Listener) { l.UDPIdleTimeout = idle })
	c := dialUDP(t, addr)

	// Traffic more often than the timeout keeps one flow.
	for i := range 8 {
		roundTrip(t, c, fmt.Sprint("keep ", i), "")
		time.Sleep(idle / 6)
	}
	first := <-seen
	for len(seen) > 0 {
		if s := <-seen; s != first {
			t.Fatalf("flow replaced while active: backend saw %s then %s", first, s)
		}
	}

	// Silence expires it; the next datagram makes a new one.
	eventually(t, "the idle flow to expire", func() bool { return l.udpFlows.Load() == 0 })
	roundTrip(t, c, "again", "")
	if second := <-seen; second == first {
		t.Fatalf("after expiry the backend still sees %s", first)
	}
	if n := l.udpFlows.Load(); n != 1 {
		t.Fatalf("%d flows", n)
	}
}

func TestUDPFlowCap(t *testing.T) {
	checkLeaks(t)
	backend, _ := udpEcho(t, "")
	l, addr := startProxy(t, Mapping{HostIP: "127.0.0.1", Protocol: "udp"}, backend, func(l *Listener) { l.MaxUDPFlows = 2 })
	a, b, c := dialUDP(t, addr), dialUDP(t, addr), dialUDP(t, addr)
	roundTrip(t, a, "a", "")
	roundTrip(t, b, "b", "")
	if _, err := c.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the third client's datagram to be dropped", func() bool { return l.udpDropped.Load() == 1 })
	if n := l.udpFlows.Load(); n != 2 {
		t.Fatalf("%d flows, want the cap of 2", n)
	}
	roundTrip(t, a, "a again", "")
}

// TestUDPBackendNotYet: datagrams to a backend port that is not open draw
// ICMP port unreachable; the flow survives it and works once the backend
// listens.
func TestUDPBackendNotYet(t *testing.T) {
	checkLeaks(t)
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	backend := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()

	_, addr := startProxy(t, Mapping{HostIP: "127.0.0.1", Protocol: "udp"}, backend)
	c := dialUDP(t, addr)
	for range 3 {
		if _, err := c.Write([]byte("anyone?")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(backend))
	if err != nil {
		t.Skipf("backend port taken meanwhile: %v", err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 100)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pc.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	// Datagrams sent before the backend listened were lost, or may still
	// be queued: roundTrip skips their echoes.
	roundTrip(t, c, "now", "")
}

// TestUDPReplySource: a socket on all addresses answers from the address
// the client sent to. 127.0.0.2 is a local address the kernel would not
// choose as the source of a reply to 127.0.0.1, and a connected client
// socket drops replies from anywhere else.
func TestUDPReplySource(t *testing.T) {
	checkLeaks(t)
	backend, _ := udpEcho(t, "echo:")
	for _, hostIP := range []string{"", "0.0.0.0"} {
		t.Run(fmt.Sprintf("HostIP=%q", hostIP), func(t *testing.T) {
			l, _ := startProxy(t, Mapping{HostIP: hostIP, Protocol: "udp"}, backend)
			for _, to := range []string{"127.0.0.2", "127.0.0.1", "127.0.0.2"} {
				c := dialUDP(t, netip.AddrPortFrom(netip.MustParseAddr(to), l.Addr().Port()))
				roundTrip(t, c, "to "+to, "echo:")
			}
		})
	}
}

func TestUDPServeStops(t *testing.T) {
	checkLeaks(t)
	backend, _ := udpEcho(t, "")
	l, err := Listen(Mapping{HostIP: "127.0.0.1", Protocol: "udp"})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, l, backend)
	c := dialUDP(t, l.Addr())
	roundTrip(t, c, "one", "")
	s.cancel()
	if err := s.wait(t); err != nil {
		t.Fatal(err)
	}
	if n := l.udpFlows.Load(); n != 0 {
		t.Fatalf("%d flows after Serve returned", n)
	}
	// The socket is still bound; serving again picks up where it left.
	s = serve(t, l, backend)
	roundTrip(t, c, "two", "")
	l.Close()
	if err := s.wait(t); err != nil {
		t.Fatal(err)
	}
}
