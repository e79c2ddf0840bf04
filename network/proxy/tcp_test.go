package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestTCPRoundTrip(t *testing.T) {
	checkLeaks(t)
	backend := tcpServer(t, echo)
	_, addr := startProxy(t, Mapping{HostIP: "127.0.0.1", Protocol: "tcp"}, backend)

	var wg sync.WaitGroup
	for i := range 10 {
		c := dialTCP(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for j := range 5 {
				if err := exchange(c, fmt.Sprintf("hello %d.%d", i, j), ""); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestTCPHalfClose(t *testing.T) {
	checkLeaks(t)

	t.Run("client first", func(t *testing.T) {
		// The server reads to EOF and only then answers.
		backend := tcpServer(t, func(c *net.TCPConn) {
			n, _ := io.Copy(io.Discard, c)
			fmt.Fprintf(c, "read %d bytes", n)
		})
		_, addr := startProxy(t, Mapping{HostIP: "127.0.0.1"}, backend)
		c := dialTCP(t, addr)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(bytes.Repeat([]byte("x"), 1000)); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "read 1000 bytes" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("server first", func(t *testing.T) {
		// The server greets, half-closes, and still reads what follows.
		counted := make(chan int64, 1)
		backend := tcpServer(t, func(c *net.TCPConn) {
			io.WriteString(c, "hi")
			c.CloseWrite()
			n, _ := io.Copy(io.Discard, c)
			counted <- n
		})
		_, addr := startProxy(t, Mapping{HostIP: "127.0.0.1"}, backend)
		c := dialTCP(t, addr)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c) // to the server's FIN
		if err != nil || string(got) != "hi" {
			t.Fatalf("got %q, %v", got, err)
		}
		if _, err := c.Write(make([]byte, 500)); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		select {
		case n := <-counted:
			if n != 500 {
				t.Fatalf("server read %d bytes, want 500", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("server never saw EOF")
		}
	})
}

func TestTCPBackendDown(t *testing.T) {
	checkLeaks(t)
	// A port nobody listens on: bind one and close it.
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: loopback.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	backend := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()

	_, addr := startProxy(t, Mapping{HostIP: "127.0.0.1"}, backend)
	for range 3 {
		c := dialTCP(t, addr)
		// The proxy accepts, fails to connect and closes: the client sees
		// EOF or a reset, not silence. (The deadline only bounds a hang.)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := c.Read(make([]byte, 1))
		if err == nil || isTimeout(err) {
			t.Fatalf("read from a proxied connection to a dead backend: %v", err)
		}
		c.Close()
	}
}

func TestTCPIntegrity(t *testing.T) {
	checkLeaks(t)
	backend := tcpServer(t, echo)
	_, addr := startProxy(t, Mapping{HostIP: "127.0.0.1"}, backend)

	data := make([]byte, 6<<20+123)
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	c := dialTCP(t, addr)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), sha256Sum(data)) {
		t.Fatalf("echoed %d bytes, sha256 %x; sent %d, sha256 %x", n, h.Sum(nil), len(data), sha256Sum(data))
	}
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestTCPServeStops: cancelling Serve closes the proxied connections and
// returns nil, the port stays bound and Serve can run again (to a new
// backend); Close then ends it.
func TestTCPServeStops(t *testing.T) {
	checkLeaks(t)
	backend1 := tcpServer(t, echo)
	backend2 := tcpServer(t, func(c *net.TCPConn) {
		io.WriteString(c, "two:")
		echo(c)
	})
	l, err := Listen(Mapping{HostIP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr()

	s := serve(t, l, backend1)
	c := dialTCP(t, addr)
	roundTrip(t, c, "one", "")
	s.cancel()
	if err := s.wait(t); err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("proxied connection after cancel: read %v, want EOF or reset", err)
	}

	// Still bound: a client connects (to the backlog) before Serve resumes.
	c2 := dialTCP(t, addr)
	s2 := serve(t, l, backend2)
	roundTrip(t, c2, "x", "two:")

	// A second concurrent Serve is refused.
	if err := l.Serve(context.Background(), backend1); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Fatalf("second Serve: %v", err)
	}

	l.Close()
	if err := s2.wait(t); err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if _, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr)); err == nil {
		t.Fatal("port still accepts after Close")
	}
	// Serve on a closed Listener returns at once.
	if err := l.Serve(context.Background(), backend1); err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
}

// TestTCPAcceptEMFILE runs the proxy out of file descriptors: accept fails
// with EMFILE while a connection is pending (so the listener stays
// readable), which must be backed off from rather than retried in a tight
// loop, and the connection is served once descriptors are available.
func TestTCPAcceptEMFILE(t *testing.T) {
	checkLeaks(t)
	backend := tcpServer(t, echo)
	l, addr := startProxy(t, Mapping{HostIP: "127.0.0.1"}, backend)

	// The client socket is made before the limit drops and connects
	// after, so the proxy cannot have accepted it yet.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// Go's splice keeps pipes in a sync.Pool whose finalizers close them:
	// flush it, so that no descriptor below the limit is freed meanwhile.
	for range 4 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	probe, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	lowest := probe.Fd() // the lowest free descriptor
	probe.Close()
	lim := unix.Rlimit{Cur: uint64(lowest), Max: old.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var fillers []*os.File // any descriptor freed below the limit since
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
				t.Fatal(err)
			}
			for _, f := range fillers {
				f.Close()
			}
		}
	}
	defer restore()
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			restore()
			t.Fatal(err)
		}
		fillers = append(fillers, f)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())}); err != nil {
		t.Fatal(err)
	}
	// Wait for the accept loop to hit the limit, then give it time in which
	// a busy loop would retry hundreds of thousands of times.
	for deadline := time.Now().Add(10 * time.Second); l.acceptRetries.Load() == 0; {
		if time.Now().After(deadline) {
			restore()
			t.Fatal("accept never failed with the descriptor limit lowered")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	retries := l.acceptRetries.Load()
	restore()
	t.Logf("%d accept retries while out of descriptors", retries)
	if retries > 50 {
		t.Fatalf("%d accept retries in ~300ms: not backing off", retries)
	}

	f := os.NewFile(uintptr(fd), "client")
	fd = -1
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "after EMFILE", "")
}

func TestListen(t *testing.T) {
	checkLeaks(t)
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			l, err := Listen(Mapping{HostIP: "127.0.0.1", HostPort: 0, ContainerPort: 80, Protocol: proto})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			a := l.Addr()
			if a.Addr() != loopback || a.Port() == 0 {
				t.Fatalf("Addr() = %s, want 127.0.0.1:<nonzero>", a)
			}
			if m := l.Mapping(); m.HostPort != a.Port() || m.Protocol != proto {
				t.Fatalf("Mapping() = %+v", m)
			}

			// Taken: by this very process.
			m := Mapping{HostIP: "127.0.0.1", HostPort: a.Port(), ContainerPort: 80, Protocol: proto}
			_, err = Listen(m)
			if !errors.Is(err, ErrPortInUse) || !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("second Listen: %v, want ErrPortInUse", err)
			}
			t.Log(err)
			contains(t, err.Error(), m.String(), fmt.Sprintf("127.0.0.1:%d/%s is already in use", a.Port(), proto),
				fmt.Sprintf("by pid %d (", os.Getpid()))

			// All addresses conflicts with 127.0.0.1 too.
			_, err = Listen(Mapping{HostPort: a.Port(), ContainerPort: 80, Protocol: proto})
			if !errors.Is(err, ErrPortInUse) {
				t.Fatalf("Listen on all addresses: %v, want ErrPortInUse", err)
			}
			contains(t, err.Error(), fmt.Sprintf("0.0.0.0:%d/%s", a.Port(), proto), fmt.Sprintf("pid %d", os.Getpid()))
		})
	}

	t.Run("all addresses", func(t *testing.T) {
		l, err := Listen(Mapping{HostPort: 0, Protocol: "TCP"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if !l.Addr().Addr().IsUnspecified() || l.Addr().Port() == 0 {
			t.Fatalf("Addr() = %s, want an unspecified address", l.Addr())
		}
	})

	t.Run("invalid", func(t *testing.T) {
		for _, m := range []Mapping{
			{HostIP: "127.0.0.1", Protocol: "sctp"},
			{HostIP: "localhost", Protocol: "tcp"},
			{HostIP: "127.0.0.1.5", Protocol: "udp"},
		} {
			if l, err := Listen(m); err == nil {
				l.Close()
				t.Errorf("Listen(%+v) succeeded", m)
			} else if errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), m.String()) {
				t.Errorf("Listen(%+v): %v", m, err)
			}
		}
	})
}

func TestMappingString(t *testing.T) {
	for m, want := range map[Mapping]string{
		{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}: "127.0.0.1:8080:80/tcp",
		{HostIP: "::1", HostPort: 53, ContainerPort: 53, Protocol: "udp"}:         "[::1]:53:53/udp",
		{HostIP: "[::]", HostPort: 53, ContainerPort: 53, Protocol: "udp"}:        "[::]:53:53/udp",
		{HostPort: 8080, ContainerPort: 80}:                                       "8080:80/tcp",
	} {
		if got := m.String(); got != want {
			t.Errorf("%+v: %q, want %q", m, got, want)
		}
	}
}

func TestHolder(t *testing.T) {
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Skip(err)
	}
	for _, proto := range []string{"tcp", "udp"} {
		l, err := Listen(Mapping{HostIP: "127.0.0.1", Protocol: proto})
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []netip.AddrPort{l.Addr(), netip.AddrPortFrom(netip.IPv6Unspecified(), l.Addr().Port())} {
			pid, c, ok := Holder(proto, q)
			if !ok || pid != os.Getpid() || c != strings.TrimSpace(string(comm)) {
				t.Errorf("Holder(%s, %s) = %d, %q, %v; want %d, %q", proto, q, pid, c, ok, os.Getpid(), strings.TrimSpace(string(comm)))
			}
		}
		port := l.Addr().Port()
		l.Close()
		if pid, _, ok := Holder(proto, netip.AddrPortFrom(loopback, port)); ok {
			t.Errorf("Holder(%s, closed port) = %d", proto, pid)
		}
	}
}

func TestParseProcAddr(t *testing.T) {
	// /proc/net prints each 32-bit word in host order; this test encodes
	// the expectation for little-endian hosts.
	if !littleEndian() {
		t.Skip("big-endian")
	}
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0035":                         "0.0.0.0:53",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"0000000000000000FFFF00000100007F:0016": "[::ffff:127.0.0.1]:22",
	} {
		got, ok := parseProcAddr(in)
		if !ok || got.String() != want {
			t.Errorf("parseProcAddr(%q) = %s, %v; want %s", in, got, ok, want)
		}
	}
}

func littleEndian() bool { return binary.NativeEndian.Uint16([]byte{1, 0}) == 1 }
