// Package logfile writes and reads container logs in Docker's json-file
// format: one JSON object a line, {"log":"…\n","stream":"stdout","time":"…"}.
// The shim is the only writer of a container's log.
package logfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// MaxLine is where a line without a newline is cut into a partial entry,
// as Docker cuts at 16 KiB.
const MaxLine = 16 << 10

// Entry is one log line.
type Entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// Writer appends entries to one file; safe for concurrent streams.
type Writer struct {
	mu  sync.Mutex
	f   *os.File
	now func() time.Time
}

// Open opens (creating 0600) the log at path for appending.
func Open(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return &Writer{f: f, now: time.Now}, nil
}

// Close closes the file.
func (w *Writer) Close() error { return w.f.Close() }

// Size is the current length of the file.
func (w *Writer) Size() int64 {
	st, err := w.f.Stat()
	if err != nil {
		return 0
	}
	return st.Size()
}

func (w *Writer) write(stream string, line []byte) error {
	b, err := json.Marshal(Entry{Log: string(line), Stream: stream, Time: w.now().UTC()})
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.f.Write(b)
	return err
}

// Copy reads r until EOF and writes one entry per line of it (the newline
// kept); a line longer than MaxLine is written in MaxLine pieces, and a
// last line without a newline is written as it is.
func (w *Writer) Copy(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, MaxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if werr := w.write(stream, line); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil
		default:
			return err
		}
	}
}

// Reader reads entries from an offset on; it tolerates a torn last line
// (the writer is mid-append) by leaving it for the next Next.
type Reader struct {
	f   *os.File
	off int64
	buf []byte
}

// OpenReader opens path at offset off.
func OpenReader(path string, off int64) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &Reader{f: f, off: off}, nil
}

// Close closes the file.
func (r *Reader) Close() error { return r.f.Close() }

// Drain calls fn for every complete entry written so far.
func (r *Reader) Drain(fn func(Entry) error) error {
	chunk := make([]byte, 64<<10)
	for {
		n, err := r.f.Read(chunk)
		r.buf = append(r.buf, chunk[:n]...)
		for {
			i := bytes.IndexByte(r.buf, '\n')
			if i < 0 {
				break
			}
			var e Entry
			line := r.buf[:i]
			r.buf = r.buf[i+1:]
			r.off += int64(i + 1)
			if json.Unmarshal(line, &e) != nil {
				continue // not ours: skip, never stop following
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(r.buf) > 4*MaxLine+1024 { // no line is this long: garbage
			r.buf = r.buf[:0]
		}
		if errors.Is(err, io.EOF) || n == 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
