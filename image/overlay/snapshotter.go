// Package overlay is berth's snapshotter: each layer or container snapshot
// is a numbered directory ROOT/snapshots/<n>/{fs,work}, and index.json maps
// keys (chain IDs, container keys) to them. It returns mount descriptions
// and never mounts anything; runtime/linux/rootfs does.
package overlay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
)

type record struct {
	ID      int                `json:"id"`
	Parent  string             `json:"parent,omitempty"`
	Kind    image.SnapshotKind `json:"kind"`
	Created time.Time          `json:"created"`
}

type index struct {
	Next      int                `json:"next"`
	Snapshots map[string]*record `json:"snapshots"`
}

// Snapshotter implements image.Snapshotter over a directory.
type Snapshotter struct{ dir string }

var _ image.Snapshotter = (*Snapshotter)(nil)

// New opens (creating) the snapshot dir.
func New(dir string) (*Snapshotter, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	return &Snapshotter{dir: dir}, nil
}

// update runs fn on the index under an exclusive flock and saves it
// atomically when fn succeeds.
func (s *Snapshotter) update(fn func(ix *index) error) error {
	f, err := os.OpenFile(filepath.Join(s.dir, "index.lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	ix, err := s.load()
	if err != nil {
		return err
	}
	if err := fn(ix); err != nil {
		return err
	}
	return state.WriteJSON(filepath.Join(s.dir, "index.json"), ix, 0o600)
}

func (s *Snapshotter) load() (*index, error) {
	ix := &index{Next: 1, Snapshots: map[string]*record{}}
	if err := state.ReadJSON(filepath.Join(s.dir, "index.json"), ix); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	if ix.Snapshots == nil {
		ix.Snapshots = map[string]*record{}
	}
	return ix, nil
}

func (s *Snapshotter) fsDir(id int) string   { return filepath.Join(s.dir, strconv.Itoa(id), "fs") }
func (s *Snapshotter) workDir(id int) string { return filepath.Join(s.dir, strconv.Itoa(id), "work") }

// FSDir returns the directory holding a snapshot's own files (a layer's
// diff, or a container's upper dir).
func (s *Snapshotter) FSDir(ctx context.Context, key string) (string, error) {
	ix, err := s.load()
	if err != nil {
		return "", err
	}
	r, ok := ix.Snapshots[key]
	if !ok {
		return "", errdefs.NotFoundf("snapshot %q not found", key)
	}
	return s.fsDir(r.ID), nil
}

func (s *Snapshotter) create(key, parent string, kind image.SnapshotKind) ([]image.Mount, error) {
	var mounts []image.Mount
	err := s.update(func(ix *index) error {
		if _, ok := ix.Snapshots[key]; ok {
			return errdefs.Conflictf("snapshot %q already exists", key)
		}
		if parent != "" {
			p, ok := ix.Snapshots[parent]
			if !ok {
				return errdefs.NotFoundf("parent snapshot %q not found", parent)
			}
			if p.Kind != image.KindCommitted {
				return errdefs.Invalidf("parent snapshot %q is not committed", parent)
			}
		}
		id := ix.Next
		ix.Next++
		if kind != image.KindView {
			for _, d := range []string{filepath.Dir(s.fsDir(id)), s.fsDir(id), s.workDir(id)} {
				if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
					return err
				}
			}
			os.Chmod(filepath.Dir(s.fsDir(id)), 0o700)
		}
		ix.Snapshots[key] = &record{ID: id, Parent: parent, Kind: kind, Created: time.Now().UTC()}
		var err error
		mounts, err = s.mounts(ix, key)
		return err
	})
	return mounts, err
}

// Prepare makes a writable snapshot on parent ("" for none).
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string) ([]image.Mount, error) {
	return s.create(key, parent, image.KindActive)
}

// View makes a read-only snapshot of parent.
func (s *Snapshotter) View(ctx context.Context, key, parent string) ([]image.Mount, error) {
	if parent == "" {
		return nil, errdefs.Invalidf("a view needs a parent snapshot")
	}
	return s.create(key, parent, image.KindView)
}

// Mounts describes how to mount key.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]image.Mount, error) {
	ix, err := s.load()
	if err != nil {
		return nil, err
	}
	return s.mounts(ix, key)
}

func (s *Snapshotter) mounts(ix *index, key string) ([]image.Mount, error) {
	r, ok := ix.Snapshots[key]
	if !ok {
		return nil, errdefs.NotFoundf("snapshot %q not found", key)
	}
	var lower []string
	for p := r.Parent; p != ""; {
		pr, ok := ix.Snapshots[p]
		if !ok {
			return nil, errdefs.NotFoundf("snapshot %q: ancestor %q is missing", key, p)
		}
		lower = append(lower, s.fsDir(pr.ID))
		p = pr.Parent
	}
	switch {
	case r.Kind == image.KindView && len(lower) == 1:
		return []image.Mount{{Type: "bind", Source: lower[0], RO: true}}, nil
	case r.Kind == image.KindView:
		return []image.Mount{{Type: "overlay", Lower: lower, RO: true}}, nil
	case len(lower) == 0:
		return []image.Mount{{Type: "bind", Source: s.fsDir(r.ID), RO: r.Kind == image.KindCommitted}}, nil
	}
	return []image.Mount{{Type: "overlay", Lower: lower, Upper: s.fsDir(r.ID), Work: s.workDir(r.ID)}}, nil
}

// Commit turns the active snapshot key into the committed one name. When
// name exists already (a concurrent unpack of the same layer won), key is
// dropped and Commit succeeds: the loser discards its copy.
func (s *Snapshotter) Commit(ctx context.Context, name, key string) error {
	var drop int
	err := s.update(func(ix *index) error {
		r, ok := ix.Snapshots[key]
		if !ok {
			return errdefs.NotFoundf("snapshot %q not found", key)
		}
		if r.Kind != image.KindActive {
			return errdefs.Invalidf("snapshot %q is not active", key)
		}
		delete(ix.Snapshots, key)
		if _, exists := ix.Snapshots[name]; exists {
			drop = r.ID
			return nil
		}
		r.Kind = image.KindCommitted
		ix.Snapshots[name] = r
		return nil
	})
	if err == nil && drop != 0 {
		return os.RemoveAll(filepath.Join(s.dir, strconv.Itoa(drop)))
	}
	if err == nil {
		// the work dir is only needed while a snapshot is writable
		ix, lerr := s.load()
		if lerr == nil {
			if r, ok := ix.Snapshots[name]; ok {
				os.RemoveAll(s.workDir(r.ID))
				os.Mkdir(s.workDir(r.ID), 0o755)
			}
		}
	}
	return err
}

// Rebase renames the committed snapshot key to name and sets its parent:
// a layer extracted on its own (its dir holds only its diff, whiteouts
// included, whatever lies below) joins a chain. name taken →
// ErrConflict; parent missing or not committed → ErrNotFound.
func (s *Snapshotter) Rebase(ctx context.Context, name, key, parent string) error {
	return s.update(func(ix *index) error {
		r, ok := ix.Snapshots[key]
		if !ok || r.Kind != image.KindCommitted {
			return errdefs.NotFoundf("committed snapshot %q not found", key)
		}
		if _, exists := ix.Snapshots[name]; exists {
			return errdefs.Conflictf("snapshot %q already exists", name)
		}
		if parent != "" {
			if p, ok := ix.Snapshots[parent]; !ok || p.Kind != image.KindCommitted {
				return errdefs.NotFoundf("parent snapshot %q not found", parent)
			}
		}
		for _, other := range ix.Snapshots {
			if other.Parent == key {
				return errdefs.Conflictf("snapshot %q has children", key)
			}
		}
		delete(ix.Snapshots, key)
		r.Parent = parent
		ix.Snapshots[name] = r
		return nil
	})
}

// Remove deletes a snapshot; one with children is ErrConflict, a missing
// one is not an error.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	var id int
	err := s.update(func(ix *index) error {
		r, ok := ix.Snapshots[key]
		if !ok {
			return nil
		}
		for k, c := range ix.Snapshots {
			if c.Parent == key {
				return errdefs.Conflictf("snapshot %q has a child %q; remove that first", key, k)
			}
		}
		delete(ix.Snapshots, key)
		if r.Kind != image.KindView {
			id = r.ID
		}
		return nil
	})
	if err != nil || id == 0 {
		return err
	}
	return os.RemoveAll(filepath.Join(s.dir, strconv.Itoa(id)))
}

// Exists reports whether key is a snapshot, without Stat's walk of its
// files (Unpack asks once per layer at every container start).
func (s *Snapshotter) Exists(key string) bool {
	ix, err := s.load()
	if err != nil {
		return false
	}
	_, ok := ix.Snapshots[key]
	return ok
}

// Stat describes a snapshot; Size walks its files.
func (s *Snapshotter) Stat(ctx context.Context, key string) (image.SnapshotInfo, error) {
	ix, err := s.load()
	if err != nil {
		return image.SnapshotInfo{}, err
	}
	r, ok := ix.Snapshots[key]
	if !ok {
		return image.SnapshotInfo{}, errdefs.NotFoundf("snapshot %q not found", key)
	}
	return image.SnapshotInfo{Key: key, Parent: r.Parent, Kind: r.Kind, Created: r.Created, Size: dirSize(s.fsDir(r.ID))}, nil
}

// Walk calls fn for every snapshot, in key order.
func (s *Snapshotter) Walk(ctx context.Context, fn image.WalkFunc) error {
	ix, err := s.load()
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(ix.Snapshots))
	for k := range ix.Snapshots {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r := ix.Snapshots[k]
		if err := fn(ctx, image.SnapshotInfo{Key: k, Parent: r.Parent, Kind: r.Kind, Created: r.Created}); err != nil {
			return err
		}
	}
	return nil
}

// dirSize sums the sizes of regular files under dir (hardlinks once).
func dirSize(dir string) int64 {
	var total int64
	seen := map[uint64]bool{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if st, ok := fi.Sys().(*unix.Stat_t); ok {
			if st.Nlink > 1 && seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += fi.Size()
		return nil
	})
	return total
}
