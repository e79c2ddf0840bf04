package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/failpoint"
)

// tmpPrefix marks files being written; readers never see them under the
// final name, and CleanStale removes the ones a crash left.
const tmpPrefix = ".tmp-"

// WriteFile writes data to path atomically: a temp file in the same
// directory (O_EXCL, O_CLOEXEC), fsync, rename over path, fsync of the
// directory. After a crash path holds the old or the new content, whole.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, true)
}

// WriteFileVolatile is WriteFile without the fsyncs: readers still see the
// old or the new content whole, but a power loss may keep the old one.
// For runtime state that means nothing after a reboot (a container's
// pids and last exit), written on every start and stop.
//
// It allocates no inode when it can: the new content goes into a standing
// swap file (.tmp-<name>-swap, flocked by its writer) that renameat2
// RENAME_EXCHANGE trades with the file, so the old content becomes the
// next swap file. A create and a delete per write made ext4 scan its
// recently deleted inodes, which grew with every container of a large up.
func WriteFileVolatile(path string, data []byte, perm os.FileMode) error {
	if err := writeSwap(path, data, perm); err == nil {
		return nil
	}
	return writeFile(path, data, perm, false)
}

// writeSwap is WriteFileVolatile's exchange; any error sends the caller to
// the plain temp-file path.
func writeSwap(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	swap := filepath.Join(dir, tmpPrefix+base+"-swap")
	fd, err := unix.Open(swap, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, uint32(perm.Perm()))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return err // another writer is at it: take the plain path
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		return errdefs.Invalidf("%s is not a plain file", swap)
	}
	if err := unix.Ftruncate(fd, 0); err != nil {
		return err
	}
	for b := data; len(b) > 0; {
		n, err := unix.Pwrite(fd, b, int64(len(data)-len(b)))
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
		return err
	}
	err = unix.Renameat2(unix.AT_FDCWD, swap, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) {
		err = unix.Rename(swap, path) // first write: nothing to trade with
	}
	return err
}

func writeFile(path string, data []byte, perm os.FileMode, durable bool) error {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, tmpPrefix+base+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := failpoint.Hit("state.write.before-rename"); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := failpoint.Hit("state.write.after-rename"); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !durable {
		return nil
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so a rename in it is durable.
func SyncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// WriteJSON writes v as indented JSON, atomically, with mode perm.
func WriteJSON(path string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return WriteFile(path, append(b, '\n'), perm)
}

// WriteJSONVolatile is WriteJSON through WriteFileVolatile.
func WriteJSONVolatile(path string, v any, perm os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return WriteFileVolatile(path, append(b, '\n'), perm)
}

// ReadJSON reads path into v; a missing file is errdefs.ErrNotFound.
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return errdefs.NotFoundf("%s: %w", path, err)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// CleanStale removes temp files a crashed writer left in dir.
func CleanStale(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}
