package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/image"
	"berth.dev/berth/image/archive"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
)

// PushResult describes a push.
type PushResult struct {
	Ref    string        // normalised
	Digest digest.Digest // of the manifest put under the tag
	Size   int64         // of the manifest
	// Pushed and Skipped count layers: uploaded, or already on the
	// registry (the config blob is not counted).
	Pushed, Skipped int
}

// Media types of the two manifest families.
const (
	dockerManifest   = "application/vnd.docker.distribution.manifest.v2+json"
	dockerConfigType = "application/vnd.docker.container.image.v1+json"
	dockerGzip       = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	dockerPlain      = "application/vnd.docker.image.rootfs.diff.tar"
)

// Push uploads the local image named ref to ref's registry. A layer whose
// blob is an uncompressed tar is gzip-compressed once: the compressed
// blob goes into the content store and into o.LayerCache under the diff
// ID, and a later push reuses it without compressing again. Blobs the
// registry already has are skipped (HEAD); then the config and the
// manifest are put under the tag.
//
// Manifest rule: a Docker v2 schema2 manifest when every layer of the
// local image has a Docker media type (an image pulled as schema2, pushed
// unchanged); an OCI manifest otherwise (layers berth made by import,
// build or commit have OCI media types, and zstd exists only in OCI). In
// an OCI manifest Docker gzip layers are listed with the OCI gzip type:
// the bytes are the same.
func Push(ctx context.Context, s Store, ref string, o Options) (PushResult, error) {
	sess, err := newSession(ctx, ref, o)
	if err != nil {
		return PushResult{}, err
	}
	res, err := sess.push(ctx, s)
	return res, scrub(err, sess.secrets)
}

// pushLayer is one layer as it will be pushed.
type pushLayer struct {
	local  ocispec.Descriptor // in the local manifest
	diffID digest.Digest
	blob   ocispec.Descriptor // what goes to the registry
}

func (ss *session) push(ctx context.Context, s Store) (PushResult, error) {
	res := PushResult{Ref: ss.ref}
	what := "push " + ss.ref
	if strings.Contains(ss.ref, "@") {
		return res, errdefs.Invalidf("%s: cannot push to a digest reference; tag the image (berth tag IMAGE NAME:TAG) and push the tag", what)
	}
	img, err := s.Get(ctx, ss.ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return res, errdefs.NotFoundf("%s: no local image %s; build, pull or tag one under that name first", what, ss.ref)
		}
		return res, fmt.Errorf("%s: %w", what, err)
	}
	cb, err := s.RawConfig(ctx, img.ID)
	if err != nil {
		return res, fmt.Errorf("%s: config: %w", what, err)
	}
	if len(img.Config.RootFS.DiffIDs) != len(img.Manifest.Layers) {
		return res, errdefs.Invalidf("%s: the image has %d layers but %d diff IDs; pull, build or load it again", what, len(img.Manifest.Layers), len(img.Config.RootFS.DiffIDs))
	}
	docker := len(img.Manifest.Layers) > 0
	for _, l := range img.Manifest.Layers {
		if !strings.HasPrefix(l.MediaType, "application/vnd.docker.") {
			docker = false
		}
	}
	layers := make([]*pushLayer, len(img.Manifest.Layers))
	for i, l := range img.Manifest.Layers {
		layers[i] = &pushLayer{local: l, diffID: img.Config.RootFS.DiffIDs[i]}
	}
	ss.o.emit(Progress{Ref: ss.ref, Status: "The push refers to repository [" + ss.nref.Context().Name() + "]"})
	for _, l := range layers {
		ss.o.emit(Progress{Ref: ss.ref, ID: shortID(l.diffID), Status: "Preparing"})
	}
	pusher, err := remote.NewPusher(ss.opts...)
	if err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	cache := &layerCache{path: ss.o.LayerCache}
	var pushed, skipped atomic.Int64
	err = ss.parallel(ctx, "push "+ss.ref, len(layers), func(ctx context.Context, i int) error {
		l := layers[i]
		if err := ss.blobFor(ctx, s.Content(), cache, l, docker); err != nil {
			return err
		}
		up, err := ss.upload(ctx, pusher, s.Content(), l.blob, shortID(l.diffID))
		if err != nil {
			return err
		}
		if up {
			pushed.Add(1)
		} else {
			skipped.Add(1)
		}
		return nil
	})
	res.Pushed, res.Skipped = int(pushed.Load()), int(skipped.Load())
	if err != nil {
		return res, err
	}
	cfgType := ocispec.MediaTypeImageConfig
	mt := ocispec.MediaTypeImageManifest
	if docker {
		cfgType, mt = dockerConfigType, dockerManifest
	}
	cfgDesc := ocispec.Descriptor{MediaType: cfgType, Digest: img.ID, Size: int64(len(cb))}
	if _, err := ss.upload(ctx, pusher, s.Content(), cfgDesc, ""); err != nil {
		return res, err
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mt, Config: cfgDesc}
	for _, l := range layers {
		m.Layers = append(m.Layers, l.blob)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return res, err
	}
	if err := pusher.Push(ctx, ss.nref, rawManifest{b: mb, mt: types.MediaType(mt)}); err != nil {
		return res, classify(what+": manifest", ss.host, err)
	}
	res.Digest, res.Size = digest.FromBytes(mb), int64(len(mb))
	return res, nil
}

// parallel runs fn for 0..n-1, o.Jobs at a time; the first failure
// cancels the rest and is what is returned (not the cancellations it
// caused). what names the operation when ctx itself ends.
func (ss *session) parallel(ctx context.Context, what string, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, ss.o.jobs())
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
			}
		}(i)
	}
	wg.Wait()
	for _, e := range errs {
		if !errdefs.IsCanceled(e) {
			return e
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	if err := ctx.Err(); err != nil {
		return classify(what, ss.host, err)
	}
	return nil
}

// uncompressed reports whether a layer media type is a plain tar.
func uncompressed(mt string) bool {
	return mt == ocispec.MediaTypeImageLayer || mt == dockerPlain
}

// blobFor decides the blob pushed for l: the local blob when compressed,
// else the gzip of it, from the layer cache or compressed now.
func (ss *session) blobFor(ctx context.Context, cs image.ContentStore, cache *layerCache, l *pushLayer, docker bool) error {
	mt := l.local.MediaType
	if !uncompressed(mt) && l.local.Digest != l.diffID {
		l.blob = ocispec.Descriptor{MediaType: familyType(mt, docker), Digest: l.local.Digest, Size: l.local.Size}
		return nil
	}
	gz := ocispec.MediaTypeImageLayerGzip
	if docker {
		gz = dockerGzip
	}
	if e, ok := cache.get(ctx, l.diffID); ok {
		if sz, err := cs.Size(ctx, e.Digest); err == nil && sz == e.Size {
			l.blob = ocispec.Descriptor{MediaType: gz, Digest: e.Digest, Size: e.Size}
			return nil
		}
	}
	d, size, err := compress(ctx, cs, l.local.Digest)
	if err != nil {
		return fmt.Errorf("push %s: compress layer %s: %w", ss.ref, shortID(l.diffID), err)
	}
	l.blob = ocispec.Descriptor{MediaType: gz, Digest: d, Size: size}
	if err := cache.put(ctx, l.diffID, cacheEntry{Digest: d, Size: size, MediaType: ocispec.MediaTypeImageLayerGzip}); err != nil {
		return fmt.Errorf("push %s: %w", ss.ref, err)
	}
	return nil
}

// familyType maps a compressed layer media type into the manifest's family.
func familyType(mt string, docker bool) string {
	if docker {
		return mt // all Docker by the rule
	}
	switch mt {
	case dockerGzip:
		return ocispec.MediaTypeImageLayerGzip
	case "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
		return ocispec.MediaTypeImageLayerNonDistributableGzip //nolint:staticcheck // Docker's foreign layers
	}
	return mt
}

// putter is the content store's Put (image/content.Store has it): store a
// blob whose digest is known only at the end.
type putter interface {
	Put(ctx context.Context, r io.Reader) (digest.Digest, int64, error)
}

// compress gzips the blob d into the content store and returns the
// compressed blob's digest and size.
func compress(ctx context.Context, cs image.ContentStore, d digest.Digest) (digest.Digest, int64, error) {
	rc, err := cs.Open(ctx, d)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	go func() {
		zw := gzip.NewWriter(pw)
		_, err := io.Copy(zw, rc)
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	if p, ok := cs.(putter); ok {
		return p.Put(ctx, pr)
	}
	// A content store without Put: spool to a temp file to learn the
	// digest, then ingest it verified.
	f, err := os.CreateTemp("", "berth-layer-*.gz")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	dg := digest.SHA256.Digester()
	n, err := io.Copy(io.MultiWriter(f, dg.Hash()), pr)
	if err != nil {
		return "", 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, err
	}
	if err := cs.Ingest(ctx, dg.Digest(), n, f); err != nil {
		return "", 0, err
	}
	return dg.Digest(), n, nil
}

// upload pushes one blob unless the registry has it; it reports whether
// bytes were sent. id is the progress ID ("" for the config: no events).
func (ss *session) upload(ctx context.Context, p *remote.Pusher, cs image.ContentStore, d ocispec.Descriptor, id string) (bool, error) {
	h, err := v1.NewHash(d.Digest.String())
	if err != nil {
		return false, errdefs.Invalidf("push %s: invalid blob digest %q", ss.ref, d.Digest)
	}
	l := &storeLayer{ctx: ctx, cs: cs, desc: d, hash: h}
	if id != "" {
		l.progress = func(n int64) {
			ss.o.emit(Progress{Ref: ss.ref, ID: id, Status: "Pushing", Current: n, Total: d.Size})
		}
	}
	if err := p.Upload(ctx, ss.nref.Context(), l); err != nil {
		what := fmt.Sprintf("push %s: blob %s", ss.ref, d.Digest)
		if errdefs.IsNotFound(err) || errdefs.IsInvalid(err) {
			return false, fmt.Errorf("%s: local content: %w", what, err)
		}
		return false, classify(what, ss.host, err)
	}
	sent := l.opened.Load()
	if id != "" {
		if sent {
			ss.o.emit(Progress{Ref: ss.ref, ID: id, Status: "Pushed"})
		} else {
			ss.o.emit(Progress{Ref: ss.ref, ID: id, Status: "Layer already exists"})
		}
	}
	return sent, nil
}

// storeLayer is a blob of the content store as a ggcr v1.Layer. The
// pusher opens it only to upload it: a blob never opened was already on
// the registry.
type storeLayer struct {
	ctx      context.Context
	cs       image.ContentStore
	desc     ocispec.Descriptor
	hash     v1.Hash
	opened   atomic.Bool
	progress func(n int64)
}

func (l *storeLayer) Digest() (v1.Hash, error) { return l.hash, nil }
func (l *storeLayer) DiffID() (v1.Hash, error) { return l.hash, nil } // unused by the pusher
func (l *storeLayer) Size() (int64, error)     { return l.desc.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}

func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.cs.Open(l.ctx, l.desc.Digest)
	if err != nil {
		return nil, err
	}
	l.opened.Store(true)
	if l.progress == nil {
		return rc, nil
	}
	return &progressReader{ReadCloser: rc, fn: l.progress, step: 512 << 10}, nil
}

func (l *storeLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.cs.Open(l.ctx, l.desc.Digest)
	if err != nil {
		return nil, err
	}
	plain, _, err := archive.Decompress(rc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return &closeBoth{ReadCloser: plain, also: rc}, nil
}

type closeBoth struct {
	io.ReadCloser
	also io.Closer
}

func (c *closeBoth) Close() error {
	err := c.ReadCloser.Close()
	if e := c.also.Close(); err == nil {
		err = e
	}
	return err
}

type progressReader struct {
	io.ReadCloser
	fn         func(int64)
	n, next    int64
	step       int64
	reportedAt int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	p.n += int64(n)
	if p.n >= p.next || err == io.EOF && p.reportedAt != p.n {
		p.next = p.n + p.step
		p.reportedAt = p.n
		p.fn(p.n)
	}
	return n, err
}

// rawManifest is a manifest to put as is.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// cacheEntry is the compressed blob pushed for one diff ID.
type cacheEntry struct {
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	MediaType string        `json:"mediaType"`
}

// CachedLayers reads a layer cache file (Options.LayerCache): the
// compressed blobs pushes made, blob → the diff ID it compresses. The
// image store's GC keeps such a blob while its layer is in use.
func CachedLayers(path string) (map[digest.Digest]digest.Digest, error) {
	m, err := (&layerCache{path: path}).read()
	if err != nil {
		return nil, err
	}
	out := make(map[digest.Digest]digest.Digest, len(m))
	for diffID, e := range m {
		out[e.Digest] = diffID
	}
	return out, nil
}

// layerCache is Options.LayerCache: a JSON object mapping diff ID →
// cacheEntry, rewritten atomically under a lock file (0600).
type layerCache struct {
	path string
}

func (c *layerCache) read() (map[digest.Digest]cacheEntry, error) {
	m := map[digest.Digest]cacheEntry{}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return map[digest.Digest]cacheEntry{}, nil // a broken cache only costs a recompression
	}
	return m, nil
}

func (c *layerCache) get(ctx context.Context, diffID digest.Digest) (cacheEntry, bool) {
	if c.path == "" {
		return cacheEntry{}, false
	}
	m, err := c.read()
	if err != nil {
		return cacheEntry{}, false
	}
	e, ok := m[diffID]
	return e, ok && e.Digest.Validate() == nil && e.Size > 0
}

func (c *layerCache) put(ctx context.Context, diffID digest.Digest, e cacheEntry) error {
	if c.path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("layer cache %s: %w", c.path, err)
	}
	lk, err := state.AcquireFile(ctx, c.path+".lock", "the layer cache", state.LockOptions{})
	if err != nil {
		return fmt.Errorf("layer cache %s: %w", c.path, err)
	}
	defer lk.Unlock()
	m, err := c.read()
	if err != nil {
		return fmt.Errorf("layer cache %s: %w", c.path, err)
	}
	m[diffID] = e
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := state.WriteFile(c.path, b, 0o600); err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	return nil
}
