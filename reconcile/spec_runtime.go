package reconcile

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	units "github.com/docker/go-units"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
)

// specCPUPeriod is the CFS period cpus: is expressed in (Docker's).
const specCPUPeriod = 100000

// specResources are the cgroup limits, nil when the service sets none.
// deploy.resources.limits win over mem_limit, cpus and pids_limit when
// set (compose's order; the loader refuses distinct values anyway).
func specResources(svc types.ServiceConfig) (*specs.LinuxResources, error) {
	mem, swap, reservation := int64(svc.MemLimit), int64(svc.MemSwapLimit), int64(svc.MemReservation)
	cpus := float64(svc.CPUS)
	pids := svc.PidsLimit
	if d := svc.Deploy; d != nil {
		if l := d.Resources.Limits; l != nil {
			if l.MemoryBytes != 0 {
				mem = int64(l.MemoryBytes)
			}
			if l.NanoCPUs != 0 {
				cpus = float64(l.NanoCPUs)
			}
			if l.Pids != 0 {
				pids = l.Pids
			}
		}
		if r := d.Resources.Reservations; r != nil && r.MemoryBytes != 0 {
			reservation = int64(r.MemoryBytes)
		}
	}
	bad := func(format string, args ...any) error {
		return errdefs.Invalidf("service %q: "+format, append([]any{svc.Name}, args...)...)
	}
	res := &specs.LinuxResources{}
	set := false
	if mem != 0 || swap != 0 || reservation != 0 {
		res.Memory = &specs.LinuxMemory{}
		set = true
	}
	switch {
	case mem < 0:
		return nil, bad("mem_limit cannot be negative")
	case mem > 0 && mem < 6<<20:
		return nil, bad("mem_limit %d: the minimum memory limit is 6MB", mem)
	case mem > 0:
		res.Memory.Limit = &mem
	}
	switch {
	case swap == 0:
	case mem == 0:
		return nil, bad("memswap_limit needs mem_limit (it is memory plus swap)")
	case swap < -1:
		return nil, bad("memswap_limit cannot be negative (except -1: unlimited swap)")
	case swap != -1 && swap < mem:
		return nil, bad("memswap_limit %d is below mem_limit %d; it is memory plus swap (-1: unlimited swap)", swap, mem)
	default:
		res.Memory.Swap = &swap
	}
	switch {
	case reservation < 0:
		return nil, bad("mem_reservation cannot be negative")
	case reservation > 0:
		res.Memory.Reservation = &reservation
	}
	if cpus < 0 {
		return nil, bad("cpus cannot be negative")
	}
	if cpus > 0 && (svc.CPUQuota != 0 || svc.CPUPeriod != 0) {
		return nil, bad("cpus and cpu_quota/cpu_period cannot both be set; keep cpus")
	}
	if cpus > 0 || svc.CPUQuota != 0 || svc.CPUPeriod != 0 || svc.CPUShares != 0 || svc.CPUSet != "" {
		res.CPU = &specs.LinuxCPU{Cpus: svc.CPUSet}
		set = true
	}
	if cpus > 0 {
		period, quota := uint64(specCPUPeriod), int64(math.Round(cpus*specCPUPeriod))
		res.CPU.Period, res.CPU.Quota = &period, &quota
	}
	if svc.CPUQuota != 0 {
		q := svc.CPUQuota
		res.CPU.Quota = &q
	}
	if svc.CPUPeriod != 0 {
		if svc.CPUPeriod < 0 {
			return nil, bad("cpu_period cannot be negative")
		}
		p := uint64(svc.CPUPeriod)
		res.CPU.Period = &p
	}
	if svc.CPUShares != 0 {
		if svc.CPUShares < 0 {
			return nil, bad("cpu_shares cannot be negative")
		}
		sh := uint64(svc.CPUShares)
		res.CPU.Shares = &sh
	}
	if pids != 0 {
		res.Pids = &specs.LinuxPids{Limit: &pids}
		set = true
	}
	if !set {
		return nil, nil
	}
	return res, nil
}

// specRestart is restart:, else deploy.restart_policy (condition none,
// on-failure or any, the default; max_attempts counts for on-failure),
// else no.
func specRestart(svc types.ServiceConfig) (runtime.RestartPolicy, error) {
	if svc.Restart != "" {
		name, n, hasN := strings.Cut(svc.Restart, ":")
		p := runtime.RestartPolicy{Name: name}
		switch name {
		case "no", "always", "unless-stopped":
			if hasN {
				return p, errdefs.Invalidf("service %q: restart %q: only on-failure takes a retry count", svc.Name, svc.Restart)
			}
		case "on-failure":
			if hasN {
				v, err := strconv.Atoi(n)
				if err != nil || v < 0 {
					return p, errdefs.Invalidf("service %q: restart %q: the retry count must be a non-negative number", svc.Name, svc.Restart)
				}
				p.MaxRetries = v
			}
		default:
			return p, errdefs.Invalidf("service %q: restart %q: use no, always, unless-stopped or on-failure[:N]", svc.Name, svc.Restart)
		}
		return p, nil
	}
	if svc.Deploy != nil && svc.Deploy.RestartPolicy != nil {
		rp := svc.Deploy.RestartPolicy
		switch rp.Condition {
		case "none", "no":
			return runtime.RestartPolicy{Name: "no"}, nil
		case "", "any", "always":
			return runtime.RestartPolicy{Name: "always"}, nil
		case "unless-stopped":
			return runtime.RestartPolicy{Name: "unless-stopped"}, nil
		case "on-failure":
			p := runtime.RestartPolicy{Name: "on-failure"}
			if rp.MaxAttempts != nil {
				if *rp.MaxAttempts > math.MaxInt32 {
					return p, errdefs.Invalidf("service %q: deploy.restart_policy.max_attempts %d is too large", svc.Name, *rp.MaxAttempts)
				}
				p.MaxRetries = int(*rp.MaxAttempts)
			}
			return p, nil
		}
		return runtime.RestartPolicy{}, errdefs.Invalidf("service %q: deploy.restart_policy.condition %q: use none, on-failure or any", svc.Name, rp.Condition)
	}
	return runtime.RestartPolicy{Name: "no"}, nil
}

// Docker's healthcheck defaults.
const (
	specHealthInterval      = 30 * time.Second
	specHealthTimeout       = 30 * time.Second
	specHealthStartInterval = 5 * time.Second
	specHealthRetries       = 3
)

// specHealth is the service's healthcheck over the image's, as Docker
// merges them (a field the service leaves out keeps the image's value),
// with Docker's defaults for what neither sets. It is nil when there is
// none to run: disable: true, a NONE test (either one's), or no test.
func specHealth(svc types.ServiceConfig, image *runtime.HealthCheck) (*runtime.HealthCheck, error) {
	sh := svc.HealthCheck
	if sh != nil && sh.Disable {
		return nil, nil
	}
	hc := runtime.HealthCheck{}
	from := "the image's HEALTHCHECK"
	if image != nil {
		hc = *image
		hc.Test = append([]string(nil), image.Test...)
	}
	if sh != nil {
		if len(sh.Test) > 0 {
			hc.Test, from = append([]string(nil), sh.Test...), "healthcheck.test"
		}
		for _, d := range []struct {
			name string
			src  *types.Duration
			dst  *time.Duration
		}{
			{"interval", sh.Interval, &hc.Interval},
			{"timeout", sh.Timeout, &hc.Timeout},
			{"start_period", sh.StartPeriod, &hc.StartPeriod},
			{"start_interval", sh.StartInterval, &hc.StartInterval},
		} {
			if d.src == nil {
				continue
			}
			v := time.Duration(*d.src)
			if v < 0 || (v != 0 && v < time.Millisecond) {
				return nil, errdefs.Invalidf("service %q: healthcheck.%s %s: give 0 or at least 1ms", svc.Name, d.name, v)
			}
			*d.dst = v
		}
		if sh.Retries != nil {
			if *sh.Retries > math.MaxInt32 {
				return nil, errdefs.Invalidf("service %q: healthcheck.retries %d is too large", svc.Name, *sh.Retries)
			}
			hc.Retries = int(*sh.Retries)
		}
	}
	if len(hc.Test) == 0 {
		return nil, nil
	}
	bad := func(why string) error {
		return errdefs.Invalidf("service %q: %s %q: %s", svc.Name, from, hc.Test, why)
	}
	switch hc.Test[0] {
	case "NONE":
		if len(hc.Test) > 1 {
			return nil, bad("NONE takes no arguments")
		}
		return nil, nil
	case "CMD":
		if len(hc.Test) < 2 || hc.Test[1] == "" {
			return nil, bad("CMD needs a command, e.g. [\"CMD\", \"pg_isready\"]")
		}
	case "CMD-SHELL":
		if len(hc.Test) != 2 || strings.TrimSpace(hc.Test[1]) == "" {
			return nil, bad("CMD-SHELL takes one command string, e.g. [\"CMD-SHELL\", \"curl -f localhost\"]")
		}
	default:
		return nil, bad("a test list starts with CMD, CMD-SHELL or NONE (or write the test as one string)")
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&hc.Interval, specHealthInterval}, {&hc.Timeout, specHealthTimeout}, {&hc.StartInterval, specHealthStartInterval}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if hc.StartPeriod < 0 {
		hc.StartPeriod = 0
	}
	if hc.Retries <= 0 {
		hc.Retries = specHealthRetries
	}
	return &hc, nil
}

// specLog is logging: (or the older log_driver/log_opt): json-file (the
// default) with max-size (docker/go-units RAMInBytes, as Docker's
// json-file reads it; -1: never rotate) and max-file, or none.
func specLog(svc types.ServiceConfig) (runtime.LogConfig, error) {
	driver, opts := svc.LogDriver, map[string]string(svc.LogOpt)
	if svc.Logging != nil {
		if svc.Logging.Driver != "" {
			driver = svc.Logging.Driver
		}
		if len(svc.Logging.Options) > 0 {
			opts = svc.Logging.Options
		}
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bad := func(format string, args ...any) error {
		return errdefs.Invalidf("service %q: logging: "+format, append([]any{svc.Name}, args...)...)
	}
	switch driver {
	case "none":
		if len(keys) > 0 {
			return runtime.LogConfig{}, bad("the none driver takes no options (got %s)", strings.Join(keys, ", "))
		}
		return runtime.LogConfig{Driver: "none"}, nil
	case "", "json-file":
	default:
		return runtime.LogConfig{}, bad("driver %q is not supported; berth has json-file (the default) and none", driver)
	}
	lc := runtime.LogConfig{Driver: "json-file"}
	for _, k := range keys {
		v := opts[k]
		switch k {
		case "max-size":
			if v == "-1" {
				lc.MaxSize = -1
				continue
			}
			n, err := units.RAMInBytes(v)
			if err != nil || n <= 0 {
				return lc, bad("max-size %q: give a size such as 10m or 512k, or -1", v)
			}
			lc.MaxSize = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return lc, bad("max-file %q: give a whole number of files, at least 1", v)
			}
			lc.MaxFile = n
		default:
			return lc, bad("option %q is not supported by berth's json-file; it knows max-size and max-file", k)
		}
	}
	return lc, nil
}
