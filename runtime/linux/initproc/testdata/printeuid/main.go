// Command printeuid prints its real and effective uid. initproc's
// TestNoNewPrivs installs it setuid-root in an image: busybox cannot serve,
// since its FEATURE_SUID drops a setuid euid for applets such as id.
package main

import (
	"fmt"
	"syscall"
)

func main() {
	fmt.Printf("uid=%d euid=%d\n", syscall.Getuid(), syscall.Geteuid())
}
