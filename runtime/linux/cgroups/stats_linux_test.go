package cgroups

import (
	"path/filepath"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// TestStats: a shell in a group with limits writes and reads 4 MiB with
// O_DIRECT (block I/O charged to it) and then spins: Stats reports the
// limits, memory in use, its tasks, the I/O and CPU time that grows.
func TestStats(t *testing.T) {
	testutil.RequireRoot(t)
	cg := create(t, testParent(t), Resources{Memory: 64 << 20, PidsLimit: 50})
	before, err := cg.Stats()
	if err != nil {
		t.Fatalf("Stats of an empty group: %v", err)
	}
	if before.Pids == nil || before.Pids.Current != 0 {
		t.Errorf("empty group: pids %+v", before.Pids)
	}
	f := filepath.Join(testutil.TempRoot(t), "f") // /tmp: a block device, not tmpfs, on the test hosts
	start(t, cg, `dd if=/dev/zero of=`+f+` bs=1M count=4 oflag=direct conv=fsync 2>/dev/null &&
dd if=`+f+` of=/dev/null bs=1M iflag=direct 2>/dev/null && echo io-done > `+f+`.done; while :; do :; done`)
	testutil.Eventually(t, func() bool { return exists(f + ".done") }, 20*time.Second, "the I/O to finish")
	s1, err := cg.Stats()
	if err != nil || s1.CPU == nil {
		t.Fatalf("Stats: %+v, %v; want CPU stats", s1, err)
	}
	// The spinning shell's CPU time grows (slowly on a loaded host).
	var s2 Stats
	testutil.Eventually(t, func() bool {
		s2, err = cg.Stats()
		return err == nil && s2.CPU != nil && time.Duration(s2.CPU.Usage-s1.CPU.Usage) >= 30*time.Millisecond
	}, 10*time.Second, "the spin's CPU time to grow by 30 ms")
	t.Logf("cpu %+v memory %+v pids %+v blkio %+v", *s2.CPU, *s2.Memory, *s2.Pids, *s2.BlkIO)
	if s2.CPU.User+s2.CPU.System == 0 || s2.CPU.User+s2.CPU.System > 2*s2.CPU.Usage+uint64(time.Second) {
		t.Errorf("user %d + system %d against usage %d", s2.CPU.User, s2.CPU.System, s2.CPU.Usage)
	}
	if m := s2.Memory; m == nil || m.Limit != 64<<20 || m.Usage == 0 || m.Usage > m.Limit || m.InactiveFile > m.Usage {
		t.Errorf("memory %+v: want limit %d and some usage", m, 64<<20)
	}
	if p := s2.Pids; p == nil || p.Current < 1 || p.Current > 5 || p.Limit != 50 {
		t.Errorf("pids %+v: want the shell and limit 50", p)
	}
	if b := s2.BlkIO; b == nil || b.Write < 4<<20 || b.Read < 4<<20 {
		t.Errorf("blkio %+v: want at least 4 MiB read and written", b)
	}
}

// TestStatsV2OnHybrid: the hybrid host's cgroup2 mount has no memory,
// pids or io controller; CPU time is accounted all the same.
func TestStatsV2OnHybrid(t *testing.T) {
	testutil.RequireRoot(t)
	useHybridUnified(t)
	cg := create(t, testParent(t), Resources{})
	start(t, cg, `while :; do :; done`)
	var s Stats
	var err error
	testutil.Eventually(t, func() bool {
		s, err = cg.Stats()
		return err == nil && s.CPU != nil && s.CPU.Usage >= uint64(30*time.Millisecond)
	}, 10*time.Second, "the spin's CPU time to reach 30 ms")
	if s.Memory != nil || s.Pids != nil || s.BlkIO != nil {
		t.Errorf("memory %+v, pids %+v, blkio %+v: want nil without the controllers", s.Memory, s.Pids, s.BlkIO)
	}
}
