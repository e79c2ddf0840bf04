// Package restart is the shim's restart policy: given how a container's run
// ended, it decides whether to start it again and after what delay. It
// follows Docker's policies and its restart manager's backoff. The package
// is pure: no syscalls, no goroutines, no real time; the caller passes
// timestamps, and the injected Clock only fills in the ones left zero.
//
// Policies (runtime.RestartPolicy.Name):
//
//   - "no" (or ""): never restart.
//   - "always": restart after every exit unless the user stopped it.
//   - "unless-stopped": the same as "always" within a run sequence. In Docker
//     the two differ only when the daemon starts: "always" containers are
//     started again even if the user had stopped them, "unless-stopped" ones
//     are not. berth has no daemon, so that difference belongs to whatever
//     brings containers back at boot, not to this package.
//   - "on-failure": restart only after a failed run (non-zero exit code, a
//     signal, or an OOM kill), at most MaxRetries times when MaxRetries > 0;
//     MaxRetries <= 0 means no limit.
//
// A stop by the user never restarts, whatever the policy. An unknown policy
// name never restarts.
//
// Backoff: the first restart waits MinDelay (100 ms), each consecutive one
// doubles the previous delay, up to MaxDelay (1 min). A run that lasted at
// least ResetAfter (10 s) brings the next delay back to MinDelay; it does not
// reset the restart count (only Reset does).
package restart

import (
	"fmt"
	"time"

	"berth.dev/berth/runtime"
)

// Backoff parameters, Docker's.
const (
	MinDelay   = 100 * time.Millisecond // delay before the first restart
	MaxDelay   = time.Minute            // the delay never grows past this
	ResetAfter = 10 * time.Second       // a run this long resets the delay
)

// Clock supplies the time for Started and Exited calls that pass a zero
// time.Time.
type Clock interface{ Now() time.Time }

// Exit describes how a run ended.
type Exit struct {
	Code      int       // exit status; 128+n by convention when killed by signal n
	Signal    int       // signal that killed the process, 0 if it exited
	OOMKilled bool      // the cgroup's OOM killer ended it
	At        time.Time // when it ended; zero means the Clock's Now
}

// failed reports whether the run counts as a failure for on-failure.
func (e Exit) failed() bool { return e.Code != 0 || e.Signal != 0 || e.OOMKilled }

func (e Exit) String() string {
	s := fmt.Sprintf("exit %d", e.Code)
	if e.Signal != 0 {
		s += fmt.Sprintf(", signal %d", e.Signal)
	}
	if e.OOMKilled {
		s += ", oom-killed"
	}
	return s
}

// Decision is the Machine's answer to an exit.
type Decision struct {
	Restart bool          // start the container again
	After   time.Duration // wait this long first; in [MinDelay, MaxDelay] when Restart, else 0
	Reason  string        // for logs and inspect, e.g. "policy no", "on-failure: 3 retries used"
}

// Machine holds the restart state of one container's run sequence. It is not
// safe for concurrent use; the shim owns one per container.
type Machine struct {
	policy   runtime.RestartPolicy
	clock    Clock
	restarts int
	delay    time.Duration // delay of the last restart; 0 means the next one gets MinDelay
	started  time.Time     // start of the current run; zero if unknown
}

// New returns a Machine for policy p. c may be nil if every call passes a
// non-zero time; a run whose start or end is unknown counts as short.
func New(p runtime.RestartPolicy, c Clock) *Machine {
	return &Machine{policy: p, clock: c}
}

func (m *Machine) now(t time.Time) time.Time {
	if t.IsZero() && m.clock != nil {
		return m.clock.Now()
	}
	return t
}

// Started records that a run began at at (zero: the Clock's Now).
func (m *Machine) Started(at time.Time) { m.started = m.now(at) }

// Exited records the end of the current run and decides whether to restart.
// A restart decision counts as a restart in Restarts.
func (m *Machine) Exited(e Exit, stoppedByUser bool) Decision {
	end := m.now(e.At)
	if !m.started.IsZero() && !end.IsZero() && end.Sub(m.started) >= ResetAfter {
		m.delay = 0
	}
	m.started = time.Time{}

	if stoppedByUser {
		return Decision{Reason: "stopped by user"}
	}
	switch name := m.policy.Name; name {
	case "", "no":
		return Decision{Reason: "policy no"}
	case "always", "unless-stopped":
		return m.restart("policy " + name + ": " + e.String())
	case "on-failure":
		if !e.failed() {
			return Decision{Reason: "exit 0 with on-failure"}
		}
		n := m.policy.MaxRetries
		if n <= 0 {
			return m.restart("on-failure: " + e.String())
		}
		if m.restarts >= n {
			return Decision{Reason: fmt.Sprintf("on-failure: %d retries used", n)}
		}
		return m.restart(fmt.Sprintf("on-failure: %s, retry %d of %d", e, m.restarts+1, n))
	default:
		return Decision{Reason: fmt.Sprintf("unknown policy %q", name)}
	}
}

func (m *Machine) restart(reason string) Decision {
	if m.delay == 0 {
		m.delay = MinDelay
	} else {
		m.delay = min(2*m.delay, MaxDelay)
	}
	m.restarts++
	return Decision{Restart: true, After: m.delay, Reason: reason}
}

// Restarts returns the number of restarts decided so far (Docker's
// RestartCount).
func (m *Machine) Restarts() int { return m.restarts }

// Reset starts the count and the backoff over, as when the user starts the
// container again.
func (m *Machine) Reset() {
	m.restarts = 0
	m.delay = 0
	m.started = time.Time{}
}
