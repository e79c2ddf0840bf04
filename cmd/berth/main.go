// Command berth is a daemonless fig/compose-style composer with its own
// container runtime.
//
// Go 1.25+ keeps cgroup CPU-limit files open to follow them (GOMAXPROCS):
// a built-in init reaper would carry those host fds into the container, so
// berth opts out; it sizes nothing by the CPU limit.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"os"
	goruntime "runtime"

	"berth.dev/berth/cmd/berth/cli"
	"berth.dev/berth/cmd/berth/roles"
)

// The hidden roles drop privileges per thread and exec from the thread
// that did: keep main on the main thread.
func init() { goruntime.LockOSThread() }

func main() {
	if code, ok := roles.Dispatch(os.Args[1:]); ok {
		os.Exit(code)
	}
	// The CLI needs no fixed thread; a locked main goroutine would make
	// every channel handoff with it a thread switch.
	goruntime.UnlockOSThread()
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
