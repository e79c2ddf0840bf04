package logfile

import (
	"testing"
	"time"
)

// TestParseBound: the --since/--until forms docker logs takes.
func TestParseBound(t *testing.T) {
	loc := time.FixedZone("here", 2*3600)
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, loc)
	cases := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"10m", now.Add(-10 * time.Minute)},
		{"1h30m", now.Add(-90 * time.Minute)},
		{"0", time.Unix(0, 0)},
		{"1767322800", time.Unix(1767322800, 0)},
		{"1767322800.5", time.Unix(1767322800, 5e8)},
		{"1767322800.000000001", time.Unix(1767322800, 1)},
		{"2026-01-02T03:04:05Z", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2026-01-02T03:04:05.25Z", time.Date(2026, 1, 2, 3, 4, 5, 25e7, time.UTC)},
		{"2026-01-02T03:04:05+01:00", time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC)},
		{"2026-01-02T03:04Z", time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)},
		{"2026-01-02T03Z", time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)},
		{"2026-01-02T03:04:05", time.Date(2026, 1, 2, 3, 4, 5, 0, loc)},
		{"2026-01-02T03:04:05.5", time.Date(2026, 1, 2, 3, 4, 5, 5e8, loc)},
		{"2026-01-02T03:04", time.Date(2026, 1, 2, 3, 4, 0, 0, loc)},
		{"2026-01-02", time.Date(2026, 1, 2, 0, 0, 0, 0, loc)},
		{"2026-01-02Z", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		got, err := ParseBound(c.in, now)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%q: %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"yesterday", "2026-13-01", "12.x", "1.1234567891", "10q", "2026-01-02T25:00Z"} {
		if _, err := ParseBound(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
