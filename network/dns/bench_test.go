package dns

import (
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// BenchmarkDNSQuery times a local A query (3 replicas) over UDP loopback to
// a serving Server, from a raw connected socket, and in the same loop a
// bare UDP echo round trip of the same packet on loopback: the floor no
// UDP server can beat. It reports the query's median as p50-ns (and its
// mean as ns/op) and p50 query / p50 echo as ratio-vs-echo. The two are
// interleaved so that load on the machine hits both alike.
func BenchmarkDNSQuery(b *testing.B) {
	s := startServer(b, Config{Zones: []string{zoneFor(b)}})

	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		buf := make([]byte, 65535)
		for {
			n, addr, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(buf[:n], addr)
		}
	}()
	b.Cleanup(func() { echo.Close(); <-echoDone })

	dial := func(addr string) net.Conn {
		c, err := net.Dial("udp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	dnsConn, echoConn := dial(s.udp), dial(echo.LocalAddr().String())
	q := new(mdns.Msg)
	q.SetQuestion("web.", mdns.TypeA)
	pkt, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 65535)
	roundTrip := func(c net.Conn) time.Duration {
		start := time.Now()
		if _, err := c.Write(pkt); err != nil {
			b.Fatal(err)
		}
		c.SetReadDeadline(start.Add(5 * time.Second))
		n, err := c.Read(buf)
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if c == dnsConn {
			var r mdns.Msg
			if err := r.Unpack(buf[:n]); err != nil || len(r.Answer) != 3 {
				b.Fatalf("answer %v: %v", &r, err)
			}
		}
		return d
	}
	for range 50 { // warm up both paths
		roundTrip(dnsConn)
		roundTrip(echoConn)
	}

	dnsT := make([]time.Duration, 0, b.N)
	echoT := make([]time.Duration, 0, b.N)
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate which goes first, so neither always runs on a warm cache.
		if i%2 == 0 {
			d := roundTrip(dnsConn)
			dnsT, total = append(dnsT, d), total+d
			echoT = append(echoT, roundTrip(echoConn))
		} else {
			echoT = append(echoT, roundTrip(echoConn))
			d := roundTrip(dnsConn)
			dnsT, total = append(dnsT, d), total+d
		}
	}
	b.StopTimer()
	p50, echo50 := median(dnsT), median(echoT)
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(echo50.Nanoseconds()), "echo-p50-ns")
	if echo50 > 0 {
		b.ReportMetric(float64(p50)/float64(echo50), "ratio-vs-echo")
	}
}

func zoneFor(b *testing.B) string {
	p := filepath.Join(b.TempDir(), "records.json")
	writeZone(b, p, threeReplicas()...)
	return p
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
