// Command berth is a daemonless fig/compose-style composer with its own
// container runtime.
package main

import (
	"os"

	"berth.dev/berth/cmd/berth/cli"
)

func main() {
	// Hidden roles (_shim, _init, _exec) are dispatched here, before cobra,
	// once the runtime lands; everything else is the CLI.
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
