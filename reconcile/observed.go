package reconcile

import (
	"context"
	"strconv"
	"time"

	"berth.dev/berth/network"
	"berth.dev/berth/runtime"
	"berth.dev/berth/volumes"
)

// Labels berth adds beside compose's (runtime.Label*).
const (
	// LabelHashFields holds the per-field digests of the config hash
	// (project.ServiceHash.Fields, each cut to 12 hex digits, as compact
	// JSON), so a recreate names the fields that changed.
	LabelHashFields = "dev.berth.config-fields"
	// LabelNetworks is the compose network keys the container is on.
	LabelNetworks = "dev.berth.networks"
)

// Observed is the machine as far as one project is concerned: what Observe
// found, immutable once built. Compute reads only this and the model.
type Observed struct {
	Project    string
	Containers []Container // the project's, one-offs included
	Networks   []Network   // the project's (labelled), and external ones asked for by name
	Volumes    []Volume
	// Images are the local images the project's services name, by the
	// reference as written (service.image, or <project>-<service> when
	// built): the config digest, "" when not present locally.
	Images map[string]string
}

// Container is one observed container of the project.
type Container struct {
	ID      string
	Name    string
	Service string
	Number  int
	OneOff  bool
	Status  runtime.Status
	Health  string // "", starting, healthy, unhealthy
	Exit    *runtime.ExitStatus
	Created time.Time
	// ConfigHash and HashFields are from the container's labels.
	ConfigHash string
	HashFields map[string]string
	Image      string // config digest it was created from
	Labels     map[string]string
}

// Network is one observed network.
type Network struct {
	Key      string // the project's key for it ("default"); "" for a network not in the model
	Name     string // its real name ("demo_default")
	Labels   map[string]string
	External bool
}

// Volume is one observed volume.
type Volume struct {
	Key    string
	Name   string
	Labels map[string]string
}

// Options shape a plan (compose's flags).
type Options struct {
	Services      []string       // selected services (empty: all); their dependencies come too unless NoDeps
	NoDeps        bool           // --no-deps
	ForceRecreate bool           // --force-recreate
	NoRecreate    bool           // --no-recreate
	NoStart       bool           // create, up --no-start
	RemoveOrphans bool           // --remove-orphans
	Scale         map[string]int // --scale SVC=N
	RenewAnon     bool           // -V, --renew-anon-volumes
	Down          bool           // desired = nothing: stop, remove containers, then networks
	DownVolumes   bool           // down -v
	Timeout       *time.Duration // -t: stop timeout override
}

// Deps is what the executor drives: interface packages only (ARCHITECTURE
// §2), so executor tests run on fakes.
type Deps struct {
	Runtime  runtime.Runtime
	Networks network.Manager
	Volumes  volumes.Manager
	// Images resolves a service's image reference to a local config
	// digest and unpacked snapshot chain (pull/build land with their
	// issues).
	Images ImageResolver
}

// ImageResolver finds local images.
type ImageResolver interface {
	// Resolve returns the image's config digest, its snapshot chain ID
	// and its config (the executor merges it into the container spec).
	Resolve(ctx context.Context, ref string) (ResolvedImage, error)
}

// ResolvedImage is a local image ready to run.
type ResolvedImage struct {
	Digest  string
	ChainID string
	Config  ImageConfig
}

// ImageConfig is what a container inherits from its image.
type ImageConfig struct {
	Entrypoint   []string
	Cmd          []string
	Env          []string
	User         string
	WorkingDir   string
	StopSignal   string
	ExposedPorts []string // "80/tcp"
	Volumes      []string
	Labels       map[string]string
	Healthcheck  *runtime.HealthCheck
}

// ContainerName is a replica's name: container_name when the service sets
// one, else <project>-<service>-<n> (compose v2's separator).
func ContainerName(project, service string, number int, containerName string) string {
	if containerName != "" {
		return containerName
	}
	return project + "-" + service + "-" + strconv.Itoa(number)
}

// OneOffName is a one-off container's name: <project>-<service>-run-<12 hex>.
func OneOffName(project, service, hex12 string) string {
	return project + "-" + service + "-run-" + hex12
}
