package examples

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// volumeData is the host dir of the volume named name in r's root.
func volumeData(r *testutil.Root, name string) string {
	return filepath.Join(r.Path, "volumes", name, "_data")
}

func noVolumeDir(t *testing.T, r *testutil.Root, name string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(r.Path, "volumes", name)); !os.IsNotExist(err) {
		t.Errorf("volume %s is still there: %v", name, err)
	}
}

func volumeNames(t *testing.T, r *testutil.Root, filter ...string) []string {
	t.Helper()
	args := []string{"volume", "ls", "-q"}
	for _, f := range filter {
		args = append(args, "--filter", f)
	}
	return strings.Fields(r.Must(args...))
}

// TestComposeNamedVolumesMustOutliveContainers: a named volume written by
// one container is read by a second, survives down and up, and is gone
// after down -v; an external volume survives down -v.
func TestComposeNamedVolumesMustOutliveContainers(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("volume", "create", "outside")
	run, _ := project(t, r, "named", map[string]string{"compose.yaml": `
services:
  writer:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    volumes: ["data:/v", "ext:/ext"]
  reader:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    volumes: ["data:/w:ro"]
volumes:
  data: {}
  ext: {external: true, name: outside}
`})
	must(t, run("up", "-d"), "up")
	must(t, run("exec", "writer", "sh", "-c", "echo kept > /v/note && echo outside > /ext/note"), "write")
	if got := must(t, run("exec", "reader", "cat", "/w/note"), "read"); got != "kept\n" {
		t.Errorf("reader sees %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(volumeData(r, "named_data"), "note")); err != nil || string(b) != "kept\n" {
		t.Errorf("the volume dir holds %q, %v", b, err)
	}
	if res := run("exec", "reader", "sh", "-c", "echo no > /w/note"); res.Code == 0 {
		t.Error("a :ro volume took a write")
	}
	must(t, run("down", "-t", "0"), "down")
	if got := volumeNames(t, r, "label=com.docker.compose.project=named"); len(got) != 1 || got[0] != "named_data" {
		t.Errorf("volumes after down: %v", got)
	}
	must(t, run("up", "-d"), "up again")
	if got := must(t, run("exec", "reader", "cat", "/w/note"), "read after down/up"); got != "kept\n" {
		t.Errorf("after down and up the reader sees %q", got)
	}
	must(t, run("down", "-v", "-t", "0"), "down -v")
	noVolumeDir(t, r, "named_data")
	if got := volumeNames(t, r); len(got) != 1 || got[0] != "outside" {
		t.Errorf("volumes after down -v: %v (the external one must stay)", got)
	}
	if b, err := os.ReadFile(filepath.Join(volumeData(r, "outside"), "note")); err != nil || string(b) != "outside\n" {
		t.Errorf("the external volume holds %q, %v", b, err)
	}
	r.Must("volume", "rm", "outside")
}

// TestComposeVolumeCopyUpMustFollowNocopy: an empty volume at /etc is
// filled with the image's /etc (passwd inside the container and in the
// volume dir); with nocopy it stays empty.
func TestComposeVolumeCopyUpMustFollowNocopy(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "copyup", map[string]string{"compose.yaml": `
services:
  copied:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    volumes: ["etc:/etc"]
  empty:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    volumes:
      - {type: volume, source: bare, target: /etc, volume: {nocopy: true}}
volumes:
  etc: {}
  bare: {}
`})
	must(t, run("up", "-d"), "up")
	if got := must(t, run("exec", "copied", "cat", "/etc/passwd"), "cat passwd"); !strings.Contains(got, "root:x:0:0") {
		t.Errorf("/etc/passwd over the volume: %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(volumeData(r, "copyup_etc"), "passwd")); err != nil || !strings.Contains(string(b), "root:x:0:0") {
		t.Errorf("the volume's passwd: %q %v", b, err)
	}
	if res := run("exec", "empty", "cat", "/etc/passwd"); res.Code == 0 {
		t.Errorf("nocopy: /etc/passwd is there: %q", res.Stdout)
	}
	if _, err := os.Stat(filepath.Join(volumeData(r, "copyup_bare"), "passwd")); !os.IsNotExist(err) {
		t.Errorf("nocopy copied passwd: %v", err)
	}
}

// TestComposeBindMountsMustShareWithTheHost: a relative bind resolves
// against the project dir; host and container see each other's writes;
// :ro refuses writes; a missing short-syntax source is created, a
// missing long-syntax one fails up (naming create_host_path) unless it
// asks for it.
func TestComposeBindMountsMustShareWithTheHost(t *testing.T) {
	r := testutil.NewRoot(t)
	run, dir := project(t, r, "binds", map[string]string{
		"host/from-host": "hello\n",
		"compose.yaml": `
services:
  app:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    volumes:
      - ./host:/h
      - ./host:/ro:ro
      - ./made/by/up:/made
      - {type: bind, source: ./asked, target: /asked, bind: {create_host_path: true, selinux: z}}
`})
	must(t, run("up", "-d"), "up")
	if got := must(t, run("exec", "app", "cat", "/h/from-host"), "read"); got != "hello\n" {
		t.Errorf("the container reads %q", got)
	}
	must(t, run("exec", "app", "sh", "-c", "echo back > /h/from-container"), "write")
	if b, err := os.ReadFile(filepath.Join(dir, "host", "from-container")); err != nil || string(b) != "back\n" {
		t.Errorf("the host reads %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "host", "later"), []byte("live\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := must(t, run("exec", "app", "cat", "/ro/later"), "read ro"); got != "live\n" {
		t.Errorf("a host write after start reads %q", got)
	}
	res := run("exec", "app", "sh", "-c", "echo no > /ro/x")
	if res.Code == 0 || !strings.Contains(res.Stderr+res.Stdout, "Read-only file system") {
		t.Errorf("write to :ro: exit %d %s%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, d := range []string{"made/by/up", "asked"} {
		if st, err := os.Stat(filepath.Join(dir, d)); err != nil || !st.IsDir() {
			t.Errorf("%s was not created on the host: %v", d, err)
		}
	}
	must(t, run("down", "-t", "0"), "down")

	run2, _ := project(t, r, "longbind", map[string]string{"compose.yaml": `
services:
  app:
    image: busybox
    command: ["sleep", "300"]
    volumes:
      - {type: bind, source: ./missing, target: /m}
`})
	res = run2("up", "-d")
	if res.Code == 0 || !strings.Contains(res.Stderr, "missing does not exist") || !strings.Contains(res.Stderr, "create_host_path") {
		t.Errorf("long-syntax bind of a missing dir: exit %d, %s", res.Code, res.Stderr)
	}
	if out := run2("ps", "-a", "-q").Stdout; strings.TrimSpace(out) != "" {
		t.Errorf("containers left: %s", out)
	}
}

// TestComposeVolumesFromMustShareADataContainer: a data-only service that
// declares /data and exits; one consumer sees and writes its volume, a
// :ro one reads it and cannot write; down -v removes the anonymous volume.
func TestComposeVolumesFromMustShareADataContainer(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "vfrom", map[string]string{"compose.yaml": `
services:
  data:
    image: busybox
    command: ["sh", "-c", "echo seeded > /data/seed"]
    network_mode: none
    volumes: ["/data"]
  app:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    volumes_from: [data]
  viewer:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    volumes_from: ["data:ro"]
`})
	must(t, run("up", "-d"), "up")
	if e := psAll(t, run)["vfrom-data-1"]; e.State != "exited" || e.ExitCode != 0 {
		t.Errorf("data: %+v", e)
	}
	testutil.Eventually(t, func() bool { return run("exec", "app", "cat", "/data/seed").Stdout == "seeded\n" }, 5*time.Second, "app sees data's seed")
	must(t, run("exec", "app", "sh", "-c", "echo from-app > /data/app"), "app writes")
	if got := must(t, run("exec", "viewer", "cat", "/data/app"), "viewer reads"); got != "from-app\n" {
		t.Errorf("viewer reads %q", got)
	}
	res := run("exec", "viewer", "sh", "-c", "echo no > /data/viewer")
	if res.Code == 0 || !strings.Contains(res.Stderr+res.Stdout, "Read-only file system") {
		t.Errorf("viewer (:ro) write: exit %d %s%s", res.Code, res.Stdout, res.Stderr)
	}
	anon := volumeNames(t, r, "label=dev.berth.anonymous-for=vfrom-data-1:/data")
	if len(anon) != 1 || len(anon[0]) != 64 {
		t.Fatalf("data's anonymous volume: %v (all: %v)", anon, volumeNames(t, r))
	}
	if b, err := os.ReadFile(filepath.Join(volumeData(r, anon[0]), "app")); err != nil || string(b) != "from-app\n" {
		t.Errorf("the anonymous volume holds %q, %v", b, err)
	}
	must(t, run("down", "-v", "-t", "0"), "down -v")
	if got := volumeNames(t, r); len(got) != 0 {
		t.Errorf("volumes after down -v: %v", got)
	}
}

// TestComposeAnonymousVolumesMustFollowRecreation: the service's /scratch
// and the image's VOLUME /cache (filled from the image) get anonymous
// volumes; a recreate keeps their data, -V renews them; down keeps them,
// down -v removes them.
func TestComposeAnonymousVolumesMustFollowRecreation(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("container", "run", "--name", "mkimg", "busybox", "sh", "-c", "mkdir -p /cache && echo from-image > /cache/seed")
	r.Must("container", "commit", "-c", "VOLUME /cache", "mkimg", "withvol:latest")
	r.Must("container", "rm", "mkimg")
	t.Cleanup(func() { r.Run("image", "rm", "withvol:latest") })
	yml := func(v string) string {
		return `
services:
  app:
    image: withvol
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    environment: {V: "` + v + `"}
    volumes: ["/scratch"]
`
	}
	run, dir := project(t, r, "anon", map[string]string{"compose.yaml": yml("1")})
	rewrite := func(v string) {
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(yml(v)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must(t, run("up", "-d"), "up")
	if got := must(t, run("exec", "app", "cat", "/cache/seed"), "seed"); got != "from-image\n" {
		t.Errorf("the image VOLUME's copy-up: %q", got)
	}
	must(t, run("exec", "app", "sh", "-c", "echo s > /scratch/mark && echo c > /cache/mark"), "mark")
	if got := volumeNames(t, r, "label=com.docker.compose.project=anon"); len(got) != 2 {
		t.Fatalf("anonymous volumes: %v", got)
	}
	rewrite("2")
	must(t, run("up", "-d"), "recreate")
	if got := must(t, run("exec", "app", "cat", "/scratch/mark", "/cache/mark"), "marks after recreate"); got != "s\nc\n" {
		t.Errorf("after a recreate: %q", got)
	}
	rewrite("3")
	must(t, run("up", "-d", "-V"), "recreate -V")
	if res := run("exec", "app", "cat", "/scratch/mark"); res.Code == 0 {
		t.Errorf("-V kept /scratch's data: %q", res.Stdout)
	}
	if got := must(t, run("exec", "app", "cat", "/cache/seed"), "seed after -V"); got != "from-image\n" {
		t.Errorf("the renewed /cache: %q", got)
	}
	if got := volumeNames(t, r, "label=com.docker.compose.project=anon"); len(got) != 2 {
		t.Errorf("after -V: %v (the old ones must go)", got)
	}
	must(t, run("down", "-t", "0"), "down")
	if got := volumeNames(t, r, "label=com.docker.compose.project=anon"); len(got) != 2 {
		t.Errorf("after down: %v", got)
	}
	must(t, run("down", "-v", "-t", "0"), "down -v")
	if got := volumeNames(t, r); len(got) != 0 {
		t.Errorf("after down -v: %v", got)
	}
}

// TestComposeSecretsAndConfigsMustMountReadOnly: a secret from a file at
// /run/secrets/NAME with the mode asked; without uid, gid or mode one is
// bound from the host as it is, also under a relative target; a config
// from content: at its target with its owner and mode; none writable;
// down leaves no file of theirs under the root.
func TestComposeSecretsAndConfigsMustMountReadOnly(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "files", map[string]string{
		"pw.txt":    "hunter2\n",
		"plain.txt": "plain\n",
		"compose.yaml": `
services:
  app:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    secrets:
      - source: pw
        mode: 0400
      - plain
      - source: pw
        target: nested/pw
    configs:
      - source: app
        target: /etc/app/app.conf
        uid: "1000"
        gid: "1001"
        mode: 0440
secrets:
  pw: {file: ./pw.txt}
  plain: {file: ./plain.txt}
configs:
  app:
    content: |
      debug=1
`})
	must(t, run("up", "-d"), "up")
	for _, c := range []struct{ path, content, stat string }{
		{"/run/secrets/pw", "hunter2\n", "400 0 0"},
		{"/run/secrets/nested/pw", "hunter2\n", "644 0 0"}, // bound as it is: the host file's mode
		{"/run/secrets/plain", "plain\n", "644 0 0"},
		{"/etc/app/app.conf", "debug=1\n", "440 1000 1001"},
	} {
		if got := must(t, run("exec", "app", "cat", c.path), "cat "+c.path); got != c.content {
			t.Errorf("%s holds %q, want %q", c.path, got, c.content)
		}
		if got := strings.TrimSpace(must(t, run("exec", "app", "stat", "-c", "%a %u %g", c.path), "stat "+c.path)); got != c.stat {
			t.Errorf("%s: %s, want %s", c.path, got, c.stat)
		}
		if res := run("exec", "app", "sh", "-c", "echo x >> "+c.path); res.Code == 0 {
			t.Errorf("%s took a write", c.path)
		}
	}
	files := filepath.Join(r.Path, "projects", "files", "files")
	if entries, err := os.ReadDir(files); err != nil || len(entries) != 1 {
		t.Errorf("files under %s: %v %v", files, entries, err)
	}
	must(t, run("down", "-t", "0"), "down")
	if entries, _ := os.ReadDir(files); len(entries) != 0 {
		t.Errorf("files left after down: %v", entries)
	}
}

// TestComposeVolumeTargetsMustStayInsideTheContainer: in an image where
// /data is a symlink to /etc (made with ln -s and container commit), a
// volume or a bind at /data lands on the container's /etc, never the
// host's; a volume named ../x is refused before anything is made.
func TestComposeVolumeTargetsMustStayInsideTheContainer(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("container", "run", "--name", "mkimg", "busybox", "sh", "-c", "ln -s /etc /data")
	r.Must("container", "commit", "mkimg", "symlinky:latest")
	r.Must("container", "rm", "mkimg")
	t.Cleanup(func() { r.Run("image", "rm", "symlinky:latest") })
	var b [6]byte
	rand.Read(b[:])
	marker := "berth-attack-" + hex.EncodeToString(b[:])
	run, dir := project(t, r, "attack", map[string]string{
		"host/.keep": "",
		"compose.yaml": `
services:
  vol:
    image: symlinky
    command: ["sh", "-c", "echo vol > /data/` + marker + ` && exec sleep 300"]
    stop_signal: SIGKILL
    volumes: ["data:/data"]
  bind:
    image: symlinky
    command: ["sh", "-c", "echo bind > /data/` + marker + ` && exec sleep 300"]
    stop_signal: SIGKILL
    volumes: ["./host:/data"]
volumes:
  data: {}
`})
	t.Cleanup(func() { os.Remove(filepath.Join("/etc", marker)) })
	must(t, run("up", "-d"), "up")
	testutil.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(dir, "host", marker))
		_, err2 := os.Stat(filepath.Join(volumeData(r, "attack_data"), marker))
		return err == nil && err2 == nil
	}, 5*time.Second, "both services' markers")
	if _, err := os.Stat(filepath.Join("/etc", marker)); !os.IsNotExist(err) {
		t.Fatalf("a write through the image's /data → /etc reached the host's /etc: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(volumeData(r, "attack_data"), marker)); err != nil || string(b) != "vol\n" {
		t.Errorf("the volume holds %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(volumeData(r, "attack_data"), "passwd")); err != nil {
		t.Errorf("copy-up through /data → /etc did not copy the container's /etc: %v", err)
	}
	if got := strings.TrimSpace(must(t, run("exec", "vol", "cat", "/etc/"+marker), "the container's /etc")); got != "vol" {
		t.Errorf("the container's /etc/%s: %q", marker, got)
	}
	must(t, run("down", "-t", "0"), "down")

	run2, _ := project(t, r, "badname", map[string]string{"compose.yaml": `
services:
  app:
    image: busybox
    volumes: ["evil:/x"]
volumes:
  evil: {external: true, name: "../x"}
`})
	res := run2("up", "-d")
	if res.Code == 0 || !strings.Contains(res.Stderr, `"../x"`) {
		t.Errorf("a volume named ../x: exit %d, %s", res.Code, res.Stderr)
	}
	if out := run2("ps", "-a", "-q").Stdout; strings.TrimSpace(out) != "" {
		t.Errorf("containers left: %s", out)
	}
	if _, err := os.Stat(filepath.Join(r.Path, "x")); !os.IsNotExist(err) {
		t.Errorf("something was made at ../x: %v", err)
	}
	run3, _ := project(t, r, "badname2", map[string]string{"compose.yaml": `
services:
  app:
    image: busybox
    volumes: ["evil:/x"]
volumes:
  evil: {name: "../x"}
`})
	if res := run3("up", "-d"); res.Code == 0 || !strings.Contains(res.Stderr, "../x") {
		t.Errorf("a project volume named ../x: exit %d, %s", res.Code, res.Stderr)
	}
}

// copyTree copies the regular files and dirs of src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFigLegacyMustRunUnmodified: examples/fig-legacy/fig.yml, copied as
// it is, comes up with up -d: web serves /srv/www from its bind on the
// loopback port and sees /data from the data-only container (which ran
// and exited), where db wrote too.
func TestFigLegacyMustRunUnmodified(t *testing.T) {
	r := testutil.NewRoot(t)
	dir := t.TempDir()
	copyTree(t, "fig-legacy", dir)
	run := func(args ...string) testutil.Result {
		t.Helper()
		return r.Run(append([]string{"--project-directory", dir, "-p", "figlegacy"}, args...)...)
	}
	t.Cleanup(func() { run("down", "-v", "-t", "0") })
	must(t, run("up", "-d"), "up")
	want, err := os.ReadFile(filepath.Join(dir, "www", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	var body string
	testutil.Eventually(t, func() bool {
		resp, err := http.Get("http://127.0.0.1:8081/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	}, 5*time.Second, "web answering on 127.0.0.1:8081")
	if body != string(want) {
		t.Errorf("web serves %q, want %q", body, want)
	}
	if e := psAll(t, run)["figlegacy-data-1"]; e.State != "exited" || e.ExitCode != 0 {
		t.Errorf("data: %+v", e)
	}
	testutil.Eventually(t, func() bool { return run("exec", "web", "test", "-d", "/data/db").Code == 0 }, 5*time.Second,
		"web seeing /data/db, made by db in data's volume")
	must(t, run("exec", "web", "sh", "-c", "echo from-web > /data/web"), "web writes /data")
	if res := run("exec", "web", "sh", "-c", "echo x > /srv/www/x"); res.Code == 0 {
		t.Error("web wrote into its :ro bind")
	}
	anon := volumeNames(t, r, "label=dev.berth.anonymous-for=figlegacy-data-1:/data")
	if len(anon) != 1 {
		t.Fatalf("data's volume: %v", anon)
	}
	if b, err := os.ReadFile(filepath.Join(volumeData(r, anon[0]), "web")); err != nil || string(b) != "from-web\n" {
		t.Errorf("data's volume holds %q, %v", b, err)
	}
}
