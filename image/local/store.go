// Package local is berth's image store: images in ROOT/images/index.json,
// blobs in image/content, layers unpacked once per chain ID by
// image/archive into image/overlay snapshots.
package local

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/image"
	"berth.dev/berth/image/archive"
	"berth.dev/berth/image/content"
	"berth.dev/berth/image/overlay"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
)

// record is one image in the index.
type record struct {
	Manifest digest.Digest `json:"manifest"`
	Refs     []string      `json:"refs,omitempty"`
	Added    time.Time     `json:"added"`
	// Intermediate marks the image of one Dockerfile step: the build
	// cache, hidden from image ls (unless -a) and from a dangling prune.
	Intermediate bool `json:"intermediate,omitempty"`
}

type index struct {
	Images map[digest.Digest]*record `json:"images"` // by image ID (config digest)
}

// UsageFunc reports the containers using an image (by ID); Remove refuses
// to remove an image in use unless forced. The runtime wires it in.
type UsageFunc func(ctx context.Context, id digest.Digest) ([]string, error)

// RetainFunc names blobs no image lists that GC must keep while the
// layer they were made from (their diff ID) is in use: the compressed
// copies a push made (registry's layer cache), blob → diff ID.
type RetainFunc func() (map[digest.Digest]digest.Digest, error)

// Store implements image.Store.
type Store struct {
	root    *state.Root
	dir     string
	content *content.Store
	snaps   *overlay.Snapshotter
	InUse   UsageFunc
	Retain  RetainFunc
}

var _ image.Store = (*Store)(nil)

// Open opens the image store of a state root.
func Open(root *state.Root) (*Store, error) {
	c, err := content.New(filepath.Join(root.Path, "content"))
	if err != nil {
		return nil, err
	}
	sn, err := overlay.New(filepath.Join(root.Path, "snapshots"))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root.Path, "images")
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return nil, err
	}
	return &Store{root: root, dir: dir, content: c, snaps: sn}, nil
}

// Content returns the blob store.
func (s *Store) Content() image.ContentStore { return s.content }

// Snapshots returns the snapshotter.
func (s *Store) Snapshots() image.Snapshotter { return s.snaps }

// Overlay is the concrete snapshotter (FSDir).
func (s *Store) Overlay() *overlay.Snapshotter { return s.snaps }

func (s *Store) indexPath() string { return filepath.Join(s.dir, "index.json") }

func (s *Store) load() (*index, error) {
	ix := &index{Images: map[digest.Digest]*record{}}
	if err := state.ReadJSON(s.indexPath(), ix); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	if ix.Images == nil {
		ix.Images = map[digest.Digest]*record{}
	}
	return ix, nil
}

// exclusive runs fn on the index with the global lock held exclusively:
// index writers and GC must not interleave.
func (s *Store) exclusive(ctx context.Context, fn func(ix *index) error) error {
	l, err := s.root.GlobalLock(ctx, state.LockOptions{})
	if err != nil {
		return err
	}
	defer l.Unlock()
	ix, err := s.load()
	if err != nil {
		return err
	}
	return fn(ix)
}

// update changes the index and saves it, under the exclusive global lock.
func (s *Store) update(ctx context.Context, fn func(ix *index) error) error {
	return s.exclusive(ctx, func(ix *index) error {
		if err := fn(ix); err != nil {
			return err
		}
		return state.WriteJSON(s.indexPath(), ix, 0o600)
	})
}

// resolve finds the image ref names: a reference, an ID or an ID prefix.
func resolve(ix *index, ref string) (digest.Digest, error) {
	if hexID, ok := looksLikeID(ref); ok {
		var found []digest.Digest
		for id := range ix.Images {
			if strings.HasPrefix(id.Encoded(), hexID) {
				found = append(found, id)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
		default:
			return "", errdefs.Invalidf("image ID prefix %q is ambiguous; give more digits", ref)
		}
	}
	n, err := NormalizeRef(ref)
	if err != nil {
		if _, ok := looksLikeID(ref); ok {
			return "", errdefs.NotFoundf("no such image: %s", ref)
		}
		return "", err
	}
	for id, r := range ix.Images {
		for _, rr := range r.Refs {
			if rr == n {
				return id, nil
			}
		}
	}
	return "", errdefs.NotFoundf("no such image: %s", ref)
}

// Get returns the image ref names.
func (s *Store) Get(ctx context.Context, ref string) (image.Image, error) {
	ix, err := s.load()
	if err != nil {
		return image.Image{}, err
	}
	id, err := resolve(ix, ref)
	if err != nil {
		return image.Image{}, err
	}
	return s.image(ctx, id, ix.Images[id])
}

func (s *Store) image(ctx context.Context, id digest.Digest, r *record) (image.Image, error) {
	img := image.Image{ID: id, Refs: append([]string(nil), r.Refs...), Intermediate: r.Intermediate}
	mb, err := s.content.ReadAll(ctx, r.Manifest)
	if err != nil {
		return img, fmt.Errorf("image %s: manifest: %w", id.Encoded()[:12], err)
	}
	if err := json.Unmarshal(mb, &img.Manifest); err != nil {
		return img, fmt.Errorf("image %s: manifest: %w", id.Encoded()[:12], err)
	}
	cb, err := s.content.ReadAll(ctx, id)
	if err != nil {
		return img, fmt.Errorf("image %s: config: %w", id.Encoded()[:12], err)
	}
	if err := json.Unmarshal(cb, &img.Config); err != nil {
		return img, fmt.Errorf("image %s: config: %w", id.Encoded()[:12], err)
	}
	img.Size = img.Manifest.Config.Size
	for _, l := range img.Manifest.Layers {
		img.Size += l.Size
	}
	if img.Config.Created != nil {
		img.Created = *img.Config.Created
	}
	sort.Strings(img.Refs)
	return img, nil
}

// List returns every image, newest first.
func (s *Store) List(ctx context.Context) ([]image.Image, error) {
	ix, err := s.load()
	if err != nil {
		return nil, err
	}
	var out []image.Image
	for id, r := range ix.Images {
		img, err := s.image(ctx, id, r)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Tag adds dst as a reference to the image src names, moving dst from
// any image that had it.
func (s *Store) Tag(ctx context.Context, src, dst string) error {
	n, err := NormalizeRef(dst)
	if err != nil {
		return err
	}
	if strings.Contains(n, "@") {
		return errdefs.Invalidf("cannot tag with a digest reference %q", dst)
	}
	return s.update(ctx, func(ix *index) error {
		id, err := resolve(ix, src)
		if err != nil {
			return err
		}
		for _, r := range ix.Images {
			r.Refs = without(r.Refs, n)
		}
		ix.Images[id].Refs = append(ix.Images[id].Refs, n)
		return nil
	})
}

func without(list []string, s string) []string {
	out := list[:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// Import makes a one-layer image of a rootfs tarball (plain, gzip or zstd),
// as docker import does, and unpacks it. The image's creation time is the
// newest mtime in the tarball, so the same tarball gives the same image ID
// on every machine.
func (s *Store) Import(ctx context.Context, r io.Reader, ref string, changes []string) (image.Image, error) {
	var n string
	if ref != "" {
		var err error
		if n, err = NormalizeRef(ref); err != nil {
			return image.Image{}, err
		}
	}
	var cfg ocispec.ImageConfig
	if err := applyChanges(&cfg, changes); err != nil {
		return image.Image{}, err
	}
	plain, _, err := archive.Decompress(r)
	if err != nil {
		return image.Image{}, fmt.Errorf("import: %w", err)
	}
	defer plain.Close()
	// Store the layer uncompressed: its digest is its diff ID, and save can
	// write it as docker and podman expect. A reader goroutine parses the
	// same bytes as tar (checking it is one) and notes the newest mtime.
	newest := &newestMtime{}
	layerDigest, layerSize, err := s.putLayer(ctx, plain, func(h *tar.Header) { newest.see(h.ModTime) })
	if errdefs.IsInvalid(err) {
		return image.Image{}, errdefs.Invalidf("import: the input is not a tar archive of a root filesystem (%v)", err)
	}
	if err != nil {
		return image.Image{}, fmt.Errorf("import: %w", err)
	}
	created := newest.t.UTC()
	conf := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDigest}},
		History:  []ocispec.History{{Created: &created, CreatedBy: "berth image import", Comment: "imported from a rootfs tarball"}},
	}
	cb, err := json.Marshal(conf)
	if err != nil {
		return image.Image{}, err
	}
	return s.commit(ctx, cb, []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: layerDigest, Size: layerSize}}, []string{n})
}

type newestMtime struct{ t time.Time }

func (n *newestMtime) see(t time.Time) {
	if t.After(n.t) {
		n.t = t
	}
}

// commit stores the config (its bytes as given: their digest is the image
// ID) and a manifest for layers already in the content store, records the
// image under refs, and unpacks it.
func (s *Store) commit(ctx context.Context, cb []byte, layers []ocispec.Descriptor, refs []string) (image.Image, error) {
	return s.commitImage(ctx, cb, layers, refs, false)
}

// commitImage is commit; intermediate marks a build step's image (an
// image committed again as a final one loses the mark).
func (s *Store) commitImage(ctx context.Context, cb []byte, layers []ocispec.Descriptor, refs []string, intermediate bool) (image.Image, error) {
	cd, cs, err := s.content.Put(ctx, bytes.NewReader(cb))
	if err != nil {
		return image.Image{}, err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: cs},
		Layers:    layers,
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return image.Image{}, err
	}
	md, _, err := s.content.Put(ctx, bytes.NewReader(mb))
	if err != nil {
		return image.Image{}, err
	}
	rec := &record{Manifest: md, Intermediate: intermediate}
	img, err := s.image(ctx, cd, rec)
	if err != nil {
		return image.Image{}, err
	}
	if _, err := s.Unpack(ctx, img); err != nil {
		return image.Image{}, err
	}
	err = s.update(ctx, func(ix *index) error {
		if old, ok := ix.Images[cd]; ok {
			rec = old
			rec.Intermediate = rec.Intermediate && intermediate
		} else {
			rec.Added = time.Now().UTC()
			ix.Images[cd] = rec
		}
		for _, ref := range refs {
			if ref == "" {
				continue
			}
			for _, r := range ix.Images {
				r.Refs = without(r.Refs, ref)
			}
			rec.Refs = append(rec.Refs, ref)
		}
		return nil
	})
	if err != nil {
		return image.Image{}, err
	}
	return s.Get(ctx, cd.String())
}

// ChainIDs returns the chain ID of each layer prefix of the image.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

// Unpack makes sure every layer of img is a committed snapshot, keyed by
// chain ID, and returns the top chain ID. A layer already unpacked (by
// this or any other image) is not unpacked again. While a layer is
// applied its uncompressed stream is hashed and must match the diff ID
// in the config.
func (s *Store) Unpack(ctx context.Context, img image.Image) (string, error) {
	diffIDs := img.Config.RootFS.DiffIDs
	if len(diffIDs) != len(img.Manifest.Layers) {
		return "", errdefs.Invalidf("image %s: %d layers but %d diff IDs in its config", img.ID, len(img.Manifest.Layers), len(diffIDs))
	}
	l, err := s.root.GlobalLock(ctx, state.LockOptions{Shared: true})
	if err != nil {
		return "", err
	}
	defer l.Unlock()
	chain := ChainIDs(diffIDs)
	// The missing layers are extracted in parallel, each on its own (a
	// layer's dir holds only its diff), then linked into the chain in
	// order.
	var missing []int
	for i := range img.Manifest.Layers {
		if !s.snaps.Exists(chain[i].String()) {
			missing = append(missing, i)
		}
	}
	errs := make([]error, len(img.Manifest.Layers))
	sem := make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
	var wg sync.WaitGroup
	for _, i := range missing {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = s.stage(ctx, img.Manifest.Layers[i], diffIDs[i])
		}()
	}
	wg.Wait()
	parent := ""
	for i, desc := range img.Manifest.Layers {
		key := chain[i].String()
		if s.snaps.Exists(key) {
			parent = key
			continue
		}
		err := errs[i]
		if err == nil {
			err = s.snaps.Rebase(ctx, key, stagedKey(diffIDs[i]), parent)
			if errdefs.IsConflict(err) && s.snaps.Exists(key) {
				err = nil // another unpack linked the same chain meanwhile
			} else if errdefs.IsNotFound(err) {
				err = s.unpackLayer(ctx, desc, diffIDs[i], key, parent) // its stage was used by another chain
			}
		}
		if err != nil {
			return "", fmt.Errorf("image %s: layer %d (%s): %w", img.ID.Encoded()[:12], i+1, desc.Digest.Encoded()[:12], err)
		}
		parent = key
	}
	return parent, nil
}

// stagedKey names a layer extracted on its own, before it joins a chain.
func stagedKey(diffID digest.Digest) string { return "staged-" + diffID.Encoded() }

// Stage extracts a layer blob (verified against diffID) into a snapshot
// of its own, so that a later Unpack only links it into its chain: a
// pull extracts each layer as soon as it is downloaded, while the others
// still download. Idempotent; a staged layer no image takes is collected
// by GC.
func (s *Store) Stage(ctx context.Context, desc ocispec.Descriptor, diffID digest.Digest) error {
	l, err := s.root.GlobalLock(ctx, state.LockOptions{Shared: true})
	if err != nil {
		return err
	}
	defer l.Unlock()
	return s.stage(ctx, desc, diffID)
}

func (s *Store) stage(ctx context.Context, desc ocispec.Descriptor, diffID digest.Digest) error {
	if s.snaps.Exists(stagedKey(diffID)) {
		return nil
	}
	return s.unpackLayer(ctx, desc, diffID, stagedKey(diffID), "")
}

func (s *Store) unpackLayer(ctx context.Context, desc ocispec.Descriptor, diffID digest.Digest, key, parent string) error {
	tmpKey := fmt.Sprintf("extract-%d-%s", time.Now().UnixNano(), key)
	// The new snapshot's own dir holds exactly this layer's diff; Apply
	// writes overlay whiteouts into it.
	if _, err := s.snaps.Prepare(ctx, tmpKey, parent); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			s.snaps.Remove(context.WithoutCancel(ctx), tmpKey)
		}
	}()
	dir, err := s.snaps.FSDir(ctx, tmpKey)
	if err != nil {
		return err
	}
	rc, err := s.content.Open(ctx, desc.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	plain, _, err := archive.Decompress(rc)
	if err != nil {
		return err
	}
	defer plain.Close()
	h := digest.SHA256.Digester()
	if _, err := archive.Apply(ctx, dir, io.TeeReader(plain, h.Hash())); err != nil {
		return err
	}
	if _, err := io.Copy(h.Hash(), plain); err != nil { // tar padding after the end marker
		return err
	}
	if got := h.Digest(); got != diffID {
		return errdefs.Invalidf("uncompressed layer has digest %s, but the config says %s", got, diffID)
	}
	if err := s.snaps.Commit(ctx, key, tmpKey); err != nil {
		return err
	}
	ok = true
	return nil
}

// Remove untags ref, or removes the image when ref was its last name or
// its ID. An image a container uses is refused unless force. Blobs and
// layers no image needs any more are collected.
func (s *Store) Remove(ctx context.Context, ref string, force bool) error {
	var removed digest.Digest
	err := s.update(ctx, func(ix *index) error {
		id, err := resolve(ix, ref)
		if err != nil {
			return err
		}
		r := ix.Images[id]
		if n, err := NormalizeRef(ref); err == nil && len(r.Refs) > 1 && contains(r.Refs, n) {
			r.Refs = without(r.Refs, n) // one of several names: untag only
			return nil
		}
		if s.InUse != nil {
			users, err := s.InUse(ctx, id)
			if err != nil {
				return err
			}
			if len(users) > 0 && !force {
				return errdefs.Conflictf("image %s is used by container %s; remove the container first or use --force", FamiliarRef(ref), strings.Join(users, ", "))
			}
		}
		delete(ix.Images, id)
		removed = id
		return nil
	})
	if err != nil || removed == "" {
		return err
	}
	return s.GC(ctx)
}

// GC removes blobs and committed layer snapshots no image references,
// holding the global lock exclusively. Snapshots with children (a
// container's, or a kept image's) stay.
func (s *Store) GC(ctx context.Context) error {
	return s.exclusive(ctx, func(ix *index) error { return s.gc(ctx, ix) })
}

func (s *Store) gc(ctx context.Context, ix *index) error {
	keepBlobs := map[digest.Digest]bool{}
	keepSnaps := map[string]bool{}
	keepDiffs := map[digest.Digest]bool{}
	for id, r := range ix.Images {
		img, err := s.image(ctx, id, r)
		if err != nil {
			return err
		}
		keepBlobs[id], keepBlobs[r.Manifest] = true, true
		for _, l := range img.Manifest.Layers {
			keepBlobs[l.Digest] = true
		}
		for _, c := range ChainIDs(img.Config.RootFS.DiffIDs) {
			keepSnaps[c.String()] = true
		}
		for _, d := range img.Config.RootFS.DiffIDs {
			keepDiffs[d] = true
		}
	}
	if s.Retain != nil {
		if keep, err := s.Retain(); err == nil {
			for blob, diffID := range keep {
				if keepDiffs[diffID] {
					keepBlobs[blob] = true
				}
			}
		}
	}
	if err := s.content.Walk(ctx, func(d digest.Digest, _ int64) error {
		if keepBlobs[d] {
			return nil
		}
		return s.content.Delete(ctx, d)
	}); err != nil {
		return err
	}
	// Remove unreferenced committed snapshots, children first.
	for {
		var victims []string
		parents := map[string]bool{}
		var all []image.SnapshotInfo
		s.snaps.Walk(ctx, func(_ context.Context, in image.SnapshotInfo) error {
			all = append(all, in)
			if in.Parent != "" {
				parents[in.Parent] = true
			}
			return nil
		})
		for _, in := range all {
			if in.Kind == image.KindCommitted && !keepSnaps[in.Key] && !parents[in.Key] {
				victims = append(victims, in.Key)
			}
		}
		if len(victims) == 0 {
			return nil
		}
		for _, v := range victims {
			if err := s.snaps.Remove(ctx, v); err != nil && !errdefs.IsConflict(err) {
				return err
			}
		}
	}
}

// Prune removes dangling images (no reference; build-step images, the
// build cache, stay), or with all every image no container uses, and
// returns their IDs.
func (s *Store) Prune(ctx context.Context, all bool) ([]digest.Digest, error) {
	var pruned []digest.Digest
	err := s.update(ctx, func(ix *index) error {
		for id, r := range ix.Images {
			if (len(r.Refs) > 0 || r.Intermediate) && !all {
				continue
			}
			if s.InUse != nil {
				users, err := s.InUse(ctx, id)
				if err != nil {
					return err
				}
				if len(users) > 0 {
					continue
				}
			}
			delete(ix.Images, id)
			pruned = append(pruned, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(pruned, func(i, j int) bool { return pruned[i] < pruned[j] })
	return pruned, s.GC(ctx)
}

// Usage is the disk the store takes.
type Usage struct {
	Images     int
	BlobBytes  int64 // compressed or plain layers, configs, manifests
	LayerBytes int64 // unpacked layer snapshots
}

// DiskUsage sums blob and committed-layer sizes.
func (s *Store) DiskUsage(ctx context.Context) (Usage, error) {
	ix, err := s.load()
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Images: len(ix.Images)}
	if err := s.content.Walk(ctx, func(_ digest.Digest, size int64) error { u.BlobBytes += size; return nil }); err != nil {
		return u, err
	}
	err = s.snaps.Walk(ctx, func(ctx context.Context, in image.SnapshotInfo) error {
		if in.Kind == image.KindCommitted {
			st, err := s.snaps.Stat(ctx, in.Key)
			if err == nil {
				u.LayerBytes += st.Size
			}
		}
		return nil
	})
	return u, err
}
