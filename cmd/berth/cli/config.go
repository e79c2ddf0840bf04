package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/project"
)

type configOptions struct {
	format      string
	quiet       bool
	services    bool
	volumes     bool
	networks    bool
	profiles    bool
	images      bool
	hash        string
	environment bool
	output      string
}

func newConfigCmd(g *globals) *cobra.Command {
	var o configOptions
	cmd := &cobra.Command{
		Use:   "config [OPTIONS] [SERVICE...]",
		Short: "Parse, resolve and render the project file in canonical format",
		Long: `Parse, resolve and render the project file in canonical format.

fig v1 files (services at the top level) are converted first, so the output
is always in compose-spec form. --environment lists every variable the files
interpolate, with its value and where that value came from.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConfig(cmd, g, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.format, "format", "yaml", "Format the output: yaml or json")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only validate the configuration, don't print anything")
	f.BoolVar(&o.services, "services", false, "Print the service names, one per line")
	f.BoolVar(&o.volumes, "volumes", false, "Print the volume names, one per line")
	f.BoolVar(&o.networks, "networks", false, "Print the network names, one per line")
	f.BoolVar(&o.profiles, "profiles", false, "Print the profile names, one per line")
	f.BoolVar(&o.images, "images", false, "Print the image names, one per line")
	f.StringVar(&o.hash, "hash", "", `Print the config hash of services ("*" for all, or a comma-separated list)`)
	f.BoolVar(&o.environment, "environment", false, "Print the interpolation variables with their values and sources")
	f.StringVarP(&o.output, "output", "o", "", "Save to file (default to stdout)")
	return cmd
}

func runConfig(cmd *cobra.Command, g *globals, o configOptions, args []string) error {
	if o.format != "yaml" && o.format != "json" {
		return errUsage("--format %q: use yaml or json", o.format)
	}
	m, err := g.load(cmd.Context())
	if err != nil {
		return err
	}
	if len(args) > 0 {
		for _, a := range args {
			if _, ok := m.Project.Services[a]; !ok {
				return errUsage("no such service: %q (the services are: %s)", a, strings.Join(m.Project.ServiceNames(), ", "))
			}
		}
		p, err := m.Project.WithSelectedServices(args)
		if err != nil {
			return err
		}
		m.Project = p
	}
	if o.quiet {
		return nil
	}
	out := g.stdout
	if o.output != "" {
		f, err := os.Create(o.output)
		if err != nil {
			return fmt.Errorf("--output: %w", err)
		}
		defer f.Close()
		out = f
	}
	lines := func(items []string) error {
		for _, s := range items {
			if _, err := fmt.Fprintln(out, s); err != nil {
				return err
			}
		}
		return nil
	}
	switch {
	case o.services:
		order, err := m.Order()
		if err != nil {
			return err
		}
		return lines(order)
	case o.volumes:
		return lines(sortedKeys(m.Project.Volumes))
	case o.networks:
		return lines(sortedKeys(m.Project.Networks))
	case o.profiles:
		set := map[string]bool{}
		for _, s := range m.Project.AllServices() {
			for _, p := range s.Profiles {
				set[p] = true
			}
		}
		for _, s := range m.Project.DisabledServices {
			for _, p := range s.Profiles {
				set[p] = true
			}
		}
		return lines(sortedKeys(set))
	case o.images:
		order, err := m.Order()
		if err != nil {
			return err
		}
		var imgs []string
		for _, n := range order {
			s := m.Project.Services[n]
			img := s.Image
			if img == "" {
				img = m.Name + "-" + n // compose's default name for a built image
			}
			imgs = append(imgs, img)
		}
		return lines(imgs)
	case o.hash != "":
		return printHashes(out, m, o.hash, o.format)
	case o.environment:
		return printEnvironment(out, m, o.format)
	}
	var b []byte
	if o.format == "json" {
		b, err = m.Project.MarshalJSON()
	} else {
		b, err = m.Project.MarshalYAML()
	}
	if err != nil {
		return fmt.Errorf("render project: %w", err)
	}
	_, err = out.Write(b)
	if err == nil && o.format == "json" {
		_, err = io.WriteString(out, "\n")
	}
	return err
}

// relTo shows p relative to dir when it lies inside it.
func relTo(dir, p string) string {
	if r, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func printHashes(out io.Writer, m *project.Model, which, format string) error {
	var names []string
	if which == "*" {
		names = sortedKeys(m.Project.Services)
	} else {
		for _, n := range strings.Split(which, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	type entry struct {
		Service string `json:"service"`
		project.ServiceHash
	}
	var all []entry
	for _, n := range names {
		h, err := m.Hash(n, "")
		if err != nil {
			return err
		}
		all = append(all, entry{n, h})
	}
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	for _, e := range all {
		if _, err := fmt.Fprintf(out, "%s %s\n", e.Service, e.Hash); err != nil {
			return err
		}
	}
	return nil
}

func printEnvironment(out io.Writer, m *project.Model, format string) error {
	if format == "json" {
		vars := m.Variables
		if vars == nil {
			vars = []project.Variable{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(vars)
	}
	t := display.NewTable("VARIABLE", "VALUE", "SOURCE", "USED AT")
	for _, v := range m.Variables {
		val := v.Value
		if !v.Set {
			val = "(unset)"
			if v.Required {
				val = "(unset, required)"
			}
		}
		from := v.Source.String()
		if v.File != "" {
			from = fmt.Sprintf("%s %s:%d", from, relTo(m.WorkingDir, v.File), v.Line)
		}
		u := v.Uses[0]
		used := fmt.Sprintf("%s:%d:%d", relTo(m.WorkingDir, u.File), u.Line, u.Col)
		if n := len(v.Uses); n > 1 {
			used = fmt.Sprintf("%s (+%d more)", used, n-1)
		}
		t.Row(v.Name, val, from, used)
	}
	return t.Write(out)
}
