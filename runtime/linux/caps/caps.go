// Package caps maps capability names to bits and applies a container's
// capability sets to the calling thread (the init and exec roles call it
// on a locked thread right before execve).
package caps

import (
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// names is indexed by capability number (capabilities(7)).
var names = [...]string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// Set is a capability bitmask (bit n = capability n).
type Set uint64

// Docker's default capabilities (SECURITY.md §2).
var defaultNames = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
	"SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

// Default is Docker's default set: 0x00000000a80425fb.
func Default() Set {
	var s Set
	for _, n := range defaultNames {
		c, _ := Parse(n)
		s |= 1 << c
	}
	return s
}

// Parse returns the number of a capability written NET_ADMIN,
// CAP_NET_ADMIN or net_admin.
func Parse(name string) (int, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "CAP_")
	for i, known := range names {
		if known == n {
			return i, nil
		}
	}
	return -1, errdefs.Invalidf("unknown capability %q (see capabilities(7); write e.g. NET_ADMIN)", name)
}

// All is every capability the running kernel knows.
func All() Set {
	last := lastCap()
	return Set(1<<(uint(last)+1) - 1)
}

// lastCap reads /proc/sys/kernel/cap_last_cap, falling back to the table.
func lastCap() int {
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < 64 {
			return n
		}
	}
	return len(names) - 1
}

// Resolve computes a container's set as Docker does: privileged gets all;
// otherwise the default set, minus cap_drop (ALL drops everything), plus
// cap_add (ALL adds everything). Additions win over drops.
func Resolve(add, drop []string, privileged bool) (Set, error) {
	if privileged {
		return All(), nil
	}
	s := Default()
	for _, d := range drop {
		if strings.EqualFold(strings.TrimPrefix(strings.ToUpper(d), "CAP_"), "ALL") {
			s = 0
			continue
		}
		c, err := Parse(d)
		if err != nil {
			return 0, err
		}
		s &^= 1 << c
	}
	for _, a := range add {
		if strings.EqualFold(strings.TrimPrefix(strings.ToUpper(a), "CAP_"), "ALL") {
			s = All()
			continue
		}
		c, err := Parse(a)
		if err != nil {
			return 0, err
		}
		s |= 1 << c
	}
	return s & All(), nil
}

// Names lists the capabilities in s.
func (s Set) Names() []string {
	var out []string
	for c := 0; c < 64; c++ {
		if s&(1<<c) != 0 && c < len(names) {
			out = append(out, "CAP_"+names[c])
		}
	}
	return out
}

// String is the /proc/<pid>/status form: 16 hex digits.
func (s Set) String() string { return fmt.Sprintf("%016x", uint64(s)) }

// Count is the number of capabilities in s.
func (s Set) Count() int { return bits.OnesCount64(uint64(s)) }

// DropBounding removes every capability outside s from the calling
// thread's bounding set. Do it before switching to the container's user,
// while CAP_SETPCAP is still held.
func DropBounding(s Set) error {
	for c := 0; c <= lastCap(); c++ {
		if s&(1<<c) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// Apply sets the calling thread's permitted and effective sets to s,
// inheritable to none, and clears the ambient set. For a non-root user
// the kernel already cleared permitted and effective at setuid; Apply is
// then a no-op on them, leaving effective 0 as Docker does.
func Apply(s Set) error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	held := Set(cur[0].Permitted) | Set(cur[1].Permitted)<<32
	want := s & held // cannot raise what setuid took away
	data := [2]unix.CapUserData{
		{Effective: uint32(want), Permitted: uint32(want)},
		{Effective: uint32(want >> 32), Permitted: uint32(want >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
