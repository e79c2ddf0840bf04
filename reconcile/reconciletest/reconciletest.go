// Package reconciletest builds reconcile.Observed values for tests: a
// fluent description of the machine ("network default exists, web-1 is
// running, db-1 exited with 137") against a loaded model.
//
// By default a replica matches the model: its config hash and field
// digests are what project.HashService gives for the service and the
// image digest the builder knows, so an unchanged project plans nothing.
// Options make it diverge (ImageDigest, Env, Diverged).
package reconciletest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"berth.dev/berth/project"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime"
	"github.com/compose-spec/compose-go/v2/types"
)

// B builds an Observed. Its methods return b, so calls chain; Observed
// may be called any number of times and computes hashes then, so the
// order of Image and Running calls does not matter.
type B struct {
	m          *project.Model
	networks   []reconcile.Network
	volumes    []reconcile.Volume
	images     map[string]string
	containers []*container
}

type container struct {
	service string
	number  int
	status  runtime.Status
	exit    *runtime.ExitStatus
	oneOff  bool
	orphan  bool
	opts    []Option
}

// Option adjusts one observed container.
type Option func(*Replica)

// Replica is what an Option may change before the container is built.
type Replica struct {
	Service types.ServiceConfig // a copy: changing it changes the hash the container carries
	Digest  string              // image digest the container was created from
	// Container is the result; its hash fields are filled from Service
	// and Digest after the options ran unless set by them.
	Container reconcile.Container

	diverge      []string // fields Diverged makes differ
	noHashFields bool
}

// New starts a description of the machine for model m (project m.Name).
func New(m *project.Model) *B {
	return &B{m: m, images: map[string]string{}}
}

// Network records the project network with that key as existing.
func (b *B) Network(key string) *B {
	cfg, ok := b.m.Project.Networks[key]
	name := cfg.Name
	if name == "" {
		name = b.m.Name + "_" + key
	}
	b.networks = append(b.networks, reconcile.Network{
		Key: key, Name: name, External: ok && bool(cfg.External),
		Labels: map[string]string{"com.docker.compose.project": b.m.Name, "com.docker.compose.network": key},
	})
	return b
}

// ExternalNetwork records an existing network that is not the project's,
// by its real name; the model's key for it is found by name.
func (b *B) ExternalNetwork(name string) *B {
	key := ""
	for _, k := range sortedKeys(b.m.Project.Networks) {
		if n := b.m.Project.Networks[k]; n.Name == name || (n.Name == "" && k == name) {
			key = k
			break
		}
	}
	b.networks = append(b.networks, reconcile.Network{Key: key, Name: name, External: true, Labels: map[string]string{}})
	return b
}

// Volume records the project volume with that key as existing.
func (b *B) Volume(key string) *B {
	name := b.m.Name + "_" + key
	if cfg, ok := b.m.Project.Volumes[key]; ok && cfg.Name != "" {
		name = cfg.Name
	}
	b.volumes = append(b.volumes, reconcile.Volume{
		Key: key, Name: name,
		Labels: map[string]string{"com.docker.compose.project": b.m.Name, "com.docker.compose.volume": key},
	})
	return b
}

// AnonymousVolume records a project volume the model has no key for.
func (b *B) AnonymousVolume(name string) *B {
	b.volumes = append(b.volumes, reconcile.Volume{Name: name,
		Labels: map[string]string{"com.docker.compose.project": b.m.Name}})
	return b
}

// Image records a local image: ref as a service names it, its config
// digest ("" records it as absent).
func (b *B) Image(ref, digest string) *B {
	b.images[ref] = digest
	return b
}

// AllImages records every active service's image as present, with the
// digest FakeDigest(ref), unless Image set it already.
func (b *B) AllImages() *B {
	for _, name := range sortedKeys(b.m.Project.Services) {
		ref := reconcile.ImageRef(b.m.Name, b.m.Project.Services[name])
		if _, ok := b.images[ref]; !ok && ref != "" {
			b.images[ref] = FakeDigest(ref)
		}
	}
	return b
}

// FakeDigest is the stable digest AllImages gives an image:
// sha256: + hex(sha256(ref)).
func FakeDigest(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Running records replica n of svc as running.
func (b *B) Running(svc string, n int, opts ...Option) *B {
	return b.add(&container{service: svc, number: n, status: runtime.StatusRunning, opts: opts})
}

// Exited records replica n of svc as exited with code.
func (b *B) Exited(svc string, n, code int, opts ...Option) *B {
	return b.add(&container{service: svc, number: n, status: runtime.StatusExited,
		exit: &runtime.ExitStatus{Code: code}, opts: opts})
}

// Created records replica n of svc as created, never started.
func (b *B) Created(svc string, n int, opts ...Option) *B {
	return b.add(&container{service: svc, number: n, status: runtime.StatusCreated, opts: opts})
}

// Orphan records a running replica n of a service the model does not
// have (or no longer has).
func (b *B) Orphan(svc string, n int, opts ...Option) *B {
	return b.add(&container{service: svc, number: n, status: runtime.StatusRunning, orphan: true, opts: opts})
}

// OneOff records a running one-off container of svc (berth run), named
// <project>-<svc>-run-<12 hex>.
func (b *B) OneOff(svc string, opts ...Option) *B {
	return b.add(&container{service: svc, status: runtime.StatusRunning, oneOff: true, opts: opts})
}

func (b *B) add(c *container) *B {
	b.containers = append(b.containers, c)
	return b
}

// ImageDigest makes the container one created from image digest d (so it
// diverges on image_digest when the local image is another).
func ImageDigest(d string) Option {
	return func(r *Replica) { r.Digest = d }
}

// Env makes the container one created with environment variable k=v (so
// it diverges on environment unless the model has the same).
func Env(k, v string) Option {
	return func(r *Replica) {
		env := types.MappingWithEquals{}
		for ek, ev := range r.Service.Environment {
			env[ek] = ev
		}
		env[k] = &v
		r.Service.Environment = env
	}
}

// Diverged gives the container another config hash, with the digests of
// the fields named differing from the model's (a field the model does
// not have is one the container had).
func Diverged(fields ...string) Option {
	return func(r *Replica) { r.diverge = append(r.diverge, fields...) }
}

// Status overrides the container's status (paused, restarting, dead).
func Status(s runtime.Status) Option {
	return func(r *Replica) { r.Container.Status = s }
}

// Health sets the container's health ("starting", "healthy", "unhealthy").
func Health(h string) Option {
	return func(r *Replica) { r.Container.Health = h }
}

// ID sets the container's ID (by default derived from its name).
func ID(id string) Option {
	return func(r *Replica) { r.Container.ID = id }
}

// NoHashFields drops the field digests label, as on a container made by
// a tool that writes only the config hash.
func NoHashFields() Option {
	return func(r *Replica) { r.noHashFields = true }
}

// Observed builds the machine described so far. Each call returns a new
// value; the builder can go on.
func (b *B) Observed() *reconcile.Observed {
	o := &reconcile.Observed{
		Project: b.m.Name,
		Images:  map[string]string{},
	}
	for k, v := range b.images {
		o.Images[k] = v
	}
	o.Networks = append(o.Networks, b.networks...)
	o.Volumes = append(o.Volumes, b.volumes...)
	oneOffs := 0
	for _, c := range b.containers {
		o.Containers = append(o.Containers, b.build(c, &oneOffs))
	}
	return o
}

func (b *B) build(c *container, oneOffs *int) reconcile.Container {
	svc, known := b.m.Project.Services[c.service]
	if !known {
		svc, known = b.m.Project.DisabledServices[c.service]
	}
	ref := ""
	if known && !c.orphan {
		ref = reconcile.ImageRef(b.m.Name, svc)
	}
	r := &Replica{Service: svc, Digest: b.images[ref]}
	name := reconcile.ContainerName(b.m.Name, c.service, c.number, svc.ContainerName)
	if c.oneOff {
		*oneOffs++
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", c.service, *oneOffs)))
		name = reconcile.OneOffName(b.m.Name, c.service, hex.EncodeToString(sum[:])[:12])
	}
	r.Container = reconcile.Container{
		ID:      "id-" + name,
		Name:    name,
		Service: c.service,
		Number:  c.number,
		OneOff:  c.oneOff,
		Status:  c.status,
		Exit:    c.exit,
	}
	for _, opt := range c.opts {
		opt(r)
	}
	rc := r.Container
	rc.Image = r.Digest
	if rc.ConfigHash == "" && known && !c.orphan {
		h, err := project.HashService(r.Service, r.Digest)
		if err != nil {
			panic(fmt.Sprintf("reconciletest: hash %s: %v", c.service, err)) // a test setup error
		}
		rc.ConfigHash = h.Hash
		if rc.HashFields == nil {
			rc.HashFields = reconcile.TruncateHashFields(h.Fields)
		}
	}
	if rc.ConfigHash == "" {
		rc.ConfigHash = "orphan"
	}
	if len(r.diverge) > 0 {
		fields := map[string]string{}
		for k, v := range rc.HashFields {
			fields[k] = v
		}
		for _, f := range r.diverge {
			fields[f] = "000000000000"
		}
		sum := sha256.Sum256([]byte(fmt.Sprintf("diverged %s %v", rc.ConfigHash, r.diverge)))
		rc.ConfigHash, rc.HashFields = hex.EncodeToString(sum[:]), fields
	}
	if r.noHashFields {
		rc.HashFields = nil
	}
	oneOff := "False"
	if rc.OneOff {
		oneOff = "True"
	}
	rc.Labels = map[string]string{
		runtime.LabelProject:    b.m.Name,
		runtime.LabelService:    rc.Service,
		runtime.LabelNumber:     fmt.Sprint(rc.Number),
		runtime.LabelOneOff:     oneOff,
		runtime.LabelConfigHash: rc.ConfigHash,
	}
	if len(rc.HashFields) > 0 {
		js, _ := json.Marshal(rc.HashFields) // map[string]string: cannot fail
		rc.Labels[reconcile.LabelHashFields] = string(js)
	}
	return rc
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
