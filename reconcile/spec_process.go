package reconcile

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
)

// specCapNames are the capabilities by number (capabilities(7)), up to
// CHECKPOINT_RESTORE (40). Same table as runtime/linux/caps, which
// reconcile may not import.
var specCapNames = [...]string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// specDefaultCaps is Docker's default set (SECURITY.md §2).
var specDefaultCaps = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
	"SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

// specCaps resolves cap_add/cap_drop as Docker does: privileged gets all;
// otherwise the default set minus cap_drop (ALL: everything) plus cap_add
// (ALL: everything); an addition wins over a drop. The names come back
// CAP_-prefixed in capability-number order.
func specCaps(svc types.ServiceConfig) ([]string, error) {
	have := map[string]bool{}
	all := func(v bool) {
		for _, n := range specCapNames {
			have[n] = v
		}
	}
	if svc.Privileged {
		all(true)
	} else {
		for _, n := range specDefaultCaps {
			have[n] = true
		}
		for _, f := range []struct {
			name string
			list []string
		}{{"cap_drop", svc.CapDrop}, {"cap_add", svc.CapAdd}} {
			for _, c := range f.list {
				if _, err := project.CanonicalCapability(c); err != nil {
					return nil, errdefs.Invalidf("service %q: %s: %v", svc.Name, f.name, err)
				}
			}
		}
		for _, c := range svc.CapDrop {
			n, _ := project.CanonicalCapability(c)
			if n == "ALL" {
				all(false)
			} else {
				have[n] = false
			}
		}
		for _, c := range svc.CapAdd {
			n, _ := project.CanonicalCapability(c)
			if n == "ALL" {
				all(true)
			} else {
				have[n] = true
			}
		}
	}
	out := []string{}
	for _, n := range specCapNames {
		if have[n] {
			out = append(out, "CAP_"+n)
		}
	}
	return out, nil
}

// specSecurity sets capabilities, no_new_privs, seccomp and privileged
// (SECURITY.md §2): no_new_privs is on unless security_opt has
// no-new-privileges:false or the service is privileged (which lifts it,
// with seccomp, as Docker does). security_opt knows seccomp=unconfined,
// no-new-privileges[:true|false], and accepts apparmor=unconfined and
// label=disable (berth loads no AppArmor or SELinux profile, so they
// change nothing); other options are refused.
func specSecurity(s *runtime.ContainerSpec, svc types.ServiceConfig) error {
	caps, err := specCaps(svc)
	if err != nil {
		return err
	}
	p := s.OCI.Process
	p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Permitted: caps, Effective: caps}
	nnp, unconfined := true, false
	for _, so := range svc.SecurityOpt {
		k, v, _ := strings.Cut(strings.Replace(so, ":", "=", 1), "=")
		switch {
		case k == "no-new-privileges" && (v == "" || v == "true"):
			nnp = true
		case k == "no-new-privileges" && v == "false":
			nnp = false
		case k == "seccomp" && v == "unconfined":
			unconfined = true
		case k == "seccomp":
			return errdefs.Invalidf("service %q: security_opt %q: custom seccomp profiles are not supported yet; berth has its default profile and seccomp=unconfined", svc.Name, so)
		case k == "apparmor" && v == "unconfined", k == "label" && v == "disable":
		default:
			return errdefs.Invalidf("service %q: security_opt %q: berth knows seccomp=unconfined, no-new-privileges[:true|false], apparmor=unconfined and label=disable", svc.Name, so)
		}
	}
	s.Privileged = svc.Privileged
	p.NoNewPrivileges = nnp && !svc.Privileged
	if unconfined || svc.Privileged {
		s.Seccomp = "unconfined"
	}
	return nil
}

// specRlimitNames are the ulimit names Docker knows (runtime/linux/initproc
// has the same list with the resource numbers).
var specRlimitNames = map[string]bool{
	"as": true, "core": true, "cpu": true, "data": true, "fsize": true, "locks": true, "memlock": true,
	"msgqueue": true, "nice": true, "nofile": true, "nproc": true, "rss": true, "rtprio": true,
	"rttime": true, "sigpending": true, "stack": true,
}

// specUnlimited is RLIM_INFINITY, what -1 means in ulimits.
const specUnlimited = ^uint64(0)

// specRlimits are ulimits, sorted by name, as OCI rlimits (RLIMIT_NOFILE).
// A single value sets both limits; -1 is unlimited.
func specRlimits(svc types.ServiceConfig) ([]specs.POSIXRlimit, error) {
	names := make([]string, 0, len(svc.Ulimits))
	for n := range svc.Ulimits {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []specs.POSIXRlimit
	for _, name := range names {
		u := svc.Ulimits[name]
		n := strings.TrimPrefix(strings.ToLower(name), "rlimit_")
		if !specRlimitNames[n] {
			known := make([]string, 0, len(specRlimitNames))
			for k := range specRlimitNames {
				known = append(known, k)
			}
			sort.Strings(known)
			return nil, errdefs.Invalidf("service %q: ulimits.%s: unknown limit; use one of %s", svc.Name, name, strings.Join(known, ", "))
		}
		if u == nil {
			return nil, errdefs.Invalidf("service %q: ulimits.%s: give a value", svc.Name, name)
		}
		soft, hard := u.Soft, u.Hard
		if u.Single != 0 {
			soft, hard = u.Single, u.Single
		}
		conv := func(v int, which string) (uint64, error) {
			switch {
			case v == -1:
				return specUnlimited, nil
			case v < 0:
				return 0, errdefs.Invalidf("service %q: ulimits.%s: %s limit %d: give a non-negative number or -1 (unlimited)", svc.Name, name, which, v)
			}
			return uint64(v), nil
		}
		s, err := conv(soft, "soft")
		if err != nil {
			return nil, err
		}
		h, err := conv(hard, "hard")
		if err != nil {
			return nil, err
		}
		if s > h {
			return nil, errdefs.Invalidf("service %q: ulimits.%s: soft limit %d is above the hard limit %d; lower the soft limit", svc.Name, name, soft, hard)
		}
		out = append(out, specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(n), Soft: s, Hard: h})
	}
	return out, nil
}

// specSignals are Linux's signal numbers (x86 and arm, the generic
// table), by name without SIG.
var specSignals = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
	"KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16,
	"CHLD": 17, "CLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23,
	"XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30,
	"SYS": 31,
}

// Real-time signals as Docker names them: RTMIN (34) … RTMAX (64).
const specRTMin, specRTMax = 34, 64

// specParseSignal reads "SIGTERM", "TERM", "sigterm", "15", "SIGRTMIN+3"
// or "RTMAX-1". (cmd/berth/cli has the same rule over unix.SignalNum.)
func specParseSignal(s string) (int, error) {
	bad := fmt.Errorf("invalid signal %q: write a name like SIGTERM or a number (1-64)", s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > specRTMax {
			return 0, bad
		}
		return n, nil
	}
	name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	if n, ok := specSignals[name]; ok {
		return n, nil
	}
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"RTMIN", specRTMin, 1}, {"RTMAX", specRTMax, -1}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		if rest == "" {
			return rt.base, nil
		}
		op := "+"
		if rt.sign < 0 {
			op = "-"
		}
		off, err := strconv.Atoi(strings.TrimPrefix(rest, op))
		if !strings.HasPrefix(rest, op) || err != nil || off < 0 {
			return 0, bad
		}
		if n := rt.base + rt.sign*off; n >= specRTMin && n <= specRTMax {
			return n, nil
		}
		return 0, bad
	}
	return 0, bad
}

// specSetSignal stores signal number n in a unix.Signal field: reconcile
// may not import x/sys/unix or syscall (internal/archtest), and the type
// is an int underneath.
func specSetSignal[T ~int](dst *T, n int) { *dst = T(n) }
