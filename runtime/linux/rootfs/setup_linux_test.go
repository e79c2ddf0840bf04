package rootfs

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
)

const setupChildEnv = "ROOTFS_SETUP_CHILD"

type childSpec struct {
	Config Config
	Script string
}

// TestMain lets the test binary play the init role: in new namespaces it
// sets up the root and execs the container's sh.
func TestMain(m *testing.M) {
	if js := os.Getenv(setupChildEnv); js != "" {
		goruntime.LockOSThread()
		var spec childSpec
		if err := json.Unmarshal([]byte(js), &spec); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		if err := Setup(spec.Config); err != nil {
			os.Stdout.WriteString("SETUP ERROR: " + err.Error() + "\n")
			os.Exit(3)
		}
		// As the init role does: nothing but 0-2 may reach the container
		// (the test runner leaves fds without close-on-exec).
		if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
			os.Stdout.WriteString("CLOSE_RANGE ERROR: " + err.Error() + "\n")
			os.Exit(3)
		}
		err := syscall.Exec("/bin/sh", []string{"sh", "-c", spec.Script}, []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin"})
		os.Stdout.WriteString("EXEC ERROR: " + err.Error() + "\n")
		os.Exit(4)
	}
	os.Exit(m.Run())
}

// busyboxRoot imports the test image into a fresh store and prepares a
// container snapshot on it; it returns the overlay and where to mount it.
func busyboxRoot(t *testing.T) (*Overlay, string) {
	t.Helper()
	s := newStore(t)
	f, err := os.Open(testutil.BusyboxTar(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := s.Import(context.Background(), f, "busybox:latest", nil)
	if err != nil {
		t.Fatal(err)
	}
	o := prepareContainer(t, s, img, "c1")
	target := filepath.Join(t.TempDir(), "rootfs")
	os.Mkdir(target, 0o755)
	return &o, target
}

// runInit runs a script as PID 1 of new namespaces on the prepared root.
func runInit(t *testing.T, cfg Config, script string) (string, int) {
	t.Helper()
	js, _ := json.Marshal(childSpec{Config: cfg, Script: script})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), setupChildEnv+"="+string(js))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func hostMountinfo(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	// Network namespace pins of containers that other packages' tests
	// run meanwhile (host mounts by design) are not this test's.
	var keep []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if strings.Contains(l, " - nsfs ") && strings.Contains(l, " "+os.TempDir()+"/berth-t-") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "")
}

// The container sees a fresh /proc with itself as PID 1, exactly the
// minimal /dev, masked and read-only paths, overlay on /, and nothing of
// it appears in the host's mount table.
func TestSetupContainerRoot(t *testing.T) {
	testutil.RequireRoot(t)
	// Masked files the host has content in must read empty inside.
	var masked []string
	for _, p := range []string{"/proc/keys", "/proc/timer_list", "/proc/interrupts"} {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			masked = append(masked, strings.TrimPrefix(p, "/proc/")+"=0")
		}
	}
	if len(masked) == 0 {
		t.Fatal("test premise: none of /proc/keys, timer_list, interrupts has content on the host")
	}
	overlay, target := busyboxRoot(t)
	before := hostMountinfo(t)
	script := `
echo "pid1=$(cat /proc/1/comm)"
echo "dev=$(ls -A /dev | tr '\n' ' ')"
echo "keys=$(cat /proc/keys | wc -c)"
echo "timer_list=$(cat /proc/timer_list | wc -c)"
echo "interrupts=$(cat /proc/interrupts | wc -c)"
echo "firmware=$(ls -A /sys/firmware | wc -l)"
echo x > /proc/sys/kernel/domainname 2>/dev/null && echo sysctl=writable || echo sysctl=refused
touch /sys/x 2>/dev/null && echo sys=writable || echo sys=refused
grep -q ' /proc/sys proc ro,' /proc/mounts && echo procsys=ro
echo "root=$(awk '$2=="/"{print $3}' /proc/mounts)"
echo "maxpid=$(ls -d /proc/[0-9]* | sed 's|/proc/||' | sort -n | tail -1)"
echo "fds=$(ls /proc/self/fd | tr '\n' ' ')"
touch /written && echo rw=yes
`
	out, code := runInit(t, Config{Root: target, Overlay: overlay}, script)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	wantDev := "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero "
	if _, err := os.Stat("/proc/kcore"); err == nil {
		wantDev = "core " + wantDev
	}
	wants := append([]string{"pid1=sh", "dev=" + wantDev, "firmware=0", "sysctl=refused", "sys=refused",
		"procsys=ro", "root=overlay", "fds=0 1 2 3 ", "rw=yes"}, masked...)
	for _, want := range wants {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// Processes: the shell (1) and the few it forked; none of the host's.
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "maxpid="); ok && len(v) > 2 {
			t.Errorf("the container sees PID %s: host processes are visible", v)
		}
	}
	if after := hostMountinfo(t); after != before {
		t.Errorf("host mount table changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if strings.Contains(hostMountinfo(t), target) {
		t.Error("the container root is mounted on the host")
	}
}

// rootfs.TestImageProcSymlink: an image whose /proc is a symlink fails
// with a clear error instead of mounting procfs through it.
func TestImageProcSymlink(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	os.Remove(filepath.Join(overlay.Lower[0], "proc"))
	os.Symlink("/tmp", filepath.Join(overlay.Upper, "proc")) // the container's layer says /proc → /tmp
	out, code := runInit(t, Config{Root: target, Overlay: overlay}, "true")
	if code == 0 || !strings.Contains(out, "/proc in the image is not a directory") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// rootfs.TestImageDevSymlink: /dev shipped as a symlink still gets a real
// tmpfs, and the symlink's target on the host is untouched.
func TestImageDevSymlink(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	hostDir := t.TempDir()
	os.Symlink(hostDir, filepath.Join(overlay.Upper, "dev"))
	out, code := runInit(t, Config{Root: target, Overlay: overlay}, `awk '$2=="/dev"{print "devfs=" $3}' /proc/mounts; ls /dev/null`)
	if code != 0 || !strings.Contains(out, "devfs=tmpfs") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if entries, _ := os.ReadDir(hostDir); len(entries) != 0 {
		t.Fatalf("host dir behind the symlink got %d entries", len(entries))
	}
}

// A read_only root refuses writes but keeps /dev, /dev/shm writable.
func TestSetupReadOnlyRoot(t *testing.T) {
	testutil.RequireRoot(t)
	overlay, target := busyboxRoot(t)
	out, code := runInit(t, Config{Root: target, Overlay: overlay, ReadOnly: true},
		`if touch /x 2>/dev/null; then echo root=rw; else echo root=ro; fi; touch /dev/shm/ok && echo shm=rw`)
	if code != 0 || !strings.Contains(out, "root=ro\n") || !strings.Contains(out, "shm=rw\n") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestMaskSourceMustBeDevNull(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "null")
	os.WriteFile(fake, nil, 0o666)
	if err := CheckDevNull(fake); err == nil {
		t.Fatal("a regular file passed as /dev/null")
	}
	if err := CheckDevNull("/dev/zero"); err == nil {
		t.Fatal("/dev/zero passed as /dev/null")
	}
	if err := CheckDevNull("/dev/null"); err != nil {
		t.Fatal(err)
	}
}
