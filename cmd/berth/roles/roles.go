// Package roles runs berth's hidden roles: `_shim` (one per container),
// `_init` (the container's first process until it execs the command) and
// `_exec` (a process joining a running container, until it execs). The
// berth binary dispatches to them, and so does the small roles-only
// program (cmd/berth/roles/berth-roles) that `make build` appends to the
// binary: containers start from a sealed copy of that program, which
// starts faster and weighs less than the whole CLI (see exeseal).
package roles

import (
	"fmt"
	"os"

	"berth.dev/berth/image/overlay"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/runtime/linux"
	"berth.dev/berth/runtime/linux/initproc"
	"berth.dev/berth/runtime/linux/shim"
)

// Dispatch runs the role args[0] names and returns its exit code; ok is
// false when args name no role.
func Dispatch(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "_init":
		return initproc.Main(), true
	case "_exec":
		return initproc.ExecMain(), true
	case "_shim":
		return shimMain(args[1:]), true
	}
	return 0, false
}

func shimMain(args []string) int {
	a, err := shim.ParseArgs(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		return 2
	}
	root, err := state.Open(a.Root)
	if err != nil {
		return 1
	}
	snaps, err := overlay.New(root.Path + "/snapshots")
	if err != nil {
		return 1
	}
	return shim.Main(linux.New(root, snaps, linux.Options{}), root, a.ID)
}
