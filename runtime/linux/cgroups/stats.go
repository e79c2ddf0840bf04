package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"

	"berth.dev/berth/internal/errdefs"
)

// Stats is a snapshot of a group's resource usage, with the group's
// sub-groups included. A section is nil when the host does not account
// it for the group (its v1 hierarchy is not mounted, or the v2
// controller is not enabled).
type Stats struct {
	CPU    *CPUStats    `json:"cpu,omitempty"`
	Memory *MemoryStats `json:"memory,omitempty"`
	Pids   *PidsStats   `json:"pids,omitempty"`
	BlkIO  *BlkIOStats  `json:"blkio,omitempty"`
}

// CPUStats is the CPU time the group's processes have used since the
// group was made, in nanoseconds.
type CPUStats struct {
	// Usage is the total (user + system): v1 cpuacct.usage, v2 cpu.stat
	// usage_usec.
	Usage uint64 `json:"usage_ns"`
	// User and System split it (v1 cpuacct.stat, in clock ticks of 10 ms;
	// v2 cpu.stat user_usec and system_usec).
	User   uint64 `json:"user_ns"`
	System uint64 `json:"system_ns"`
}

// MemoryStats is the group's memory, in bytes.
type MemoryStats struct {
	// Usage is what the group is charged, page cache included (v1
	// memory.usage_in_bytes, v2 memory.current).
	Usage uint64 `json:"usage"`
	// Limit is the memory limit; 0 when there is none (v1
	// memory.limit_in_bytes, v2 memory.max).
	Limit uint64 `json:"limit"`
	// Cache is the page cache part of Usage (v1 memory.stat total_cache,
	// v2 memory.stat file).
	Cache uint64 `json:"cache"`
	// InactiveFile is the reclaimable part of Cache (v1 memory.stat
	// total_inactive_file, v2 inactive_file): docker stats shows Usage
	// minus it.
	InactiveFile uint64 `json:"inactive_file"`
}

// PidsStats counts the group's tasks (threads included).
type PidsStats struct {
	Current uint64 `json:"current"`
	// Limit is pids.max; 0 when there is none.
	Limit uint64 `json:"limit"`
}

// BlkIOStats is the block I/O of the group's processes, in bytes, summed
// over the devices (v1 blkio.throttle.io_service_bytes, v2 io.stat). I/O
// served from the page cache is not block I/O.
//
// On v1 the kernel counts throttle.io_service_bytes only for groups with
// a throttle rule since Linux 6.x (and the CFQ files went with CFQ in
// 5.0), so a v1 group whose counters are all zero is measured from its
// processes instead: the sum of read_bytes and write_bytes minus
// cancelled_write_bytes of /proc/PID/io, which include the children each
// process has reaped. Processes whose parent outside the group reaps
// them are lost from that sum; FromProcesses says it was used.
type BlkIOStats struct {
	Read          uint64 `json:"read_bytes"`
	Write         uint64 `json:"write_bytes"`
	FromProcesses bool   `json:"from_processes,omitempty"`
}

// v1Unlimited is the smallest value v1 reports for "no limit": the page
// counter maximum (LONG_MAX rounded down to a page) is above it on every
// page size.
const v1Unlimited = 1 << 62

// userHZ is the unit of v1 cpuacct.stat (USER_HZ, 100 on Linux).
const userHZ = 100

// Stats reads the group's CPU, memory, pids and block I/O counters. It is
// cheap (a few small reads), so callers sample it twice to compute rates.
// A group that is gone gives ErrNotFound.
func (c *Cgroup) Stats() (Stats, error) {
	gone := true
	for _, d := range c.dirs {
		if exists(d) {
			gone = false
			break
		}
	}
	if gone {
		return Stats{}, errdefs.NotFoundf("cgroups: read the stats of %s: the group is gone", c)
	}
	var s Stats
	var err error
	if c.unified {
		err = c.statsV2(&s)
	} else {
		err = c.statsV1(&s)
	}
	if err != nil {
		return Stats{}, fmt.Errorf("cgroups: read the stats of %s: %w", c, err)
	}
	return s, nil
}

func (c *Cgroup) statsV1(s *Stats) error {
	if dir, ok := c.byController[cgroup1.Cpuacct]; ok {
		usage, ok, err := readUint(filepath.Join(dir, "cpuacct.usage"))
		if err != nil {
			return err
		}
		if ok {
			s.CPU = &CPUStats{Usage: usage}
			if kv, ok, err := readKeyed(filepath.Join(dir, "cpuacct.stat")); err != nil {
				return err
			} else if ok {
				const tick = 1e9 / userHZ
				s.CPU.User, s.CPU.System = kv["user"]*tick, kv["system"]*tick
			}
		}
	}
	if dir, ok := c.byController[cgroup1.Memory]; ok {
		usage, ok, err := readUint(filepath.Join(dir, "memory.usage_in_bytes"))
		if err != nil {
			return err
		}
		if ok {
			m := &MemoryStats{Usage: usage}
			if m.Limit, _, err = readLimit(filepath.Join(dir, "memory.limit_in_bytes")); err != nil {
				return err
			}
			kv, _, err := readKeyed(filepath.Join(dir, "memory.stat"))
			if err != nil {
				return err
			}
			m.Cache, m.InactiveFile = firstKey(kv, "total_cache", "cache"), firstKey(kv, "total_inactive_file", "inactive_file")
			s.Memory = m
		}
	}
	if dir, ok := c.byController[cgroup1.Pids]; ok {
		p, err := readPids(dir)
		if err != nil {
			return err
		}
		s.Pids = p
	}
	if dir, ok := c.byController[cgroup1.Blkio]; ok {
		// The _recursive file counts sub-groups too; the CFQ/BFQ files
		// exist only with those schedulers, the throttle ones always.
		for _, name := range []string{"blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			r, w, err := parseBlkioV1(string(b))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			s.BlkIO = &BlkIOStats{Read: r, Write: w}
			break
		}
		if s.BlkIO == nil || (s.BlkIO.Read == 0 && s.BlkIO.Write == 0) {
			if b, err := c.procIO(); err != nil {
				return err
			} else if b.Read > 0 || b.Write > 0 || s.BlkIO == nil {
				s.BlkIO = &b
			}
		}
	}
	return nil
}

// procIO sums the storage I/O of the group's processes (see BlkIOStats).
// A process that ends meanwhile counts nothing.
func (c *Cgroup) procIO() (BlkIOStats, error) {
	pids, err := c.Pids()
	if err != nil {
		return BlkIOStats{}, err
	}
	b := BlkIOStats{FromProcesses: true}
	for _, pid := range pids {
		content, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
		if err != nil {
			continue // gone, or a kernel without task I/O accounting
		}
		r, w := parseProcIO(string(content))
		b.Read += r
		b.Write += w
	}
	return b, nil
}

// parseProcIO returns read_bytes and write_bytes minus
// cancelled_write_bytes (writes to pages truncated before writeback) of
// a /proc/PID/io.
func parseProcIO(content string) (read, write uint64) {
	kv := map[string]uint64{}
	for _, line := range strings.Split(content, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			kv[k] = n
		}
	}
	write = kv["write_bytes"]
	if c := kv["cancelled_write_bytes"]; c < write {
		write -= c
	} else {
		write = 0
	}
	return kv["read_bytes"], write
}

func (c *Cgroup) statsV2(s *Stats) error {
	dir := c.dirs[0]
	// cpu.stat's usage lines are there without the cpu controller.
	if kv, ok, err := readKeyed(filepath.Join(dir, "cpu.stat")); err != nil {
		return err
	} else if ok {
		s.CPU = &CPUStats{Usage: kv["usage_usec"] * 1000, User: kv["user_usec"] * 1000, System: kv["system_usec"] * 1000}
	}
	usage, ok, err := readUint(filepath.Join(dir, "memory.current"))
	if err != nil {
		return err
	}
	if ok {
		m := &MemoryStats{Usage: usage}
		if m.Limit, _, err = readLimit(filepath.Join(dir, "memory.max")); err != nil {
			return err
		}
		kv, _, err := readKeyed(filepath.Join(dir, "memory.stat"))
		if err != nil {
			return err
		}
		m.Cache, m.InactiveFile = kv["file"], kv["inactive_file"]
		s.Memory = m
	}
	if s.Pids, err = readPids(dir); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(dir, "io.stat"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		r, w, err := parseIOStatV2(string(b))
		if err != nil {
			return fmt.Errorf("io.stat: %w", err)
		}
		s.BlkIO = &BlkIOStats{Read: r, Write: w}
	}
	return nil
}

// readPids reads pids.current and pids.max of dir; nil without them.
func readPids(dir string) (*PidsStats, error) {
	cur, ok, err := readUint(filepath.Join(dir, "pids.current"))
	if err != nil || !ok {
		return nil, err
	}
	limit, _, err := readLimit(filepath.Join(dir, "pids.max"))
	if err != nil {
		return nil, err
	}
	return &PidsStats{Current: cur, Limit: limit}, nil
}

// readUint reads a file holding one number; ok is false when it does not
// exist.
func readUint(file string) (n uint64, ok bool, err error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s: not a number: %q", file, strings.TrimSpace(string(b)))
	}
	return n, true, nil
}

// readLimit reads a limit file: see parseLimit.
func readLimit(file string) (n uint64, ok bool, err error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n, err = parseLimit(string(b))
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", file, err)
	}
	return n, true, nil
}

// parseLimit parses a limit: a number, "max" (v2) or v1's page counter
// maximum, both of which mean no limit and give 0.
func parseLimit(content string) (uint64, error) {
	s := strings.TrimSpace(content)
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a limit: %q", s)
	}
	if n >= v1Unlimited {
		return 0, nil
	}
	return n, nil
}

// readKeyed reads a flat-keyed file ("key N" lines); ok is false when it
// does not exist.
func readKeyed(file string) (kv map[string]uint64, ok bool, err error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]uint64{}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return parseKeyed(string(b)), true, nil
}

// parseKeyed parses "key N" lines; lines of another shape (memory.stat
// has none today, but kernels add fields) and values that are not
// numbers are skipped.
func parseKeyed(content string) map[string]uint64 {
	kv := map[string]uint64{}
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if n, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			kv[f[0]] = n
		}
	}
	return kv
}

// firstKey returns the value of the first of keys that kv has.
func firstKey(kv map[string]uint64, keys ...string) uint64 {
	for _, k := range keys {
		if n, ok := kv[k]; ok {
			return n
		}
	}
	return 0
}

// parseBlkioV1 sums the Read and Write lines of a v1
// blkio.*io_service_bytes file ("MAJ:MIN Op N" lines, then "Total N").
func parseBlkioV1(content string) (read, write uint64, err error) {
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue // "Total N", blank
		}
		n, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("bad line %q", line)
		}
		switch f[1] {
		case "Read":
			read += n
		case "Write":
			write += n
		}
	}
	return read, write, nil
}

// parseIOStatV2 sums rbytes and wbytes over the devices of a v2 io.stat
// ("MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N" lines).
func parseIOStatV2(content string) (read, write uint64, err error) {
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || (k != "rbytes" && k != "wbytes") {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("bad field %q in line %q", kv, line)
			}
			if k == "rbytes" {
				read += n
			} else {
				write += n
			}
		}
	}
	return read, write, nil
}
