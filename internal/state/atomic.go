package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// UpdateJSON is WriteJSON that leaves path alone when it holds exactly
// what WriteJSON would write: no new file, no fsync, nothing for ext4 to
// allocate or for a watcher to see. Records rewritten on every start
// (the endpoints a container asks for) mostly do not change.
func UpdateJSON(path string, v any, perm os.FileMode) error {
	b, same, err := unchangedJSON(path, v)
	if err != nil || same {
		return err
	}
	return WriteFile(path, b, perm)
}

// UpdateJSONVolatile is UpdateJSON through WriteFileVolatile.
func UpdateJSONVolatile(path string, v any, perm os.FileMode) error {
	b, same, err := unchangedJSON(path, v)
	if err != nil || same {
		return err
	}
	return WriteFileVolatile(path, b, perm)
}

// unchangedJSON encodes v as WriteJSON does and says whether path holds
// those bytes already.
func unchangedJSON(path string, v any) ([]byte, bool, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, false, fmt.Errorf("write %s: %w", path, err)
	}
	b = append(b, '\n')
	old, err := ReadFile(path, int64(len(b)))
	return b, err == nil && bytes.Equal(old, b), nil
}

// ReadFile reads a file WriteFile or WriteFileVolatile writes: whole, one
// version of it. A volatile write fills the standing swap file, which
// held the previous version, and exchanges it with the file: a reader
// still reading that inode from before the exchange would see it
// truncated and rewritten under it. So the read holds a shared flock on
// the inode, which makes writeSwap (it takes the swap's flock without
// waiting) write a new file instead, and it starts over if the inode it
// read is no longer the file's (a write that failed halfway left it
// behind as the swap). At most limit bytes are read when limit > 0 (one
// more tells the caller the file is larger). A missing file is an error
// satisfying errors.Is(err, os.ErrNotExist).
func ReadFile(path string, limit int64) ([]byte, error) {
	var data []byte
	for range 50 {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		f := os.NewFile(uintptr(fd), path)
		data, err = readLocked(f, limit)
		if err != nil {
			f.Close()
			return nil, err
		}
		var have, now unix.Stat_t
		same := unix.Fstat(fd, &have) == nil && unix.Stat(path, &now) == nil && have.Ino == now.Ino && have.Dev == now.Dev
		f.Close()
		if same {
			break
		}
	}
	return data, nil
}

func readLocked(f *os.File, limit int64) ([]byte, error) {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINTR) {
			return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
		}
	}
	var r io.Reader = f
	if limit > 0 {
		r = io.LimitReader(f, limit+1)
	}
	return io.ReadAll(r)
}

// ReadJSON reads path into v; a missing file is errdefs.ErrNotFound.
func ReadJSON(path string, v any) error {
	b, err := ReadFile(path, 0)
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
