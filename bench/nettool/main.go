// nettool is bench/net's probe: a TCP sink, a sender that reports its
// throughput, a connection-rate meter and a DNS latency meter. It is built
// static so it runs on the host and, bind-mounted, in a container.
//
//	nettool sink ADDR                  accept and discard, forever
//	nettool send ADDR BYTES            print MB/s of sending BYTES
//	nettool connect ADDR N             print connections per second (connect, close)
//	nettool dnsq SERVER NAME N         print p50 and p99 µs of N A queries over UDP
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "nettool:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: sink ADDR | send ADDR BYTES | connect ADDR N | dnsq SERVER NAME N")
	}
	switch args[0] {
	case "sink":
		l, err := net.Listen("tcp", args[1])
		if err != nil {
			return err
		}
		for {
			c, err := l.Accept()
			if err != nil {
				return err
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	case "send":
		if len(args) < 3 {
			return fmt.Errorf("send ADDR BYTES")
		}
		n, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return err
		}
		c, err := net.Dial("tcp", args[1])
		if err != nil {
			return err
		}
		buf := make([]byte, 1<<20)
		start := time.Now()
		for left := n; left > 0; {
			b := buf
			if left < int64(len(b)) {
				b = b[:left]
			}
			w, err := c.Write(b)
			if err != nil {
				return err
			}
			left -= int64(w)
		}
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c) // the sink closes after reading everything
		d := time.Since(start)
		c.Close()
		fmt.Printf("%.1f\n", float64(n)/d.Seconds()/1e6)
	case "connect":
		if len(args) < 3 {
			return fmt.Errorf("connect ADDR N")
		}
		n, err := strconv.Atoi(args[2])
		if err != nil {
			return err
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			c, err := net.Dial("tcp", args[1])
			if err != nil {
				return err
			}
			c.Close()
		}
		fmt.Printf("%.0f\n", float64(n)/time.Since(start).Seconds())
	case "dnsq":
		if len(args) < 4 {
			return fmt.Errorf("dnsq SERVER NAME N")
		}
		n, err := strconv.Atoi(args[3])
		if err != nil {
			return err
		}
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		conn, err := c.Dial(args[1])
		if err != nil {
			return err
		}
		defer conn.Close()
		var lat []time.Duration
		for i := 0; i < n; i++ {
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(args[2]), dns.TypeA)
			start := time.Now()
			r, _, err := c.ExchangeWithConn(m, conn)
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				return fmt.Errorf("%s: rcode %s, %d answers", args[2], dns.RcodeToString[r.Rcode], len(r.Answer))
			}
			lat = append(lat, time.Since(start))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		fmt.Printf("%.0f %.0f\n", float64(lat[len(lat)/2].Microseconds()), float64(lat[len(lat)*99/100].Microseconds()))
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	return nil
}
