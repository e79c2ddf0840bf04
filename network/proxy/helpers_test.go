package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// checkLeaks fails t if, once its cleanups (registered later, so run
// earlier) are done, more goroutines run than when it was called.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines: %d before, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// tcpServer runs handle for each connection to a listener on 127.0.0.1
// until the test ends; then it closes the listener and the connections and
// waits for the handlers.
func tcpServer(t testing.TB, handle func(*net.TCPConn)) netip.AddrPort {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: loopback.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[*net.TCPConn]bool{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptTCP()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil { // EMFILE, say: TestTCPAcceptEMFILE
				time.Sleep(5 * time.Millisecond)
				continue
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// udpEcho answers every datagram to a socket on 127.0.0.1 with prefix+it.
// It returns the address and a channel of the sources it saw.
func udpEcho(t testing.TB, prefix string) (netip.AddrPort, <-chan netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan netip.AddrPort, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, udpBufSize)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			select {
			case seen <- from:
			default:
			}
			c.WriteToUDPAddrPort(append([]byte(prefix), buf[:n]...), from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return c.LocalAddr().(*net.UDPAddr).AddrPort(), seen
}

// served is a Serve running in the background until the test ends; then
// the listener is closed and Serve must have returned nil.
type served struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returns
	err    error
}

func serve(t testing.TB, l *Listener, backend netip.AddrPort) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{cancel: cancel, done: make(chan struct{})}
	go func() {
		s.err = l.Serve(ctx, backend)
		close(s.done)
	}()
	t.Cleanup(func() {
		cancel()
		l.Close()
		<-s.done
		if s.err != nil {
			t.Errorf("Serve: %v", s.err)
		}
	})
	return s
}

// wait waits for Serve to return and gives its error.
func (s *served) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

// startProxy listens on m and serves backend until the test ends. It returns
// the address to dial (127.0.0.1 when m binds all addresses).
func startProxy(t testing.TB, m Mapping, backend netip.AddrPort, opts ...func(*Listener)) (*Listener, netip.AddrPort) {
	t.Helper()
	l, err := Listen(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(l)
	}
	serve(t, l, backend)
	return l, dialAddr(l)
}

func dialAddr(l *Listener) netip.AddrPort {
	a := l.Addr()
	if a.Addr().IsUnspecified() {
		return netip.AddrPortFrom(loopback, a.Port())
	}
	return a
}

func dialTCP(t testing.TB, a netip.AddrPort) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(a))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg on c and expects prefix+msg back. On a UDP socket
// it resends every half second (a datagram may be lost) and skips replies
// to earlier datagrams.
func roundTrip(t testing.TB, c net.Conn, msg, prefix string) {
	t.Helper()
	if err := exchange(c, msg, prefix); err != nil {
		t.Fatal(err)
	}
}

func exchange(c net.Conn, msg, prefix string) error {
	defer c.SetDeadline(time.Time{})
	want := prefix + msg
	buf := make([]byte, len(want)+100)
	if _, ok := c.(*net.UDPConn); ok {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			if _, err := c.Write([]byte(msg)); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			for {
				n, err := c.Read(buf)
				if isTimeout(err) {
					break // resend
				}
				if err != nil {
					return fmt.Errorf("read: %w", err)
				}
				if string(buf[:n]) == want {
					return nil
				}
			}
		}
		return fmt.Errorf("no reply %q", want)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := ""
	for len(got) < len(want) {
		n, err := c.Read(buf)
		got += string(buf[:n])
		if err != nil {
			return fmt.Errorf("read: %w (got %q)", err, got)
		}
	}
	if got != want {
		return fmt.Errorf("got %q, want %q", got, want)
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func contains(t testing.TB, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}
