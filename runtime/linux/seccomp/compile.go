// Package seccomp compiles an OCI seccomp section (Docker's default profile
// by default) into a classic BPF program, in pure Go, and loads it.
//
// The program checks the architecture (only the native one passes: x32
// and i386 calls on amd64 are refused), refuses numbers above the known
// table with ENOSYS (so a newer libc falls back), then tries each rule in
// turn; 64-bit argument comparisons are split into their 32-bit halves.
package seccomp

import (
	"fmt"
	"runtime"
	"sort"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/errdefs"
)

// Return values of a seccomp filter (linux/seccomp.h).
const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

// seccomp_data offsets.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// x32SyscallBit marks x32-ABI calls on x86_64.
const x32SyscallBit = 0x40000000

// Native returns the syscall table of the running architecture.
func Native() (*arch.Info, error) {
	info, err := arch.GetInfo(runtime.GOARCH)
	if err != nil {
		return nil, errdefs.Unavailablef("seccomp: no syscall table for %s: %v", runtime.GOARCH, err)
	}
	return info, nil
}

func action(a specs.LinuxSeccompAction, errno *uint, defErrno uint32) (uint32, error) {
	e := defErrno
	if errno != nil {
		e = uint32(*errno)
	}
	switch a {
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActErrno:
		return retErrno | (e & 0xffff), nil
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActTrace:
		return retTrace | (e & 0xffff), nil
	case specs.ActLog:
		return retLog, nil
	}
	return 0, errdefs.Invalidf("seccomp: action %q is not supported", a)
}

// rule is one syscall number with its conditions and return value.
type rule struct {
	nr   uint32
	args []specs.LinuxSeccompArg
	ret  uint32
}

// Compile turns an OCI seccomp section into a BPF program for the native
// architecture. Names the table does not know are skipped, as libseccomp
// does for calls of other architectures.
func Compile(s *specs.LinuxSeccomp) ([]bpf.RawInstruction, error) {
	info, err := Native()
	if err != nil {
		return nil, err
	}
	return compileFor(info, s)
}

func compileFor(info *arch.Info, s *specs.LinuxSeccomp) ([]bpf.RawInstruction, error) {
	defErrno := uint32(unix.EPERM)
	if s.DefaultErrnoRet != nil {
		defErrno = uint32(*s.DefaultErrnoRet)
	}
	defRet, err := action(s.DefaultAction, s.DefaultErrnoRet, defErrno)
	if err != nil {
		return nil, err
	}
	var rules []rule
	for _, sc := range s.Syscalls {
		ret, err := action(sc.Action, sc.ErrnoRet, defErrno)
		if err != nil {
			return nil, err
		}
		for _, name := range sc.Names {
			nr, ok := info.SyscallNames[name]
			if !ok {
				continue
			}
			for _, a := range sc.Args {
				if a.Index > 5 {
					return nil, errdefs.Invalidf("seccomp: %s: argument index %d out of range", name, a.Index)
				}
			}
			rules = append(rules, rule{nr: uint32(nr), args: sc.Args, ret: ret})
		}
	}
	// Unconditional rules first within a number would shadow conditional
	// ones with another action; keep the profile's order but sort by number
	// stably so one number's rules stay together and in order.
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].nr < rules[j].nr })
	maxNr := 0
	for nr := range info.SyscallNumbers {
		maxNr = max(maxNr, nr)
	}

	denyArch := retErrno | uint32(unix.EPERM)
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: denyArch},
		bpf.LoadAbsolute{Off: offNr, Size: 4},
	}
	if info.ID == arch.X86_64.ID {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32SyscallBit, SkipFalse: 1},
			bpf.RetConstant{Val: denyArch})
	}
	prog = append(prog,
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(maxNr), SkipFalse: 1},
		bpf.RetConstant{Val: retErrno | uint32(unix.ENOSYS)})
	for _, r := range rules {
		block, err := ruleBlock(r)
		if err != nil {
			return nil, err
		}
		prog = append(prog, block...)
	}
	prog = append(prog, bpf.RetConstant{Val: defRet})
	if len(prog) > 4096 {
		return nil, errdefs.Invalidf("seccomp: the profile compiles to %d instructions, over the kernel's 4096", len(prog))
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble: %w", err)
	}
	return raw, nil
}

// ruleBlock compiles one rule. It expects the syscall number in A and
// leaves it there when the rule does not match.
func ruleBlock(r rule) ([]bpf.Instruction, error) {
	var checks []bpf.Instruction // each jumps to "fail" (patched below) on mismatch
	var failJumps []int
	for _, a := range r.args {
		lo := offArgs + 8*uint32(a.Index)
		hi := lo + 4
		cmp := func(off uint32, mask, val uint32, cond bpf.JumpTest) {
			checks = append(checks, bpf.LoadAbsolute{Off: off, Size: 4})
			if mask != 0xffffffff {
				checks = append(checks, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
			}
			failJumps = append(failJumps, len(checks))
			checks = append(checks, bpf.JumpIf{Cond: cond, Val: val})
		}
		vHi, vLo := uint32(a.Value>>32), uint32(a.Value)
		switch a.Op {
		case specs.OpEqualTo:
			cmp(hi, 0xffffffff, vHi, bpf.JumpNotEqual)
			cmp(lo, 0xffffffff, vLo, bpf.JumpNotEqual)
		case specs.OpMaskedEqual:
			mHi, mLo := uint32(a.Value>>32), uint32(a.Value)
			wHi, wLo := uint32(a.ValueTwo>>32), uint32(a.ValueTwo)
			cmp(hi, mHi, wHi, bpf.JumpNotEqual)
			cmp(lo, mLo, wLo, bpf.JumpNotEqual)
		case specs.OpNotEqual:
			// fails only when both halves are equal
			checks = append(checks,
				bpf.LoadAbsolute{Off: hi, Size: 4},
				bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: vHi, SkipTrue: 2}, // hi differs: matched
				bpf.LoadAbsolute{Off: lo, Size: 4})
			failJumps = append(failJumps, len(checks))
			checks = append(checks, bpf.JumpIf{Cond: bpf.JumpEqual, Val: vLo})
		case specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpLessThan, specs.OpLessEqual:
			// hi decides unless equal, then lo decides (unsigned).
			var hiPass, hiFail, loFail bpf.JumpTest
			switch a.Op {
			case specs.OpGreaterEqual:
				hiPass, hiFail, loFail = bpf.JumpGreaterThan, bpf.JumpLessThan, bpf.JumpLessThan
			case specs.OpGreaterThan:
				hiPass, hiFail, loFail = bpf.JumpGreaterThan, bpf.JumpLessThan, bpf.JumpLessOrEqual
			case specs.OpLessThan:
				hiPass, hiFail, loFail = bpf.JumpLessThan, bpf.JumpGreaterThan, bpf.JumpGreaterOrEqual
			case specs.OpLessEqual:
				hiPass, hiFail, loFail = bpf.JumpLessThan, bpf.JumpGreaterThan, bpf.JumpGreaterThan
			}
			checks = append(checks,
				bpf.LoadAbsolute{Off: hi, Size: 4},
				bpf.JumpIf{Cond: hiPass, Val: vHi, SkipTrue: 3}) // hi decides: matched
			failJumps = append(failJumps, len(checks))
			checks = append(checks, bpf.JumpIf{Cond: hiFail, Val: vHi})
			checks = append(checks, bpf.LoadAbsolute{Off: lo, Size: 4})
			failJumps = append(failJumps, len(checks))
			checks = append(checks, bpf.JumpIf{Cond: loFail, Val: vLo})
		default:
			return nil, errdefs.Invalidf("seccomp: operator %q is not supported", a.Op)
		}
	}
	// Layout: jeq nr (else skip block); checks...; ret; fail: reload nr.
	var out []bpf.Instruction
	tail := 1 // ret
	if len(r.args) > 0 {
		tail = 2 // ret + reload of nr on failure
	}
	skip := len(checks) + tail
	if skip > 255 {
		return nil, errdefs.Invalidf("seccomp: rule for syscall %d has too many conditions", r.nr)
	}
	out = append(out, bpf.JumpIf{Cond: bpf.JumpEqual, Val: r.nr, SkipFalse: uint8(skip)})
	failAt := len(checks) + 1 // index within checks+ret of the reload
	for _, i := range failJumps {
		j := checks[i].(bpf.JumpIf)
		dist := failAt - i - 1
		if dist > 255 {
			return nil, errdefs.Invalidf("seccomp: rule for syscall %d is too long", r.nr)
		}
		if j.SkipTrue == 0 && j.SkipFalse == 0 {
			j.SkipTrue = uint8(dist)
		}
		checks[i] = j
	}
	out = append(out, checks...)
	out = append(out, bpf.RetConstant{Val: r.ret})
	if len(r.args) > 0 {
		out = append(out, bpf.LoadAbsolute{Off: offNr, Size: 4})
	}
	return out, nil
}

// Load installs prog as the calling thread's seccomp filter. The caller
// has set no_new_privs or holds CAP_SYS_ADMIN, runs on a locked OS thread,
// and execs right after.
func Load(prog []bpf.RawInstruction) error {
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	const setModeFilter = 1 // SECCOMP_SET_MODE_FILTER
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, setModeFilter, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("seccomp: load filter: %w", errno)
	}
	return nil
}

// Filter converts a program to the kernel's sock_filter form.
func Filter(prog []bpf.RawInstruction) []unix.SockFilter {
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return filter
}

// LoadAllThreads installs filter on every thread of the process
// (SECCOMP_FILTER_FLAG_TSYNC), so no Go thread stays unfiltered.
func LoadAllThreads(filter []unix.SockFilter) error {
	if len(filter) == 0 {
		return errdefs.Invalidf("seccomp: empty filter")
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	const setModeFilter, flagTSync = 1, 1
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, setModeFilter, flagTSync, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return fmt.Errorf("seccomp: load filter: %w", errno)
	}
	if r != 0 {
		return fmt.Errorf("seccomp: thread %d could not take the filter", r)
	}
	return nil
}

// Encode packs a program as the kernel lays out struct sock_filter
// (8 bytes per instruction, little-endian), to hand it to another process.
func Encode(prog []bpf.RawInstruction) []byte {
	out := make([]byte, 0, 8*len(prog))
	for _, in := range prog {
		out = append(out, byte(in.Op), byte(in.Op>>8), in.Jt, in.Jf,
			byte(in.K), byte(in.K>>8), byte(in.K>>16), byte(in.K>>24))
	}
	return out
}

// Decode unpacks Encode's form into a filter for LoadAllThreads.
func Decode(b []byte) ([]unix.SockFilter, error) {
	if len(b) == 0 || len(b)%8 != 0 || len(b)/8 > 4096 {
		return nil, errdefs.Invalidf("seccomp: a filter of %d bytes is not a BPF program", len(b))
	}
	out := make([]unix.SockFilter, len(b)/8)
	for i := range out {
		p := b[8*i:]
		out[i] = unix.SockFilter{Code: uint16(p[0]) | uint16(p[1])<<8, Jt: p[2], Jf: p[3],
			K: uint32(p[4]) | uint32(p[5])<<8 | uint32(p[6])<<16 | uint32(p[7])<<24}
	}
	return out, nil
}
