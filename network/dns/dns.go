// Package dns is the embedded DNS server a container's shim runs on
// 127.0.0.11:53 inside the container's network namespace.
//
// A container may sit on several networks, and each network keeps its own
// records file (network.Records, rewritten atomically by network/bridge).
// The server merges the records files of every network the container is on
// into one view, so the container resolves the names of all its peers
// (container names, short IDs, service names, aliases) to every live
// replica's address, and answers PTR queries for those addresses. Any other
// query is forwarded to the host's resolvers. The shim creates the listening
// sockets in the container's namespace and dials the upstreams from the
// host's; this package only serves on the sockets it is given.
package dns

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"berth.dev/berth/internal/errdefs"
)

// Defaults and limits.
const (
	// DefaultTTL is the TTL of local answers when Config.TTL is 0: 600 s,
	// as Docker's embedded DNS. Addresses are keyed by container name, so a
	// recreated replica keeps its address and a long TTL rarely goes stale.
	DefaultTTL uint32 = 600
	// DefaultTimeout bounds one upstream exchange when Config.Timeout is 0.
	DefaultTimeout = 2 * time.Second
	// MaxZoneSize is the largest records file read; a larger one is
	// refused and the zone keeps its previous content.
	MaxZoneSize = 16 << 20

	aliveTTL       = 200 * time.Millisecond
	maxUDPForwards = 256              // forwarded UDP queries in flight; more are dropped
	maxTCPConns    = 64               // TCP clients at once; more are closed at once
	tcpIdle        = 10 * time.Second // a TCP client sends its next query within this
	tcpWrite       = 5 * time.Second
)

// ErrClosed is returned by Serve once Close has been called.
var ErrClosed = errors.New("dns: server closed")

// Config configures a Server.
type Config struct {
	// Zones are the paths of the records files (network.Records), one per
	// network the container is on. A missing file is an empty zone.
	Zones []string
	// Upstreams are the host's resolvers, tried in order for every name
	// that is not local.
	Upstreams []netip.AddrPort
	// Alive reports whether a container is running; records of a container
	// that is not are not answered. nil means every container is alive.
	// Results are cached for up to a second.
	Alive func(containerID string) bool
	// Timeout bounds the exchange with one upstream (UDP and the TCP retry
	// together); a forwarded query takes at most Timeout*len(Upstreams).
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// TTL of local answers; 0 means DefaultTTL.
	TTL uint32
	// Log, if set, receives reload failures and upstream trouble.
	Log func(format string, args ...any)
}

// Server answers DNS queries from the merged zones and forwards the rest.
// It is safe for concurrent use; one Server may serve several socket pairs.
type Server struct {
	upstreams []netip.AddrPort
	alive     *aliveCache
	timeout   time.Duration
	ttl       uint32
	logf      func(format string, args ...any)

	idx atomic.Pointer[index] // what queries read; swapped whole on reload
	// fresh: a local lookup first checks the zone files for changes (a
	// stat each) and reloads them if one changed (watch.go). While `up`
	// attaches a hundred containers their records files change a hundred
	// times; nothing is read until a container asks.
	fresh bool

	reloadMu sync.Mutex
	zones    []zoneFile // guarded by reloadMu
	lazyMu   sync.Mutex // one lazy reload at a time

	base    context.Context // cancelled by Close
	stop    context.CancelFunc
	mu      sync.Mutex // guards closed and the Add side of wg
	closed  bool
	wg      sync.WaitGroup // every Serve call
	lastLog atomic.Int64   // unix nanos of the last upstream-failure log line
}

// New returns a Server with the zones loaded. Each local lookup sees the
// zone files as they are then: a file that changed since it was read is
// read again first. A zone file that exists but cannot be read or parsed
// is an error; later reloads keep the previous content of such a file
// instead. It starts no goroutine.
func New(c Config) (*Server, error) {
	return newServer(c, options{watch: true})
}

func newServer(c Config, opts options) (*Server, error) {
	s := &Server{
		timeout: c.Timeout,
		ttl:     c.TTL,
		logf:    c.Log,
		alive:   newAliveCache(c.Alive),
		fresh:   opts.watch,
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	for _, u := range c.Upstreams {
		if !u.IsValid() || u.Port() == 0 || !u.Addr().IsValid() {
			return nil, errdefs.Invalidf("dns: upstream %q: not an address and port", u)
		}
		s.upstreams = append(s.upstreams, netip.AddrPortFrom(u.Addr().Unmap(), u.Port()))
	}
	for _, p := range c.Zones {
		if p == "" {
			return nil, errdefs.Invalidf("dns: empty zone path")
		}
		s.zones = append(s.zones, zoneFile{path: filepath.Clean(p)})
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.base, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// options are knobs New does not expose, for tests.
type options struct {
	watch bool // reload a changed zone file at the next lookup
}

// Reload re-reads every zone file now. Files that fail keep their previous
// content; the error names each of them.
func (s *Server) Reload() error {
	return s.load()
}

// reload is Reload for a lookup: failures are logged.
func (s *Server) reload() {
	if err := s.load(); err != nil {
		s.logf("dns: reload: %v", err)
	}
}

// Close stops every running Serve call and waits for them.
// It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	return nil
}

// enter registers a Serve call; it fails once Close has been called.
func (s *Server) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.wg.Add(1)
	return nil
}

// logLimited logs at most once a second, for failures a query storm repeats.
func (s *Server) logLimited(format string, args ...any) {
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	if now-last < int64(time.Second) || !s.lastLog.CompareAndSwap(last, now) {
		return
	}
	s.logf(format, args...)
}
