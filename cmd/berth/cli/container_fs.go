package cli

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"berth.dev/berth/image/archive"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

// writesToTerminal reports whether w is a terminal (archives are not
// written to one).
func writesToTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// cpArg is one side of cp: a container path, or a host path ("-" for a
// tar on stdin or stdout).
type cpArg struct {
	container, path string
}

// splitCpArg reads CONTAINER:PATH as docker does: an absolute path, or
// one starting with '.', is local even with a colon in it.
func splitCpArg(arg string) cpArg {
	if filepath.IsAbs(arg) || strings.HasPrefix(arg, ".") {
		return cpArg{path: arg}
	}
	c, p, ok := strings.Cut(arg, ":")
	if !ok || c == "" {
		return cpArg{path: arg}
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // container paths are relative to its root
	}
	return cpArg{container: c, path: p}
}

// cpOpts are cp's flags.
type cpOpts struct {
	followLink, archive bool
}

func newCpCmd(g *globals) *cobra.Command {
	o := &cpOpts{}
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  berth container cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Long: `Copy files/folders between a container and the local filesystem.

Use '-' as the source to read a tar archive from stdin and extract it to a
directory in the container, or as the destination to write a tar archive
of the container path to stdout. Paths in the container are resolved
inside its root filesystem: a symlink in the container never leads outside
it. A directory source ending in '/.' copies its contents. Files copied
into a container belong to root unless -a keeps their owners; files copied
out belong to you unless -a keeps the container's owners.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, dst := splitCpArg(args[0]), splitCpArg(args[1])
			switch {
			case src.container != "" && dst.container != "":
				return errUsage("copying between containers is not supported; copy to the host first")
			case src.container == "" && dst.container == "":
				return errUsage("one of SRC and DEST must be CONTAINER:PATH")
			}
			ref := src.container + dst.container
			c, err := g.findContainer(ref)
			if err != nil {
				return err
			}
			if src.container != "" {
				return g.copyFromContainer(cmd.Context(), c, src.path, dst.path, o)
			}
			return g.copyToContainer(cmd.Context(), c, src.path, dst.path, o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.followLink, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	f.BoolVarP(&o.archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	return cmd
}

// copyFromContainer is cp CONTAINER:SRC DST.
func (g *globals) copyFromContainer(ctx context.Context, c *linux.Container, src, dst string, o *cpOpts) error {
	name := containerName(c)
	st, err := c.StatPath(ctx, src, o.followLink)
	if err != nil {
		return err
	}
	srcDir := st.Mode.IsDir()
	if dst == "-" {
		if writesToTerminal(g.stdout) {
			return errUsage("refusing to write a tar archive to a terminal: redirect stdout or give a host path")
		}
		rc, err := c.CopyOutWith(ctx, src, linux.CopyOptions{FollowLink: o.followLink})
		if err != nil {
			return err
		}
		defer rc.Close()
		if _, err := io.Copy(g.stdout, rc); err != nil {
			return fmt.Errorf("copy %s:%s to stdout: %w", name, src, err)
		}
		return nil
	}
	dst = g.hostPath(dst)
	// Where to extract, and what the top entry (named after src) becomes:
	// kept, renamed, or dropped for its contents only.
	into, newTop := dst, path.Base(path.Clean("/"+src))
	if newTop == "/" {
		newTop = "."
	}
	contents := srcDir && (strings.HasSuffix(src, "/.") || path.Clean("/"+src) == "/")
	fi, err := os.Stat(dst)
	switch {
	case err == nil && fi.IsDir():
		if contents {
			newTop = ""
		}
	case err == nil:
		if srcDir {
			return errdefs.Invalidf("cannot copy directory %s:%s to file %s; give a directory", name, src, dst)
		}
		into, newTop = filepath.Dir(dst), filepath.Base(dst)
	case errors.Is(err, fs.ErrNotExist):
		if !srcDir && strings.HasSuffix(dst, string(filepath.Separator)) {
			return errdefs.NotFoundf("destination directory %s does not exist; create it first", dst)
		}
		if pfi, err := os.Stat(filepath.Dir(dst)); err != nil || !pfi.IsDir() {
			return errdefs.NotFoundf("destination directory %s does not exist; create it first", filepath.Dir(dst))
		}
		into, newTop = filepath.Dir(dst), filepath.Base(dst)
	default:
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	rc, err := c.CopyOutWith(ctx, src, linux.CopyOptions{FollowLink: o.followLink})
	if err != nil {
		return err
	}
	defer rc.Close()
	top := path.Base(path.Clean("/" + src))
	if top == "/" {
		top = "."
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(rebaseTar(pw, rc, top, newTop))
	}()
	err = linux.ExtractTar(ctx, into, pr, linux.ExtractOptions{Chown: o.archive})
	pr.CloseWithError(errors.New("extraction ended"))
	<-done
	if err != nil {
		return fmt.Errorf("copy %s:%s to %s: %w", name, src, dst, err)
	}
	return nil
}

// rebaseTar copies a tar whose entries are top or top/..., renaming top
// to newTop ("" drops the top entry and keeps what is beneath).
func rebaseTar(w io.Writer, r io.Reader, top, newTop string) error {
	rename := func(n string) (string, bool) {
		n = strings.TrimSuffix(n, "/")
		rest, ok := strings.CutPrefix(n, top)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
			return n, true // not under top: leave it (in-root extraction still applies)
		}
		if newTop == "" {
			rest = strings.TrimPrefix(rest, "/")
			return rest, rest != ""
		}
		return newTop + rest, true
	}
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		name, keep := rename(h.Name)
		if !keep {
			continue
		}
		if h.Typeflag == tar.TypeDir {
			name += "/"
		}
		h.Name = name
		if h.Typeflag == tar.TypeLink {
			h.Linkname, _ = rename(h.Linkname)
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// hostPath makes a host path absolute against the working directory,
// keeping a trailing separator.
func (g *globals) hostPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	abs := filepath.Join(g.cwd, p)
	if strings.HasSuffix(p, string(filepath.Separator)) {
		abs += string(filepath.Separator)
	}
	return abs
}

// copyToContainer is cp SRC CONTAINER:DST.
func (g *globals) copyToContainer(ctx context.Context, c *linux.Container, src, dst string, o *cpOpts) error {
	name := containerName(c)
	if src == "-" {
		// An archive as given: extracted into the directory dst, owners kept.
		return c.CopyIn(ctx, dst, g.stdin)
	}
	src = g.hostPath(src)
	fi, err := os.Lstat(src)
	if err == nil && o.followLink && fi.Mode()&fs.ModeSymlink != 0 {
		fi, err = os.Stat(src)
	}
	if err != nil {
		return errdefs.NotFoundf("copy %s: %w", src, err)
	}
	srcDir := fi.IsDir()
	if !srcDir && strings.HasSuffix(src, string(filepath.Separator)) {
		return errdefs.Invalidf("%s is not a directory; drop the trailing slash", src)
	}
	contents := srcDir && (strings.HasSuffix(src, string(filepath.Separator)+".") || filepath.Clean(src) == "/")
	into, top := dst, filepath.Base(filepath.Clean(src))
	st, err := c.StatPath(ctx, dst, true)
	switch {
	case err == nil && st.Mode.IsDir():
		into = st.Path
		if contents {
			top = ""
		}
	case err == nil:
		if srcDir {
			return errdefs.Invalidf("cannot copy directory %s to file %s:%s; give a directory", src, name, dst)
		}
		into, top = path.Dir(st.Path), path.Base(st.Path)
	case errdefs.IsNotFound(err):
		if !srcDir && strings.HasSuffix(dst, "/") {
			return errdefs.NotFoundf("destination directory %s:%s does not exist; create it first", name, dst)
		}
		parent := path.Dir(path.Clean(dst))
		pst, err := c.StatPath(ctx, parent, true)
		if err != nil || !pst.Mode.IsDir() {
			return errdefs.NotFoundf("destination directory %s:%s does not exist; create it first", name, parent)
		}
		into, top = pst.Path, path.Base(path.Clean(dst))
	default:
		return err
	}
	root := src
	if o.followLink {
		if root, err = filepath.EvalSymlinks(src); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeHostTar(ctx, pw, root, top, o.archive))
	}()
	err = c.CopyIn(ctx, into, pr)
	pr.CloseWithError(errors.New("copy ended"))
	<-done
	return err
}

// writeHostTar writes the host tree at root as a tar whose top entry is
// named top ("": root's contents without it). Symlinks are entries, not
// followed; hardlinks within the tree stay hardlinks; sockets are left
// out. Owners become root unless keepOwners.
func writeHostTar(ctx context.Context, w io.Writer, root, top string, keepOwners bool) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(filepath.Join(top, rel))
		if top == "" && rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		h.Name, h.Uname, h.Gname, h.Format = name, "", "", tar.FormatPAX
		if fi.IsDir() {
			h.Name += "/"
		}
		if !keepOwners {
			h.Uid, h.Gid = 0, 0
		}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && sys.Nlink > 1 {
			key := [2]uint64{uint64(sys.Dev), sys.Ino}
			if first, ok := links[key]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			} else {
				links[key] = name
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, h.Size)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func containerName(c *linux.Container) string {
	if m, err := c.Meta(); err == nil {
		return m.Name
	}
	return c.ID()[:12]
}

func newDiffCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "Inspect changes to files or directories on a container's filesystem",
		Long: `Inspect changes to files or directories on a container's filesystem
since it was created: A added, C changed, D deleted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.findContainer(args[0])
			if err != nil {
				return err
			}
			l, err := c.RootfsLayers(cmd.Context())
			if err != nil {
				return err
			}
			changes, err := archive.Changes(cmd.Context(), l.Upper, l.Lower, archive.DiffOptions{MountTargets: l.MountTargets})
			if err != nil {
				return fmt.Errorf("diff of container %s: %w", args[0], err)
			}
			for _, ch := range changes {
				if _, err := fmt.Fprintln(g.stdout, ch); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func newExportCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.findContainer(args[0])
			if err != nil {
				return err
			}
			if output == "" {
				if writesToTerminal(g.stdout) {
					return errUsage("refusing to write an archive to a terminal: use -o FILE or redirect")
				}
				return c.Export(cmd.Context(), g.stdout)
			}
			output = g.hostPath(output)
			tmp := output + ".tmp"
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if err := c.Export(cmd.Context(), f); err != nil {
				f.Close()
				os.Remove(tmp)
				return err
			}
			if err := f.Close(); err != nil {
				os.Remove(tmp)
				return fmt.Errorf("export: %w", err)
			}
			return os.Rename(tmp, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

func newCommitCmd(g *globals) *cobra.Command {
	var changes []string
	var message, author string
	var pause bool
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, store, err := g.openRuntime()
			if err != nil {
				return err
			}
			c, err := rt.Find(args[0])
			if err != nil {
				return err
			}
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			if pause {
				if info, err := c.Info(ctx); err == nil && info.Status == runtime.StatusRunning {
					switch err := c.Pause(ctx); {
					case err == nil:
						defer c.Resume(context.WithoutCancel(ctx))
					case errdefs.IsUnavailable(err):
						fmt.Fprintf(g.stderr, "berth: warning: container %s cannot be paused (%v); committing it while it runs\n", args[0], err)
					default:
						return fmt.Errorf("commit %s: pause: %w (or commit with --pause=false)", args[0], err)
					}
				}
			}
			img, err := commitContainer(ctx, c, store, ref, local.CommitOptions{Changes: changes, Author: author, Comment: message})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, img)
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	f.StringVarP(&message, "message", "m", "", "Commit message")
	f.StringVarP(&author, "author", "a", "", `Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`)
	f.BoolVarP(&pause, "pause", "p", true, "Pause container during commit")
	return cmd
}

// commitContainer makes an image of the container's image plus its upper
// dir as one layer, with the container's command, environment, working
// dir and user as the config (then o.Changes), and returns its ID.
func commitContainer(ctx context.Context, c *linux.Container, store *local.Store, ref string, o local.CommitOptions) (string, error) {
	m, err := c.Meta()
	if err != nil {
		return "", err
	}
	parent, err := store.Get(ctx, m.Spec.Image.String())
	if errdefs.IsNotFound(err) {
		return "", errdefs.NotFoundf("commit %s: its image %s was removed; a commit needs the image's layers (pull or load it again)", m.Name, m.Spec.Image)
	}
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", m.Name, err)
	}
	l, err := c.RootfsLayers(ctx)
	if err != nil {
		return "", err
	}
	cfg := containerConfig(m, parent.Config.Config)
	o.Config = &cfg
	if p := m.Spec.OCI.Process; p != nil {
		o.CreatedBy = strings.Join(p.Args, " ")
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(archive.Diff(ctx, pw, l.Upper, archive.DiffOptions{MountTargets: l.MountTargets}))
	}()
	img, err := store.CommitLayer(ctx, parent, pr, ref, o)
	pr.CloseWithError(errors.New("commit ended"))
	<-done
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", m.Name, err)
	}
	return img.ID.String(), nil
}

// containerConfig is the image config a commit starts from: the image's,
// with what the container ran (command, environment, working dir, user)
// and its labels, as docker commit does; compose's labels stay out, so a
// committed image does not make its containers look like a project's.
func containerConfig(m *linux.Meta, base ocispec.ImageConfig) ocispec.ImageConfig {
	cfg := base
	cfg.Labels = map[string]string{}
	for k, v := range base.Labels {
		cfg.Labels[k] = v
	}
	for k, v := range m.Spec.Labels {
		if !strings.HasPrefix(k, "com.docker.compose.") {
			cfg.Labels[k] = v
		}
	}
	if len(cfg.Labels) == 0 {
		cfg.Labels = nil
	}
	if m.Spec.OCI == nil || m.Spec.OCI.Process == nil {
		return cfg
	}
	p := m.Spec.OCI.Process
	if len(p.Env) > 0 {
		cfg.Env = append([]string(nil), p.Env...)
	}
	if p.Cwd != "" {
		cfg.WorkingDir = p.Cwd
	}
	if p.User.Username != "" {
		cfg.User = p.User.Username
	}
	args, ep := p.Args, base.Entrypoint
	switch {
	case len(ep) == 0:
		cfg.Cmd = append([]string(nil), args...)
	case len(args) >= len(ep) && strings.Join(args[:len(ep)], "\x00") == strings.Join(ep, "\x00"):
		cfg.Cmd = append([]string(nil), args[len(ep):]...)
	case len(args) > 0: // run --entrypoint
		cfg.Entrypoint, cfg.Cmd = []string{args[0]}, append([]string(nil), args[1:]...)
	}
	return cfg
}
