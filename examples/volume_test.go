package examples

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// TestVolumeLifecycle: a named volume is filled from the image on first
// use (copy-up), shared between containers, mounted read-only on request,
// refused removal while a container uses it, removed afterwards, and
// leaves no mount behind.
func TestVolumeLifecycle(t *testing.T) {
	r := testutil.NewRoot(t)
	if got := strings.TrimSpace(r.Must("volume", "create", "data")); got != "data" {
		t.Fatalf("volume create printed %q", got)
	}
	var vols []struct {
		Name, Driver, Mountpoint, Scope, CreatedAt string
		Labels, Options                            map[string]string
	}
	if err := json.Unmarshal([]byte(r.Must("volume", "inspect", "data")), &vols); err != nil || len(vols) != 1 {
		t.Fatalf("inspect: %v %v", vols, err)
	}
	mp := vols[0].Mountpoint
	if want := filepath.Join(r.Path, "volumes", "data", "_data"); mp != want || vols[0].Driver != "local" || vols[0].Scope != "local" || vols[0].CreatedAt == "" {
		t.Fatalf("inspect: %+v, want mountpoint %s", vols[0], want)
	}

	// Copy-up: the image's /etc lands in the empty volume.
	passwd := r.Must("container", "run", "--rm", "-v", "data:/etc", "busybox", "cat", "/etc/passwd")
	if !strings.Contains(passwd, "root:x:0:0") {
		t.Fatalf("the container's /etc/passwd is %q, want the image's", passwd)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "passwd")); err != nil || string(b) != passwd {
		t.Fatalf("the volume's passwd: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(r.Path, "volumes", "data", ".initialized")); err != nil {
		t.Errorf("no .initialized marker: %v", err)
	}
	// The generated /etc files still reach a container with /etc a volume.
	if host := r.Must("container", "run", "--rm", "--hostname", "volhost", "-v", "data:/etc", "busybox", "cat", "/etc/hostname"); strings.TrimSpace(host) != "volhost" {
		t.Errorf("/etc/hostname over the /etc volume reads %q", host)
	}

	// Shared: a second container reads what the first wrote; ro refuses writes.
	r.Must("container", "run", "--rm", "-v", "data:/x", "busybox", "sh", "-c", "echo from-first > /x/note")
	if got := r.Must("container", "run", "--rm", "-v", "data:/y:ro", "busybox", "cat", "/y/note"); got != "from-first\n" {
		t.Errorf("second container read %q", got)
	}
	res := r.Run("container", "run", "--rm", "-v", "data:/x:ro", "busybox", "sh", "-c", "echo no > /x/note")
	if res.Code == 0 || !strings.Contains(res.Stderr+res.Stdout, "Read-only file system") {
		t.Errorf("write to a ro volume: exit %d, %s%s", res.Code, res.Stdout, res.Stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(mp, "note")); string(b) != "from-first\n" {
		t.Errorf("the ro mount let a write through: %q", b)
	}

	// In use: refused, naming the container; afterwards removed.
	r.Must("container", "run", "-d", "--name", "holder", "-v", "data:/x", "busybox", "sleep", "1000")
	res = r.Run("volume", "rm", "data")
	if res.Code == 0 || !strings.Contains(res.Stderr, "in use") || !strings.Contains(res.Stderr, "holder") {
		t.Errorf("volume rm in use: exit %d, %s", res.Code, res.Stderr)
	}
	if _, err := os.Stat(filepath.Join(mp, "note")); err != nil {
		t.Errorf("the refused rm lost data: %v", err)
	}
	if out := r.Must("volume", "ls", "-q"); out != "data\n" {
		t.Errorf("volume ls -q: %q", out)
	}
	if out := r.Must("volume", "ls", "--filter", "dangling=true", "-q"); out != "" {
		t.Errorf("dangling while held: %q", out)
	}
	r.Must("container", "rm", "-f", "holder")
	if got := strings.TrimSpace(r.Must("volume", "rm", "data")); got != "data" {
		t.Errorf("volume rm printed %q", got)
	}
	if _, err := os.Stat(filepath.Join(r.Path, "volumes", "data")); !os.IsNotExist(err) {
		t.Errorf("the volume dir is still there: %v", err)
	}
	if res := r.Run("volume", "inspect", "data"); res.Code == 0 || !strings.Contains(res.Stderr, "no such volume: data") {
		t.Errorf("inspect after rm: exit %d, %s", res.Code, res.Stderr)
	}
	if out := r.Must("volume", "ls", "-q"); out != "" {
		t.Errorf("volume ls after rm: %q", out)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), r.Path) {
		t.Errorf("mounts left under %s:\n%s", r.Path, b)
	}
}

// TestVolumeRunCreatesMissingAndNocopy: -v NAME:/PATH creates the volume;
// nocopy leaves it empty; names that are not volume names are refused.
func TestVolumeRunCreatesMissingAndNocopy(t *testing.T) {
	r := testutil.NewRoot(t)
	if got := r.Must("container", "run", "--rm", "-v", "empty:/etc:nocopy", "busybox", "sh", "-c", "ls /etc | grep -c passwd || true"); strings.TrimSpace(got) != "0" {
		t.Errorf("nocopy: /etc has passwd (%q)", got)
	}
	if out := r.Must("volume", "ls"); !strings.Contains(out, "empty") {
		t.Errorf("volume ls: %q", out)
	}
	mp := filepath.Join(r.Path, "volumes", "empty", "_data")
	if _, err := os.Stat(filepath.Join(mp, "passwd")); err == nil {
		t.Error("nocopy copied passwd")
	}
	for _, bad := range []string{"bad name:/x", ".hidden:/x", "ok:relative"} {
		if res := r.Run("container", "run", "--rm", "-v", bad, "busybox", "true"); res.Code != 2 {
			t.Errorf("-v %q: exit %d, %s", bad, res.Code, res.Stderr)
		}
	}
	r.Must("volume", "rm", "empty")
}

// TestVolumeCommands: labels, filters, json, anonymous names, prune.
func TestVolumeCommands(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("volume", "create", "--label", "tier=db", "--label", "keep", "db")
	r.Must("volume", "create", "plain")
	anon := strings.TrimSpace(r.Must("volume", "create"))
	if len(anon) != 64 {
		t.Fatalf("anonymous name %q", anon)
	}
	if out := r.Must("volume", "create", "--label", "tier=db", "--label", "keep", "db"); out != "db\n" {
		t.Errorf("idempotent create: %q", out)
	}
	if res := r.Run("volume", "create", "--label", "tier=web", "db"); res.Code == 0 || !strings.Contains(res.Stderr, "already exists") {
		t.Errorf("conflicting create: exit %d, %s", res.Code, res.Stderr)
	}
	if res := r.Run("volume", "create", "-d", "nfs", "x"); res.Code != 2 || !strings.Contains(res.Stderr, `"nfs"`) {
		t.Errorf("driver nfs: exit %d, %s", res.Code, res.Stderr)
	}
	if res := r.Run("volume", "create", "../x"); res.Code != 2 {
		t.Errorf("create ../x: exit %d, %s", res.Code, res.Stderr)
	}
	for filter, want := range map[string]string{"label=tier=db": "db\n", "label=keep": "db\n", "label=tier=web": ""} {
		if out := r.Must("volume", "ls", "-q", "--filter", filter); out != want {
			t.Errorf("--filter %s: %q, want %q", filter, out, want)
		}
	}
	var row map[string]string
	json.Unmarshal([]byte(strings.Split(r.Must("volume", "ls", "--format", "json", "--filter", "label=tier"), "\n")[0]), &row)
	if row["Name"] != "db" || row["Labels"] != "keep=,tier=db" || row["Driver"] != "local" {
		t.Errorf("ls json: %v", row)
	}
	dev := t.TempDir()
	os.WriteFile(filepath.Join(dev, "on-host"), []byte("host\n"), 0o644)
	r.Must("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", "device="+dev, "bound")
	if got := r.Must("container", "run", "--rm", "-v", "bound:/b", "busybox", "cat", "/b/on-host"); got != "host\n" {
		t.Errorf("bind volume: %q", got)
	}
	r.Must("volume", "create", "--opt", "type=tmpfs", "--opt", "o=size=1m", "scratch")
	if got := r.Must("container", "run", "--rm", "-v", "scratch:/s", "busybox", "sh", "-c", "awk '$2==\"/s\"{print $3}' /proc/mounts"); got != "tmpfs\n" {
		t.Errorf("tmpfs volume mounted as %q", got)
	}
	// prune: anonymous only; -a all unused.
	out := r.Must("volume", "prune", "-f")
	if !strings.Contains(out, anon) || strings.Contains(out, "plain") {
		t.Errorf("prune: %q", out)
	}
	r.Must("volume", "prune", "-a", "-f")
	if out := r.Must("volume", "ls", "-q"); out != "" {
		t.Errorf("after prune -a: %q", out)
	}
	if _, err := os.Stat(filepath.Join(dev, "on-host")); err != nil {
		t.Errorf("prune removed the bind device's content: %v", err)
	}
	if res := r.Run("volume", "rm", "nope"); res.Code == 0 {
		t.Error("rm of a missing volume succeeded")
	}
	r.Must("volume", "rm", "-f", "nope")
}

// TestVolumeRunAnonymousMustGoWithTheContainer: run -v /PATH makes an
// anonymous volume (so do --mount type=volume without source and an image
// VOLUME);
// --rm removes them with the container, rm keeps them, rm -v removes
// them, but never one another container still uses.
func TestVolumeRunAnonymousMustGoWithTheContainer(t *testing.T) {
	r := testutil.NewRoot(t)
	if got := r.Must("container", "run", "--rm", "-v", "/anon", "--mount", "type=volume,target=/m", "busybox", "sh", "-c", "echo x > /anon/f && echo y > /m/f && cat /anon/f /m/f"); got != "x\ny\n" {
		t.Errorf("run --rm: %q", got)
	}
	if out := r.Must("volume", "ls", "-q"); out != "" {
		t.Errorf("--rm left volumes: %q", out)
	}
	// An image VOLUME gets one too, filled from the image.
	r.Must("container", "run", "--name", "mkimg", "busybox", "sh", "-c", "mkdir /seeded && echo img > /seeded/f")
	r.Must("container", "commit", "-c", "VOLUME /seeded", "mkimg", "seeded:latest")
	r.Must("container", "rm", "mkimg")
	if got := r.Must("container", "run", "--rm", "seeded", "sh", "-c", "cat /seeded/f; awk '$2==\"/seeded\"' /proc/mounts | wc -l"); got != "img\n1\n" {
		t.Errorf("an image VOLUME: %q", got)
	}
	r.Must("image", "rm", "seeded")
	if out := r.Must("volume", "ls", "-q"); out != "" {
		t.Errorf("--rm left the image VOLUME's volume: %q", out)
	}
	r.Must("container", "run", "-d", "--name", "keep", "-v", "/anon", "busybox", "sleep", "300")
	vols := strings.Fields(r.Must("volume", "ls", "-q", "--filter", "label=dev.berth.anonymous-for=keep:/anon"))
	if len(vols) != 1 || len(vols[0]) != 64 {
		t.Fatalf("keep's anonymous volume: %v", vols)
	}
	r.Must("container", "run", "-d", "--name", "user", "--volumes-from", "keep:ro", "busybox", "sleep", "300")
	res := r.Run("container", "exec", "user", "sh", "-c", "echo no > /anon/f")
	if res.Code == 0 || !strings.Contains(res.Stderr+res.Stdout, "Read-only file system") {
		t.Errorf("--volumes-from keep:ro: exit %d %s%s", res.Code, res.Stdout, res.Stderr)
	}
	r.Must("container", "exec", "keep", "sh", "-c", "echo shared > /anon/f")
	if got := r.Must("container", "exec", "user", "cat", "/anon/f"); got != "shared\n" {
		t.Errorf("--volumes-from: user reads %q", got)
	}
	r.Must("container", "rm", "-f", "-v", "keep")
	if out := strings.Fields(r.Must("volume", "ls", "-q")); len(out) != 1 || out[0] != vols[0] {
		t.Errorf("rm -v removed a volume another container uses: %v", out)
	}
	r.Must("container", "rm", "-f", "user")
	if out := strings.Fields(r.Must("volume", "ls", "-q")); len(out) != 1 {
		t.Errorf("rm without -v: %v", out)
	}
	r.Must("container", "run", "-d", "--name", "again", "-v", vols[0]+":/anon", "busybox", "sleep", "300")
	r.Must("container", "rm", "-f", "-v", "again")
	if out := r.Must("volume", "ls", "-q"); out != "" {
		t.Errorf("rm -v left %q", out)
	}
}

// TestVolumeMountFlagMustMountEachType: --mount binds (read-only on
// request), volumes (created when missing, nocopy), tmpfs with size and
// mode; a missing bind source is refused, where -v creates it.
func TestVolumeMountFlagMustMountEachType(t *testing.T) {
	r := testutil.NewRoot(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("host\n"), 0o644)
	out := r.Must("container", "run", "--rm",
		"--mount", "type=bind,source="+dir+",target=/b,readonly",
		"--mount", "type=volume,src=mnt,dst=/etc,volume-nocopy",
		"--mount", "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770",
		"busybox", "sh", "-c", "cat /b/f; ls /etc/passwd 2>/dev/null | wc -l; stat -c %a /t; awk '$2==\"/t\"{print $4}' /proc/mounts; echo x > /b/x || echo refused")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || lines[0] != "host" || strings.TrimSpace(lines[1]) != "0" || lines[2] != "1770" || !strings.Contains(lines[3], "size=1024k") || lines[4] != "refused" {
		t.Errorf("--mount: %q", out)
	}
	if res := r.Run("container", "run", "--rm", "--mount", "type=bind,source="+filepath.Join(dir, "missing")+",target=/m", "busybox", "true"); res.Code == 0 || !strings.Contains(res.Stderr, "does not exist") {
		t.Errorf("--mount of a missing bind source: exit %d %s", res.Code, res.Stderr)
	}
	if res := r.Run("container", "run", "--rm", "--mount", "type=volume,target=/m,bogus=1", "busybox", "true"); res.Code != 2 {
		t.Errorf("--mount with an unknown key: exit %d %s", res.Code, res.Stderr)
	}
	made := filepath.Join(dir, "made", "by", "v")
	r.Must("container", "run", "--rm", "-v", made+":/v", "busybox", "true")
	if st, err := os.Stat(made); err != nil || !st.IsDir() {
		t.Errorf("-v did not create its host dir: %v", err)
	}
	if res := r.Run("container", "run", "--rm", "-v", "/a", "-v", dir+":/a", "busybox", "true"); res.Code != 2 || !strings.Contains(res.Stderr, "duplicate mount point") {
		t.Errorf("two mounts at /a: exit %d %s", res.Code, res.Stderr)
	}
	if out := r.Must("volume", "ls", "-q"); out != "mnt\n" {
		t.Errorf("volumes: %q", out)
	}
	r.Must("volume", "rm", "mnt")
}

// TestEmptyVolumeMustTakeTheImageDirsOwner: a named volume mounted over
// an empty image directory gets that directory's owner and mode (as
// Docker), so a service running as its own user can write its data dir.
func TestEmptyVolumeMustTakeTheImageDirsOwner(t *testing.T) {
	r := testutil.NewRoot(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN mkdir -m 700 /data && chown nobody:nogroup /data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Must("image", "build", "-q", "-t", "owned:1", dir)
	t.Cleanup(func() { r.Run("volume", "rm", "-f", "owned-data") })
	out := r.Must("container", "run", "--rm", "-v", "owned-data:/data", "owned:1", "stat", "-c", "%U:%G %a", "/data")
	if out != "nobody:nogroup 700\n" {
		t.Errorf("the empty volume at /data: %q, want the image dir's nobody:nogroup 700", out)
	}
}

// TestDetachedRmMustRemoveItsAnonymousVolumes: run -d --rm's shim removes
// the container; the next command that opens the volumes removes the
// anonymous volumes it had (issue 8's gap: they were left behind).
func TestDetachedRmMustRemoveItsAnonymousVolumes(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("volume", "create", "kept")
	t.Cleanup(func() { r.Run("volume", "rm", "-f", "kept") })
	r.Must("container", "run", "-d", "--rm", "-v", "/data", "-v", "kept:/kept", "busybox", "true")
	began := time.Now()
	for r.Must("container", "ps", "-aq") != "" {
		if time.Since(began) > 10*time.Second {
			t.Fatal("the --rm container was not removed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Until(began.Add(2500 * time.Millisecond)))
	if out := r.Must("volume", "ls", "-q"); out != "kept\n" {
		t.Errorf("volumes after the --rm container went: %q, want only the named one", out)
	}
}
