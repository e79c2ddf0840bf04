// Package fakelog is the call log and failure injection the in-memory
// fakes (runtime/fake, network/fake, volumes/fake) share: tests read the
// order of state-changing calls, hook into them and make the next call of
// an operation fail.
package fakelog

import (
	"slices"
	"strings"
	"sync"
)

// Log records calls. Its zero value is ready; embed it in a fake.
type Log struct {
	mu    sync.Mutex
	calls []string
	fails []failure
	hook  func(op, args string)
}

type failure struct {
	op, name string
	err      error
}

// FailNext makes the next call of op whose names include name (any call
// of op when name is "") return err. The call is still logged.
func (l *Log) FailNext(op, name string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails = append(l.fails, failure{op, name, err})
}

// OnCall sets a hook run at the start of every call, outside any lock.
func (l *Log) OnCall(fn func(op, args string)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hook = fn
}

// Calls is the log of logged calls in order ("create demo-web-1").
func (l *Log) Calls() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// ResetCalls empties the log.
func (l *Log) ResetCalls() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = nil
}

// Call records one call: the line "op words…" when logged, the hook with
// hookArgs, and the first injected failure of op matching one of names.
func (l *Log) Call(op string, logged bool, names []string, hookArgs string, words ...string) error {
	l.mu.Lock()
	if logged {
		l.calls = append(l.calls, strings.TrimSpace(strings.Join(append([]string{op}, words...), " ")))
	}
	hook := l.hook
	var err error
	for i, f := range l.fails {
		if f.op == op && (f.name == "" || slices.Contains(names, f.name)) {
			err = f.err
			l.fails = slices.Delete(l.fails, i, i+1)
			break
		}
	}
	l.mu.Unlock()
	if hook != nil {
		hook(op, hookArgs)
	}
	return err
}
