package proxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// serveTCP accepts until ctx ends or the listener is closed; each client
// gets its own backend connection. On the way out it cancels pending dials,
// closes every connection and waits for their goroutines.
func (l *Listener) serveTCP(ctx context.Context, cancel context.CancelFunc, backend netip.AddrPort) error {
	var (
		wg    sync.WaitGroup
		conns = &connSet{m: make(map[*net.TCPConn]struct{})}
		d     = &net.Dialer{Timeout: l.dialTimeout()}
		wait  time.Duration
		ret   error
	)
	for {
		c, err := l.tcp.AcceptTCP()
		if err != nil {
			if stopped(ctx, err) {
				break
			}
			if permanent(err) {
				ret = err
				break
			}
			l.acceptRetries.Add(1)
			if !backoff(ctx, &wait) {
				break
			}
			continue
		}
		wait = 0
		if !conns.add(c) {
			c.Close()
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			forwardTCP(ctx, d, c, backend, conns)
		}()
	}
	cancel()
	conns.closeAll()
	wg.Wait()
	return ret
}

// forwardTCP connects client to backend and copies between them; a
// failed dial closes the client.
func forwardTCP(ctx context.Context, d *net.Dialer, client *net.TCPConn, backend netip.AddrPort, conns *connSet) {
	defer conns.remove(client)
	defer client.Close()
	c, err := d.DialContext(ctx, "tcp", backend.String())
	if err != nil {
		return
	}
	b := c.(*net.TCPConn)
	if !conns.add(b) {
		b.Close()
		return
	}
	defer conns.remove(b)
	defer b.Close()
	pipe(client, b)
}

// pipe copies a to b and b to a until both directions are done, passing
// half-closes through: when one side sends FIN (EOF on read) the other is
// CloseWrite'd and the opposite direction carries on. An error either way
// (a reset, a write to a closed peer) closes both, ending the other
// direction too.
//
// Both sides are *net.TCPConn and reach io.Copy unwrapped, so on Linux the
// bytes never enter user space: io.Copy(dst, src) calls src.WriteTo, which
// (dst not being a UnixConn) hands src, minus its WriteTo, to
// dst.ReadFrom, whose spliceFrom recognises a TCP source and moves the data
// socket → pipe → socket with splice(2) (net/tcpsock_posix.go, net/net.go
// genericWriteTo, net/splice_linux.go). strace -c -f of
// BenchmarkProxyThroughput shows the splice calls and one pipe2 per
// direction; the benchmark measures the hop against a direct connection.
// The price is descriptors: a direction holds a pipe from net's pool while
// it copies, so a connection costs up to six (two sockets, two pipes).
// TCP_NODELAY is Go's default on both connections, so small writes are not
// held back by the extra hop.
func pipe(a, b *net.TCPConn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		half(b, a)
	}()
	half(a, b)
	<-done
}

// half copies src to dst, then half-closes dst.
func half(dst, src *net.TCPConn) {
	_, err := io.Copy(dst, src)
	if err == nil {
		err = dst.CloseWrite()
	}
	if err != nil {
		dst.Close()
		src.Close()
	}
}

// connSet is the connections a Serve forwards, to close them when it ends.
type connSet struct {
	mu     sync.Mutex
	m      map[*net.TCPConn]struct{}
	closed bool
}

// add tracks c; false (c untracked) once closeAll has run.
func (s *connSet) add(c *net.TCPConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.m[c] = struct{}{}
	return true
}

func (s *connSet) remove(c *net.TCPConn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.m {
		c.Close()
	}
}
