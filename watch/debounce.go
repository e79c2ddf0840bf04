package watch

import (
	"sort"
	"time"
)

// Op is what happened to a path, as fsnotify reports it (bits OR'ed
// when a path changes several times in one batch).
type Op uint8

// The operations.
const (
	OpCreate Op = 1 << iota
	OpWrite
	OpRemove
	OpRename
	OpChmod
)

func (o Op) String() string {
	var s string
	for _, n := range []struct {
		op   Op
		name string
	}{{OpCreate, "create"}, {OpWrite, "write"}, {OpRemove, "remove"}, {OpRename, "rename"}, {OpChmod, "chmod"}} {
		if o&n.op != 0 {
			if s != "" {
				s += "|"
			}
			s += n.name
		}
	}
	return s
}

// Change is one path of a batch and what happened to it.
type Change struct {
	Path string
	Op   Op
}

// Batch is the changes a quiet period gathered, sorted by path. With
// Overflow, changes were lost (too many at once, or the kernel's queue
// overflowed): everything watched must be treated as changed.
type Batch struct {
	Changes  []Change
	Overflow bool
}

// Empty reports a batch with nothing in it.
func (b Batch) Empty() bool { return len(b.Changes) == 0 && !b.Overflow }

// Debouncer gathers changes until the paths have been quiet for a while.
// It is pure (times are passed in), so it is tested with a fake clock.
//
// The quiet period grows with the batch (Quiet plus PerPath for each
// pending path, at most MaxQuiet): an editor's write-temp-then-rename
// save is one batch, and so is a checkout of thousands of files, whose
// events come in bursts. A batch is due at MaxDelay after its first
// change however busy the paths are, and holds at most MaxPaths paths;
// beyond that it becomes an overflow batch (memory stays bounded).
type Debouncer struct {
	Quiet    time.Duration
	PerPath  time.Duration
	MaxQuiet time.Duration
	MaxDelay time.Duration
	MaxPaths int

	pending     map[string]Op
	overflow    bool
	first, last time.Time
}

// Defaults of NewDebouncer.
const (
	DefaultQuiet    = 20 * time.Millisecond
	DefaultPerPath  = 100 * time.Microsecond
	DefaultMaxQuiet = 300 * time.Millisecond
	DefaultMaxDelay = 3 * time.Second
	DefaultMaxPaths = 20000
)

// NewDebouncer returns a debouncer with the default periods.
func NewDebouncer() *Debouncer {
	return &Debouncer{Quiet: DefaultQuiet, PerPath: DefaultPerPath, MaxQuiet: DefaultMaxQuiet, MaxDelay: DefaultMaxDelay, MaxPaths: DefaultMaxPaths}
}

// Add records a change at now.
func (d *Debouncer) Add(p string, op Op, now time.Time) {
	d.touch(now)
	if d.overflow {
		return
	}
	if d.pending == nil {
		d.pending = map[string]Op{}
	}
	if _, ok := d.pending[p]; !ok && d.MaxPaths > 0 && len(d.pending) >= d.MaxPaths {
		d.Overflow(now)
		return
	}
	d.pending[p] |= op
}

// Overflow marks the batch as having lost changes.
func (d *Debouncer) Overflow(now time.Time) {
	d.touch(now)
	d.overflow = true
	d.pending = nil
}

func (d *Debouncer) touch(now time.Time) {
	if d.first.IsZero() {
		d.first = now
	}
	d.last = now
}

// Pending is the number of paths gathered.
func (d *Debouncer) Pending() int { return len(d.pending) }

// Deadline is when the batch is due; ok is false when nothing is pending.
func (d *Debouncer) Deadline() (time.Time, bool) {
	if d.first.IsZero() {
		return time.Time{}, false
	}
	q := d.Quiet + time.Duration(len(d.pending))*d.PerPath
	if d.overflow {
		q = d.MaxQuiet
	}
	if d.MaxQuiet > 0 && q > d.MaxQuiet {
		q = d.MaxQuiet
	}
	due := d.last.Add(q)
	if d.MaxDelay > 0 {
		if cap := d.first.Add(d.MaxDelay); cap.Before(due) {
			due = cap
		}
	}
	return due, true
}

// Take returns the batch if it is due at now, and starts a new one.
func (d *Debouncer) Take(now time.Time) (Batch, bool) {
	due, ok := d.Deadline()
	if !ok || now.Before(due) {
		return Batch{}, false
	}
	return d.Flush(), true
}

// Flush returns what is pending, due or not, and starts a new batch.
func (d *Debouncer) Flush() Batch {
	b := Batch{Overflow: d.overflow}
	for p, op := range d.pending {
		b.Changes = append(b.Changes, Change{p, op})
	}
	sort.Slice(b.Changes, func(i, j int) bool { return b.Changes[i].Path < b.Changes[j].Path })
	d.pending, d.overflow, d.first, d.last = nil, false, time.Time{}, time.Time{}
	return b
}

// Merge adds batch o to b (a batch not yet handed over while the next one
// gathered), keeping at most maxPaths paths.
func (b Batch) Merge(o Batch, maxPaths int) Batch {
	if b.Overflow || o.Overflow {
		return Batch{Overflow: true}
	}
	m := map[string]Op{}
	for _, c := range b.Changes {
		m[c.Path] |= c.Op
	}
	for _, c := range o.Changes {
		m[c.Path] |= c.Op
	}
	if maxPaths > 0 && len(m) > maxPaths {
		return Batch{Overflow: true}
	}
	out := Batch{}
	for p, op := range m {
		out.Changes = append(out.Changes, Change{p, op})
	}
	sort.Slice(out.Changes, func(i, j int) bool { return out.Changes[i].Path < out.Changes[j].Path })
	return out
}
