package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"berth.dev/berth/internal/errdefs"
)

// Watcher watches directory trees (recursively: directories created later
// are watched as they appear) and single files, and hands over debounced
// batches. inotify watches directories; a watched file's directory is
// watched without its subdirectories.
type Watcher struct {
	fs   *fsnotify.Watcher
	skip func(dir string) bool
	deb  *Debouncer
	now  func() time.Time

	mu   sync.Mutex
	dirs map[string]bool // watched directory → recursively

	// synthetic changes found while adding a new directory, before Run's
	// loop takes them
	found []Change
}

// Options tune a Watcher.
type Options struct {
	// Skip reports directories not to watch (nothing under them matters).
	Skip func(dir string) bool
	// Debouncer gathers changes into batches (nil: NewDebouncer()).
	Debouncer *Debouncer
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// NewWatcher starts an inotify instance.
func NewWatcher(o Options) (*Watcher, error) {
	fw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return nil, errdefs.Unavailablef("start watching files: %w; raise fs.inotify.max_user_instances (sysctl) if it is exhausted", err)
	}
	w := &Watcher{fs: fw, skip: o.Skip, deb: o.Debouncer, now: o.Now, dirs: map[string]bool{}}
	if w.deb == nil {
		w.deb = NewDebouncer()
	}
	if w.now == nil {
		w.now = time.Now
	}
	return w, nil
}

// Close stops watching.
func (w *Watcher) Close() error { return w.fs.Close() }

// Watched is the number of directories watched.
func (w *Watcher) Watched() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.dirs)
}

// AddTree watches dir and every directory under it that Skip allows.
func (w *Watcher) AddTree(dir string) error {
	return w.addTree(filepath.Clean(dir), false)
}

// AddFile watches one file: its directory, without subdirectories.
func (w *Watcher) AddFile(file string) error {
	dir := filepath.Dir(filepath.Clean(file))
	w.mu.Lock()
	_, ok := w.dirs[dir]
	w.mu.Unlock()
	if ok {
		return nil
	}
	if err := w.fs.Add(dir); err != nil {
		return watchErr(dir, err)
	}
	w.mu.Lock()
	if _, ok := w.dirs[dir]; !ok {
		w.dirs[dir] = false
	}
	w.mu.Unlock()
	return nil
}

func watchErr(dir string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errdefs.NotFoundf("watch %s: no such directory", dir)
	case errors.Is(err, fsnotify.ErrClosed):
		return fmt.Errorf("watch %s: the watcher is closed: %w", dir, errdefs.ErrCanceled)
	case strings.Contains(err.Error(), "no space left"):
		return errdefs.Unavailablef("watch %s: inotify watches exhausted; raise fs.inotify.max_user_watches (sysctl) or ignore big directories in develop.watch", dir)
	}
	return fmt.Errorf("watch %s: %w", dir, err)
}

// addTree walks dir, watching its directories; with report, every entry
// found is also recorded as created (it may have appeared before its
// directory was watched: mkdir -p, an untar, a moved-in tree).
func (w *Watcher) addTree(dir string, report bool) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && !report {
				return watchErr(dir, err)
			}
			return nil // gone meanwhile
		}
		if report && p != dir {
			w.mu.Lock()
			w.found = append(w.found, Change{p, OpCreate})
			w.mu.Unlock()
		}
		if !d.IsDir() {
			if p == dir && !report {
				return errdefs.Invalidf("watch %s: not a directory", dir)
			}
			return nil
		}
		if p != dir && w.skip != nil && w.skip(p) {
			return filepath.SkipDir
		}
		if err := w.fs.Add(p); err != nil {
			if p == dir && !report {
				return watchErr(p, err)
			}
			if errors.Is(err, os.ErrNotExist) {
				return filepath.SkipDir
			}
			return watchErr(p, err)
		}
		w.mu.Lock()
		w.dirs[p] = true
		w.mu.Unlock()
		return nil
	})
}

// forget drops the watches of dir and what is under it (moved or removed).
func (w *Watcher) forget(dir string) {
	w.mu.Lock()
	var gone []string
	for d := range w.dirs {
		if d == dir || strings.HasPrefix(d, dir+string(filepath.Separator)) {
			gone = append(gone, d)
			delete(w.dirs, d)
		}
	}
	w.mu.Unlock()
	for _, d := range gone {
		w.fs.Remove(d) // already gone with the inode: not an error
	}
}

func opOf(o fsnotify.Op) Op {
	var op Op
	if o.Has(fsnotify.Create) {
		op |= OpCreate
	}
	if o.Has(fsnotify.Write) {
		op |= OpWrite
	}
	if o.Has(fsnotify.Remove) {
		op |= OpRemove
	}
	if o.Has(fsnotify.Rename) {
		op |= OpRename
	}
	if o.Has(fsnotify.Chmod) {
		op |= OpChmod
	}
	return op
}

// event records one fsnotify event, watching a directory created in a
// recursively watched one.
func (w *Watcher) event(ev fsnotify.Event, now time.Time) {
	p := filepath.Clean(ev.Name)
	op := opOf(ev.Op)
	if op == 0 {
		return
	}
	w.mu.Lock()
	recursive := w.dirs[filepath.Dir(p)]
	_, known := w.dirs[p]
	w.mu.Unlock()
	if op&(OpRemove|OpRename) != 0 && known {
		w.forget(p)
	}
	w.deb.Add(p, op, now)
	if op&OpCreate != 0 && recursive {
		if st, err := os.Lstat(p); err == nil && st.IsDir() && (w.skip == nil || !w.skip(p)) {
			if err := w.addTree(p, true); err != nil {
				w.deb.Overflow(now) // could not watch it all: resync
			}
			w.mu.Lock()
			found := w.found
			w.found = nil
			w.mu.Unlock()
			for _, c := range found {
				w.deb.Add(c.Path, c.Op, now)
			}
		}
	}
}

// Run hands over batches on out until ctx ends (nil) or the watcher fails.
// While out is not taken (the previous batch is being applied), changes
// keep gathering and merge into the batch waiting.
func (w *Watcher) Run(ctx context.Context, out chan<- Batch) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var ready *Batch
	rearm := func() {
		timer.Stop()
		select {
		case <-timer.C:
		default:
		}
		if due, ok := w.deb.Deadline(); ok {
			timer.Reset(max(due.Sub(w.now()), 0))
		}
	}
	for {
		var send chan<- Batch
		var next Batch
		if ready != nil {
			send, next = out, *ready
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fs.Events:
			if !ok {
				return nil
			}
			w.event(ev, w.now())
			rearm()
		case err, ok := <-w.fs.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.deb.Overflow(w.now())
				rearm()
				continue
			}
			return fmt.Errorf("watch: %w", err)
		case <-timer.C:
			if b, ok := w.deb.Take(w.now()); ok {
				if ready == nil {
					ready = &b
				} else {
					m := ready.Merge(b, w.deb.MaxPaths)
					ready = &m
				}
			}
			rearm()
		case send <- next:
			ready = nil
		}
	}
}
