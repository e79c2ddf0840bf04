// Package exeseal makes a sealed, in-memory copy of the running berth
// binary for the hidden roles (shim, init, exec) to run from. A process in
// a container that reaches the executable through /proc/<pid>/exe then
// reaches the memfd, which nothing can write (CVE-2019-5736), never the
// host's berth binary.
package exeseal

import (
	"crypto/sha256"
	"encoding/hex"
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
func CopyFile(path string) (*os.File, error) { return CopyFileShared(path, nil) }

// CopyFileShared is CopyFile that first asks find for a sealed copy of
// the same program already running (find calls OpenShared on processes it
// trusts: the caller's own shims, pinned by pidfd): the shims of one berth
// binary then share one copy in memory, and a start skips the copy. A
// copy is named berth-roles-<identity>, the identity being the source
// file's device, inode, size, mtime and roles section, so a rebuilt
// binary never matches an old copy.
func CopyFileShared(path string, find func(name string, size int64) *os.File) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("exeseal: %w", err)
	}
	if seals, err := unix.FcntlInt(src.Fd(), unix.F_GET_SEALS, 0); err == nil && seals&Seals == Seals {
		return src, nil
	}
	defer src.Close()
	off, n, err := rolesSection(src)
	if err != nil {
		return nil, fmt.Errorf("exeseal: %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return nil, fmt.Errorf("exeseal: %s: %w", path, err)
	}
	name := identity(&st, off, n)
	if find != nil {
		if f := find(name, n); f != nil {
			return f, nil
		}
	}
	return newCopy(src, off, n, name)
}

// identity names the sealed copy of the roles program at off, n of the
// file st describes.
func identity(st *unix.Stat_t, off, n int64) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%d:%d:%d:%d.%d:%d:%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, off, n))
	return "berth-roles-" + hex.EncodeToString(sum[:8])
}

// SameProgram reports whether pid runs the sealed copy CopyFileShared
// makes of the berth binary at path: the same roles program, speaking
// the same protocol as the caller's. A process started by another berth
// binary (an older one, before an upgrade) does not.
func SameProgram(pid int, path string) bool {
	src, err := os.Open(path)
	if err != nil {
		return false
	}
	defer src.Close()
	var st unix.Stat_t
	if seals, err := unix.FcntlInt(src.Fd(), unix.F_GET_SEALS, 0); err == nil && seals&Seals == Seals {
		// path is itself a sealed copy (a shim's /proc/self/exe).
		if unix.Fstat(int(src.Fd()), &st) != nil {
			return false
		}
		var pst unix.Stat_t
		if unix.Stat("/proc/"+strconv.Itoa(pid)+"/exe", &pst) != nil {
			return false
		}
		return st.Dev == pst.Dev && st.Ino == pst.Ino
	}
	off, n, err := rolesSection(src)
	if err != nil || unix.Fstat(int(src.Fd()), &st) != nil {
		return false
	}
	l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return err == nil && l == "/memfd:"+identity(&st, off, n)+" (deleted)"
}

// OpenShared opens pid's program if it is the sealed copy called name,
// of size bytes, carrying every seal; else nil. The caller must know pid
// is its own process (a pidfd held across the call keeps the number from
// being reused): a process it does not control could present a memfd of
// its own making.
func OpenShared(pid int, name string, size int64) *os.File {
	exe := "/proc/" + strconv.Itoa(pid) + "/exe"
	if l, err := os.Readlink(exe); err != nil || l != "/memfd:"+name+" (deleted)" {
		return nil
	}
	f, err := os.OpenFile(exe, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	var st unix.Stat_t
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&Seals != Seals || unix.Fstat(int(f.Fd()), &st) != nil || st.Size != size || st.Uid != 0 {
		f.Close()
		return nil
	}
	return f
}

// newCopy seals n bytes at off of src into a new memfd called name.
func newCopy(src *os.File, off, n int64, name string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // kernels before 6.3 know no MFD_EXEC
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
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
