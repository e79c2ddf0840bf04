package dns

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher reloads the zones when their files change. Writers replace a
// records file by renaming a temp file over it, so it watches the
// directories and picks events by base name. A zone whose directory cannot
// be watched (no inotify instance left: the per-user limit is often 128,
// one per shim; or no directory yet) is polled by stat once a second.
type watcher struct {
	s      *Server
	fw     *fsnotify.Watcher // nil without inotify
	dirs   map[string]map[string]bool
	polled map[string]stamp // zone path → what stat said last
}

// stamp is what polling compares.
type stamp struct {
	exists bool
	size   int64
	mtime  int64
	ino    uint64
}

func statStamp(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	st := stamp{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// newWatcher sets the watches up; call it before the first load so no
// change between the two is missed.
func newWatcher(s *Server, zones []zoneFile, useInotify bool) *watcher {
	w := &watcher{s: s, dirs: map[string]map[string]bool{}, polled: map[string]stamp{}}
	if len(zones) == 0 {
		return w
	}
	if useInotify {
		fw, err := fsnotify.NewWatcher()
		if err != nil {
			s.logf("dns: watching zones: %v; polling them instead", err)
		} else {
			w.fw = fw
		}
	}
	for _, z := range zones {
		dir, base := filepath.Dir(z.path), filepath.Base(z.path)
		if names, ok := w.dirs[dir]; ok {
			names[base] = true
			continue
		}
		if w.fw != nil {
			if err := w.fw.Add(dir); err == nil {
				w.dirs[dir] = map[string]bool{base: true}
				continue
			} else if !errors.Is(err, os.ErrNotExist) {
				s.logf("dns: watching %s: %v; polling it instead", dir, err)
			}
		}
		w.polled[z.path] = statStamp(z.path)
	}
	return w
}

func (w *watcher) close() {
	if w.fw != nil {
		w.fw.Close()
	}
}

// run marks the server's zones changed on every relevant event (the next
// query reloads them: marking costs nothing, so no debounce), until ctx is
// done.
func (w *watcher) run(ctx context.Context) {
	defer w.close()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w.fw != nil {
		events, errs = w.fw.Events, w.fw.Errors
	}
	var ticker *time.Ticker
	var tick <-chan time.Time
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	for {
		if ticker == nil && len(w.polled) > 0 {
			ticker = time.NewTicker(pollInterval)
			tick = ticker.C
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if w.relevant(ev) {
				w.s.markDirty() // free: the next query reloads
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.s.logLimited("dns: watching zones: %v", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.s.markDirty()
			}
		case <-tick:
			if w.poll() {
				w.s.markDirty()
			}
		}
	}
}

// relevant reports whether ev may have changed a zone. A watched directory
// that goes away takes its zones to polling.
func (w *watcher) relevant(ev fsnotify.Event) bool {
	if !ev.Has(fsnotify.Create | fsnotify.Write | fsnotify.Remove | fsnotify.Rename) {
		return false
	}
	if names, ok := w.dirs[ev.Name]; ok && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		delete(w.dirs, ev.Name)
		for base := range names {
			p := filepath.Join(ev.Name, base)
			w.polled[p] = statStamp(p)
		}
		return true
	}
	return w.dirs[filepath.Dir(ev.Name)][filepath.Base(ev.Name)]
}

// poll stats the polled zones and reports whether any changed.
func (w *watcher) poll() bool {
	changed := false
	for p, old := range w.polled {
		if st := statStamp(p); st != old {
			w.polled[p] = st
			changed = true
		}
	}
	return changed
}
