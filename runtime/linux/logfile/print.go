package logfile

import (
	"fmt"
	"io"
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

// put buffers the text of one record of stdout, or stderr, and a newline
// after it with nl.
func (p *Printer) put(text []byte, nl, stderr bool) error {
	s := 0
	if stderr {
		s = 1
	}
	if s != p.cur {
		if err := p.Flush(); err != nil {
			return err
		}
		p.cur = s
	}
	p.buf = append(p.buf, text...)
	if nl {
		p.buf = append(p.buf, '\n')
	}
	if len(p.buf) >= printBuf {
		return p.Flush()
	}
	return nil
}

// putRun is put for the texts of several records of one stream; a long
// run goes out without a copy.
func (p *Printer) putRun(text []byte, stderr bool) error {
	if len(text) < printBuf {
		return p.put(text, false, stderr)
	}
	if err := p.Flush(); err != nil {
		return err
	}
	p.cur = 0
	if stderr {
		p.cur = 1
	}
	w := p.Stdout
	if stderr {
		w = p.Stderr
	}
	if w == nil {
		return nil
	}
	if _, err := w.Write(text); err != nil {
		return fmt.Errorf("write logs: %w", err)
	}
	return nil
}

// Flush writes out what is buffered.
func (p *Printer) Flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	w := p.Stdout
	if p.cur == 1 {
		w = p.Stderr
	}
	b := p.buf
	p.buf = p.buf[:0]
	if w == nil {
		return nil
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write logs: %w", err)
	}
	return nil
}
