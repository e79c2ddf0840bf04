// Command berth-roles is berth's hidden roles alone, without the CLI: the
// program containers are started from. `make build` appends it to the
// berth binary; it is never installed or run by hand. Like berth, it keeps
// no cgroup CPU-limit files open (they would reach a container with the
// init reaper).
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"fmt"
	"os"
	goruntime "runtime"

	"berth.dev/berth/cmd/berth/roles"
)

// The roles drop privileges on the main thread (see cmd/berth).
func init() { goruntime.LockOSThread() }

func main() {
	if code, ok := roles.Dispatch(os.Args[1:]); ok {
		os.Exit(code)
	}
	fmt.Fprintln(os.Stderr, "berth-roles: the hidden roles of berth (_shim, _init); started by berth only")
	os.Exit(2)
}
