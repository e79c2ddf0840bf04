package linux

import (
	"math"
	"testing"
	"time"
)

func TestParseNetDev(t *testing.T) {
	const netDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  eth0:    1000      10    0    0    0     0          0         0      200       2    0    0    0     0       0          0
  eth1:      24       1    0    0    0     0          0         0       76       1    0    0    0     0       0          0
`
	if rx, tx := parseNetDev(netDev); rx != 1024 || tx != 276 {
		t.Errorf("parseNetDev = %d, %d; want 1024, 276 (lo left out)", rx, tx)
	}
	if rx, tx := parseNetDev("garbage\nx: 1 2\n"); rx != 0 || tx != 0 {
		t.Errorf("malformed: %d, %d", rx, tx)
	}
}

func TestParseMemTotal(t *testing.T) {
	if got := parseMemTotal("MemTotal:       24683652 kB\nMemFree: 1 kB\n"); got != 24683652*1024 {
		t.Errorf("MemTotal = %d", got)
	}
	if got := parseMemTotal("MemFree: 1 kB\n"); got != 0 {
		t.Errorf("no MemTotal = %d", got)
	}
}

func TestCPUPercent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	prev := Stats{Pid: 7, Read: t0, CPUUsage: 1e9}
	for _, c := range []struct {
		name string
		prev Stats
		cur  Stats
		want float64
	}{
		{"one busy CPU", prev, Stats{Pid: 7, Read: t0.Add(time.Second), CPUUsage: 2e9}, 100},
		{"two busy CPUs over 100 ms", prev, Stats{Pid: 7, Read: t0.Add(100 * time.Millisecond), CPUUsage: 1.2e9}, 200},
		{"a quarter", prev, Stats{Pid: 7, Read: t0.Add(2 * time.Second), CPUUsage: 1.5e9}, 25},
		{"first sample", Stats{}, Stats{Pid: 7, Read: t0, CPUUsage: 5e9}, 0},
		{"another run", prev, Stats{Pid: 8, Read: t0.Add(time.Second), CPUUsage: 3e9}, 0},
		{"counter went back", prev, Stats{Pid: 7, Read: t0.Add(time.Second), CPUUsage: 1}, 0},
		{"no time passed", prev, Stats{Pid: 7, Read: t0, CPUUsage: 2e9}, 0},
	} {
		if got := cpuPercent(c.prev, c.cur); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: %v%%, want %v%%", c.name, got, c.want)
		}
	}
}
