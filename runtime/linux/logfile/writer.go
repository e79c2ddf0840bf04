package logfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults of Options, as Docker's json-file with max-size=10m, max-file=3.
const (
	DefaultMaxSize    = 10 << 20
	DefaultMaxFiles   = 3
	DefaultFlushAfter = time.Second
)

// Options configure a Writer.
type Options struct {
	// MaxSize is the size json.log is rotated at: an entry that would take
	// it past MaxSize goes to a fresh file (a file holding a single entry
	// may be larger). 0 is DefaultMaxSize; < 0 never rotates.
	MaxSize int64
	// MaxFiles is how many files are kept, json.log included: 3 keeps
	// json.log, json.log.1 and json.log.2. 0 is DefaultMaxFiles; 1 keeps
	// json.log alone (rotation starts it afresh).
	MaxFiles int
	// FlushAfter is how long a line may wait for its newline before what
	// there is of it is written as a partial entry. 0 is DefaultFlushAfter;
	// < 0 waits until MaxLine bytes or the end of the stream. It needs a
	// reader with read deadlines (an *os.File pipe); others wait.
	FlushAfter time.Duration
}

// Writer appends entries to a log, rotating it; safe for concurrent
// streams (one Copy per stream). Entries are timestamped under the
// Writer's lock, so times never go backwards within the log (unless the
// clock does).
type Writer struct {
	mu   sync.Mutex
	path string
	opt  Options
	f    *os.File
	size int64 // of json.log
	// retryAt: a failed rotation is tried again once json.log reaches this.
	retryAt int64
	buf     []byte
	now     func() time.Time
}

// Open opens (creating 0600) the log at path for appending, without
// rotation and with the default partial-line flush.
func Open(path string) (*Writer, error) {
	return OpenWith(path, Options{MaxSize: -1})
}

// OpenWith opens (creating 0600) the log at path for appending, rotating
// it as o says; rotated files beyond o.MaxFiles (left by an earlier,
// larger setting) are removed.
func OpenWith(path string, o Options) (*Writer, error) {
	if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.FlushAfter == 0 {
		o.FlushAfter = DefaultFlushAfter
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}
	w := &Writer{path: path, opt: o, f: f, size: st.Size(), now: time.Now}
	if o.MaxSize > 0 {
		for _, n := range rotatedIndexes(path) {
			if n >= o.MaxFiles {
				os.Remove(rotatedName(path, n))
			}
		}
	}
	return w, nil
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// Size is the current length of json.log.
func (w *Writer) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size
}

// rotatedName is path.n.
func rotatedName(path string, n int) string { return path + "." + strconv.Itoa(n) }

// rotatedIndexes lists the n of the files path.n that exist.
func rotatedIndexes(path string) []int {
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil
	}
	base := filepath.Base(path) + "."
	var out []int
	for _, e := range ents {
		s, ok := strings.CutPrefix(e.Name(), base)
		if !ok || s == "" || s[0] == '0' {
			continue
		}
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// rotate moves json.log to json.log.1 (and so on down, dropping the
// oldest) and starts a new json.log. On failure the current file stays in
// use and the next try waits for another MaxSize of output. Called with
// w.mu held, between whole entries.
func (w *Writer) rotate() error {
	fail := func(err error) error {
		w.retryAt = w.size + w.opt.MaxSize
		return fmt.Errorf("rotate log %s: %w (logging goes on in the current file)", w.path, err)
	}
	n := w.opt.MaxFiles
	if n > 1 {
		if err := os.Remove(rotatedName(w.path, n-1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
		for i := n - 2; i >= 1; i-- {
			if err := os.Rename(rotatedName(w.path, i), rotatedName(w.path, i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fail(err)
			}
		}
		if err := os.Rename(w.path, rotatedName(w.path, 1)); err != nil {
			return fail(err)
		}
	} else if err := os.Remove(w.path); err != nil {
		return fail(err)
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fail(err) // readers keep following the renamed file
	}
	w.f.Close()
	w.f, w.size, w.retryAt = f, 0, 0
	return nil
}

// flushLocked writes w.buf out.
func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.f.Write(w.buf)
	w.size += int64(n)
	w.buf = w.buf[:0]
	if err != nil {
		return fmt.Errorf("write log %s: %w", w.path, err)
	}
	return nil
}

// writeEntries writes one entry per piece, in order, with one write per
// file; it rotates before an entry that would take json.log past MaxSize.
func (w *Writer) writeEntries(stream string, pieces [][]byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for _, p := range pieces {
		mark := len(w.buf)
		w.buf = appendEntry(w.buf, stream, p, w.now())
		if w.opt.MaxSize > 0 && w.size+int64(mark) > 0 && w.size+int64(len(w.buf)) > w.opt.MaxSize &&
			(w.retryAt == 0 || w.size+int64(mark) >= w.retryAt) {
			entry := append([]byte(nil), w.buf[mark:]...)
			w.buf = w.buf[:mark]
			if err := w.flushLocked(); err != nil {
				errs = append(errs, err)
			}
			if err := w.rotate(); err != nil {
				errs = append(errs, err)
			}
			w.buf = append(w.buf, entry...)
		}
	}
	if err := w.flushLocked(); err != nil {
		errs = append(errs, err)
	}
	if len(w.buf) > 1<<20 {
		w.buf = nil // do not keep a huge buffer around
	}
	return errors.Join(errs...)
}

// cut returns where to end a piece of at most MaxLine bytes of p (len(p) >=
// MaxLine): at MaxLine, or before a UTF-8 sequence that would be split.
func cut(p []byte) int {
	n := MaxLine
	for i := n - 1; i >= n-utf8.UTFMax+1; i-- {
		c := p[i]
		if c&0xc0 == 0x80 {
			continue // continuation byte: look further back for its start
		}
		if c >= 0xc0 { // a leading byte: its sequence must fit
			need := 2
			if c >= 0xe0 {
				need = 3
			}
			if c >= 0xf0 {
				need = 4
			}
			if i+need > n {
				return i
			}
		}
		break
	}
	return n
}

// split appends to pieces the entries in data: whole lines (newline kept)
// of at most MaxLine bytes and MaxLine pieces of longer ones. With final,
// what is left without a newline is a piece too; otherwise it waits, and
// split returns how many bytes of data it used.
func split(pieces [][]byte, data []byte, final bool) ([][]byte, int) {
	i := 0
	for i < len(data) {
		rest := data[i:]
		if j := bytes.IndexByte(rest[:min(len(rest), MaxLine)], '\n'); j >= 0 {
			pieces = append(pieces, rest[:j+1])
			i += j + 1
			continue
		}
		switch {
		case len(rest) >= MaxLine:
			k := cut(rest)
			pieces = append(pieces, rest[:k])
			i += k
		case final:
			pieces = append(pieces, rest)
			i = len(data)
		default:
			return pieces, i
		}
	}
	return pieces, i
}

type readDeadliner interface{ SetReadDeadline(time.Time) error }

// Copy reads r until EOF and writes one entry per line of it as described
// in the package documentation: lines with their newline, MaxLine pieces
// of longer lines, a partial line after FlushAfter (when r has read
// deadlines), and a last line without newline at EOF.
//
// A failed write does not stop Copy: it keeps reading, so the program is
// never blocked on a full pipe, and tries again with the next entries; it
// returns the first write error at EOF (or the read error, if any).
func (w *Writer) Copy(stream string, r io.Reader) error { return w.CopyTee(stream, r, nil) }

// CopyTee is Copy that also hands everything it reads, as it reads it, to
// tee (when not nil; its errors are ignored: a slow or gone consumer must
// not stop the log). Unlike Copy over an io.TeeReader, it keeps r's read
// deadlines, so partial lines are still flushed after FlushAfter.
func (w *Writer) CopyTee(stream string, r io.Reader, tee io.Writer) error {
	buf := make([]byte, 4*MaxLine)
	var pieces [][]byte
	n := 0 // pending bytes at buf[:n]
	var werr error
	dl, _ := r.(readDeadliner)
	if w.opt.FlushAfter < 0 {
		dl = nil
	}
	armed := false
	arm := func(on bool) {
		if dl == nil || (!on && !armed) {
			return
		}
		var t time.Time
		if on {
			t = time.Now().Add(w.opt.FlushAfter)
		}
		if err := dl.SetReadDeadline(t); err != nil {
			dl = nil // no deadlines on this reader: partial lines wait
			return
		}
		armed = on
	}
	write := func(final bool) {
		var used int
		pieces, used = split(pieces[:0], buf[:n], final)
		if len(pieces) > 0 {
			if err := w.writeEntries(stream, pieces); err != nil && werr == nil {
				werr = err
			}
		}
		clear(pieces)
		if used > 0 {
			n = copy(buf, buf[used:n])
		}
		switch {
		case n == 0:
			arm(false)
		case used > 0 || !armed:
			arm(true) // a new partial line: its wait starts now
		}
	}
	for {
		m, err := r.Read(buf[n:])
		n += m
		if m > 0 {
			if tee != nil {
				tee.Write(buf[n-m : n])
			}
			write(false)
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			write(true)
			continue
		}
		arm(false)
		write(true)
		if errors.Is(err, io.EOF) {
			return werr
		}
		return fmt.Errorf("read the container's %s: %w", stream, err)
	}
}
