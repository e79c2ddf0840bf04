// Command pack appends the roles-only program to the berth CLI binary
// (make build runs it): pack CLI ROLES OUT.
package main

import (
	"fmt"
	"os"

	"berth.dev/berth/runtime/linux/exeseal"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: pack CLI ROLES OUT")
		os.Exit(2)
	}
	if err := exeseal.Pack(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "pack:", err)
		os.Exit(1)
	}
}
