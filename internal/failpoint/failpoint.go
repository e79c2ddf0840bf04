// Package failpoint injects crashes and errors at named points, for tests
// of crash consistency and convergence. It is armed by BERTH_FAILPOINT, a
// comma-separated list of
//
//	crash:NAME               exit at once (code 137) when NAME is hit
//	error:NAME               Hit(NAME) returns ErrInjected
//	exit-after:ACTION:RES    AfterAction(ACTION, RES) exits (the reconciler calls it)
//
// Unarmed, Hit costs one atomic load. Nothing happens at init time.
package failpoint

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// ErrInjected is returned by Hit for an armed error:NAME.
var ErrInjected = errors.New("failpoint: injected error")

// CrashCode is the exit status of an injected crash (as if SIGKILLed).
const CrashCode = 137

var (
	once    sync.Once
	armed   map[string]string // name → "crash" | "error" | "exit-after"
	exitFn  = func(code int) { os.Exit(code) }
	setupMu sync.Mutex
)

func load() {
	armed = parse(os.Getenv("BERTH_FAILPOINT"))
}

func parse(spec string) map[string]string {
	out := map[string]string{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		kind, name, ok := strings.Cut(item, ":")
		if !ok || name == "" {
			continue
		}
		switch kind {
		case "crash", "error", "exit-after":
			out[name] = kind
		}
	}
	return out
}

// Hit reports an injected error for error:NAME, exits for crash:NAME, and
// returns nil otherwise.
func Hit(name string) error {
	once.Do(load)
	switch armed[name] {
	case "crash":
		fmt.Fprintf(os.Stderr, "failpoint: crash at %s\n", name)
		exitFn(CrashCode)
	case "error":
		return fmt.Errorf("%w at %s", ErrInjected, name)
	}
	return nil
}

// AfterAction exits the process when exit-after:ACTION:RESOURCE is armed.
func AfterAction(action, resource string) {
	once.Do(load)
	if armed[action+":"+resource] == "exit-after" {
		fmt.Fprintf(os.Stderr, "failpoint: exit after %s %s\n", action, resource)
		exitFn(CrashCode)
	}
}

// Reset re-reads BERTH_FAILPOINT (tests that change it in process).
func Reset() {
	setupMu.Lock()
	defer setupMu.Unlock()
	once = sync.Once{}
}
