package restart

import (
	"testing"
	"time"

	"berth.dev/berth/runtime"
)

// fakeClock is a manual clock; tests move it with advance.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *fakeClock { return &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} }

const ms = time.Millisecond

// run is one run of the container: it lasts d, then ends with e.
type run struct {
	d      time.Duration
	e      Exit
	byUser bool
	want   Decision // Reason is checked only when non-empty
}

func restartIn(d time.Duration) Decision { return Decision{Restart: true, After: d} }

var (
	fail = Exit{Code: 1}
	ok   = Exit{}
)

type machineCase struct {
	name         string
	policy       runtime.RestartPolicy
	runs         []run
	wantRestarts int
}

func TestMachine(t *testing.T) {
	always := func(n int) []run { // n fast failing runs of an always-like policy
		rs := make([]run, n)
		d := 100 * ms
		for i := range rs {
			rs[i] = run{d: ms, e: fail, want: restartIn(d)}
			d = min(2*d, time.Minute)
		}
		return rs
	}
	tests := []machineCase{
		{"on-failure:3 always failing", runtime.RestartPolicy{Name: "on-failure", MaxRetries: 3}, []run{
			{d: ms, e: fail, want: restartIn(100 * ms)},
			{d: ms, e: fail, want: restartIn(200 * ms)},
			{d: ms, e: fail, want: restartIn(400 * ms)},
			{d: ms, e: fail, want: Decision{Reason: "on-failure: 3 retries used"}},
			{d: ms, e: fail, want: Decision{Reason: "on-failure: 3 retries used"}},
		}, 3},
		{"on-failure unlimited", runtime.RestartPolicy{Name: "on-failure"}, always(12), 12},
		{"on-failure signal and oom count as failures", runtime.RestartPolicy{Name: "on-failure"}, []run{
			{d: ms, e: Exit{Code: 137, Signal: 9}, want: restartIn(100 * ms)},
			{d: ms, e: Exit{OOMKilled: true}, want: restartIn(200 * ms)},
		}, 2},
		{"on-failure exit 0", runtime.RestartPolicy{Name: "on-failure", MaxRetries: 3}, []run{
			{d: ms, e: ok, want: Decision{Reason: "exit 0 with on-failure"}},
		}, 0},
		{"on-failure fails then succeeds", runtime.RestartPolicy{Name: "on-failure"}, []run{
			{d: ms, e: fail, want: restartIn(100 * ms)},
			{d: ms, e: ok, want: Decision{Reason: "exit 0 with on-failure"}},
		}, 1},
		{"always capped at 1 min", runtime.RestartPolicy{Name: "always"}, append(always(12), // 100ms·2^10 > 1 min
			run{d: ms, e: ok, want: restartIn(time.Minute)}), 13},
		{"unless-stopped same as always", runtime.RestartPolicy{Name: "unless-stopped"}, append(always(12),
			run{d: ms, e: ok, want: restartIn(time.Minute)}), 13},
		{"long run resets delay, not count", runtime.RestartPolicy{Name: "always"}, []run{
			{d: ms, e: fail, want: restartIn(100 * ms)},
			{d: ms, e: fail, want: restartIn(200 * ms)},
			{d: ms, e: fail, want: restartIn(400 * ms)},
			{d: 10 * time.Second, e: fail, want: restartIn(100 * ms)},
			{d: ms, e: fail, want: restartIn(200 * ms)},
			{d: 10*time.Second - ms, e: fail, want: restartIn(400 * ms)},
		}, 6},
		{"long run resets delay for on-failure:N", runtime.RestartPolicy{Name: "on-failure", MaxRetries: 3}, []run{
			{d: ms, e: fail, want: restartIn(100 * ms)},
			{d: time.Hour, e: fail, want: restartIn(100 * ms)},
			{d: ms, e: fail, want: restartIn(200 * ms)},
			{d: time.Hour, e: fail, want: Decision{Reason: "on-failure: 3 retries used"}},
		}, 3},
		{"policy no", runtime.RestartPolicy{Name: "no"}, []run{
			{d: ms, e: fail, want: Decision{Reason: "policy no"}},
			{d: ms, e: ok, want: Decision{Reason: "policy no"}},
		}, 0},
		{"empty policy is no", runtime.RestartPolicy{}, []run{
			{d: ms, e: fail, want: Decision{Reason: "policy no"}},
		}, 0},
		{"unknown policy", runtime.RestartPolicy{Name: "sometimes"}, []run{
			{d: ms, e: fail, want: Decision{Reason: `unknown policy "sometimes"`}},
		}, 0},
	}
	// A stop by the user never restarts, for every policy.
	for _, name := range []string{"", "no", "always", "unless-stopped", "on-failure", "sometimes"} {
		tests = append(tests, machineCase{"stopped by user/" + name, runtime.RestartPolicy{Name: name}, []run{
			{d: ms, e: Exit{Code: 143, Signal: 15}, byUser: true, want: Decision{Reason: "stopped by user"}},
			{d: time.Hour, e: ok, byUser: true, want: Decision{Reason: "stopped by user"}},
		}, 0})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			m := New(tt.policy, clk)
			for i, r := range tt.runs {
				m.Started(clk.Now())
				clk.advance(r.d)
				e := r.e
				e.At = clk.Now()
				got := m.Exited(e, r.byUser)
				if got.Restart != r.want.Restart || got.After != r.want.After ||
					(r.want.Reason != "" && got.Reason != r.want.Reason) || got.Reason == "" {
					t.Fatalf("run %d: got %+v, want %+v", i, got, r.want)
				}
				if got.Restart {
					clk.advance(got.After)
				}
			}
			if n := m.Restarts(); n != tt.wantRestarts {
				t.Errorf("Restarts() = %d, want %d", n, tt.wantRestarts)
			}
		})
	}
}

func TestReset(t *testing.T) {
	clk := newClock()
	m := New(runtime.RestartPolicy{Name: "on-failure", MaxRetries: 2}, clk)
	for range 3 {
		m.Started(time.Time{})
		m.Exited(fail, false)
	}
	if d := m.Exited(fail, false); d.Restart || m.Restarts() != 2 {
		t.Fatalf("before Reset: %+v, Restarts()=%d", d, m.Restarts())
	}
	m.Reset()
	if m.Restarts() != 0 {
		t.Fatalf("Restarts() after Reset = %d", m.Restarts())
	}
	m.Started(time.Time{})
	if d := m.Exited(fail, false); !d.Restart || d.After != MinDelay || m.Restarts() != 1 {
		t.Fatalf("after Reset: %+v, Restarts()=%d", d, m.Restarts())
	}
}

// Zero timestamps come from the Clock; with neither, a run counts as short.
func TestClockFallback(t *testing.T) {
	clk := newClock()
	m := New(runtime.RestartPolicy{Name: "always"}, clk)
	m.Exited(fail, false) // 100ms
	m.Exited(fail, false) // 200ms
	m.Started(time.Time{})
	clk.advance(ResetAfter)
	if d := m.Exited(fail, false); d.After != MinDelay {
		t.Fatalf("long run via clock: After = %v, want %v", d.After, MinDelay)
	}

	m = New(runtime.RestartPolicy{Name: "always"}, nil)
	m.Exited(fail, false)
	m.Started(time.Time{})
	if d := m.Exited(fail, false); d.After != 200*ms {
		t.Fatalf("nil clock: After = %v, want 200ms", d.After)
	}
}

// FuzzMachine drives random Started/Exited/Reset sequences and checks the
// invariants. Each op byte: low 2 bits pick the call, the rest is an argument
// (seconds to advance the clock, exit code).
func FuzzMachine(f *testing.F) {
	f.Add("on-failure", 3, []byte{0, 1, 0, 1, 0, 1, 0, 1})
	f.Add("always", 0, []byte{0, 5, 0xfc, 9, 2, 3})
	f.Fuzz(func(t *testing.T, name string, maxRetries int, ops []byte) {
		clk := newClock()
		p := runtime.RestartPolicy{Name: name, MaxRetries: maxRetries}
		m := New(p, clk)
		prev := m.Restarts()
		var last time.Duration // After of the last restart since Reset
		for i, b := range ops {
			arg := int(b >> 2)
			switch b & 3 {
			case 0:
				clk.advance(time.Duration(arg) * time.Second)
				m.Started(time.Time{})
				continue
			case 2:
				m.Reset()
				if m.Restarts() != 0 {
					t.Fatalf("op %d: Restarts() = %d after Reset", i, m.Restarts())
				}
				prev, last = 0, 0
				continue
			}
			byUser := b&3 == 3
			clk.advance(time.Duration(arg) * time.Second / 4)
			e := Exit{Code: arg % 3, Signal: arg / 3 % 2 * 9, OOMKilled: arg%7 == 0, At: clk.Now()}
			d := m.Exited(e, byUser)
			switch {
			case d.Reason == "":
				t.Fatalf("op %d: empty Reason in %+v", i, d)
			case d.Restart && (d.After < MinDelay || d.After > MaxDelay):
				t.Fatalf("op %d: After = %v outside [%v, %v]", i, d.After, MinDelay, MaxDelay)
			case d.Restart && d.After != MinDelay && d.After != min(2*last, MaxDelay):
				t.Fatalf("op %d: After = %v after %v: neither reset nor doubled", i, d.After, last)
			case !d.Restart && d.After != 0:
				t.Fatalf("op %d: no restart but After = %v", i, d.After)
			case d.Restart && (byUser || name == "" || name == "no"):
				t.Fatalf("op %d: restart with policy %q, byUser=%v", i, name, byUser)
			case name == "on-failure" && maxRetries > 0 && m.Restarts() > maxRetries:
				t.Fatalf("op %d: Restarts() = %d > MaxRetries %d", i, m.Restarts(), maxRetries)
			}
			want := prev
			if d.Restart {
				want++
			}
			if m.Restarts() != want {
				t.Fatalf("op %d: Restarts() = %d, want %d", i, m.Restarts(), want)
			}
			prev = want
			if d.Restart {
				last = d.After
			}
		}
	})
}
