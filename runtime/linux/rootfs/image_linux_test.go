package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/image"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/internal/testutil"
)

// loadImage builds a docker-save archive of one image with the given
// layers, loads it into a fresh store and returns store and image.
func loadImage(t *testing.T, layers [][]tarEntry) (*local.Store, image.Image) {
	t.Helper()
	s := newStore(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(b []byte) string {
		sum := sha256.Sum256(b)
		name := "blobs/sha256/" + hex.EncodeToString(sum[:])
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o444, Size: int64(len(b)), ModTime: time.Unix(1, 0)})
		tw.Write(b)
		return name
	}
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, RootFS: ocispec.RootFS{Type: "layers"}}
	var paths []string
	for _, l := range layers {
		var lb bytes.Buffer
		lb.ReadFrom(tarOf(t, l...))
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(lb.Bytes()))
		paths = append(paths, put(lb.Bytes()))
	}
	cb, _ := json.Marshal(cfg)
	mb, _ := json.Marshal([]map[string]any{{"Config": put(cb), "RepoTags": []string{"test:1"}, "Layers": paths}})
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(mb)), ModTime: time.Unix(1, 0)})
	tw.Write(mb)
	tw.Close()
	imgs, err := s.Load(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	return s, imgs[0]
}

// mountContainer prepares a container snapshot on the image and mounts it
// the way the runtime will; cleanup unmounts and removes the snapshot.
func mountContainer(t *testing.T, s *local.Store, img image.Image, readOnly bool) string {
	t.Helper()
	ctx := context.Background()
	o := prepareContainer(t, s, img, "container-test")
	o.ReadOnly = readOnly
	target := filepath.Join(t.TempDir(), "rootfs")
	os.Mkdir(target, 0o755)
	if err := MountOverlay(o, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Unmount(target); err != nil {
			t.Error(err)
		}
		if err := s.Snapshots().Remove(ctx, "container-test"); err != nil {
			t.Error(err)
		}
		if mp := mountpoints(t, filepath.Dir(target)); len(mp) != 0 {
			t.Errorf("left mounted: %v", mp)
		}
	})
	return target
}

// A 3-layer image (layer 2 deletes a file of layer 1 and makes a directory
// opaque) must mount as a container root with exactly the expected tree.
func TestImageThreeLayersContainerRoot(t *testing.T) {
	testutil.RequireRoot(t)
	s, img := loadImage(t, [][]tarEntry{
		{{name: "etc", dir: true}, {name: "etc/hosts", body: "1"}, {name: "etc/keep", body: "1"},
			{name: "var", dir: true}, {name: "var/old", body: "1"}, {name: "var/sub", dir: true}, {name: "var/sub/x", body: "1"}},
		{{name: "etc", dir: true}, {name: "etc/.wh.hosts"}, {name: "var", dir: true}, {name: "var/.wh..wh..opq"}, {name: "var/new", body: "2"}},
		{{name: "etc/keep", body: "3"}, {name: "bin", dir: true}, {name: "bin/sh", body: "3"}},
	})
	root := mountContainer(t, s, img, false)
	want := "bin/ bin/sh=3 etc/ etc/keep=3 var/ var/new=2"
	if got := strings.Join(tree(t, root), " "); got != want {
		t.Fatalf("tree %q, want %q", got, want)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "written"), []byte("w"), 0o644); err != nil {
		t.Fatalf("container root not writable: %v", err)
	}
}

// A 120-layer image mounts read-only and unmounts, leaving nothing.
func TestImage120LayersContainerRoot(t *testing.T) {
	testutil.RequireRoot(t)
	var layers [][]tarEntry
	for i := 0; i < 120; i++ {
		layers = append(layers, []tarEntry{{name: fmt.Sprintf("layer-%03d", i), body: "x"}, {name: "top", body: fmt.Sprint(i)}})
	}
	s, img := loadImage(t, layers)
	root := mountContainer(t, s, img, true)
	entries, _ := os.ReadDir(root)
	top, _ := os.ReadFile(filepath.Join(root, "top"))
	if len(entries) != 121 || string(top) != "119" {
		t.Fatalf("%d entries, top %q", len(entries), top)
	}
	if err := os.WriteFile(filepath.Join(root, "w"), nil, 0o644); err == nil {
		t.Fatal("read_only root is writable")
	}
}

// newStore opens an image store in a fresh state root.
func newStore(t *testing.T) *local.Store {
	t.Helper()
	r, err := state.Open(filepath.Join(testutil.TempRoot(t), "root"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := local.Open(r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// prepareContainer unpacks img and prepares a writable container snapshot
// on it, returned as the overlay the runtime mounts.
func prepareContainer(t *testing.T, s *local.Store, img image.Image, key string) Overlay {
	t.Helper()
	ctx := context.Background()
	chainID, err := s.Unpack(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := s.Snapshots().Prepare(ctx, key, chainID)
	if err != nil {
		t.Fatal(err)
	}
	m := mounts[0]
	if m.Type != "overlay" {
		t.Fatalf("container mount type %q", m.Type)
	}
	return Overlay{Lower: m.Lower, Upper: m.Upper, Work: m.Work}
}
