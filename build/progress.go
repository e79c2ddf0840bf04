package build

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"
)

// Progress writes buildkit-style plain progress: "#N [stage i/n] INSTR",
// the step's output as "#N 0.123 line", then "#N DONE 0.3s", "#N CACHED"
// or "#N ERROR: ...". Steps of parallel stages interleave line by line.
type Progress struct {
	mu sync.Mutex
	w  io.Writer // nil: quiet
	n  int
}

// NewProgress writes progress to w; nil is quiet. Builds running at the
// same time may share one: steps are numbered across them.
func NewProgress(w io.Writer) *Progress { return &Progress{w: w} }

func (p *Progress) printf(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// step starts step number N with its title.
func (p *Progress) step(title string) *stepLog {
	p.mu.Lock()
	p.n++
	s := &stepLog{p: p, n: p.n, start: time.Now()}
	p.mu.Unlock()
	p.printf("#%d %s\n", s.n, title)
	return s
}

// stepLog is one step's lines; as an io.Writer it takes the step's output.
type stepLog struct {
	p     *Progress
	n     int
	start time.Time
	mu    sync.Mutex
	part  []byte
}

func (s *stepLog) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.part = append(s.part, b...)
	for {
		i := bytes.IndexByte(s.part, '\n')
		if i < 0 {
			break
		}
		s.line(s.part[:i])
		s.part = s.part[i+1:]
	}
	if len(s.part) > 64<<10 { // a very long line without newline
		s.line(s.part)
		s.part = s.part[:0]
	}
	return len(b), nil
}

func (s *stepLog) line(b []byte) {
	s.p.printf("#%d %.3f %s\n", s.n, time.Since(s.start).Seconds(), bytes.TrimRight(b, "\r"))
}

func (s *stepLog) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.part) > 0 {
		s.line(s.part)
		s.part = nil
	}
}

func (s *stepLog) done() {
	s.flush()
	s.p.printf("#%d DONE %.1fs\n", s.n, time.Since(s.start).Seconds())
}

func (s *stepLog) cached() { s.p.printf("#%d CACHED\n", s.n) }

func (s *stepLog) fail(err error) {
	s.flush()
	s.p.printf("#%d ERROR: %v\n", s.n, err)
}
