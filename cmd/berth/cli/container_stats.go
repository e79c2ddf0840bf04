package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

// statsRefresh is how often the live view of stats redraws, as docker's.
const statsRefresh = time.Second

// statsOpts are the flags of stats.
type statsOpts struct {
	all, noStream, noTrunc bool
	format                 string
}

func newStatsCmd(g *globals) *cobra.Command {
	var o statsOpts
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		Long: "Display the CPU, memory, network, block I/O and PIDs of containers (by default all running ones),\n" +
			"refreshed every second until interrupted, or once with --no-stream. CPU % is measured over the\n" +
			"last second (over 100 ms for the first sample and with --no-stream); 100% is one busy CPU.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.format != "table" && o.format != "json" {
				return errUsage("--format %q: use table or json", o.format)
			}
			return g.runStats(cmd.Context(), o, args)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVar(&o.noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate output")
	f.StringVar(&o.format, "format", "table", "Format output: table or json")
	return cmd
}

// statsTarget is a container stats shows: ref is how the user named it
// (docker's Container column), or its name.
type statsTarget struct {
	c   *linux.Container
	ref string
}

// runStats prints the stats of the named containers, or of every running
// one (every one with --all); without --no-stream it redraws every second
// until ctx ends (Ctrl-C), picking up containers that start and dropping
// those that stop when no names were given.
func (g *globals) runStats(ctx context.Context, o statsOpts, names []string) error {
	rt, _, err := g.openRuntime()
	if err != nil {
		return err
	}
	var named []statsTarget
	for _, ref := range names {
		c, err := rt.Find(ref)
		if err != nil {
			return err
		}
		named = append(named, statsTarget{c, ref})
	}
	targets := func() ([]statsTarget, error) {
		if len(names) > 0 {
			return named, nil
		}
		infos, err := rt.List(ctx, runtime.Filter{})
		if err != nil {
			return nil, err
		}
		var out []statsTarget
		for _, in := range infos {
			if !o.all && in.Status != runtime.StatusRunning && in.Status != runtime.StatusPaused {
				continue
			}
			if c, err := rt.Find(in.ID); err == nil {
				out = append(out, statsTarget{c, in.Name})
			}
		}
		return out, nil
	}
	tty := writesToTerminal(g.stdout)
	prev := map[string]linux.Stats{}
	tick := time.NewTicker(statsRefresh)
	defer tick.Stop()
	for {
		ts, err := targets()
		if ctx.Err() != nil {
			return nil // interrupted (Ctrl-C)
		}
		if err != nil {
			return err
		}
		rows, errs := collectStats(ctx, ts, prev)
		if ctx.Err() != nil {
			return nil // interrupted while sampling
		}
		clear(prev)
		for _, r := range rows {
			if !r.stopped {
				prev[r.s.ID] = r.s
			}
		}
		if !o.noStream && tty && o.format == "table" {
			fmt.Fprint(g.stdout, "\033[2J\033[H") // clear the screen, cursor home
		}
		if err := writeStats(g.stdout, rows, o); err != nil {
			return err
		}
		if o.noStream {
			return errors.Join(errs...)
		}
		for _, err := range errs {
			if err != nil {
				fmt.Fprintf(g.stderr, "berth: %v\n", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// statsRow is one container's line: stopped ones show zeros, as docker.
type statsRow struct {
	s       linux.Stats
	ref     string
	stopped bool
}

// collectStats samples every target at once: StatsSince the previous
// sample of the same container, or two samples StatsInterval apart for
// one seen first. A container that is not running gets a zero row; one
// removed meanwhile is left out.
func collectStats(ctx context.Context, ts []statsTarget, prev map[string]linux.Stats) ([]statsRow, []error) {
	rows := make([]statsRow, len(ts))
	keep := make([]bool, len(ts))
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s linux.Stats
			var err error
			if p, ok := prev[t.c.ID()]; ok {
				s, err = t.c.StatsSince(ctx, p)
			} else {
				s, err = t.c.Stats(ctx)
			}
			switch {
			case err == nil:
				rows[i], keep[i] = statsRow{s: s, ref: t.ref}, true
			case errdefs.IsConflict(err):
				name := t.ref
				if m, err := t.c.Meta(); err == nil {
					name = m.Name
				}
				rows[i], keep[i] = statsRow{s: linux.Stats{ID: t.c.ID(), Name: name}, ref: t.ref, stopped: true}, true
			case errdefs.IsNotFound(err), errdefs.IsCanceled(err):
			default:
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	var out []statsRow
	for i := range rows {
		if keep[i] {
			out = append(out, rows[i])
		}
	}
	return out, errs
}

// statsJSON is one line of `stats --format json`: docker's fields (all
// strings, formatted as in the table), then berth's raw numbers.
type statsJSON struct {
	BlockIO   string `json:"BlockIO"`
	CPUPerc   string `json:"CPUPerc"`
	Container string `json:"Container"`
	ID        string `json:"ID"`
	MemPerc   string `json:"MemPerc"`
	MemUsage  string `json:"MemUsage"`
	Name      string `json:"Name"`
	NetIO     string `json:"NetIO"`
	PIDs      string `json:"PIDs"`

	CPUPercent      float64 `json:"CPUPercent"`
	CPUUsageNs      uint64  `json:"CPUUsageNs"`
	MemUsageBytes   uint64  `json:"MemUsageBytes"`
	MemLimitBytes   uint64  `json:"MemLimitBytes"`
	MemPercent      float64 `json:"MemPercent"`
	NetRxBytes      uint64  `json:"NetRxBytes"`
	NetTxBytes      uint64  `json:"NetTxBytes"`
	BlockReadBytes  uint64  `json:"BlockReadBytes"`
	BlockWriteBytes uint64  `json:"BlockWriteBytes"`
	PidsCurrent     uint64  `json:"PidsCurrent"`
}

// formatStats renders a row the way docker stats does: binary units for
// memory, decimal ones (3 significant digits) for traffic.
func formatStats(r statsRow, noTrunc bool) statsJSON {
	s := r.s
	id := s.ID
	if !noTrunc && len(id) > 12 {
		id = id[:12]
	}
	dec := func(n uint64) string { return units.HumanSizeWithPrecision(float64(n), 3) }
	return statsJSON{
		BlockIO: dec(s.BlockRead) + " / " + dec(s.BlockWrite), CPUPerc: fmt.Sprintf("%.2f%%", s.CPUPercent),
		Container: r.ref, ID: id, MemPerc: fmt.Sprintf("%.2f%%", s.MemPercent),
		MemUsage: units.BytesSize(float64(s.MemUsage)) + " / " + units.BytesSize(float64(s.MemLimit)),
		Name:     s.Name, NetIO: dec(s.NetRx) + " / " + dec(s.NetTx), PIDs: strconv.FormatUint(s.Pids, 10),
		CPUPercent: s.CPUPercent, CPUUsageNs: s.CPUUsage, MemUsageBytes: s.MemUsage, MemLimitBytes: s.MemLimit,
		MemPercent: s.MemPercent, NetRxBytes: s.NetRx, NetTxBytes: s.NetTx, BlockReadBytes: s.BlockRead,
		BlockWriteBytes: s.BlockWrite, PidsCurrent: s.Pids,
	}
}

// writeStats prints one frame: a table with docker's columns, or one
// JSON object per container.
func writeStats(w io.Writer, rows []statsRow, o statsOpts) error {
	if o.format == "json" {
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(formatStats(r, o.noTrunc)); err != nil {
				return err
			}
		}
		return nil
	}
	t := display.NewTable("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS")
	for _, r := range rows {
		f := formatStats(r, o.noTrunc)
		t.Row(f.ID, f.Name, f.CPUPerc, f.MemUsage, f.MemPerc, f.NetIO, f.BlockIO, f.PIDs)
	}
	return t.Write(w)
}

func newPauseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pause CONTAINER [CONTAINER...]",
		Short: "Pause all processes within one or more containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.eachContainer(args, func(c *linux.Container) error { return c.Pause(cmd.Context()) })
		},
	}
}

func newUnpauseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unpause CONTAINER [CONTAINER...]",
		Short: "Unpause all processes within one or more containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.eachContainer(args, func(c *linux.Container) error { return c.Resume(cmd.Context()) })
		},
	}
}
