package initproc

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// Rlimit is one ulimit: Name as docker writes it (nofile, nproc, core,
// memlock, stack, …; "RLIMIT_NOFILE" accepted too). RLIM_INFINITY
// (^uint64(0)) is unlimited.
type Rlimit struct {
	Name       string
	Soft, Hard uint64
}

// Unlimited is the value of an unlimited soft or hard limit.
const Unlimited = ^uint64(0)

// rlimitResources maps docker's ulimit names to resources.
var rlimitResources = map[string]int{
	"as":         unix.RLIMIT_AS,
	"core":       unix.RLIMIT_CORE,
	"cpu":        unix.RLIMIT_CPU,
	"data":       unix.RLIMIT_DATA,
	"fsize":      unix.RLIMIT_FSIZE,
	"locks":      unix.RLIMIT_LOCKS,
	"memlock":    unix.RLIMIT_MEMLOCK,
	"msgqueue":   unix.RLIMIT_MSGQUEUE,
	"nice":       unix.RLIMIT_NICE,
	"nofile":     unix.RLIMIT_NOFILE,
	"nproc":      unix.RLIMIT_NPROC,
	"rss":        unix.RLIMIT_RSS,
	"rtprio":     unix.RLIMIT_RTPRIO,
	"rttime":     unix.RLIMIT_RTTIME,
	"sigpending": unix.RLIMIT_SIGPENDING,
	"stack":      unix.RLIMIT_STACK,
}

// rlimitName returns the docker name of name ("nofile" for "nofile",
// "NOFILE" or "RLIMIT_NOFILE") and its resource.
func rlimitName(name string) (string, int, error) {
	n := strings.ToLower(name)
	if rest, ok := strings.CutPrefix(n, "rlimit_"); ok {
		n = rest
	}
	res, ok := rlimitResources[n]
	if !ok {
		known := make([]string, 0, len(rlimitResources))
		for k := range rlimitResources {
			known = append(known, k)
		}
		sort.Strings(known)
		return "", 0, errdefs.Invalidf("ulimit %q: unknown name; use one of %s", name, strings.Join(known, ", "))
	}
	return n, res, nil
}

// ParseUlimit parses the docker CLI form "nofile=1024:2048" (soft:hard) or
// "nofile=1024" (both); -1 or "unlimited" is unlimited.
func ParseUlimit(s string) (Rlimit, error) {
	name, vals, ok := strings.Cut(s, "=")
	if !ok {
		return Rlimit{}, errdefs.Invalidf("ulimit %q: write NAME=SOFT[:HARD], like nofile=1024:2048", s)
	}
	n, _, err := rlimitName(name)
	if err != nil {
		return Rlimit{}, err
	}
	softS, hardS, hasHard := strings.Cut(vals, ":")
	soft, err := parseLimit(softS)
	if err != nil {
		return Rlimit{}, errdefs.Invalidf("ulimit %q: soft limit %q: %w", s, softS, err)
	}
	hard := soft
	if hasHard {
		if hard, err = parseLimit(hardS); err != nil {
			return Rlimit{}, errdefs.Invalidf("ulimit %q: hard limit %q: %w", s, hardS, err)
		}
	}
	r := Rlimit{Name: n, Soft: soft, Hard: hard}
	if err := checkSoftHard(r); err != nil {
		return Rlimit{}, err
	}
	return r, nil
}

func parseLimit(s string) (uint64, error) {
	if s == "-1" || s == "unlimited" {
		return Unlimited, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must be a non-negative number, -1 or unlimited")
	}
	return v, nil
}

func checkSoftHard(r Rlimit) error {
	if r.Soft > r.Hard {
		return errdefs.Invalidf("ulimit %s: soft limit %s is above the hard limit %s; lower the soft limit", r.Name, fmtLimit(r.Soft), fmtLimit(r.Hard))
	}
	return nil
}

func fmtLimit(v uint64) string {
	if v == Unlimited {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// ClampRlimits returns limits whose hard (and soft) values never exceed
// the current hard limit of the calling process for that resource
// (getrlimit), plus a warning string for each clamped one naming the
// limit and both values. Unknown names, repeated names and a soft limit
// above the hard one are errdefs.ErrInvalid. Names come back in docker's
// form (nofile).
func ClampRlimits(in []Rlimit) ([]Rlimit, []string, error) {
	out := make([]Rlimit, 0, len(in))
	var warnings []string
	seen := map[string]bool{}
	for _, r := range in {
		n, res, err := rlimitName(r.Name)
		if err != nil {
			return nil, nil, err
		}
		if seen[n] {
			return nil, nil, errdefs.Invalidf("ulimit %s: given twice; keep one", n)
		}
		seen[n] = true
		r.Name = n
		if err := checkSoftHard(r); err != nil {
			return nil, nil, err
		}
		var cur unix.Rlimit
		if err := unix.Getrlimit(res, &cur); err != nil {
			return nil, nil, fmt.Errorf("ulimit %s: getrlimit: %w", n, err)
		}
		if r.Hard > cur.Max {
			w := fmt.Sprintf("ulimit %s: hard limit %s is above this host's hard limit %s; clamped to %s",
				n, fmtLimit(r.Hard), fmtLimit(cur.Max), fmtLimit(cur.Max))
			if r.Soft > cur.Max {
				w = fmt.Sprintf("ulimit %s: soft limit %s and hard limit %s are above this host's hard limit %s; both clamped to %s",
					n, fmtLimit(r.Soft), fmtLimit(r.Hard), fmtLimit(cur.Max), fmtLimit(cur.Max))
				r.Soft = cur.Max
			}
			r.Hard = cur.Max
			warnings = append(warnings, w)
		}
		out = append(out, r)
	}
	return out, warnings, nil
}

// ApplyRlimits sets each limit on the calling process (prlimit on self),
// in order. Run ClampRlimits first: raising a hard limit fails (EPERM)
// without CAP_SYS_RESOURCE, and is never intended.
func ApplyRlimits(in []Rlimit) error {
	for _, r := range in {
		n, res, err := rlimitName(r.Name)
		if err != nil {
			return err
		}
		if err := checkSoftHard(Rlimit{Name: n, Soft: r.Soft, Hard: r.Hard}); err != nil {
			return err
		}
		// unix.Prlimit goes through package syscall, which then no longer
		// restores Go's startup RLIMIT_NOFILE for the exec'd command.
		if err := unix.Prlimit(0, res, &unix.Rlimit{Cur: r.Soft, Max: r.Hard}, nil); err != nil {
			return fmt.Errorf("ulimit %s=%s:%s: setrlimit: %w (is it above the hard limit? clamp it first)", n, fmtLimit(r.Soft), fmtLimit(r.Hard), err)
		}
	}
	return nil
}
