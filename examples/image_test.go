package examples

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/testutil"
)

// TestImageSaveLoadMustKeepID: an imported image saved and loaded into a
// second state root must keep its ID and name.
func TestImageSaveLoadMustKeepID(t *testing.T) {
	tarball := testutil.BusyboxTar(t)
	rootA := []string{"BERTH_ROOT=" + filepath.Join(t.TempDir(), "a")}
	rootB := []string{"BERTH_ROOT=" + filepath.Join(t.TempDir(), "b")}
	r := berth(t, ".", rootA, "image", "import", tarball, "busybox:latest", "--change", `CMD ["sh"]`)
	if r.code != 0 {
		t.Fatalf("import: %s", r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	r = berth(t, ".", rootA, "image", "ls", "--format", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"Repository":"busybox"`) || !strings.Contains(r.stdout, id[7:19]) {
		t.Fatalf("ls: %s %s", r.stdout, r.stderr)
	}
	archive := filepath.Join(t.TempDir(), "bb.tar")
	if r = berth(t, ".", rootA, "image", "save", "-o", archive, "busybox"); r.code != 0 {
		t.Fatalf("save: %s", r.stderr)
	}
	if r = berth(t, ".", rootB, "image", "load", "-i", archive); r.code != 0 || r.stdout != "Loaded image: busybox:latest\n" {
		t.Fatalf("load: %q %s", r.stdout, r.stderr)
	}
	if r = berth(t, ".", rootB, "image", "inspect", "busybox"); r.code != 0 || !strings.Contains(r.stdout, `"Id": "`+id+`"`) {
		t.Fatalf("inspect in the second root:\n%s%s", r.stdout, r.stderr)
	}
}

// TestImageRemoveMustLeaveNothing: after rm and prune the blob and
// snapshot directories are empty and nothing is mounted.
func TestImageRemoveMustLeaveNothing(t *testing.T) {
	tarball := testutil.BusyboxTar(t)
	root := filepath.Join(t.TempDir(), "root")
	env := []string{"BERTH_ROOT=" + root}
	if r := berth(t, ".", env, "image", "import", tarball, "busybox:latest"); r.code != 0 {
		t.Fatalf("import: %s", r.stderr)
	}
	// The same tarball with other changes is another image sharing the layer.
	if r := berth(t, ".", env, "image", "import", "--change", "ENV X=1", tarball, "other:1"); r.code != 0 {
		t.Fatalf("import: %s", r.stderr)
	}
	berth(t, ".", env, "image", "tag", "other:1", "other:2")
	if r := berth(t, ".", env, "image", "rm", "busybox"); r.code != 0 || !strings.HasPrefix(r.stdout, "Deleted: sha256:") {
		t.Fatalf("rm: %q %s", r.stdout, r.stderr)
	}
	if r := berth(t, ".", env, "image", "rm", "other:2"); r.code != 0 || r.stdout != "Untagged: other:2\n" {
		t.Fatalf("rm a second tag: %q %s", r.stdout, r.stderr)
	}
	if r := berth(t, ".", env, "image", "prune"); r.code != 2 {
		t.Fatalf("prune without -f must refuse (exit 2), got %d", r.code)
	}
	if r := berth(t, ".", env, "system", "prune", "-a", "-f"); r.code != 0 {
		t.Fatalf("system prune: %s", r.stderr)
	}
	blobs, _ := os.ReadDir(filepath.Join(root, "content", "blobs", "sha256"))
	snaps, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	for _, e := range snaps {
		if e.IsDir() {
			t.Errorf("snapshot dir left: %s", e.Name())
		}
	}
	if len(blobs) != 0 {
		t.Errorf("%d blobs left", len(blobs))
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), root) {
		t.Error("something under the root is still mounted")
	}
	if r := berth(t, ".", env, "image", "rm", "busybox"); r.code != 1 || !strings.Contains(r.stderr, "no such image: busybox") {
		t.Fatalf("rm of a missing image: %d %s", r.code, r.stderr)
	}
	if r := berth(t, ".", env, "image", "import", "/nonexistent.tar", "x"); r.code == 0 {
		t.Fatal("import of a missing file succeeded")
	}
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("not a tarball at all, just text that is long enough to not look like EOF..........................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................."), 0o644)
	if r := berth(t, ".", env, "image", "import", junk, "x"); r.code != 2 || !strings.Contains(r.stderr, "not a tar archive") {
		t.Fatalf("import of junk: %d %s", r.code, r.stderr)
	}
}
