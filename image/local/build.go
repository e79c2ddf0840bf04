package local

import (
	"archive/tar"
	"context"
	"fmt"

	"io"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
)

// PutLayer stores an uncompressed layer tar (a build step's diff) and
// returns its descriptor (digest = diff ID) and how many entries it has:
// a step that changed nothing makes an empty layer, which the builder
// leaves out of the image.
func (s *Store) PutLayer(ctx context.Context, r io.Reader) (ocispec.Descriptor, int, error) {
	n := 0
	d, size, err := s.putLayer(ctx, r, func(*tar.Header) { n++ })
	if err != nil {
		return ocispec.Descriptor{}, 0, err
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: size}, n, nil
}

// CommitConfig records the image whose config is exactly cb (its digest
// is the image ID; the builder writes Docker's config with healthcheck,
// onbuild and shell, which ocispec.Image has no fields for) over layers
// already stored, and unpacks it. ref ("" for none) names it, moving the
// name from any other image; intermediate marks a build step's image.
func (s *Store) CommitConfig(ctx context.Context, cb []byte, layers []ocispec.Descriptor, ref string, intermediate bool) (image.Image, error) {
	var refs []string
	if ref != "" {
		n, err := NormalizeRef(ref)
		if err != nil {
			return image.Image{}, err
		}
		refs = []string{n}
	}
	for _, l := range layers {
		if _, err := s.content.Size(ctx, l.Digest); err != nil {
			return image.Image{}, fmt.Errorf("commit: layer %s: %w", l.Digest, err)
		}
	}
	return s.commitImage(ctx, cb, layers, refs, intermediate)
}

// RawConfig returns the config bytes of image id as stored.
func (s *Store) RawConfig(ctx context.Context, id digest.Digest) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, errdefs.Invalidf("image ID %q: %v", id, err)
	}
	return s.content.ReadAll(ctx, id)
}
