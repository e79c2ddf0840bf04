package logfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseBound parses a --since or --until value as docker logs does:
//   - a duration back from now: "10m", "1h30m", "90s";
//   - a Unix time in seconds, with up to nine decimals: "1767322800",
//     "1767322800.5";
//   - an RFC 3339 date or time, whole or cut short: "2026-01-02",
//     "2026-01-02T15", "2026-01-02T15:04", "2026-01-02T15:04:05.123",
//     each with a zone ("Z", "+01:00") or without one (local time).
//
// "" is the zero time: no bound.
func ParseBound(value string, now time.Time) (time.Time, error) {
	if value == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(value); err == nil && value != "0" {
		return now.Add(-d), nil
	}
	inLocal := !(strings.ContainsAny(value, "zZ+") || strings.Count(value, "-") == 3)
	var layout string
	switch {
	case strings.Contains(value, "."):
		layout = time.RFC3339Nano
		if inLocal {
			layout = "2006-01-02T15:04:05.999999999"
		}
	case strings.Contains(value, "T"):
		colons := strings.Count(value, ":")
		if !inLocal && !strings.ContainsAny(value, "zZ") && colons > 0 {
			colons-- // the zone offset's colon
		}
		layout = [...]string{"2006-01-02T15", "2006-01-02T15:04", "2006-01-02T15:04:05"}[min(colons, 2)]
		if !inLocal {
			layout += "Z07:00"
		}
	case inLocal:
		layout = "2006-01-02"
	default:
		layout = "2006-01-02Z07:00"
	}
	var t time.Time
	var err error
	if inLocal {
		t, err = time.ParseInLocation(layout, value, now.Location())
	} else {
		t, err = time.Parse(layout, value)
	}
	if err == nil {
		return t, nil
	}
	if !strings.Contains(value, "-") || strings.HasPrefix(value, "-") {
		if t, uerr := parseUnix(value); uerr == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: give a duration (10m), a Unix time (1767322800) or an RFC 3339 time (2026-01-02T15:04:05Z)", value)
}

// parseUnix parses seconds[.fraction] since the epoch.
func parseUnix(value string) (time.Time, error) {
	secs, frac, hasFrac := strings.Cut(value, ".")
	s, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	var ns int64
	if hasFrac {
		if frac == "" || len(frac) > 9 || strings.ContainsAny(frac, "+-") {
			return time.Time{}, errors.New("bad fraction")
		}
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, err
		}
		for i := len(frac); i < 9; i++ {
			ns *= 10
		}
		if s < 0 {
			ns = -ns
		}
	}
	return time.Unix(s, ns), nil
}
