package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"berth.dev/berth/project/projecttest"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime"
)

func sample() *reconcile.Observed {
	o := &reconcile.Observed{Project: "demo", Images: map[string]string{"a": "sha256:1", "b": "sha256:2", "c": ""}}
	for i := 1; i <= 12; i++ {
		o.Containers = append(o.Containers, reconcile.Container{
			ID: string(rune('a' + i)), Service: "web", Number: i, Status: runtime.StatusExited,
			Exit:       &runtime.ExitStatus{Code: i},
			Labels:     map[string]string{"x": "1", "y": "2"},
			HashFields: map[string]string{"image": "0123456789ab"},
		})
	}
	o.Networks = []reconcile.Network{{Key: "a"}, {Key: "b"}, {Key: "c", Labels: map[string]string{"k": "v"}}}
	o.Volumes = []reconcile.Volume{{Key: "a"}, {Key: "b"}, {Key: "c"}}
	return o
}

func TestShuffleIsADeepCopyInAnotherOrder(t *testing.T) {
	o := sample()
	if !reflect.DeepEqual(Shuffle(o, 0), o) {
		t.Fatal("seed 0 changed the content or order")
	}
	s1, s2 := Shuffle(o, 1), Shuffle(o, 2)
	ids := func(o *reconcile.Observed) string {
		var b strings.Builder
		for _, c := range o.Containers {
			b.WriteString(c.ID)
		}
		return b.String()
	}
	if ids(s1) == ids(o) || ids(s1) == ids(s2) {
		t.Errorf("seeds 1 and 2 did not reorder the containers: %s %s %s", ids(o), ids(s1), ids(s2))
	}
	// Same content once sorted back.
	sorted := Shuffle(s1, 0)
	sort.Slice(sorted.Containers, func(i, j int) bool { return sorted.Containers[i].Number < sorted.Containers[j].Number })
	sort.Slice(sorted.Networks, func(i, j int) bool { return sorted.Networks[i].Key < sorted.Networks[j].Key })
	sort.Slice(sorted.Volumes, func(i, j int) bool { return sorted.Volumes[i].Key < sorted.Volumes[j].Key })
	if !reflect.DeepEqual(sorted, o) {
		t.Fatal("shuffled copy lost or changed content")
	}
	// Deep: changing the copy leaves the original alone.
	s1.Containers[0].Labels["x"] = "changed"
	s1.Containers[0].HashFields["image"] = "changed"
	s1.Containers[0].Exit.Code = 99
	s1.Images["a"] = "changed"
	for _, c := range o.Containers {
		if c.Labels["x"] != "1" || c.HashFields["image"] != "0123456789ab" || c.Exit.Code != c.Number {
			t.Fatalf("original changed through the copy: %+v", c)
		}
	}
	if o.Images["a"] != "sha256:1" {
		t.Fatal("original images changed through the copy")
	}
	if Shuffle(nil, 1) != nil {
		t.Error("Shuffle(nil) is not nil")
	}
}

func TestShuffleOptionsKeepsContent(t *testing.T) {
	opt := reconcile.Options{Services: []string{"a", "b", "c", "d", "e"}, Scale: map[string]int{"a": 1, "b": 2}, NoDeps: true}
	got := ShuffleOptions(opt, 3)
	s := append([]string(nil), got.Services...)
	sort.Strings(s)
	if !reflect.DeepEqual(s, opt.Services) || !reflect.DeepEqual(got.Scale, opt.Scale) || !got.NoDeps {
		t.Fatalf("content changed: %+v", got)
	}
	if strings.Join(opt.Services, "") != "abcde" {
		t.Fatal("the caller's slice was shuffled in place")
	}
}

func TestTextAddsNeeds(t *testing.T) {
	p := &reconcile.Plan{Actions: []*reconcile.Action{
		{ID: 1, Kind: reconcile.CreateContainer, Resource: "container:web-1", Cause: "missing"},
		{ID: 2, Kind: reconcile.StartContainer, Resource: "container:web-1", Deps: []reconcile.Edge{{On: 1}},
			Needs: []reconcile.Need{{Service: "cache", Cond: reconcile.Started}, {Service: "db", Cond: reconcile.Healthy, Required: true}}},
	}}
	want := p.String() + "needs:\n#2 cache(started, optional) db(healthy)\n"
	if got := Text(p); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	p.Actions[1].Needs = nil
	if got := Text(p); got != p.String() {
		t.Fatalf("without needs Text is not String: %q", got)
	}
}

// recorder is a testing.TB whose Fatal calls are recorded, not fatal.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Fatal(args ...any)         { r.failed += fmt.Sprint(args...) }
func (r *recorder) Fatalf(f string, a ...any) { r.failed += fmt.Sprintf(f, a...) }

func TestFileComparesWithTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.plan")
	r := &recorder{TB: t}
	File(r, path, "text\n")
	if !strings.Contains(r.failed, "-update") {
		t.Errorf("missing file: failure %q does not say to run -update", r.failed)
	}
	if err := os.WriteFile(path, []byte("text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = &recorder{TB: t}
	File(r, path, "text\n")
	if r.failed != "" {
		t.Errorf("equal text failed: %q", r.failed)
	}
	File(r, path, "other\n")
	if !strings.Contains(r.failed, "differs") {
		t.Errorf("different text: failure %q", r.failed)
	}
	if got, want := lineDiff("a\nb\n", "a\nc\n"), `line 2: want "b", got "c"`; got != want {
		t.Errorf("lineDiff: %q, want %q", got, want)
	}
}

func TestPlanRunsComputeAndChecksTheFile(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web}}`)
	dir := t.TempDir()
	t.Chdir(dir) // Plan reads testdata/ under the working directory
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := "#1 create network:default missing\n#2 pull   image:web       missing\n" +
		"#3 create container:web-1 missing <- #1 #2\n#4 start  container:web-1         <- #3\n"
	if err := os.WriteFile(filepath.Join(Dir, "fresh.plan"), []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	p := Plan(t, m, Of(&reconcile.Observed{Project: "demo"}), reconcile.Options{}, "fresh")
	if len(p.Actions) != 4 {
		t.Fatalf("plan: %s", p)
	}
	r := &recorder{TB: t}
	Plan(r, m, Of(&reconcile.Observed{Project: "demo"}), reconcile.Options{}, "Bad Name")
	if !strings.Contains(r.failed, "bad name") {
		t.Errorf("bad name accepted: %q", r.failed)
	}
}
