package rootfs

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// ipcSysctls are the kernel.* sysctls of the IPC namespace (every
// fs.mqueue.* one is too).
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// CheckSysctl reports whether a container may set key: only sysctls of
// namespaces every container has are allowed, as Docker does — the IPC
// ones (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*) always, net.*
// only when the container has its own network namespace (privateNet).
// Anything else would change the host and is ErrInvalid.
func CheckSysctl(key string, privateNet bool) error {
	if err := checkSysctlSyntax(key); err != nil {
		return err
	}
	switch {
	case ipcSysctls[key] || strings.HasPrefix(key, "fs.mqueue."):
		return nil
	case strings.HasPrefix(key, "net."):
		if privateNet {
			return nil
		}
		return errdefs.Invalidf("sysctl %s: net.* sysctls need the container's own network namespace (not network_mode: host); remove the sysctl or give the service its own network", key)
	}
	return errdefs.Invalidf("sysctl %s is not namespaced: setting it would change the host; only kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.* and (with a private network) net.* are allowed", key)
}

// checkSysctlSyntax refuses keys that are not plain dotted names.
func checkSysctlSyntax(key string) error {
	if key == "" || strings.ContainsAny(key, "/\x00") {
		return errdefs.Invalidf("sysctl %q: a key is dotted, like kernel.shmmax, with no '/'", key)
	}
	// Split on dots, a ".." in the key shows up as an empty component.
	for _, c := range strings.Split(key, ".") {
		if c == "" {
			return errdefs.Invalidf("sysctl %q: empty component (\"..\" or a leading or trailing dot); write a key like kernel.shmmax", key)
		}
	}
	return nil
}

// verifyProcfs checks fd is on a procfs (CVE-2025-52881: a write meant
// for /proc/sys redirected elsewhere).
func verifyProcfs(fd int) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("fstatfs: %w", err)
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("not on procfs (filesystem magic %#x); refusing to write through it", st.Type)
	}
	return nil
}

// writeSysctls writes each sysctl (in key order) to /proc/sys of the
// container, through fds verified to be on procfs and resolved without
// symlinks or mount crossings beneath /proc/sys. It runs after pivot_root.
func writeSysctls(sysctls map[string]string) error {
	if len(sysctls) == 0 {
		return nil
	}
	keys := make([]string, 0, len(sysctls))
	for k := range sysctls {
		// The key's namespace was checked against the network mode at
		// plan time; here only what no container may set is refused.
		if err := CheckSysctl(k, true); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dir, err := unix.Open("/proc/sys", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("rootfs: sysctls: open /proc/sys: %w", err)
	}
	defer unix.Close(dir)
	if err := verifyProcfs(dir); err != nil {
		return fmt.Errorf("rootfs: sysctls: /proc/sys: %w", err)
	}
	for _, k := range keys {
		if err := writeSysctl(dir, k, sysctls[k]); err != nil {
			return err
		}
	}
	return nil
}

func writeSysctl(procSys int, key, value string) error {
	rel := strings.ReplaceAll(key, ".", "/")
	fd, err := openat2(procSys, rel, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW,
		unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS|unix.RESOLVE_NO_XDEV)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return errdefs.Invalidf("rootfs: sysctl %s: /proc/sys/%s does not exist in this kernel; check the key: %w", key, rel, err)
		}
		return fmt.Errorf("rootfs: sysctl %s: open /proc/sys/%s: %w", key, rel, err)
	}
	defer unix.Close(fd)
	if err := verifyProcfs(fd); err != nil {
		return fmt.Errorf("rootfs: sysctl %s: /proc/sys/%s: %w", key, rel, err)
	}
	n, err := unix.Write(fd, []byte(value))
	if err == nil && n != len(value) {
		err = fmt.Errorf("short write (%d of %d bytes)", n, len(value))
	}
	if err != nil {
		return fmt.Errorf("rootfs: sysctl %s=%q: write /proc/sys/%s: %w; check the value", key, value, rel, err)
	}
	return nil
}
