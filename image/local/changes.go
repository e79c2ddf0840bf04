package local

import (
	"encoding/json"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/internal/errdefs"
)

// applyChanges applies Dockerfile-style --change instructions to an image
// config, as docker import does: CMD, ENTRYPOINT, ENV, WORKDIR, USER,
// EXPOSE, LABEL, VOLUME, STOPSIGNAL.
func applyChanges(cfg *ocispec.ImageConfig, changes []string) error {
	for _, ch := range changes {
		instr, arg, _ := strings.Cut(strings.TrimSpace(ch), " ")
		arg = strings.TrimSpace(arg)
		bad := func(what string) error {
			return errdefs.Invalidf("--change %q: %s", ch, what)
		}
		switch strings.ToUpper(instr) {
		case "CMD", "ENTRYPOINT":
			var argv []string
			if strings.HasPrefix(arg, "[") {
				if err := json.Unmarshal([]byte(arg), &argv); err != nil {
					return bad("exec form must be a JSON array of strings, e.g. [\"sh\", \"-c\", \"echo hi\"]")
				}
			} else if arg != "" {
				argv = []string{"/bin/sh", "-c", arg}
			}
			if strings.EqualFold(instr, "CMD") {
				cfg.Cmd = argv
			} else {
				cfg.Entrypoint = argv
			}
		case "ENV":
			k, v, ok := strings.Cut(arg, "=")
			if !ok {
				k, v, ok = strings.Cut(arg, " ")
			}
			if !ok || k == "" {
				return bad("write ENV KEY=VALUE")
			}
			cfg.Env = setEnv(cfg.Env, k, strings.TrimSpace(v))
		case "WORKDIR":
			cfg.WorkingDir = arg
		case "USER":
			cfg.User = arg
		case "STOPSIGNAL":
			cfg.StopSignal = arg
		case "EXPOSE":
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range strings.Fields(arg) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				cfg.ExposedPorts[p] = struct{}{}
			}
		case "VOLUME":
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			var vols []string
			if json.Unmarshal([]byte(arg), &vols) != nil {
				vols = strings.Fields(arg)
			}
			for _, v := range vols {
				cfg.Volumes[v] = struct{}{}
			}
		case "LABEL":
			k, v, ok := strings.Cut(arg, "=")
			if !ok || k == "" {
				return bad("write LABEL key=value")
			}
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			cfg.Labels[k] = strings.Trim(v, `"`)
		default:
			return bad("berth accepts CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR")
		}
	}
	return nil
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if strings.HasPrefix(e, k+"=") {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}
