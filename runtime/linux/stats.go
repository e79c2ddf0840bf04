package linux

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime/linux/cgroups"
)

// StatsInterval is how far apart Stats takes its two samples for the CPU
// percentage. Docker's one-shot `stats --no-stream` waits for two of the
// daemon's 1 s samples; berth has no daemon collecting in the background,
// so it samples on demand: 100 ms is long enough for the nanosecond CPU
// counters to give a steady figure and short enough for a command.
const StatsInterval = 100 * time.Millisecond

// Stats is a container's resource usage, as docker stats shows it. The
// byte and time counters are cumulative over the current run; CPUPercent
// is a rate over the interval between two samples.
type Stats struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Pid is the container's init on the host: a sample of another run
	// (the container was restarted) is no base for a rate.
	Pid int `json:"pid"`
	// Read is when the counters were read.
	Read time.Time `json:"read"`
	// CPUUsage is the CPU time the container used, in nanoseconds.
	CPUUsage uint64 `json:"cpu_usage_ns"`
	// CPUPercent is the CPU it used over the sampling interval, 100 per
	// busy CPU (two busy CPUs are 200, as in docker). 0 for a first
	// sample.
	CPUPercent float64 `json:"cpu_percent"`
	// MemUsage is the memory charged to it minus the inactive page cache
	// (what docker shows); MemLimit its memory limit, or the host's
	// memory when it has none (or a larger one); MemPercent the ratio.
	MemUsage   uint64  `json:"mem_usage"`
	MemLimit   uint64  `json:"mem_limit"`
	MemPercent float64 `json:"mem_percent"`
	// NetRx and NetTx are the bytes received and sent on the interfaces
	// of its network namespace, loopback excluded (as docker counts its
	// endpoints only); 0 with network mode host.
	NetRx uint64 `json:"net_rx"`
	NetTx uint64 `json:"net_tx"`
	// BlockRead and BlockWrite are its block I/O in bytes (see
	// cgroups.BlkIOStats for how a v1 host counts them).
	BlockRead  uint64 `json:"block_read"`
	BlockWrite uint64 `json:"block_write"`
	// Pids is the number of its tasks (threads included, as docker).
	Pids uint64 `json:"pids"`
}

// Stats samples the container twice, StatsInterval apart, and returns
// the second sample with the CPU percentage over the interval. A
// container that is not running is ErrConflict.
func (c *Container) Stats(ctx context.Context) (Stats, error) {
	first, err := c.sample()
	if err != nil {
		return Stats{}, err
	}
	t := time.NewTimer(StatsInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return Stats{}, errdefs.ErrCanceled
	case <-t.C:
	}
	return c.StatsSince(ctx, first)
}

// StatsSince samples the container once and computes the CPU percentage
// over the time since prev, an earlier sample of the same container (a
// zero Stats, or a sample of another run, gives 0%). A live view calls it
// every second with the last sample, as docker stats refreshes.
func (c *Container) StatsSince(ctx context.Context, prev Stats) (Stats, error) {
	s, err := c.sample()
	if err != nil {
		return Stats{}, err
	}
	s.CPUPercent = cpuPercent(prev, s)
	return s, nil
}

// cpuPercent is the CPU time cur used since prev over the wall time
// between them, in percent of one CPU. Docker divides by the host's CPU
// time (/proc/stat) and multiplies by the online CPUs: the same ratio.
func cpuPercent(prev, cur Stats) float64 {
	if prev.Pid != cur.Pid || prev.Read.IsZero() || cur.CPUUsage < prev.CPUUsage {
		return 0
	}
	wall := cur.Read.Sub(prev.Read)
	if wall <= 0 {
		return 0
	}
	return float64(cur.CPUUsage-prev.CPUUsage) / float64(wall.Nanoseconds()) * 100
}

// sample reads the container's counters once.
func (c *Container) sample() (Stats, error) {
	m, err := c.meta()
	if err != nil {
		return Stats{}, err
	}
	st, err := c.state()
	if err != nil && !errdefs.IsNotFound(err) {
		return Stats{}, fmt.Errorf("stats of %s: %w", m.Name, err)
	}
	if st == nil || st.Status != "running" || !st.Init.Alive() {
		return Stats{}, errdefs.Conflictf("container %s is not running", m.Name)
	}
	cg, err := cgroups.Load(c.r.cgParent, c.id)
	if errdefs.IsNotFound(err) {
		return Stats{}, errdefs.Conflictf("container %s is not running", m.Name)
	}
	if err != nil {
		return Stats{}, fmt.Errorf("stats of %s: %w", m.Name, err)
	}
	defer cg.Close()
	s := Stats{ID: c.id, Name: m.Name, Pid: st.Init.Pid, Read: time.Now()}
	cs, err := cg.Stats()
	if errdefs.IsNotFound(err) {
		return Stats{}, errdefs.Conflictf("container %s is not running", m.Name)
	}
	if err != nil {
		return Stats{}, fmt.Errorf("stats of %s: %w", m.Name, err)
	}
	if cs.CPU != nil {
		s.CPUUsage = cs.CPU.Usage
	}
	host := hostMemory()
	if mem := cs.Memory; mem != nil {
		s.MemUsage = mem.Usage
		if mem.InactiveFile < mem.Usage {
			s.MemUsage -= mem.InactiveFile
		}
		s.MemLimit = mem.Limit
	}
	if s.MemLimit == 0 || (host > 0 && s.MemLimit > host) {
		s.MemLimit = host
	}
	if s.MemLimit > 0 {
		s.MemPercent = float64(s.MemUsage) / float64(s.MemLimit) * 100
	}
	if cs.Pids != nil {
		s.Pids = cs.Pids.Current
	} else if pids, err := cg.Pids(); err == nil {
		s.Pids = uint64(len(pids))
	}
	if cs.BlkIO != nil {
		s.BlockRead, s.BlockWrite = cs.BlkIO.Read, cs.BlkIO.Write
	}
	if m.Spec.NetNS != "host" {
		// The container's init is in its network namespace; a container
		// that ends meanwhile has no traffic to report.
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(st.Init.Pid) + "/net/dev"); err == nil {
			s.NetRx, s.NetTx = parseNetDev(string(b))
		}
	}
	return s, nil
}

// parseNetDev sums the received and transmitted bytes of the interfaces
// of a /proc/PID/net/dev, loopback excluded.
func parseNetDev(content string) (rx, tx uint64) {
	sc := bufio.NewScanner(strings.NewReader(content))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue // the two header lines have no colon
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, err1 := strconv.ParseUint(f[0], 10, 64)
		t, err2 := strconv.ParseUint(f[8], 10, 64)
		if err1 == nil && err2 == nil {
			rx += r
			tx += t
		}
	}
	return rx, tx
}

// hostMemory is MemTotal of /proc/meminfo in bytes, 0 when unknown.
func hostMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return parseMemTotal(string(b))
}

// parseMemTotal reads the MemTotal line ("MemTotal:  24683652 kB").
func parseMemTotal(meminfo string) uint64 {
	for _, line := range strings.Split(meminfo, "\n") {
		v, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		return n
	}
	return 0
}
