// Command chrootescape tries the classic chroot escapes from inside a
// container and prints, as JSON, what "/" looks like before and after one:
//
//   - cwd: chroot(d) while the cwd stays outside d, 64 × chdir(".."),
//     chroot(".");
//   - fd: keep an fd of "/", chroot into a subdir, fchdir(fd), 64 ×
//     chdir(".."), chroot(".").
//
// Under pivot_root with the old root detached both climbs stop at the
// container's own root. rootfs.TestChrootEscapeStaysInside runs it.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"syscall"
)

type view struct {
	List     []string `json:"list"`
	Dev      uint64   `json:"dev"`
	Ino      uint64   `json:"ino"`
	Hostname string   `json:"hostname"`
	Err      string   `json:"err,omitempty"`
}

func look() view {
	var v view
	ents, err := os.ReadDir("/")
	if err != nil {
		v.Err = err.Error()
	}
	for _, e := range ents {
		v.List = append(v.List, e.Name())
	}
	sort.Strings(v.List)
	var st syscall.Stat_t
	if err := syscall.Stat("/", &st); err == nil {
		v.Dev, v.Ino = st.Dev, st.Ino
	}
	b, _ := os.ReadFile("/etc/hostname")
	v.Hostname = string(b)
	return v
}

func climb() error {
	for i := 0; i < 64; i++ {
		if err := syscall.Chdir(".."); err != nil {
			return fmt.Errorf("chdir ..: %w", err)
		}
	}
	if err := syscall.Chroot("."); err != nil {
		return fmt.Errorf("chroot .: %w", err)
	}
	return syscall.Chdir("/")
}

func viaCwd() error {
	if err := syscall.Chdir("/"); err != nil {
		return err
	}
	if err := syscall.Chroot("/escape-cwd"); err != nil {
		return fmt.Errorf("chroot /escape-cwd: %w", err)
	}
	return climb() // the cwd is still the old "/", outside the new root
}

func viaFD() error {
	fd, err := syscall.Open("/", syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.Chroot("/escape-fd"); err != nil {
		return fmt.Errorf("chroot /escape-fd: %w", err)
	}
	if err := syscall.Fchdir(fd); err != nil {
		return fmt.Errorf("fchdir: %w", err)
	}
	return climb()
}

// main runs the variant named by its argument, "cwd" or "fd", so each
// starts from the container's root in a fresh process, and prints one JSON
// object: "before" and the variant's name.
func main() {
	if len(os.Args) != 2 || (os.Args[1] != "cwd" && os.Args[1] != "fd") {
		fmt.Fprintln(os.Stderr, "usage: chrootescape cwd|fd")
		os.Exit(2)
	}
	// Both subdirs are made before any attempt, so an escape that works
	// never creates anything outside the container.
	for _, d := range []string{"/escape-cwd", "/escape-fd"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	out := map[string]view{"before": look()}
	try := viaCwd
	if os.Args[1] == "fd" {
		try = viaFD
	}
	err := try()
	v := look()
	if err != nil {
		v.Err = err.Error()
	}
	out[os.Args[1]] = v
	json.NewEncoder(os.Stdout).Encode(out)
}
