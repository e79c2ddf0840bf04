package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/image"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/errdefs"
)

// openImages opens the state root and its image store, which refuses to
// remove images that containers use.
func (g *globals) openImages() (*local.Store, error) {
	_, s, err := g.openRuntime()
	return s, err
}

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image COMMAND",
		Short: "Manage images",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newImageImportCmd(g), newImageLsCmd(g), newImageInspectCmd(g), newImageTagCmd(g),
		newImageRmCmd(g), newImageHistoryCmd(g), newImageSaveCmd(g), newImageLoadCmd(g), newImagePruneCmd(g),
		newImageBuildCmd(g), newImagePullCmd(g), newImagePushCmd(g), newImageSearchCmd(g))
	return cmd
}

func newImageImportCmd(g *globals) *cobra.Command {
	var changes []string
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] FILE|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImages()
			if err != nil {
				return err
			}
			var in io.Reader = g.stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return errdefs.NotFoundf("import: %w", err)
				}
				defer f.Close()
				in = f
			}
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			img, err := s.Import(cmd.Context(), in, ref, changes)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, img.ID)
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	return cmd
}

type imageRow struct {
	Repository string `json:"Repository"`
	Tag        string `json:"Tag"`
	ID         string `json:"ID"`
	CreatedAt  string `json:"CreatedAt"`
	Created    string `json:"CreatedSince"`
	Size       string `json:"Size"`
}

func newImageLsCmd(g *globals) *cobra.Command {
	var all, quiet bool
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List images",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.openImages()
			if err != nil {
				return err
			}
			imgs, err := s.List(cmd.Context())
			if err != nil {
				return err
			}
			var rows []imageRow
			for _, img := range imgs {
				if img.Intermediate && len(img.Refs) == 0 && !all {
					continue // a build step's image: the build cache (-a shows it)
				}
				short := img.ID.Encoded()[:12]
				refs := img.Refs
				if len(refs) == 0 {
					refs = []string{""}
				}
				for _, r := range refs {
					repo, tag := "<none>", "<none>"
					if r != "" {
						repo, tag = local.SplitFamiliar(r)
					}
					rows = append(rows, imageRow{repo, tag, short, img.Created.Format(time.RFC3339), since(img.Created), humanSize(img.Size)})
				}
			}
			switch {
			case quiet:
				done := map[string]bool{}
				for _, r := range rows {
					if !done[r.ID] {
						fmt.Fprintln(g.stdout, r.ID)
						done[r.ID] = true
					}
				}
				return nil
			case format == "json":
				if rows == nil {
					rows = []imageRow{}
				}
				return json.NewEncoder(g.stdout).Encode(rows)
			case format == "" || format == "table":
				t := display.NewTable("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")
				for _, r := range rows {
					t.Row(r.Repository, r.Tag, r.ID, r.Created, r.Size)
				}
				return t.Write(g.stdout)
			}
			return errUsage("--format %q: use table or json", format)
		},
	}
	f := cmd.Flags()
	// berth stores no intermediate images, so -a lists what ls lists; it
	// is accepted for docker compatibility.
	f.BoolVarP(&all, "all", "a", false, "Show all images (the build steps' intermediate images too)")
	f.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	f.StringVar(&format, "format", "", "Format the output: table or json")
	return cmd
}

func since(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "Less than a minute ago"
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d.Hours()), "hour") + " ago"
	case d < 14*24*time.Hour:
		return plural(int(d.Hours()/24), "day") + " ago"
	case d < 60*24*time.Hour:
		return plural(int(d.Hours()/24/7), "week") + " ago"
	case d < 2*365*24*time.Hour:
		return plural(int(d.Hours()/24/30), "month") + " ago"
	}
	return plural(int(d.Hours()/24/365), "year") + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		if unit == "hour" {
			return "About an hour"
		}
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// humanSize prints sizes as docker does (decimal units).
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}

// inspectImage is image inspect's JSON, shaped like docker's.
type inspectImage struct {
	ID           string            `json:"Id"`
	RepoTags     []string          `json:"RepoTags"`
	RepoDigests  []string          `json:"RepoDigests"`
	Created      string            `json:"Created"`
	Architecture string            `json:"Architecture"`
	Os           string            `json:"Os"`
	Size         int64             `json:"Size"`
	Config       any               `json:"Config"`
	RootFS       inspectRootFS     `json:"RootFS"`
	Metadata     map[string]string `json:"Metadata"`
}

type inspectRootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

func toInspect(img image.Image) inspectImage {
	out := inspectImage{ID: img.ID.String(), RepoTags: []string{}, RepoDigests: []string{},
		Architecture: img.Config.Architecture, Os: img.Config.OS, Size: img.Size, Config: img.Config.Config,
		RootFS: inspectRootFS{Type: img.Config.RootFS.Type}, Metadata: map[string]string{}}
	for _, r := range img.Refs {
		out.RepoTags = append(out.RepoTags, local.FamiliarRef(r))
	}
	if !img.Created.IsZero() {
		out.Created = img.Created.Format(time.RFC3339Nano)
	}
	for _, d := range img.Config.RootFS.DiffIDs {
		out.RootFS.Layers = append(out.RootFS.Layers, d.String())
	}
	return out
}

func newImageInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImages()
			if err != nil {
				return err
			}
			var out []inspectImage
			for _, a := range args {
				img, err := s.Get(cmd.Context(), a)
				if err != nil {
					return err
				}
				out = append(out, toInspect(img))
			}
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		},
	}
}

func newImageTagCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImages()
			if err != nil {
				return err
			}
			return s.Tag(cmd.Context(), args[0], args[1])
		},
	}
}

func newImageRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] IMAGE [IMAGE...]",
		Aliases: []string{"remove", "rmi"},
		Short:   "Remove one or more images",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImages()
			if err != nil {
				return err
			}
			var errs []string
			for _, a := range args {
				img, err := s.Get(cmd.Context(), a)
				if err == nil {
					err = s.Remove(cmd.Context(), a, force)
				}
				if err != nil {
					errs = append(errs, err.Error())
					continue
				}
				if _, gerr := s.Get(cmd.Context(), img.ID.String()); errdefs.IsNotFound(gerr) {
					fmt.Fprintf(g.stdout, "Deleted: %s\n", img.ID)
				} else {
					fmt.Fprintf(g.stdout, "Untagged: %s\n", a)
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("%s", strings.Join(errs, "\n"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	return cmd
}

func newImageHistoryCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "history IMAGE",
		Short: "Show the history of an image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImages()
			if err != nil {
				return err
			}
			img, err := s.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			t := display.NewTable("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT")
			layer := len(img.Manifest.Layers) - 1
			hist := img.Config.History
			for i := len(hist) - 1; i >= 0; i-- {
				h := hist[i]
				size := "0B"
				if !h.EmptyLayer && layer >= 0 {
					size = humanSize(img.Manifest.Layers[layer].Size)
					layer--
				}
				id := "<missing>"
				if i == len(hist)-1 {
					id = img.ID.Encoded()[:12]
				}
				created := "N/A"
				if h.Created != nil {
					created = since(*h.Created)
				}
				t.Row(id, created, h.CreatedBy, size, h.Comment)
			}
			return t.Write(g.stdout)
		},
	}
}

func newImageSaveCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (docker load and podman load accept it)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openImages()
			if err != nil {
				return err
			}
			if output == "" {
				if f, ok := g.stdout.(*os.File); ok && display.ProgressAuto.Resolve(f) == display.ProgressTTY {
					return errUsage("refusing to write an archive to a terminal: use -o FILE or redirect")
				}
				return s.Save(cmd.Context(), g.stdout, args)
			}
			tmp := output + ".tmp"
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			if err := s.Save(cmd.Context(), f, args); err != nil {
				f.Close()
				os.Remove(tmp)
				return err
			}
			if err := f.Close(); err != nil {
				os.Remove(tmp)
				return err
			}
			return os.Rename(tmp, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

func newImageLoadCmd(g *globals) *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load images from a tar archive (docker save, podman save, OCI layout) or STDIN",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.openImages()
			if err != nil {
				return err
			}
			var in io.Reader = g.stdin
			if input != "" {
				f, err := os.Open(input)
				if err != nil {
					return errdefs.NotFoundf("load: %w", err)
				}
				defer f.Close()
				in = f
			}
			imgs, err := s.Load(cmd.Context(), in)
			if err != nil {
				return err
			}
			if quiet {
				return nil
			}
			for _, img := range imgs {
				if len(img.Refs) == 0 {
					fmt.Fprintf(g.stdout, "Loaded image ID: %s\n", img.ID)
				}
				for _, r := range img.Refs {
					fmt.Fprintf(g.stdout, "Loaded image: %s\n", local.FamiliarRef(r))
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return cmd
}

func newImagePruneCmd(g *globals) *cobra.Command {
	return newPruneCmd(g, "Remove unused images", func(pruned []digest.Digest, _ *local.Store) error {
		for _, id := range pruned {
			fmt.Fprintf(g.stdout, "Deleted: %s\n", id)
		}
		return nil
	})
}

// newPruneCmd builds image prune and system prune: both remove dangling
// images (every unused one with -a) after --force, then report.
func newPruneCmd(g *globals, short string, report func([]digest.Digest, *local.Store) error) *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !force {
				return errUsage("prune removes data: confirm with --force (-f)")
			}
			s, err := g.openImages()
			if err != nil {
				return err
			}
			pruned, err := s.Prune(cmd.Context(), all)
			if err != nil {
				return err
			}
			return report(pruned, s)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}
