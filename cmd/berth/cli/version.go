package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X berth.dev/berth/cmd/berth/cli.Version=…".
var Version = "dev"

type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	Commit    string `json:"commit,omitempty"`
}

func currentVersion() versionInfo {
	v := versionInfo{Version: Version, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
	}
	return v
}

func newVersionCmd(g *globals) *cobra.Command {
	var format string
	var short bool
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the berth version information",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := currentVersion()
			switch {
			case short:
				_, err := fmt.Fprintln(g.stdout, v.Version)
				return err
			case format == "json":
				return json.NewEncoder(g.stdout).Encode(v)
			case format == "" || format == "pretty":
				_, err := fmt.Fprintf(g.stdout, "berth version %s (%s, %s/%s)\n", v.Version, v.GoVersion, v.OS, v.Arch)
				return err
			}
			return errUsage("--format %q: use pretty or json", format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "Format the output: pretty or json")
	cmd.Flags().BoolVar(&short, "short", false, "Shows only the version number")
	return cmd
}
