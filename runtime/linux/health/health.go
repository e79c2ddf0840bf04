// Package health runs a container's healthcheck with Docker's semantics.
// It is pure logic: the probe (an exec in the container) and the clock are
// injected, so the loop is deterministic under a fake clock. The shim runs
// one Run per container and persists every Status it is handed.
package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
)

// The health states, as Docker names them.
const (
	Starting  = "starting"
	Healthy   = "healthy"
	Unhealthy = "unhealthy"
)

// Docker's defaults for a zero HealthCheck field, and its limits.
const (
	DefaultInterval      = 30 * time.Second
	DefaultTimeout       = 30 * time.Second
	DefaultStartInterval = 5 * time.Second
	DefaultStartPeriod   = 0
	DefaultRetries       = 3

	// MaxLogEntries is how many results Status.Log keeps.
	MaxLogEntries = 5
	// MaxOutputLen caps Result.Output; a longer output is cut there and
	// gets "..." appended.
	MaxOutputLen = 4096
)

// Result is one probe.
type Result struct {
	Start, End time.Time
	ExitCode   int
	Output     string
}

// Status is the container's health; the field names are those of
// Docker's State.Health, so it marshals the same way.
type Status struct {
	Status        string // starting | healthy | unhealthy
	FailingStreak int
	Log           []Result // the last MaxLogEntries results, oldest first
}

// ExecFunc runs argv in the container and returns its exit code and its
// combined stdout and stderr. ctx is canceled when the probe times out or
// Run ends: ExecFunc must then kill the process and return promptly, since
// Run waits for it (probes never pile up). A non-nil error means the probe
// could not run; it counts as a failure with exit code -1.
type ExecFunc func(ctx context.Context, argv []string) (exitCode int, output []byte, err error)

// Clock is the time source.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Command turns a healthcheck test into the argv to exec:
//
//	["CMD", a, b...]   → [a, b...]
//	["CMD-SHELL", s]   → ["/bin/sh", "-c", s]
//	["NONE"], [] , nil → nil: no healthcheck
//	[s...] (no prefix) → ["/bin/sh", "-c", strings.Join(s, " ")]
//
// The last form is compose's string form (`test: curl -f localhost`) split
// or not. A malformed test (CMD without a command, CMD-SHELL without
// exactly one non-empty command string, NONE with arguments, an empty
// command) is an errdefs.ErrInvalid error.
func Command(test []string) ([]string, error) {
	if len(test) == 0 {
		return nil, nil
	}
	switch test[0] {
	case "NONE":
		if len(test) > 1 {
			return nil, errdefs.Invalidf("healthcheck test %q: NONE takes no arguments", test)
		}
		return nil, nil
	case "CMD":
		if len(test) < 2 || test[1] == "" {
			return nil, errdefs.Invalidf("healthcheck test %q: CMD needs a command", test)
		}
		return append([]string(nil), test[1:]...), nil
	case "CMD-SHELL":
		if len(test) != 2 {
			return nil, errdefs.Invalidf("healthcheck test %q: CMD-SHELL takes one command string", test)
		}
		if strings.TrimSpace(test[1]) == "" {
			return nil, errdefs.Invalidf("healthcheck test %q: CMD-SHELL needs a command", test)
		}
		return []string{"/bin/sh", "-c", test[1]}, nil
	}
	s := strings.Join(test, " ")
	if strings.TrimSpace(s) == "" {
		return nil, errdefs.Invalidf("healthcheck test %q: empty command", test)
	}
	return []string{"/bin/sh", "-c", s}, nil
}

// Enabled reports whether hc is a healthcheck that runs: non-nil with a
// test other than NONE or empty. A malformed test counts as enabled; Run
// reports it.
func Enabled(hc *runtime.HealthCheck) bool {
	if hc == nil {
		return false
	}
	argv, err := Command(hc.Test)
	return err != nil || argv != nil
}

// withDefaults replaces zero (or negative) fields by Docker's defaults.
func withDefaults(hc runtime.HealthCheck) runtime.HealthCheck {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&hc.Interval, DefaultInterval)
	def(&hc.Timeout, DefaultTimeout)
	def(&hc.StartInterval, DefaultStartInterval)
	if hc.StartPeriod < 0 {
		hc.StartPeriod = DefaultStartPeriod
	}
	if hc.Retries <= 0 {
		hc.Retries = DefaultRetries
	}
	return hc
}

// Run probes hc until ctx ends, with Docker's semantics:
//
//   - The status is "starting" until the first result, and record is called
//     with it at once (before any probe) so the shim can persist it.
//   - The start period begins when Run is called (call it as the container
//     starts). While in it and still starting, probes are StartInterval
//     apart; otherwise Interval apart. The first probe comes one interval
//     after Run is called; an interval is counted from the end of the
//     previous probe.
//   - Each probe gets Timeout; a probe that exceeds it is a failure with
//     exit code -1 and Output "Health check exceeded timeout (…)".
//   - Exit code 0 is a success: status healthy, FailingStreak 0. Any other
//     result is a failure: FailingStreak+1, and unhealthy once it reaches
//     Retries, except that a failure while still starting within the start
//     period is not counted (the first success ends the start period).
//   - record gets a copy of the Status after every probe.
//
// Zero fields of hc take Docker's defaults (interval 30s, timeout 30s,
// start interval 5s, start period 0, retries 3). If hc's test is NONE or
// empty Run returns at once without recording; if it is malformed Run
// records a single unhealthy status whose log says why, and returns.
// Run returns when ctx is done and the probe in flight, if any, returned;
// that probe is not recorded. A nil clk is SystemClock; a nil record is a
// no-op.
func Run(ctx context.Context, hc runtime.HealthCheck, exec ExecFunc, clk Clock, record func(Status)) {
	if clk == nil {
		clk = SystemClock
	}
	if record == nil {
		record = func(Status) {}
	}
	argv, err := Command(hc.Test)
	if err != nil {
		now := clk.Now()
		record(Status{Status: Unhealthy, Log: []Result{{Start: now, End: now, ExitCode: -1, Output: err.Error()}}})
		return
	}
	if argv == nil {
		return
	}
	m := &monitor{hc: withDefaults(hc), argv: argv, exec: exec, clk: clk, started: clk.Now()}
	m.st.Status = Starting
	record(m.snapshot())
	for {
		select {
		case <-ctx.Done():
			return
		case <-clk.After(m.interval()):
		}
		r, ok := m.probe(ctx)
		if !ok {
			return
		}
		m.handle(r)
		record(m.snapshot())
	}
}

type monitor struct {
	hc      runtime.HealthCheck // with defaults
	argv    []string
	exec    ExecFunc
	clk     Clock
	started time.Time
	st      Status
}

// interval is the wait before the next probe (Docker's getInterval).
func (m *monitor) interval() time.Duration {
	if m.st.Status == Starting && m.clk.Now().Sub(m.started) < m.hc.StartPeriod {
		return m.hc.StartInterval
	}
	return m.hc.Interval
}

// errTimeout is the cause of a probe's context when it timed out.
var errTimeout = errors.New("health check timed out")

type execResult struct {
	code int
	out  []byte
	err  error
}

// probe runs one check. ok is false when ctx ended meanwhile. The timeout
// is armed from this goroutine, so a fake clock sees the After calls in a
// fixed order: interval, timeout, interval...
func (m *monitor) probe(ctx context.Context) (r Result, ok bool) {
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.Start = m.clk.Now()
	done := make(chan execResult, 1)
	go func() {
		code, out, err := m.exec(pctx, m.argv)
		done <- execResult{code, out, err}
	}()
	timeout := m.clk.After(m.hc.Timeout)
	var res execResult
	timedOut := false
	select {
	case res = <-done:
	case <-timeout:
		timedOut = true
		cancel(fmt.Errorf("%w after %v: %w", errTimeout, m.hc.Timeout, context.DeadlineExceeded))
		res = <-done // wait: probes must not pile up
	case <-ctx.Done():
		<-done
		return r, false
	}
	r.End = m.clk.Now()
	if ctx.Err() != nil {
		return r, false
	}
	output := limit(res.out)
	switch {
	case timedOut:
		r.ExitCode = -1
		r.Output = fmt.Sprintf("Health check exceeded timeout (%v)", m.hc.Timeout)
		if output != "" {
			r.Output += ": " + output
		}
	case res.err != nil:
		r.ExitCode, r.Output = -1, res.err.Error()
	default:
		r.ExitCode, r.Output = res.code, output
	}
	return r, true
}

// handle folds r into the status (Docker's handleProbeResult).
func (m *monitor) handle(r Result) {
	if len(m.st.Log) >= MaxLogEntries {
		m.st.Log = append(m.st.Log[:0:0], m.st.Log[len(m.st.Log)+1-MaxLogEntries:]...)
	}
	m.st.Log = append(m.st.Log, r)
	if r.ExitCode == 0 {
		m.st.Status, m.st.FailingStreak = Healthy, 0
		return
	}
	if m.st.Status == Starting && r.Start.Sub(m.started) < m.hc.StartPeriod {
		return // still starting: the failure does not count
	}
	m.st.FailingStreak++
	if m.st.FailingStreak >= m.hc.Retries {
		m.st.Status = Unhealthy
	}
}

func (m *monitor) snapshot() Status {
	s := m.st
	s.Log = append([]Result(nil), m.st.Log...)
	return s
}

// limit is out capped at MaxOutputLen bytes, with "..." when cut.
func limit(out []byte) string {
	if len(out) > MaxOutputLen {
		return string(out[:MaxOutputLen]) + "..."
	}
	return string(out)
}
