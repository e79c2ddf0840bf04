package shim

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/runtime/linux/ctl"
)

// replayMax is how much of a run's output a new attach with Replay gets
// first: what run -i/-t wrote before the CLI connected.
const replayMax = 256 << 10

type frame struct {
	stream byte
	data   []byte
}

// hub fans a run's output out to attached clients and takes their input
// for the container's stdin (a pipe, or the pty master with a tty).
type hub struct {
	mu        sync.Mutex
	tty       bool
	stdinOnce bool
	input     *os.File // nil: the container has no stdin
	master    *os.File // tty: for resize
	replay    []frame
	replayLen int
	subs      map[chan frame]bool
	ended     bool          // the current run is over: attach gets the backlog only
	served    chan struct{} // closed once an attach from the start was served
	servedOne sync.Once
}

func newHub(tty, stdinOnce bool) *hub {
	return &hub{tty: tty, stdinOnce: stdinOnce, subs: map[chan frame]bool{}, served: make(chan struct{})}
}

// awaitServed waits up to d for an attach from the start to be served.
func (h *hub) awaitServed(d time.Duration) {
	select {
	case <-h.served:
	case <-time.After(d):
	}
}

// begin starts a run's stream: input is where attached stdin goes.
func (h *hub) begin(input, master *os.File) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.input, h.master = input, master
	h.replay, h.replayLen = nil, 0
	h.ended = false
}

// end closes every attached client's stream: the run is over.
func (h *hub) end() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = true
	for ch := range h.subs {
		close(ch)
		delete(h.subs, ch)
	}
	if h.input != nil {
		h.input.Close()
		h.input = nil
	}
	h.master = nil
}

// writer is the output side for one stream, for io.TeeReader.
func (h *hub) writer(stream byte) io.Writer { return streamWriter{h, stream} }

type streamWriter struct {
	h      *hub
	stream byte
}

func (w streamWriter) Write(p []byte) (int, error) {
	b := append([]byte(nil), p...)
	h := w.h
	h.mu.Lock()
	h.replay = append(h.replay, frame{w.stream, b})
	h.replayLen += len(b)
	for h.replayLen > replayMax && len(h.replay) > 1 {
		h.replayLen -= len(h.replay[0].data)
		h.replay = h.replay[1:]
	}
	subs := make([]chan frame, 0, len(h.subs))
	for ch := range h.subs {
		subs = append(subs, ch)
	}
	h.mu.Unlock()
	// An attached client is waited for, as Docker's attach does (the
	// container blocks on a full pipe meanwhile); one that reads nothing
	// for a minute is dropped.
	for _, ch := range subs {
		func() {
			defer func() { recover() }() // closed by end or drop meanwhile
			select {
			case ch <- frame{w.stream, b}:
			case <-time.After(time.Minute):
				h.drop(ch)
			}
		}()
	}
	return len(p), nil
}

// serve accepts control connections on path until the listener closes.
func (h *hub) serve(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o600)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go h.handle(c.(*net.UnixConn))
		}
	}()
	return l, nil
}

// peerIsRoot checks SO_PEERCRED: only root may attach or exec.
func peerIsRoot(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	return err == nil && cred != nil && cred.Uid == 0
}

func (h *hub) handle(c *net.UnixConn) {
	defer c.Close()
	if !peerIsRoot(c) {
		ctl.WriteResponse(c, ctl.Response{Err: "permission denied: only root may use a container's control socket"})
		return
	}
	br := bufio.NewReader(c)
	req, err := ctl.ReadRequest(br)
	if err != nil {
		ctl.WriteResponse(c, ctl.Response{Err: err.Error()})
		return
	}
	switch req.Op {
	case ctl.OpResize:
		h.mu.Lock()
		m := h.master
		h.mu.Unlock()
		if m == nil {
			ctl.WriteResponse(c, ctl.Response{Err: "the container has no terminal"})
			return
		}
		unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: req.Rows, Col: req.Cols})
		ctl.WriteResponse(c, ctl.Response{OK: true})
	case ctl.OpAttach:
		h.attach(c, br, req)
	default:
		ctl.WriteResponse(c, ctl.Response{Err: "unknown operation " + req.Op})
	}
}

func (h *hub) attach(c *net.UnixConn, br *bufio.Reader, req ctl.Request) {
	ch := make(chan frame, 1024)
	h.mu.Lock()
	var backlog []frame
	if req.Replay {
		backlog = append(backlog, h.replay...)
		defer h.servedOne.Do(func() { close(h.served) })
	}
	if h.ended {
		close(ch) // nothing more comes: the backlog, then EOF
	} else {
		h.subs[ch] = true
	}
	input := h.input
	h.mu.Unlock()
	if err := ctl.WriteResponse(c, ctl.Response{OK: true, Tty: h.tty}); err != nil {
		h.drop(ch)
		return
	}
	if req.Stdin && input != nil {
		go func() {
			io.Copy(input, br)
			if h.stdinOnce {
				h.mu.Lock()
				if h.input == input && !h.tty {
					input.Close()
					h.input = nil
				}
				h.mu.Unlock()
			}
		}()
	}
	for _, f := range backlog {
		if ctl.WriteFrame(c, f.stream, f.data) != nil {
			h.drop(ch)
			return
		}
	}
	for f := range ch {
		if err := ctl.WriteFrame(c, f.stream, f.data); err != nil {
			h.drop(ch)
			return
		}
	}
	c.CloseWrite()
}

func (h *hub) drop(ch chan frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[ch] {
		delete(h.subs, ch)
		close(ch)
	}
}

var errNoPty = errors.New("init sent no terminal")
