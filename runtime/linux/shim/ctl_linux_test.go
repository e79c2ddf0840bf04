package shim_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"berth.dev/berth/internal/testutil"
)

// TestCtlRejectsNonRoot (SECURITY.md): an unprivileged host user cannot
// reach a shim's control socket (attach, exec as root): connecting as uid
// 65534 fails, while root connects.
func TestCtlRejectsNonRoot(t *testing.T) {
	r := testutil.NewRoot(t)
	t.Cleanup(func() { r.Run("container", "rm", "-f", "ctl") })
	r.Must("container", "run", "-d", "--name", "ctl", "busybox", "sleep", "300")
	id := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.Id}}", "ctl"))
	sock := filepath.Join(r.Path, "run", "s", id[:12]+".sock")
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("root cannot connect to %s: %v", sock, err)
	}
	c.Close()
	// This test binary again, as nobody, dialling the socket.
	// (a copy nobody may run: the test's build dir is root's alone).
	dir, err := os.MkdirTemp("", "berth-ctl-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "shim.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHIM_TEST_DIAL="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.CombinedOutput()
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, "refused:") {
		t.Fatalf("uid 65534 dialling the ctl socket: %q, want refused", got)
	}
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket dir mode: %v %v", fi.Mode(), err)
	}
}

// TestMain: as SHIM_TEST_DIAL's child, dial the socket and say how it went.
func TestMain(m *testing.M) {
	if sock := os.Getenv("SHIM_TEST_DIAL"); sock != "" {
		c, err := net.Dial("unix", sock)
		if err != nil {
			os.Stdout.WriteString("refused: " + err.Error() + "\n")
			os.Exit(0)
		}
		c.Close()
		os.Stdout.WriteString("connected\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestExecNoHostTTY (SECURITY.md): an exec's stdin is a pipe, or with -t a
// pty of the container's own devpts, never a host terminal fd.
func TestExecNoHostTTY(t *testing.T) {
	r := testutil.NewRoot(t)
	t.Cleanup(func() { r.Run("container", "rm", "-f", "tty") })
	r.Must("container", "run", "-d", "--name", "tty", "busybox", "sleep", "300")
	for flags, want := range map[string]string{"-i": "pipe:", "-it": "/dev/pts/"} {
		args := []string{"container", "exec", flags, "tty", "readlink", "/proc/self/fd/0"}
		got := strings.TrimSpace(r.Must(args...))
		if !strings.HasPrefix(got, want) {
			t.Errorf("exec %s: stdin is %q, want %s…", flags, got, want)
		}
	}
	// The pty is the container's: its devpts lists it.
	if out := r.Must("container", "exec", "-t", "tty", "sh", "-c", "ls /dev/pts/ && tty"); !strings.Contains(out, "/dev/pts/") {
		t.Errorf("exec -t: %q", out)
	}
}
