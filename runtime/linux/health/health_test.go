package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
)

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		test []string
		want []string
		err  bool
	}{
		{test: nil},
		{test: []string{}},
		{test: []string{"NONE"}},
		{test: []string{"CMD", "curl", "-f", "http://localhost/"}, want: []string{"curl", "-f", "http://localhost/"}},
		{test: []string{"CMD", "true"}, want: []string{"true"}},
		{test: []string{"CMD-SHELL", "curl -f localhost || exit 1"}, want: []string{"/bin/sh", "-c", "curl -f localhost || exit 1"}},
		{test: []string{"curl -f localhost"}, want: []string{"/bin/sh", "-c", "curl -f localhost"}},
		{test: []string{"curl", "-f", "localhost"}, want: []string{"/bin/sh", "-c", "curl -f localhost"}},
		{test: []string{"NONE", "x"}, err: true},
		{test: []string{"CMD"}, err: true},
		{test: []string{"CMD", ""}, err: true},
		{test: []string{"CMD-SHELL"}, err: true},
		{test: []string{"CMD-SHELL", " "}, err: true},
		{test: []string{"CMD-SHELL", "a", "b"}, err: true},
		{test: []string{""}, err: true},
		{test: []string{" ", ""}, err: true},
	} {
		got, err := Command(tc.test)
		if tc.err {
			if !errdefs.IsInvalid(err) || got != nil {
				t.Errorf("Command(%q) = %q, %v; want an ErrInvalid error", tc.test, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Command(%q) = %q, %v; want %q", tc.test, got, err, tc.want)
		}
	}
	// The result does not alias the test.
	test := []string{"CMD", "a"}
	got, _ := Command(test)
	got[0] = "b"
	if test[1] != "a" {
		t.Error("Command aliases its argument")
	}
}

func TestEnabled(t *testing.T) {
	for hc, want := range map[*runtime.HealthCheck]bool{
		nil:                                  false,
		{}:                                   false,
		{Test: []string{"NONE"}}:             false,
		{Test: []string{"CMD", "true"}}:      true,
		{Test: []string{"CMD-SHELL", "x"}}:   true,
		{Test: []string{"CMD"}}:              true, // malformed: Run reports it
		{Test: []string{"curl localhost"}}:   true,
		{Test: []string{"NONE"}, Retries: 5}: false,
	} {
		if got := Enabled(hc); got != want {
			t.Errorf("Enabled(%+v) = %v, want %v", hc, got, want)
		}
	}
}

// fakeClock moves only when advanced. Every After call is reported on
// calls, so a test knows what the loop waits for before it advances.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	calls   chan time.Duration
}

type waiter struct {
	at time.Time
	c  chan time.Time
}

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock {
	return &fakeClock{now: epoch, calls: make(chan time.Duration, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	}
	c.calls <- d
	return ch
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
		} else {
			w.c <- c.now
		}
	}
	c.waiters = kept
}

// expectAfter waits for the loop's next After call and checks its duration.
func (c *fakeClock) expectAfter(t *testing.T, want time.Duration) {
	t.Helper()
	select {
	case d := <-c.calls:
		if d != want {
			t.Fatalf("After(%v), want After(%v)", d, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no After(%v) call", want)
	}
}

func (c *fakeClock) noAfter(t *testing.T) {
	t.Helper()
	select {
	case d := <-c.calls:
		t.Fatalf("unexpected After(%v)", d)
	default:
	}
}

// outcome is what one fake probe does.
type outcome struct {
	code int
	out  string
	err  error
	hang bool // block until the context is canceled, then return out
}

// fakeExec plays outcomes in order (the last one repeats).
type fakeExec struct {
	mu       sync.Mutex
	outcomes []outcome
	argvs    [][]string
	causes   []error
}

func (f *fakeExec) exec(ctx context.Context, argv []string) (int, []byte, error) {
	f.mu.Lock()
	n := len(f.argvs)
	f.argvs = append(f.argvs, argv)
	o := f.outcomes[min(n, len(f.outcomes)-1)]
	f.mu.Unlock()
	if o.hang {
		<-ctx.Done()
		f.mu.Lock()
		f.causes = append(f.causes, context.Cause(ctx))
		f.mu.Unlock()
		return 137, []byte(o.out), nil
	}
	return o.code, []byte(o.out), o.err
}

// harness runs Run in a goroutine and collects what it records.
type harness struct {
	t      *testing.T
	clk    *fakeClock
	ex     *fakeExec
	hc     runtime.HealthCheck
	rec    chan Status
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs hc (its test defaults to CMD check).
func start(t *testing.T, hc runtime.HealthCheck, outcomes ...outcome) *harness {
	t.Helper()
	if hc.Test == nil {
		hc.Test = []string{"CMD", "check"}
	}
	h := &harness{t: t, clk: newFakeClock(), ex: &fakeExec{outcomes: outcomes}, hc: withDefaults(hc),
		rec: make(chan Status, 100), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		Run(ctx, hc, h.ex.exec, h.clk, func(s Status) { h.rec <- s })
	}()
	t.Cleanup(h.stop)
	if s := h.status(); s.Status != Starting || s.FailingStreak != 0 || len(s.Log) != 0 {
		t.Fatalf("initial status %+v, want starting", s)
	}
	return h
}

func (h *harness) status() Status {
	h.t.Helper()
	select {
	case s := <-h.rec:
		return s
	case <-time.After(5 * time.Second):
		h.t.Fatal("nothing recorded")
	}
	return Status{}
}

// step waits for the loop to sleep wait, lets that pass, and returns the
// status recorded after the probe (a quick one: it must not hit the timeout).
func (h *harness) step(wait time.Duration) Status {
	h.t.Helper()
	h.clk.expectAfter(h.t, wait)
	h.clk.advance(wait)
	h.clk.expectAfter(h.t, h.hc.Timeout)
	return h.status()
}

func (h *harness) stop() {
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		h.t.Fatal("Run did not return after cancel")
	}
}

func TestScenarios(t *testing.T) {
	type probe struct {
		wait   time.Duration // the sleep before the probe
		code   int
		status string
		streak int
	}
	s := time.Second
	for _, tc := range []struct {
		name   string
		hc     runtime.HealthCheck
		probes []probe
	}{
		{"defaults: healthy after the first success", runtime.HealthCheck{}, []probe{
			{30 * s, 0, Healthy, 0},
			{30 * s, 0, Healthy, 0},
		}},
		{"defaults: unhealthy after exactly 3 failures", runtime.HealthCheck{}, []probe{
			{30 * s, 1, Starting, 1},
			{30 * s, 1, Starting, 2},
			{30 * s, 1, Unhealthy, 3},
			{30 * s, 1, Unhealthy, 4},
			{30 * s, 0, Healthy, 0},
		}},
		{"retries 1", runtime.HealthCheck{Interval: 5 * s, Retries: 1}, []probe{
			{5 * s, 2, Unhealthy, 1},
		}},
		{"healthy then unhealthy, recovers", runtime.HealthCheck{Interval: 10 * s, Retries: 2}, []probe{
			{10 * s, 0, Healthy, 0},
			{10 * s, 1, Healthy, 1},
			{10 * s, 0, Healthy, 0},
			{10 * s, 1, Healthy, 1},
			{10 * s, 1, Unhealthy, 2},
			{10 * s, 0, Healthy, 0},
		}},
		{"failures in the start period do not count", runtime.HealthCheck{Interval: 30 * s, StartPeriod: 10 * s, StartInterval: 2 * s, Retries: 2}, []probe{
			{2 * s, 1, Starting, 0}, // t=2
			{2 * s, 1, Starting, 0}, // t=4
			{2 * s, 1, Starting, 0}, // t=6
			{2 * s, 1, Starting, 0}, // t=8
			{2 * s, 1, Starting, 1}, // t=10: the start period is over
			{30 * s, 1, Unhealthy, 2},
		}},
		{"first success ends the start period", runtime.HealthCheck{Interval: 30 * s, StartPeriod: 60 * s, StartInterval: 1 * s, Retries: 1}, []probe{
			{1 * s, 1, Starting, 0},
			{1 * s, 0, Healthy, 0},
			{30 * s, 1, Unhealthy, 1}, // t=32, within 60s, but no longer starting
		}},
		{"default start interval is 5s", runtime.HealthCheck{StartPeriod: 12 * s}, []probe{
			{5 * s, 1, Starting, 0},
			{5 * s, 1, Starting, 0},
			{5 * s, 1, Starting, 1}, // t=15: the wait was chosen at t=10
			{30 * s, 1, Starting, 2},
			{30 * s, 1, Unhealthy, 3},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var outcomes []outcome
			for _, p := range tc.probes {
				outcomes = append(outcomes, outcome{code: p.code, out: fmt.Sprintf("exit %d\n", p.code)})
			}
			h := start(t, tc.hc, outcomes...)
			elapsed := time.Duration(0)
			for i, p := range tc.probes {
				st := h.step(p.wait)
				elapsed += p.wait
				if st.Status != p.status || st.FailingStreak != p.streak {
					t.Fatalf("probe %d: %s streak %d, want %s streak %d", i, st.Status, st.FailingStreak, p.status, p.streak)
				}
				last := st.Log[len(st.Log)-1]
				want := Result{Start: epoch.Add(elapsed), End: epoch.Add(elapsed), ExitCode: p.code, Output: fmt.Sprintf("exit %d\n", p.code)}
				if last != want {
					t.Fatalf("probe %d: result %+v, want %+v", i, last, want)
				}
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	hc := runtime.HealthCheck{Interval: 10 * time.Second, Timeout: 3 * time.Second, Retries: 2}
	h := start(t, hc, outcome{hang: true}, outcome{hang: true, out: "partial"}, outcome{code: 0})
	for i, want := range []struct {
		status string
		streak int
		output string
	}{
		{Starting, 1, "Health check exceeded timeout (3s)"},
		{Unhealthy, 2, "Health check exceeded timeout (3s): partial"},
	} {
		h.clk.expectAfter(t, 10*time.Second)
		h.clk.advance(10 * time.Second)
		h.clk.expectAfter(t, 3*time.Second)
		// The probe hangs: nothing is recorded before the timeout.
		select {
		case s := <-h.rec:
			t.Fatalf("recorded %+v before the timeout", s)
		case <-time.After(20 * time.Millisecond):
		}
		h.clk.advance(3 * time.Second)
		st := h.status()
		if st.Status != want.status || st.FailingStreak != want.streak {
			t.Fatalf("probe %d: %s streak %d, want %s streak %d", i, st.Status, st.FailingStreak, want.status, want.streak)
		}
		r := st.Log[len(st.Log)-1]
		if r.ExitCode != -1 || r.Output != want.output || r.End.Sub(r.Start) != 3*time.Second {
			t.Fatalf("probe %d: result %+v", i, r)
		}
	}
	h.ex.mu.Lock()
	for _, c := range h.ex.causes {
		if !errors.Is(c, context.DeadlineExceeded) || !errors.Is(c, errTimeout) {
			t.Errorf("probe context cause %v, want a timeout", c)
		}
	}
	h.ex.mu.Unlock()
	// A probe quicker than the timeout is not one.
	if st := h.step(10 * time.Second); st.Status != Healthy || st.FailingStreak != 0 {
		t.Fatalf("after a quick success: %+v", st)
	}
}

func TestExecError(t *testing.T) {
	h := start(t, runtime.HealthCheck{Interval: time.Second, Retries: 1},
		outcome{code: 0, out: "ignored", err: errors.New("exec in web: container web is not running")})
	st := h.step(time.Second)
	r := st.Log[0]
	if st.Status != Unhealthy || r.ExitCode != -1 || r.Output != "exec in web: container web is not running" {
		t.Fatalf("exec error: %+v", st)
	}
}

func TestLogAndOutputCap(t *testing.T) {
	long := strings.Repeat("x", MaxOutputLen) + "tail"
	var outcomes []outcome
	for i := range 8 {
		outcomes = append(outcomes, outcome{code: i % 2, out: fmt.Sprintf("%d:%s", i, long)})
	}
	h := start(t, runtime.HealthCheck{Interval: time.Second}, outcomes...)
	var st Status
	for i := range 8 {
		st = h.step(time.Second)
		if want := min(i+1, MaxLogEntries); len(st.Log) != want {
			t.Fatalf("probe %d: %d log entries, want %d", i, len(st.Log), want)
		}
	}
	for j, r := range st.Log {
		i := 8 - MaxLogEntries + j // oldest first
		full := fmt.Sprintf("%d:%s", i, long)
		if r.Output != full[:MaxOutputLen]+"..." || r.ExitCode != i%2 {
			t.Errorf("log[%d]: exit %d output %q…, want probe %d", j, r.ExitCode, r.Output[:8], i)
		}
		if !r.Start.Equal(epoch.Add(time.Duration(i+1) * time.Second)) {
			t.Errorf("log[%d] started at %v", j, r.Start)
		}
	}
	// Exactly MaxOutputLen bytes is not cut.
	if got := limit(bytes.Repeat([]byte("y"), MaxOutputLen)); len(got) != MaxOutputLen {
		t.Errorf("limit cut a %d-byte output to %d", MaxOutputLen, len(got))
	}
}

func TestRecordGetsCopies(t *testing.T) {
	h := start(t, runtime.HealthCheck{Interval: time.Second}, outcome{code: 0, out: "a"})
	var kept []Status
	for i := range 7 {
		st := h.step(time.Second)
		if len(st.Log) != min(i+1, MaxLogEntries) {
			t.Fatalf("status %d: %d log entries", i, len(st.Log))
		}
		for j, r := range st.Log {
			if r.Output != "a" {
				t.Fatalf("status %d log %d: %q: the loop saw a recorded status change", i, j, r.Output)
			}
		}
		st.Log[len(st.Log)-1].Output = "scribbled"
		kept = append(kept, st)
	}
	for i, st := range kept {
		if st.Log[len(st.Log)-1].Output != "scribbled" {
			t.Fatalf("status %d changed after it was recorded", i)
		}
	}
}

func TestArgv(t *testing.T) {
	h := start(t, runtime.HealthCheck{Test: []string{"CMD-SHELL", "pg_isready -U postgres"}, Interval: time.Second}, outcome{})
	h.step(time.Second)
	h.ex.mu.Lock()
	defer h.ex.mu.Unlock()
	if want := []string{"/bin/sh", "-c", "pg_isready -U postgres"}; !reflect.DeepEqual(h.ex.argvs[0], want) {
		t.Fatalf("argv %q, want %q", h.ex.argvs[0], want)
	}
}

func TestCancel(t *testing.T) {
	t.Run("while waiting", func(t *testing.T) {
		h := start(t, runtime.HealthCheck{Interval: time.Second})
		h.clk.expectAfter(t, time.Second)
		h.stop()
		h.ex.mu.Lock()
		defer h.ex.mu.Unlock()
		if len(h.ex.argvs) != 0 {
			t.Fatal("probed after cancel")
		}
	})
	t.Run("during a probe", func(t *testing.T) {
		h := start(t, runtime.HealthCheck{Test: []string{"CMD", "sleep", "1h"}, Interval: time.Second}, outcome{hang: true})
		h.clk.expectAfter(t, time.Second)
		h.clk.advance(time.Second)
		h.clk.expectAfter(t, 30*time.Second)
		h.stop() // returns only once the probe returned
		h.ex.mu.Lock()
		defer h.ex.mu.Unlock()
		if len(h.ex.causes) != 1 || !errors.Is(h.ex.causes[0], context.Canceled) {
			t.Fatalf("probe causes %v", h.ex.causes)
		}
		select {
		case s := <-h.rec:
			t.Fatalf("recorded %+v for a canceled probe", s)
		default:
		}
	})
}

func TestDisabledAndInvalid(t *testing.T) {
	for _, test := range [][]string{nil, {"NONE"}} {
		clk := newFakeClock()
		called := false
		Run(context.Background(), runtime.HealthCheck{Test: test}, func(context.Context, []string) (int, []byte, error) {
			called = true
			return 0, nil, nil
		}, clk, func(Status) { t.Errorf("test %q: recorded a status", test) })
		if called {
			t.Errorf("test %q: probed", test)
		}
		clk.noAfter(t)
	}
	var got []Status
	Run(context.Background(), runtime.HealthCheck{Test: []string{"CMD"}}, nil, newFakeClock(), func(s Status) { got = append(got, s) })
	if len(got) != 1 || got[0].Status != Unhealthy || len(got[0].Log) != 1 || got[0].Log[0].ExitCode != -1 ||
		!strings.Contains(got[0].Log[0].Output, "CMD needs a command") {
		t.Fatalf("invalid test recorded %+v", got)
	}
}

// TestRealClock runs the loop on the system clock with tiny intervals.
func TestRealClock(t *testing.T) {
	var mu sync.Mutex
	n := 0
	exec := func(ctx context.Context, argv []string) (int, []byte, error) {
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		switch {
		case i <= 2:
			return 1, []byte("not yet"), nil
		case i <= 4:
			return 0, []byte("ok"), nil
		case i == 5:
			<-ctx.Done() // times out
			return -1, nil, ctx.Err()
		}
		return 1, []byte("down"), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := make(chan Status, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, runtime.HealthCheck{Test: []string{"CMD", "check"}, Interval: 10 * time.Millisecond,
			Timeout: 20 * time.Millisecond, StartPeriod: time.Hour, StartInterval: 5 * time.Millisecond, Retries: 2},
			exec, nil, func(s Status) { rec <- s })
	}()
	var seq []string
	deadline := time.After(10 * time.Second)
	for len(seq) == 0 || seq[len(seq)-1] != Unhealthy {
		select {
		case s := <-rec:
			seq = append(seq, s.Status)
			if s.Status == Unhealthy && !strings.HasPrefix(s.Log[len(s.Log)-1].Output, "down") {
				t.Fatalf("unhealthy on %+v", s.Log)
			}
		case <-deadline:
			t.Fatalf("never unhealthy: %v", seq)
		}
	}
	cancel()
	<-done
	want := []string{Starting, Starting, Starting, Healthy, Healthy, Healthy, Unhealthy}
	if !reflect.DeepEqual(seq, want) {
		t.Fatalf("statuses %v, want %v", seq, want)
	}
}
