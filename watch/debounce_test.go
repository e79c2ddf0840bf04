package watch

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Unix(1700000000, 0)

func at(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

// TestDebounceMustWaitForQuiet: a batch is due Quiet after the last
// change, not the first; an editor's temp-write-rename save is one batch.
func TestDebounceMustWaitForQuiet(t *testing.T) {
	d := &Debouncer{Quiet: 20 * time.Millisecond, MaxQuiet: 300 * time.Millisecond, MaxDelay: 3 * time.Second}
	if _, ok := d.Deadline(); ok {
		t.Fatal("an empty debouncer has a deadline")
	}
	d.Add("/p/.a.txt.tmp", OpCreate, at(0))
	d.Add("/p/.a.txt.tmp", OpWrite, at(1))
	d.Add("/p/a.txt", OpRename, at(5))
	d.Add("/p/a.txt", OpCreate, at(5))
	if _, ok := d.Take(at(24)); ok {
		t.Fatal("due before the paths were quiet for 20 ms")
	}
	b, ok := d.Take(at(25))
	if !ok || len(b.Changes) != 2 || b.Changes[0] != (Change{"/p/.a.txt.tmp", OpCreate | OpWrite}) || b.Changes[1] != (Change{"/p/a.txt", OpRename | OpCreate}) {
		t.Fatalf("batch %+v %v", b, ok)
	}
	if _, ok := d.Deadline(); ok {
		t.Fatal("Take did not start a new batch")
	}
}

// TestDebounceMustBatchABurst: 1,000 files written in bursts with gaps
// longer than the base quiet period still make one batch (the period
// grows with the batch), and a never-ending stream is cut at MaxDelay.
func TestDebounceMustBatchABurst(t *testing.T) {
	d := NewDebouncer()
	batches := 0
	now := 0.0
	for i := range 1000 {
		now += 0.02
		if i%100 == 99 {
			now += 25 // a pause of the writer between bursts
		}
		if _, ok := d.Take(at(now)); ok {
			batches++
		}
		d.Add(fmt.Sprintf("/p/f%04d", i), OpCreate, at(now))
	}
	for ; now < 1000; now++ {
		if b, ok := d.Take(at(now)); ok {
			batches++
			if len(b.Changes) != 1000 {
				t.Errorf("the batch holds %d changes", len(b.Changes))
			}
		}
	}
	if batches != 1 {
		t.Fatalf("1,000 files made %d batches", batches)
	}
	d = NewDebouncer()
	due := 0
	for ms := 0.0; ms < 4000; ms += 5 {
		if _, ok := d.Take(at(ms)); ok {
			due++
			if ms < 3000 {
				t.Fatalf("cut at %v ms, before MaxDelay", ms)
			}
		}
		d.Add("/p/log", OpWrite, at(ms))
	}
	if due != 1 {
		t.Errorf("a busy file made %d batches in 4 s (MaxDelay 3 s)", due)
	}
}

// TestDebounceMustBoundMemory: past MaxPaths the batch becomes an
// overflow and keeps no paths; merging respects the bound too.
func TestDebounceMustBoundMemory(t *testing.T) {
	d := &Debouncer{Quiet: time.Millisecond, MaxPaths: 10}
	for i := range 50 {
		d.Add(fmt.Sprintf("/p/%d", i), OpWrite, at(0))
	}
	if d.Pending() != 0 {
		t.Errorf("%d paths kept after the overflow", d.Pending())
	}
	b, ok := d.Take(at(1000))
	if !ok || !b.Overflow || len(b.Changes) != 0 {
		t.Fatalf("batch %+v", b)
	}
	a := Batch{Changes: []Change{{"/a", OpWrite}, {"/b", OpCreate}}}
	m := a.Merge(Batch{Changes: []Change{{"/b", OpWrite}, {"/c", OpRemove}}}, 10)
	if len(m.Changes) != 3 || m.Changes[1] != (Change{"/b", OpCreate | OpWrite}) {
		t.Errorf("merge: %+v", m)
	}
	if m := a.Merge(Batch{Changes: []Change{{"/c", OpRemove}}}, 2); !m.Overflow {
		t.Errorf("merge past the bound: %+v", m)
	}
}
