package cli

import (
	"encoding/json"
	"time"

	"github.com/spf13/pflag"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux/health"
)

// healthFlags are docker run's healthcheck flags. As in Docker, a zero
// value means "not given": the image's HEALTHCHECK field stays.
type healthFlags struct {
	cmd                                           string
	interval, timeout, startPeriod, startInterval time.Duration
	retries                                       int
	none                                          bool
}

// register adds --health-* and --no-healthcheck to f.
func (h *healthFlags) register(f *pflag.FlagSet) {
	f.StringVar(&h.cmd, "health-cmd", "", "Command to run to check health")
	f.DurationVar(&h.interval, "health-interval", 0, "Time between running the check (ms|s|m|h) (default 0s)")
	f.DurationVar(&h.timeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
	f.DurationVar(&h.startPeriod, "health-start-period", 0, "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
	f.DurationVar(&h.startInterval, "health-start-interval", 0, "Time between running the check during the start period (ms|s|m|h) (default 0s)")
	f.IntVar(&h.retries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	f.BoolVar(&h.none, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
}

// set reports whether any --health-* flag was given.
func (h *healthFlags) set() bool {
	return h.cmd != "" || h.interval != 0 || h.timeout != 0 || h.startPeriod != 0 ||
		h.startInterval != 0 || h.retries != 0
}

// check is the container's healthcheck: image's (which may be nil) with
// the flags given on top, as docker run merges them. It is nil when there
// is none to run: --no-healthcheck, no test anywhere, or a NONE test.
// Negative values, durations under 1ms, --no-healthcheck with --health-*,
// and a malformed test are errdefs.ErrInvalid.
func (h *healthFlags) check(image *runtime.HealthCheck) (*runtime.HealthCheck, error) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"--health-interval", h.interval},
		{"--health-timeout", h.timeout},
		{"--health-start-period", h.startPeriod},
		{"--health-start-interval", h.startInterval},
	} {
		if d.v < 0 {
			return nil, errdefs.Invalidf("%s cannot be negative", d.name)
		}
		if d.v != 0 && d.v < time.Millisecond {
			return nil, errdefs.Invalidf("%s cannot be less than 1ms", d.name)
		}
	}
	if h.retries < 0 {
		return nil, errdefs.Invalidf("--health-retries cannot be negative")
	}
	if h.none {
		if h.set() {
			return nil, errdefs.Invalidf("--no-healthcheck conflicts with --health-* options")
		}
		return nil, nil
	}
	hc := runtime.HealthCheck{}
	if image != nil {
		hc = *image
		hc.Test = append([]string(nil), image.Test...)
	}
	if h.cmd != "" {
		hc.Test = []string{"CMD-SHELL", h.cmd}
	}
	override := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	override(&hc.Interval, h.interval)
	override(&hc.Timeout, h.timeout)
	override(&hc.StartPeriod, h.startPeriod)
	override(&hc.StartInterval, h.startInterval)
	if h.retries != 0 {
		hc.Retries = h.retries
	}
	argv, err := health.Command(hc.Test)
	if err != nil {
		return nil, err
	}
	if argv == nil {
		return nil, nil
	}
	return &hc, nil
}

// imageHealthcheck is the HEALTHCHECK of a Docker image config blob
// (config.Healthcheck, durations in nanoseconds), which OCI's image-spec
// type drops; nil when there is none or the blob does not parse. A NONE
// test is returned as is: it disables an inherited check.
func imageHealthcheck(rawConfig []byte) *runtime.HealthCheck {
	var c struct {
		Config struct {
			Healthcheck *struct {
				Test                                          []string
				Interval, Timeout, StartPeriod, StartInterval time.Duration
				Retries                                       int
			}
		} `json:"config"`
	}
	if json.Unmarshal(rawConfig, &c) != nil || c.Config.Healthcheck == nil {
		return nil
	}
	hc := c.Config.Healthcheck
	return &runtime.HealthCheck{
		Test:          hc.Test,
		Interval:      hc.Interval,
		Timeout:       hc.Timeout,
		StartPeriod:   hc.StartPeriod,
		StartInterval: hc.StartInterval,
		Retries:       hc.Retries,
	}
}
