package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/registry"
)

// registryOptions are the registry client's settings: the Docker config
// dir (DOCKER_CONFIG, else ~/.docker), the registries allowed over plain
// HTTP besides loopback (BERTH_INSECURE_REGISTRIES=host:port,...), and
// the cache of compressed layers pushes reuse.
func (g *globals) registryOptions() (registry.Options, error) {
	root, err := state.Open(g.stateRoot())
	if err != nil {
		return registry.Options{}, err
	}
	o := registry.Options{ConfigDir: g.env["DOCKER_CONFIG"], LayerCache: layerCachePath(root)}
	if o.ConfigDir == "" {
		if home := g.env["HOME"]; home != "" {
			o.ConfigDir = filepath.Join(home, ".docker")
		}
	}
	for _, h := range strings.Split(g.env["BERTH_INSECURE_REGISTRIES"], ",") {
		if h = strings.TrimSpace(h); h != "" {
			o.Insecure = append(o.Insecure, h)
		}
	}
	return o, nil
}

// layerCachePath is where pushes remember the compressed copy of each
// layer (registry.Options.LayerCache).
func layerCachePath(root *state.Root) string {
	return filepath.Join(root.Path, "registry", "layers.json")
}

// pullDisplay shows a pull's or push's progress: on a terminal one line
// per layer redrawn in place (status, bytes, rate), elsewhere one line
// per layer and status change.
type pullDisplay struct {
	w     io.Writer
	tty   bool
	quiet bool
	mu    sync.Mutex
	order []string
	lines map[string]*layerLine
	drawn int
	last  time.Time
}

type layerLine struct {
	status         string
	current, total int64
	started        time.Time
}

func (g *globals) newPullDisplay(quiet bool) *pullDisplay {
	d := &pullDisplay{w: g.stderr, quiet: quiet, lines: map[string]*layerLine{}}
	if f, ok := g.stderr.(*os.File); ok && isTerminal(f) {
		d.tty = true
	}
	return d
}

func (d *pullDisplay) event(p registry.Progress) {
	if d.quiet {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := p.Ref + " " + p.ID
	if p.ID == "" {
		d.flushLocked()
		fmt.Fprintln(d.w, p.Status)
		d.drawn = 0
		return
	}
	l, ok := d.lines[key]
	if !ok {
		l = &layerLine{started: time.Now()}
		d.lines[key] = l
		d.order = append(d.order, key)
	}
	changed := l.status != p.Status
	l.status, l.current, l.total = p.Status, p.Current, p.Total
	if !d.tty {
		if changed {
			fmt.Fprintf(d.w, "%s: %s\n", p.ID, p.Status)
		}
		return
	}
	if !changed && time.Since(d.last) < 100*time.Millisecond {
		return
	}
	d.redrawLocked()
}

func (d *pullDisplay) redrawLocked() {
	d.last = time.Now()
	if d.drawn > 0 {
		fmt.Fprintf(d.w, "\x1b[%dA", d.drawn)
	}
	for _, k := range d.order {
		l := d.lines[k]
		id := k[strings.LastIndexByte(k, ' ')+1:]
		fmt.Fprintf(d.w, "\x1b[2K%s: %s%s\n", id, l.status, bar(l))
	}
	d.drawn = len(d.order)
}

func (d *pullDisplay) flushLocked() {
	if d.tty && len(d.order) > 0 {
		d.redrawLocked()
	}
}

// done draws the final state and forgets the layers.
func (d *pullDisplay) done() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.flushLocked()
	d.order, d.lines, d.drawn = nil, map[string]*layerLine{}, 0
}

// bar is " [=====>    ] 12.3MB/45.6MB 5.1MB/s" while bytes move.
func bar(l *layerLine) string {
	if l.total <= 0 || l.current <= 0 || l.current >= l.total {
		return ""
	}
	const width = 30
	n := int(float64(width) * float64(l.current) / float64(l.total))
	b := strings.Repeat("=", n) + ">" + strings.Repeat(" ", width-n)
	rate := float64(l.current) / time.Since(l.started).Seconds()
	return fmt.Sprintf(" [%s] %s/%s %s/s", b[:width], humanSize(l.current), humanSize(l.total), humanSize(int64(rate)))
}

// pullImage pulls one reference with Docker's messages around it.
func (g *globals) pullImage(ctx context.Context, store *local.Store, ref, platform string, d *pullDisplay) (registry.PullResult, error) {
	o, err := g.registryOptions()
	if err != nil {
		return registry.PullResult{}, err
	}
	o.Platform, o.Progress = platform, d.event
	res, err := registry.Pull(ctx, store, ref, o)
	d.done()
	if err != nil {
		return res, fmt.Errorf("pull %s: %w", ref, err)
	}
	return res, nil
}

func newImagePullCmd(g *globals) *cobra.Command {
	var platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Long: `Download an image from a registry: a manifest list resolves to this
machine's platform (or --platform), layers download in parallel with their
digests verified while they stream, layers already present are skipped.
Credentials come from the Docker config file (berth login). Registries on
loopback addresses may be plain HTTP; others need TLS unless listed in
BERTH_INSECURE_REGISTRIES=host:port,...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, store, err := g.openRuntime()
			if err != nil {
				return err
			}
			ref := args[0]
			if !strings.ContainsAny(lastElem(ref), ":@") && !quiet {
				fmt.Fprintln(g.stderr, "Using default tag: latest")
			}
			res, err := g.pullImage(cmd.Context(), store, ref, platform, g.newPullDisplay(quiet))
			if err != nil {
				return err
			}
			if !quiet {
				fmt.Fprintf(g.stderr, "Digest: %s\n", res.Digest)
				if res.Fetched == 0 {
					fmt.Fprintf(g.stderr, "Status: Image is up to date for %s\n", local.FamiliarRef(res.Ref))
				} else {
					fmt.Fprintf(g.stderr, "Status: Downloaded newer image for %s\n", local.FamiliarRef(res.Ref))
				}
			}
			fmt.Fprintln(g.stdout, res.Ref)
			return nil
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "Set platform if server is multi-platform capable (os/arch[/variant])")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	return cmd
}

func newImagePushCmd(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Long: `Upload an image to a registry. Layers are gzip-compressed once and the
compressed blob is kept, so a second push does not compress again; blobs
the registry has already are skipped.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, store, err := g.openRuntime()
			if err != nil {
				return err
			}
			return g.pushImage(cmd.Context(), store, args[0], quiet)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	return cmd
}

func (g *globals) pushImage(ctx context.Context, store *local.Store, ref string, quiet bool) error {
	o, err := g.registryOptions()
	if err != nil {
		return err
	}
	n, err := local.NormalizeRef(ref)
	if err != nil {
		return err
	}
	d := g.newPullDisplay(quiet)
	o.Progress = d.event
	if !quiet {
		repo, _, _ := strings.Cut(strings.TrimPrefix(n, "docker.io/"), "@")
		if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
			repo = repo[:i]
		}
		fmt.Fprintf(g.stderr, "The push refers to repository [%s]\n", repo)
	}
	res, err := registry.Push(ctx, store, ref, o)
	d.done()
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	if !quiet {
		tag := "latest"
		if i := strings.LastIndexByte(res.Ref, ':'); i > strings.LastIndexByte(res.Ref, '/') {
			tag = res.Ref[i+1:]
		}
		fmt.Fprintf(g.stderr, "%s: digest: %s size: %d\n", tag, res.Digest, res.Size)
	}
	return nil
}

func newLoginCmd(g *globals) *cobra.Command {
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry",
		Long: `Log in to a registry: the credentials are checked against it first and
stored only when it accepts them, in the Docker config file
($DOCKER_CONFIG/config.json or ~/.docker/config.json, mode 0600) or the
credential helper it names. No SERVER means Docker Hub.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			if password != "" {
				fmt.Fprintln(g.stderr, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
				if passwordStdin {
					return errUsage("--password and --password-stdin are mutually exclusive")
				}
			}
			in, isFile := g.stdin.(*os.File)
			tty := isFile && isTerminal(in)
			if passwordStdin {
				if user == "" {
					return errUsage("--password-stdin needs --username")
				}
				b, err := io.ReadAll(io.LimitReader(g.stdin, 64<<10))
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			if user == "" {
				if !tty {
					return errUsage("no username: give --username (and --password-stdin) when stdin is not a terminal")
				}
				fmt.Fprint(g.stderr, "Username: ")
				line, _ := bufio.NewReader(in).ReadString('\n')
				user = strings.TrimSpace(line)
			}
			if password == "" {
				if !tty {
					return errUsage("no password: pipe it with --password-stdin")
				}
				p, err := readPassword(in, g.stderr)
				if err != nil {
					return err
				}
				password = p
			}
			o, err := g.registryOptions()
			if err != nil {
				return err
			}
			if err := registry.Login(cmd.Context(), server, user, password, o); err != nil {
				return fmt.Errorf("login: %w", err)
			}
			fmt.Fprintln(g.stdout, "Login Succeeded")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&user, "username", "u", "", "Username")
	f.StringVarP(&password, "password", "p", "", "Password (insecure: it shows in the process list; use --password-stdin)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "Take the password from stdin")
	return cmd
}

// readPassword reads a line from the terminal with echo off.
func readPassword(in *os.File, prompt io.Writer) (string, error) {
	fmt.Fprint(prompt, "Password: ")
	fd := int(in.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	line, err := bufio.NewReader(in).ReadString('\n')
	fmt.Fprintln(prompt)
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			o, err := g.registryOptions()
			if err != nil {
				return err
			}
			shown := server
			if shown == "" {
				shown = "https://index.docker.io/v1/"
			}
			if err := registry.Logout(server, o); err != nil {
				if errdefs.IsNotFound(err) {
					fmt.Fprintf(g.stdout, "Not logged in to %s\n", shown)
					return nil
				}
				return err
			}
			fmt.Fprintf(g.stdout, "Removing login credentials for %s\n", shown)
			return nil
		},
	}
}

func newImageSearchCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "search [OPTIONS] REGISTRY/TERM",
		Short: "Search a registry's repositories",
		Long: `Search the repositories of a registry through its catalog (/v2/_catalog),
for registries that offer it (the distribution registry does): berth image
search 127.0.0.1:5000/app. Docker Hub's search is a separate web API, not
part of the registry protocol, and berth does not call it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, term, ok := strings.Cut(args[0], "/")
			if !ok || !strings.ContainsAny(reg, ".:") && reg != "localhost" {
				reg, term = "docker.io", args[0]
			}
			o, err := g.registryOptions()
			if err != nil {
				return err
			}
			names, err := registry.Search(cmd.Context(), reg, term, limit, o)
			if err != nil {
				return fmt.Errorf("search %s: %w", args[0], err)
			}
			sort.Strings(names)
			fmt.Fprintln(g.stdout, "NAME")
			for _, n := range names {
				fmt.Fprintln(g.stdout, reg+"/"+n)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 25, "Max number of search results")
	return cmd
}

// registryLine is an image-level line for a pull display.
func registryLine(s string) registry.Progress { return registry.Progress{Status: s} }

func lastElem(ref string) string { return ref[strings.LastIndexByte(ref, '/')+1:] }
