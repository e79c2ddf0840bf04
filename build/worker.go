package build

import (
	"context"
	"io"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/image"
)

// Store is what the builder needs of the image store (image/local.Store).
type Store interface {
	Get(ctx context.Context, ref string) (image.Image, error)
	// RawConfig is an image's config as stored (Docker's fields included).
	RawConfig(ctx context.Context, id digest.Digest) ([]byte, error)
	// PutLayer stores an uncompressed layer tar; entries = 0 is an empty one.
	PutLayer(ctx context.Context, r io.Reader) (desc ocispec.Descriptor, entries int, err error)
	// CommitConfig records the image of config cb over stored layers.
	CommitConfig(ctx context.Context, cb []byte, layers []ocispec.Descriptor, ref string, intermediate bool) (image.Image, error)
	Tag(ctx context.Context, src, dst string) error
}

// Worker makes the containers build steps run in.
type Worker interface {
	// New creates (does not start) a step container on img's root
	// filesystem; img.ID == "" is scratch, an empty root.
	New(ctx context.Context, img image.Image) (Step, error)
}

// Step is one step container. Paths are absolute inside its root and
// resolved there: no symlink leads out of it.
type Step interface {
	// Stat reports whether p exists and is a directory (symlinks followed
	// inside the root).
	Stat(ctx context.Context, p string) (exists, dir bool, err error)
	// CopyIn extracts a tar whose names are relative to "/"; missing
	// parent directories are created.
	CopyIn(ctx context.Context, tar io.Reader) error
	// CopyOut is a tar of p whose one top entry is named after p's last
	// element (docker cp).
	CopyOut(ctx context.Context, p string) (io.ReadCloser, error)
	// Run runs p in the container and returns its exit code; out gets
	// its stdout and stderr.
	Run(ctx context.Context, p Process, out io.Writer) (int, error)
	// Diff writes the container's changes as an uncompressed layer tar
	// (overlay whiteouts as OCI whiteouts).
	Diff(ctx context.Context, w io.Writer) error
	// Close removes the container and everything it made.
	Close(ctx context.Context) error
}

// Process is what a RUN step runs.
type Process struct {
	Args    []string
	Env     []string
	Cwd     string
	User    string
	Network string // default (the bridge), none, host
}
