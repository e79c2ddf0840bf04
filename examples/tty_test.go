package examples

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
)

// hostPty opens a terminal pair on the host for the berth CLI to run in,
// as a user's terminal would be.
func hostPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	r, _, e := unix.Syscall(unix.SYS_IOCTL, m.Fd(), uintptr(unix.TIOCGPTPEER), uintptr(unix.O_RDWR|unix.O_NOCTTY))
	if e != 0 {
		t.Fatal(e)
	}
	t.Cleanup(func() { m.Close() })
	return m, os.NewFile(r, "slave")
}

// TestRunTtyMustBeARealTerminal: run -it gives the command a terminal of
// the container's own devpts whose size follows the user's terminal.
func TestRunTtyMustBeARealTerminal(t *testing.T) {
	r := testutil.NewRoot(t)
	master, slave := hostPty(t)
	unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 30, Col: 100})
	cmd := exec.Command(r.Bin, "container", "run", "--rm", "-i", "-t", "busybox", "sh", "-c",
		`tty; stty size; read x; stty size; echo "got $x"`)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path, "TERM=xterm"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				close(done)
				return
			}
		}
	}()
	testutil.Eventually(t, func() bool { return strings.Contains(out.String(), "30 100") }, 10*time.Second, "the first stty size")
	unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120})
	time.Sleep(300 * time.Millisecond) // SIGWINCH → berth → the shim
	master.Write([]byte("hello\r"))
	err := cmd.Wait()
	<-done
	got := strings.ReplaceAll(out.String(), "\r", "")
	if err != nil {
		t.Fatalf("run -it: %v\n%s", err, got)
	}
	for _, want := range []string{"/dev/pts/0\n", "30 100\n", "40 120\n", "got hello\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestRunInteractiveMustBeBinarySafe: 1 MiB of random bytes through
// run -i's stdin and stdout come back byte for byte.
func TestRunInteractiveMustBeBinarySafe(t *testing.T) {
	r := testutil.NewRoot(t)
	data := make([]byte, 1<<20)
	rand.Read(data)
	cmd := exec.Command(r.Bin, "container", "run", "--rm", "-i", "busybox", "cat")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("%d bytes back (want %d), equal %v: %v", len(out), len(data), bytes.Equal(out, data), err)
	}
}

// TestDetachKeysMustLeaveTheContainerRunning: ctrl-p ctrl-q on an attached
// terminal ends the CLI and the container runs on; attach joins it again.
func TestDetachKeysMustLeaveTheContainerRunning(t *testing.T) {
	r := testutil.NewRoot(t)
	master, slave := hostPty(t)
	cmd := exec.Command(r.Bin, "container", "run", "-i", "-t", "--name", "det", "busybox", "sh")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	defer r.Run("container", "rm", "-f", "det")
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := master.Read(buf); err != nil {
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	master.Write([]byte{16, 17})
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("after detaching: %v", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("ctrl-p ctrl-q did not detach")
	}
	if got := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.State.Status}}", "det")); got != "running" {
		t.Errorf("after detach the container is %s", got)
	}
}
