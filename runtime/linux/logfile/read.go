package logfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"sort"
	"syscall"
	"time"
)

// DefaultPoll is how often a following reader looks for more.
const DefaultPoll = 50 * time.Millisecond

// All, as ReadOptions.Tail, reads every entry.
const All = -1

// ReadOptions select the entries Read delivers and say whether it follows.
type ReadOptions struct {
	// Tail < 0 (All) starts at the oldest entry; n ≥ 0 at the n-th last
	// entry (counted among those within Since and Until), 0 at the end.
	Tail int
	// Since skips entries older than it; the first entry newer than
	// Until ends the read (entries are in time order). Zero: no bound.
	Since, Until time.Time
	// Follow keeps reading what is appended, across rotation, until ctx
	// ends, Until has passed, or Writing reports false and all is read.
	Follow bool
	// Writing reports whether a writer may still append (the container's
	// shim is alive); nil: follow until ctx ends.
	Writing func() bool
	// CaughtUp, when following, is called each time everything written so
	// far was delivered, before waiting for more: the place to flush.
	CaughtUp func() error
	// Poll is how often a following reader checks Writing and, where
	// inotify is missing, looks for more (DefaultPoll); with inotify it
	// wakes as soon as the log's directory changes.
	Poll time.Duration
}

// errUntil ends a read at the first entry after Until.
var errUntil = errors.New("past until")

// Read delivers the entries of the log at path (json.log.N … json.log,
// oldest first) selected by o to fn, and with o.Follow what is appended
// later. fn's Record is valid until fn returns; an error from fn ends Read
// with that error. A missing log is no error: there is nothing to read.
// When ctx ends Read returns ctx.Err().
func Read(ctx context.Context, path string, o ReadOptions, fn func(*Record) error) error {
	return read(ctx, path, o, fn, nil)
}

// Print is Read into p: it writes the entries o selects as p says, and
// flushes p each time it has caught up and at the end (o.CaughtUp is
// called after that). It is the fast way to print a log: without time
// bounds or timestamps, entries in the form Writer writes go from the
// read buffer to p's buffer without becoming Records, and a long stretch
// of log is mapped and decoded on every CPU at once. p is used from
// another goroutine while Print runs.
func Print(ctx context.Context, path string, o ReadOptions, p *Printer) error {
	caughtUp := o.CaughtUp
	o.CaughtUp = func() error {
		if err := p.Flush(); err != nil || caughtUp == nil {
			return err
		}
		return caughtUp()
	}
	var fast *Printer
	if o.Since.IsZero() && o.Until.IsZero() && !p.Timestamps {
		fast = p
	}
	// In a goroutine of its own: the caller's may be locked to its thread
	// (berth's main is), and every hand-off between the goroutines that
	// read ahead would then cost a switch of threads.
	done := make(chan error, 1)
	go func() {
		err := read(ctx, path, o, p.Print, fast)
		if ferr := p.Flush(); err == nil {
			err = ferr
		}
		done <- err
	}()
	return <-done
}

// read is Read, with Print's fast path into out when it is not nil.
func read(ctx context.Context, path string, o ReadOptions, fn func(*Record) error, out *Printer) error {
	chain, err := openChain(path)
	if err != nil {
		return err
	}
	fl := &follower{path: path, out: out}
	defer fl.close()
	if err := fl.start(chain, o); err != nil {
		return err
	}
	needTime := !o.Since.IsZero() || !o.Until.IsZero()
	emit := fn
	if needTime {
		emit = func(r *Record) error {
			t, err := r.Time()
			switch {
			case err != nil, t.Before(o.Since):
				return nil
			case !o.Until.IsZero() && t.After(o.Until):
				return errUntil
			}
			return fn(r)
		}
	}
	poll := o.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	var checked time.Time // when Writing was last asked
	var w *watcher
	if o.Follow {
		w = newWatcher(path)
		defer func() { w.close() }()
	}
	for {
		progressed, err := fl.drain(ctx, emit)
		if errors.Is(err, errUntil) {
			return nil
		}
		if err != nil || !o.Follow {
			return err
		}
		if o.CaughtUp != nil {
			if err := o.CaughtUp(); err != nil {
				return err
			}
		}
		if progressed {
			continue
		}
		if !o.Until.IsZero() && time.Now().After(o.Until) {
			return nil
		}
		// Writing is asked at most once a poll (the first time at once):
		// a busy log wakes the follower at every write.
		if o.Writing != nil && time.Since(checked) >= poll {
			checked = time.Now()
			if !o.Writing() {
				// Asked before this last look: whatever it wrote is in.
				if _, err := fl.drain(ctx, emit); err != nil && !errors.Is(err, errUntil) {
					return err
				}
				return nil
			}
		}
		if err := w.wait(ctx, poll); err != nil {
			return err
		}
		if w.f == nil {
			// A watch set before the log dir existed is a timer: try again.
			if nw := newWatcher(path); nw.f != nil {
				w = nw
			}
		}
	}
}

// logFile is one open file of a log.
type logFile struct {
	f    *os.File
	info os.FileInfo // at open: identity (dev, inode) for os.SameFile
}

func closeAll(files []*logFile) {
	for _, lf := range files {
		lf.f.Close()
	}
}

// chainNames lists the files of the log at path, oldest first.
func chainNames(path string) []string {
	idx := rotatedIndexes(path)
	sort.Sort(sort.Reverse(sort.IntSlice(idx)))
	names := make([]string, 0, len(idx)+1)
	for _, n := range idx {
		names = append(names, rotatedName(path, n))
	}
	return append(names, path)
}

// openChain opens the files of the log at path, oldest first, as one view:
// it opens them all, then checks that the names still lead to the files
// it holds, and starts again when a rotation moved them meanwhile.
func openChain(path string) ([]*logFile, error) {
	for attempt := 0; ; attempt++ {
		var files []*logFile
		for _, name := range chainNames(path) {
			f, err := os.Open(name)
			if errors.Is(err, os.ErrNotExist) {
				continue // rotated away meanwhile, or no log yet
			}
			var fi os.FileInfo
			if err == nil {
				if fi, err = f.Stat(); err != nil {
					f.Close()
				}
			}
			if err != nil {
				closeAll(files)
				return nil, fmt.Errorf("read log: %w", err)
			}
			files = append(files, &logFile{f: f, info: fi})
		}
		if attempt >= 50 || chainStable(path, files) {
			return files, nil
		}
		closeAll(files)
		time.Sleep(time.Duration(attempt+1) * 100 * time.Microsecond)
	}
}

// chainStable reports whether the names of the log at path still lead to
// files, in order.
func chainStable(path string, files []*logFile) bool {
	j := 0
	for _, name := range chainNames(path) {
		fi, err := os.Stat(name)
		if err != nil {
			continue
		}
		if j >= len(files) || !os.SameFile(fi, files[j].info) {
			return false
		}
		j++
	}
	return j == len(files)
}

const readChunk = 256 << 10

// follower reads a log forward: cur, then the files in next (all complete
// but maybe the last), then whatever json.log becomes.
type follower struct {
	path string
	cur  *logFile   // nil: nothing open yet
	next []*logFile // newer files, oldest first
	buf  []byte
	r, w int  // unread bytes at buf[r:w]
	skip bool // dropping an overlong line up to its newline
	dec  decoder
	rec  Record
	// out, when set, takes the lines fastParse accepts directly (Print's
	// fast path); the others still go through fn.
	out *Printer
}

func (fl *follower) close() {
	if fl.cur != nil {
		fl.cur.f.Close()
		fl.cur = nil
	}
	closeAll(fl.next)
	fl.next = nil
}

// buffered is how much unfinished input the follower holds.
func (fl *follower) buffered() int { return fl.w - fl.r }

// start positions the follower in chain as o says (Tail, Since).
func (fl *follower) start(chain []*logFile, o ReadOptions) error {
	if len(chain) == 0 {
		return nil
	}
	idx, off := 0, int64(0)
	switch {
	case o.Tail >= 0:
		var err error
		if idx, off, err = tailStart(chain, o); err != nil {
			closeAll(chain)
			return err
		}
	case !o.Since.IsZero():
		// Files whose last entry is older than Since hold nothing to show.
		for idx < len(chain)-1 {
			t, ok := lastTime(chain[idx])
			if !ok || !t.Before(o.Since) {
				break
			}
			idx++
		}
	}
	closeAll(chain[:idx])
	fl.cur, fl.next = chain[idx], chain[idx+1:]
	if off > 0 {
		if _, err := fl.cur.f.Seek(off, io.SeekStart); err != nil {
			name := fl.cur.f.Name()
			fl.close()
			return fmt.Errorf("read log %s: %w", name, err)
		}
	}
	return nil
}

// drain delivers everything written so far, following rotation; it
// reports whether it read anything.
func (fl *follower) drain(ctx context.Context, fn func(*Record) error) (bool, error) {
	progressed := false
	for {
		if fl.cur == nil {
			chain, err := openChain(fl.path)
			if err != nil || len(chain) == 0 {
				return progressed, err
			}
			fl.cur, fl.next = chain[0], chain[1:]
		}
		p, err := fl.fill(ctx, fn)
		progressed = progressed || p
		if err != nil {
			return progressed, err
		}
		if len(fl.next) > 0 {
			fl.advance()
			continue
		}
		rotated, err := fl.rotated(ctx, fn)
		if err != nil {
			return progressed, err
		}
		if !rotated {
			return progressed, nil
		}
		progressed = true
	}
}

// advance moves to the next file; what is left of cur (a torn line of a
// writer that died mid-append) is dropped.
func (fl *follower) advance() {
	fl.cur.f.Close()
	fl.cur, fl.next = fl.next[0], fl.next[1:]
	fl.r, fl.w, fl.skip = 0, 0, false
}

// rotated checks whether json.log is still the file cur holds; if not, it
// drains cur (the writer has left it), finds the files written after it
// and moves on to them. A json.log cut shorter than what was read of it
// is read again from its start.
func (fl *follower) rotated(ctx context.Context, fn func(*Record) error) (bool, error) {
	fi, err := os.Stat(fl.path)
	if err != nil {
		return false, nil // mid-rotation, or removed: go on with cur
	}
	if os.SameFile(fi, fl.cur.info) {
		// Truncated in place (truncate -s 0 json.log): start it over.
		if pos, err := fl.cur.f.Seek(0, io.SeekCurrent); err == nil && fi.Size() < pos {
			if _, err := fl.cur.f.Seek(0, io.SeekStart); err != nil {
				return false, fmt.Errorf("read log %s: %w", fl.path, err)
			}
			fl.r, fl.w, fl.skip = 0, 0, false
			return true, nil
		}
		return false, nil
	}
	if _, err := fl.fill(ctx, fn); err != nil {
		return false, err
	}
	chain, err := openChain(fl.path)
	if err != nil {
		return false, err
	}
	k := -1 // cur's place in the chain; -1: rotated out, all are newer
	for i, lf := range chain {
		if os.SameFile(lf.info, fl.cur.info) {
			k = i
		}
	}
	closeAll(chain[:k+1])
	if k+1 == len(chain) {
		return false, nil
	}
	fl.next = chain[k+1:]
	fl.advance()
	return true, nil
}

// fill reads cur to its end, delivering complete lines; a long stretch
// (a file being caught up with) goes through fillMapped for Print, else
// fillAhead.
func (fl *follower) fill(ctx context.Context, fn func(*Record) error) (bool, error) {
	if fl.buf == nil {
		fl.buf = make([]byte, readChunk+maxEntry)
	}
	if fl.longAhead() {
		if fl.out != nil {
			if done, p, err := fl.fillMapped(ctx, fn); done {
				return p, err
			}
		}
		return fl.fillAhead(ctx, fn)
	}
	progressed := false
	for {
		if err := ctx.Err(); err != nil {
			return progressed, err
		}
		n, err := fl.cur.f.Read(fl.buf[fl.w:])
		if n > 0 {
			progressed = true
			fl.w += n
			if err := fl.lines(fn); err != nil {
				return progressed, err
			}
		}
		if err == io.EOF || (err == nil && n == 0) {
			return progressed, nil
		}
		if err != nil {
			return progressed, fmt.Errorf("read log %s: %w", fl.cur.f.Name(), err)
		}
	}
}

// aheadMin is how much unread log makes fill read ahead.
const aheadMin = 4 << 20

// longAhead reports whether at least aheadMin bytes of cur are unread.
func (fl *follower) longAhead() bool {
	fi, err := fl.cur.f.Stat()
	if err != nil || fi.Size() < aheadMin {
		return false
	}
	pos, err := fl.cur.f.Seek(0, io.SeekCurrent)
	return err == nil && fi.Size()-pos >= aheadMin
}

// lines delivers the complete lines in the buffer and keeps the rest at
// its start (at most maxEntry bytes: a longer line is not an entry, and is
// dropped up to its newline).
func (fl *follower) lines(fn func(*Record) error) error {
	used, err := fl.scan(fl.buf[fl.r:fl.w], fn)
	fl.r += used
	if err != nil {
		return err
	}
	fl.keep()
	return nil
}

// keep moves the unfinished line to the start of the buffer, or drops it
// when it is already longer than any entry.
func (fl *follower) keep() {
	if fl.w-fl.r > maxEntry {
		fl.r, fl.skip = fl.w, true
	}
	if fl.r > 0 {
		fl.w = copy(fl.buf, fl.buf[fl.r:fl.w])
		fl.r = 0
	}
}

// scan delivers the complete lines of data (dropping the first one when
// fl.skip) and returns how many bytes it used: up to the end of the last
// line delivered, or of the line whose delivery failed.
func (fl *follower) scan(data []byte, fn func(*Record) error) (int, error) {
	r := 0
	for {
		if p := fl.out; p != nil && !fl.skip {
			n, err := p.putLine(data[r:])
			r += n
			if err != nil {
				return r, err
			}
			if n > 0 {
				continue
			}
		}
		if !fl.skip {
			if n := fl.dec.fastLine(data[r:], &fl.rec); n > 0 {
				r += n
				if err := fn(&fl.rec); err != nil {
					return r, err
				}
				continue
			}
		}
		i := bytes.IndexByte(data[r:], '\n')
		if i < 0 {
			return r, nil
		}
		line := data[r : r+i]
		r += i + 1
		if fl.skip {
			fl.skip = false
			continue
		}
		if fl.dec.decode(line, &fl.rec) {
			if err := fn(&fl.rec); err != nil {
				return r, err
			}
		}
	}
}

// chunk is a stretch of whole lines read ahead (and, last, the end).
type chunk struct {
	b    []byte
	n    int  // b[:n] holds whole lines (all of it, when end)
	skip bool // the first line is the end of an overlong one: drop it
	end  bool // cur's end: b[:n] may end with an unfinished line
	err  error
}

// readAhead reads cur from where it is to its end into the buffers it
// takes from free, each cut after its last newline (the rest goes to the
// start of the next), and hands them to put, in order, until stop is
// closed; the last chunk is marked end. It takes over the follower's
// unfinished line.
func (fl *follower) readAhead(free <-chan []byte, stop <-chan struct{}, put func(chunk)) {
	carry := append([]byte(nil), fl.buf[fl.r:fl.w]...)
	skip := fl.skip
	fl.r, fl.w, fl.skip = 0, 0, false
	f := fl.cur.f
	for {
		var b []byte
		select {
		case b = <-free:
		case <-stop:
			return
		}
		k := copy(b, carry)
		n, err := f.Read(b[k : k+readChunk])
		total := k + n
		c := chunk{b: b, skip: skip}
		skip = false
		if n == 0 || err != nil {
			c.n, c.end, c.err = total, true, err
			put(c)
			return
		}
		last := bytes.LastIndexByte(b[:total], '\n')
		if last < 0 { // more than maxEntry bytes without a newline
			carry, skip = nil, true
			c.n = 0
			put(c)
			continue
		}
		c.n = last + 1
		// b[:c.n] is the consumer's to decode (in place); the rest is
		// ours, copied out before b can come back through free.
		if carry = b[last+1 : total]; len(carry) > maxEntry {
			carry, skip = nil, true
		}
		put(c)
	}
}

// finish keeps the unfinished end of cur's last chunk (from used on) for
// the next read, and turns a read error into ours.
func (fl *follower) finish(c chunk, used int) error {
	fl.w = copy(fl.buf, c.b[used:c.n])
	fl.keep()
	if c.err != nil && c.err != io.EOF {
		return fmt.Errorf("read log %s: %w", fl.cur.f.Name(), c.err)
	}
	return nil
}

// fillAhead is fill with reading and decoding overlapped: a goroutine
// reads ahead (readAhead) while this one decodes and delivers.
func (fl *follower) fillAhead(ctx context.Context, fn func(*Record) error) (bool, error) {
	const nbuf = 3
	full := make(chan chunk, nbuf) // never blocks: there are nbuf buffers
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, readChunk+maxEntry)
	}
	stop := make(chan struct{})
	go func() {
		defer close(full)
		fl.readAhead(free, stop, func(c chunk) { full <- c })
	}()
	progressed := false
	var ferr error
	for c := range full {
		if ferr != nil {
			continue // stopping: let the reader end
		}
		if err := ctx.Err(); err != nil {
			ferr = err
			close(stop)
			continue
		}
		fl.skip = fl.skip || c.skip
		used, err := fl.scan(c.b[:c.n], fn)
		progressed = progressed || c.n > 0
		switch {
		case err != nil:
			ferr = err
			close(stop)
			continue
		case c.end:
			ferr = fl.finish(c, used)
		}
		free <- c.b
	}
	return progressed, ferr
}

// job is a piece of a log, whole lines, decoded on its own for
// fillMapped: the texts of its entries, by runs of one stream.
type job struct {
	data  []byte // the piece: whole lines, in a read-only mapping
	text  []byte // the texts, one after the other
	runs  []run
	dec   decoder
	rec   Record
	fault bool // the mapping went away under the piece (file truncated)
	done  chan struct{}
}

// run is a stretch of job.text from one stream, ending at end.
type run struct {
	end    int
	stderr bool
}

// decode fills j.text and j.runs from the lines of j.data, as scan would
// deliver them to a Printer without time bounds or timestamps. A memory
// fault (the file was truncated under its mapping) ends it with j.fault;
// the calling goroutine has SetPanicOnFault.
//
// Entries in Writer's form are copied by fastCopy straight into the spare
// room of the text; the others go through the decoder. The loop keeps
// what it builds in locals (no write barrier per entry while a GC runs).
func (j *job) decode() {
	j.fault = false
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r) // not a fault in the mapping: a bug, not ours to hide
			}
			j.fault = true
		}
	}()
	text, runs := j.text[:0], j.runs[:0]
	data := j.data
	cur := uint8(2) // stream of the last run: 0 stdout, 1 stderr, 2 none yet
	for r := 0; r < len(data); {
		if cap(text)-len(text) < jobRoom {
			text = slices.Grow(text, max(jobRoom, cap(text)))
		}
		n, w, _, stderr := fastCopy(data[r:], text[len(text):cap(text)])
		if n > 0 {
			if s := b2i(stderr); s != cur {
				if k := len(runs); k > 0 {
					runs[k-1].end = len(text)
				}
				runs = append(runs, run{stderr: stderr})
				cur = s
			}
			text = text[:len(text)+w]
			r += n
			continue
		}
		i := bytes.IndexByte(data[r:], '\n')
		if i < 0 {
			break
		}
		line := data[r : r+i]
		r += i + 1
		if len(line) > maxEntry || !j.dec.decode(line, &j.rec) {
			continue
		}
		if s := b2i(j.rec.Stream == "stderr"); s != cur {
			if k := len(runs); k > 0 {
				runs[k-1].end = len(text)
			}
			runs = append(runs, run{stderr: s == 1})
			cur = s
		}
		text = append(text, j.rec.Log...)
	}
	if k := len(runs); k > 0 {
		runs[k-1].end = len(text)
	}
	j.text, j.runs = text, runs
}

func b2i(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// pieceSize is about how much of a mapped log one job decodes.
const pieceSize = 1 << 20

// fillMapped is fill for Print's fast path (no time bounds, no timestamps)
// over a long stretch: it maps the rest of cur read-only, and a goroutine
// per CPU decodes pieces of it at once, straight from the page cache (no
// copy, the page faults shared out), each into a job of its own that this
// one writes out in order. It reports done == false, having read nothing,
// when the file cannot be mapped; fill then reads it the usual way.
func (fl *follower) fillMapped(ctx context.Context, fn func(*Record) error) (done, progressed bool, err error) {
	f := fl.cur.f
	fi, err := f.Stat()
	if err != nil {
		return false, false, nil
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return false, false, nil
	}
	base := pos &^ int64(os.Getpagesize()-1)
	if fi.Size()-base > 1<<40 {
		return false, false, nil
	}
	var m []byte
	rc, err := f.SyscallConn()
	if err != nil {
		return false, false, nil
	}
	var merr error
	if err := rc.Control(func(fd uintptr) {
		m, merr = syscall.Mmap(int(fd), base, int(fi.Size()-base), syscall.PROT_READ, syscall.MAP_SHARED)
	}); err != nil || merr != nil {
		return false, false, nil
	}
	// Unmapping 10s of MB of page tables takes a while, and nothing refers
	// to m once this returns: not on the caller's time.
	defer func() { go syscall.Munmap(m) }()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			err = fmt.Errorf("read log %s: it was truncated while being read; run logs again", f.Name())
		}
	}()
	data := m[pos-base:]
	// The line begun before (or being skipped) ends in the mapping.
	i := bytes.IndexByte(data, '\n')
	last := bytes.LastIndexByte(data, '\n')
	if i < 0 {
		return false, false, nil
	}
	start := 0
	switch {
	case fl.skip:
		fl.skip, start = false, i+1
	case fl.w > fl.r:
		start = i + 1
		if fl.w+i+1 > len(fl.buf) {
			break // longer than any entry: dropped
		}
		fl.w += copy(fl.buf[fl.w:], data[:i+1])
		if err := fl.lines(fn); err != nil {
			return true, true, err
		}
	}
	fl.r, fl.w = 0, 0
	whole := data[start : last+1]
	// The unfinished line after the last newline is read the usual way.
	if _, err := f.Seek(pos+int64(last+1), io.SeekStart); err != nil {
		return true, true, fmt.Errorf("read log %s: %w", f.Name(), err)
	}
	workers := min(max(goruntime.GOMAXPROCS(0), 1), 8)
	nbuf := workers + 2
	free := make(chan *job, nbuf)
	for range nbuf {
		free <- &job{done: make(chan struct{}, 1)}
	}
	work := make(chan *job, nbuf)
	order := make(chan *job, nbuf)
	stop := make(chan struct{})
	for range workers {
		go func() {
			debug.SetPanicOnFault(true)
			for j := range work {
				j.decode()
				j.done <- struct{}{}
			}
		}()
	}
	go func() { // hands out pieces cut after a newline, in order
		defer close(order)
		defer close(work)
		for len(whole) > 0 {
			k := min(pieceSize, len(whole)-1)
			k += bytes.IndexByte(whole[k:], '\n') + 1 // whole ends with one
			var j *job
			select {
			case j = <-free:
			case <-stop:
				return
			}
			j.data, whole = whole[:k], whole[k:]
			order <- j // never blocks: there are nbuf jobs
			work <- j
		}
	}()
	p := fl.out
	var ferr error
	for j := range order {
		<-j.done
		if ferr != nil {
			continue // stopping: let the others end
		}
		switch {
		case ctx.Err() != nil:
			ferr = ctx.Err()
		case j.fault:
			ferr = fmt.Errorf("read log %s: it was truncated while being read; run logs again", f.Name())
		}
		start := 0
		for _, r := range j.runs {
			if ferr != nil {
				break
			}
			ferr = p.putRun(j.text[start:r.end], r.stderr)
			start = r.end
		}
		if ferr != nil {
			close(stop)
		}
		j.data = nil
		free <- j
	}
	return true, true, ferr
}

const backChunk = 64 << 10

// scanBack calls fn for the complete lines of f[0:end] (without their
// newline), last first, with each line's offset, until fn returns false.
// Bytes after the last newline (a torn line) are not a line; lines longer
// than maxEntry are skipped.
func scanBack(f *os.File, end int64, fn func(line []byte, off int64) bool) error {
	buf := make([]byte, backChunk+maxEntry+1)
	pos := end
	nl := int64(-1) // offset of the newline ending the line being assembled
	pend := 0       // its bytes seen so far, at the end of buf: [pos, nl)
	garbage := false
	for pos > 0 {
		k := min(int64(backChunk), pos)
		top := len(buf) - pend
		data := buf[top-int(k):]
		if _, err := f.ReadAt(data[:k], pos-k); err != nil {
			return fmt.Errorf("read log %s: %w", f.Name(), err)
		}
		pos -= k
		j := len(data)
		for {
			i := bytes.LastIndexByte(data[:j], '\n')
			if i < 0 {
				break
			}
			if nl >= 0 && !garbage {
				if !fn(data[i+1:nl-pos], pos+int64(i)+1) {
					return nil
				}
			}
			garbage = false
			nl = pos + int64(i)
			j = i
		}
		pend = 0
		if nl >= 0 && !garbage {
			if pend = j; pend > maxEntry {
				garbage, pend = true, 0
			}
			copy(buf[len(buf)-pend:], data[:pend])
		}
	}
	if nl >= 0 && !garbage {
		fn(buf[len(buf)-pend:], 0)
	}
	return nil
}

// lastTime is the time of the last entry of lf.
func lastTime(lf *logFile) (t time.Time, ok bool) {
	fi, err := lf.f.Stat()
	if err != nil {
		return t, false
	}
	var d decoder
	var rec Record
	scanBack(lf.f, fi.Size(), func(line []byte, _ int64) bool {
		if d.decode(line, &rec) {
			if tt, err := rec.Time(); err == nil {
				t, ok = tt, true
				return false
			}
		}
		return true
	})
	return t, ok
}

// tailStart finds where the last o.Tail entries within o.Since/o.Until
// begin: a file of chain and an offset in it.
func tailStart(chain []*logFile, o ReadOptions) (int, int64, error) {
	var d decoder
	var rec Record
	needTime := !o.Since.IsZero() || !o.Until.IsZero()
	count := 0
	for idx := len(chain) - 1; idx >= 0; idx-- {
		lf := chain[idx]
		fi, err := lf.f.Stat()
		if err != nil {
			return 0, 0, fmt.Errorf("read log %s: %w", lf.f.Name(), err)
		}
		start := int64(-1)
		if o.Tail == 0 {
			start = 0 // no complete line: the torn one is the next entry
		}
		err = scanBack(lf.f, fi.Size(), func(line []byte, off int64) bool {
			if o.Tail == 0 {
				start = off + int64(len(line)) + 1
				return false
			}
			if !d.decode(line, &rec) {
				return true
			}
			if needTime {
				t, err := rec.Time()
				switch {
				case err != nil, !o.Until.IsZero() && t.After(o.Until):
					return true
				case t.Before(o.Since):
					start = off + int64(len(line)) + 1 // older ones are older still
					return false
				}
			}
			if count++; count == o.Tail {
				start = off
				return false
			}
			return true
		})
		if err != nil {
			return 0, 0, err
		}
		if start >= 0 {
			return idx, start, nil
		}
	}
	return 0, 0, nil
}
