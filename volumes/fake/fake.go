// Package fake is an in-memory volumes.Manager for tests of what drives
// volumes (the reconcile executor). It follows the interface rules:
// Create is idempotent for the same Spec, ErrConflict for another one or
// over an unlabelled volume; Remove of a missing volume is nil and of one
// in use (see Use) ErrConflict. A Spec without a name makes an anonymous
// volume with a generated one.
//
// Everything is safe for concurrent use.
package fake

import (
	"berth.dev/berth/internal/labels"

	"berth.dev/berth/internal/fakelog"

	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/volumes"
)

// Manager is the fake. The zero value is not usable: call New.
type Manager struct {
	mu    sync.Mutex
	seq   int
	vols  map[string]*volume
	files *fileState // see files.go
	// FailNext(op, name, err) fails the next call of op ("create",
	// "inspect", "list", "remove") on volume name; Calls logs "create
	// demo_data", …; OnCall's hook gets the volume's name.
	fakelog.Log
}

type volume struct {
	v     volumes.Volume
	users map[string]bool
}

// New returns a manager without volumes.
func New() *Manager { return &Manager{vols: map[string]*volume{}} }

// Names lists the volumes, sorted.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.vols))
}

// Use marks the volume as used by container (Remove is then ErrConflict)
// until Release.
func (m *Manager) Use(name, container string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vols[name]
	if !ok {
		return errdefs.NotFoundf("no such volume: %s", name)
	}
	v.users[container] = true
	return nil
}

// Release undoes Use.
func (m *Manager) Release(name, container string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.vols[name]; ok {
		delete(v.users, container)
	}
}

func (m *Manager) call(op, name string) error {
	return m.Call(op, op != "inspect" && op != "list", []string{name}, name, name)
}

func driver(d string) string {
	if d == "" {
		return "local"
	}
	return d
}

func sameSpec(a, b volumes.Spec) bool {
	return a.Name == b.Name && maps.Equal(a.Labels, b.Labels) && driver(a.Driver) == driver(b.Driver) &&
		maps.Equal(a.DriverOpts, b.DriverOpts)
}

// Create makes the volume or returns the identical one.
func (m *Manager) Create(ctx context.Context, s volumes.Spec) (volumes.Volume, error) {
	if err := m.call("create", s.Name); err != nil {
		return volumes.Volume{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	anonymous := s.Name == ""
	if anonymous {
		for {
			m.seq++
			sum := sha256.Sum256(fmt.Appendf(nil, "fake-volume-%d", m.seq))
			s.Name = hex.EncodeToString(sum[:])
			if _, taken := m.vols[s.Name]; !taken {
				break
			}
		}
	}
	if strings.ContainsAny(s.Name, "/\x00") || s.Name == "." || s.Name == ".." {
		return volumes.Volume{}, errdefs.Invalidf("invalid volume name %q", s.Name)
	}
	if v, ok := m.vols[s.Name]; ok {
		if sameSpec(v.v.Spec, s) {
			return clone(v.v), nil
		}
		if len(v.v.Labels) == 0 && len(s.Labels) > 0 {
			return volumes.Volume{}, errdefs.Conflictf("volume %q already exists and was not created by this project; remove it or declare it external: true", s.Name)
		}
		return volumes.Volume{}, errdefs.Conflictf("volume %q already exists with a different configuration; remove it first", s.Name)
	}
	s.Labels, s.DriverOpts = maps.Clone(s.Labels), maps.Clone(s.DriverOpts)
	v := volumes.Volume{Spec: s, Mountpoint: "/fake/volumes/" + s.Name + "/_data", Created: time.Now().UTC(), Anonymous: anonymous}
	m.vols[s.Name] = &volume{v: v, users: map[string]bool{}}
	return clone(v), nil
}

func clone(v volumes.Volume) volumes.Volume {
	v.Labels, v.DriverOpts = maps.Clone(v.Labels), maps.Clone(v.DriverOpts)
	return v
}

// Inspect returns the volume; ErrNotFound when there is none.
func (m *Manager) Inspect(ctx context.Context, name string) (volumes.Volume, error) {
	if err := m.call("inspect", name); err != nil {
		return volumes.Volume{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vols[name]
	if !ok {
		return volumes.Volume{}, errdefs.NotFoundf("no such volume: %s", name)
	}
	return clone(v.v), nil
}

// List returns the volumes whose labels include f's, by name.
func (m *Manager) List(ctx context.Context, f volumes.Filter) ([]volumes.Volume, error) {
	if err := m.call("list", ""); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []volumes.Volume
	for _, name := range slices.Sorted(maps.Keys(m.vols)) {
		v := m.vols[name]
		if labels.Match(v.v.Labels, f.Labels) {
			out = append(out, clone(v.v))
		}
	}
	return out, nil
}

// Remove deletes an unused volume; a missing one is nil.
func (m *Manager) Remove(ctx context.Context, name string) error {
	if err := m.call("remove", name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vols[name]
	if !ok {
		return nil
	}
	if len(v.users) > 0 {
		return errdefs.Conflictf("volume %q is in use by %s", name, strings.Join(slices.Sorted(maps.Keys(v.users)), ", "))
	}
	delete(m.vols, name)
	return nil
}
