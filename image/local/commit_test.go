package local

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
)

func snapshotKeys(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	if err := s.Snapshots().Walk(context.Background(), func(_ context.Context, in image.SnapshotInfo) error {
		keys[in.Key] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestCommitLayer: the committed image is the parent's layers plus one,
// its config the parent's with the changes and one more history entry;
// unpacking it reuses the parent's snapshots and adds exactly one.
func TestCommitLayer(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	parent, err := s.Import(ctx, bytes.NewReader(tarball(t, rootfs...)), "busybox", []string{`CMD ["sh"]`, "ENV A=1", "LABEL keep=yes"})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotKeys(t, s)
	layer := tarball(t, ent{"srv/", ""}, ent{"srv/app", "hello"})
	stamp := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	o := CommitOptions{
		Changes:   []string{`CMD ["/srv/app"]`, "ENV B=2", "LABEL version=2", "EXPOSE 8080", "WORKDIR /srv", "USER nobody", "VOLUME /data"},
		Author:    "Ada <ada@example.com>",
		Comment:   "added the app",
		CreatedBy: "sh -c make install",
		Created:   stamp,
	}
	img, err := s.CommitLayer(ctx, parent, bytes.NewReader(layer), "app:v2", o)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Refs) != 1 || img.Refs[0] != "docker.io/library/app:v2" {
		t.Errorf("refs = %v", img.Refs)
	}
	diffIDs := img.Config.RootFS.DiffIDs
	if len(diffIDs) != 2 || diffIDs[0] != parent.Config.RootFS.DiffIDs[0] || diffIDs[1] != digest.FromBytes(layer) {
		t.Errorf("diff IDs = %v, want the parent's + %s", diffIDs, digest.FromBytes(layer))
	}
	if len(img.Manifest.Layers) != 2 || img.Manifest.Layers[1].Digest != digest.FromBytes(layer) ||
		img.Manifest.Layers[1].MediaType != ocispec.MediaTypeImageLayer || img.Manifest.Layers[1].Size != int64(len(layer)) {
		t.Errorf("manifest layers = %+v", img.Manifest.Layers)
	}
	c := img.Config.Config
	if strings.Join(c.Cmd, " ") != "/srv/app" || strings.Join(c.Env, " ") != "A=1 B=2" || c.WorkingDir != "/srv" ||
		c.User != "nobody" || c.Labels["keep"] != "yes" || c.Labels["version"] != "2" {
		t.Errorf("config = %+v", c)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports = %v", c.ExposedPorts)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("volumes = %v", c.Volumes)
	}
	h := img.Config.History
	if len(h) != len(parent.Config.History)+1 {
		t.Fatalf("history = %+v", h)
	}
	last := h[len(h)-1]
	if last.CreatedBy != o.CreatedBy || last.Author != o.Author || last.Comment != o.Comment || !last.Created.Equal(stamp) || last.EmptyLayer {
		t.Errorf("history entry = %+v", last)
	}
	if img.Config.Author != o.Author || !img.Created.Equal(stamp) {
		t.Errorf("author %q created %v", img.Config.Author, img.Created)
	}
	// The parent is untouched.
	if got, _ := s.Get(ctx, "busybox"); strings.Join(got.Config.Config.Cmd, " ") != "sh" || len(got.Config.RootFS.DiffIDs) != 1 {
		t.Errorf("parent changed: %+v", got.Config)
	}

	after := snapshotKeys(t, s)
	chain := ChainIDs(diffIDs)
	for k := range before {
		if !after[k] {
			t.Errorf("parent snapshot %s gone", k)
		}
	}
	if len(after) != len(before)+1 || !after[chain[0].String()] || !after[chain[1].String()] {
		t.Errorf("snapshots before %v, after %v; want the parent's plus %s", before, after, chain[1])
	}
	top, err := s.Unpack(ctx, img)
	if err != nil || top != chain[1].String() {
		t.Fatalf("unpack: %s %v", top, err)
	}
	dir, err := s.Overlay().FSDir(ctx, top)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "srv", "app")); err != nil || string(b) != "hello" {
		t.Errorf("the new layer's snapshot holds %q (%v)", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc", "passwd")); err == nil {
		t.Error("the new layer's snapshot holds the parent's files: it must hold its diff only")
	}

	// Same layer, same options: same image (commits are reproducible).
	again, err := s.CommitLayer(ctx, parent, bytes.NewReader(layer), "", o)
	if err != nil || again.ID != img.ID {
		t.Errorf("recommit: %s vs %s (%v)", again.ID, img.ID, err)
	}
	// A commit on the commit: three layers, two snapshots shared.
	o2 := CommitOptions{Config: &ocispec.ImageConfig{Cmd: []string{"true"}}, Changes: []string{"ENV C=3"}}
	third, err := s.CommitLayer(ctx, img, bytes.NewReader(tarball(t, ent{"x", "x"})), "app:v3", o2)
	if err != nil {
		t.Fatal(err)
	}
	if len(third.Config.RootFS.DiffIDs) != 3 || strings.Join(third.Config.Config.Env, " ") != "C=3" ||
		strings.Join(third.Config.Config.Cmd, " ") != "true" || third.Config.Config.WorkingDir != "" {
		t.Errorf("third image: %+v", third.Config)
	}
	if n := len(snapshotKeys(t, s)); n != len(after)+1 {
		t.Errorf("%d snapshots after the third image, want %d", n, len(after)+1)
	}
}

// TestCommitLayerRefusesBadInput: a bad change or a stream that is not a
// tar is ErrInvalid and leaves no image behind.
func TestCommitLayerRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	parent, err := s.Import(ctx, bytes.NewReader(tarball(t, rootfs...)), "busybox", nil)
	if err != nil {
		t.Fatal(err)
	}
	layer := tarball(t, ent{"a", "a"})
	if _, err := s.CommitLayer(ctx, parent, bytes.NewReader(layer), "x", CommitOptions{Changes: []string{"FROM scratch"}}); !errdefs.IsInvalid(err) {
		t.Errorf("bad change: %v", err)
	}
	if _, err := s.CommitLayer(ctx, parent, bytes.NewReader(layer), "Bad Ref", CommitOptions{}); !errdefs.IsInvalid(err) {
		t.Errorf("bad ref: %v", err)
	}
	junk := bytes.Repeat([]byte("not a tar "), 100)
	if _, err := s.CommitLayer(ctx, parent, bytes.NewReader(junk), "x", CommitOptions{}); !errdefs.IsInvalid(err) {
		t.Errorf("junk layer: %v", err)
	}
	if _, err := s.content.Size(ctx, digest.FromBytes(junk)); !errdefs.IsNotFound(err) {
		t.Errorf("the junk blob is kept: %v", err)
	}
	// A failed commit must not delete a blob an image uses.
	if _, err := s.CommitLayer(ctx, parent, bytes.NewReader(tarball(t, rootfs...)), "x", CommitOptions{Changes: []string{"BAD"}}); !errdefs.IsInvalid(err) {
		t.Errorf("bad change: %v", err)
	}
	imgs, _ := s.List(ctx)
	if len(imgs) != 1 {
		t.Errorf("%d images after failed commits, want 1", len(imgs))
	}
	if _, err := s.Unpack(ctx, parent); err != nil {
		t.Errorf("parent broken: %v", err)
	}
}
