package linux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Proc names one process across pid reuse: its pid and its start time in
// clock ticks since boot (/proc/<pid>/stat field 22).
type Proc struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// procStart reads the start time of pid; a zombie is ESRCH.
func procStart(pid int) (uint64, error) {
	st, zombie, err := procStat(pid)
	if err == nil && zombie {
		return 0, unix.ESRCH // a zombie has exited
	}
	return st, err
}

// procStat reads the start time of pid and whether it has exited.
func procStat(pid int) (start uint64, exited bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, false, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	return start, fields[0][0] == 'Z' || fields[0][0] == 'X', err
}

// SelfProc is the calling process.
func SelfProc() Proc {
	st, _ := procStart(os.Getpid())
	return Proc{Pid: os.Getpid(), Start: st}
}

// ProcOf names pid, which may have exited but not been reaped yet.
func ProcOf(pid int) (Proc, error) {
	st, _, err := procStat(pid)
	return Proc{Pid: pid, Start: st}, err
}

// Alive reports whether the process still runs (not a zombie).
func (p Proc) Alive() bool {
	if p.Pid <= 0 {
		return false
	}
	st, err := procStart(p.Pid)
	return err == nil && st == p.Start
}

// open returns a pidfd for p, or ESRCH when p is gone. Checking the start
// time after pidfd_open is race-free: the fd pins the process it names.
func (p Proc) open() (int, error) {
	if p.Pid <= 0 {
		return -1, unix.ESRCH
	}
	fd, err := unix.PidfdOpen(p.Pid, 0)
	if err != nil {
		return -1, err
	}
	if !p.Alive() {
		unix.Close(fd)
		return -1, unix.ESRCH
	}
	return fd, nil
}

// Signal sends sig to p if it still runs; a gone process is ESRCH.
func (p Proc) Signal(sig unix.Signal) error {
	fd, err := p.open()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}

// WaitGone waits until p has exited, up to timeout (< 0: no limit) or ctx;
// it reports whether p is gone.
func (p Proc) WaitGone(ctx context.Context, timeout time.Duration) bool {
	fd, err := p.open()
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		wait := 100 * time.Millisecond
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return !p.Alive()
			}
			wait = min(wait, left)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(wait/time.Millisecond)+1)
		if n > 0 || (err == nil && !p.Alive()) {
			return true
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return !p.Alive()
		}
		if ctx.Err() != nil {
			return !p.Alive()
		}
	}
}
