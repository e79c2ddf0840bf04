package reconcile

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
)

// ComposeVersion is the value of runtime.LabelVersion on berth's
// containers: the compose generation whose labels berth writes, marked as
// berth's.
const ComposeVersion = "2.30.0-berth"

// buildSpec: see BuildSpec. It reads only the model and in: no clock, no
// file, no map order (every map is walked sorted), so the same inputs give
// the same Built. Errors wrap errdefs.ErrInvalid and name the service.
//
// What it leaves to others, on purpose:
//   - one-off containers get no Name (the executor names them) and keep
//     the service's ports (the executor drops them unless run -p/-P/
//     --service-ports, as compose does);
//   - ports are dropped without a warning when the container has no
//     network namespace of its own to publish from (network_mode host,
//     none, service:, container:): Built carries no warnings, and compose
//     only warns there;
//   - volumes and files are placeholders (spec_mounts.go): named and
//     anonymous volumes (the image's VOLUMEs included), volumes_from,
//     secrets and configs become real mounts in the executor, which also
//     checks (or creates) bind sources on the host;
//   - ulimits are not clamped to the host's hard limits (that needs a
//     syscall; the runtime clamps at start);
//   - links are returned unresolved, in Built.Links.
func buildSpec(m *project.Model, in SpecInput) (Built, error) {
	svc, ok := m.Project.Services[in.Service]
	if !ok {
		return Built{}, errdefs.Invalidf("service %q: not in the project (the services are: %s)",
			in.Service, strings.Join(specSortedServices(m), ", "))
	}
	if svc.Name == "" {
		svc.Name = in.Service
	}
	if err := specUnsupported(svc); err != nil {
		return Built{}, err
	}
	ic := in.Image.Config
	s := runtime.ContainerSpec{
		Image:    digest.Digest(in.Image.Digest),
		ImageRef: svc.Image,
		Rootfs:   runtime.RootfsSpec{ChainID: in.Image.ChainID, ReadOnly: svc.ReadOnly},
	}
	if s.ImageRef == "" {
		s.ImageRef = m.Name + "-" + svc.Name
	}
	if !in.OneOff {
		s.Name = ContainerName(m.Name, svc.Name, in.Number, svc.ContainerName)
	}

	args, err := specArgs(svc, ic)
	if err != nil {
		return Built{}, err
	}
	proc := &specs.Process{
		Args:     args,
		Env:      specEnv(ic.Env, svc.Environment),
		Cwd:      ic.WorkingDir,
		User:     specs.User{Username: ic.User},
		Terminal: svc.Tty,
	}
	if svc.WorkingDir != "" {
		if !path.IsAbs(svc.WorkingDir) {
			return Built{}, errdefs.Invalidf("service %q: working_dir %q: write an absolute path inside the container", svc.Name, svc.WorkingDir)
		}
		proc.Cwd = svc.WorkingDir
	}
	if svc.User != "" {
		proc.User.Username = svc.User
	}
	if svc.OomScoreAdj != 0 {
		if svc.OomScoreAdj < -1000 || svc.OomScoreAdj > 1000 {
			return Built{}, errdefs.Invalidf("service %q: oom_score_adj %d: must be between -1000 and 1000", svc.Name, svc.OomScoreAdj)
		}
		v := int(svc.OomScoreAdj)
		proc.OOMScoreAdj = &v
	}
	if proc.Rlimits, err = specRlimits(svc); err != nil {
		return Built{}, err
	}
	oci := &specs.Spec{
		Version:    specs.Version,
		Process:    proc,
		Hostname:   svc.Hostname,
		Domainname: svc.DomainName,
		Linux:      &specs.Linux{},
	}
	s.OCI = oci
	if err := specSecurity(&s, svc); err != nil {
		return Built{}, err
	}
	if len(svc.Sysctls) > 0 {
		oci.Linux.Sysctl = map[string]string{}
		for k, v := range svc.Sysctls {
			oci.Linux.Sysctl[k] = v
		}
	}
	ms, err := specMounts(m, svc, ic)
	if err != nil {
		return Built{}, err
	}
	oci.Mounts = ms.mounts
	if oci.Linux.Resources, err = specResources(svc); err != nil {
		return Built{}, err
	}

	netKeys, err := specNetworking(&s, m, svc, in.OneOff)
	if err != nil {
		return Built{}, err
	}
	if s.NetNS == "private" {
		if s.Ports, err = specPorts(svc); err != nil {
			return Built{}, err
		}
	}
	s.Expose = specStrings(svc.Expose)
	s.DNS = specStrings(svc.DNS)
	s.DNSSearch = specStrings(svc.DNSSearch)
	s.DNSOptions = specStrings(svc.DNSOpts)
	s.ExtraHosts = specExtraHosts(svc.ExtraHosts)

	if s.Restart, err = specRestart(svc); err != nil {
		return Built{}, err
	}
	if s.Health, err = specHealth(svc, ic.Healthcheck); err != nil {
		return Built{}, err
	}
	if s.Log, err = specLog(svc); err != nil {
		return Built{}, err
	}
	sig, from := ic.StopSignal, "the image's STOPSIGNAL"
	if svc.StopSignal != "" {
		sig, from = svc.StopSignal, "stop_signal"
	}
	if sig != "" {
		n, err := specParseSignal(sig)
		if err != nil {
			return Built{}, errdefs.Invalidf("service %q: %s: %w", svc.Name, from, err)
		}
		specSetSignal(&s.StopSignal, n)
	}
	if svc.StopGracePeriod != nil {
		if *svc.StopGracePeriod < 0 {
			return Built{}, errdefs.Invalidf("service %q: stop_grace_period cannot be negative", svc.Name)
		}
		s.StopTimeout = time.Duration(*svc.StopGracePeriod)
	}

	s.Init = svc.Init != nil && *svc.Init
	s.ShmSize = int64(svc.ShmSize)
	if s.ShmSize < 0 {
		return Built{}, errdefs.Invalidf("service %q: shm_size cannot be negative", svc.Name)
	}
	s.GroupAdd = specStrings(svc.GroupAdd)
	s.OpenStdin = svc.StdinOpen

	if s.Labels, err = specLabels(m, svc, in, ic.Labels, netKeys); err != nil {
		return Built{}, err
	}
	return Built{Spec: s, Links: specLinks(svc), VolumesFrom: ms.from, Files: ms.files, HostPaths: ms.hostPaths}, nil
}

// specArgs is the command line, by Docker's rule: a service entrypoint
// (even an empty one) replaces the image's ENTRYPOINT and drops its CMD; a
// service command (even an empty one) replaces the CMD.
func specArgs(svc types.ServiceConfig, ic ImageConfig) ([]string, error) {
	entry, cmd := ic.Entrypoint, ic.Cmd
	if svc.Entrypoint != nil {
		entry, cmd = svc.Entrypoint, nil
	}
	if svc.Command != nil {
		cmd = svc.Command
	}
	args := append(append([]string{}, entry...), cmd...)
	if len(args) == 0 {
		return nil, errdefs.Invalidf("service %q: no command: the image has no CMD or ENTRYPOINT and the service sets none; set command: (or entrypoint:)", svc.Name)
	}
	return args, nil
}

// specEnv is the image's environment with the service's on top: variables
// the image sets keep its order (overridden in place), the service's new
// ones follow sorted by name. A variable without a value (unset in the
// shell at load) is not passed, so the image's value, if any, stays.
func specEnv(image []string, service types.MappingWithEquals) []string {
	out := []string{}
	index := map[string]int{}
	for _, kv := range image {
		k, _, _ := strings.Cut(kv, "=")
		if k == "" {
			continue
		}
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	keys := make([]string, 0, len(service))
	for k, v := range service {
		if v != nil && k != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv := k + "=" + *service[k]
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// specLabels are the image's labels, the service's over them, then
// compose's and berth's.
func specLabels(m *project.Model, svc types.ServiceConfig, in SpecInput, image map[string]string, netKeys []string) (map[string]string, error) {
	l := map[string]string{}
	for k, v := range image {
		l[k] = v
	}
	for k, v := range svc.Labels {
		l[k] = v
	}
	oneOff := "False"
	if in.OneOff {
		oneOff = "True"
	}
	l[runtime.LabelProject] = m.Name
	l[runtime.LabelService] = svc.Name
	l[runtime.LabelNumber] = strconv.Itoa(in.Number)
	l[runtime.LabelOneOff] = oneOff
	l[runtime.LabelConfigHash] = in.Hash.Hash
	l[runtime.LabelDependsOn] = specDependsOn(svc.DependsOn)
	l[runtime.LabelWorkingDir] = m.WorkingDir
	l[runtime.LabelConfigFiles] = strings.Join(m.Files, ",")
	l[runtime.LabelVersion] = ComposeVersion
	short := make(map[string]string, len(in.Hash.Fields))
	for k, v := range in.Hash.Fields {
		if len(v) > 12 {
			v = v[:12]
		}
		short[k] = v
	}
	raw, err := json.Marshal(short) // keys sorted
	if err != nil {
		return nil, fmt.Errorf("service %q: hash fields label: %w", svc.Name, err)
	}
	l[LabelHashFields] = string(raw)
	if len(netKeys) > 0 {
		l[LabelNetworks] = strings.Join(netKeys, ",")
	}
	return l, nil
}

// specDependsOn is compose's depends_on label: name:condition:restart,
// sorted by name.
func specDependsOn(d types.DependsOnConfig) string {
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		cond := d[n].Condition
		if cond == "" {
			cond = types.ServiceConditionStarted
		}
		parts = append(parts, fmt.Sprintf("%s:%s:%t", n, cond, d[n].Restart))
	}
	return strings.Join(parts, ",")
}

// specLinks are links (services) then external_links (containers), as
// written; an alias defaults to the name.
func specLinks(svc types.ServiceConfig) []Link {
	var out []Link
	add := func(entry string, external bool) {
		name, alias, _ := strings.Cut(entry, ":")
		if alias == "" {
			alias = name
		}
		out = append(out, Link{Service: name, Alias: alias, External: external})
	}
	for _, l := range svc.Links {
		add(l, false)
	}
	for _, l := range svc.ExternalLinks {
		add(l, true)
	}
	return out
}

// specUnsupported refuses what berth cannot run faithfully yet, rather
// than start a container that silently lacks it. One place to shrink as
// features land.
func specUnsupported(svc types.ServiceConfig) error {
	type field struct {
		name string
		set  bool
		hint string
	}
	for _, f := range []field{
		{"devices", len(svc.Devices) > 0, "berth does not pass host devices into containers yet"},
		{"device_cgroup_rules", len(svc.DeviceCgroupRules) > 0, "berth does not pass host devices into containers yet"},
		{"gpus", len(svc.Gpus) > 0, "berth does not pass GPUs into containers"},
		{"pid", svc.Pid != "", "containers always get a PID namespace of their own"},
		{"ipc", svc.Ipc != "" && svc.Ipc != "private" && svc.Ipc != "shareable", "containers always get an IPC namespace of their own"},
		{"uts", svc.Uts != "", "containers always get a UTS namespace of their own"},
		{"userns_mode", svc.UserNSMode != "", "berth runs containers without a user namespace"},
		{"cgroup_parent", svc.CgroupParent != "", "berth places containers under its own cgroup"},
	} {
		if f.set {
			return errdefs.Invalidf("service %q: %s is not supported: %s", svc.Name, f.name, f.hint)
		}
	}
	return nil
}

func specStrings[S ~[]string](in S) []string {
	if len(in) == 0 {
		return nil
	}
	return append([]string(nil), in...)
}

func specSortedServices(m *project.Model) []string {
	n := m.Project.ServiceNames()
	sort.Strings(n)
	return n
}
