package reconcile

import (
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
)

// SpecInput is what BuildSpec needs beside the model.
type SpecInput struct {
	Service string
	Number  int
	OneOff  bool
	Image   ResolvedImage
	Hash    project.ServiceHash
}

// Link is a legacy link the executor resolves against the running target
// (its address, exposed ports and environment) before Create.
type Link struct {
	Service string // the target service (or container name for external_links)
	Alias   string
	// External: an external_links entry naming a container, not a service.
	External bool
}

// Built is a container spec plus what the executor fills in at create.
type Built struct {
	Spec  runtime.ContainerSpec
	Links []Link
	// VolumesFrom, Files and HostPaths are what the executor resolves for
	// the mounts (spec_mounts.go): the containers whose mounts this one
	// gets, the secrets and configs it writes, the bind sources it checks.
	VolumesFrom []VolumesFrom `json:",omitempty"`
	Files       []SpecFile    `json:",omitempty"`
	HostPaths   []HostPath    `json:",omitempty"`
}

// BuildSpec turns one replica of a service into a container spec: pure,
// golden-tested (testdata/spec/*.spec.json).
func BuildSpec(m *project.Model, in SpecInput) (Built, error) {
	return buildSpec(m, in)
}
