package display

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
)

func emitAll(e *Events) {
	for _, ev := range []reconcile.Event{
		{Action: reconcile.CreateNetwork, Resource: "network:demo_default", Status: reconcile.StatusWorking, Text: "Creating"},
		{Action: reconcile.CreateNetwork, Resource: "network:demo_default", Status: reconcile.StatusDone, Text: "Created"},
		{Action: reconcile.StartContainer, Resource: "container:demo-web-1", Status: reconcile.StatusWorking, Text: "Starting"},
		{Action: reconcile.StartContainer, Resource: "container:demo-web-1", Status: reconcile.StatusFailed, Text: "Error"},
	} {
		ev.Time = time.Unix(0, 0)
		e.Emit(ev)
	}
	e.Close()
}

func TestEventsPlainIsOneLineAnEvent(t *testing.T) {
	var b bytes.Buffer
	emitAll(NewEvents(&b, ProgressPlain))
	want := " Network demo_default Creating\n Network demo_default Created\n Container demo-web-1 Starting\n Container demo-web-1 Error\n"
	if b.String() != want {
		t.Errorf("plain:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestEventsJSONAndQuiet(t *testing.T) {
	var b bytes.Buffer
	emitAll(NewEvents(&b, ProgressJSON))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("json lines: %q", b.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[3]), &m); err != nil || m["status"] != "failed" || m["resource"] != "container:demo-web-1" {
		t.Errorf("json: %v %v", m, err)
	}
	b.Reset()
	emitAll(NewEvents(&b, ProgressQuiet))
	if b.Len() != 0 {
		t.Errorf("quiet wrote %q", b.String())
	}
}

// The tty view keeps one line per resource and ends with its final state.
func TestEventsTTYRedrawsOneLineAResource(t *testing.T) {
	var b bytes.Buffer
	emitAll(NewEvents(&b, ProgressTTY))
	out := b.String()
	last := out[strings.LastIndex(out, "\x1b[2A"):]
	if !strings.Contains(last, "✔") || !strings.Contains(last, "Network demo_default") || !strings.Contains(last, "Created") ||
		!strings.Contains(last, "✘") || !strings.Contains(last, "Container demo-web-1") || strings.Count(last, "\n") != 2 {
		t.Errorf("final tty frame: %q", last)
	}
}
