package cli

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/runtime"
	"golang.org/x/sys/unix"
)

type specT = runtime.ContainerSpec

// TestSpecFromImageAndFlags: Docker's rules for a container's command,
// environment, user, workdir, stop signal and limits.
func TestSpecFromImageAndFlags(t *testing.T) {
	g := &globals{env: map[string]string{"FROM_HOST": "h"}}
	ic := imageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"default"}, Env: []string{"PATH=/bin", "A=1"},
		User: "nobody", WorkingDir: "/srv", StopSignal: "SIGQUIT", Labels: map[string]string{"img": "1"}}
	cases := []struct {
		name  string
		o     createOpts
		args  []string
		check func(t *testing.T, o createOpts, s specT)
	}{
		{"image defaults", createOpts{stopTimeout: -1}, nil, func(t *testing.T, _ createOpts, s specT) {
			p := s.OCI.Process
			if !reflect.DeepEqual(p.Args, []string{"/entry", "default"}) || p.User.Username != "nobody" || p.Cwd != "/srv" {
				t.Errorf("process %+v", p)
			}
			if s.StopSignal != unix.SIGQUIT || s.StopTimeout != 0 || s.Labels["img"] != "1" {
				t.Errorf("stop %v %v labels %v", s.StopSignal, s.StopTimeout, s.Labels)
			}
			if !p.NoNewPrivileges || s.Seccomp != "" || len(p.Capabilities.Bounding) != 14 {
				t.Errorf("security defaults missing: nnp %v seccomp %q caps %d", p.NoNewPrivileges, s.Seccomp, len(p.Capabilities.Bounding))
			}
		}},
		{"args replace CMD only", createOpts{stopTimeout: -1}, []string{"x", "y"}, func(t *testing.T, _ createOpts, s specT) {
			if got := s.OCI.Process.Args; !reflect.DeepEqual(got, []string{"/entry", "x", "y"}) {
				t.Errorf("args %v", got)
			}
		}},
		{"--entrypoint drops the image CMD", createOpts{entrypoint: "sh", stopTimeout: -1}, nil, func(t *testing.T, _ createOpts, s specT) {
			if got := s.OCI.Process.Args; !reflect.DeepEqual(got, []string{"sh"}) {
				t.Errorf("args %v", got)
			}
		}},
		{"env merge", createOpts{env: []string{"A=2", "FROM_HOST", "UNSET_HERE", "B=x=y"}, stopTimeout: -1}, nil, func(t *testing.T, _ createOpts, s specT) {
			if got := s.OCI.Process.Env; !reflect.DeepEqual(got, []string{"PATH=/bin", "A=2", "FROM_HOST=h", "B=x=y"}) {
				t.Errorf("env %v", got)
			}
		}},
		{"limits", createOpts{memory: "64m", memorySwap: "-1", cpus: 1.5, pidsLimit: 20, stopTimeout: 3, stopSignal: "9", user: "0:0", workdir: "/w"}, nil,
			func(t *testing.T, _ createOpts, s specT) {
				r := s.OCI.Linux.Resources
				if *r.Memory.Limit != 64<<20 || *r.Memory.Swap != -1 || *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 || *r.Pids.Limit != 20 {
					t.Errorf("resources %+v %+v %+v", r.Memory, r.CPU, r.Pids)
				}
				if s.StopSignal != unix.SIGKILL || s.StopTimeout != 3*time.Second || s.OCI.Process.User.Username != "0:0" || s.OCI.Process.Cwd != "/w" {
					t.Errorf("stop %v %v user %q cwd %q", s.StopSignal, s.StopTimeout, s.OCI.Process.User.Username, s.OCI.Process.Cwd)
				}
			}},
		{"privileged", createOpts{privileged: true, stopTimeout: -1}, nil, func(t *testing.T, _ createOpts, s specT) {
			if s.Seccomp != "unconfined" || !s.Privileged || len(s.OCI.Process.Capabilities.Bounding) < 38 {
				t.Errorf("privileged: seccomp %q caps %d", s.Seccomp, len(s.OCI.Process.Capabilities.Bounding))
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _, err := c.o.spec(g, ic, c.args)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, c.o, s)
		})
	}
}

// TestSpecRejectsBadFlags: each bad flag is a usage error naming it.
func TestSpecRejectsBadFlags(t *testing.T) {
	g := &globals{env: map[string]string{}}
	ic := imageConfig{Cmd: []string{"sh"}}
	for flag, o := range map[string]createOpts{
		"--memory":        {memory: "lots"},
		"minimum memory":  {memory: "1m"},
		"--memory-swap":   {memorySwap: "1g"},
		"--restart":       {restart: "sometimes"},
		"--stop-signal":   {stopSignal: "SIGNOPE"},
		"--security-opt":  {securityOpt: []string{"apparmor=x"}},
		"--oom-score-adj": {oomScoreAdj: 5000, setOOM: true},
		"--network":       {net: netOpts{networks: []string{"host", "mynet"}}},
		"--publish":       {net: netOpts{publish: []string{"80:80:80"}}},
		"--add-host":      {net: netOpts{addHosts: []string{"nohost"}}},
		"--ulimit":        {ulimits: []string{"bogus=1"}},
		"NOT_A_CAP":       {capAdd: []string{"NOT_A_CAP"}},
		"--sysctl":        {sysctls: []string{"novalue"}},
		"-v":              {volumes: []string{"relative/dir:/x"}},
	} {
		_, _, err := o.spec(g, ic, nil)
		if err == nil || !strings.Contains(err.Error(), flag) && !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(strings.Trim(flag, "-"))) {
			t.Errorf("%s: %v", flag, err)
		}
	}
	if _, _, err := (&createOpts{}).spec(g, imageConfig{}, nil); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("an image without CMD and no command: %v", err)
	}
}

func TestParseSignalAndRestart(t *testing.T) {
	for in, want := range map[string]unix.Signal{"TERM": unix.SIGTERM, "SIGINT": unix.SIGINT, "9": unix.SIGKILL, "sigusr1": unix.SIGUSR1} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := parseSignal("0"); err == nil {
		t.Error("signal 0 accepted")
	}
	for in, want := range map[string]string{"": "no", "always": "always", "on-failure:3": "on-failure", "unless-stopped": "unless-stopped"} {
		p, err := parseRestart(in)
		if err != nil || p.Name != want {
			t.Errorf("%q: %+v %v", in, p, err)
		}
	}
	if p, _ := parseRestart("on-failure:3"); p.MaxRetries != 3 {
		t.Errorf("retries %d", p.MaxRetries)
	}
	for _, bad := range []string{"always:2", "on-failure:x", "never"} {
		if _, err := parseRestart(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
