package display

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/reconcile"
)

// Events renders the executor's events as compose does: one line per
// resource when it is done ("✔ Container demo-web-1  Started  0.3s"),
// plain lines without colour or marks off a terminal, JSON objects with
// --progress json, nothing with quiet.
type Events struct {
	mu     sync.Mutex
	w      io.Writer
	mode   Progress
	starts map[string]time.Time
	now    func() time.Time
}

// NewEvents renders to w in mode (tty, plain, json or quiet; resolve auto
// first).
func NewEvents(w io.Writer, mode Progress) *Events {
	return &Events{w: w, mode: mode, starts: map[string]time.Time{}, now: time.Now}
}

// Emit renders one event.
func (e *Events) Emit(ev reconcile.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.mode {
	case ProgressQuiet:
		return
	case ProgressJSON:
		b, _ := json.Marshal(map[string]any{"time": ev.Time.Format(time.RFC3339Nano), "action": ev.Action.String(),
			"resource": ev.Resource, "status": ev.Status.String(), "text": ev.Text})
		fmt.Fprintf(e.w, "%s\n", b)
		return
	}
	if ev.Status == reconcile.StatusWorking || ev.Status == reconcile.StatusWaiting {
		if _, ok := e.starts[ev.Resource]; !ok {
			e.starts[ev.Resource] = e.now()
		}
		if e.mode == ProgressPlain {
			fmt.Fprintf(e.w, " %s %s\n", kindTitle(ev.Resource), ev.Text)
		}
		return
	}
	took := ""
	if t, ok := e.starts[ev.Resource]; ok {
		took = fmt.Sprintf("%.1fs", e.now().Sub(t).Seconds())
		delete(e.starts, ev.Resource)
	}
	mark := map[reconcile.Status]string{reconcile.StatusDone: "✔", reconcile.StatusFailed: "✘", reconcile.StatusSkipped: "-"}[ev.Status]
	if e.mode == ProgressPlain {
		fmt.Fprintf(e.w, " %s %s\n", kindTitle(ev.Resource), ev.Text)
		return
	}
	fmt.Fprintf(e.w, " %s %-40s %-10s %s\n", mark, kindTitle(ev.Resource), ev.Text, took)
}

// kindTitle turns "container:demo-web-1" into "Container demo-web-1".
func kindTitle(resource string) string {
	kind, name, ok := strings.Cut(resource, ":")
	if !ok || kind == "" {
		return resource
	}
	return strings.ToUpper(kind[:1]) + kind[1:] + " " + name
}
