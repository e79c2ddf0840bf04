// Package volumes defines berth's volume manager. volumes/local implements
// it as directories under the state root, with the optional FileStore and
// HostPaths beside it.
package volumes

import (
	"context"
	"time"
)

// Manager follows network.Manager's rules: Create is idempotent for the
// same Spec, a conflicting or unlabelled volume of that name is
// errdefs.ErrConflict, Remove of a volume in use is ErrConflict and of a
// missing one nil.
type Manager interface {
	Create(ctx context.Context, s Spec) (Volume, error)
	Inspect(ctx context.Context, name string) (Volume, error)
	List(ctx context.Context, f Filter) ([]Volume, error)
	Remove(ctx context.Context, name string) error
}

// Spec describes a volume.
type Spec struct {
	Name       string
	Labels     map[string]string
	Driver     string            // local
	DriverOpts map[string]string // type, o, device
}

// Volume is an existing volume.
type Volume struct {
	Spec
	Mountpoint string
	Created    time.Time
	Anonymous  bool
}

// Filter selects volumes by labels.
type Filter struct{ Labels map[string]string }

// Labels on anonymous volumes. Docker marks its anonymous volumes with
// LabelAnonymous; berth adds LabelAnonymousFor, "<container>:<target>",
// so `volume ls` tells whose they are.
const (
	LabelAnonymous    = "com.docker.volume.anonymous"
	LabelAnonymousFor = "dev.berth.anonymous-for"
	// LabelAutoRemove marks an anonymous volume of a --rm container: it
	// goes once no container uses it (run -d --rm: the shim removes the
	// container, and the next berth command that opens the volumes
	// removes its volumes).
	LabelAutoRemove = "dev.berth.auto-remove"
)

// File is one secret or config to write for a container: its content
// comes from the host file Source, else from Content; it gets Mode and
// belongs to UID:GID.
type File struct {
	Kind    string // "secrets" | "configs"
	Name    string // the project's key for it
	Source  string // an absolute host path to copy; "" to write Content
	Content []byte
	Mode    uint32 // permission bits
	UID     int
	GID     int
}

// FileStore is what a Manager may add: files that containers bind
// read-only (compose secrets and configs), written under the state root.
// volumes/local implements it; the reconcile executor uses it when a
// service has secrets or configs that cannot be bound from the host as
// they are.
type FileStore interface {
	// WriteFiles writes files into a new directory of project's and
	// returns each one's host path, in order. Nothing is left of a
	// failed call.
	WriteFiles(ctx context.Context, project string, files []File) ([]string, error)
	// ReleaseFiles removes the directories WriteFiles made that hold any
	// of paths (a removed container's mount sources); other paths are
	// ignored.
	ReleaseFiles(ctx context.Context, project string, paths []string) error
	// OwnsFile reports whether path is a file WriteFiles made.
	OwnsFile(path string) bool
}

// HostPaths is what a Manager may add: the host side of bind mounts,
// checked before a container that binds them is created.
// volumes/local implements it.
type HostPaths interface {
	// EnsureHostPath checks that the absolute path exists on the host;
	// when it does not, it creates it as a directory (create) or returns
	// errdefs.ErrNotFound.
	EnsureHostPath(ctx context.Context, path string, create bool) error
}
