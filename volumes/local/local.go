// Package local is berth's volumes.Manager: each volume is a directory
// ROOT/volumes/<name>/ holding meta.json (what it was created with),
// _data/ (what containers mount) and, once a container has filled it
// from its image (runtime/linux/rootfs copy-up), the .initialized marker.
//
// Create and Remove of a volume hold ROOT/volumes/<name>.lock; copy-up,
// in the container's init, holds ROOT/volumes/<name>/.lock, which Remove
// also takes, so a volume is never deleted under a copy in progress.
package local

import (
	"berth.dev/berth/internal/labels"

	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/volumes"
)

// Names inside a volume's directory.
const (
	MetaFile        = "meta.json"
	DataDir         = "_data"
	InitializedFile = ".initialized"
	CopyLockFile    = ".lock"
)

// Driver is the only driver there is.
const Driver = "local"

// ProjectLabel is compose's project label: a volume carrying another
// project's is that project's.
const ProjectLabel = "com.docker.compose.project"

// Manager keeps volumes under a state root.
type Manager struct {
	root *state.Root
	dir  string
	// InUse lists the containers (names) that mount the named volume;
	// Remove refuses a volume for which it returns any. nil: never in
	// use. The CLI wires it from the runtime's containers.
	InUse func(name string) ([]string, error)
}

var _ volumes.Manager = (*Manager)(nil)

// meta is meta.json.
type meta struct {
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels,omitempty"`
	Driver     string            `json:"driver"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	Created    time.Time         `json:"created"`
	Anonymous  bool              `json:"anonymous,omitempty"`
}

// New opens the volumes of root, creating ROOT/volumes (0700).
func New(root *state.Root) (*Manager, error) {
	dir := filepath.Join(root.Path, "volumes")
	for _, d := range []string{dir, filepath.Join(dir, locksDir)} {
		if err := os.Mkdir(d, 0o700); err != nil && !os.IsExist(err) {
			return nil, fmt.Errorf("volumes: %w", err)
		}
	}
	// Anonymous volumes come and go with their containers.
	state.SpreadSubdirs(dir)
	return &Manager{root: root, dir: dir}, nil
}

// Dir is the volume's directory, ROOT/volumes/<name> (the name checked).
func (m *Manager) Dir(name string) (string, error) { return m.root.VolumeDir(name) }

// lock takes ROOT/volumes/.locks/<name>: outside the volume's dir, so it
// outlives a Remove, and a dot name no volume can have.
func (m *Manager) lock(ctx context.Context, name string) (*state.Lock, error) {
	return state.AcquireFile(ctx, filepath.Join(m.dir, locksDir, name), fmt.Sprintf("volume %q", name), state.LockOptions{})
}

const locksDir = ".locks"

func driverOf(d string) string {
	if d == "" {
		return Driver
	}
	return d
}

// opts is a checked driver_opts.
type opts struct {
	kind   string // "" (a plain dir), "bind" or "tmpfs"
	device string // bind: the host dir
	o      []string
}

// parseOpts checks driver_opts: none, type: none + o: bind + device (an
// existing host dir, when check), or type: tmpfs (+ o: size=…,mode=…).
func parseOpts(name string, do map[string]string, check bool) (opts, error) {
	var out opts
	if len(do) == 0 {
		return out, nil
	}
	for k := range do {
		switch k {
		case "type", "o", "device":
		default:
			return out, errdefs.Invalidf("volume %q: unknown driver_opts key %q (the local driver takes type, o and device)", name, k)
		}
	}
	if o := do["o"]; o != "" {
		out.o = strings.Split(o, ",")
	}
	switch t := do["type"]; t {
	case "none":
		out.kind = "bind"
		bind := false
		for _, o := range out.o {
			switch o {
			case "bind", "rbind":
				bind = true
			case "ro", "rw", "nosuid", "nodev", "noexec", "private", "rprivate", "slave", "rslave", "shared", "rshared":
			default:
				return out, errdefs.Invalidf("volume %q: driver_opts o: %q is not an option of a bind (use bind, rbind, ro, nosuid, nodev, noexec or a propagation)", name, o)
			}
		}
		if !bind {
			return out, errdefs.Invalidf("volume %q: driver_opts type: none needs o: bind (and device: /host/dir)", name)
		}
		dev := do["device"]
		if !filepath.IsAbs(dev) || strings.ContainsRune(dev, 0) {
			return out, errdefs.Invalidf("volume %q: driver_opts device %q must be an absolute host path", name, dev)
		}
		if check {
			st, err := os.Stat(dev)
			if err != nil {
				return out, errdefs.Invalidf("volume %q: driver_opts device %s: %w; create the directory first", name, dev, err)
			}
			if !st.IsDir() {
				return out, errdefs.Invalidf("volume %q: driver_opts device %s is not a directory", name, dev)
			}
		}
		out.device = filepath.Clean(dev)
	case "tmpfs":
		out.kind = "tmpfs"
		for _, o := range out.o {
			k, v, hasValue := strings.Cut(o, "=")
			switch {
			case hasValue && (k == "size" || k == "mode") && v != "":
			case !hasValue && (o == "nosuid" || o == "nodev" || o == "noexec" || o == "exec"):
			default:
				return out, errdefs.Invalidf("volume %q: driver_opts o: tmpfs option %q is not supported (use size=, mode=, nosuid, nodev, noexec)", name, o)
			}
		}
	case "":
		return out, errdefs.Invalidf("volume %q: driver_opts without type: give type: none (with o: bind, device: /dir) or type: tmpfs", name)
	default:
		return out, errdefs.Invalidf("volume %q: driver_opts type %q is not supported by berth's local driver (use none with o: bind, or tmpfs)", name, t)
	}
	return out, nil
}

// NewAnonymousName returns a random 64-hex volume name.
func NewAnonymousName() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// Create makes the volume, or returns the existing one when it was
// created with the same spec. A Spec without a name makes an anonymous
// volume with a random 64-hex name.
func (m *Manager) Create(ctx context.Context, s volumes.Spec) (volumes.Volume, error) {
	anonymous := s.Name == ""
	if anonymous {
		s.Name = NewAnonymousName()
	}
	dir, err := m.root.VolumeDir(s.Name)
	if err != nil {
		return volumes.Volume{}, err
	}
	if d := driverOf(s.Driver); d != Driver {
		return volumes.Volume{}, errdefs.Invalidf("volume %q: driver %q is not available: berth has the local driver only", s.Name, s.Driver)
	}
	o, err := parseOpts(s.Name, s.DriverOpts, true)
	if err != nil {
		return volumes.Volume{}, err
	}
	lk, err := m.lock(ctx, s.Name)
	if err != nil {
		return volumes.Volume{}, err
	}
	defer lk.Unlock()
	if have, err := m.read(s.Name); err == nil {
		if err := conflict(s, have); err != nil {
			return volumes.Volume{}, err
		}
		return m.view(have), nil
	} else if !errdefs.IsNotFound(err) {
		return volumes.Volume{}, err
	}
	// A dir without meta.json is a create that crashed: reuse it.
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return volumes.Volume{}, fmt.Errorf("volume %q: %w", s.Name, err)
	}
	if o.kind == "" {
		if err := os.Mkdir(filepath.Join(dir, DataDir), 0o755); err != nil && !os.IsExist(err) {
			return volumes.Volume{}, fmt.Errorf("volume %q: %w", s.Name, err)
		}
		if err := os.Chmod(filepath.Join(dir, DataDir), 0o755); err != nil { // umask
			return volumes.Volume{}, fmt.Errorf("volume %q: %w", s.Name, err)
		}
	}
	mt := &meta{Name: s.Name, Labels: maps.Clone(s.Labels), Driver: Driver, DriverOpts: maps.Clone(s.DriverOpts),
		Created: time.Now().UTC().Truncate(time.Second), Anonymous: anonymous}
	// meta.json last: it is what makes the volume exist.
	if err := state.WriteJSON(filepath.Join(dir, MetaFile), mt, 0o600); err != nil {
		return volumes.Volume{}, fmt.Errorf("volume %q: %w", s.Name, err)
	}
	return m.view(mt), nil
}

// conflict says why an existing volume does not match the spec, or nil.
func conflict(s volumes.Spec, have *meta) error {
	if maps.Equal(s.Labels, have.Labels) && maps.Equal(s.DriverOpts, have.DriverOpts) {
		return nil
	}
	if len(have.Labels) == 0 && len(s.Labels) > 0 {
		return errdefs.Conflictf("volume %q already exists but was not created by berth or Docker Compose for this project; use external: true to use an existing volume, or remove it ('berth volume rm %s')", s.Name, s.Name)
	}
	if p, q := have.Labels[ProjectLabel], s.Labels[ProjectLabel]; p != "" && q != "" && p != q {
		return errdefs.Conflictf("volume %q already exists but was created for project %q, not %q; use external: true to use it, or remove it first", s.Name, p, q)
	}
	return errdefs.Conflictf("volume %q already exists with other labels or driver options; remove it first ('berth volume rm %s'; 'berth down -v' does for a project's volumes)", s.Name, s.Name)
}

func (m *Manager) read(name string) (*meta, error) {
	dir, err := m.root.VolumeDir(name)
	if err != nil {
		return nil, err
	}
	var mt meta
	if err := state.ReadJSON(filepath.Join(dir, MetaFile), &mt); err != nil {
		if errdefs.IsNotFound(err) {
			return nil, errdefs.NotFoundf("no such volume: %s (list volumes with 'berth volume ls', or create it with 'berth volume create %s')", name, name)
		}
		return nil, fmt.Errorf("volume %q: %w", name, err)
	}
	return &mt, nil
}

func (m *Manager) view(mt *meta) volumes.Volume {
	v := volumes.Volume{
		Spec:      volumes.Spec{Name: mt.Name, Labels: maps.Clone(mt.Labels), Driver: mt.Driver, DriverOpts: maps.Clone(mt.DriverOpts)},
		Created:   mt.Created,
		Anonymous: mt.Anonymous,
	}
	o, _ := parseOpts(mt.Name, mt.DriverOpts, false)
	switch o.kind {
	case "bind":
		v.Mountpoint = o.device
	case "tmpfs":
	default:
		v.Mountpoint = filepath.Join(m.dir, mt.Name, DataDir)
	}
	return v
}

// IsTmpfs reports whether containers get a tmpfs for v rather than a
// directory (driver_opts type: tmpfs); its Mountpoint is then "".
func IsTmpfs(v volumes.Volume) bool { return v.DriverOpts["type"] == "tmpfs" }

// MountFor is how the runtime mounts v (the container's mode, ro or rw,
// and nocopy are the caller's to add):
//   - a plain volume: "volume" of its _data dir, which the runtime binds
//     after copying the image's content at the target into it once;
//   - type: none, o: bind: "bind" of the device dir, with o's options;
//   - type: tmpfs: "tmpfs" with o's size and mode (exec unless noexec);
//     the source, the volume's dir, only names the volume.
func (m *Manager) MountFor(v volumes.Volume) (typ, source string, options []string) {
	o, _ := parseOpts(v.Name, v.DriverOpts, false)
	switch o.kind {
	case "bind":
		options = []string{"rbind"}
		for _, x := range o.o {
			if x != "bind" && x != "rbind" && x != "rw" {
				options = append(options, x)
			}
		}
		return "bind", v.Mountpoint, options
	case "tmpfs":
		if !slices.Contains(o.o, "noexec") {
			options = append(options, "exec")
		}
		for _, x := range o.o {
			if x != "exec" {
				options = append(options, x)
			}
		}
		return "tmpfs", filepath.Join(m.dir, v.Name), options
	}
	return "volume", v.Mountpoint, nil
}

// Inspect returns the named volume, or ErrNotFound.
func (m *Manager) Inspect(ctx context.Context, name string) (volumes.Volume, error) {
	mt, err := m.read(name)
	if err != nil {
		return volumes.Volume{}, err
	}
	return m.view(mt), nil
}

// List returns the volumes carrying all of f's labels with their values,
// sorted by name.
func (m *Manager) List(ctx context.Context, f volumes.Filter) ([]volumes.Volume, error) {
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	var out []volumes.Volume
	for _, e := range entries {
		if !e.IsDir() || state.ValidName("volume", e.Name()) != nil {
			continue
		}
		mt, err := m.read(e.Name())
		if errdefs.IsNotFound(err) {
			continue // a create that crashed before meta.json, or a remove in progress
		}
		if err != nil {
			return nil, err
		}
		if labels.Match(mt.Labels, f.Labels) {
			out = append(out, m.view(mt))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes the volume and its data; one that InUse names a
// container for is ErrConflict, a missing one nil. A bind volume's
// device is never touched.
func (m *Manager) Remove(ctx context.Context, name string) error {
	dir, err := m.root.VolumeDir(name)
	if err != nil {
		return err
	}
	lk, err := m.lock(ctx, name)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := m.read(name); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	if m.InUse != nil {
		users, err := m.InUse(name)
		if err != nil {
			return fmt.Errorf("volume %q: which containers use it: %w", name, err)
		}
		if len(users) > 0 {
			sort.Strings(users)
			return errdefs.Conflictf("volume %q is in use by container %s; remove the container first ('berth container rm %s')", name, strings.Join(users, ", "), strings.Join(users, " "))
		}
	}
	// Wait for a copy-up in progress (a container starting on it).
	cl, err := state.AcquireFile(ctx, filepath.Join(dir, CopyLockFile), fmt.Sprintf("volume %q copy-up", name), state.LockOptions{})
	if err != nil {
		return err
	}
	defer cl.Unlock()
	// Out of volumes/ in one rename, then deleted: a crash leaves the
	// volume whole or gone, and the rest in tmp/.
	tmp, err := os.MkdirTemp(m.root.TmpDir(), "volume-"+name+"-")
	if err != nil {
		return fmt.Errorf("volume %q: %w", name, err)
	}
	if err := os.Rename(dir, filepath.Join(tmp, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("volume %q: %w", name, err)
	}
	if err := state.SyncDir(m.dir); err != nil {
		return fmt.Errorf("volume %q: %w", name, err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("volume %q: removed, but its data in %s: %w", name, tmp, err)
	}
	return nil
}
