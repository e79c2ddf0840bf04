package dns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/network"
)

// threeReplicas is a network with a 3-replica service "web" and a "db".
func threeReplicas() []network.Record {
	return []network.Record{
		rec("aaaaaaaaaaaa1111", "10.89.0.2", "", "proj-web-1", "aaaaaaaaaaaa", "web"),
		rec("bbbbbbbbbbbb2222", "10.89.0.3", "", "proj-web-2", "bbbbbbbbbbbb", "web"),
		rec("cccccccccccc3333", "10.89.0.4", "", "proj-web-3", "cccccccccccc", "web"),
		rec("dddddddddddd4444", "10.89.0.5", "fd00:89::5", "proj-db-1", "dddddddddddd", "DB.", "database"),
	}
}

func zoneWith(t *testing.T, recs ...network.Record) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "records.json")
	writeZone(t, p, recs...)
	return p
}

func TestReplicasAllAnsweredInVaryingOrder(t *testing.T) {
	leakCheck(t)
	s := startServer(t, Config{Zones: []string{zoneWith(t, threeReplicas()...)}})
	orders := map[string]bool{}
	for range 40 {
		r := ask(t, "udp", s.udp, "web.", mdns.TypeA)
		if r.Rcode != mdns.RcodeSuccess || !r.Authoritative {
			t.Fatalf("rcode %s, aa %v", mdns.RcodeToString[r.Rcode], r.Authoritative)
		}
		got := addrs(r)
		orders[strings.Join(got, ",")] = true
		slices.Sort(got)
		if want := []string{"10.89.0.2", "10.89.0.3", "10.89.0.4"}; !slices.Equal(got, want) {
			t.Fatalf("web: %v, want %v", got, want)
		}
		if ttl := r.Answer[0].Header().Ttl; ttl != DefaultTTL {
			t.Fatalf("ttl %d, want %d", ttl, DefaultTTL)
		}
	}
	if len(orders) < 2 {
		t.Fatalf("40 answers, always in the order %v", orders)
	}
	if got := addrs(ask(t, "udp", s.udp, "proj-web-2.", mdns.TypeA)); !slices.Equal(got, []string{"10.89.0.3"}) {
		t.Fatalf("proj-web-2: %v", got)
	}
	if got := addrs(ask(t, "udp", s.udp, "cccccccccccc.", mdns.TypeA)); !slices.Equal(got, []string{"10.89.0.4"}) {
		t.Fatalf("short id: %v", got)
	}
}

func TestNamesAreCaseInsensitive(t *testing.T) {
	leakCheck(t)
	s := startServer(t, Config{Zones: []string{zoneWith(t, threeReplicas()...)}, TTL: 5})
	for _, name := range []string{"db.", "DB.", "Db.", "DATABASE.", "Proj-DB-1."} {
		r := ask(t, "udp", s.udp, name, mdns.TypeA)
		if got := addrs(r); !slices.Equal(got, []string{"10.89.0.5"}) {
			t.Fatalf("%s: %v", name, got)
		}
		// The answer keeps the asker's spelling (0x20 randomisation).
		if r.Answer[0].Header().Name != name || r.Answer[0].Header().Ttl != 5 {
			t.Fatalf("%s: answer %v", name, r.Answer[0])
		}
	}
	if got := addrs(ask(t, "udp", s.udp, "DataBase.", mdns.TypeAAAA)); !slices.Equal(got, []string{"fd00:89::5"}) {
		t.Fatalf("AAAA: %v", got)
	}
}

func TestNoDataForMissingFamilyIsNotForwarded(t *testing.T) {
	leakCheck(t)
	up := startUpstream(t, answerA("192.0.2.1"))
	s := startServer(t, Config{Zones: []string{zoneWith(t, threeReplicas()...)}, Upstreams: []netip.AddrPort{up.addr}})
	r := ask(t, "udp", s.udp, "web.", mdns.TypeAAAA)
	if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("AAAA web: rcode %s, %d answers; want NOERROR and none", mdns.RcodeToString[r.Rcode], len(r.Answer))
	}
	if n := up.count.Load(); n != 0 {
		t.Fatalf("upstream asked %d times: %v", n, up.log())
	}
	// Another type of a local name is not ours to answer.
	ask(t, "udp", s.udp, "web.", mdns.TypeMX)
	if got := up.log(); !slices.Equal(got, []string{"udp web. MX"}) {
		t.Fatalf("upstream saw %v", got)
	}
}

func TestPTR(t *testing.T) {
	leakCheck(t)
	up := startUpstream(t, answerA("192.0.2.1"))
	s := startServer(t, Config{Zones: []string{zoneWith(t, threeReplicas()...)}, Upstreams: []netip.AddrPort{up.addr}})
	for q, want := range map[string]string{
		"3.0.89.10.in-addr.arpa.": "proj-web-2.",
		"5.0.89.10.IN-ADDR.ARPA.": "proj-db-1.",
		"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.8.0.0.0.0.d.f.ip6.arpa.": "proj-db-1.",
	} {
		r := ask(t, "udp", s.udp, q, mdns.TypePTR)
		if len(r.Answer) != 1 {
			t.Fatalf("%s: %v", q, r)
		}
		if ptr := r.Answer[0].(*mdns.PTR); ptr.Ptr != want || ptr.Hdr.Name != q {
			t.Fatalf("%s: %v, want %s", q, ptr, want)
		}
	}
	if n := up.count.Load(); n != 0 {
		t.Fatalf("upstream asked %d times", n)
	}
	// Addresses that are not local, and partial reverse names, go upstream.
	for _, q := range []string{"9.0.89.10.in-addr.arpa.", "0.89.10.in-addr.arpa.", "03.0.89.10.in-addr.arpa."} {
		ask(t, "udp", s.udp, q, mdns.TypePTR)
	}
	if n := up.count.Load(); n != 3 {
		t.Fatalf("upstream asked %d times, want 3: %v", n, up.log())
	}
}

func TestParseReverse(t *testing.T) {
	for in, want := range map[string]string{
		"4.3.2.1.in-addr.arpa":   "1.2.3.4",
		"255.0.0.0.in-addr.arpa": "0.0.0.255",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa": "::1",
		"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa": "4321:0:1:2:3:4:567:89ab",
	} {
		a, ok := parseReverse(in)
		if !ok || a.String() != want {
			t.Errorf("%s: %v %v, want %s", in, a, ok, want)
		}
	}
	for _, in := range []string{"256.0.0.1.in-addr.arpa", "1.2.3.in-addr.arpa", "1.2.3.4.5.in-addr.arpa", "a.2.3.4.in-addr.arpa",
		".2.3.4.in-addr.arpa", "00.2.3.4.in-addr.arpa", "in-addr.arpa", "1.0.ip6.arpa", "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
		"10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0ip6.arpa", "example.com"} {
		if a, ok := parseReverse(in); ok {
			t.Errorf("%s: parsed as %v", in, a)
		}
	}
}

func TestAliveFilter(t *testing.T) {
	leakCheck(t)
	up := startUpstream(t, answerA("192.0.2.1"))
	recs := append(threeReplicas(), rec("eeeeeeeeeeee5555", "10.89.0.9", "", "proj-gone-1", "gone"))
	s := startServer(t, Config{
		Zones:     []string{zoneWith(t, recs...)},
		Upstreams: []netip.AddrPort{up.addr},
		Alive: func(id string) bool {
			return id != "bbbbbbbbbbbb2222" && id != "eeeeeeeeeeee5555"
		},
	})
	for range 5 {
		got := addrs(ask(t, "udp", s.udp, "web.", mdns.TypeA))
		slices.Sort(got)
		if want := []string{"10.89.0.2", "10.89.0.4"}; !slices.Equal(got, want) {
			t.Fatalf("web: %v, want %v", got, want)
		}
	}
	// A dead replica's own name, and its address, are no longer local.
	if got := addrs(ask(t, "udp", s.udp, "proj-web-2.", mdns.TypeA)); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Fatalf("proj-web-2: %v, want the upstream's answer", got)
	}
	ask(t, "udp", s.udp, "3.0.89.10.in-addr.arpa.", mdns.TypePTR)
	if got := up.log(); !slices.Equal(got, []string{"udp proj-web-2. A", "udp 3.0.89.10.in-addr.arpa. PTR"}) {
		t.Fatalf("upstream saw %v", got)
	}
}

func TestAliveCache(t *testing.T) {
	calls := 0
	c := newAliveCache(func(string) bool { calls++; return true })
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	c.alive("x")
	c.alive("x")
	now = now.Add(aliveTTL - time.Millisecond)
	c.alive("x")
	if calls != 1 {
		t.Fatalf("%d calls within the TTL, want 1", calls)
	}
	now = now.Add(2 * time.Millisecond)
	c.alive("x")
	if calls != 2 {
		t.Fatalf("%d calls after the TTL, want 2", calls)
	}
}

func TestMergesZonesAndDedupes(t *testing.T) {
	leakCheck(t)
	a := zoneWith(t, rec("aaaaaaaaaaaa1111", "10.89.0.2", "", "proj-web-1", "web"))
	b := zoneWith(t,
		rec("aaaaaaaaaaaa1111", "10.89.0.2", "", "proj-web-1", "web"), // the same endpoint seen twice
		rec("ffffffffffff6666", "10.90.0.7", "", "proj-web-2", "web", "Web"),
		rec("0000000000007777", "", "fd00:90::8", "v6only"),
	)
	s := startServer(t, Config{Zones: []string{a, b, filepath.Join(t.TempDir(), "missing.json")}})
	got := addrs(ask(t, "udp", s.udp, "web.", mdns.TypeA))
	slices.Sort(got)
	if want := []string{"10.89.0.2", "10.90.0.7"}; !slices.Equal(got, want) {
		t.Fatalf("web: %v, want %v", got, want)
	}
	if r := ask(t, "udp", s.udp, "v6only.", mdns.TypeA); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("A v6only: %v", r)
	}
}

func TestReloadAfterAtomicRewrite(t *testing.T) {
	leakCheck(t)
	zone := zoneWith(t, threeReplicas()...)
	s := startServer(t, Config{Zones: []string{zone}})
	if got := addrs(ask(t, "udp", s.udp, "proj-db-1.", mdns.TypeA)); !slices.Equal(got, []string{"10.89.0.5"}) {
		t.Fatalf("before: %v", got)
	}
	start := time.Now()
	writeZone(t, zone, rec("dddddddddddd4444", "10.89.0.50", "", "proj-db-1", "db"), rec("9", "10.89.0.51", "", "new"))
	waitFor(t, time.Second, "the rewritten zone", func() bool {
		return slices.Equal(addrs(ask(t, "udp", s.udp, "new.", mdns.TypeA)), []string{"10.89.0.51"})
	})
	t.Logf("reloaded after %v", time.Since(start))
	if got := addrs(ask(t, "udp", s.udp, "proj-db-1.", mdns.TypeA)); !slices.Equal(got, []string{"10.89.0.50"}) {
		t.Fatalf("after: %v", got)
	}
	if r := ask(t, "udp", s.udp, "web.", mdns.TypeA); r.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("web after its records went: %v (no upstreams: want SERVFAIL)", r)
	}

	// Removing the file empties the zone.
	if err := os.Remove(zone); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the removed zone", func() bool {
		return ask(t, "udp", s.udp, "new.", mdns.TypeA).Rcode == mdns.RcodeServerFailure
	})
}

func TestQueriesDuringReloadSeeOneZoneOrTheOther(t *testing.T) {
	leakCheck(t)
	zone := zoneWith(t, threeReplicas()...)
	s := startServer(t, Config{Zones: []string{zone}})
	before := "10.89.0.2,10.89.0.3,10.89.0.4"
	after := []network.Record{rec("x", "10.89.0.7", "", "web"), rec("y", "10.89.0.8", "", "web")}
	done := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			netw, addr := "udp", s.udp
			if i%2 == 1 {
				netw, addr = "tcp", s.tcp
			}
			c := &mdns.Client{Net: netw, Timeout: 5 * time.Second}
			for {
				select {
				case <-done:
					return
				default:
				}
				m := new(mdns.Msg)
				m.SetQuestion("web.", mdns.TypeA)
				r, _, err := c.Exchange(m, addr)
				if err != nil {
					errs <- err
					return
				}
				got := addrs(r)
				slices.Sort(got)
				if j := strings.Join(got, ","); j != before && j != "10.89.0.7,10.89.0.8" {
					errs <- fmt.Errorf("%s: web is %s", netw, j)
					return
				}
			}
		}()
	}
	for i := range 20 {
		if i%2 == 0 {
			writeZone(t, zone, after...)
		} else {
			writeZone(t, zone, threeReplicas()...)
		}
		if i%5 == 0 {
			s.Reload()
		}
		time.Sleep(15 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestReloadKeepsZoneOnBadFile(t *testing.T) {
	leakCheck(t)
	zone := zoneWith(t, threeReplicas()...)
	var logs logBuf
	s := startServer(t, Config{Zones: []string{zone}, Log: logs.logf})
	check := func(what string) {
		t.Helper()
		if got := addrs(ask(t, "udp", s.udp, "proj-web-1.", mdns.TypeA)); !slices.Equal(got, []string{"10.89.0.2"}) {
			t.Fatalf("%s: %v, want the old zone", what, got)
		}
	}
	writeRaw(t, zone, []byte(`{"version":1,"entries":[`))
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), zone) {
		t.Fatalf("Reload of broken JSON: %v", err)
	}
	check("broken JSON")
	writeRaw(t, zone, []byte(`{"version":2,"entries":[]}`))
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("Reload of version 2: %v", err)
	}
	check("version 2")

	big := append([]byte(`{"version":1,"entries":[]}`), bytes.Repeat([]byte(" "), MaxZoneSize)...)
	writeRaw(t, zone, big)
	if err := s.Reload(); !errors.Is(err, errTooLarge) {
		t.Fatalf("Reload of %d bytes: %v", len(big), err)
	}
	check("too large")
	if logs.has("larger than") {
		t.Fatal("a query reloaded a zone that did not change since Reload")
	}
	// A rewrite is seen by the next query, which reloads (and logs).
	writeRaw(t, zone, big)
	waitFor(t, time.Second, "the lazy reload's log line", func() bool {
		check("too large, after the change was seen")
		return logs.has("larger than")
	})
}

func TestNewRejectsBadZoneAndUpstream(t *testing.T) {
	zone := filepath.Join(t.TempDir(), "records.json")
	writeRaw(t, zone, []byte("not json"))
	if _, err := New(Config{Zones: []string{zone}}); err == nil {
		t.Fatal("New with a broken zone: no error")
	}
	if _, err := New(Config{Upstreams: []netip.AddrPort{{}}}); !errdefs.IsInvalid(err) {
		t.Fatalf("New with a zero upstream: %v", err)
	}
	if _, err := New(Config{Zones: []string{""}}); !errdefs.IsInvalid(err) {
		t.Fatalf("New with an empty zone path: %v", err)
	}
}

// A rewrite that leaves the file's stamp as it was (same inode and size,
// timestamps within one tick of a coarse clock) is still seen: a zone read
// while young is compared byte for byte until it is old.
func TestRacyZoneRewriteSeen(t *testing.T) {
	leakCheck(t)
	zone := zoneWith(t, rec("1", "10.89.0.77", "", "racy"))
	s := startServer(t, Config{Zones: []string{zone}})
	if got := addrs(ask(t, "udp", s.udp, "racy.", mdns.TypeA)); !slices.Equal(got, []string{"10.89.0.77"}) {
		t.Fatalf("racy: %v", got)
	}
	writeZone(t, zone, rec("1", "10.89.0.78", "", "racy")) // same size
	s.reloadMu.Lock()
	s.zones[0].seen = statStamp(zone) // as if the stamp had not moved
	racy := s.zones[0].racy
	s.reloadMu.Unlock()
	if !racy {
		t.Fatal("a zone read right after it was written is not racy")
	}
	if got := addrs(ask(t, "udp", s.udp, "racy.", mdns.TypeA)); !slices.Equal(got, []string{"10.89.0.78"}) {
		t.Fatalf("racy after a rewrite with an unchanged stamp: %v", got)
	}
	// Once old, a check that finds it unchanged stops comparing bytes.
	if s.changedAt(time.Now()) {
		t.Fatal("a zone just reloaded counts as changed")
	}
	if s.changedAt(time.Now().Add(2 * racyWindow)) {
		t.Fatal("an unchanged zone counts as changed")
	}
	s.reloadMu.Lock()
	racy = s.zones[0].racy
	s.reloadMu.Unlock()
	if racy {
		t.Fatal("an old zone found unchanged is still racy")
	}
}

func TestZoneDirectoryCreatedLater(t *testing.T) {
	leakCheck(t)
	dir := filepath.Join(t.TempDir(), "networks", "n1")
	zone := filepath.Join(dir, "records.json")
	s := startServer(t, Config{Zones: []string{zone}})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeZone(t, zone, rec("1", "10.89.0.78", "", "late"))
	waitFor(t, 3*time.Second, "the zone in a new directory", func() bool {
		return slices.Equal(addrs(ask(t, "udp", s.udp, "late.", mdns.TypeA)), []string{"10.89.0.78"})
	})
}

func TestForwardPassesAnswerThrough(t *testing.T) {
	leakCheck(t)
	up := startUpstream(t, answerA("192.0.2.44"))
	s := startServer(t, Config{Zones: []string{zoneWith(t, threeReplicas()...)}, Upstreams: []netip.AddrPort{up.addr}})
	for _, netw := range []string{"udp", "tcp"} {
		addr := s.udp
		if netw == "tcp" {
			addr = s.tcp
		}
		m := new(mdns.Msg)
		m.SetQuestion("example.test.", mdns.TypeA)
		m.Id = 0x1234
		r := askMsg(t, netw, addr, m)
		if r.Id != 0x1234 {
			t.Fatalf("%s: id %#x, want 0x1234", netw, r.Id)
		}
		if len(r.Answer) != 1 || r.Answer[0].String() != "example.test.\t77\tIN\tA\t192.0.2.44" {
			t.Fatalf("%s: answer %v", netw, r.Answer)
		}
	}
	// A query that came over TCP goes upstream over TCP.
	if got := up.log(); !slices.Equal(got, []string{"udp example.test. A", "tcp example.test. A"}) {
		t.Fatalf("upstream saw %v", got)
	}
}

func TestForwardRetriesTruncatedOverTCP(t *testing.T) {
	leakCheck(t)
	up := startUpstream(t, func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		if w.RemoteAddr().Network() == "udp" {
			m.Truncated = true
		} else {
			for i := range 3 {
				m.Answer = append(m.Answer, &mdns.A{
					Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 30},
					A:   net.IPv4(192, 0, 2, byte(i+1)),
				})
			}
		}
		w.WriteMsg(m)
	})
	s := startServer(t, Config{Upstreams: []netip.AddrPort{up.addr}})
	r := ask(t, "udp", s.udp, "big.example.", mdns.TypeA)
	if r.Truncated || len(r.Answer) != 3 {
		t.Fatalf("tc %v, %d answers; want the TCP answer", r.Truncated, len(r.Answer))
	}
	if got := up.log(); !slices.Equal(got, []string{"udp big.example. A", "tcp big.example. A"}) {
		t.Fatalf("upstream saw %v", got)
	}
}

func TestUpstreamThatNeverAnswersIsServfailInTime(t *testing.T) {
	leakCheck(t)
	const timeout = 200 * time.Millisecond
	s := startServer(t, Config{Upstreams: []netip.AddrPort{blackhole(t)}, Timeout: timeout})
	for _, netw := range []string{"udp", "tcp"} {
		addr := s.udp
		if netw == "tcp" {
			addr = s.tcp
		}
		start := time.Now()
		r := ask(t, netw, addr, "slow.example.", mdns.TypeA)
		d := time.Since(start)
		if r.Rcode != mdns.RcodeServerFailure {
			t.Fatalf("%s: rcode %s, want SERVFAIL", netw, mdns.RcodeToString[r.Rcode])
		}
		if d < timeout/2 || d > timeout+time.Second {
			t.Fatalf("%s: SERVFAIL after %v with a %v timeout", netw, d, timeout)
		}
	}
}

func TestFailover(t *testing.T) {
	leakCheck(t)
	failing := startUpstream(t, func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeServerFailure)
		w.WriteMsg(m)
	})
	good := startUpstream(t, answerA("192.0.2.9"))
	s := startServer(t, Config{
		Upstreams: []netip.AddrPort{blackhole(t), failing.addr, good.addr},
		Timeout:   150 * time.Millisecond,
	})
	start := time.Now()
	r := ask(t, "udp", s.udp, "x.example.", mdns.TypeA)
	if got := addrs(r); !slices.Equal(got, []string{"192.0.2.9"}) {
		t.Fatalf("answer %v", r)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	if failing.count.Load() != 1 || good.count.Load() != 1 {
		t.Fatalf("failing asked %d, good %d", failing.count.Load(), good.count.Load())
	}
	// When every upstream refuses, the client gets one of their answers.
	s2 := startServer(t, Config{Upstreams: []netip.AddrPort{failing.addr}})
	if r := ask(t, "udp", s2.udp, "x.example.", mdns.TypeA); r.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("only failing: %v", r)
	}
}

func TestNoUpstreamsIsServfailAtOnce(t *testing.T) {
	leakCheck(t)
	s := startServer(t, Config{})
	start := time.Now()
	for _, q := range []uint16{mdns.TypeA, mdns.TypeTXT, mdns.TypePTR} {
		if r := ask(t, "udp", s.udp, "nowhere.example.", q); r.Rcode != mdns.RcodeServerFailure {
			t.Fatalf("%s: %v", mdns.TypeToString[q], r)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
}

func hundred() []network.Record {
	var recs []network.Record
	for i := range 100 {
		recs = append(recs, rec(fmt.Sprintf("id%03d", i), fmt.Sprintf("10.89.%d.%d", i/250, i%250+2), "", fmt.Sprintf("proj-big-%d", i+1), "big"))
	}
	return recs
}

func TestTruncation(t *testing.T) {
	leakCheck(t)
	s := startServer(t, Config{Zones: []string{zoneWith(t, hundred()...)}})
	q := new(mdns.Msg)
	q.SetQuestion("big.", mdns.TypeA)
	b, _ := q.Pack()
	resp := rawUDP(t, s.udp, b, 5*time.Second)
	if resp == nil || len(resp) > 512 {
		t.Fatalf("UDP without EDNS: %d bytes", len(resp))
	}
	var r mdns.Msg
	if err := r.Unpack(resp); err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || len(r.Answer) == 0 || len(r.Answer) >= 100 {
		t.Fatalf("UDP without EDNS: tc %v, %d answers", r.Truncated, len(r.Answer))
	}
	t.Logf("UDP/512: %d bytes, %d answers", len(resp), len(r.Answer))

	// EDNS(0) with 1232 bytes: more, still truncated.
	q.SetEdns0(1232, false)
	b, _ = q.Pack()
	resp = rawUDP(t, s.udp, b, 5*time.Second)
	if err := r.Unpack(resp); err != nil || len(resp) > 1232 || !r.Truncated || r.IsEdns0() == nil {
		t.Fatalf("UDP/1232: %d bytes, %v, tc %v", len(resp), err, r.Truncated)
	}
	// 4096 bytes take them all.
	q.Extra = nil
	q.SetEdns0(4096, false)
	r2 := askMsg(t, "udp", s.udp, q)
	if r2.Truncated || len(r2.Answer) != 100 {
		t.Fatalf("UDP/4096: tc %v, %d answers", r2.Truncated, len(r2.Answer))
	}
	r3 := ask(t, "tcp", s.tcp, "big.", mdns.TypeA)
	if r3.Truncated || len(r3.Answer) != 100 {
		t.Fatalf("TCP: tc %v, %d answers", r3.Truncated, len(r3.Answer))
	}
}

func TestMalformedQueries(t *testing.T) {
	s, err := newServer(Config{Zones: []string{zoneWith(t, threeReplicas()...)}}, options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rcode := func(req []byte) (int, *mdns.Msg) {
		t.Helper()
		resp, limit := s.exchange(ctx, req, false)
		if resp == nil {
			return -1, nil
		}
		if len(resp) > limit {
			t.Fatalf("%d bytes over a %d limit", len(resp), limit)
		}
		var m mdns.Msg
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("response does not parse: %v", err)
		}
		if !m.Response || m.Id != uint16(req[0])<<8|uint16(req[1]) {
			t.Fatalf("response header %v", m.MsgHdr)
		}
		return m.Rcode, &m
	}
	q := func(mod func(m *mdns.Msg)) []byte {
		m := new(mdns.Msg)
		m.SetQuestion("web.", mdns.TypeA)
		m.Id = 0xbeef
		mod(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if c, _ := rcode([]byte{0xbe, 0xef, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff}); c != mdns.RcodeFormatError {
		t.Errorf("garbage question: rcode %d", c)
	}
	if c, _ := rcode([]byte{1, 2, 3}); c != -1 {
		t.Errorf("3 bytes: rcode %d, want no answer", c)
	}
	if c, _ := rcode(q(func(m *mdns.Msg) { m.Response = true })); c != -1 {
		t.Errorf("a response: rcode %d, want no answer", c)
	}
	if c, _ := rcode(q(func(m *mdns.Msg) { m.Question = append(m.Question, m.Question[0]) })); c != mdns.RcodeFormatError {
		t.Errorf("two questions: rcode %d", c)
	}
	if c, _ := rcode(q(func(m *mdns.Msg) { m.Question = nil })); c != mdns.RcodeFormatError {
		t.Errorf("no question: rcode %d", c)
	}
	if c, _ := rcode(q(func(m *mdns.Msg) { m.Opcode = mdns.OpcodeNotify })); c != mdns.RcodeNotImplemented {
		t.Errorf("NOTIFY: rcode %d", c)
	}
	c, m := rcode(q(func(m *mdns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }))
	if c != mdns.RcodeBadVers || m.IsEdns0() == nil {
		t.Errorf("EDNS version 1: rcode %d", c)
	}
	if c, m := rcode(q(func(m *mdns.Msg) { m.SetEdns0(1232, true) })); c != mdns.RcodeSuccess || len(m.Answer) != 3 || m.IsEdns0() == nil {
		t.Errorf("EDNS query: rcode %d, %v", c, m)
	}
	if c, _ := rcode(q(func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassCHAOS })); c != mdns.RcodeServerFailure {
		t.Errorf("CH class (forwarded, no upstreams): rcode %d", c)
	}
}

func TestServeLifecycle(t *testing.T) {
	leakCheck(t)
	s, err := New(Config{Zones: []string{zoneWith(t, threeReplicas()...)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background(), nil, nil); !errdefs.IsInvalid(err) {
		t.Fatalf("Serve without sockets: %v", err)
	}

	// ctx cancel: nil, and the socket is closed.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, nil) }()
	if got := addrs(ask(t, "udp", pc.LocalAddr().String(), "web.", mdns.TypeA)); len(got) != 3 {
		t.Fatalf("web: %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	if _, _, err := pc.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("socket after Serve: %v", err)
	}

	// Close while serving a TCP listener: nil.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- s.Serve(context.Background(), nil, l) }()
	if got := addrs(ask(t, "tcp", l.Addr().String(), "web.", mdns.TypeA)); len(got) != 3 {
		t.Fatalf("web over TCP: %v", got)
	}
	// An idle TCP client must not hold Close up.
	idle, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Close: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	<-closed
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	pc2, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background(), pc2, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
}

func TestCancelEndsForwardsInFlight(t *testing.T) {
	leakCheck(t)
	s, err := New(Config{Upstreams: []netip.AddrPort{blackhole(t)}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pc, l := listenPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, l) }()
	q := new(mdns.Msg)
	q.SetQuestion("hang.example.", mdns.TypeA)
	b, _ := q.Pack()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 5 {
		c.Write(b)
	}
	tc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.Write(append([]byte{0, byte(len(b))}, b...))
	time.Sleep(200 * time.Millisecond) // let the forwards start
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve waited for the upstream")
	}
	t.Logf("Serve returned %v after cancel", time.Since(start))
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logBuf) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
