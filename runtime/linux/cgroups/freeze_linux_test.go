package cgroups

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/testutil"
)

func TestFreezeThaw(t *testing.T) {
	testutil.RequireRoot(t)
	checkFreezeThaw(t, create(t, testParent(t), Resources{}))
}

func TestFreezeThawV2OnHybrid(t *testing.T) {
	testutil.RequireRoot(t)
	useHybridUnified(t)
	checkFreezeThaw(t, create(t, testParent(t), Resources{}))
}

// checkFreezeThaw: a counter loop in cg stops advancing while the group is
// frozen (and a forking child with it), and resumes once thawed; freezing
// and thawing twice is harmless.
func checkFreezeThaw(t *testing.T, cg *Cgroup) {
	t.Helper()
	file := filepath.Join(testutil.TempRoot(t), "n")
	// The subshell forks a second counter: both must stop. 1<> rewrites
	// the number in place (a growing number covers the last one) rather
	// than truncating, so a reader never sees an empty file.
	start(t, cg, `(j=0; while :; do j=$((j+1)); echo $j 1<> `+file+`.2; done) & i=0; while :; do i=$((i+1)); echo $i 1<> `+file+`; done`)
	// Registered after start's cleanup, so it runs first: start's cleanup
	// kills only the shell and waits for its output, which the forked
	// counter holds open (and a frozen shell would not die).
	t.Cleanup(func() { _ = cg.Kill() })
	read := func(f string) []byte { b, _ := os.ReadFile(f); return b }
	advancing := func(f string) bool {
		a := read(f)
		time.Sleep(50 * time.Millisecond)
		return len(a) > 0 && !bytes.Equal(a, read(f))
	}
	testutil.Eventually(t, func() bool { return advancing(file) && advancing(file+".2") }, 5*time.Second, "both counters to run")
	if frozen, err := cg.Frozen(); err != nil || frozen {
		t.Fatalf("Frozen() before Freeze = %v, %v", frozen, err)
	}
	for i := 0; i < 2; i++ {
		if err := cg.Freeze(); err != nil {
			t.Fatalf("Freeze #%d: %v", i+1, err)
		}
	}
	if frozen, err := cg.Frozen(); err != nil || !frozen {
		t.Fatalf("Frozen() after Freeze = %v, %v", frozen, err)
	}
	for _, f := range []string{file, file + ".2"} {
		a := read(f)
		time.Sleep(300 * time.Millisecond)
		if b := read(f); !bytes.Equal(a, b) {
			t.Errorf("%s advanced while frozen: %q → %q", filepath.Base(f), a, b)
		}
	}
	for i := 0; i < 2; i++ {
		if err := cg.Thaw(); err != nil {
			t.Fatalf("Thaw #%d: %v", i+1, err)
		}
	}
	if frozen, err := cg.Frozen(); err != nil || frozen {
		t.Fatalf("Frozen() after Thaw = %v, %v", frozen, err)
	}
	testutil.Eventually(t, func() bool { return advancing(file) && advancing(file+".2") }, 5*time.Second, "both counters to run again")
}

func TestFreezeGoneGroup(t *testing.T) {
	testutil.RequireRoot(t)
	parent := testParent(t)
	cg, err := Create(parent, "c1", Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := cg.Freeze(); !errdefs.IsNotFound(err) {
		t.Errorf("Freeze of a deleted group: %v, want ErrNotFound", err)
	}
	if err := cg.Thaw(); !errdefs.IsNotFound(err) {
		t.Errorf("Thaw of a deleted group: %v, want ErrNotFound", err)
	}
	if _, err := cg.Frozen(); !errdefs.IsNotFound(err) {
		t.Errorf("Frozen of a deleted group: %v, want ErrNotFound", err)
	}
	if _, err := cg.Stats(); !errdefs.IsNotFound(err) {
		t.Errorf("Stats of a deleted group: %v, want ErrNotFound", err)
	}
}
