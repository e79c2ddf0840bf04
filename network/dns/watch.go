package dns

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"time"

	"berth.dev/berth/internal/state"
)

// Zones are checked for changes when a query needs them, not watched: a
// stat per zone file per local lookup, and a reload when one changed.
//
// Watching (inotify on the zone directories) woke every shim of a network
// for every rewrite of its records file and of the files next to it: `up`
// of a hundred containers attaches a hundred endpoints while the earlier
// ones already run, so a hundred shims were each woken hundreds of times,
// N² wake-ups of idle processes competing with the containers being
// started, for answers nobody had asked for yet. A stat costs about a
// microsecond and only when a container asks.
//
// A stamp (inode, size, mtime, ctime) misses a rewrite only when the new
// file gets the same inode, size and timestamps as the old one, which a
// coarse file-system clock allows for writes close together. So, as git
// does for its index, a zone read while its mtime was younger than
// racyWindow is "racy": until a check finds it old enough, every check
// compares its bytes with the ones loaded.

// racyWindow is how far apart in time two writes of a zone file must be
// for their timestamps to differ surely (well above any file system's
// timestamp granularity).
const racyWindow = 2 * time.Second

// stamp is what a freshness check compares.
type stamp struct {
	exists bool
	size   int64
	mtime  int64
	ctime  int64
	ino    uint64
	dev    uint64
}

func statStamp(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	st := stamp{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino, st.dev = sys.Ino, uint64(sys.Dev)
		st.ctime = sys.Ctim.Nano()
	}
	return st
}

// young reports whether st's change time is within racyWindow of now: a
// rewrite now could leave the stamp as it is. Every change to a file (a
// write, a chmod, a rename or exchange, a utimes) sets its ctime to the
// current time, so once that is older than the clock's granularity, the
// next change moves it.
func (st stamp) young(now time.Time) bool {
	if !st.exists {
		return false
	}
	t := st.ctime
	if t == 0 {
		t = st.mtime
	}
	return t > now.UnixNano()-int64(racyWindow)
}

// readRaw reads a zone file whole, one version of it however often it is
// rewritten meanwhile (state.ReadFile); a missing one is empty, nil error.
// One byte past the limit is read, so a file that grows between a stat
// and the read is still caught.
func readRaw(path string) ([]byte, error) {
	data, err := state.ReadFile(path, MaxZoneSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// changed reports whether a zone file may differ from what was loaded.
func (s *Server) changed() bool { return s.changedAt(time.Now()) }

func (s *Server) changedAt(now time.Time) bool {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	for i := range s.zones {
		z := &s.zones[i]
		st := statStamp(z.path)
		if st != z.seen {
			return true
		}
		if !z.racy {
			continue
		}
		data, err := readRaw(z.path)
		if err != nil || !bytes.Equal(data, z.raw) {
			return true
		}
		if !st.young(now) {
			// Read whole and unchanged once the stamp is old enough: a
			// later rewrite moves the timestamps.
			z.racy, z.raw = false, nil
		}
	}
	return false
}

// refresh reloads the zones when one changed since the last load, once
// for all the queries that find it so.
func (s *Server) refresh() {
	s.lazyMu.Lock()
	defer s.lazyMu.Unlock()
	if s.changed() {
		s.reload()
	}
}
