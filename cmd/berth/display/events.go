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

	// tty: one line per resource, redrawn in place with a spinner.
	lines  []*ttyLine
	byRes  map[string]*ttyLine
	drawn  int
	frame  int
	ticker *time.Ticker
	done   chan struct{}
}

type ttyLine struct {
	res, text string
	status    reconcile.Status
	start     time.Time
	took      time.Duration
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// NewEvents renders to w in mode (tty, plain, json or quiet; resolve auto
// first).
func NewEvents(w io.Writer, mode Progress) *Events {
	return &Events{w: w, mode: mode, starts: map[string]time.Time{}, now: time.Now, byRes: map[string]*ttyLine{}}
}

// Close ends a tty display with its final state; other modes need none.
func (e *Events) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ticker != nil {
		e.ticker.Stop()
		close(e.done)
		e.ticker = nil
	}
	if e.mode == ProgressTTY {
		e.redraw()
	}
}

// ttyEmit records the event and redraws, starting the spinner.
func (e *Events) ttyEmit(ev reconcile.Event) {
	l, ok := e.byRes[ev.Resource]
	if !ok {
		l = &ttyLine{res: ev.Resource, start: e.now()}
		e.byRes[ev.Resource] = l
		e.lines = append(e.lines, l)
	}
	l.text, l.status = ev.Text, ev.Status
	if ev.Status == reconcile.StatusDone || ev.Status == reconcile.StatusFailed || ev.Status == reconcile.StatusSkipped {
		l.took = e.now().Sub(l.start)
	}
	if e.ticker == nil {
		e.ticker = time.NewTicker(100 * time.Millisecond)
		e.done = make(chan struct{})
		go func(t *time.Ticker, done chan struct{}) {
			for {
				select {
				case <-done:
					return
				case <-t.C:
					e.mu.Lock()
					e.frame++
					e.redraw()
					e.mu.Unlock()
				}
			}
		}(e.ticker, e.done)
	}
	e.redraw()
}

func (e *Events) redraw() {
	var b strings.Builder
	if e.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", e.drawn)
	}
	for _, l := range e.lines {
		mark := spinner[e.frame%len(spinner)]
		took := e.now().Sub(l.start)
		switch l.status {
		case reconcile.StatusDone:
			mark, took = "\x1b[32m✔\x1b[0m", l.took
		case reconcile.StatusFailed:
			mark, took = "\x1b[31m✘\x1b[0m", l.took
		case reconcile.StatusSkipped:
			mark, took = "-", l.took
		}
		fmt.Fprintf(&b, "\x1b[2K %s %-40s %-10s %5.1fs\n", mark, kindTitle(l.res), l.text, took.Seconds())
	}
	e.drawn = len(e.lines)
	io.WriteString(e.w, b.String())
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
	if e.mode == ProgressTTY {
		e.ttyEmit(ev)
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
