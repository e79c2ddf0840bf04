package logfile

import "testing"

// TestParseOpts: docker's json-file options and its errors.
func TestParseOpts(t *testing.T) {
	cases := []struct {
		in   []string
		want Options
	}{
		{nil, Options{}},
		{[]string{"max-size=10m"}, Options{MaxSize: 10e6}},
		{[]string{"max-size=64k", "max-file=3"}, Options{MaxSize: 64e3, MaxFiles: 3}},
		{[]string{"max-size=1.5Mi"}, Options{MaxSize: 3 << 19}},
		{[]string{"max-size=2g"}, Options{MaxSize: 2e9}},
		{[]string{"max-size=100"}, Options{MaxSize: 100}},
		{[]string{"max-size=-1"}, Options{MaxSize: -1}},
		{[]string{"max-file=1"}, Options{MaxFiles: 1}},
	}
	for _, c := range cases {
		got, err := ParseOpts(c.in)
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range [][]string{{"max-size"}, {"max-size=ten"}, {"max-size=0"}, {"max-file=0"}, {"max-file=2"},
		{"max-size=1m", "max-file=x"}, {"compress=true"}, {"mode=non-blocking"}} {
		if _, err := ParseOpts(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
