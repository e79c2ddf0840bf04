package local

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
)

// dockerManifest is one entry of a docker save manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Save writes the images refs name as one tar holding both an OCI image
// layout (oci-layout, index.json, blobs/sha256/…) and docker's
// manifest.json over the same blobs, the form docker 25+ writes: docker
// load, podman load and berth image load all accept it. Entries are dated
// 1970-01-01 so the same images give the same bytes.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string) error {
	ix, err := s.load()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	written := map[digest.Digest]bool{}
	var ociIndex ocispec.Index
	ociIndex.SchemaVersion, ociIndex.MediaType = 2, ocispec.MediaTypeImageIndex
	var dockerEntries []dockerManifest
	epoch := time.Unix(0, 0)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	writeBlob := func(d digest.Digest) error {
		if written[d] {
			return nil
		}
		size, err := s.content.Size(ctx, d)
		if err != nil {
			return err
		}
		rc, err := s.content.Open(ctx, d)
		if err != nil {
			return err
		}
		defer rc.Close()
		if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + d.Encoded(), Typeflag: tar.TypeReg, Mode: 0o444, Size: size, ModTime: epoch}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, rc); err != nil {
			return fmt.Errorf("save blob %s: %w", d, err)
		}
		written[d] = true
		return nil
	}
	for _, ref := range refs {
		id, err := resolve(ix, ref)
		if err != nil {
			return err
		}
		rec := ix.Images[id]
		img, err := s.image(ctx, id, rec)
		if err != nil {
			return err
		}
		for _, d := range append([]digest.Digest{rec.Manifest, id}, layerDigests(img)...) {
			if err := writeBlob(d); err != nil {
				return err
			}
		}
		msize, _ := s.content.Size(ctx, rec.Manifest)
		tags := []string{}
		if n, err := NormalizeRef(ref); err == nil && !strings.Contains(n, "@") && contains(rec.Refs, n) {
			tags = append(tags, FamiliarRef(n))
		} else {
			for _, r := range rec.Refs {
				tags = append(tags, FamiliarRef(r))
			}
		}
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: rec.Manifest, Size: msize}
		if len(tags) > 0 {
			full, _ := NormalizeRef(tags[0])
			_, tag := SplitFamiliar(full)
			desc.Annotations = map[string]string{"io.containerd.image.name": full, ocispec.AnnotationRefName: tag}
		}
		ociIndex.Manifests = append(ociIndex.Manifests, desc)
		de := dockerManifest{Config: "blobs/sha256/" + id.Encoded(), RepoTags: tags}
		for _, l := range layerDigests(img) {
			de.Layers = append(de.Layers, "blobs/sha256/"+l.Encoded())
		}
		dockerEntries = append(dockerEntries, de)
	}
	files := []struct {
		name string
		v    any
	}{
		{"oci-layout", ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}},
		{"index.json", ociIndex},
		{"manifest.json", dockerEntries},
	}
	for _, f := range files {
		b, err := json.Marshal(f.v)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	return tw.Close()
}

func layerDigests(img image.Image) []digest.Digest {
	var out []digest.Digest
	for _, l := range img.Manifest.Layers {
		out = append(out, l.Digest)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// maxMetaFile bounds the JSON files Load buffers (manifests, configs).
const maxMetaFile = 16 << 20

// Load reads a docker save tarball (manifest.json; blobs/sha256/… or the
// older <id>/layer.tar form) or an OCI image layout archive (index.json),
// storing every blob verified, and returns the images it loaded. Nothing
// in the archive is executed or unpacked outside the store.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]image.Image, error) {
	tr := tar.NewReader(r)
	paths := map[string]digest.Digest{} // archive path → blob
	meta := map[string][]byte{}         // small JSON files by path
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errdefs.Invalidf("load: not a readable image archive: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA {
			continue
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			d := digest.NewDigestFromEncoded(digest.SHA256, hex)
			if d.Validate() != nil {
				return nil, errdefs.Invalidf("load: bad blob name %q", hdr.Name)
			}
			if err := s.content.Ingest(ctx, d, hdr.Size, tr); err != nil {
				return nil, fmt.Errorf("load %s: %w", hdr.Name, err)
			}
			paths[name] = d
			continue
		}
		if strings.HasSuffix(name, ".json") || name == "oci-layout" || name == "repositories" {
			if hdr.Size > maxMetaFile {
				return nil, errdefs.Invalidf("load: %s is %d bytes, too large for image metadata", name, hdr.Size)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			meta[name] = b
			continue
		}
		if strings.HasSuffix(name, "/layer.tar") || strings.HasSuffix(name, ".tar") { // legacy docker save
			d, _, err := s.content.Put(ctx, tr)
			if err != nil {
				return nil, err
			}
			paths[name] = d
		}
	}
	if b, ok := meta["manifest.json"]; ok {
		return s.loadDocker(ctx, b, paths, meta)
	}
	if b, ok := meta["index.json"]; ok {
		return s.loadOCI(ctx, b)
	}
	return nil, errdefs.Invalidf("load: the archive has neither manifest.json (docker save) nor index.json (OCI layout)")
}

func (s *Store) blobFor(ctx context.Context, p string, paths map[string]digest.Digest, meta map[string][]byte) (digest.Digest, error) {
	p = path.Clean(p)
	if d, ok := paths[p]; ok {
		return d, nil
	}
	if b, ok := meta[p]; ok {
		d, _, err := s.content.Put(ctx, bytes.NewReader(b))
		return d, err
	}
	return "", errdefs.Invalidf("load: the archive names %q but does not contain it", p)
}

func (s *Store) loadDocker(ctx context.Context, b []byte, paths map[string]digest.Digest, meta map[string][]byte) ([]image.Image, error) {
	var entries []dockerManifest
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, errdefs.Invalidf("load: manifest.json: %v", err)
	}
	var out []image.Image
	for _, e := range entries {
		cd, err := s.blobFor(ctx, e.Config, paths, meta)
		if err != nil {
			return nil, err
		}
		cb, err := s.content.ReadAll(ctx, cd)
		if err != nil {
			return nil, err
		}
		var layers []ocispec.Descriptor
		for _, l := range e.Layers {
			d, err := s.blobFor(ctx, l, paths, meta)
			if err != nil {
				return nil, err
			}
			desc, err := s.describeLayer(ctx, d)
			if err != nil {
				return nil, err
			}
			layers = append(layers, desc)
		}
		var refs []string
		for _, t := range e.RepoTags {
			n, err := NormalizeRef(t)
			if err != nil {
				return nil, err
			}
			refs = append(refs, n)
		}
		img, err := s.commit(ctx, cb, layers, refs)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// describeLayer sniffs a layer blob's compression for its media type.
func (s *Store) describeLayer(ctx context.Context, d digest.Digest) (ocispec.Descriptor, error) {
	size, err := s.content.Size(ctx, d)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	rc, err := s.content.Open(ctx, d)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	head := make([]byte, 4)
	n, _ := io.ReadFull(rc, head)
	rc.Close()
	mt := ocispec.MediaTypeImageLayer
	switch {
	case n >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		mt = ocispec.MediaTypeImageLayerGzip
	case n == 4 && bytes.Equal(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		mt = ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: size}, nil
}

func (s *Store) loadOCI(ctx context.Context, b []byte) ([]image.Image, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, errdefs.Invalidf("load: index.json: %v", err)
	}
	var out []image.Image
	for _, desc := range idx.Manifests {
		md, err := s.pickManifest(ctx, desc, 0)
		if err != nil {
			return nil, err
		}
		mb, err := s.content.ReadAll(ctx, md)
		if err != nil {
			return nil, err
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(mb, &m); err != nil {
			return nil, errdefs.Invalidf("load: manifest %s: %v", md, err)
		}
		cb, err := s.content.ReadAll(ctx, m.Config.Digest)
		if err != nil {
			return nil, err
		}
		var refs []string
		if name := desc.Annotations["io.containerd.image.name"]; name != "" {
			if n, err := NormalizeRef(name); err == nil {
				refs = append(refs, n)
			}
		} else if name := desc.Annotations[ocispec.AnnotationRefName]; strings.ContainsAny(name, "/:") {
			if n, err := NormalizeRef(name); err == nil {
				refs = append(refs, n)
			}
		}
		img, err := s.commit(ctx, cb, m.Layers, refs)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// pickManifest follows image indexes to this platform's manifest.
func (s *Store) pickManifest(ctx context.Context, desc ocispec.Descriptor, depth int) (digest.Digest, error) {
	switch desc.MediaType {
	case ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
	default:
		return desc.Digest, nil
	}
	if depth > 4 {
		return "", errdefs.Invalidf("load: image indexes nest too deep")
	}
	b, err := s.content.ReadAll(ctx, desc.Digest)
	if err != nil {
		return "", err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return "", errdefs.Invalidf("load: index %s: %v", desc.Digest, err)
	}
	var cands []ocispec.Descriptor
	for _, m := range idx.Manifests {
		if m.Platform == nil || (m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH) {
			cands = append(cands, m)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Platform != nil && cands[j].Platform == nil })
	if len(cands) == 0 {
		return "", errdefs.NotFoundf("load: no linux/%s image in index %s", runtime.GOARCH, desc.Digest)
	}
	return s.pickManifest(ctx, cands[0], depth+1)
}
