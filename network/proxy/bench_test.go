package proxy

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// sink reads each connection to EOF and reports how many bytes it got.
func sink(b *testing.B) (netip.AddrPort, <-chan int64) {
	got := make(chan int64, 1)
	addr := tcpServer(b, func(c *net.TCPConn) {
		buf := make([]byte, 1<<20)
		var n int64
		for {
			m, err := c.Read(buf)
			n += int64(m)
			if err != nil {
				break
			}
		}
		got <- n
	})
	return addr, got
}

// send writes size bytes to addr in 1 MiB writes, half-closes, and waits for
// the sink to have read them all.
func send(b *testing.B, addr netip.AddrPort, got <-chan int64, chunk []byte, size int64) time.Duration {
	start := time.Now()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for sent := int64(0); sent < size; sent += int64(len(chunk)) {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	c.CloseWrite()
	if n := <-got; n != size {
		b.Fatalf("sink got %d bytes, want %d", n, size)
	}
	return time.Since(start)
}

// BenchmarkProxyThroughput sends 256 MiB per iteration to a sink on
// 127.0.0.1, once directly and once through the proxy (the extra hop is
// spliced, see pipe), and reports both rates and their ratio.
func BenchmarkProxyThroughput(b *testing.B) {
	const size = 256 << 20
	addr, got := sink(b)
	_, proxied := startProxy(b, Mapping{HostIP: "127.0.0.1"}, addr)
	chunk := make([]byte, 1<<20)
	var direct, proxy time.Duration
	b.ResetTimer()
	for range b.N {
		direct += send(b, addr, got, chunk, size)
		proxy += send(b, proxied, got, chunk, size)
	}
	b.StopTimer()
	mb := float64(b.N) * size / 1e6
	b.ReportMetric(mb/direct.Seconds(), "direct-MB/s")
	b.ReportMetric(mb/proxy.Seconds(), "proxy-MB/s")
	b.ReportMetric(direct.Seconds()/proxy.Seconds(), "ratio-vs-direct")
}

// BenchmarkProxyConnect sets up and tears down 200 connections per
// iteration, directly and through the proxy, to a server that accepts and
// closes; a connection counts once the client sees the server's EOF (so
// through the proxy it includes the proxy's own dial to the backend).
func BenchmarkProxyConnect(b *testing.B) {
	const conns = 200
	addr := tcpServer(b, func(*net.TCPConn) {})
	_, proxied := startProxy(b, Mapping{HostIP: "127.0.0.1"}, addr)
	connect := func(a netip.AddrPort) time.Duration {
		start := time.Now()
		buf := make([]byte, 1)
		for range conns {
			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(a))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf); err != io.EOF {
				b.Fatalf("read: %v, want EOF", err)
			}
			c.Close()
		}
		return time.Since(start)
	}
	var direct, proxy time.Duration
	b.ResetTimer()
	for range b.N {
		direct += connect(addr)
		proxy += connect(proxied)
	}
	b.StopTimer()
	n := float64(b.N * conns)
	b.ReportMetric(n/direct.Seconds(), "direct-conn/s")
	b.ReportMetric(n/proxy.Seconds(), "proxy-conn/s")
	b.ReportMetric(direct.Seconds()/proxy.Seconds(), "ratio-vs-direct")
}
