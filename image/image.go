// Package image defines berth's image store: content-addressed blobs, a
// reference index and layer snapshots. image/local implements Store;
// image/archive applies layers safely.
package image

import (
	"context"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Store holds images. References are name[:tag], name@digest or an image
// ID, normalised as Docker does (busybox → docker.io/library/busybox:latest).
type Store interface {
	Get(ctx context.Context, ref string) (Image, error) // errdefs.ErrNotFound
	List(ctx context.Context) ([]Image, error)
	// Import makes a one-layer image from a rootfs tarball (docker import).
	Import(ctx context.Context, r io.Reader, ref string, changes []string) (Image, error)
	Tag(ctx context.Context, src, dst string) error
	// Remove refuses an image a container uses (ErrConflict naming it) unless force.
	Remove(ctx context.Context, ref string, force bool) error
	// Unpack makes the image's snapshot chain; idempotent.
	Unpack(ctx context.Context, img Image) (chainID string, err error)
	Content() ContentStore
	Snapshots() Snapshotter
}

// Image is a stored image.
type Image struct {
	ID       digest.Digest // config digest
	Refs     []string
	Manifest ocispec.Manifest
	Config   ocispec.Image
	Size     int64
	Created  time.Time
	// Intermediate: the image of one Dockerfile step (the build cache).
	Intermediate bool
}

// ContentStore holds verified blobs.
type ContentStore interface {
	// Ingest stores r after checking its size and digest; nothing is kept otherwise.
	Ingest(ctx context.Context, expected digest.Digest, size int64, r io.Reader) error
	Open(ctx context.Context, d digest.Digest) (io.ReadCloser, error) // ErrNotFound
	Size(ctx context.Context, d digest.Digest) (int64, error)
	Delete(ctx context.Context, d digest.Digest) error
	Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error
}

// Snapshotter manages layer and container snapshots. It returns mount
// descriptions and never mounts anything itself.
type Snapshotter interface {
	Prepare(ctx context.Context, key, parent string) ([]Mount, error) // writable: upper + work
	View(ctx context.Context, key, parent string) ([]Mount, error)
	Mounts(ctx context.Context, key string) ([]Mount, error)
	Commit(ctx context.Context, name, key string) error
	Remove(ctx context.Context, key string) error // children left → ErrConflict
	Stat(ctx context.Context, key string) (SnapshotInfo, error)
	Walk(ctx context.Context, fn WalkFunc) error
}

// Mount describes one mount (overlay: Lower top-most first).
type Mount struct {
	Type   string // overlay | bind
	Source string
	Lower  []string
	Upper  string
	Work   string
	RO     bool
}

// SnapshotKind tells committed layers from active container snapshots.
type SnapshotKind int

// Snapshot kinds.
const (
	KindCommitted SnapshotKind = iota
	KindActive
	KindView
)

// SnapshotInfo describes a snapshot.
type SnapshotInfo struct {
	Key, Parent string
	Kind        SnapshotKind
	Created     time.Time
	Size        int64
}

// WalkFunc is called for each snapshot.
type WalkFunc func(ctx context.Context, info SnapshotInfo) error
