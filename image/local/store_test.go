package local

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/internal/testutil"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	r, err := state.Open(filepath.Join(testutil.TempRoot(t), "root"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type ent struct{ name, body string }

func tarball(t *testing.T, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o755, ModTime: time.Unix(946684800, 0)}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size, h.Mode = tar.TypeReg, int64(len(e.body)), 0o644
		}
		tw.WriteHeader(h)
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

var rootfs = []ent{{"bin/", ""}, {"bin/sh", "#!fake"}, {"etc/", ""}, {"etc/passwd", "root:x:0:0::/root:/bin/sh\n"}}

func TestImportTagGetRemove(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	img, err := s.Import(ctx, bytes.NewReader(tarball(t, rootfs...)), "busybox", []string{`CMD ["sh"]`, "ENV A=1", "WORKDIR /srv"})
	if err != nil {
		t.Fatal(err)
	}
	if img.Refs[0] != "docker.io/library/busybox:latest" || strings.Join(img.Config.Config.Cmd, " ") != "sh" || img.Config.Config.WorkingDir != "/srv" {
		t.Fatalf("image: %+v", img)
	}
	if !img.Created.Equal(time.Unix(946684800, 0)) {
		t.Errorf("created = %v, want the tarball's newest mtime", img.Created)
	}
	again, err := s.Import(ctx, bytes.NewReader(tarball(t, rootfs...)), "busybox:latest", []string{`CMD ["sh"]`, "ENV A=1", "WORKDIR /srv"})
	if err != nil || again.ID != img.ID {
		t.Fatalf("same tarball, same changes: ID %s vs %s (%v)", again.ID, img.ID, err)
	}
	for _, ref := range []string{"busybox", "busybox:latest", "docker.io/library/busybox", img.ID.String(), img.ID.Encoded()[:12]} {
		if got, err := s.Get(ctx, ref); err != nil || got.ID != img.ID {
			t.Errorf("Get(%q): %v", ref, err)
		}
	}
	if _, err := s.Get(ctx, "nope"); !errdefs.IsNotFound(err) {
		t.Errorf("missing image: %v", err)
	}
	if err := s.Tag(ctx, "busybox", "registry.local:5000/team/bb:1"); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, "registry.local:5000/team/bb:1")
	if len(got.Refs) != 2 {
		t.Fatalf("refs after tag: %v", got.Refs)
	}
	// Removing one of two names only untags.
	if err := s.Remove(ctx, "registry.local:5000/team/bb:1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "busybox"); err != nil {
		t.Fatalf("untag removed the image: %v", err)
	}
	// In use: refused, naming the container; forced: removed.
	s.InUse = func(context.Context, digest.Digest) ([]string, error) { return []string{"demo-web-1"}, nil }
	if err := s.Remove(ctx, "busybox", false); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "demo-web-1") {
		t.Fatalf("in use: %v", err)
	}
	if err := s.Remove(ctx, "busybox", true); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, s)
}

// assertEmpty: no blob and no snapshot directory is left.
func assertEmpty(t *testing.T, s *Store) {
	t.Helper()
	blobs, _ := os.ReadDir(filepath.Join(s.root.Path, "content", "blobs", "sha256"))
	if len(blobs) != 0 {
		t.Errorf("%d blobs left", len(blobs))
	}
	snaps, _ := os.ReadDir(filepath.Join(s.root.Path, "snapshots"))
	for _, e := range snaps {
		if e.IsDir() {
			t.Errorf("snapshot dir left: %s", e.Name())
		}
	}
}

// A saved image loads into another root with the same ID and names.
func TestSaveLoadKeepsID(t *testing.T) {
	ctx := context.Background()
	a, b := openStore(t), openStore(t)
	img, err := a.Import(ctx, bytes.NewReader(tarball(t, rootfs...)), "busybox:latest", []string{`CMD ["sh"]`})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.Save(ctx, &buf, []string{"busybox"}); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	a.Save(ctx, &again, []string{"busybox"})
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two saves of the same image differ")
	}
	// The archive has both layouts.
	names := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		names[h.Name] = true
	}
	for _, n := range []string{"manifest.json", "index.json", "oci-layout", "blobs/sha256/" + img.ID.Encoded()} {
		if !names[n] {
			t.Errorf("archive lacks %s", n)
		}
	}
	loaded, err := b.Load(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].ID != img.ID || strings.Join(loaded[0].Refs, ",") != "docker.io/library/busybox:latest" {
		t.Fatalf("loaded %+v", loaded)
	}
	if _, err := b.Snapshots().Stat(ctx, img.Config.RootFS.DiffIDs[0].String()); err != nil {
		t.Fatalf("loaded image not unpacked: %v", err)
	}
	// A tampered archive is refused and leaves nothing behind.
	c := openStore(t)
	bad := bytes.Replace(buf.Bytes(), []byte("root:x:0:0"), []byte("root:x:0:1"), 1)
	if _, err := c.Load(ctx, bytes.NewReader(bad)); !errdefs.IsInvalid(err) {
		t.Fatalf("tampered archive: %v", err)
	}
	if imgs, _ := c.List(ctx); len(imgs) != 0 {
		t.Fatal("tampered archive left an image")
	}
}

// dockerArchive builds a docker-save tarball of images made of layers.
func dockerArchive(t *testing.T, images map[string][][]byte, mutate ...func(*ocispec.Image)) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(b []byte) string {
		sum := sha256.Sum256(b)
		name := "blobs/sha256/" + hex.EncodeToString(sum[:])
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o444, Size: int64(len(b))})
		tw.Write(b)
		return name
	}
	var manifest []dockerManifest
	for ref, layers := range images {
		var cfg ocispec.Image
		cfg.OS, cfg.Architecture = "linux", "amd64"
		cfg.RootFS.Type = "layers"
		var paths []string
		for _, l := range layers {
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
			paths = append(paths, put(l))
		}
		for _, m := range mutate {
			m(&cfg)
		}
		cb, _ := json.Marshal(cfg)
		manifest = append(manifest, dockerManifest{Config: put(cb), RepoTags: []string{ref}, Layers: paths})
	}
	mb, _ := json.Marshal(manifest)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(mb))})
	tw.Write(mb)
	tw.Close()
	return buf.Bytes()
}

// Layers are unpacked once per chain ID and shared between images.
func TestLayersSharedByChainID(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	l1 := tarball(t, rootfs...)
	l2 := tarball(t, ent{"etc/", ""}, ent{"etc/.wh.passwd", ""}, ent{"srv/", ""}, ent{"srv/a", "a"})
	l3 := tarball(t, ent{"srv/b", "b"})
	l4 := tarball(t, ent{"srv/c", "c"})
	if _, err := s.Load(ctx, bytes.NewReader(dockerArchive(t, map[string][][]byte{"app:1": {l1, l2, l3}}))); err != nil {
		t.Fatal(err)
	}
	countDirs := func() int {
		n := 0
		entries, _ := os.ReadDir(filepath.Join(s.root.Path, "snapshots"))
		for _, e := range entries {
			if e.IsDir() {
				n++
			}
		}
		return n
	}
	if n := countDirs(); n != 3 {
		t.Fatalf("%d snapshot dirs for 3 layers", n)
	}
	img2, err := s.Load(ctx, bytes.NewReader(dockerArchive(t, map[string][][]byte{"app:2": {l1, l2, l4}})))
	if err != nil {
		t.Fatal(err)
	}
	if n := countDirs(); n != 4 {
		t.Fatalf("%d snapshot dirs after a second image sharing 2 layers, want 4", n)
	}
	chain := ChainIDs(img2[0].Config.RootFS.DiffIDs)
	m, err := s.Snapshots().View(ctx, "view", chain[2].String())
	if err != nil || m[0].Type != "overlay" || len(m[0].Lower) != 3 {
		t.Fatalf("view of app:2: %+v %v", m, err)
	}
	s.Snapshots().Remove(ctx, "view")
	// Whiteout landed as an overlay whiteout in layer 2's own dir.
	dir2, _ := s.Overlay().FSDir(ctx, chain[1].String())
	if fi, err := os.Lstat(filepath.Join(dir2, "etc", "passwd")); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("layer 2 whiteout: %v %v", fi, err)
	}
	// A layer whose content does not match the config's diff ID is refused.
	bad := dockerArchive(t, map[string][][]byte{"bad:1": {l1}}, func(c *ocispec.Image) { c.RootFS.DiffIDs[0] = digest.FromBytes(l3) })
	c := openStore(t)
	if _, err := c.Load(ctx, bytes.NewReader(bad)); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "but the config says") {
		t.Fatalf("diff ID mismatch: %v", err)
	}
	// Pruning everything leaves nothing.
	pruned, err := s.Prune(ctx, true)
	if err != nil || len(pruned) != 2 {
		t.Fatalf("prune: %v %v", pruned, err)
	}
	assertEmpty(t, s)
}

// An OCI image layout archive (no manifest.json, as podman save --format
// oci-archive writes) loads too, with the same ID.
func TestLoadOCILayout(t *testing.T) {
	ctx := context.Background()
	a, b := openStore(t), openStore(t)
	img, err := a.Import(ctx, bytes.NewReader(tarball(t, rootfs...)), "example.com/team/app:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.Save(ctx, &buf, []string{"example.com/team/app:v1"}); err != nil {
		t.Fatal(err)
	}
	var oci bytes.Buffer
	tr, tw := tar.NewReader(&buf), tar.NewWriter(&oci)
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		if h.Name == "manifest.json" {
			continue
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	tw.Close()
	loaded, err := b.Load(ctx, &oci)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].ID != img.ID || loaded[0].Refs[0] != "example.com/team/app:v1" {
		t.Fatalf("loaded %+v", loaded)
	}
}

// A layer staged before its image is recorded (a pull extracts layers as
// they arrive) joins the chain without a second extraction; a staged
// layer no image takes is collected.
func TestStagedLayersJoinTheirChain(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	l1, l2 := tarball(t, rootfs...), tarball(t, ent{"srv/", ""}, ent{"srv/a", "a"})
	descs := make([]ocispec.Descriptor, 2)
	diffs := make([]digest.Digest, 2)
	for i, l := range [][]byte{l1, l2} {
		d, n, err := s.PutLayer(ctx, bytes.NewReader(l))
		if err != nil || n == 0 {
			t.Fatal(err)
		}
		descs[i], diffs[i] = d, d.Digest
	}
	if err := s.Stage(ctx, descs[1], diffs[1]); err != nil {
		t.Fatal(err)
	}
	dir, _ := s.Overlay().FSDir(ctx, stagedKey(diffs[1]))
	cb, _ := json.Marshal(ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffs}})
	img, err := s.CommitConfig(ctx, cb, descs, "staged:1", false)
	if err != nil {
		t.Fatal(err)
	}
	chain := ChainIDs(img.Config.RootFS.DiffIDs)
	if got, _ := s.Overlay().FSDir(ctx, chain[1].String()); got != dir {
		t.Errorf("layer 2 was extracted again (%s) instead of taking the staged %s", got, dir)
	}
	if s.Overlay().Exists(stagedKey(diffs[1])) {
		t.Error("the staged layer is still there after joining its chain")
	}
	if st, err := s.Snapshots().Stat(ctx, chain[1].String()); err != nil || st.Parent != chain[0].String() {
		t.Errorf("layer 2's parent: %+v %v", st, err)
	}
	other, _, _ := s.PutLayer(ctx, bytes.NewReader(tarball(t, ent{"x", "x"})))
	if err := s.Stage(ctx, other, other.Digest); err != nil {
		t.Fatal(err)
	}
	if err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Overlay().Exists(stagedKey(other.Digest)) {
		t.Error("GC kept a staged layer no image uses")
	}
}
