package reconcile

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"sync"
	"time"

	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
)

// Executor runs a plan's actions as its edges allow.
//
// Events: every action emits StatusWorking as it begins ("Creating",
// "Starting", …, compose's words) and StatusDone ("Created", "Started",
// …) or StatusFailed ("Error") as it ends; an action that never runs
// emits StatusSkipped ("Skipped"). A wait for a dependency to become
// healthy or to complete emits StatusWorking "Waiting" then StatusDone
// "Healthy" / "Exited" or StatusFailed "Unhealthy" / "Error", once per
// waited-on action. Event.Resource is the action's Resource with the real
// name of what it acts on: "container:demo-web-1", "network:demo_default",
// "volume:demo_data" ("image:…" unchanged). Emit is called from one
// goroutine at a time, so a Sink need not be safe for concurrent use.
type Executor struct {
	Deps     Deps
	Model    *project.Model
	Options  Options
	Sink     Sink // nil: no events
	Parallel int  // at most this many actions at once; 0 = unlimited
	// WaitTimeout bounds each wait for a container to become healthy or
	// to complete (0: DefaultWaitTimeout). A healthcheck normally decides
	// first: the container turns unhealthy or exits.
	WaitTimeout time.Duration

	// poll is how often a wait reads the container's Info (0: 100 ms);
	// noHealthGrace how long a running container may report no health
	// before it counts as having no healthcheck (0: 3 s). Tests shorten
	// them.
	poll, noHealthGrace time.Duration
}

// DefaultWaitTimeout bounds a wait on a dependency when
// Executor.WaitTimeout is 0.
const DefaultWaitTimeout = 10 * time.Minute

// Run executes p: each action once its edges hold; the first failure
// cancels actions not yet started (running ones finish) and dependents of
// a failed action are skipped; the errors are joined, each naming its
// action and service ("service web: start container:web-1: port 8080 is
// already in use", the cause kept for errors.Is/As). A cancelled ctx stops
// launching actions; its error is joined to the others.
func (e *Executor) Run(ctx context.Context, p *Plan) error {
	if p == nil || len(p.Actions) == 0 {
		return nil
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	if e.Model == nil || e.Model.Project == nil {
		return errors.New("executor: no project model")
	}
	stop, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := &exRun{e: e, ctx: ctx, stop: stop, cancel: cancel, waits: map[exWaitKey]*exWait{}, noHealth: map[string]bool{}}
	if e.Parallel > 0 {
		r.sem = make(chan struct{}, e.Parallel)
	}
	r.nodes = make([]*exNode, len(p.Actions))
	for i, a := range p.Actions {
		r.nodes[i] = &exNode{a: a, done: make(chan struct{})}
	}
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		wg.Go(func() { r.runNode(n) })
	}
	wg.Wait()
	errs := r.errs
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// exRun is one Run.
type exRun struct {
	e   *Executor
	ctx context.Context // the caller's: running actions use it
	// stop ends at the first failure or when ctx ends: nothing starts
	// after it and waits on dependencies give up.
	stop   context.Context
	cancel context.CancelCauseFunc
	sem    chan struct{} // nil: unlimited
	nodes  []*exNode

	mu    sync.Mutex
	errs  []error
	waits map[exWaitKey]*exWait
	// noHealth: the containers this run created, by ID: whether their
	// spec has no healthcheck.
	noHealth map[string]bool

	// renamedLeftovers, listed once: by service and number.
	leftOnce  sync.Once
	leftovers map[string][]runtime.Info
	leftErr   error

	emitMu sync.Mutex
}

// exNode is one action's progress.
type exNode struct {
	a    *Action
	done chan struct{} // closed when the action is over, whatever the outcome
	// Written before done is closed, read after.
	ok bool
	// The container the action made or acted on, for the waits on it.
	containerID, containerName string
}

type exWaitKey struct {
	action int
	cond   Condition
}

// exWait is one wait on a condition of an action's container, shared by
// every action that waits for it.
type exWait struct {
	once sync.Once
	ok   bool
}

// fail records err and stops launching.
func (r *exRun) fail(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	r.cancel(err)
}

func (r *exRun) emit(kind ActionKind, resource string, st Status, text string) {
	if r.e.Sink == nil {
		return
	}
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.e.Sink.Emit(Event{Time: time.Now(), Action: kind, Resource: resource, Status: st, Text: text})
}

func (r *exRun) skip(n *exNode) {
	r.emit(n.a.Kind, r.resource(n.a, false), StatusSkipped, "Skipped")
}

// runNode waits for n's edges, then for a slot, then runs it.
func (r *exRun) runNode(n *exNode) {
	defer close(n.done)
	// Images first: a plan that cannot get its images fails before it
	// creates a network, a volume or a container.
	if n.a.Kind != PullImage && n.a.Kind != BuildImage {
		for _, img := range r.nodes {
			if img.a.Kind != PullImage && img.a.Kind != BuildImage {
				continue
			}
			select {
			case <-img.done:
			case <-r.stop.Done():
				r.skip(n)
				return
			}
			if !img.ok {
				r.skip(n)
				return
			}
		}
	}
	for _, d := range n.a.Deps {
		dep := r.nodes[d.On-1]
		select {
		case <-dep.done:
		case <-r.stop.Done():
			r.skip(n)
			return
		}
		if !dep.ok {
			r.skip(n)
			return
		}
		if d.Cond == Healthy || d.Cond == CompletedSuccessfully {
			if !r.waitFor(dep, d.Cond) {
				r.skip(n)
				return
			}
		}
	}
	if r.sem != nil {
		select {
		case r.sem <- struct{}{}:
		case <-r.stop.Done():
			r.skip(n)
			return
		}
		defer func() { <-r.sem }()
	}
	if r.stop.Err() != nil {
		r.skip(n)
		return
	}
	words := exWords(n.a.Kind)
	res := r.resource(n.a, true)
	r.emit(n.a.Kind, res, StatusWorking, words[0])
	if err := r.safeDo(n); err != nil {
		r.emit(n.a.Kind, res, StatusFailed, "Error")
		r.fail(exWrap(n.a, err))
		return
	}
	n.ok = true
	r.emit(n.a.Kind, res, StatusDone, words[1])
}

// safeDo runs the action, turning a panic into an error.
func (r *exRun) safeDo(n *exNode) (err error) {
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 4096)
			buf = buf[:goruntime.Stack(buf, false)]
			err = fmt.Errorf("internal error (please report it): %v\n%s", p, buf)
		}
	}()
	return r.do(r.ctx, n)
}

// exWrap names the action and its service: "service web: start
// container:web-1: <cause>".
func exWrap(a *Action, err error) error {
	if a.Service != "" {
		return fmt.Errorf("service %s: %s %s: %w", a.Service, a.Kind, a.Resource, err)
	}
	return fmt.Errorf("%s %s: %w", a.Kind, a.Resource, err)
}

// exWords are the event texts of a kind: while working, once done.
func exWords(k ActionKind) [2]string {
	switch k {
	case PullImage:
		return [2]string{"Pulling", "Pulled"}
	case BuildImage:
		return [2]string{"Building", "Built"}
	case CreateNetwork, CreateVolume, CreateContainer:
		return [2]string{"Creating", "Created"}
	case RemoveNetwork, RemoveVolume, RemoveContainer:
		return [2]string{"Removing", "Removed"}
	case StartContainer:
		return [2]string{"Starting", "Started"}
	case StopContainer:
		return [2]string{"Stopping", "Stopped"}
	case RecreateContainer:
		return [2]string{"Recreating", "Recreated"}
	case RestartContainer:
		return [2]string{"Restarting", "Restarted"}
	}
	return [2]string{"Working", "Done"}
}

// waitFor waits, once for all its dependents, until dep's container
// meets cond; a failure is recorded as an error of its own ("service db
// is unhealthy"). It reports whether the dependents may go on.
func (r *exRun) waitFor(dep *exNode, cond Condition) bool {
	r.mu.Lock()
	k := exWaitKey{dep.a.ID, cond}
	w, ok := r.waits[k]
	if !ok {
		w = &exWait{}
		r.waits[k] = w
	}
	r.mu.Unlock()
	w.once.Do(func() { w.ok = r.waitNode(dep, cond) })
	return w.ok
}

func (r *exRun) waitNode(dep *exNode, cond Condition) bool {
	a := dep.a
	svc := a.Service
	c, err := r.findContainer(r.stop, a, dep.containerID)
	if err != nil {
		if r.stop.Err() == nil {
			r.fail(fmt.Errorf("service %s: waiting for %s %s: %w", svc, a.Resource, cond, err))
		}
		return false
	}
	info, _ := c.Info(r.stop)
	res := "container:" + info.Name
	r.emit(a.Kind, res, StatusWorking, "Waiting")
	r.mu.Lock()
	noHealth := r.noHealth[c.ID()]
	r.mu.Unlock()
	err = r.waitContainer(r.stop, c, svc, cond, noHealth)
	if err != nil {
		if r.stop.Err() != nil {
			r.emit(a.Kind, res, StatusSkipped, "Skipped")
			return false
		}
		text := "Error"
		if cond == Healthy {
			text = "Unhealthy"
		}
		r.emit(a.Kind, res, StatusFailed, text)
		r.fail(err)
		return false
	}
	text := "Healthy"
	if cond == CompletedSuccessfully {
		text = "Exited"
	}
	r.emit(a.Kind, res, StatusDone, text)
	return true
}
