// Package exeseal makes a sealed, in-memory copy of the running berth
// binary for the hidden roles (shim, init, exec) to run from. A process in
// a container that reaches the executable through /proc/<pid>/exe then
// reaches the memfd, which nothing can write (CVE-2019-5736), never the
// host's berth binary.
package exeseal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// fSealExec forbids changing the exec bits (Linux 6.3); x/sys lacks the name.
const fSealExec = 0x0020

// Seals every copy carries.
const Seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// Copy returns a sealed memfd holding the program the hidden roles run
// from, O_CLOEXEC: the roles program appended to /proc/self/exe when
// there is one (make build appends it: see Pack), else the whole binary.
// Run it through Path; close it when the child has started.
func Copy() (*os.File, error) { return CopyFile("/proc/self/exe") }

// CopyFile is Copy of the berth binary at path (tests run the real binary
// from a test process).
func CopyFile(path string) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("exeseal: %w", err)
	}
	// Already a sealed copy (a shim runs from one, and execs healthchecks
	// from it): the same file serves, no copy needed.
	if seals, err := unix.FcntlInt(src.Fd(), unix.F_GET_SEALS, 0); err == nil && seals&Seals == Seals {
		return src, nil
	}
	defer src.Close()
	off, n, err := rolesSection(src)
	if err != nil {
		return nil, fmt.Errorf("exeseal: %s: %w", path, err)
	}
	fd, err := unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // kernels before 6.3 know no MFD_EXEC
		fd, err = unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("exeseal: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "berth (sealed)")
	if err := copyRange(f, src, off, n); err != nil {
		f.Close()
		return nil, fmt.Errorf("exeseal: copy binary: %w", err)
	}
	if err := unix.Fchmod(fd, 0o555); err != nil {
		f.Close()
		return nil, fmt.Errorf("exeseal: %w", err)
	}
	seals := Seals
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals|fSealExec); err != nil {
		if _, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			f.Close()
			return nil, fmt.Errorf("exeseal: seal: %w", err)
		}
	}
	return f, nil
}

// copyRange copies n bytes at off of src into dst with sendfile, in the
// kernel.
func copyRange(dst, src *os.File, off, n int64) error {
	if err := dst.Truncate(n); err != nil { // one allocation, not many
		return err
	}
	for n > 0 {
		w, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), &off, int(min(n, 1<<30)))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if w == 0 {
			return io.ErrUnexpectedEOF
		}
		n -= int64(w)
	}
	return nil
}

// Path is the name a child execs the copy by. The fd is O_CLOEXEC: the
// kernel resolves the path in the child before close-on-exec runs, and the
// running program holds no fd of it afterwards.
func Path(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }
