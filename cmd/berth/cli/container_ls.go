package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/image/local"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

func newPsCmd(g *globals) *cobra.Command {
	var all, quiet, noTrunc bool
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"ps", "list"},
		Short:   "List containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, store, err := g.openRuntime()
			if err != nil {
				return err
			}
			f := runtime.Filter{Labels: map[string]string{}}
			var status, names, keys []string
			for _, fl := range filters {
				k, v, _ := strings.Cut(fl, "=")
				switch k {
				case "label":
					lk, lv, hasValue := strings.Cut(v, "=")
					if hasValue {
						f.Labels[lk] = lv
					} else {
						keys = append(keys, lk) // present, with any value
					}
				case "status":
					status = append(status, v)
				case "name":
					names = append(names, v)
				default:
					return errUsage("--filter %q: berth filters by label=K[=V], status=S and name=N", fl)
				}
			}
			infos, err := rt.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			var rows []psRow
			for _, in := range infos {
				if !all && len(status) == 0 && in.Status != runtime.StatusRunning && in.Status != runtime.StatusPaused {
					continue
				}
				if len(status) > 0 && !contains(status, in.Status.String()) {
					continue
				}
				if len(names) > 0 && !anySubstring(names, in.Name) {
					continue
				}
				if slices.ContainsFunc(keys, func(k string) bool { _, ok := in.Labels[k]; return !ok }) {
					continue
				}
				rows = append(rows, g.psRow(rt, store, in))
			}
			switch {
			case quiet:
				for _, r := range rows {
					id := r.ID
					if !noTrunc {
						id = id[:12]
					}
					fmt.Fprintln(g.stdout, id)
				}
				return nil
			case format == "json":
				return jsonLines(g.stdout, rows, nil)
			case format != "" && format != "table":
				return errUsage("--format %q: use table or json", format)
			}
			t := display.NewTable("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")
			for _, r := range rows {
				id, command := r.ID[:12], r.Command
				if noTrunc {
					id = r.ID
				} else if len(command) > 20 {
					command = command[:19] + "…"
				}
				t.Row(id, r.Image, strconv.Quote(command), r.RunningFor, r.Status, r.Ports, r.Names)
			}
			return t.Write(g.stdout)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display container IDs")
	f.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	f.StringArrayVar(&filters, "filter", nil, "Filter output based on conditions provided")
	f.StringVar(&format, "format", "table", "Format output: table or json")
	return cmd
}

// psRow is one line of ps, with docker's JSON field names.
type psRow struct {
	ID         string `json:"ID"`
	Image      string `json:"Image"`
	Command    string `json:"Command"`
	CreatedAt  string `json:"CreatedAt"`
	RunningFor string `json:"RunningFor"`
	State      string `json:"State"`
	Status     string `json:"Status"`
	ExitCode   int    `json:"ExitCode"`
	Pid        int    `json:"Pid"`
	Ports      string `json:"Ports"`
	Names      string `json:"Names"`
	Labels     string `json:"Labels"`
}

func (g *globals) psRow(rt *linux.Runtime, store *local.Store, in runtime.Info) psRow {
	r := psRow{ID: in.ID, Names: in.Name, State: in.Status.String(), Pid: in.Pid,
		CreatedAt: in.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"), RunningFor: units.HumanDuration(time.Since(in.Created)) + " ago"}
	if c, err := rt.Find(in.ID); err == nil {
		if m, err := c.Meta(); err == nil {
			r.Image = m.Spec.ImageRef
			if r.Image == "" {
				r.Image = imageName(store, m.Spec.Image)
			}
			if m.Spec.OCI != nil && m.Spec.OCI.Process != nil {
				r.Command = strings.Join(m.Spec.OCI.Process.Args, " ")
			}
		}
	}
	r.Ports = portsString(in.Ports)
	var labels []string
	for k, v := range in.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	r.Labels = strings.Join(labels, ",")
	if in.Exit != nil {
		r.ExitCode = in.Exit.Code
	}
	r.Status = statusText(in)
	return r
}

func statusText(in runtime.Info) string {
	switch in.Status {
	case runtime.StatusRunning:
		up := "Up " + units.HumanDuration(time.Since(in.StartedAt))
		if in.Health != "" {
			up += " (" + map[string]string{"starting": "health: starting"}[in.Health]
			if in.Health != "starting" {
				up += in.Health
			}
			up += ")"
		}
		return up
	case runtime.StatusPaused:
		return "Up " + units.HumanDuration(time.Since(in.StartedAt)) + " (Paused)"
	case runtime.StatusRestarting:
		if in.Exit != nil {
			return fmt.Sprintf("Restarting (%d) %s ago", in.Exit.Code, units.HumanDuration(time.Since(in.Exit.ExitedAt)))
		}
		return "Restarting"
	case runtime.StatusExited:
		if in.Exit != nil {
			return fmt.Sprintf("Exited (%d) %s ago", in.Exit.Code, units.HumanDuration(time.Since(in.Exit.ExitedAt)))
		}
		return "Exited"
	}
	return "Created"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func anySubstring(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

func newInspectCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Display detailed information on one or more containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, store, err := g.openRuntime()
			if err != nil {
				return err
			}
			var tmpl *template.Template
			if format != "" {
				if tmpl, err = template.New("format").Funcs(template.FuncMap{"json": toJSON}).Parse(format); err != nil {
					return errUsage("--format: %v", err)
				}
			}
			var out []any
			var errs []error
			for _, ref := range args {
				c, err := rt.Find(ref)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				v, err := inspectDoc(cmd.Context(), c, store)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if tmpl != nil {
					if err := tmpl.Execute(g.stdout, v); err != nil {
						return errUsage("--format: %v", err)
					}
					fmt.Fprintln(g.stdout)
					continue
				}
				out = append(out, v)
			}
			if tmpl == nil {
				if out == nil {
					out = []any{}
				}
				b, _ := json.MarshalIndent(out, "", "    ")
				fmt.Fprintln(g.stdout, string(b))
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	return cmd
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// inspectDoc is docker inspect's document (the fields berth has), as a
// generic map so --format templates index it like docker's.
func inspectDoc(ctx context.Context, c *linux.Container, store *local.Store) (map[string]any, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	m, err := c.Meta()
	if err != nil {
		return nil, err
	}
	s := m.Spec
	p := s.OCI.Process
	st := map[string]any{
		"Status": info.Status.String(), "Running": info.Status == runtime.StatusRunning || info.Status == runtime.StatusPaused,
		"Paused":     info.Status == runtime.StatusPaused,
		"Restarting": false, "OOMKilled": false, "Dead": false, "Pid": info.Pid, "ExitCode": 0,
		"Error": info.Error, "StartedAt": zeroTime(info.StartedAt), "FinishedAt": "0001-01-01T00:00:00Z",
	}
	if h := c.HealthStatus(); h != nil {
		st["Health"] = h
	}
	if info.Exit != nil {
		st["ExitCode"] = info.Exit.Code
		st["OOMKilled"] = info.Exit.OOMKill
		st["FinishedAt"] = zeroTime(info.Exit.ExitedAt)
	}
	hc := map[string]any{"Privileged": s.Privileged, "ReadonlyRootfs": s.Rootfs.ReadOnly, "Init": s.Init,
		"AutoRemove": s.AutoRemove, "RestartPolicy": map[string]any{"Name": s.Restart.Name, "MaximumRetryCount": s.Restart.MaxRetries},
		"ShmSize": s.ShmSize, "NetworkMode": string(s.NetNS), "GroupAdd": s.GroupAdd}
	if p.Capabilities != nil {
		hc["CapEff"] = p.Capabilities.Bounding
	}
	if r := s.OCI.Linux.Resources; r != nil {
		if r.Memory != nil && r.Memory.Limit != nil {
			hc["Memory"] = *r.Memory.Limit
		}
		if r.Pids != nil && r.Pids.Limit != nil {
			hc["PidsLimit"] = *r.Pids.Limit
		}
		if r.CPU != nil && r.CPU.Quota != nil {
			hc["NanoCpus"] = *r.CPU.Quota * 10000
		}
	}
	args := []string{}
	if len(p.Args) > 1 {
		args = p.Args[1:]
	}
	labels := s.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return map[string]any{
		"Id": m.ID, "Created": m.Created.Format(time.RFC3339Nano), "Path": p.Args[0], "Args": args,
		"State": st, "Image": s.Image.String(), "Name": "/" + m.Name, "RestartCount": info.Restarts,
		"HostConfig": hc,
		"Config": map[string]any{"Hostname": s.OCI.Hostname, "Domainname": s.OCI.Domainname, "User": p.User.Username,
			"Env": p.Env, "Cmd": p.Args, "Image": imageRefOr(m, store), "WorkingDir": p.Cwd, "Labels": labels,
			"StopSignal": signalName(s.StopSignal), "StopTimeout": int(s.StopTimeout / time.Second)},
	}, nil
}

func zeroTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func signalName(s unix.Signal) string {
	if s == 0 {
		s = unix.SIGTERM
	}
	return unix.SignalName(s)
}

func imageRefOr(m *linux.Meta, store *local.Store) string {
	if m.Spec.ImageRef != "" {
		return m.Spec.ImageRef
	}
	return imageName(store, m.Spec.Image)
}
