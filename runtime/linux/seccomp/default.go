package seccomp

import (
	profiles "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Default returns Docker's default profile for a container holding the
// named capabilities (CAP_SYS_ADMIN, CAP_SYS_PTRACE, … open more calls, as
// in Docker).
func Default(capNames []string) (*specs.LinuxSeccomp, error) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: capNames}}}
	return profiles.GetDefaultProfile(spec)
}
