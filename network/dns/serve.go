package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"berth.dev/berth/internal/errdefs"
)

// Serve answers queries on udp and tcp (either may be nil, not both) until
// ctx is done or Close is called, then returns nil. Serve owns the sockets:
// it closes both before returning, and returns only once every query it
// started has finished. It returns an error when a socket fails for another
// reason (after stopping the other loop), and ErrClosed after Close.
func (s *Server) Serve(ctx context.Context, udp net.PacketConn, tcp net.Listener) error {
	if udp == nil && tcp == nil {
		return errdefs.Invalidf("dns: serve: no socket")
	}
	if err := s.enter(); err != nil {
		closeAll(udp, tcp)
		return err
	}
	defer s.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.base, cancel)()
	// Closing the sockets is what unblocks ReadFrom and Accept.
	stopClose := context.AfterFunc(ctx, func() { closeAll(udp, tcp) })
	defer stopClose()

	var handlers sync.WaitGroup
	errc := make(chan error, 2)
	loops := 0
	if udp != nil {
		loops++
		go func() { errc <- s.serveUDP(ctx, udp, &handlers) }()
	}
	if tcp != nil {
		loops++
		go func() { errc <- s.serveTCP(ctx, tcp, &handlers) }()
	}
	var first error
	for range loops {
		err := <-errc
		if first == nil && err != nil && ctx.Err() == nil {
			first = err
		}
		cancel() // one loop ending stops the other
	}
	handlers.Wait()
	closeAll(udp, tcp)
	return first
}

func closeAll(udp net.PacketConn, tcp net.Listener) {
	if udp != nil {
		udp.Close()
	}
	if tcp != nil {
		tcp.Close()
	}
}

// retry reports whether a socket error is worth another try, and pauses
// first (5 ms doubling to 1 s): any net.Error but a closed socket is taken
// as passing (a full queue, no file descriptors left).
func retry(ctx context.Context, err error, delay *time.Duration) bool {
	var ne net.Error
	if errors.Is(err, net.ErrClosed) || !errors.As(err, &ne) || ctx.Err() != nil {
		return false
	}
	if *delay == 0 {
		*delay = 5 * time.Millisecond
	} else {
		*delay = min(*delay*2, time.Second)
	}
	t := time.NewTimer(*delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) serveUDP(ctx context.Context, pc net.PacketConn, handlers *sync.WaitGroup) error {
	buf := make([]byte, maxTCPSize) // any datagram whole: a cut one would parse as something else
	sem := make(chan struct{}, maxUDPForwards)
	var delay time.Duration
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if retry(ctx, err, &delay) {
				continue
			}
			return fmt.Errorf("dns: udp: %w", err)
		}
		delay = 0
		resp, fwd := s.safePrepare(buf[:n], false)
		if resp != nil {
			pc.WriteTo(resp, addr)
			continue
		}
		if fwd == nil {
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // overloaded: drop; the client retries
		}
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			defer func() { <-sem }()
			if resp := s.safeForward(ctx, fwd); resp != nil {
				pc.WriteTo(resp, addr)
			}
		}()
	}
}

func (s *Server) serveTCP(ctx context.Context, l net.Listener, handlers *sync.WaitGroup) error {
	sem := make(chan struct{}, maxTCPConns)
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if retry(ctx, err, &delay) {
				continue
			}
			return fmt.Errorf("dns: tcp: %w", err)
		}
		delay = 0
		select {
		case sem <- struct{}{}:
		default:
			c.Close()
			continue
		}
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			defer func() { <-sem }()
			s.serveConn(ctx, c)
		}()
	}
}

// serveConn answers the queries of one TCP client in order, until it goes
// idle for tcpIdle, sends something that is not a query, or ctx ends.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })()
	var hdr [2]byte
	var buf []byte
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdle))
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n < headerSize {
			return
		}
		if cap(buf) < n {
			buf = make([]byte, max(n, 512))
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		resp, fwd := s.safePrepare(buf[:n], true)
		if fwd != nil {
			resp = s.safeForward(ctx, fwd)
		}
		if resp == nil {
			continue
		}
		out := make([]byte, 2+len(resp))
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		copy(out[2:], resp)
		c.SetWriteDeadline(time.Now().Add(tcpWrite))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// safePrepare is prepare with a panic turned into a dropped query: a
// malformed packet must never take the shim down.
func (s *Server) safePrepare(req []byte, tcp bool) (resp []byte, fwd *forwardQuery) {
	defer func() {
		if r := recover(); r != nil {
			s.logLimited("dns: query dropped: panic: %v", r)
			resp, fwd = nil, nil
		}
	}()
	resp, fwd, _ = s.prepare(req, tcp)
	return resp, fwd
}

func (s *Server) safeForward(ctx context.Context, f *forwardQuery) (resp []byte) {
	defer func() {
		if r := recover(); r != nil {
			s.logLimited("dns: query dropped: panic: %v", r)
			resp = nil
		}
	}()
	return s.forward(ctx, f)
}
