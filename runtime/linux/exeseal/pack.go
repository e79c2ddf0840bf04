package exeseal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// A packed berth binary is the CLI, then the roles-only program, then a
// trailer: the roles program's length as 16 hex digits and trailerMagic.
// The kernel runs the CLI (it ignores what follows the ELF segments);
// Copy seals only the roles program, which starts about three times
// faster than the whole CLI and is a third smaller to copy and to keep
// mapped in every shim.
const (
	trailerMagic = "BERTH-ROLES-V1"
	trailerLen   = 16 + len(trailerMagic)
)

// Pack writes cli + roles + trailer to out (mode 0755), atomically.
func Pack(cli, roles, out string) error {
	tmp := out + ".pack"
	w, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	var n int64
	for i, p := range []string{cli, roles} {
		f, err := os.Open(p)
		if err != nil {
			w.Close()
			os.Remove(tmp)
			return err
		}
		c, err := io.Copy(w, f)
		f.Close()
		if err != nil {
			w.Close()
			os.Remove(tmp)
			return err
		}
		if i == 1 {
			n = c
		}
	}
	if _, err := fmt.Fprintf(w, "%016x%s", n, trailerMagic); err != nil {
		w.Close()
		os.Remove(tmp)
		return err
	}
	if err := w.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

// rolesSection finds the appended roles program of a packed binary, or
// returns the whole file when there is none.
func rolesSection(f *os.File) (off, n int64, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size := st.Size()
	if size < int64(trailerLen) {
		return 0, size, nil
	}
	var t [trailerLen]byte
	if _, err := f.ReadAt(t[:], size-int64(trailerLen)); err != nil {
		return 0, 0, err
	}
	if string(t[16:]) != trailerMagic {
		return 0, size, nil // a plain `go build`: the binary is its own roles
	}
	n, err = strconv.ParseInt(string(t[:16]), 16, 64)
	if err != nil || n <= 0 || n > size-int64(trailerLen) {
		return 0, 0, errors.New("damaged roles trailer; rebuild berth with make build")
	}
	return size - int64(trailerLen) - n, n, nil
}
