// Package ctl is the shim's control-socket protocol (versioned): a client
// sends one JSON Request line and reads one JSON Response line; for
// "attach" the connection then carries the container's output from the
// shim as frames (Docker's stream header: 1 byte stream, 3 zero bytes, a
// big-endian uint32 length, the bytes) and the client's raw stdin bytes
// the other way (a half-close is EOF).
package ctl

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Version of the protocol; a shim refuses others.
const Version = 1

// Operations.
const (
	OpAttach = "attach"
	OpResize = "resize"
)

// Streams of a frame.
const (
	Stdout = 1
	Stderr = 2
)

// MaxFrame bounds a frame's payload: a reader refuses larger ones.
const MaxFrame = 1 << 20

// Request is what a client asks.
type Request struct {
	V      int    `json:"v"`
	Op     string `json:"op"`
	Stdin  bool   `json:"stdin,omitempty"`  // attach: send stdin
	Replay bool   `json:"replay,omitempty"` // attach: the current run's output so far first
	Rows   uint16 `json:"rows,omitempty"`   // resize
	Cols   uint16 `json:"cols,omitempty"`
}

// Response answers a Request.
type Response struct {
	OK  bool   `json:"ok"`
	Err string `json:"err,omitempty"`
	Tty bool   `json:"tty,omitempty"` // attach: output is one terminal stream
}

// Dial connects to a shim's socket and sends req; it returns the
// connection after a positive response.
func Dial(path string, req Request) (*net.UnixConn, *bufio.Reader, Response, error) {
	req.V = Version
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, nil, Response{}, fmt.Errorf("connect to the container's shim: %w", err)
	}
	uc := c.(*net.UnixConn)
	if err := json.NewEncoder(uc).Encode(req); err != nil {
		uc.Close()
		return nil, nil, Response{}, fmt.Errorf("shim: %w", err)
	}
	br := bufio.NewReader(uc)
	line, err := br.ReadSlice('\n')
	if err != nil {
		uc.Close()
		return nil, nil, Response{}, fmt.Errorf("shim: no answer: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		uc.Close()
		return nil, nil, Response{}, fmt.Errorf("shim: bad answer: %w", err)
	}
	if !resp.OK {
		uc.Close()
		return nil, nil, resp, fmt.Errorf("shim: %s", resp.Err)
	}
	return uc, br, resp, nil
}

// ReadRequest reads a request line, at most 4 KiB.
func ReadRequest(br *bufio.Reader) (Request, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > 4096 {
			return Request{}, errors.New("request too long")
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return Request{}, err
		}
	}
	var r Request
	if err := json.Unmarshal(line, &r); err != nil {
		return Request{}, fmt.Errorf("bad request: %w", err)
	}
	if r.V != Version {
		return Request{}, fmt.Errorf("protocol version %d, this shim speaks %d: use the berth that started the container", r.V, Version)
	}
	return r, nil
}

// WriteResponse writes resp as one line.
func WriteResponse(w io.Writer, resp Response) error { return json.NewEncoder(w).Encode(resp) }

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, stream byte, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), MaxFrame)
		var h [8]byte
		h[0] = stream
		binary.BigEndian.PutUint32(h[4:], uint32(n))
		if _, err := w.Write(append(h[:], p[:n]...)); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// ReadFrames copies frames from r to stdout and stderr until EOF.
func ReadFrames(r io.Reader, stdout, stderr io.Writer) error {
	var h [8]byte
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := int(binary.BigEndian.Uint32(h[4:]))
		if n > MaxFrame || (h[0] != Stdout && h[0] != Stderr) {
			return fmt.Errorf("bad frame from the shim (stream %d, %d bytes)", h[0], n)
		}
		w := stdout
		if h[0] == Stderr {
			w = stderr
		}
		for n > 0 {
			m, err := io.ReadFull(r, buf[:min(n, len(buf))])
			if err != nil {
				return err
			}
			if w != nil {
				if _, err := w.Write(buf[:m]); err != nil {
					return err
				}
			}
			n -= m
		}
	}
}
