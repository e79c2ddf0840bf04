package linux

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime/linux/cgroups"
)

// Process is one process of a container, for top.
type Process struct {
	UID, Pid, PPid int
	State, Time    string
	Cmd            string
}

// Top lists the processes in the container's cgroup.
func (c *Container) Top(ctx context.Context) ([]Process, error) {
	m, err := c.meta()
	if err != nil {
		return nil, err
	}
	cg, err := cgroups.Load(c.r.cgParent, c.id)
	if err != nil {
		return nil, errdefs.Conflictf("container %s is not running", m.Name)
	}
	defer cg.Close()
	pids, err := cg.Pids()
	if err != nil {
		return nil, fmt.Errorf("top %s: %w", m.Name, err)
	}
	var out []Process
	for _, pid := range pids {
		if p, err := readProcess(pid); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func readProcess(pid int) (Process, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Process{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	f := bytes.Fields(b[i+1:])
	if i < 0 || len(f) < 20 {
		return Process{}, fmt.Errorf("malformed stat")
	}
	p := Process{Pid: pid, State: string(f[0])}
	p.PPid, _ = strconv.Atoi(string(f[1]))
	ut, _ := strconv.ParseUint(string(f[11]), 10, 64)
	stt, _ := strconv.ParseUint(string(f[12]), 10, 64)
	cpu := time.Duration(ut+stt) * (time.Second / 100) // USER_HZ
	p.Time = fmt.Sprintf("%02d:%02d:%02d", int(cpu.Hours()), int(cpu.Minutes())%60, int(cpu.Seconds())%60)
	if st, err := os.ReadFile(dir + "/status"); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				if fs := strings.Fields(v); len(fs) > 0 {
					p.UID, _ = strconv.Atoi(fs[0])
				}
			}
		}
	}
	cmd, _ := os.ReadFile(dir + "/cmdline")
	p.Cmd = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
	if p.Cmd == "" {
		p.Cmd = "[" + string(b[bytes.IndexByte(b, '(')+1:i]) + "]"
	}
	return p, nil
}
