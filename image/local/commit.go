package local

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
)

// CommitOptions describe the image CommitLayer makes.
type CommitOptions struct {
	// Config, when set, is the runtime config to start from instead of
	// the parent's (docker commit starts from the container's: its
	// command, environment, working dir). Changes apply on top.
	Config *ocispec.ImageConfig
	// Changes are Dockerfile instructions, as --change takes them: CMD,
	// ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR.
	Changes []string
	// Author goes in the config and the new history entry.
	Author string
	// Comment is the history entry's comment (commit -m).
	Comment string
	// CreatedBy is the history entry's created_by: what made the layer.
	CreatedBy string
	// Created is the image's creation time; zero means now.
	Created time.Time
}

// CommitLayer makes an image of parent plus one layer, as docker commit
// does: layer is an uncompressed OCI layer tar (image/archive.Diff of a
// container's upper dir), stored uncompressed so its digest is its diff
// ID; the config is the parent's (or o.Config) with o.Changes applied,
// one more diff ID and one more history entry. The image is unpacked:
// the parent's layers keep their snapshots (same chain IDs) and only the
// new layer is extracted. ref ("" for none) names it; a ref another image
// had moves to this one.
func (s *Store) CommitLayer(ctx context.Context, parent image.Image, layer io.Reader, ref string, o CommitOptions) (image.Image, error) {
	var n string
	if ref != "" {
		var err error
		if n, err = NormalizeRef(ref); err != nil {
			return image.Image{}, err
		}
	}
	if len(parent.Config.RootFS.DiffIDs) != len(parent.Manifest.Layers) {
		return image.Image{}, errdefs.Invalidf("commit: parent image %s has %d layers but %d diff IDs; pull or load it again",
			shortID(parent.ID), len(parent.Manifest.Layers), len(parent.Config.RootFS.DiffIDs))
	}
	// A deep copy of the parent's config: the new image must not share
	// maps or slices with the caller's.
	var conf ocispec.Image
	pb, err := json.Marshal(parent.Config)
	if err != nil {
		return image.Image{}, fmt.Errorf("commit: parent config: %w", err)
	}
	if err := json.Unmarshal(pb, &conf); err != nil {
		return image.Image{}, fmt.Errorf("commit: parent config: %w", err)
	}
	if o.Config != nil {
		cb, err := json.Marshal(o.Config)
		if err != nil {
			return image.Image{}, fmt.Errorf("commit: config: %w", err)
		}
		conf.Config = ocispec.ImageConfig{}
		if err := json.Unmarshal(cb, &conf.Config); err != nil {
			return image.Image{}, fmt.Errorf("commit: config: %w", err)
		}
	}
	if err := applyChanges(&conf.Config, o.Changes); err != nil {
		return image.Image{}, fmt.Errorf("commit: %w", err)
	}
	layerDigest, layerSize, err := s.putLayer(ctx, layer, nil)
	if err != nil {
		return image.Image{}, fmt.Errorf("commit: %w", err)
	}
	created := o.Created.UTC()
	if o.Created.IsZero() {
		created = time.Now().UTC()
	}
	conf.Created = &created
	if o.Author != "" {
		conf.Author = o.Author
	}
	if conf.RootFS.Type == "" {
		conf.RootFS.Type = "layers"
	}
	conf.RootFS.DiffIDs = append(conf.RootFS.DiffIDs, layerDigest)
	conf.History = append(conf.History, ocispec.History{Created: &created, CreatedBy: o.CreatedBy, Author: o.Author, Comment: o.Comment})
	cb, err := json.Marshal(conf)
	if err != nil {
		return image.Image{}, fmt.Errorf("commit: %w", err)
	}
	layers := append(append([]ocispec.Descriptor(nil), parent.Manifest.Layers...),
		ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: layerDigest, Size: layerSize})
	img, err := s.commit(ctx, cb, layers, []string{n})
	if err != nil {
		return image.Image{}, fmt.Errorf("commit on %s: %w", shortID(parent.ID), err)
	}
	return img, nil
}

// putLayer stores an uncompressed layer tar, checking as it streams that
// it is one (each header goes to seen, when not nil); its digest is its
// diff ID. A blob that is no tar is deleted unless an image uses it.
func (s *Store) putLayer(ctx context.Context, r io.Reader, seen func(*tar.Header)) (digest.Digest, int64, error) {
	pr, pw := io.Pipe()
	parsed := make(chan error, 1)
	go func() {
		tr := tar.NewReader(pr)
		var err error
		for {
			var hdr *tar.Header
			if hdr, err = tr.Next(); err != nil {
				break
			}
			if seen != nil {
				seen(hdr)
			}
		}
		if err == io.EOF {
			err = nil
		}
		io.Copy(io.Discard, pr) // keep the writer flowing whatever happened
		parsed <- err
	}()
	d, size, err := s.content.Put(ctx, io.TeeReader(r, pw))
	pw.CloseWithError(err)
	perr := <-parsed
	if err != nil {
		return "", 0, fmt.Errorf("store the layer: %w", err)
	}
	if perr != nil {
		if !s.referenced(ctx, d) {
			s.content.Delete(ctx, d)
		}
		return "", 0, errdefs.Invalidf("the layer is not a tar archive: %v", perr)
	}
	return d, size, nil
}

// referenced reports whether an image in the index uses blob d (then a
// failed commit must not delete it).
func (s *Store) referenced(ctx context.Context, d digest.Digest) bool {
	ix, err := s.load()
	if err != nil {
		return true
	}
	for id, r := range ix.Images {
		if id == d || r.Manifest == d {
			return true
		}
		img, err := s.image(ctx, id, r)
		if err != nil {
			return true
		}
		for _, l := range img.Manifest.Layers {
			if l.Digest == d {
				return true
			}
		}
	}
	return false
}

func shortID(d digest.Digest) string {
	if e := d.Encoded(); len(e) >= 12 {
		return e[:12]
	}
	return d.String()
}
