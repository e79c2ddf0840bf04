package seccomp_test

import (
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/testutil"
)

// buildStatic is testutil.BuildStatic as the dir and the program's name.
func buildStatic(t *testing.T, pkg string) (dir, name string) {
	p := testutil.BuildStatic(t, pkg)
	return filepath.Dir(p), filepath.Base(p)
}

// TestInContainer asserts that berth's compiled default profile is what a
// container runs under, with Docker's decisions: Seccomp is 2 in
// /proc/self/status; `unshare -U true` and `mount -t tmpfs none /mnt` fail
// with EPERM; keyctl and add_key (busybox has no keyctl applet: a static
// probe makes the calls), userfaultfd, bpf and unshare(CLONE_NEWUSER) get
// EPERM and clone3 ENOSYS. --security-opt seccomp=unconfined shows the
// filter is what refuses them (the kernel then answers keyctl, clone3 and
// unshare itself). With --cap-add SYS_ADMIN the profile opens mount, as
// Docker's does, so the tmpfs mount succeeds; keyctl stays refused.
func TestInContainer(t *testing.T) {
	r := testutil.NewRoot(t)
	dir, name := buildStatic(t, "./testdata/probe")
	calls := "keyctl add_key userfaultfd bpf clone3 unshare-user mount"
	script := `grep -E '^Seccomp:' /proc/self/status | tr -d ' \t'
e=$(unshare -U true 2>&1); echo "unshare-U=$?|$e"
mkdir -p /mnt; e=$(mount -t tmpfs none /mnt 2>&1); echo "mount-tmpfs=$?|$e"; umount /mnt 2>/dev/null
/probe/` + name + ` ` + calls + `
busybox --list | grep -qx keyctl && echo keyctl-applet=yes || echo keyctl-applet=no`
	run := func(flags ...string) map[string]string {
		t.Helper()
		args := append(append([]string{"container", "run", "--rm", "-v", dir + ":/probe:ro"}, flags...), "busybox", "sh", "-c", script)
		out := r.Must(args...)
		got := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				got[k] = v
			} else if k, v, ok := strings.Cut(l, ":"); ok {
				got[k] = v
			}
		}
		return got
	}
	expect := func(what string, got map[string]string, want map[string]string) {
		t.Helper()
		for k, v := range want {
			g := got[k]
			if strings.HasPrefix(v, "!") {
				if g == "" || g == v[1:] {
					t.Errorf("%s: %s = %q, want anything but %s", what, k, g, v[1:])
				}
				continue
			}
			if g != v && !strings.HasPrefix(g, v+"|") {
				t.Errorf("%s: %s = %q, want %s", what, k, g, v)
			}
		}
	}

	def := run()
	if def["keyctl-applet"] == "no" {
		t.Log("busybox has no keyctl applet; keyctl(2) and add_key(2) are checked through the probe only")
	}
	expect("default", def, map[string]string{
		"Seccomp": "2", "keyctl": "EPERM", "add_key": "EPERM", "userfaultfd": "EPERM", "bpf": "EPERM",
		"clone3": "ENOSYS", "unshare-user": "EPERM", "mount": "EPERM",
	})
	for _, k := range []string{"unshare-U", "mount-tmpfs"} {
		if v := def[k]; strings.HasPrefix(v, "0|") || v == "" {
			t.Errorf("default: %s = %q, want a failure", k, v)
		}
	}
	if v := def["unshare-U"]; !strings.Contains(v, "Operation not permitted") {
		t.Errorf("default: unshare -U true: %q, want EPERM", v)
	}
	if v := def["mount-tmpfs"]; !strings.Contains(v, "permission denied") && !strings.Contains(v, "Operation not permitted") {
		t.Errorf("default: mount -t tmpfs: %q, want EPERM", v) // busybox words EPERM as "permission denied (are you root?)"
	}

	unconf := run("--security-opt", "seccomp=unconfined")
	expect("seccomp=unconfined", unconf, map[string]string{
		"Seccomp": "0", "keyctl": "!EPERM", "add_key": "!EPERM", "clone3": "!ENOSYS", "unshare-user": "!EPERM",
		"mount": "EPERM", // no CAP_SYS_ADMIN: the kernel refuses it itself
	})
	if v := unconf["unshare-U"]; !strings.HasPrefix(v, "0|") {
		t.Logf("seccomp=unconfined: unshare -U true: %q (this host refuses user namespaces itself)", v)
	}

	admin := run("--cap-add", "SYS_ADMIN")
	expect("--cap-add SYS_ADMIN", admin, map[string]string{
		"Seccomp": "2", "mount": "ok", "mount-tmpfs": "0", "keyctl": "EPERM", "add_key": "EPERM",
		"clone3": "!ENOSYS", // Docker's profile lets clone3 through with CAP_SYS_ADMIN
	})
	if out := r.Must("container", "ls", "-a", "-q"); out != "" {
		t.Errorf("--rm left containers: %s", out)
	}
}
