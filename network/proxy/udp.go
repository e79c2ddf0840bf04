package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A UDP flow is one client (address, and local address it sent to): a
// socket connected to the backend carries its datagrams, and one goroutine
// reads the backend's replies and sends them to the client from the
// listening socket. The listening socket has one reader (serveUDP), so
// there is no goroutine per packet. An idle reply goroutine holds no
// buffer: it waits for readability and only then takes one from bufPool.

type flowKey struct {
	client netip.AddrPort
	local  netip.Addr // where the client sent to, for wildcard sockets; zero otherwise
}

type flow struct {
	key  flowKey
	conn *net.UDPConn // connected to the backend
	oob  []byte       // IP_PKTINFO/IPV6_PKTINFO choosing the reply's source, or nil
	last atomic.Int64 // last packet either way, as udpServer.now
}

type udpServer struct {
	l       *Listener
	backend *net.UDPAddr
	idle    time.Duration
	max     int
	start   time.Time

	mu     sync.Mutex
	flows  map[flowKey]*flow
	closed bool
	wg     sync.WaitGroup
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, udpBufSize); return &b }}

func (l *Listener) serveUDP(ctx context.Context, cancel context.CancelFunc, backend netip.AddrPort) error {
	s := &udpServer{
		l:       l,
		backend: net.UDPAddrFromAddrPort(backend),
		idle:    l.UDPIdleTimeout,
		max:     l.MaxUDPFlows,
		start:   time.Now(),
		flows:   make(map[flowKey]*flow),
	}
	if s.idle <= 0 {
		s.idle = DefaultUDPIdleTimeout
	}
	if s.max <= 0 {
		s.max = DefaultMaxUDPFlows
	}
	buf := make([]byte, udpBufSize)
	var oob []byte
	if l.pktinfo != 0 {
		oob = make([]byte, 2*unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	}
	var (
		wait time.Duration
		ret  error
	)
	for {
		var (
			n, oobn int
			from    netip.AddrPort
			err     error
		)
		if oob != nil {
			n, oobn, _, from, err = l.udp.ReadMsgUDPAddrPort(buf, oob)
		} else {
			n, from, err = l.udp.ReadFromUDPAddrPort(buf)
		}
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
		key := flowKey{client: from}
		if oob != nil {
			key.local = parsePktinfo(oob[:oobn])
		}
		s.forward(key, buf[:n])
	}
	cancel()
	s.mu.Lock()
	s.closed = true
	for _, f := range s.flows {
		f.conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return ret
}

// now is a monotonic clock for flow activity.
func (s *udpServer) now() int64 { return int64(time.Since(s.start)) }

// forward sends p to the backend on key's flow, creating it if need be.
func (s *udpServer) forward(key flowKey, p []byte) {
	for range 2 {
		f := s.flow(key)
		if f == nil {
			s.l.udpDropped.Add(1)
			return
		}
		_, err := f.conn.Write(p)
		if err == nil {
			return
		}
		// net.ErrClosed: the flow expired between lookup and write; use a
		// new one. ECONNREFUSED, EHOSTUNREACH, ...: an earlier datagram
		// drew an ICMP error (the backend is not up yet), reported, and
		// cleared, by this send instead of sending; try once more.
	}
	s.l.udpDropped.Add(1)
}

// flow returns key's flow, marked active, creating it when there is room;
// nil if there is not or Serve is ending.
func (s *udpServer) flow(key flowKey) *flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if f := s.flows[key]; f != nil {
		f.last.Store(s.now())
		return f
	}
	if len(s.flows) >= s.max {
		return nil
	}
	c, err := net.DialUDP("udp", nil, s.backend)
	if err != nil {
		return nil
	}
	f := &flow{key: key, conn: c, oob: replyPktinfo(s.l.pktinfo, key.local)}
	f.last.Store(s.now())
	s.flows[key] = f
	s.l.udpFlows.Add(1)
	s.wg.Add(1)
	go s.reply(f)
	return f
}

// reply sends the backend's datagrams for f to its client until f is idle
// for s.idle or closed.
func (s *udpServer) reply(f *flow) {
	defer s.wg.Done()
	defer s.remove(f)
	rc, err := f.conn.SyscallConn()
	if err != nil {
		return
	}
	// The deadline is only re-armed when it fires, from the last activity,
	// rather than pushed back on every packet.
	if f.conn.SetReadDeadline(time.Now().Add(s.idle)) != nil {
		return
	}
	for {
		n, buf, err := readPooled(rc)
		if err == nil {
			f.last.Store(s.now())
			if f.oob != nil {
				_, _, err = s.l.udp.WriteMsgUDPAddrPort((*buf)[:n], f.oob, f.key.client)
			} else {
				_, err = s.l.udp.WriteToUDPAddrPort((*buf)[:n], f.key.client)
			}
			bufPool.Put(buf)
			// A failed send (client unreachable, or the listener
			// closing) loses that datagram only, as UDP would.
			continue
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if s.expired(f) {
				return
			}
		case errors.As(err, new(syscall.Errno)):
			// An ICMP error from the backend (ECONNREFUSED: not
			// listening yet), cleared by reporting it: the flow stays
			// until idle.
		default:
			return // closed
		}
	}
}

// expired reports whether f has been idle for s.idle, removing it from the
// table if so and re-arming its deadline otherwise. The check is under
// s.mu, as flow's refresh is, so a flow just looked up is not expired.
func (s *udpServer) expired(f *flow) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	idle := time.Duration(s.now() - f.last.Load())
	if idle < s.idle {
		return f.conn.SetReadDeadline(time.Now().Add(s.idle-idle)) != nil
	}
	if s.flows[f.key] == f {
		delete(s.flows, f.key)
	}
	return true
}

func (s *udpServer) remove(f *flow) {
	s.mu.Lock()
	if s.flows[f.key] == f {
		delete(s.flows, f.key)
	}
	s.mu.Unlock()
	f.conn.Close()
	s.l.udpFlows.Add(-1)
}

// readPooled reads one datagram into a buffer from bufPool, taken only once
// the socket is readable; the caller puts it back.
func readPooled(rc syscall.RawConn) (int, *[]byte, error) {
	var (
		n    int
		buf  *[]byte
		rerr error
	)
	err := rc.Read(func(fd uintptr) bool {
		b := bufPool.Get().(*[]byte)
		for {
			n, rerr = unix.Read(int(fd), *b)
			if rerr != unix.EINTR {
				break
			}
		}
		if rerr == unix.EAGAIN {
			bufPool.Put(b)
			return false // wait for readability
		}
		buf = b
		return true
	})
	if err == nil && rerr != nil {
		err = os.NewSyscallError("read", rerr)
	}
	if err != nil {
		if buf != nil {
			bufPool.Put(buf)
		}
		return 0, nil, err
	}
	return n, buf, nil
}

// enablePktinfo asks a wildcard-bound UDP socket for each datagram's
// destination address, so that replies can be sent from it: without this
// the kernel picks the reply's source by route, and a client that sent to
// a secondary address gets an answer from another one, which a connected
// client socket (or a NAT) drops. It returns the socket's family.
func enablePktinfo(c *net.UDPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fam int
	var serr error
	err = rc.Control(func(fd uintptr) {
		fam, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if serr != nil {
			serr = os.NewSyscallError("getsockopt SO_DOMAIN", serr)
			return
		}
		if fam == unix.AF_INET {
			serr = os.NewSyscallError("setsockopt IP_PKTINFO", unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_PKTINFO, 1))
			return
		}
		// IPv4 datagrams on a dual-stack socket come with an IPV6_PKTINFO
		// holding the IPv4-mapped address.
		serr = os.NewSyscallError("setsockopt IPV6_RECVPKTINFO", unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVPKTINFO, 1))
	})
	if err == nil {
		err = serr
	}
	return fam, err
}

// parsePktinfo is the local address a datagram was sent to; zero if oob
// does not say.
func parsePktinfo(oob []byte) netip.Addr {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }:
			// spec_dst is the local address (addr the header's).
			return netip.AddrFrom4([4]byte(m.Data[4:8]))
		case m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			a := netip.AddrFrom16([16]byte(m.Data[:16])).Unmap()
			if a.Is6() && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()) {
				a = a.WithZone(strconv.FormatUint(uint64(binary.NativeEndian.Uint32(m.Data[16:20])), 10))
			}
			return a
		}
	}
	return netip.Addr{}
}

// replyPktinfo is the control message sending a reply from local on a
// socket of family fam; nil without pktinfo.
func replyPktinfo(fam int, local netip.Addr) []byte {
	if fam == 0 || !local.IsValid() || local.IsMulticast() {
		return nil // a reply cannot come from a multicast address; let the kernel choose
	}
	if fam == unix.AF_INET {
		if !local.Is4() {
			return nil
		}
		return unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: local.As4()})
	}
	info := unix.Inet6Pktinfo{Addr: local.As16()} // IPv4 as ::ffff:a.b.c.d
	if z := local.Zone(); z != "" {
		if idx, err := strconv.ParseUint(z, 10, 32); err == nil {
			info.Ifindex = uint32(idx)
		}
	}
	return unix.PktInfo6(&info)
}
