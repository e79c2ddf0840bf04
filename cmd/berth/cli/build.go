package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"berth.dev/berth/build"
	"berth.dev/berth/image"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/linux"
)

// builder wires the Dockerfile builder to berth's runtime, image store
// and build cache (ROOT/build/cache.json).
func (g *globals) builder(rt *linux.Runtime, store *local.Store) (*build.Builder, error) {
	root, err := state.Open(g.stateRoot())
	if err != nil {
		return nil, err
	}
	cache, err := build.OpenCache(filepath.Join(root.Path, "build", "cache.json"))
	if err != nil {
		return nil, err
	}
	return &build.Builder{
		Store:  store,
		Worker: &buildWorker{g: g, rt: rt, store: store},
		Cache:  cache,
		Pull: func(ctx context.Context, ref string) (image.Image, error) {
			res, err := g.pullImage(ctx, store, ref, "", g.newPullDisplay(false))
			return res.Image, err
		},
		Env: func(k string) (string, bool) {
			v, ok := g.env[k]
			return v, ok
		},
	}, nil
}

// buildFlags are the flags image build and compose build share.
type buildFlags struct {
	buildArgs []string
	noCache   bool
	pull      bool
	quiet     bool
	progress  string
}

func (f *buildFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "Set build-time variables (KEY=VALUE, or KEY to take it from the environment)")
	fl.BoolVar(&f.noCache, "no-cache", false, "Do not use cache when building the image")
	fl.BoolVar(&f.pull, "pull", false, "Always attempt to pull a newer version of the base images")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "Suppress the build output and print image ID on success")
	fl.StringVar(&f.progress, "progress", "auto", `Set type of progress output ("auto", "plain", "tty", "quiet"); tty prints the same step lines as plain`)
}

func (f *buildFlags) args() map[string]*string {
	if len(f.buildArgs) == 0 {
		return nil
	}
	out := map[string]*string{}
	for _, a := range f.buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if ok {
			out[k] = &v
		} else {
			out[k] = nil
		}
	}
	return out
}

func (f *buildFlags) progressTo(g *globals) (*build.Progress, error) {
	switch f.progress {
	case "auto", "plain", "tty", "":
	case "quiet":
		return build.NewProgress(nil), nil
	default:
		return nil, errUsage("--progress %q: use auto, plain, tty or quiet", f.progress)
	}
	if f.quiet {
		return build.NewProgress(nil), nil
	}
	return build.NewProgress(g.stderr), nil
}

func newImageBuildCmd(g *globals) *cobra.Command {
	var bf buildFlags
	var tags, labels, contexts []string
	var file, target, network string
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH",
		Short: "Build an image from a Dockerfile",
		Long: `Build an image from a Dockerfile, with berth's own builder: each RUN runs
in a berth container on the previous step's image (on the default bridge
network, so package installs can reach their mirrors), each COPY/ADD is
written into a step container's root, and every step's image is cached
under its parent, the instruction with its args expanded and the content
digest of the files it copies: an unchanged rebuild starts no container.
.dockerignore (or <Dockerfile>.dockerignore) is applied before hashing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			prog, err := bf.progressTo(g)
			if err != nil {
				return err
			}
			o := build.Options{Context: args[0], Dockerfile: file, Tags: tags, Target: target, BuildArgs: bf.args(),
				NoCache: bf.noCache, Pull: bf.pull, Network: network, Progress: prog, Labels: map[string]string{}}
			if file == "-" {
				b, err := io.ReadAll(io.LimitReader(g.stdin, 8<<20))
				if err != nil {
					return err
				}
				o.Inline, o.Dockerfile = b, ""
			} else if file != "" && !filepath.IsAbs(file) {
				// -f is relative to the current directory, as docker build.
				if abs, err := filepath.Abs(file); err == nil {
					o.Dockerfile = abs
				}
			}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				o.Labels[k] = v
			}
			if len(contexts) > 0 {
				o.Contexts = map[string]string{}
				for _, c := range contexts {
					k, v, ok := strings.Cut(c, "=")
					if !ok {
						return errUsage("--build-context %q: write NAME=PATH or NAME=docker-image://REF", c)
					}
					o.Contexts[k] = v
				}
			}
			rt, store, err := g.openRuntime()
			if err != nil {
				return err
			}
			b, err := g.builder(rt, store)
			if err != nil {
				return err
			}
			res, err := b.Build(ctx, o)
			if err != nil {
				return err
			}
			for _, n := range res.Notes {
				fmt.Fprintln(g.stderr, "berth: note:", n)
			}
			if bf.quiet {
				fmt.Fprintln(g.stdout, res.Image.ID)
			}
			return nil
		},
	}
	bf.add(cmd)
	f := cmd.Flags()
	f.StringArrayVarP(&tags, "tag", "t", nil, `Name and optionally a tag in the "name:tag" format`)
	f.StringVarP(&file, "file", "f", "", `Name of the Dockerfile (default: "PATH/Dockerfile"; "-" reads it from stdin)`)
	f.StringVar(&target, "target", "", "Set the target build stage to build")
	f.StringArrayVar(&labels, "label", nil, "Set metadata for an image")
	f.StringVar(&network, "network", "default", `Set the networking mode for the RUN instructions ("default", "none", "host")`)
	f.StringArrayVar(&contexts, "build-context", nil, "Additional build contexts (NAME=PATH or NAME=docker-image://REF)")
	return cmd
}

// serviceBuild is one image compose builds, maybe for several services.
type serviceBuild struct {
	ref      string
	services []string
	opts     build.Options
	cfg      string // the build section, to tell identical ones apart
}

// composeBuilds are the builds of the scope's services that have a build
// section; services with the same image and build section are built once.
func composeBuilds(e *composeEnv, scope []string, bf *buildFlags) ([]*serviceBuild, error) {
	byRef := map[string]*serviceBuild{}
	var out []*serviceBuild
	for _, name := range scope {
		svc, ok := e.m.Project.Services[name]
		if !ok || svc.Build == nil {
			continue
		}
		ref := reconcile.ImageRef(e.m.Name, svc) // image:, else <project>-<service>
		cfg := fmt.Sprintf("%#v", *svc.Build)
		if sb, ok := byRef[ref]; ok {
			if sb.cfg != cfg {
				return nil, errdefs.Invalidf("services %s and %s both build image %s with different build sections; give one of them another image name", sb.services[0], name, ref)
			}
			sb.services = append(sb.services, name)
			continue
		}
		o, err := serviceBuildOptions(svc.Build, bf)
		if err != nil {
			return nil, fmt.Errorf("service %s: build: %w", name, err)
		}
		o.Tags = append([]string{ref}, svc.Build.Tags...)
		sb := &serviceBuild{ref: ref, services: []string{name}, opts: o, cfg: cfg}
		byRef[ref] = sb
		out = append(out, sb)
	}
	return out, nil
}

// serviceBuildOptions maps a compose build section to build.Options.
func serviceBuildOptions(b *types.BuildConfig, bf *buildFlags) (build.Options, error) {
	o := build.Options{Context: b.Context, Dockerfile: b.Dockerfile, Target: b.Target, NoCache: b.NoCache, Pull: b.Pull, Network: b.Network}
	if o.Context == "" {
		o.Context = "."
	}
	if b.DockerfileInline != "" {
		o.Inline, o.Dockerfile = []byte(b.DockerfileInline), ""
	}
	switch o.Network {
	case "", "default", "bridge", "none", "host":
	default:
		return o, errdefs.Invalidf("network %q: berth builds on default, none or host", o.Network)
	}
	if len(b.Args) > 0 {
		o.BuildArgs = map[string]*string{}
		for k, v := range b.Args {
			o.BuildArgs[k] = v
		}
	}
	for k, v := range bf.args() {
		if o.BuildArgs == nil {
			o.BuildArgs = map[string]*string{}
		}
		o.BuildArgs[k] = v
	}
	if len(b.Labels) > 0 {
		o.Labels = map[string]string(b.Labels)
	}
	if len(b.AdditionalContexts) > 0 {
		o.Contexts = map[string]string{}
		for k, v := range b.AdditionalContexts {
			if strings.Contains(v, "://") && !strings.HasPrefix(v, "docker-image://") {
				return o, errdefs.Unavailablef("additional_contexts %s: %s: berth takes directories and docker-image:// references", k, v)
			}
			if !strings.Contains(v, "://") && !filepath.IsAbs(v) {
				v = filepath.Join(o.Context, v)
			}
			o.Contexts[k] = v
		}
	}
	if bf.noCache {
		o.NoCache = true
	}
	if bf.pull {
		o.Pull = true
	}
	for _, p := range b.Platforms {
		if p != "linux/"+goruntime.GOARCH {
			return o, errdefs.Unavailablef("platforms %s: berth builds for this machine only (linux/%s)", p, goruntime.GOARCH)
		}
	}
	return o, nil
}

// runBuilds runs builds in parallel (independent services), printing
// one progress stream, and says which service failed.
func (g *globals) runBuilds(ctx context.Context, e *composeEnv, builds []*serviceBuild, bf *buildFlags) error {
	if len(builds) == 0 {
		return nil
	}
	rt, ok := e.deps.Runtime.(*linux.Runtime)
	if !ok {
		return errdefs.Unavailablef("builds need berth's container runtime")
	}
	b, err := g.builder(rt, e.store)
	if err != nil {
		return err
	}
	prog, err := bf.progressTo(g)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(builds))
	notes := make([][]string, len(builds))
	for i, sb := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := sb.opts
			o.Progress = prog
			res, err := b.Build(ctx, o)
			if err != nil {
				errs[i] = fmt.Errorf("service %s: build %s: %w", strings.Join(sb.services, ", "), sb.ref, err)
				return
			}
			notes[i] = res.Notes
			if bf.quiet {
				fmt.Fprintln(g.stdout, res.Image.ID)
			}
		}()
	}
	wg.Wait()
	for _, ns := range notes {
		for _, n := range ns {
			fmt.Fprintln(g.stderr, "berth: note:", n)
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// buildForUp builds what up (create, run) needs: with --build every
// service in scope that has a build section (the cache makes unchanged
// ones almost free and gives the same image, so nothing is recreated),
// otherwise the ones whose image is missing. --no-build and --dry-run
// build nothing (the plan then says what it would build).
func (g *globals) buildForUp(ctx context.Context, e *composeEnv, scope []string, always, never bool) error {
	if never || g.dryRun {
		return nil
	}
	bf := &buildFlags{progress: "auto"}
	builds, err := composeBuilds(e, scope, bf)
	if err != nil {
		return err
	}
	if !always {
		builds = missingBuilds(ctx, e, builds)
	}
	return g.runBuilds(ctx, e, builds, bf)
}

// missingBuilds keeps the builds whose image is not in the store.
func missingBuilds(ctx context.Context, e *composeEnv, builds []*serviceBuild) []*serviceBuild {
	return slices.DeleteFunc(builds, func(sb *serviceBuild) bool {
		_, err := e.store.Get(ctx, sb.ref)
		return err == nil
	})
}

func newBuildComposeCmd(g *globals) *cobra.Command {
	var bf buildFlags
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] [SERVICE...]",
		Short: "Build or rebuild services",
		Long: `Build or rebuild the images of services that have a build section, with
berth's own builder and its layer cache. A service's image is named by its
image: key, else <project>-<service>; services that build the same image
with the same build section are built once, independent builds run in
parallel.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := g.composeServices(ctx, args)
			if err != nil {
				return err
			}
			scope := args
			if len(scope) == 0 {
				for name := range e.m.Project.Services {
					scope = append(scope, name)
				}
				sort.Strings(scope)
			}
			builds, err := composeBuilds(e, scope, &bf)
			if err != nil {
				return err
			}
			if len(builds) == 0 && len(args) > 0 {
				return errdefs.Invalidf("%s: no build section; nothing to build (add build: to the service)", strings.Join(args, ", "))
			}
			if g.dryRun {
				for _, sb := range builds {
					fmt.Fprintf(g.stdout, "build image %s for %s\n", sb.ref, strings.Join(sb.services, ", "))
				}
				return nil
			}
			return g.runBuilds(ctx, e, builds, &bf)
		},
	}
	bf.add(cmd)
	return g.compose(cmd)
}
