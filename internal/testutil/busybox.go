package testutil

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// epoch is the mtime of every entry.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

var baseDirs = map[string]int64{
	"bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
	"etc": 0o755, "root": 0o700, "proc": 0o555, "sys": 0o555, "dev": 0o755, "tmp": 0o1777,
	"home": 0o755, "var": 0o755,
}

var files = map[string]string{
	"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
	"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
}

// WriteBusyboxImage writes the test image rootfs tar for the busybox binary at bb.
func WriteBusyboxImage(w io.Writer, bb string) error {
	bin, err := os.ReadFile(bb)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s not found: install it with 'apt-get install -y busybox-static'", bb)
		}
		return err
	}
	list, err := exec.Command(bb, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("%s --list-full: %w (is it Debian's busybox-static?)", bb, err)
	}
	dirs := map[string]int64{}
	for d, m := range baseDirs {
		dirs[d] = m
	}
	links := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		l = strings.TrimPrefix(strings.TrimSpace(l), "/")
		if l == "" || l == "bin/busybox" || strings.Contains(l, "..") {
			continue
		}
		links[l] = true
		if d := path.Dir(l); d != "." && dirs[d] == 0 {
			dirs[d] = 0o755
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d+"/")
	}
	for f := range files {
		names = append(names, f)
	}
	for l := range links {
		names = append(names, l)
	}
	names = append(names, "bin/busybox")
	sort.Strings(names)

	tw := tar.NewWriter(w)
	for _, n := range names {
		hdr := &tar.Header{Name: n, ModTime: epoch, Uname: "root", Gname: "root", Format: tar.FormatPAX}
		var body []byte
		switch {
		case strings.HasSuffix(n, "/"):
			hdr.Typeflag, hdr.Mode = tar.TypeDir, dirs[strings.TrimSuffix(n, "/")]
		case n == "bin/busybox":
			hdr.Typeflag, hdr.Mode, body = tar.TypeReg, 0o755, bin
		case files[n] != "":
			hdr.Typeflag, hdr.Mode, body = tar.TypeReg, 0o644, []byte(files[n])
		default:
			hdr.Typeflag, hdr.Mode, hdr.Linkname = tar.TypeSymlink, 0o777, "/bin/busybox"
		}
		hdr.Size = int64(len(body))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, bytes.NewReader(body)); err != nil {
			return err
		}
	}
	return tw.Close()
}

// BusyboxTar returns the path of the busybox test image tarball: built
// once per machine and busybox binary (the name carries the binary's size
// and mtime), written atomically and shared by every test process, so no
// temp dir is left per test binary. Without /bin/busybox it fails with the
// apt-get hint.
func BusyboxTar(t testing.TB) string {
	t.Helper()
	busyboxOnce.Do(func() {
		st, err := os.Stat("/bin/busybox")
		if err != nil {
			busyboxErr = WriteBusyboxImage(io.Discard, "/bin/busybox") // the hint
			if busyboxErr == nil {
				busyboxErr = err
			}
			return
		}
		path := filepath.Join(os.TempDir(), fmt.Sprintf("berth-busybox-%d-%d.tar", st.Size(), st.ModTime().Unix()))
		if _, err := os.Stat(path); err == nil {
			busyboxPath = path
			return
		}
		f, err := os.CreateTemp(os.TempDir(), "berth-busybox-*.tmp")
		if err != nil {
			busyboxErr = err
			return
		}
		if busyboxErr = WriteBusyboxImage(f, "/bin/busybox"); busyboxErr == nil {
			busyboxErr = f.Close()
		} else {
			f.Close()
		}
		if busyboxErr == nil {
			busyboxErr = os.Rename(f.Name(), path)
		}
		if busyboxErr != nil {
			os.Remove(f.Name())
			return
		}
		busyboxPath = path
	})
	if busyboxErr != nil {
		t.Fatalf("busybox test image: %v", busyboxErr)
	}
	return busyboxPath
}

var (
	busyboxOnce sync.Once
	busyboxPath string
	busyboxErr  error
)
