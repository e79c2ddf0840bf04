// Command mktestimage writes berth's busybox test image: a reproducible
// rootfs tarball built from Debian's static busybox (package busybox-static).
//
//	go run ./internal/testutil/cmd/mktestimage [-busybox /bin/busybox] [-o _output/testimage/busybox.tar]
//
// Entries are sorted, owned by 0:0 and dated 2000-01-01, so the same busybox
// gives the same bytes (and image ID) on every machine.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"berth.dev/berth/internal/testutil"
)

func main() {
	bb := flag.String("busybox", "/bin/busybox", "static busybox binary")
	out := flag.String("o", "_output/testimage/busybox.tar", "output tarball")
	flag.Parse()
	if err := run(*bb, *out); err != nil {
		fmt.Fprintf(os.Stderr, "mktestimage: %v\n", err)
		os.Exit(1)
	}
}

func run(bb, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".busybox-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := testutil.WriteBusyboxImage(tmp, bb); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
