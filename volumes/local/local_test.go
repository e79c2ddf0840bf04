package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/volumes"
)

func newManager(t *testing.T) (*Manager, *state.Root) {
	t.Helper()
	root, err := state.Open(filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	return m, root
}

var ctx = context.Background()

func TestCreateIsIdempotent(t *testing.T) {
	m, root := newManager(t)
	s := volumes.Spec{Name: "demo_data", Labels: map[string]string{ProjectLabel: "demo", "com.docker.compose.volume": "data"}}
	v, err := m.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(root.Path, "volumes", "demo_data", "_data")
	if v.Mountpoint != want || v.Driver != "local" || v.Anonymous || v.Created.IsZero() {
		t.Fatalf("created %+v, want mountpoint %s", v, want)
	}
	st, err := os.Stat(want)
	if err != nil || st.Mode().Perm() != 0o755 || !st.IsDir() {
		t.Fatalf("_data: %v %v", st, err)
	}
	os.WriteFile(filepath.Join(want, "kept"), []byte("x"), 0o644)
	s.Driver = "local" // "" and "local" are the same driver
	again, err := m.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Created.Equal(v.Created) || again.Mountpoint != v.Mountpoint {
		t.Errorf("second create: %+v, first %+v", again, v)
	}
	if _, err := os.Stat(filepath.Join(want, "kept")); err != nil {
		t.Errorf("second create touched the data: %v", err)
	}
	got, err := m.Inspect(ctx, "demo_data")
	if err != nil || !got.Created.Equal(v.Created) || got.Labels["com.docker.compose.volume"] != "data" {
		t.Errorf("inspect: %+v %v", got, err)
	}
	// meta.json is private and holds what the design says.
	var mt meta
	if err := state.ReadJSON(filepath.Join(root.Path, "volumes", "demo_data", MetaFile), &mt); err != nil || mt.Name != "demo_data" || mt.Driver != "local" {
		t.Errorf("meta.json: %+v %v", mt, err)
	}
}

func TestCreateConcurrent(t *testing.T) {
	m, _ := newManager(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.Create(ctx, volumes.Spec{Name: "shared", Labels: map[string]string{"a": "b"}})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestCreateConflicts(t *testing.T) {
	m, _ := newManager(t)
	if _, err := m.Create(ctx, volumes.Spec{Name: "mine"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, volumes.Spec{Name: "demo_data", Labels: map[string]string{ProjectLabel: "demo"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    volumes.Spec
		want string
	}{
		{volumes.Spec{Name: "mine", Labels: map[string]string{ProjectLabel: "demo"}}, "was not created by berth or Docker Compose"},
		{volumes.Spec{Name: "mine", DriverOpts: map[string]string{"type": "tmpfs"}}, "other labels or driver options"},
		{volumes.Spec{Name: "demo_data", Labels: map[string]string{ProjectLabel: "other"}}, `created for project "demo"`},
		{volumes.Spec{Name: "demo_data", Labels: map[string]string{ProjectLabel: "demo", "x": "y"}}, "other labels"},
		{volumes.Spec{Name: "demo_data"}, "other labels"},
	} {
		_, err := m.Create(ctx, tc.s)
		if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.s.Name) {
			t.Errorf("%+v: %v, want ErrConflict with %q", tc.s, err, tc.want)
		}
	}
	if mine, err := m.Inspect(ctx, "mine"); err != nil || len(mine.Labels) != 0 {
		t.Errorf("the conflicting create changed the volume: %+v %v", mine, err)
	}
}

func TestNamesRejectedBeforeAnyWrite(t *testing.T) {
	m, root := newManager(t)
	for _, name := range []string{"../x", "..", ".", "a/b", "/abs", ".hidden", "x\x00y", "-dash", strings.Repeat("a", 256)} {
		if _, err := m.Create(ctx, volumes.Spec{Name: name}); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("create %q: %v, want ErrInvalid", name, err)
		}
		if _, err := m.Inspect(ctx, name); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("inspect %q: %v, want ErrInvalid", name, err)
		}
		if err := m.Remove(ctx, name); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("remove %q: %v, want ErrInvalid", name, err)
		}
	}
	if n := entries(t, filepath.Join(root.Path, "volumes")); !slices.Equal(n, []string{".locks"}) {
		t.Errorf("volumes/ holds %v", n)
	}
	if n := entries(t, filepath.Join(root.Path, "volumes", ".locks")); len(n) != 0 {
		t.Errorf("locks made: %v", n)
	}
	if _, err := os.Lstat(filepath.Join(root.Path, "x")); err == nil {
		t.Error("ROOT/x was made")
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestDriverAndOptionsChecked(t *testing.T) {
	m, _ := newManager(t)
	_, err := m.Create(ctx, volumes.Spec{Name: "n", Driver: "nfs-csi"})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), `"nfs-csi"`) {
		t.Errorf("driver: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{"type": "none", "o": "bind", "device": missing}, missing},
		{map[string]string{"type": "none", "o": "bind", "device": "relative/dir"}, "absolute"},
		{map[string]string{"type": "none", "device": "/srv"}, "o: bind"},
		{map[string]string{"type": "nfs", "o": "addr=1.2.3.4", "device": ":/x"}, `"nfs"`},
		{map[string]string{"type": "tmpfs", "o": "uid=1000"}, `"uid=1000"`},
		{map[string]string{"o": "bind"}, "without type"},
		{map[string]string{"type": "tmpfs", "size": "1m"}, `"size"`},
	} {
		_, err := m.Create(ctx, volumes.Spec{Name: "o", DriverOpts: tc.opts})
		if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want ErrInvalid with %q", tc.opts, err, tc.want)
		}
	}
	if vs, _ := m.List(ctx, volumes.Filter{}); len(vs) != 0 {
		t.Errorf("refused creates left %v", vs)
	}
}

func TestBindAndTmpfsDriverOpts(t *testing.T) {
	m, root := newManager(t)
	dev := t.TempDir()
	os.WriteFile(filepath.Join(dev, "host-file"), []byte("x"), 0o644)
	v, err := m.Create(ctx, volumes.Spec{Name: "bound", DriverOpts: map[string]string{"type": "none", "o": "bind", "device": dev + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Mountpoint != dev {
		t.Errorf("mountpoint %s, want %s", v.Mountpoint, dev)
	}
	typ, src, opts := m.MountFor(v)
	if typ != "bind" || src != dev || !slices.Equal(opts, []string{"rbind"}) {
		t.Errorf("MountFor: %s %s %v", typ, src, opts)
	}
	ro, err := m.Create(ctx, volumes.Spec{Name: "bound-ro", DriverOpts: map[string]string{"type": "none", "o": "bind,ro", "device": dev}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, opts := m.MountFor(ro); !slices.Equal(opts, []string{"rbind", "ro"}) {
		t.Errorf("MountFor ro: %v", opts)
	}
	tv, err := m.Create(ctx, volumes.Spec{Name: "scratch", DriverOpts: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=64m,mode=1777"}})
	if err != nil {
		t.Fatal(err)
	}
	if tv.Mountpoint != "" || !IsTmpfs(tv) || IsTmpfs(v) {
		t.Errorf("tmpfs volume %+v", tv)
	}
	typ, src, opts = m.MountFor(tv)
	if typ != "tmpfs" || src != filepath.Join(root.Path, "volumes", "scratch") || !slices.Equal(opts, []string{"exec", "size=64m", "mode=1777"}) {
		t.Errorf("MountFor tmpfs: %s %s %v", typ, src, opts)
	}
	plain, _ := m.Create(ctx, volumes.Spec{Name: "plain"})
	if typ, src, opts := m.MountFor(plain); typ != "volume" || src != plain.Mountpoint || opts != nil {
		t.Errorf("MountFor plain: %s %s %v", typ, src, opts)
	}
	// Removing a bind volume never touches its device.
	if err := m.Remove(ctx, "bound"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dev, "host-file")); err != nil {
		t.Errorf("the device lost its content: %v", err)
	}
	// The device gone later: the volume still says where it was.
	os.RemoveAll(dev)
	if again, err := m.Inspect(ctx, "bound-ro"); err != nil || again.Mountpoint != dev {
		t.Errorf("inspect after the device went: %+v %v", again, err)
	}
}

func TestInspectMissing(t *testing.T) {
	m, _ := newManager(t)
	_, err := m.Inspect(ctx, "nope")
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "berth volume create") {
		t.Errorf("%v", err)
	}
}

func TestListFilters(t *testing.T) {
	m, _ := newManager(t)
	for _, s := range []volumes.Spec{
		{Name: "b", Labels: map[string]string{ProjectLabel: "demo", "role": "db"}},
		{Name: "a", Labels: map[string]string{ProjectLabel: "demo"}},
		{Name: "c", Labels: map[string]string{ProjectLabel: "other", "role": ""}},
		{Name: "d"},
	} {
		if _, err := m.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// Debris: a create that crashed before meta.json, a stray file.
	dir, _ := m.Dir("crashed")
	os.MkdirAll(filepath.Join(dir, DataDir), 0o700)
	os.WriteFile(filepath.Join(m.dir, "stray"), nil, 0o600)
	for _, tc := range []struct {
		f    map[string]string
		want []string
	}{
		{nil, []string{"a", "b", "c", "d"}},
		{map[string]string{ProjectLabel: "demo"}, []string{"a", "b"}},
		{map[string]string{ProjectLabel: "demo", "role": "db"}, []string{"b"}},
		{map[string]string{"role": ""}, []string{"c"}},
		{map[string]string{ProjectLabel: "none"}, nil},
	} {
		vs, err := m.List(ctx, volumes.Filter{Labels: tc.f})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range vs {
			got = append(got, v.Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("filter %v: %v, want %v", tc.f, got, tc.want)
		}
	}
	// The crashed create is finished by the next one.
	if _, err := m.Create(ctx, volumes.Spec{Name: "crashed"}); err != nil {
		t.Fatal(err)
	}
}

func TestRemove(t *testing.T) {
	m, root := newManager(t)
	users := map[string][]string{}
	m.InUse = func(name string) ([]string, error) { return users[name], nil }
	v, err := m.Create(ctx, volumes.Spec{Name: "data"})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("x"), 0o644)
	users["data"] = []string{"web-2", "web-1"}
	err = m.Remove(ctx, "data")
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "in use by container web-1, web-2") {
		t.Fatalf("remove in use: %v", err)
	}
	if _, err := os.Stat(filepath.Join(v.Mountpoint, "f")); err != nil {
		t.Fatalf("the refused remove lost data: %v", err)
	}
	m.InUse = func(string) ([]string, error) { return nil, errors.New("runtime down") }
	if err := m.Remove(ctx, "data"); err == nil || !strings.Contains(err.Error(), "runtime down") {
		t.Fatalf("remove when InUse fails: %v", err)
	}
	m.InUse = func(name string) ([]string, error) { return users[name], nil }
	delete(users, "data")
	if err := m.Remove(ctx, "data"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Inspect(ctx, "data"); !errdefs.IsNotFound(err) {
		t.Errorf("inspect after remove: %v", err)
	}
	if n := entries(t, filepath.Join(root.Path, "volumes")); !slices.Equal(n, []string{".locks"}) {
		t.Errorf("volumes/ holds %v", n)
	}
	if n := entries(t, root.TmpDir()); len(n) != 0 {
		t.Errorf("tmp/ holds %v", n)
	}
	if err := m.Remove(ctx, "data"); err != nil {
		t.Errorf("remove of a missing volume: %v", err)
	}
	// Created again after removal: a fresh, empty volume.
	v2, err := m.Create(ctx, volumes.Spec{Name: "data"})
	if err != nil {
		t.Fatal(err)
	}
	if n := entries(t, v2.Mountpoint); len(n) != 0 {
		t.Errorf("recreated volume holds %v", n)
	}
}

func TestAnonymous(t *testing.T) {
	m, _ := newManager(t)
	a, err := m.Create(ctx, volumes.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Create(ctx, volumes.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	if !hex64.MatchString(a.Name) || !a.Anonymous || a.Name == b.Name {
		t.Errorf("anonymous volumes %q %q (%v)", a.Name, b.Name, a.Anonymous)
	}
	if got, err := m.Inspect(ctx, a.Name); err != nil || !got.Anonymous {
		t.Errorf("inspect: %+v %v", got, err)
	}
	if named, _ := m.Create(ctx, volumes.Spec{Name: "named"}); named.Anonymous {
		t.Error("a named volume is anonymous")
	}
}
