package linux

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux/nsenter"
)

// NetworkFile is the orchestrator-written record of the container's
// endpoints (runtime.Networking), read at each start.
const NetworkFile = "network.json"

// ownNetNS says whether the container gets a network namespace of its own.
func ownNetNS(s runtime.ContainerSpec) bool {
	return s.NetNS == "" || s.NetNS == "private" || s.NetNS == "none"
}

// NetNSPath is where container id's network namespace is pinned.
func (r *Runtime) NetNSPath(id string) string { return filepath.Join(r.root.RunDir, "netns", id) }

func (r *Runtime) pinNetNS(id string) error {
	if err := os.MkdirAll(filepath.Join(r.root.RunDir, "netns"), 0o700); err != nil {
		return err
	}
	return nsenter.PinNetNS(r.NetNSPath(id))
}

// NetNS is the pinned namespace of the container, "" without one of its own.
func (c *Container) NetNS() string {
	m, err := c.meta()
	if err != nil || !ownNetNS(m.Spec) {
		return ""
	}
	return c.r.NetNSPath(c.id)
}

// SetNetworking records the container's endpoints for its next start
// (a record that already says so is left as it is: the orchestrator
// re-attaches before every start).
func (c *Container) SetNetworking(ctx context.Context, n runtime.Networking) error {
	if err := state.UpdateJSON(filepath.Join(c.dir(), NetworkFile), n, 0o600); err != nil {
		return fmt.Errorf("container %.12s: %w", c.id, err)
	}
	return nil
}

// Networking returns what SetNetworking recorded (nothing is not an error).
func (c *Container) Networking(ctx context.Context) (runtime.Networking, error) {
	var n runtime.Networking
	if err := state.ReadJSON(filepath.Join(c.dir(), NetworkFile), &n); err != nil && !errdefs.IsNotFound(err) {
		return n, fmt.Errorf("container %.12s: %w", c.id, err)
	}
	return n, nil
}

// joinedNetNS is the namespace file init must join: the container's own
// pin, or for container:<ref> the other container's.
func (r *Runtime) joinedNetNS(m *Meta) (string, error) {
	if ownNetNS(m.Spec) {
		p := r.NetNSPath(m.ID)
		// The runtime dir does not survive a reboot: pin a new one (the
		// orchestrator re-attaches before it starts the container).
		if !nsenter.IsNetNSPin(p) {
			if err := r.pinNetNS(m.ID); err != nil {
				return "", fmt.Errorf("container %s: %w", m.Name, err)
			}
		}
		return p, nil
	}
	ref, ok := strings.CutPrefix(string(m.Spec.NetNS), "container:")
	if !ok {
		return "", nil // host
	}
	other, err := r.find(ref)
	if err != nil {
		return "", fmt.Errorf("container %s: network_mode container:%s: %w", m.Name, ref, err)
	}
	om, err := other.meta()
	if err != nil {
		return "", err
	}
	if ownNetNS(om.Spec) {
		if p := r.NetNSPath(other.id); nsenter.IsNetNSPin(p) {
			return p, nil
		}
	}
	st, err := other.state()
	if err != nil || st.Status != "running" || !st.Init.Alive() {
		return "", errdefs.Conflictf("container %s: network_mode container:%s: that container is not running; start it first", m.Name, ref)
	}
	return fmt.Sprintf("/proc/%d/ns/net", st.Init.Pid), nil
}

// SetNetworks replaces the networks the container asks for (network
// connect/disconnect); the orchestrator attaches them.
func (c *Container) SetNetworks(ctx context.Context, nets []runtime.NetworkAttachment) error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	if !ownNetNS(m.Spec) || m.Spec.NetNS == "none" {
		return errdefs.Conflictf("container %s uses network mode %q; it cannot join bridge networks", m.Name, m.Spec.NetNS)
	}
	m.Spec.Networks = nets
	m.Spec.NetNS = "private"
	return c.writeMeta(m)
}
