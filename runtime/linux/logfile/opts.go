package logfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ParseOpts reads docker's json-file --log-opt values, KEY=VALUE each:
// max-size (bytes, or with a unit as docker takes it: k, m, g are powers
// of 1000, ki, mi, gi of 1024; -1 never rotates) and max-file (how many
// files to keep, json.log included; it needs max-size, as docker says).
// What is not set stays 0 in the Options, that is, the default.
func ParseOpts(opts []string) (Options, error) {
	var o Options
	for _, kv := range opts {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return o, fmt.Errorf("%q: write KEY=VALUE, e.g. max-size=10m", kv)
		}
		switch k {
		case "max-size":
			n, err := parseSize(v)
			if err != nil {
				return o, fmt.Errorf("max-size=%s: %w", v, err)
			}
			o.MaxSize = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, fmt.Errorf("max-file=%s: give a whole number of files, at least 1", v)
			}
			o.MaxFiles = n
		case "compress", "labels", "labels-regex", "env", "env-regex", "tag":
			return o, fmt.Errorf("%s: berth's json-file does not support this option yet; it knows max-size and max-file", k)
		default:
			return o, fmt.Errorf("unknown log option %q: the json-file driver takes max-size and max-file", k)
		}
	}
	if o.MaxFiles > 1 && o.MaxSize == 0 {
		return o, errors.New("max-file needs max-size: rotation happens at max-size")
	}
	return o, nil
}

// parseSize reads a size as docker's units.FromHumanSize does (decimal
// units), plus binary ones (ki, mi, gi) and -1 for no limit.
func parseSize(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"ki", 1 << 10}, {"mi", 1 << 20}, {"gi", 1 << 30},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f*float64(mult) > 1<<50 {
		return 0, errors.New("give a size such as 10m, 512k or 1g")
	}
	return int64(f * float64(mult)), nil
}
