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

// Copy returns a sealed memfd holding a copy of /proc/self/exe, O_CLOEXEC.
// Run it through Path; close it when the child has started.
func Copy() (*os.File, error) { return CopyFile("/proc/self/exe") }

// CopyFile is Copy of the berth binary at path (tests run the real binary
// from a test process).
func CopyFile(path string) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("exeseal: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // kernels before 6.3 know no MFD_EXEC
		fd, err = unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("exeseal: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "berth (sealed)")
	if _, err := io.Copy(f, src); err != nil {
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

// Path is the name a child execs the copy by. The fd is O_CLOEXEC: the
// kernel resolves the path in the child before close-on-exec runs, and the
// running program holds no fd of it afterwards.
func Path(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }
