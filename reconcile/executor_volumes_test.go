package reconcile

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
	rtfake "berth.dev/berth/runtime/fake"
	"berth.dev/berth/volumes"
)

// exMounts are the mounts of the container named name, by target.
func (x *exEnv) mounts(name string) map[string]specs.Mount {
	x.t.Helper()
	c, err := x.rt.Load(context.Background(), name)
	if err != nil {
		x.t.Fatalf("container %s: %v", name, err)
	}
	ms, err := c.(MountLister).Mounts(context.Background())
	if err != nil {
		x.t.Fatal(err)
	}
	out := map[string]specs.Mount{}
	for _, m := range ms {
		out[m.Destination] = m
	}
	return out
}

// up observes, computes and runs m under opt, failing on an error.
func (x *exEnv) up(yml string, opt Options) {
	x.t.Helper()
	if yml != "" {
		x.m = exLoad(x.t, yml)
	}
	e := x.executor(0)
	e.Options = opt
	if p, err := exUp(x.t, context.Background(), e, x.m, opt); err != nil {
		x.t.Fatalf("run:\n%s\nerror: %v", p, err)
	}
}

func (x *exEnv) volumeBySource(src string) volumes.Volume {
	x.t.Helper()
	vs, err := x.vm.List(context.Background(), volumes.Filter{})
	if err != nil {
		x.t.Fatal(err)
	}
	for _, v := range vs {
		if v.Mountpoint == src {
			return v
		}
	}
	x.t.Fatalf("no volume mounted from %s (volumes: %v)", src, x.vm.Names())
	return volumes.Volume{}
}

const exAnonV1 = `
services:
  web:
    image: img
    environment: {V: "1"}
    volumes: ["/data", "cache:/named"]
volumes:
  cache: {}
`

// Anonymous volumes (the service's and the image's VOLUMEs not otherwise
// covered) are made at create, labelled for the replica; a recreate
// carries them over by target, -V makes new ones (and removes the old),
// down keeps them, a fresh create after down gets new ones, down -v
// removes them all.
func TestExecutorAnonymousVolumesFollowCompose(t *testing.T) {
	x := newExEnv(t, exAnonV1)
	x.images["img"] = ResolvedImage{Digest: "sha256:img", ChainID: "sha256:chain-img",
		Config: ImageConfig{Cmd: []string{"sh"}, Volumes: []string{"/cache", "/data", "/named"}}}
	x.up("", Options{})
	first := x.mounts("demo-web-1")
	for _, target := range []string{"/data", "/cache"} {
		m := first[target]
		if m.Type != "volume" || !strings.HasPrefix(m.Source, "/fake/volumes/") {
			t.Fatalf("%s: %+v", target, m)
		}
		v := x.volumeBySource(m.Source)
		want := map[string]string{runtime.LabelProject: "demo", runtime.LabelService: "web", runtime.LabelNumber: "1",
			volumes.LabelAnonymous: "", volumes.LabelAnonymousFor: "demo-web-1:" + target}
		if !v.Anonymous || len(v.Name) != 64 || !maps.Equal(v.Labels, want) {
			t.Errorf("%s: volume %+v, want labels %v", target, v, want)
		}
	}
	if m := first["/named"]; m.Source != "/fake/volumes/demo_cache/_data" {
		t.Errorf("/named (an image VOLUME covered by a named volume): %+v", m)
	}
	if n := len(x.vm.Names()); n != 3 {
		t.Fatalf("volumes: %v", x.vm.Names())
	}

	x.up(strings.Replace(exAnonV1, `V: "1"`, `V: "2"`, 1), Options{})
	second := x.mounts("demo-web-1")
	for _, target := range []string{"/data", "/cache"} {
		if second[target].Source != first[target].Source {
			t.Errorf("recreate: %s moved from %s to %s", target, first[target].Source, second[target].Source)
		}
	}

	x.up(strings.Replace(exAnonV1, `V: "1"`, `V: "3"`, 1), Options{RenewAnon: true})
	third := x.mounts("demo-web-1")
	for _, target := range []string{"/data", "/cache"} {
		if third[target].Source == first[target].Source {
			t.Errorf("-V: %s kept %s", target, first[target].Source)
		}
	}
	if n := len(x.vm.Names()); n != 3 {
		t.Errorf("-V left the old anonymous volumes: %v", x.vm.Names())
	}

	x.up("", Options{Down: true})
	if n := len(x.vm.Names()); n != 3 {
		t.Errorf("down removed volumes: %v", x.vm.Names())
	}
	x.up("", Options{})
	if x.mounts("demo-web-1")["/data"].Source == third["/data"].Source {
		t.Error("a container created after down took the removed container's anonymous volume")
	}
	x.up("", Options{Down: true, DownVolumes: true})
	if names := x.vm.Names(); len(names) != 0 {
		t.Errorf("down -v left %v", names)
	}
}

const exVolumesFromYAML = `
services:
  data:
    image: busybox
    network_mode: none
    command: ["true"]
    volumes: ["/data", "shared:/shared", "/host/logs:/logs:ro", "/host/conf:/conf"]
    tmpfs: ["/scratch"]
    secrets: [{source: token, mode: 0400}]
  web:
    image: vol
    volumes_from: [data]
    volumes: ["/host/own:/logs"]
  db:
    image: busybox
    volumes_from: ["data:ro", "container:legacy"]
volumes:
  shared: {}
secrets:
  token: {file: /host/token}
`

// volumes_from gives the consumer the provider's volumes (anonymous and
// named) and binds in their mode, or read-only with :ro; its own mounts
// win a target, a provider's mount takes an image VOLUME's; tmpfs and
// the provider's secrets stay its own; a container by name works too;
// the provider may have exited.
func TestExecutorVolumesFromCopiesTheProvidersMounts(t *testing.T) {
	x := newExEnv(t, exVolumesFromYAML)
	x.images["vol"] = ResolvedImage{Digest: "sha256:vol", ChainID: "sha256:chain-vol",
		Config: ImageConfig{Cmd: []string{"sh"}, Volumes: []string{"/data", "/else"}}}
	x.rt.SetBehaviour("demo-data-1", rtfake.Behaviour{ExitAfterStart: true})
	ctx := context.Background()
	if _, err := x.rt.Create(ctx, runtime.ContainerSpec{Name: "legacy", OCI: &specs.Spec{Mounts: []specs.Mount{
		{Type: "bind", Source: "/host/legacy", Destination: "/legacy", Options: []string{"rbind"}},
		{Type: "tmpfs", Source: "tmpfs", Destination: "/tmp"},
	}}}); err != nil {
		t.Fatal(err)
	}
	x.up("", Options{})
	data, web, db := x.mounts("demo-data-1"), x.mounts("demo-web-1"), x.mounts("demo-db-1")
	for _, target := range []string{"/data", "/shared", "/conf"} {
		if web[target].Source != data[target].Source || web[target].Type != data[target].Type {
			t.Errorf("web %s: %+v, data's: %+v", target, web[target], data[target])
		}
		if slices.Contains(web[target].Options, "ro") {
			t.Errorf("web %s is read-only: %v", target, web[target].Options)
		}
		if db[target].Source != data[target].Source || !slices.Contains(db[target].Options, "ro") {
			t.Errorf("db %s (:ro): %+v", target, db[target])
		}
	}
	if web["/logs"].Source != "/host/own" {
		t.Errorf("web's own /logs lost to the provider's: %+v", web["/logs"])
	}
	if !slices.Contains(db["/logs"].Options, "ro") {
		t.Errorf("db /logs: %+v", db["/logs"])
	}
	if m, ok := web["/else"]; !ok || !strings.HasPrefix(m.Source, "/fake/volumes/") {
		t.Errorf("web's image VOLUME /else: %+v", m)
	}
	if x.volumeBySource(web["/data"].Source).Labels[runtime.LabelService] != "data" {
		t.Error("web's /data is not data's anonymous volume (an image VOLUME took it?)")
	}
	for _, target := range []string{"/scratch", "/run/secrets/token"} {
		if _, ok := web[target]; ok {
			t.Errorf("web got data's %s", target)
		}
	}
	if _, ok := data["/run/secrets/token"]; !ok {
		t.Errorf("data has no secret: %v", data)
	}
	if m := db["/legacy"]; m.Source != "/host/legacy" {
		t.Errorf("db /legacy from container:legacy: %+v", m)
	}
	if _, ok := db["/tmp"]; ok {
		t.Error("db got legacy's tmpfs")
	}
	if st := x.info("demo-data-1").Status; st != runtime.StatusExited {
		t.Errorf("data is %v", st)
	}
	if web["/data"].Source == "" || len(x.vm.Names()) != 3 { // data's anonymous, web's /else, shared
		t.Errorf("volumes: %v", x.vm.Names())
	}

	// down -v: the anonymous volume goes once nothing uses it.
	x.up("", Options{Down: true, DownVolumes: true})
	if names := x.vm.Names(); len(names) != 0 {
		t.Errorf("down -v left %v", names)
	}
}

// A consumer whose provider has no container fails, naming both.
func TestExecutorVolumesFromWithoutProviderFails(t *testing.T) {
	x := newExEnv(t, exVolumesFromYAML)
	x.images["vol"] = exImage("sha256:vol")
	p, err := exUp(t, context.Background(), x.executor(0), x.m, Options{Services: []string{"web"}, NoDeps: true})
	if err == nil || !strings.Contains(err.Error(), "volumes_from data") || !strings.Contains(err.Error(), "service data has no container") {
		t.Fatalf("plan:\n%s\nerror: %v", p, err)
	}
	if x.exists("demo-web-1") || len(x.vm.Names()) != 0 {
		t.Errorf("left: %v %v", x.rt.Names(), x.vm.Names())
	}
}

const exFilesYAML = `
services:
  web:
    image: busybox
    environment: {V: "1"}
    secrets:
      - source: pw
        mode: 0400
        uid: "70"
        gid: "71"
      - plain
      - source: token
        target: api/token
    configs:
      - source: app
        target: /etc/app.conf
      - rel
secrets:
  pw: {file: ./pw.txt}
  plain: {file: ./plain.txt}
  token: {environment: TOKEN}
configs:
  app: {content: "debug=1\n"}
  rel: {content: "r"}
`

// Secrets and configs: a file: one with nothing asked is bound from the
// host; the others are written by the FileStore with their mode and
// owner (0444 and 0:0 by default), bound read-only; a recreate writes
// new ones and releases the old; down releases them all.
func TestExecutorSecretsAndConfigsAreWrittenAndReleased(t *testing.T) {
	x := newExEnv(t, exFilesYAML)
	dir := t.TempDir()
	load := func(yml string) {
		for name, content := range map[string]string{"compose.yaml": yml, ".env": "TOKEN=tok\n"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		m, err := project.Load(context.Background(), project.Options{WorkDir: dir, ProjectName: "demo", Env: map[string]string{}})
		if err != nil {
			t.Fatal(err)
		}
		x.m = m
	}
	load(exFilesYAML)
	x.up("", Options{})
	ms := x.mounts("demo-web-1")
	files := x.vm.Files()
	want := map[string]struct {
		content  string
		mode     uint32
		uid, gid int
		source   string
	}{
		"/run/secrets/pw":        {"", 0o400, 70, 71, x.m.WorkingDir + "/pw.txt"},
		"/run/secrets/api/token": {"tok", 0o444, 0, 0, ""},
		"/etc/app.conf":          {"debug=1\n", 0o444, 0, 0, ""},
		"/rel":                   {"r", 0o444, 0, 0, ""},
	}
	for target, w := range want {
		m, ok := ms[target]
		if !ok {
			t.Errorf("no mount at %s: %v", target, ms)
			continue
		}
		f, ok := files[m.Source]
		if !ok || m.Type != "bind" || !slices.Contains(m.Options, "ro") {
			t.Errorf("%s: mount %+v, file %+v", target, m, f)
			continue
		}
		if string(f.Content) != w.content || f.Mode != w.mode || f.UID != w.uid || f.GID != w.gid || f.Source != w.source {
			t.Errorf("%s: file %+v, want %+v", target, f.File, w)
		}
	}
	if m := ms["/run/secrets/plain"]; m.Source != x.m.WorkingDir+"/plain.txt" || !slices.Contains(m.Options, "ro") {
		t.Errorf("plain secret: %+v", m)
	}
	if len(files) != 4 {
		t.Errorf("files: %v", slices.Sorted(maps.Keys(files)))
	}
	old := slices.Sorted(maps.Keys(files))

	load(strings.Replace(exFilesYAML, `V: "1"`, `V: "2"`, 1))
	x.up("", Options{})
	files = x.vm.Files()
	if len(files) != 4 {
		t.Errorf("after recreate: %v", slices.Sorted(maps.Keys(files)))
	}
	for _, p := range old {
		if _, ok := files[p]; ok {
			t.Errorf("the old container's %s was kept", p)
		}
	}
	x.up("", Options{Down: true})
	if files := x.vm.Files(); len(files) != 0 {
		t.Errorf("down left %v", slices.Sorted(maps.Keys(files)))
	}
}

// A long-syntax bind's missing source fails the create (nothing is
// made); the short syntax's is created.
func TestExecutorBindSourcesCheckedOrCreated(t *testing.T) {
	const yml = `
services:
  web:
    image: busybox
    volumes:
      - /host/short:/short
      - {type: bind, source: /host/long, target: /long}
`
	x := newExEnv(t, yml)
	x.vm.MarkMissing("/host/short")
	x.vm.MarkMissing("/host/long")
	_, err := exUp(t, context.Background(), x.executor(0), x.m, Options{})
	if err == nil || !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "/host/long does not exist") || !strings.Contains(err.Error(), "create_host_path") {
		t.Fatalf("error: %v", err)
	}
	if x.exists("demo-web-1") {
		t.Error("the container was created")
	}
	if got := x.vm.CreatedHostPaths(); !slices.Equal(got, []string{"/host/short"}) {
		t.Errorf("created: %v", got)
	}
}

// What resolveMounts made goes again when the container is not created.
func TestExecutorFailedCreateUndoesMounts(t *testing.T) {
	x := newExEnv(t, `
services:
  web:
    image: busybox
    volumes: ["/data"]
    configs: [app]
configs:
  app: {content: "x"}
`)
	boom := errors.New("boom")
	x.rt.FailNext("create", "demo-web-1", boom)
	if _, err := exUp(t, context.Background(), x.executor(0), x.m, Options{}); !errors.Is(err, boom) {
		t.Fatalf("error: %v", err)
	}
	if names := x.vm.Names(); len(names) != 0 {
		t.Errorf("volumes left: %v", names)
	}
	if files := x.vm.Files(); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
	x.up("", Options{})
	if len(x.vm.Names()) != 1 || len(x.vm.Files()) != 1 {
		t.Errorf("after a good run: %v %v", x.vm.Names(), x.vm.Files())
	}
}
