package project

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// Model is a loaded, validated project: compose-go's normalised Project plus
// what berth needs around it (files, provenance of variables, positions for
// later errors, the dependency graph and config hashes).
type Model struct {
	Project    *types.Project
	Name       string
	WorkingDir string
	Files      []string // project files as loaded (StdinName for "-")
	EnvFiles   []string // env files read for interpolation
	Profiles   []string
	Fig        bool // at least one file was converted from fig v1
	Variables  []Variable
	Warnings   []string
	docs       []*doc
}

// Dependencies returns the services s needs started first: depends_on,
// links, volumes_from services and network_mode service:NAME, sorted.
func (m *Model) Dependencies(s types.ServiceConfig) []string {
	set := map[string]bool{}
	for name := range s.DependsOn {
		set[name] = true
	}
	for _, l := range s.Links {
		name, _, _ := strings.Cut(l, ":")
		set[name] = true
	}
	for _, vf := range s.VolumesFrom {
		if strings.HasPrefix(vf, "container:") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(vf, "service:"), ":")
		set[name] = true
	}
	if name, ok := strings.CutPrefix(s.NetworkMode, "service:"); ok {
		set[name] = true
	}
	if name, ok := strings.CutPrefix(s.Ipc, "service:"); ok {
		set[name] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		if _, active := m.Project.Services[n]; active {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Order returns the active services in dependency order (dependencies
// first, ties by name), or an error naming a dependency cycle.
func (m *Model) Order() ([]string, error) {
	names := m.Project.ServiceNames()
	sort.Strings(names)
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var order, stack []string
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case done:
			return nil
		case visiting:
			i := len(stack) - 1
			for i > 0 && stack[i] != n {
				i--
			}
			cycle := append(append([]string{}, stack[i:]...), n)
			return m.errorAt("services."+n, "break the cycle: a service cannot (indirectly) depend on itself",
				"dependency cycle: %s", strings.Join(cycle, " → "))
		}
		state[n] = visiting
		stack = append(stack, n)
		for _, d := range m.Dependencies(m.Project.Services[n]) {
			if err := visit(d); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// hashExcluded are the service fields a config hash leaves out: changing
// them never requires recreating a container.
var hashExcluded = map[string]bool{
	"build": true, "pull_policy": true, "scale": true, "depends_on": true,
	"profiles": true, "develop": true, "post_start": true, "pre_stop": true,
}

// ServiceHash is the config hash of one service: a digest over per-field
// digests, so a change can be explained field by field.
type ServiceHash struct {
	Hash   string            `json:"hash"`
	Fields map[string]string `json:"fields"` // field name → sha256 of its canonical JSON
}

// Hash computes the config hash of a service. imageDigest is the resolved
// image (config) digest when known; it is part of the hash so a new image
// under the same tag recreates the container. The hash is independent of
// key order in the file and of map iteration order.
func (m *Model) Hash(service, imageDigest string) (ServiceHash, error) {
	s, ok := m.Project.Services[service]
	if !ok {
		if _, disabled := m.Project.DisabledServices[service]; disabled {
			return ServiceHash{}, &Error{Service: service, Msg: "service is not active in the selected profiles",
				Hint: "enable its profile with --profile"}
		}
		return ServiceHash{}, &Error{Service: service, Msg: "no such service",
			Hint: "the services are: " + strings.Join(sortedServiceNames(m), ", ")}
	}
	return HashService(s, imageDigest)
}

// HashService is Hash for a service config outside a Model.
func HashService(s types.ServiceConfig, imageDigest string) (ServiceHash, error) {
	if s.Deploy != nil {
		d := *s.Deploy
		d.Replicas = nil // scale is not part of a container's config
		s.Deploy = &d
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return ServiceHash{}, fmt.Errorf("service %q: hash: %w", s.Name, err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		return ServiceHash{}, fmt.Errorf("service %q: hash: %w", s.Name, err)
	}
	if imageDigest != "" {
		fields["image_digest"] = imageDigest
	}
	out := ServiceHash{Fields: map[string]string{}}
	keys := make([]string, 0, len(fields))
	for k, v := range fields {
		if hashExcluded[k] {
			continue
		}
		canon, err := json.Marshal(v) // maps marshal with sorted keys
		if err != nil {
			return ServiceHash{}, fmt.Errorf("service %q: hash %s: %w", s.Name, k, err)
		}
		sum := sha256.Sum256(canon)
		out.Fields[k] = hex.EncodeToString(sum[:])
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, out.Fields[k])
	}
	out.Hash = hex.EncodeToString(h.Sum(nil))
	return out, nil
}

// ChangedFields lists the fields whose digests differ between two hashes,
// sorted: the "config hash changed: image, environment" of a recreate.
func ChangedFields(old, new ServiceHash) []string {
	var out []string
	for k, v := range new.Fields {
		if old.Fields[k] != v {
			out = append(out, k)
		}
	}
	for k := range old.Fields {
		if _, ok := new.Fields[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func sortedServiceNames(m *Model) []string {
	n := m.Project.ServiceNames()
	sort.Strings(n)
	return n
}
