package rootfs

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/testutil"
)

// rootfs.TestSysctlThroughVerifiedProcfs: the procfs check refuses an fd
// on anything but procfs, so a /proc/sys swapped for a tmpfs or a plain
// directory is never written through.
func TestSysctlThroughVerifiedProcfs(t *testing.T) {
	for _, p := range []string{t.TempDir(), "/dev"} {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = verifyProcfs(fd)
		unix.Close(fd)
		if err == nil || !strings.Contains(err.Error(), "not on procfs") {
			t.Errorf("%s: %v, want a not-on-procfs error", p, err)
		}
	}
	for _, p := range []string{"/proc/sys", "/proc/sys/kernel/shmmax"} {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = verifyProcfs(fd)
		unix.Close(fd)
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if err := verifyProcfs(-1); err == nil {
		t.Error("a bad fd passed")
	}
}

func TestCheckSysctl(t *testing.T) {
	for _, tc := range []struct {
		key        string
		privateNet bool
		ok         bool
	}{
		{"kernel.msgmax", false, true},
		{"kernel.msgmnb", false, true},
		{"kernel.msgmni", false, true},
		{"kernel.sem", false, true},
		{"kernel.shmall", false, true},
		{"kernel.shmmax", false, true},
		{"kernel.shmmni", false, true},
		{"kernel.shm_rmid_forced", false, true},
		{"fs.mqueue.msg_max", false, true},
		{"fs.mqueue.queues_max", true, true},
		{"net.ipv4.ip_forward", true, true},
		{"net.core.somaxconn", true, true},
		{"net.ipv4.conf.all.route_localnet", true, true},
		{"net.ipv4.ip_forward", false, false},
		{"net.core.somaxconn", false, false},
		{"kernel.hostname", true, false},
		{"kernel.domainname", true, false},
		{"kernel.shmmax2", false, false},
		{"kernel.sysrq", true, false},
		{"kernel.core_pattern", true, false},
		{"vm.overcommit_memory", true, false},
		{"fs.mqueue", true, false},
		{"fs.file-max", true, false},
		{"net", true, false},
		{"", true, false},
		{"net.ipv4/../../kernel/core_pattern", true, false},
		{"net/ipv4/ip_forward", true, false},
		{"net..ipv4", true, false},
		{"net.ipv4.", true, false},
		{".net.ipv4", true, false},
		{"fs.mqueue.\x00", true, false},
	} {
		err := CheckSysctl(tc.key, tc.privateNet)
		if tc.ok && err != nil {
			t.Errorf("%q (privateNet %v): %v", tc.key, tc.privateNet, err)
		}
		if !tc.ok && (err == nil || !errors.Is(err, errdefs.ErrInvalid)) {
			t.Errorf("%q (privateNet %v): %v, want ErrInvalid", tc.key, tc.privateNet, err)
		}
	}
	err := CheckSysctl("kernel.core_pattern", true)
	if err == nil || !strings.Contains(err.Error(), "kernel.core_pattern") || !strings.Contains(err.Error(), "not namespaced") {
		t.Errorf("message %v: want the key and 'not namespaced'", err)
	}
}

// A namespaced sysctl set in the container reads back there and leaves
// the host's value alone; /proc/sys is still read-only afterwards.
func TestSysctlInContainer(t *testing.T) {
	testutil.RequireRoot(t)
	hostBefore, err := os.ReadFile("/proc/sys/kernel/shmmax")
	if err != nil {
		t.Fatal(err)
	}
	overlay, target := busyboxRoot(t)
	cfg := Config{Root: target, Overlay: overlay, Sysctls: map[string]string{"kernel.shmmax": "123456789", "fs.mqueue.msg_max": "42"}}
	out, code := runInit(t, cfg, `echo "shmmax=$(cat /proc/sys/kernel/shmmax)"; echo "msg_max=$(cat /proc/sys/fs/mqueue/msg_max)"
echo 1 > /proc/sys/kernel/shmmax 2>/dev/null && echo procsys=writable || echo procsys=refused`)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"shmmax=123456789", "msg_max=42", "procsys=refused"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if hostAfter, _ := os.ReadFile("/proc/sys/kernel/shmmax"); string(hostAfter) != string(hostBefore) {
		t.Errorf("host kernel.shmmax changed: %q → %q", hostBefore, hostAfter)
	}

	overlay, target = busyboxRoot(t)
	out, code = runInit(t, Config{Root: target, Overlay: overlay, Sysctls: map[string]string{"kernel.core_pattern": "|/x"}}, "true")
	if code == 0 || !strings.Contains(out, "kernel.core_pattern is not namespaced") {
		t.Errorf("a host sysctl was not refused: exit %d: %s", code, out)
	}
	overlay, target = busyboxRoot(t)
	out, code = runInit(t, Config{Root: target, Overlay: overlay, Sysctls: map[string]string{"net.ipv4.no_such_key": "1"}}, "true")
	if code == 0 || !strings.Contains(out, "does not exist in this kernel") {
		t.Errorf("a missing sysctl: exit %d: %s", code, out)
	}
}
