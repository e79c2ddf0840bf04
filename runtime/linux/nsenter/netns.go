package nsenter

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNetNS runs fn on a locked OS thread inside the network namespace at
// path (a pin or /proc/PID/ns/net): sockets fn creates belong to that
// namespace, and so do processes it forks. The thread is never returned to
// Go's scheduler: it ends with its goroutine.
func InNetNS(path string, fn func() error) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("nsenter: open network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // for good
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("nsenter: join network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// PinNetNS makes a new network namespace (loopback only, down) and pins
// it by bind-mounting it on the file at pin, which it creates. An existing
// pin is kept.
func PinNetNS(pin string) error {
	if IsNetNSPin(pin) {
		return nil
	}
	f, err := os.OpenFile(pin, os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("nsenter: pin file: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // for good: the thread stays in the new namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("nsenter: new network namespace: %w", err)
			return
		}
		if err := unix.Mount("/proc/thread-self/ns/net", pin, "", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("nsenter: pin network namespace at %s: %w", pin, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(pin)
		return err
	}
	return nil
}

// IsNetNSPin says whether path is a mounted network namespace.
func IsNetNSPin(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// UnpinNetNS unmounts and removes a pin; the namespace ends with its last
// user. A missing pin is not an error.
func UnpinNetNS(pin string) error {
	for IsNetNSPin(pin) {
		if err := unix.Unmount(pin, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("nsenter: unpin %s: %w", pin, err)
		} else if err != nil {
			break
		}
	}
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("nsenter: remove %s: %w", pin, err)
	}
	return nil
}
