package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
)

// maxConfigSize bounds an image config read into memory.
const maxConfigSize = 32 << 20

// PullResult describes a pull.
type PullResult struct {
	Image image.Image
	Ref   string // normalised
	// Digest is the manifest digest as the registry serves it for the
	// reference (an index's digest for a multi-platform image): what
	// `Digest:` prints.
	Digest  digest.Digest
	Fetched int // layers downloaded
	Present int // layers already in the content store
}

// Pull fetches ref (a tag or @sha256: digest, normalised like Docker) for
// o.Platform: a manifest list or OCI index resolves to the matching
// manifest (none: ErrNotFound naming the platforms it has). Config and
// layers are verified (size and digest) while they stream into the content
// store; a mismatch fails naming the blob, keeps nothing and records no
// image. Blobs already present are not fetched; missing layers download
// in parallel (o.Jobs). Last, the image is recorded under the normalised
// ref (CommitConfig, which unpacks it). Docker v2 schema2 and OCI
// manifests are supported; schema1 fails with ErrUnavailable. An
// interrupted pull leaves no partial blob, and a re-run fetches only what
// is missing.
func Pull(ctx context.Context, s Store, ref string, o Options) (PullResult, error) {
	sess, err := newSession(ctx, ref, o)
	if err != nil {
		return PullResult{}, err
	}
	res, err := sess.pull(ctx, s)
	return res, scrub(err, sess.secrets)
}

func (ss *session) pull(ctx context.Context, s Store) (PullResult, error) {
	res := PullResult{Ref: ss.ref}
	what := "pull " + ss.ref
	want, err := parsePlatform(ss.o.Platform)
	if err != nil {
		return res, err
	}
	puller, err := remote.NewPuller(ss.opts...)
	if err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	repo := ss.nref.Context()
	ss.o.emit(Progress{Ref: ss.ref, Status: "Pulling from " + repo.RepositoryStr()})
	desc, err := puller.Get(ctx, ss.nref)
	if err != nil {
		return res, classify(what, ss.host, err)
	}
	res.Digest = digest.Digest(desc.Digest.String())
	if desc.MediaType.IsIndex() {
		d, err := pickPlatform(ss.ref, desc.Manifest, want)
		if err != nil {
			return res, err
		}
		if desc, err = puller.Get(ctx, repo.Digest(d.String())); err != nil {
			return res, classify(what, ss.host, err)
		}
	}
	m, err := parseImageManifest(ss.ref, desc.MediaType, desc.Manifest)
	if err != nil {
		return res, err
	}
	cb, err := ss.config(ctx, s, puller, repo, m.Config)
	if err != nil {
		return res, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return res, errdefs.Invalidf("%s: the image config %s is not valid JSON (%v); the image on the registry is broken", what, m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return res, errdefs.Invalidf("%s: the image has %d layers but its config lists %d diff IDs; the image on the registry is broken", what, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	layers := make([]ocispec.Descriptor, len(m.Layers))
	for i, l := range m.Layers {
		layers[i] = ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}
	}
	// A store that can extract a layer on its own does so as soon as the
	// layer is in, while the others still download; CommitConfig then
	// only links the extracted layers into their chain.
	arrived := map[digest.Digest]chan struct{}{}
	for _, l := range layers {
		arrived[l.Digest] = make(chan struct{})
	}
	var staging sync.WaitGroup
	var downloaded sync.Map
	sctx, stopStaging := context.WithCancel(ctx)
	defer stopStaging()
	if st, ok := s.(stager); ok {
		sem := make(chan struct{}, 2)
		for i, l := range layers {
			staging.Add(1)
			go func() {
				defer staging.Done()
				select {
				case <-arrived[l.Digest]:
				case <-sctx.Done():
					return
				}
				if _, got := downloaded.Load(l.Digest); !got {
					return // present already: Unpack finds it or extracts it
				}
				select {
				case sem <- struct{}{}:
				case <-sctx.Done():
					return
				}
				defer func() { <-sem }()
				st.Stage(sctx, l, cfg.RootFS.DiffIDs[i]) // a failure shows again in CommitConfig
			}()
		}
	}
	var once sync.Map
	fetched, present, missing, err := ss.layers(ctx, s, puller, repo, layers, func(d digest.Digest, got bool) {
		if _, dup := once.LoadOrStore(d, true); !dup {
			if got {
				downloaded.Store(d, true)
			}
			close(arrived[d])
		}
	})
	res.Fetched, res.Present = fetched, present
	if err != nil {
		stopStaging()
		staging.Wait()
		return res, err
	}
	staging.Wait()
	img, err := s.CommitConfig(ctx, cb, layers, ss.ref, false)
	if err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	for _, l := range missing {
		ss.o.emit(Progress{Ref: ss.ref, ID: shortID(l.Digest), Status: "Pull complete"})
	}
	res.Image = img
	return res, nil
}

// stager is a store that extracts one layer on its own before the image
// is recorded (*local.Store).
type stager interface {
	Stage(ctx context.Context, desc ocispec.Descriptor, diffID digest.Digest) error
}

// pickPlatform chooses the manifest of an index matching want.
func pickPlatform(ref string, raw []byte, want v1.Platform) (v1.Hash, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}, errdefs.Invalidf("pull %s: the registry sent an invalid image index (%v)", ref, err)
	}
	var have []string
	var best *v1.Descriptor
	for i := range idx.Manifests {
		d := &idx.Manifests[i]
		if d.Platform == nil || !d.MediaType.IsImage() && d.MediaType != "" {
			continue
		}
		p := *d.Platform
		if p.OS == "unknown" { // attestation manifests
			continue
		}
		have = append(have, platformString(p))
		if p.OS != want.OS || p.Architecture != want.Architecture {
			continue
		}
		if want.Variant != "" && normVariant(p) != normVariant(want) {
			continue
		}
		if best == nil || want.Variant == "" && p.Variant == "" && best.Platform.Variant != "" {
			best = d
		}
	}
	if best == nil {
		sort.Strings(have)
		list := strings.Join(have, ", ")
		if list == "" {
			list = "none"
		}
		return v1.Hash{}, errdefs.NotFoundf("pull %s: no image for platform %s; the registry has %s; pass one of those as the platform", ref, platformString(want), list)
	}
	return best.Digest, nil
}

func normVariant(p v1.Platform) string {
	if p.Architecture == "arm64" && p.Variant == "" {
		return "v8"
	}
	return p.Variant
}

func parseImageManifest(ref string, mt types.MediaType, raw []byte) (*ocispec.Manifest, error) {
	switch mt {
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return nil, errdefs.Unavailablef("pull %s: the registry serves it as a Docker schema 1 manifest, which berth does not support (deprecated since 2017); push it again with a current Docker or berth to convert it to schema 2", ref)
	case types.DockerManifestSchema2, types.OCIManifestSchema1, "":
	default:
		return nil, errdefs.Unavailablef("pull %s: the registry serves a %q, which is not a container image; check the reference", ref, mt)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errdefs.Invalidf("pull %s: the registry sent an invalid manifest (%v)", ref, err)
	}
	if m.SchemaVersion == 1 {
		return nil, errdefs.Unavailablef("pull %s: the registry serves it as a Docker schema 1 manifest, which berth does not support; push it again with a current Docker or berth", ref)
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if d.Digest.Validate() != nil || d.Digest.Algorithm() != digest.SHA256 || d.Size < 0 {
			return nil, errdefs.Invalidf("pull %s: the manifest has an invalid blob descriptor (digest %q, size %d)", ref, d.Digest, d.Size)
		}
	}
	return &m, nil
}

// config returns the image config bytes: from the store when present,
// else fetched and verified.
func (ss *session) config(ctx context.Context, s Store, p *remote.Puller, repo name.Repository, d ocispec.Descriptor) ([]byte, error) {
	if cb, err := s.RawConfig(ctx, d.Digest); err == nil && int64(len(cb)) == d.Size {
		return cb, nil
	}
	if d.Size > maxConfigSize {
		return nil, errdefs.Invalidf("pull %s: the image config is %d bytes, more than berth accepts (%d)", ss.ref, d.Size, maxConfigSize)
	}
	rc, err := ss.openBlob(ctx, p, repo, d.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	cr := &checkReader{r: rc, want: d.Digest, size: d.Size, h: digest.SHA256.Hash()}
	cb, err := io.ReadAll(io.LimitReader(cr, d.Size+1))
	if err == nil {
		err = cr.final()
	}
	if err != nil {
		return nil, ss.blobError("image config", d.Digest, err)
	}
	return cb, nil
}

func (ss *session) openBlob(ctx context.Context, p *remote.Puller, repo name.Repository, d digest.Digest) (io.ReadCloser, error) {
	l, err := p.Layer(ctx, repo.Digest(d.String()))
	if err != nil {
		return nil, classify(fmt.Sprintf("pull %s: blob %s", ss.ref, d), ss.host, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, classify(fmt.Sprintf("pull %s: blob %s", ss.ref, d), ss.host, err)
	}
	return rc, nil
}

// errDigest and errShort classify a failed blob download.
var (
	errDigest = errors.New("digest mismatch")
	errShort  = errors.New("short download")
)

// checkReader hashes what passes through it, so a failed download can
// be told apart: all bytes but a wrong digest (tampered or corrupted), or
// fewer bytes than the manifest says (truncated).
type checkReader struct {
	r    io.Reader
	want digest.Digest
	size int64
	h    hash.Hash
	n    int64
	on   func(n int64)
}

func (c *checkReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if c.on != nil && n > 0 {
		c.on(c.n)
	}
	if err != nil && err != io.EOF {
		if c.n < c.size {
			return n, fmt.Errorf("%w: %w", errShort, err)
		}
		if got := digest.NewDigest(digest.SHA256, c.h); got != c.want {
			return n, fmt.Errorf("%w: %w", errDigest, err)
		}
	}
	if err == io.EOF {
		if ferr := c.final(); ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

func (c *checkReader) final() error {
	if c.n < c.size {
		return errShort
	}
	if c.n > c.size {
		return errDigest
	}
	if got := digest.NewDigest(digest.SHA256, c.h); got != c.want {
		return errDigest
	}
	return nil
}

func (ss *session) blobError(what string, d digest.Digest, err error) error {
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
	case errors.Is(err, errDigest):
		return errdefs.Invalidf("pull %s: %s %s: the downloaded content does not match its digest (corrupted in transit or tampered with); nothing was kept; pull again, and if it persists the registry %s serves a bad blob", ss.ref, what, d, ss.host)
	case errors.Is(err, errShort):
		return errdefs.Unavailablef("pull %s: %s %s: the download ended early, before its size and digest could be verified (%v); nothing was kept; pull again", ss.ref, what, d, err)
	}
	return classify(fmt.Sprintf("pull %s: %s %s", ss.ref, what, d), ss.host, err)
}

// layers fetches the missing layers, o.Jobs at a time.
// layers fetches the missing layers in parallel; arrived is called once
// a layer's blob is in the store (present ones at once, fetched false).
func (ss *session) layers(ctx context.Context, s Store, p *remote.Puller, repo name.Repository, layers []ocispec.Descriptor, arrived func(d digest.Digest, fetched bool)) (fetched, present int, missing []ocispec.Descriptor, err error) {
	cs := s.Content()
	seen := map[digest.Digest]bool{}
	for _, l := range layers {
		id := shortID(l.Digest)
		if sz, err := cs.Size(ctx, l.Digest); err == nil && sz == l.Size {
			arrived(l.Digest, false)
			present++
			ss.o.emit(Progress{Ref: ss.ref, ID: id, Status: "Already exists"})
			continue
		}
		fetched++
		if seen[l.Digest] {
			continue
		}
		seen[l.Digest] = true
		missing = append(missing, l)
		ss.o.emit(Progress{Ref: ss.ref, ID: id, Status: "Pulling fs layer"})
	}
	jobs := ss.o.jobs()
	for i, l := range missing {
		if i >= jobs {
			ss.o.emit(Progress{Ref: ss.ref, ID: shortID(l.Digest), Status: "Waiting"})
		}
	}
	err = ss.parallel(ctx, "pull "+ss.ref, len(missing), func(ctx context.Context, i int) error {
		if err := ss.fetchLayer(ctx, cs, p, repo, missing[i]); err != nil {
			return err
		}
		arrived(missing[i].Digest, true)
		return nil
	})
	return fetched, present, missing, err
}

func (ss *session) fetchLayer(ctx context.Context, cs image.ContentStore, p *remote.Puller, repo name.Repository, l ocispec.Descriptor) error {
	id := shortID(l.Digest)
	rc, err := ss.openBlob(ctx, p, repo, l.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	const step = 512 << 10
	next := int64(0)
	cr := &checkReader{r: rc, want: l.Digest, size: l.Size, h: digest.SHA256.Hash(), on: func(n int64) {
		if n >= next || n == l.Size {
			next = n + step
			ss.o.emit(Progress{Ref: ss.ref, ID: id, Status: "Downloading", Current: n, Total: l.Size})
		}
	}}
	ss.o.emit(Progress{Ref: ss.ref, ID: id, Status: "Downloading", Current: 0, Total: l.Size})
	if err := cs.Ingest(ctx, l.Digest, l.Size, &eofNotify{r: cr, fn: func() {
		ss.o.emit(Progress{Ref: ss.ref, ID: id, Status: "Verifying Checksum"})
	}}); err != nil {
		if errdefs.IsInvalid(err) && cr.final() != nil {
			err = fmt.Errorf("%w: %w", errDigest, err)
			if cr.n < cr.size {
				err = fmt.Errorf("%w: %w", errShort, err)
			}
		}
		return ss.blobError("layer", l.Digest, err)
	}
	ss.o.emit(Progress{Ref: ss.ref, ID: id, Status: "Download complete"})
	return nil
}

// eofNotify calls fn once when r reaches EOF.
type eofNotify struct {
	r    io.Reader
	fn   func()
	done bool
}

func (e *eofNotify) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF && !e.done {
		e.done = true
		e.fn()
	}
	return n, err
}
