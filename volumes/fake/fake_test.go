package fake

import (
	"context"
	"errors"
	"slices"
	"testing"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/volumes"
)

var projectLabels = map[string]string{"com.docker.compose.project": "demo"}

// conformance are the volumes.Manager interface rules, one case each: the
// seed of volumes/suite.
var conformance = []struct {
	name string
	run  func(t *testing.T, m volumes.Manager)
}{
	{"Create is idempotent for the same spec", func(t *testing.T, m volumes.Manager) {
		ctx := context.Background()
		a, err := m.Create(ctx, volumes.Spec{Name: "v", Labels: projectLabels})
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Create(ctx, volumes.Spec{Name: "v", Labels: projectLabels, Driver: "local"})
		if err != nil || a.Mountpoint != b.Mountpoint {
			t.Fatalf("second Create: %+v, %v", b, err)
		}
	}},
	{"Create with another spec is ErrConflict", func(t *testing.T, m volumes.Manager) {
		ctx := context.Background()
		m.Create(ctx, volumes.Spec{Name: "v", Labels: projectLabels})
		if _, err := m.Create(ctx, volumes.Spec{Name: "v", Labels: projectLabels, DriverOpts: map[string]string{"type": "tmpfs"}}); !errdefs.IsConflict(err) {
			t.Fatal(err)
		}
	}},
	{"Create over an unlabelled volume is ErrConflict", func(t *testing.T, m volumes.Manager) {
		ctx := context.Background()
		m.Create(ctx, volumes.Spec{Name: "v"})
		if _, err := m.Create(ctx, volumes.Spec{Name: "v", Labels: projectLabels}); !errdefs.IsConflict(err) {
			t.Fatal(err)
		}
	}},
	{"Inspect of a missing volume is ErrNotFound", func(t *testing.T, m volumes.Manager) {
		if _, err := m.Inspect(context.Background(), "nosuch"); !errdefs.IsNotFound(err) {
			t.Fatal(err)
		}
	}},
	{"Remove of a missing volume is nil", func(t *testing.T, m volumes.Manager) {
		if err := m.Remove(context.Background(), "nosuch"); err != nil {
			t.Fatal(err)
		}
	}},
	{"List filters by labels", func(t *testing.T, m volumes.Manager) {
		ctx := context.Background()
		m.Create(ctx, volumes.Spec{Name: "a", Labels: projectLabels})
		m.Create(ctx, volumes.Spec{Name: "b"})
		vs, err := m.List(ctx, volumes.Filter{Labels: projectLabels})
		if err != nil || len(vs) != 1 || vs[0].Name != "a" {
			t.Fatalf("List: %+v, %v", vs, err)
		}
	}},
}

func TestConformance(t *testing.T) {
	for _, c := range conformance {
		t.Run(c.name, func(t *testing.T) { c.run(t, New()) })
	}
}

func TestInUseAnonymousAndLog(t *testing.T) {
	ctx := context.Background()
	m := New()
	if _, err := m.Create(ctx, volumes.Spec{Name: "data", Labels: projectLabels}); err != nil {
		t.Fatal(err)
	}
	m.Use("data", "web")
	if err := m.Remove(ctx, "data"); !errdefs.IsConflict(err) {
		t.Fatalf("Remove in use: %v", err)
	}
	m.Release("data", "web")
	if err := m.Remove(ctx, "data"); err != nil {
		t.Fatal(err)
	}
	anon, err := m.Create(ctx, volumes.Spec{})
	if err != nil || !anon.Anonymous || len(anon.Name) != 64 {
		t.Fatalf("anonymous: %+v, %v", anon, err)
	}
	boom := errors.New("boom")
	m.FailNext("create", "x", boom)
	if _, err := m.Create(ctx, volumes.Spec{Name: "x"}); !errors.Is(err, boom) {
		t.Fatalf("FailNext: %v", err)
	}
	want := []string{"create data", "remove data", "remove data", "create", "create x"}
	if got := m.Calls(); !slices.Equal(got, want) {
		t.Fatalf("Calls:\n got %q\nwant %q", got, want)
	}
	if got := m.Names(); !slices.Equal(got, []string{anon.Name}) {
		t.Fatalf("Names: %v", got)
	}
}
