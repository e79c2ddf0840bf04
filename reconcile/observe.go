package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/network"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
	"berth.dev/berth/volumes"
)

// ObserveDeps reads what the machine holds of project m through d's
// interfaces only: the containers labelled with the project (their
// service, number, one-off flag and config hashes from the labels; status,
// health and exit live), the project's networks and volumes (by label,
// the key from compose's network/volume label) plus the external ones the
// model names that exist, and the local image digest of every service's
// reference ("" when it is not present). Nothing is changed. d.Volumes
// may be nil (no volumes then).
func ObserveDeps(ctx context.Context, d Deps, m *project.Model) (*Observed, error) {
	if m == nil || m.Project == nil {
		return nil, fmt.Errorf("observe: no project model")
	}
	o := &Observed{Project: m.Name, Images: map[string]string{}}
	projectLabel := map[string]string{runtime.LabelProject: m.Name}

	if d.Runtime != nil {
		infos, err := d.Runtime.List(ctx, runtime.Filter{Labels: projectLabel})
		if err != nil {
			return nil, fmt.Errorf("observe containers: %w", err)
		}
		for _, info := range infos {
			o.Containers = append(o.Containers, observedContainer(info))
		}
		slices.SortFunc(o.Containers, func(a, b Container) int {
			return strings.Compare(a.Name+"\x00"+a.ID, b.Name+"\x00"+b.ID)
		})
	}

	if d.Networks != nil {
		ns, err := d.Networks.List(ctx, network.Filter{Labels: projectLabel})
		if err != nil {
			return nil, fmt.Errorf("observe networks: %w", err)
		}
		seen := map[string]bool{}
		for _, n := range ns {
			seen[n.Name] = true
			o.Networks = append(o.Networks, Network{Key: n.Labels[LabelNetworkKey], Name: n.Name, Labels: maps.Clone(n.Labels)})
		}
		for _, key := range slices.Sorted(maps.Keys(m.Project.Networks)) {
			nc := m.Project.Networks[key]
			name := exNetworkName(m, key, nc)
			if !bool(nc.External) || seen[name] {
				continue
			}
			n, err := d.Networks.Inspect(ctx, name)
			if errdefs.IsNotFound(err) {
				continue
			} else if err != nil {
				return nil, fmt.Errorf("observe network %s: %w", name, err)
			}
			seen[name] = true
			o.Networks = append(o.Networks, Network{Key: key, Name: n.Name, Labels: maps.Clone(n.Labels), External: true})
		}
	}

	if d.Volumes != nil {
		vs, err := d.Volumes.List(ctx, volumes.Filter{Labels: projectLabel})
		if err != nil {
			return nil, fmt.Errorf("observe volumes: %w", err)
		}
		seen := map[string]bool{}
		for _, v := range vs {
			seen[v.Name] = true
			o.Volumes = append(o.Volumes, Volume{Key: v.Labels[LabelVolumeKey], Name: v.Name, Labels: maps.Clone(v.Labels)})
		}
		for _, key := range slices.Sorted(maps.Keys(m.Project.Volumes)) {
			vc := m.Project.Volumes[key]
			name := exVolumeName(m, key, vc)
			if !bool(vc.External) || seen[name] {
				continue
			}
			v, err := d.Volumes.Inspect(ctx, name)
			if errdefs.IsNotFound(err) {
				continue
			} else if err != nil {
				return nil, fmt.Errorf("observe volume %s: %w", name, err)
			}
			seen[name] = true
			o.Volumes = append(o.Volumes, Volume{Key: key, Name: v.Name, Labels: maps.Clone(v.Labels)})
		}
	}

	if d.Images != nil {
		for _, name := range slices.Sorted(maps.Keys(m.Project.Services)) {
			ref := ImageRef(m.Name, m.Project.Services[name])
			if ref == "" {
				continue
			}
			if _, ok := o.Images[ref]; ok {
				continue
			}
			img, err := d.Images.Resolve(ctx, ref)
			if errdefs.IsNotFound(err) {
				o.Images[ref] = ""
				continue
			} else if err != nil {
				return nil, fmt.Errorf("observe image %s: %w", ref, err)
			}
			o.Images[ref] = img.Digest
		}
	}
	return o, nil
}

// observedContainer reads one container's labels and state.
func observedContainer(info runtime.Info) Container {
	c := Container{
		ID: info.ID, Name: info.Name, Status: info.Status, Health: info.Health, Created: info.Created,
		Service:    info.Labels[runtime.LabelService],
		OneOff:     info.Labels[runtime.LabelOneOff] == "True",
		ConfigHash: info.Labels[runtime.LabelConfigHash],
		Labels:     maps.Clone(info.Labels),
	}
	c.Number, _ = strconv.Atoi(info.Labels[runtime.LabelNumber])
	if info.Exit != nil {
		e := *info.Exit
		c.Exit = &e
	}
	if raw := info.Labels[LabelHashFields]; raw != "" {
		var f map[string]string
		if json.Unmarshal([]byte(raw), &f) == nil {
			c.HashFields = f
		}
	}
	return c
}
