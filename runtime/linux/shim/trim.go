package shim

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// trimDelay is how long after the start the shim trims its image: a
// container that ends sooner never pays for it.
const trimDelay = 250 * time.Millisecond

// trimImage drops this process's page-table entries for its own program
// image once startup is done. The shim runs from a memfd whose pages are
// all in memory, so the kernel's fault-around maps most of the binary
// into the shim on the first faults: RSS of the whole program though the
// supervise loop touches a few hundred KiB. MADV_DONTNEED on a shared
// file mapping only unmaps (the pages stay in the memfd, shared); what the
// shim uses afterwards faults back in.
func trimImage() {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || !strings.HasPrefix(fs[5], "/memfd:") || strings.Contains(fs[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		unix.Syscall(unix.SYS_MADVISE, uintptr(a), uintptr(b-a), unix.MADV_DONTNEED)
		unix.Syscall(unix.SYS_MADVISE, uintptr(a), uintptr(b-a), unix.MADV_RANDOM)
	}
}
