// Command berth is a daemonless fig/compose-style composer with its own
// container runtime.
package main

import (
	"os"
	goruntime "runtime"

	"berth.dev/berth/cmd/berth/cli"
	"berth.dev/berth/runtime/linux/initproc"
)

// The hidden roles drop privileges per thread and exec from the thread
// that did: keep main on the main thread.
func init() { goruntime.LockOSThread() }

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "_init":
			os.Exit(initproc.Main())
		case "_shim":
			os.Exit(cli.ShimMain(os.Args[2:]))
		}
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
