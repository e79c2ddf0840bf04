package initproc

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

func TestParseUlimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rlimit
	}{
		{"nofile=1024:2048", Rlimit{"nofile", 1024, 2048}},
		{"nofile=1024", Rlimit{"nofile", 1024, 1024}},
		{"nproc=0:0", Rlimit{"nproc", 0, 0}},
		{"core=-1", Rlimit{"core", Unlimited, Unlimited}},
		{"memlock=65536:-1", Rlimit{"memlock", 65536, Unlimited}},
		{"stack=8388608:unlimited", Rlimit{"stack", 8388608, Unlimited}},
		{"RLIMIT_NOFILE=10:20", Rlimit{"nofile", 10, 20}},
		{"rlimit_nproc=10", Rlimit{"nproc", 10, 10}},
		{"rttime=18446744073709551614", Rlimit{"rttime", 1<<64 - 2, 1<<64 - 2}},
	} {
		got, err := ParseUlimit(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"nofile", "write NAME=SOFT[:HARD]"},
		{"nofile=", "soft limit"},
		{"nofile=abc", "soft limit"},
		{"nofile=-2", "soft limit"},
		{"nofile=1:", "hard limit"},
		{"nofile=1:2:3", "hard limit"},
		{"nofile=2048:1024", "soft limit 2048 is above the hard limit 1024"},
		{"nofile=-1:1024", "soft limit unlimited is above the hard limit 1024"},
		{"files=1", `unknown name; use one of as, core, cpu`},
		{"RLIMIT_=1", "unknown name"},
		{"=1", "unknown name"},
		{"nofile=18446744073709551616", "soft limit"},
	} {
		_, err := ParseUlimit(tc.in)
		if err == nil || !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want ErrInvalid with %q", tc.in, err, tc.want)
		}
	}
}

func hardLimit(t *testing.T, res int) uint64 {
	t.Helper()
	var cur unix.Rlimit
	if err := unix.Getrlimit(res, &cur); err != nil {
		t.Fatal(err)
	}
	return cur.Max
}

// initproc.TestRlimitsClamped (U): nofile 1048576 is clamped to this
// process's hard limit with a warning naming the limit and both values;
// no limit ever comes back above the current hard limit.
func TestRlimitsClamped(t *testing.T) {
	hard := hardLimit(t, unix.RLIMIT_NOFILE)
	if hard == Unlimited {
		t.Skip("hard RLIMIT_NOFILE is unlimited: nothing to clamp")
	}
	ask := uint64(1048576)
	if ask <= hard {
		ask = hard + 1
	}
	out, warnings, err := ClampRlimits([]Rlimit{{Name: "nofile", Soft: ask, Hard: ask}, {Name: "RLIMIT_CORE", Soft: 0, Hard: 0}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Rlimit{{"nofile", hard, hard}, {"core", 0, 0}}
	if len(out) != 2 || out[0] != want[0] || out[1] != want[1] {
		t.Fatalf("got %+v, want %+v", out, want)
	}
	if len(warnings) != 1 {
		t.Fatalf("warnings %q, want one", warnings)
	}
	for _, s := range []string{"nofile", strconv.FormatUint(ask, 10), strconv.FormatUint(hard, 10)} {
		if !strings.Contains(warnings[0], s) {
			t.Errorf("warning %q does not name %s", warnings[0], s)
		}
	}

	// Only the hard limit above: the soft one is kept.
	out, warnings, err = ClampRlimits([]Rlimit{{Name: "nofile", Soft: 64, Hard: Unlimited}})
	if err != nil || len(warnings) != 1 || out[0] != (Rlimit{"nofile", 64, hard}) {
		t.Fatalf("soft 64, hard unlimited: %+v %q %v", out, warnings, err)
	}
	if !strings.Contains(warnings[0], "hard limit unlimited") {
		t.Errorf("warning %q", warnings[0])
	}

	// Unlimited everything: each comes back at most the current hard limit.
	var all []Rlimit
	for name := range rlimitResources {
		all = append(all, Rlimit{Name: name, Soft: Unlimited, Hard: Unlimited})
	}
	out, _, err = ClampRlimits(all)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range out {
		if h := hardLimit(t, rlimitResources[r.Name]); r.Hard > h || r.Soft > r.Hard {
			t.Errorf("%s: %+v above the hard limit %d", r.Name, r, h)
		}
	}

	// Within the limit: unchanged, no warning.
	out, warnings, err = ClampRlimits([]Rlimit{{Name: "nofile", Soft: 100, Hard: hard}})
	if err != nil || len(warnings) != 0 || out[0] != (Rlimit{"nofile", 100, hard}) {
		t.Fatalf("within the limit: %+v %q %v", out, warnings, err)
	}
}

func TestClampRlimitsErrors(t *testing.T) {
	for _, tc := range []struct {
		in   []Rlimit
		want string
	}{
		{[]Rlimit{{Name: "files", Soft: 1, Hard: 1}}, `ulimit "files": unknown name`},
		{[]Rlimit{{Name: "nofile", Soft: 1, Hard: 1}, {Name: "RLIMIT_NOFILE", Soft: 2, Hard: 2}}, "ulimit nofile: given twice"},
		{[]Rlimit{{Name: "nproc", Soft: 2, Hard: 1}}, "soft limit 2 is above the hard limit 1"},
	} {
		_, _, err := ClampRlimits(tc.in)
		if err == nil || !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalid with %q", tc.in, err, tc.want)
		}
	}
	if ApplyRlimits([]Rlimit{{Name: "bogus"}}) == nil {
		t.Error("ApplyRlimits took an unknown name")
	}
	if out, w, err := ClampRlimits(nil); err != nil || len(out) != 0 || len(w) != 0 {
		t.Errorf("nil: %v %v %v", out, w, err)
	}
}

// ApplyRlimits lowers the soft nofile limit (never raising the hard one)
// and the test restores it.
func TestApplyRlimits(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restore RLIMIT_NOFILE: %v", err)
		}
	})
	soft := min(orig.Cur, 512)
	if err := ApplyRlimits([]Rlimit{{Name: "RLIMIT_NOFILE", Soft: soft, Hard: orig.Max}}); err != nil {
		t.Fatal(err)
	}
	var got unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &got)
	if got.Cur != soft || got.Max != orig.Max {
		t.Fatalf("after ApplyRlimits: %+v, want soft %d hard %d", got, soft, orig.Max)
	}
	if err := ApplyRlimits([]Rlimit{{Name: "nofile", Soft: 2, Hard: 1}}); err == nil {
		t.Fatal("soft above hard applied")
	}
}

const rlimitHelperEnv = "INITPROC_RLIMIT_HELPER"

// TestRlimitExecHelper is the child of TestRlimitsReachExec; run alone it
// does nothing.
func TestRlimitExecHelper(t *testing.T) {
	if os.Getenv(rlimitHelperEnv) == "" {
		return
	}
	r, err := ParseUlimit(os.Getenv(rlimitHelperEnv))
	if err == nil {
		var out []Rlimit
		var warnings []string
		out, warnings, err = ClampRlimits([]Rlimit{r})
		for _, w := range warnings {
			fmt.Println("warning:", w)
		}
		if err == nil {
			err = ApplyRlimits(out)
		}
	}
	if err != nil {
		fmt.Println("ERROR:", err)
		os.Exit(3)
	}
	err = syscall.Exec("/bin/sh", []string{"sh", "-c", "echo soft=$(ulimit -S -n) hard=$(ulimit -H -n)"}, nil)
	fmt.Println("EXEC ERROR:", err)
	os.Exit(4)
}

// The clamped limits are what the exec'd command gets: Go's runtime,
// which raised its own soft nofile limit at start, must not restore the
// old one over ours at exec.
func TestRlimitsReachExec(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	hard := hardLimit(t, unix.RLIMIT_NOFILE)
	if hard == Unlimited || hard < 1024 {
		t.Skipf("hard RLIMIT_NOFILE %d: cannot test clamping", hard)
	}
	// The child starts with soft 900 < hard, so its runtime raises the
	// soft limit and would put 900 back at exec unless told otherwise.
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	low := orig
	low.Cur = 900
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRlimitExecHelper$")
	cmd.Env = append(os.Environ(), rlimitHelperEnv+"=nofile=1000:1048576")
	out, err := cmd.CombinedOutput()
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatalf("restore RLIMIT_NOFILE: %v", err)
	}
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := fmt.Sprintf("soft=1000 hard=%d\n", hard)
	if !strings.HasSuffix(string(out), want) {
		t.Errorf("got %q, want it to end with %q", out, want)
	}
	if hard < 1048576 && !strings.Contains(string(out), "warning: ulimit nofile: hard limit 1048576") {
		t.Errorf("no clamp warning in %q", out)
	}
}
