package logfile

import (
	"fmt"
	"io"
	"slices"
)

// TimeFormat is how Printer prefixes entries with Timestamps: RFC 3339
// with nanoseconds at a fixed width, as `docker logs -t` prints them.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Printer writes records the way `docker logs` prints them: each record's
// text to Stdout or Stderr by its stream (other streams to Stdout; a nil
// writer drops its stream), prefixed with its UTC time and a space when
// Timestamps. It buffers; the buffer goes out whenever the stream changes,
// so two writers sharing a terminal see the records in order. Call Flush
// when caught up and at the end.
type Printer struct {
	Stdout, Stderr io.Writer
	Timestamps     bool

	buf []byte
	cur int // stream of buf: 0 stdout, 1 stderr
}

const printBuf = 64 << 10

// Print buffers one record.
func (p *Printer) Print(r *Record) error {
	s := 0
	if r.Stream == "stderr" {
		s = 1
	}
	if s != p.cur {
		if err := p.Flush(); err != nil {
			return err
		}
		p.cur = s
	}
	if p.Timestamps {
		t, err := r.Time()
		if err != nil {
			return nil // not an entry to print a time for
		}
		p.buf = t.UTC().AppendFormat(p.buf, TimeFormat)
		p.buf = append(p.buf, ' ')
	}
	p.buf = append(p.buf, r.Log...)
	if len(p.buf) >= printBuf {
		return p.Flush()
	}
	return nil
}

// putLine buffers the text of the entry at the start of b if fastCopy
// takes it, and returns the entry's length; 0 when it does not (the
// caller then decodes the line and calls Print).
func (p *Printer) putLine(b []byte) (int, error) {
	if cap(p.buf)-len(p.buf) < jobRoom {
		p.buf = slices.Grow(p.buf, printBuf+jobRoom)
	}
	l := len(p.buf)
	n, w, _, stderr := fastCopy(b, p.buf[l:cap(p.buf)])
	if n == 0 {
		return 0, nil
	}
	if s := int(b2i(stderr)); s != p.cur {
		// Copied after the other stream's text: that goes out first.
		if err := p.write(p.buf[:l]); err != nil {
			return n, err
		}
		copy(p.buf[:w], p.buf[l:l+w])
		l, p.cur = 0, s
	}
	p.buf = p.buf[:l+w]
	if len(p.buf) >= printBuf {
		return n, p.Flush()
	}
	return n, nil
}

// putRun buffers the texts of several records of one stream; a long run
// goes out without a copy.
func (p *Printer) putRun(text []byte, stderr bool) error {
	s := int(b2i(stderr))
	if len(text) < printBuf {
		if s != p.cur {
			if err := p.Flush(); err != nil {
				return err
			}
			p.cur = s
		}
		p.buf = append(p.buf, text...)
		if len(p.buf) >= printBuf {
			return p.Flush()
		}
		return nil
	}
	if err := p.Flush(); err != nil {
		return err
	}
	p.cur = s
	return p.write(text)
}

// Flush writes out what is buffered.
func (p *Printer) Flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	b := p.buf
	p.buf = p.buf[:0]
	return p.write(b)
}

// write writes b to the writer of the current stream.
func (p *Printer) write(b []byte) error {
	w := p.Stdout
	if p.cur == 1 {
		w = p.Stderr
	}
	if w == nil || len(b) == 0 {
		return nil
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write logs: %w", err)
	}
	return nil
}
