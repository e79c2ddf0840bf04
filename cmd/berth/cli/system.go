package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/state"
)

func newSystemCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "system COMMAND",
		Short: "Inspect berth and the host it runs on",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newSystemInfoCmd(g), newSystemDfCmd(g), newSystemPruneCmd(g))
	return cmd
}

type systemInfo struct {
	Version    string `json:"version"`
	Root       string `json:"root"`
	RootExists bool   `json:"root_exists"`
	RuntimeDir string `json:"runtime_dir"`
	Kernel     string `json:"kernel"`
	Cgroups    string `json:"cgroups"`
	Euid       int    `json:"euid"`
}

func newSystemInfoCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Show where berth keeps its state and what the kernel offers",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			info := systemInfo{Version: currentVersion().Version, Root: g.stateRoot(), Euid: os.Geteuid()}
			if fi, err := os.Stat(info.Root); err == nil && fi.IsDir() {
				info.RootExists = true
			}
			info.RuntimeDir = state.RuntimeDirFor(info.Root)
			var u unix.Utsname
			if err := unix.Uname(&u); err == nil {
				info.Kernel = unix.ByteSliceToString(u.Release[:])
			}
			info.Cgroups = cgroupMode()
			switch format {
			case "json":
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			case "", "pretty":
				t := display.NewTable("KEY", "VALUE")
				t.Row("version", info.Version)
				t.Row("root", fmt.Sprintf("%s (exists: %v)", info.Root, info.RootExists))
				t.Row("runtime dir", info.RuntimeDir)
				t.Row("kernel", info.Kernel)
				t.Row("cgroups", info.Cgroups)
				t.Row("euid", fmt.Sprint(info.Euid))
				return t.Write(g.stdout)
			}
			return errUsage("--format %q: use pretty or json", format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "Format the output: pretty or json")
	return cmd
}

// cgroupMode tells v1, hybrid (v1 controllers plus a unified mount) or v2.
func cgroupMode() string {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return "unknown"
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "v2"
	}
	if err := unix.Statfs("/sys/fs/cgroup/unified", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "hybrid (v1 controllers, unified mount at /sys/fs/cgroup/unified)"
	}
	if b, err := os.ReadFile("/proc/filesystems"); err == nil && strings.Contains(string(b), "cgroup") {
		return "v1"
	}
	return "unknown"
}

func newSystemDfCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show berth disk usage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.openImages()
			if err != nil {
				return err
			}
			u, err := s.DiskUsage(cmd.Context())
			if err != nil {
				return err
			}
			size := u.BlobBytes + u.LayerBytes
			if format == "json" {
				return json.NewEncoder(g.stdout).Encode(map[string]any{
					"Images": map[string]any{"Total": u.Images, "Active": 0, "BlobBytes": u.BlobBytes, "LayerBytes": u.LayerBytes, "Reclaimable": size},
				})
			}
			t := display.NewTable("TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE")
			t.Row("Images", fmt.Sprint(u.Images), "0", humanSize(size), humanSize(size)+" (100%)")
			return t.Write(g.stdout)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "Format the output: table or json")
	return cmd
}

func newSystemPruneCmd(g *globals) *cobra.Command {
	return newPruneCmd(g, "Remove unused data (dangling images; with -a every unused image)", func(pruned []digest.Digest, s *local.Store) error {
		u, err := s.DiskUsage(context.Background())
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(g.stdout, "Deleted images: %d\nImages left: %d (%s)\n", len(pruned), u.Images, humanSize(u.BlobBytes+u.LayerBytes))
		return err
	})
}
