// Package linux is berth's container runtime: containers are records under
// the state root (meta.json written here, state.json and exit.json by the
// container's shim), each started by spawning a shim from a sealed copy of
// the berth binary. There is no daemon: every method reads the records and
// checks the live processes itself.
package linux

import (
	"berth.dev/berth/internal/labels"

	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/failpoint"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux/cgroups"
	"berth.dev/berth/runtime/linux/exeseal"
	"berth.dev/berth/runtime/linux/health"
	"golang.org/x/sys/unix"
)

// Files of a container dir (the shim writes State, Exit and the log;
// berth the rest).
const (
	MetaFile  = "meta.json"  // CLI-written record
	StateFile = "state.json" // shim-written: status, pids
	ExitFile  = "exit.json"  // shim-written: last exit
	StopFile  = "stop"       // a user asked it to stop: no restart
	LogDir    = "log"
	LogName   = "json.log"
)

// Options configure a Runtime.
type Options struct {
	// Binary is the berth executable the shim runs from (sealed copy);
	// "" is the running program.
	Binary string
}

// Runtime implements runtime.Runtime over a state root.
type Runtime struct {
	root     *state.Root
	snaps    image.Snapshotter
	cgParent string
	binary   string

	mu     sync.Mutex
	sealed chan sealedExe // Prewarm's copy in progress, for the next start
	swept  sync.Once
}

type sealedExe struct {
	f   *os.File
	err error
}

// Prewarm starts sealing the program containers start from (a few ms of
// copying) in the background; the next Start takes it. A command about to
// create and start a container calls it first, so the copy overlaps the
// create.
func (r *Runtime) Prewarm() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sealed != nil {
		return
	}
	ch := make(chan sealedExe, 1)
	r.sealed = ch
	go func() {
		f, err := exeseal.CopyFileShared(r.exePath(), r.sharedExe)
		ch <- sealedExe{f, err}
	}()
}

func (r *Runtime) exePath() string {
	if r.binary != "" {
		return r.binary
	}
	return "/proc/self/exe"
}

// sealedCopy returns Prewarm's copy, or makes one.
func (r *Runtime) sealedCopy() (*os.File, error) {
	r.mu.Lock()
	ch := r.sealed
	r.sealed = nil
	r.mu.Unlock()
	if ch != nil {
		s := <-ch
		return s.f, s.err
	}
	return exeseal.CopyFileShared(r.exePath(), r.sharedExe)
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns the runtime of root, taking container snapshots from snaps.
func New(root *state.Root, snaps image.Snapshotter, o Options) *Runtime {
	return &Runtime{root: root, snaps: snaps, cgParent: cgroups.Parent(root.Path), binary: o.Binary}
}

// Meta is a container's record, written at create (and on rename).
type Meta struct {
	ID      string                `json:"id"`
	Name    string                `json:"name"`
	Created time.Time             `json:"created"`
	Spec    runtime.ContainerSpec `json:"spec"`
	// Creating is set until Create finished, or (transient) until the
	// creator has started it: a record still marked whose lock is free was
	// abandoned, and the next command sweeps it (run -d killed midway
	// leaves nothing).
	Creating bool `json:"creating,omitempty"`
}

// Exit is exit.json.
type Exit struct {
	Code      int       `json:"code"`
	Signal    int       `json:"signal,omitempty"`
	OOMKilled bool      `json:"oom_killed,omitempty"`
	ExitedAt  time.Time `json:"exited_at"`
	Error     string    `json:"error,omitempty"`
}

// State is state.json.
type State struct {
	Status    string    `json:"status"` // running | exited | created
	Init      Proc      `json:"init"`
	Shim      Proc      `json:"shim"`
	StartedAt time.Time `json:"started_at"`
	Restarts  int       `json:"restarts"`
	Error     string    `json:"error,omitempty"`
	// Health is the current run's healthcheck status (shim-written).
	Health *health.Status `json:"health,omitempty"`
	// Ports are the published ports as bound (ephemeral ones resolved).
	Ports []runtime.PortMapping `json:"ports,omitempty"`
}

func (r *Runtime) dir(id string) string { d, _ := r.root.ContainerDir(id); return d }

// SnapshotKey is the key of a container's writable snapshot.
func SnapshotKey(id string) string { return "container-" + id }

func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// Create records a container: its dir (staged in tmp/ and renamed into
// place, so a dir under containers/ always has its meta.json), its name
// and its writable snapshot. With transient, the record stays marked
// until MarkCreated: run uses it so that a run killed before start leaves
// nothing behind once the next command sweeps.
func (r *Runtime) Create(ctx context.Context, s runtime.ContainerSpec) (runtime.Container, error) {
	return r.create(ctx, s, false)
}

// CreateTransient is Create for run: see Create.
func (r *Runtime) CreateTransient(ctx context.Context, s runtime.ContainerSpec) (runtime.Container, error) {
	return r.create(ctx, s, true)
}

func (r *Runtime) create(ctx context.Context, s runtime.ContainerSpec, transient bool) (runtime.Container, error) {
	if s.OCI == nil || s.OCI.Process == nil {
		return nil, errdefs.Invalidf("container spec has no process")
	}
	if s.Rootfs.ChainID == "" {
		return nil, errdefs.Invalidf("container spec has no image snapshot")
	}
	r.sweep(ctx)
	id := newID()
	if s.Name == "" {
		s.Name = r.freeName()
	}
	if err := state.ValidName("container", s.Name); err != nil {
		return nil, errdefs.Invalidf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", s.Name)
	}
	if s.OCI.Hostname == "" {
		s.OCI.Hostname = id[:12]
	}
	m := &Meta{ID: id, Name: s.Name, Created: time.Now().UTC(), Spec: s, Creating: true}
	stage, err := os.MkdirTemp(r.root.TmpDir(), "create-")
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", s.Name, err)
	}
	for _, d := range []string{"rootfs", LogDir} {
		if err := os.Mkdir(filepath.Join(stage, d), 0o700); err != nil {
			os.RemoveAll(stage)
			return nil, fmt.Errorf("create container %s: %w", s.Name, err)
		}
	}
	lock, err := lockContainer(stage, true)
	if err != nil {
		os.RemoveAll(stage)
		return nil, fmt.Errorf("create container %s: %w", s.Name, err)
	}
	if err := state.WriteJSON(filepath.Join(stage, MetaFile), m, 0o600); err != nil {
		lock.unlock()
		os.RemoveAll(stage)
		return nil, fmt.Errorf("create container %s: %w", s.Name, err)
	}
	os.Chmod(stage, 0o700)
	failpoint.Hit("create-staged")
	if err := os.Rename(stage, r.dir(id)); err != nil {
		lock.unlock()
		os.RemoveAll(stage)
		return nil, fmt.Errorf("create container %s: %w", s.Name, err)
	}
	c := &Container{r: r, id: id, lock: lock}
	undo := func(err error) (runtime.Container, error) {
		c.destroy(context.WithoutCancel(ctx), m)
		lock.unlock()
		c.lock = nil
		return nil, err
	}
	failpoint.Hit("create-dir")
	if err := r.root.ReserveName(s.Name, id); err != nil {
		return undo(fmt.Errorf("create container: %w", err))
	}
	failpoint.Hit("create-named")
	if ownNetNS(s) {
		if err := r.pinNetNS(id); err != nil {
			return undo(fmt.Errorf("create container %s: %w", s.Name, err))
		}
	}
	if _, err := r.snaps.Prepare(ctx, SnapshotKey(id), s.Rootfs.ChainID); err != nil {
		return undo(fmt.Errorf("create container %s: snapshot: %w", s.Name, err))
	}
	failpoint.Hit("create-snapshot")
	if !transient {
		m.Creating = false
		if err := c.writeMeta(m); err != nil {
			return undo(err)
		}
		lock.unlock()
		c.lock = nil
	}
	return c, nil
}

// Load finds a container by full ID, unique ID prefix or name.
func (r *Runtime) Load(ctx context.Context, ref string) (runtime.Container, error) {
	c, err := r.find(ref)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Find is Load returning the concrete type.
func (r *Runtime) Find(ref string) (*Container, error) { return r.find(ref) }

func (r *Runtime) find(ref string) (*Container, error) {
	if ref == "" {
		return nil, errdefs.Invalidf("empty container name or ID")
	}
	if id, err := r.root.LookupName(strings.TrimPrefix(ref, "/")); err == nil {
		if _, err := os.Stat(filepath.Join(r.dir(id), MetaFile)); err == nil {
			return &Container{r: r, id: id}, nil
		}
	}
	if len(ref) <= 64 && isHex(ref) {
		ids, _ := r.ids()
		var match []string
		for _, id := range ids {
			if strings.HasPrefix(id, ref) {
				match = append(match, id)
			}
		}
		if len(match) == 1 {
			return &Container{r: r, id: match[0]}, nil
		}
		if len(match) > 1 {
			return nil, errdefs.Invalidf("container ID prefix %q matches %d containers; give more digits", ref, len(match))
		}
	}
	return nil, errdefs.NotFoundf("no such container: %s", ref)
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

func (r *Runtime) ids() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(r.root.Path, "containers"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if state.ValidID(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// List returns the containers whose labels match f, status checked live,
// newest first.
func (r *Runtime) List(ctx context.Context, f runtime.Filter) ([]runtime.Info, error) {
	r.sweep(ctx)
	ids, err := r.ids()
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []runtime.Info
	for _, id := range ids {
		c := &Container{r: r, id: id}
		// Labels first (meta.json): the live state of containers the
		// filter drops is not looked at (up lists a service's replicas
		// once per create; a project of a hundred made that quadratic).
		m, err := c.meta()
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		if !labels.Match(m.Spec.Labels, f.Labels) {
			continue
		}
		info, err := c.info(ctx, m)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// sweep removes what a killed berth left half-made (records still marked
// Creating whose lock nobody holds and that never started, and names that
// point to no container) and restarts containers whose restart policy
// says always but whose shim is gone.
// sweep runs once per Runtime (per command): later creations and
// listings of the same process need not look again, and must not wait on
// the creation locks of the process's own parallel creations (up creates
// many containers at once).
func (r *Runtime) sweep(ctx context.Context) {
	r.swept.Do(func() { r.sweepNow(ctx) })
}

func (r *Runtime) sweepNow(ctx context.Context) {
	ids, _ := r.ids()
	for _, id := range ids {
		c := &Container{r: r, id: id}
		m, err := c.meta()
		if err != nil {
			continue
		}
		if !m.Creating {
			c.revive(ctx, m)
			continue
		}
		// Its creator, or the shim starting it, may be at work: wait for
		// the outcome rather than report a state that is about to change.
		l, err := lockContainerWithin(c.dir(), 10*time.Second)
		if err != nil {
			continue
		}
		if m, err = c.meta(); err == nil && m.Creating {
			st, _ := c.state()
			if st != nil && st.Status == "running" && st.Init.Alive() {
				m.Creating = false // started, then its creator died: keep it
				c.writeMeta(m)
			} else {
				c.destroy(ctx, m)
			}
		}
		l.unlock()
	}
	names, _ := os.ReadDir(filepath.Join(r.root.Path, "names"))
	for _, n := range names {
		id, err := r.root.LookupName(n.Name())
		if err != nil {
			continue
		}
		if _, err := os.Stat(r.dir(id)); errors.Is(err, os.ErrNotExist) {
			r.root.ReleaseName(n.Name(), id)
		}
	}
}

// sharedExe finds a sealed copy of the roles program among this root's
// live shims (see exeseal.CopyFileShared): each is pinned by a pidfd and
// checked against its recorded start time before its exe is opened.
func (r *Runtime) sharedExe(name string, size int64) *os.File {
	ids, err := r.ids()
	if err != nil {
		return nil
	}
	tried := 0
	for _, id := range ids {
		var st State
		if state.ReadJSON(filepath.Join(r.dir(id), StateFile), &st) != nil || st.Shim.Pid <= 0 {
			continue
		}
		fd, err := st.Shim.open()
		if err != nil {
			continue
		}
		f := exeseal.OpenShared(st.Shim.Pid, name, size)
		unix.Close(fd)
		if f != nil {
			return f
		}
		if tried++; tried >= 4 {
			return nil
		}
	}
	return nil
}
