package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults for the Listener's tunables.
const (
	// DefaultUDPIdleTimeout is how long a UDP flow lives without a packet
	// in either direction: the conntrack-like timeout docker-proxy uses.
	DefaultUDPIdleTimeout = 90 * time.Second
	// DefaultMaxUDPFlows caps the concurrent UDP clients of one Listener;
	// packets from new clients beyond it are dropped.
	DefaultMaxUDPFlows = 1024
	// DefaultDialTimeout bounds connecting to the backend for one TCP
	// client.
	DefaultDialTimeout = 5 * time.Second

	udpBufSize = 64 << 10 // larger than any UDP datagram over IPv4 or IPv6 (no jumbograms)
)

// ErrPortInUse is wrapped by Listen's error when the host port is taken.
var ErrPortInUse = errors.New("port is already in use")

// Mapping is one published port, as compose's ports: entry.
type Mapping struct {
	HostIP        string // "" = all addresses (one dual-stack socket)
	HostPort      uint16 // 0 = an ephemeral port chosen by the kernel
	ContainerPort uint16
	Protocol      string // tcp | udp ("" = tcp)
}

// String is the mapping as the user would write it, with the protocol:
// "127.0.0.1:8080:80/tcp", "[::1]:53:53/udp", "8080:80/tcp".
func (m Mapping) String() string {
	proto := m.Protocol
	if proto == "" {
		proto = "tcp"
	}
	ports := fmt.Sprintf("%d:%d/%s", m.HostPort, m.ContainerPort, proto)
	switch ip := strings.Trim(m.HostIP, "[]"); {
	case ip == "":
		return ports
	case strings.Contains(ip, ":"):
		return "[" + ip + "]:" + ports
	default:
		return ip + ":" + ports
	}
}

// Backend is the address Serve forwards to for a container at ip.
func (m Mapping) Backend(ip netip.Addr) netip.AddrPort {
	return netip.AddrPortFrom(ip, m.ContainerPort)
}

// protocol is m.Protocol normalised to "tcp" or "udp".
func (m Mapping) protocol() (string, error) {
	switch p := strings.ToLower(m.Protocol); p {
	case "", "tcp":
		return "tcp", nil
	case "udp":
		return "udp", nil
	default:
		return "", fmt.Errorf("publish %s: unsupported protocol %q (want tcp or udp)", m, m.Protocol)
	}
}

// hostIP parses m.HostIP; the zero Addr means all addresses.
func (m Mapping) hostIP() (netip.Addr, error) {
	s := m.HostIP
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return netip.Addr{}, nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("publish %s: host IP %q: %w", m, m.HostIP, err)
	}
	return ip.Unmap(), nil
}

// Listener is a bound host port. Set its exported fields before Serve.
type Listener struct {
	// UDPIdleTimeout expires a UDP flow with no packet either way for this
	// long; 0 = DefaultUDPIdleTimeout.
	UDPIdleTimeout time.Duration
	// MaxUDPFlows caps concurrent UDP flows; 0 = DefaultMaxUDPFlows.
	MaxUDPFlows int
	// DialTimeout bounds connecting to the backend; 0 = DefaultDialTimeout.
	DialTimeout time.Duration

	m    Mapping // with Protocol normalised and HostPort the bound port
	addr netip.AddrPort
	tcp  *net.TCPListener
	udp  *net.UDPConn
	// pktinfo is the socket's address family when it is bound to a
	// wildcard address and receives IP_PKTINFO / IPV6_PKTINFO, so that UDP
	// replies leave from the address the client sent to; 0 otherwise.
	pktinfo int

	mu      sync.Mutex
	serving bool
	closed  bool
	cancel  context.CancelFunc // the running Serve's

	// Counters, for tests and debugging.
	acceptRetries atomic.Int64 // accept or read errors backed off from
	udpDropped    atomic.Int64 // datagrams dropped: too many flows, or no backend socket
	udpFlows      atomic.Int64 // live UDP flows
}

// Listen binds what m says: exactly HostIP (all addresses, dual-stack, when
// empty) and HostPort (ephemeral when 0). A port that is taken is an error
// wrapping ErrPortInUse that names the process holding it when it can be
// found.
func Listen(m Mapping) (*Listener, error) {
	proto, err := m.protocol()
	if err != nil {
		return nil, err
	}
	m.Protocol = proto
	ip, err := m.hostIP()
	if err != nil {
		return nil, err
	}
	network := proto
	switch {
	case !ip.IsValid():
		// "tcp"/"udp" with no address: one socket for both families.
	case ip.Is4():
		network += "4"
	default:
		network += "6" // Go sets IPV6_V6ONLY: "::" is IPv6 only, as written
	}
	var l *Listener
	if proto == "tcp" {
		var ln *net.TCPListener
		ln, err = net.ListenTCP(network, &net.TCPAddr{IP: ip.AsSlice(), Port: int(m.HostPort), Zone: ip.Zone()})
		if err == nil {
			l, err = newListener(m, ln, nil)
		}
	} else {
		var c *net.UDPConn
		c, err = net.ListenUDP(network, &net.UDPAddr{IP: ip.AsSlice(), Port: int(m.HostPort), Zone: ip.Zone()})
		if err == nil {
			l, err = newListener(m, nil, c)
		}
	}
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, portInUse(m, ip, err)
		}
		return nil, fmt.Errorf("publish %s: %w", m, err)
	}
	return l, nil
}

// PortInUseError is Listen's error for a host port that is taken. It
// matches ErrPortInUse and the bind error (syscall.EADDRINUSE) with
// errors.Is.
type PortInUseError struct {
	Mapping Mapping
	Addr    string // "127.0.0.1:8080/tcp"
	PID     int    // the process holding the port; 0 when not found
	Comm    string // its /proc/PID/comm
	Err     error  // the bind error
}

func (e *PortInUseError) Error() string {
	s := fmt.Sprintf("publish %s: %s is already in use", e.Mapping, e.Addr)
	if e.PID > 0 {
		s += " by pid " + strconv.Itoa(e.PID)
		if e.Comm != "" {
			s += " (" + e.Comm + ")"
		}
	}
	return s
}

func (e *PortInUseError) Unwrap() []error { return []error{ErrPortInUse, e.Err} }

func portInUse(m Mapping, ip netip.Addr, err error) error {
	shown := ip
	if !ip.IsValid() {
		ip, shown = netip.IPv6Unspecified(), netip.IPv4Unspecified()
	}
	e := &PortInUseError{
		Mapping: m,
		Addr:    netip.AddrPortFrom(shown, m.HostPort).String() + "/" + m.Protocol,
		Err:     err,
	}
	if pid, comm, ok := Holder(m.Protocol, netip.AddrPortFrom(ip, m.HostPort)); ok {
		e.PID, e.Comm = pid, comm
	}
	return e
}

// newListener wraps a bound socket; it closes the socket on error.
func newListener(m Mapping, tcp *net.TCPListener, udp *net.UDPConn) (*Listener, error) {
	l := &Listener{m: m, tcp: tcp, udp: udp}
	if tcp != nil {
		l.addr = tcp.Addr().(*net.TCPAddr).AddrPort()
	} else {
		l.addr = udp.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	// A socket bound to a 4-byte address reports it IPv4-mapped.
	l.addr = netip.AddrPortFrom(l.addr.Addr().Unmap(), l.addr.Port())
	l.m.HostPort = l.addr.Port()
	if udp != nil && l.addr.Addr().IsUnspecified() {
		fam, err := enablePktinfo(udp)
		if err != nil {
			udp.Close()
			return nil, fmt.Errorf("publish %s: %w", m, err)
		}
		l.pktinfo = fam
	}
	return l, nil
}

// Addr is the bound address, with the port the kernel chose for HostPort 0.
// An empty HostIP shows as [::] (or 0.0.0.0 without IPv6).
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// Mapping is the mapping Listen was given, with HostPort the bound port.
func (l *Listener) Mapping() Mapping { return l.m }

// Close releases the port. A running Serve stops, closing the connections
// and flows it forwards, and returns nil. Close is idempotent.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	cancel := l.cancel
	l.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	var err error
	if l.tcp != nil {
		err = l.tcp.Close()
	} else {
		err = l.udp.Close()
	}
	if err != nil {
		return fmt.Errorf("publish %s: close: %w", l.m, err)
	}
	return nil
}

// Serve forwards what arrives on the port to backend (the container's
// IP:ContainerPort) until ctx is done or l is closed, then closes what it
// was forwarding and returns nil once all of it has stopped. After ctx
// ends the port stays bound (clients queue in the backlog) and Serve may
// be called again, say with a restarted container's new address. One Serve
// runs at a time.
func (l *Listener) Serve(ctx context.Context, backend netip.AddrPort) error {
	backend = netip.AddrPortFrom(backend.Addr().Unmap(), backend.Port())
	if !backend.Addr().IsValid() || backend.Port() == 0 {
		return fmt.Errorf("publish %s: invalid backend address %s", l.m, backend)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return nil
	case l.serving:
		l.mu.Unlock()
		return fmt.Errorf("publish %s: already serving", l.m)
	}
	l.serving, l.cancel = true, cancel
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.serving, l.cancel = false, nil
		l.mu.Unlock()
	}()

	// A cancelled Serve leaves a deadline in the past; clear it. Then
	// interrupt the blocking Accept/ReadFrom with one when ctx ends
	// (Close cancels ctx too), which keeps the socket usable.
	if err := l.setDeadline(time.Time{}); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return fmt.Errorf("publish %s: %w", l.m, err)
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		<-ctx.Done()
		_ = l.setDeadline(time.Unix(1, 0)) // an error means closed: nothing to interrupt
	}()
	defer func() { cancel(); <-watched }()

	var err error
	if l.tcp != nil {
		err = l.serveTCP(ctx, cancel, backend)
	} else {
		err = l.serveUDP(ctx, cancel, backend)
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", l.m, err)
	}
	return nil
}

func (l *Listener) setDeadline(t time.Time) error {
	if l.tcp != nil {
		return l.tcp.SetDeadline(t)
	}
	return l.udp.SetReadDeadline(t)
}

func (l *Listener) dialTimeout() time.Duration {
	if l.DialTimeout > 0 {
		return l.DialTimeout
	}
	return DefaultDialTimeout
}

// stopped reports whether err from Accept/ReadFrom means Serve should end
// quietly: ctx is done (our deadline) or the socket was closed.
func stopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, net.ErrClosed)
}

// permanent reports whether an Accept/ReadFrom error cannot go away by
// waiting; anything else (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...) is backed
// off from and retried.
func permanent(err error) bool {
	for _, e := range []syscall.Errno{syscall.EBADF, syscall.EINVAL, syscall.ENOTSOCK, syscall.EOPNOTSUPP, syscall.EFAULT} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// backoff sleeps after a transient error: 5ms doubling to 1s, so that a
// condition such as EMFILE (whose pending connection keeps the listener
// readable) does not spin the CPU. It returns false if ctx ended.
func backoff(ctx context.Context, d *time.Duration) bool {
	switch {
	case *d == 0:
		*d = 5 * time.Millisecond
	case *d < time.Second:
		*d = min(2**d, time.Second)
	}
	t := time.NewTimer(*d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
