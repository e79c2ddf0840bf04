package cli

import (
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
	"berth.dev/berth/runtime/linux/logfile"
)

// logsOpts are the flags of container logs.
type logsOpts struct {
	follow, timestamps, details bool
	tail, since, until          string
}

// options turns the flags into LogsOptions; since and until are read
// against now.
func (o *logsOpts) options(now time.Time) (linux.LogsOptions, error) {
	lo := linux.LogsOptions{LogOptions: runtime.LogOptions{Follow: o.follow, Timestamps: o.timestamps, Tail: -1}, Details: o.details}
	if t := strings.TrimSpace(o.tail); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil {
			return lo, errUsage("--tail %q: give a number of lines or all", o.tail)
		}
		if n >= 0 {
			lo.Tail = n
		}
	}
	var err error
	if lo.Since, err = logfile.ParseBound(o.since, now); err != nil {
		return lo, errUsage("--since: %v", err)
	}
	if lo.Until, err = logfile.ParseBound(o.until, now); err != nil {
		return lo, errUsage("--until: %v", err)
	}
	return lo, nil
}

func newLogsCmd(g *globals) *cobra.Command {
	o := &logsOpts{}
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Long: `Fetch the logs of a container: its stdout to stdout, its stderr to stderr.

Logs are kept in Docker's json-file format, rotated as --log-opt max-size
and max-file say; logs reads the rotated files too. With -f it follows
the log across rotation and restarts until the container stops.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lo, err := o.options(time.Now())
			if err != nil {
				return err
			}
			c, err := g.findContainer(args[0])
			if err != nil {
				return err
			}
			err = c.LogStream(cmd.Context(), lo, g.stdout, g.stderr)
			if errdefs.IsCanceled(err) {
				return nil // Ctrl-C ends following
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "Follow log output")
	f.BoolVarP(&o.timestamps, "timestamps", "t", false, "Show timestamps")
	f.StringVarP(&o.tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	f.StringVar(&o.since, "since", "", `Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	f.StringVar(&o.until, "until", "", `Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	f.BoolVar(&o.details, "details", false, "Show extra details provided to logs (berth records none: nothing is added)")
	return cmd
}
