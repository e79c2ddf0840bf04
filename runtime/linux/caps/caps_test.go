package caps

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/testutil"
)

func TestDefaultSet(t *testing.T) {
	if got := Default().String(); got != "00000000a80425fb" {
		t.Fatalf("default set %s, want 00000000a80425fb", got)
	}
	if Default().Count() != 14 {
		t.Fatalf("default set has %d capabilities", Default().Count())
	}
}

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		add, drop []string
		priv      bool
		want      string
	}{
		{nil, nil, false, "00000000a80425fb"},
		{[]string{"NET_ADMIN"}, nil, false, "00000000a80435fb"},
		{[]string{"cap_net_admin"}, []string{"CAP_NET_RAW"}, false, "00000000a80415fb"},
		{nil, []string{"ALL"}, false, "0000000000000000"},
		{[]string{"SYS_TIME"}, []string{"ALL"}, false, "0000000002000000"},
		{[]string{"ALL"}, nil, false, All().String()},
		{nil, []string{"ALL"}, true, All().String()},
	} {
		s, err := Resolve(c.add, c.drop, c.priv)
		if err != nil || s.String() != c.want {
			t.Errorf("add=%v drop=%v priv=%v: %s %v, want %s", c.add, c.drop, c.priv, s, err, c.want)
		}
	}
	if _, err := Resolve([]string{"NOT_A_CAP"}, nil, false); !errdefs.IsInvalid(err) {
		t.Fatalf("unknown capability: %v", err)
	}
}

const childEnv = "CAPS_TEST_CHILD"

// The child applies the sets the way init will (bounding, user, then
// capset, on one locked thread) and execs the host's cat to show
// /proc/self/status as the kernel computes it after execve.
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		runtime.LockOSThread()
		parts := strings.Split(spec, ";")
		s, err := Resolve(split(parts[0]), split(parts[1]), false)
		if err == nil {
			err = DropBounding(s)
		}
		if err == nil && parts[2] != "0" {
			if err = syscall.Setgid(65534); err == nil {
				err = syscall.Setuid(65534)
			}
		}
		if err == nil {
			err = Apply(s)
		}
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		syscall.Exec("/bin/cat", []string{"cat", "/proc/self/status"}, os.Environ())
		os.Exit(4)
	}
	os.Exit(m.Run())
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func statusCaps(t *testing.T, add, drop string, nonRoot bool) map[string]string {
	t.Helper()
	user := "0"
	if nonRoot {
		user = "65534"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+add+";"+drop+";"+user)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	caps := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.HasPrefix(k, "Cap") {
			caps[k] = strings.TrimSpace(v)
		}
	}
	return caps
}

// caps.TestDefaultCapabilities (SECURITY.md): CapBnd = CapPrm = CapEff =
// 00000000a80425fb, CapInh = CapAmb = 0; a non-root user ends with
// effective 0; cap_add NET_ADMIN sets bit 12; cap_drop ALL gives 0.
func TestDefaultCapabilities(t *testing.T) {
	testutil.RequireRoot(t)
	check := func(name string, got map[string]string, want map[string]string) {
		t.Helper()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %s, want %s", name, k, got[k], v)
			}
		}
	}
	check("root", statusCaps(t, "", "", false), map[string]string{"CapBnd": "00000000a80425fb", "CapPrm": "00000000a80425fb",
		"CapEff": "00000000a80425fb", "CapInh": "0000000000000000", "CapAmb": "0000000000000000"})
	check("nobody", statusCaps(t, "", "", true), map[string]string{"CapBnd": "00000000a80425fb", "CapPrm": "0000000000000000",
		"CapEff": "0000000000000000"})
	check("cap_add", statusCaps(t, "NET_ADMIN", "", false), map[string]string{"CapEff": "00000000a80435fb", "CapBnd": "00000000a80435fb"})
	check("cap_drop ALL", statusCaps(t, "", "ALL", false), map[string]string{"CapEff": "0000000000000000", "CapBnd": "0000000000000000"})
}
