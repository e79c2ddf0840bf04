// Package fake is an in-memory runtime.Runtime for tests of what drives a
// runtime (the reconcile executor): stable IDs, scripted container
// behaviour, a call log for ordering assertions and injected failures.
// It follows the interface rules the conformance suite pins (name taken →
// ErrConflict, Load by ID, ID prefix or name, Remove of a running
// container without Force → ErrConflict); what it cannot model (exec,
// attach, logs, copying files) returns errdefs.ErrInvalid.
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
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
)

// Behaviour scripts what a container's process does once started.
type Behaviour struct {
	// StartErr is what Start returns (nothing runs). A *runtime.StartError
	// records an exit with its Code, as the real runtime does.
	StartErr error
	// ExitAfterStart: the process ends on its own with ExitCode, Delay
	// after it started.
	ExitAfterStart bool
	ExitCode       int
	// Healthy or Unhealthy: the healthcheck reports that, Delay after the
	// start ("starting" until then). Neither: the container has no
	// healthcheck (Health "").
	Healthy, Unhealthy bool
	Delay              time.Duration
}

// Runtime is the fake. The zero value is not usable: call New.
type Runtime struct {
	mu         sync.Mutex
	seq        int
	byID       map[string]*container
	behaviours map[string]Behaviour // by container name at Create
	now        func() time.Time
	// FailNext(op, name, err) fails the next call of op ("create",
	// "start", "stop", "kill", "wait", "rename", "remove", "load", "list",
	// "info", "setnetworking", "networking") on the container named name
	// ("" for any); Calls logs the state-changing ones ("create
	// demo-web-1", "rename demo-web-1 0123456789ab_demo-web-1"); OnCall's
	// hook runs at the start of every call, outside the fake's lock (it may
	// block to prove concurrency, or call the fake).
	fakelog.Log
}

// New returns an empty fake runtime.
func New() *Runtime {
	return &Runtime{byID: map[string]*container{}, behaviours: map[string]Behaviour{}, now: time.Now}
}

type container struct {
	r         *Runtime
	id        string
	spec      runtime.ContainerSpec
	created   time.Time
	status    runtime.Status
	exit      *runtime.ExitStatus
	health    string
	startedAt time.Time
	restarts  int
	errMsg    string
	net       runtime.Networking
	b         Behaviour
	stopTO    *time.Duration
	changed   chan struct{} // closed and replaced at each status change
}

// SetBehaviour scripts the container named name (looked up at each
// Start, so it may be set before or after Create).
func (r *Runtime) SetBehaviour(name string, b Behaviour) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.behaviours[name] = b
}

// Spec is the spec the container named name was created with (its Name
// follows renames); the zero spec when there is no such container.
func (r *Runtime) Spec(name string) runtime.ContainerSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.byNameLocked(name)
	if c == nil {
		return runtime.ContainerSpec{}
	}
	return c.spec
}

// StopTimeout is the timeout of the last Stop of the container named
// name; ok is false when it was never stopped.
func (r *Runtime) StopTimeout(name string) (d time.Duration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.byNameLocked(name)
	if c == nil || c.stopTO == nil {
		return 0, false
	}
	return *c.stopTO, true
}

// Names lists the existing containers' names, sorted.
func (r *Runtime) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.byID {
		out = append(out, c.spec.Name)
	}
	slices.Sort(out)
	return out
}

// Exit makes the running container named name end now with code (a
// process dying on its own, e.g. after the executor waited for it).
func (r *Runtime) Exit(name string, code int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.byNameLocked(name)
	if c == nil {
		return errdefs.NotFoundf("no such container: %s", name)
	}
	c.settleLocked()
	if c.status != runtime.StatusRunning {
		return errdefs.Conflictf("container %s is not running", name)
	}
	c.endLocked(runtime.ExitStatus{Code: code, ExitedAt: r.now()})
	return nil
}

// SetHealth sets the health of the container named name ("healthy",
// "unhealthy", "starting", "").
func (r *Runtime) SetHealth(name, health string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.byNameLocked(name)
	if c == nil {
		return errdefs.NotFoundf("no such container: %s", name)
	}
	c.settleLocked()
	c.b.Healthy, c.b.Unhealthy = false, false
	c.health = health
	c.notifyLocked()
	return nil
}

// call logs the call, runs the hook and returns an injected failure.
func (r *Runtime) call(op, name string, args ...string) error {
	return r.Call(op, logged(op), []string{name}, name, append([]string{name}, args...)...)
}

// logged: the call log keeps what changes state.
func logged(op string) bool {
	switch op {
	case "load", "list", "info", "networking", "wait":
		return false
	}
	return true
}

func (r *Runtime) byNameLocked(name string) *container {
	for _, c := range r.byID {
		if c.spec.Name == name {
			return c
		}
	}
	return nil
}

func (r *Runtime) newIDLocked() string {
	for {
		r.seq++
		sum := sha256.Sum256(fmt.Appendf(nil, "fake-container-%d", r.seq))
		id := hex.EncodeToString(sum[:])
		if _, taken := r.byID[id]; !taken {
			return id
		}
	}
}

// Create records a container; a taken name is ErrConflict.
func (r *Runtime) Create(ctx context.Context, s runtime.ContainerSpec) (runtime.Container, error) {
	if err := r.call("create", s.Name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.Name == "" {
		return nil, errdefs.Invalidf("container spec has no name (the fake does not pick one)")
	}
	if err := validName(s.Name); err != nil {
		return nil, err
	}
	if c := r.byNameLocked(s.Name); c != nil {
		return nil, errdefs.Conflictf("container name %q is already in use by container %.12s", s.Name, c.id)
	}
	s.Labels = maps.Clone(s.Labels)
	c := &container{r: r, id: r.newIDLocked(), spec: s, created: r.now(), changed: make(chan struct{})}
	r.byID[c.id] = c
	return &handle{r: r, id: c.id}, nil
}

func validName(name string) error {
	for i, ch := range name {
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			i > 0 && (ch == '_' || ch == '.' || ch == '-')
		if !ok {
			return errdefs.Invalidf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
		}
	}
	return nil
}

// Load finds a container by full ID, unique ID prefix or name.
func (r *Runtime) Load(ctx context.Context, ref string) (runtime.Container, error) {
	if err := r.call("load", ref); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return nil, errdefs.Invalidf("empty container name or ID")
	}
	if c := r.byNameLocked(ref); c != nil {
		return &handle{r: r, id: c.id}, nil
	}
	var match []string
	for id := range r.byID {
		if strings.HasPrefix(id, ref) {
			match = append(match, id)
		}
	}
	switch len(match) {
	case 1:
		return &handle{r: r, id: match[0]}, nil
	case 0:
		return nil, errdefs.NotFoundf("no such container: %s", ref)
	}
	return nil, errdefs.Invalidf("container ID prefix %q matches %d containers; give more digits", ref, len(match))
}

// List returns the containers whose labels include f's, newest first.
func (r *Runtime) List(ctx context.Context, f runtime.Filter) ([]runtime.Info, error) {
	if err := r.call("list", ""); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runtime.Info
	for _, c := range r.byID {
		if labels.Match(c.spec.Labels, f.Labels) {
			out = append(out, c.infoLocked())
		}
	}
	slices.SortFunc(out, func(a, b runtime.Info) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out, nil
}

// handle is a runtime.Container: an ID looked up at each call, so a
// removed container answers ErrNotFound.
type handle struct {
	r  *Runtime
	id string
}

var _ runtime.Container = (*handle)(nil)

// get returns the container, locked.
func (h *handle) get() (*container, error) {
	h.r.mu.Lock()
	c, ok := h.r.byID[h.id]
	if !ok {
		h.r.mu.Unlock()
		return nil, errdefs.NotFoundf("no such container: %.12s", h.id)
	}
	c.settleLocked()
	return c, nil
}

// name is the container's current name for the call log ("" once gone).
func (h *handle) name() string {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	if c, ok := h.r.byID[h.id]; ok {
		return c.spec.Name
	}
	return h.id[:12]
}

func (h *handle) ID() string { return h.id }

func (h *handle) Info(ctx context.Context) (runtime.Info, error) {
	if err := h.r.call("info", h.name()); err != nil {
		return runtime.Info{}, err
	}
	c, err := h.get()
	if err != nil {
		return runtime.Info{}, err
	}
	defer h.r.mu.Unlock()
	return c.infoLocked(), nil
}

func (c *container) infoLocked() runtime.Info {
	info := runtime.Info{
		ID: c.id, Name: c.spec.Name, Labels: maps.Clone(c.spec.Labels), Created: c.created,
		Status: c.status, Health: c.health, Restarts: c.restarts, StartedAt: c.startedAt, Error: c.errMsg,
		Ports: slices.Clone(c.spec.Ports),
	}
	if c.status == runtime.StatusRunning || c.status == runtime.StatusPaused {
		info.Pid = 1000 + int(c.id[0])
	}
	if c.exit != nil {
		e := *c.exit
		info.Exit = &e
	}
	return info
}

// settleLocked applies the scripted behaviour due by now.
func (c *container) settleLocked() {
	if c.status != runtime.StatusRunning {
		return
	}
	if c.r.now().Before(c.startedAt.Add(c.b.Delay)) {
		return
	}
	switch {
	case c.b.Healthy && c.health != "healthy":
		c.health = "healthy"
		c.notifyLocked()
	case c.b.Unhealthy && c.health != "unhealthy":
		c.health = "unhealthy"
		c.notifyLocked()
	}
	if c.b.ExitAfterStart {
		c.endLocked(runtime.ExitStatus{Code: c.b.ExitCode, ExitedAt: c.startedAt.Add(c.b.Delay)})
	}
}

func (c *container) endLocked(e runtime.ExitStatus) {
	c.status = runtime.StatusExited
	c.exit = &e
	c.health = ""
	c.notifyLocked()
}

func (c *container) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Start runs the scripted behaviour; starting a running container does
// nothing, a paused one is ErrConflict.
func (h *handle) Start(ctx context.Context) error {
	if err := h.r.call("start", h.name()); err != nil {
		return err
	}
	c, err := h.get()
	if err != nil {
		return err
	}
	defer h.r.mu.Unlock()
	switch c.status {
	case runtime.StatusRunning:
		return nil
	case runtime.StatusPaused:
		return errdefs.Conflictf("cannot start container %s: it is paused: unpause it instead", c.spec.Name)
	}
	b := c.r.behaviours[c.spec.Name]
	c.b = b
	if b.StartErr != nil {
		if se, ok := b.StartErr.(*runtime.StartError); ok && !se.PortInUse {
			c.exit = &runtime.ExitStatus{Code: se.Code, ExitedAt: c.r.now()}
			c.status = runtime.StatusExited
			c.errMsg = se.Msg
			c.notifyLocked()
		}
		return b.StartErr
	}
	c.status = runtime.StatusRunning
	c.startedAt = c.r.now()
	c.errMsg = ""
	c.health = ""
	if b.Healthy || b.Unhealthy {
		c.health = "starting"
	}
	c.notifyLocked()
	c.settleLocked()
	return nil
}

// Stop ends a running container (exit 143, as a process that honours
// SIGTERM); a container that is not running is left alone.
func (h *handle) Stop(ctx context.Context, timeout time.Duration) error {
	if err := h.r.call("stop", h.name()); err != nil {
		return err
	}
	c, err := h.get()
	if err != nil {
		return err
	}
	defer h.r.mu.Unlock()
	c.stopTO = &timeout
	if c.status == runtime.StatusRunning || c.status == runtime.StatusPaused || c.status == runtime.StatusRestarting {
		c.endLocked(runtime.ExitStatus{Code: 128 + int(unix.SIGTERM), Signal: unix.SIGTERM, ExitedAt: c.r.now()})
	}
	return nil
}

// Kill signals a running container: SIGKILL, SIGTERM, SIGINT and SIGQUIT
// end it with 128+sig; others are delivered and ignored.
func (h *handle) Kill(ctx context.Context, sig unix.Signal) error {
	if err := h.r.call("kill", h.name(), unix.SignalName(sig)); err != nil {
		return err
	}
	c, err := h.get()
	if err != nil {
		return err
	}
	defer h.r.mu.Unlock()
	if c.status != runtime.StatusRunning && c.status != runtime.StatusPaused {
		return errdefs.Conflictf("container %s is not running", c.spec.Name)
	}
	switch sig {
	case unix.SIGKILL, unix.SIGTERM, unix.SIGINT, unix.SIGQUIT:
		c.endLocked(runtime.ExitStatus{Code: 128 + int(sig), Signal: sig, ExitedAt: c.r.now()})
	}
	return nil
}

// Wait blocks until the container is not running and returns its exit; a
// container that never ran is ErrConflict.
func (h *handle) Wait(ctx context.Context) (runtime.ExitStatus, error) {
	if err := h.r.call("wait", h.name()); err != nil {
		return runtime.ExitStatus{}, err
	}
	for {
		c, err := h.get()
		if err != nil {
			return runtime.ExitStatus{}, err
		}
		switch c.status {
		case runtime.StatusRunning, runtime.StatusPaused, runtime.StatusRestarting:
		default:
			defer h.r.mu.Unlock()
			if c.exit == nil {
				return runtime.ExitStatus{}, errdefs.Conflictf("container %s has not run", c.spec.Name)
			}
			return *c.exit, nil
		}
		ch := c.changed
		var due <-chan time.Time
		if c.b.ExitAfterStart {
			// settleLocked ends it at startedAt+Delay, at the latest then.
			due = time.After(max(c.startedAt.Add(c.b.Delay).Sub(c.r.now()), time.Millisecond))
		}
		h.r.mu.Unlock()
		select {
		case <-ch:
		case <-due:
		case <-ctx.Done():
			return runtime.ExitStatus{}, fmt.Errorf("wait: %w", errdefs.ErrCanceled)
		}
	}
}

func unsupported(what string) error {
	return errdefs.Invalidf("%s is not supported by the fake runtime", what)
}

func (h *handle) Exec(ctx context.Context, p runtime.ProcessSpec, s runtime.Stdio) (runtime.ExitStatus, error) {
	return runtime.ExitStatus{}, unsupported("exec")
}

func (h *handle) Attach(ctx context.Context, s runtime.Stdio) error { return unsupported("attach") }

func (h *handle) Logs(ctx context.Context, o runtime.LogOptions) (io.ReadCloser, error) {
	return nil, unsupported("logs")
}

func (h *handle) CopyIn(ctx context.Context, dst string, tar io.Reader) error {
	return unsupported("copying into a container")
}

func (h *handle) CopyOut(ctx context.Context, src string) (io.ReadCloser, error) {
	return nil, unsupported("copying out of a container")
}

// Pause freezes a running container.
func (h *handle) Pause(ctx context.Context) error {
	return h.transition("pause", runtime.StatusRunning, runtime.StatusPaused, "running")
}

// Resume thaws a paused container.
func (h *handle) Resume(ctx context.Context) error {
	return h.transition("resume", runtime.StatusPaused, runtime.StatusRunning, "paused")
}

// transition moves the container from one status to another, or says it
// is not in the first ("container web is not running").
func (h *handle) transition(op string, from, to runtime.Status, fromWord string) error {
	if err := h.r.call(op, h.name()); err != nil {
		return err
	}
	c, err := h.get()
	if err != nil {
		return err
	}
	defer h.r.mu.Unlock()
	if c.status != from {
		return errdefs.Conflictf("container %s is not %s", c.spec.Name, fromWord)
	}
	c.status = to
	c.notifyLocked()
	return nil
}

// Rename gives the container a new name: a taken one is ErrConflict, its
// own name a no-op.
func (h *handle) Rename(ctx context.Context, name string) error {
	if err := h.r.call("rename", h.name(), name); err != nil {
		return err
	}
	c, err := h.get()
	if err != nil {
		return err
	}
	defer h.r.mu.Unlock()
	if name == c.spec.Name {
		return nil
	}
	if name == "" {
		return errdefs.Invalidf("empty container name")
	}
	if err := validName(name); err != nil {
		return err
	}
	if o := h.r.byNameLocked(name); o != nil {
		return errdefs.Conflictf("container name %q is already in use by container %.12s", name, o.id)
	}
	c.spec.Name = name
	return nil
}

// NetNS is /fake/netns/<id> for a container with a namespace of its own.
func (h *handle) NetNS() string {
	c, err := h.get()
	if err != nil {
		return ""
	}
	defer h.r.mu.Unlock()
	switch c.spec.NetNS {
	case "", "private", "none":
		return "/fake/netns/" + c.id
	}
	return ""
}

// SetNetworking records n.
func (h *handle) SetNetworking(ctx context.Context, n runtime.Networking) error {
	if err := h.r.call("setnetworking", h.name()); err != nil {
		return err
	}
	c, err := h.get()
	if err != nil {
		return err
	}
	defer h.r.mu.Unlock()
	c.net = cloneNetworking(n)
	return nil
}

// Networking returns what SetNetworking recorded.
func (h *handle) Networking(ctx context.Context) (runtime.Networking, error) {
	if err := h.r.call("networking", h.name()); err != nil {
		return runtime.Networking{}, err
	}
	c, err := h.get()
	if err != nil {
		return runtime.Networking{}, err
	}
	defer h.r.mu.Unlock()
	return cloneNetworking(c.net), nil
}

func cloneNetworking(n runtime.Networking) runtime.Networking {
	out := runtime.Networking{}
	for _, e := range n.Endpoints {
		e.Aliases = slices.Clone(e.Aliases)
		out.Endpoints = append(out.Endpoints, e)
	}
	for _, h := range n.Hosts {
		h.Names = slices.Clone(h.Names)
		out.Hosts = append(out.Hosts, h)
	}
	return out
}

// Remove deletes the container; a running or paused one only with Force.
func (h *handle) Remove(ctx context.Context, o runtime.RemoveOptions) error {
	if err := h.r.call("remove", h.name()); err != nil {
		return err
	}
	c, err := h.get()
	if err != nil {
		return err
	}
	defer h.r.mu.Unlock()
	if (c.status == runtime.StatusRunning || c.status == runtime.StatusPaused) && !o.Force {
		return errdefs.Conflictf("container %s is running: stop it first or use --force", c.spec.Name)
	}
	if c.status == runtime.StatusRunning || c.status == runtime.StatusPaused {
		c.endLocked(runtime.ExitStatus{Code: 128 + int(unix.SIGKILL), Signal: unix.SIGKILL, ExitedAt: c.r.now()})
	}
	delete(h.r.byID, c.id)
	return nil
}
