// Package reconcile turns a project model and the observed machine into a
// plan and executes it (Observe and Compute land with the reconciler issue;
// this file holds the plan types and their golden text form).
package reconcile

import (
	"fmt"
	"strings"
	"time"
)

// ActionKind is what an action does; the numbers group by resource.
type ActionKind uint8

// Action kinds.
const (
	PullImage         ActionKind = 1
	BuildImage        ActionKind = 2
	CreateNetwork     ActionKind = 10
	RemoveNetwork     ActionKind = 11
	CreateVolume      ActionKind = 20
	RemoveVolume      ActionKind = 21
	CreateContainer   ActionKind = 30
	StartContainer    ActionKind = 31
	StopContainer     ActionKind = 32
	RemoveContainer   ActionKind = 33
	RecreateContainer ActionKind = 34
	RestartContainer  ActionKind = 35
)

// String is the verb shown in plans.
func (k ActionKind) String() string {
	switch k {
	case PullImage:
		return "pull"
	case BuildImage:
		return "build"
	case CreateNetwork, CreateVolume, CreateContainer:
		return "create"
	case RemoveNetwork, RemoveVolume, RemoveContainer:
		return "remove"
	case StartContainer:
		return "start"
	case StopContainer:
		return "stop"
	case RecreateContainer:
		return "recreate"
	case RestartContainer:
		return "restart"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Condition is what an edge waits for.
type Condition uint8

// Edge conditions.
const (
	Done Condition = iota
	Started
	Healthy
	CompletedSuccessfully
)

func (c Condition) String() string {
	return [...]string{"done", "started", "healthy", "completed"}[c]
}

// Edge makes an action wait for action On to reach Cond.
type Edge struct {
	On   int
	Cond Condition
}

// Action is one step of a plan.
type Action struct {
	ID       int // 1..n in plan order
	Kind     ActionKind
	Resource string // "network:default", "container:web-2", "image:web"
	Cause    string // "missing", "config hash changed: image", "scale 3→2", "orphan"
	Deps     []Edge
	Service  string
	Number   int
	Target   string // observed container ID, for actions on existing containers
	// Needs are the depends_on conditions a StartContainer (or Restart)
	// waits for on services that have no action in this plan (already
	// running and unchanged): the executor checks them on the machine.
	Needs []Need
}

// Need is one depends_on entry of the service an action starts.
type Need struct {
	Service  string
	Cond     Condition
	Required bool // false: depends_on.required: false, a missing service is skipped
}

// Plan is a list of actions in topological order.
type Plan struct{ Actions []*Action }

// String renders the plan one action a line, columns aligned: ID, verb,
// resource, cause, then the actions it waits for with their condition
// unless it is Done. Golden tests compare this text.
func (p *Plan) String() string {
	if len(p.Actions) == 0 {
		return "(nothing to do)\n"
	}
	var wID, wVerb, wRes, wCause int
	for _, a := range p.Actions {
		wID = max(wID, len(fmt.Sprintf("#%d", a.ID)))
		wVerb = max(wVerb, len(a.Kind.String()))
		wRes = max(wRes, len(a.Resource))
		wCause = max(wCause, len([]rune(a.Cause)))
	}
	var b strings.Builder
	for _, a := range p.Actions {
		line := fmt.Sprintf("%-*s %-*s %-*s", wID, fmt.Sprintf("#%d", a.ID), wVerb, a.Kind, wRes, a.Resource)
		if len(a.Deps) > 0 {
			line += " " + a.Cause + strings.Repeat(" ", wCause-len([]rune(a.Cause)))
			line += " <-"
			for _, d := range a.Deps {
				line += fmt.Sprintf(" #%d", d.On)
				if d.Cond != Done {
					line += "(" + d.Cond.String() + ")"
				}
			}
		} else if a.Cause != "" {
			line += " " + a.Cause
		}
		b.WriteString(strings.TrimRight(line, " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// Validate checks the plan's shape: IDs 1..n in order, and every edge
// pointing at an earlier action (so the order is topological).
func (p *Plan) Validate() error {
	for i, a := range p.Actions {
		if a.ID != i+1 {
			return fmt.Errorf("action %d has ID %d", i+1, a.ID)
		}
		for _, d := range a.Deps {
			if d.On < 1 || d.On >= a.ID {
				return fmt.Errorf("action #%d (%s %s) waits for #%d, which does not come before it", a.ID, a.Kind, a.Resource, d.On)
			}
		}
	}
	return nil
}

// Status of an action in an Event.
type Status uint8

// Event statuses.
const (
	StatusWaiting Status = iota
	StatusWorking
	StatusDone
	StatusFailed
	StatusSkipped
)

func (s Status) String() string {
	return [...]string{"waiting", "working", "done", "failed", "skipped"}[s]
}

// Event reports progress; display/ renders it.
type Event struct {
	Time     time.Time
	Action   ActionKind
	Resource string
	Status   Status
	Text     string
	Current  int64 // progress, e.g. bytes pulled
	Total    int64
}

// Sink receives events. Emit must not block for long.
type Sink interface{ Emit(Event) }

// SinkFunc adapts a function to Sink.
type SinkFunc func(Event)

// Emit calls f.
func (f SinkFunc) Emit(e Event) { f(e) }
