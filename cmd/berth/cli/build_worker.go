package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/build"
	"berth.dev/berth/image"
	"berth.dev/berth/image/archive"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/network/bridge"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

// LabelBuildStep marks the containers build steps run in.
const LabelBuildStep = "dev.berth.build-step"

// buildWorker runs build steps as berth containers: a RUN's command in
// a container on the previous step's image (on the default bridge
// network unless RUN --network says otherwise), a COPY's files written
// into a created, never started one; each step's upper dir is its layer.
type buildWorker struct {
	g     *globals
	rt    *linux.Runtime
	store *local.Store

	nmOnce sync.Once
	nm     *bridge.Manager
	nmErr  error
}

func (w *buildWorker) networks(ctx context.Context) (*bridge.Manager, error) {
	w.nmOnce.Do(func() {
		if w.nm, w.nmErr = w.g.openNetworks(); w.nmErr == nil {
			w.nmErr = ensureDefaultNetwork(ctx, w.nm)
		}
	})
	return w.nm, w.nmErr
}

func (w *buildWorker) New(ctx context.Context, img image.Image) (build.Step, error) {
	chain := ""
	if img.ID != "" {
		var err error
		if chain, err = w.store.Unpack(ctx, img); err != nil {
			return nil, err
		}
	}
	return &buildStep{w: w, img: img, chain: chain}, nil
}

// buildStep creates its container on first use: with the RUN's process
// for Run, with a placeholder (never started) for file operations.
type buildStep struct {
	w     *buildWorker
	img   image.Image
	chain string
	c     *linux.Container
	spec  runtime.ContainerSpec
	nm    *bridge.Manager
}

func (s *buildStep) create(ctx context.Context, p *build.Process) error {
	if s.c != nil {
		if p != nil {
			return errors.New("build step: the container exists already; a RUN needs a fresh one")
		}
		return nil
	}
	var id [6]byte
	rand.Read(id[:])
	proc := &specs.Process{Args: []string{"/bin/true"}, Cwd: "/"}
	netns := runtime.NetNSMode("none")
	var nets []runtime.NetworkAttachment
	if p != nil {
		proc = &specs.Process{Args: p.Args, Env: p.Env, Cwd: p.Cwd, User: specs.User{Username: p.User}}
		if proc.Cwd == "" {
			proc.Cwd = "/"
		}
		switch p.Network {
		case "host":
			netns = "host"
		case "none":
		default:
			netns = "private"
			nets = []runtime.NetworkAttachment{{Network: DefaultNetwork}}
		}
	}
	spec := runtime.ContainerSpec{
		Name:     "buildstep-" + hex.EncodeToString(id[:]),
		Labels:   map[string]string{LabelBuildStep: "true"},
		Image:    s.img.ID,
		ImageRef: s.img.ID.String(),
		Rootfs:   runtime.RootfsSpec{ChainID: s.chain},
		OCI:      &specs.Spec{Version: specs.Version, Process: proc, Linux: &specs.Linux{}},
		NetNS:    netns,
		Networks: nets,
		Log:      runtime.LogConfig{Driver: "json-file"},
	}
	if err := linux.ApplySecurity(&spec, linux.Security{}); err != nil {
		return err
	}
	if len(nets) > 0 {
		nm, err := s.w.networks(ctx)
		if err != nil {
			return fmt.Errorf("the build network: %w", err)
		}
		s.nm = nm
	}
	c, err := s.w.rt.CreateTransient(ctx, spec)
	if err != nil {
		return err
	}
	s.c, s.spec = c.(*linux.Container), spec
	if s.nm != nil {
		if err := connect(ctx, s.nm, c, spec, nil); err != nil {
			s.Close(context.WithoutCancel(ctx))
			return err
		}
	}
	return nil
}

func (s *buildStep) Stat(ctx context.Context, p string) (bool, bool, error) {
	if err := s.create(ctx, nil); err != nil {
		return false, false, err
	}
	st, err := s.c.StatPath(ctx, p, true)
	if errdefs.IsNotFound(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, st.Mode.IsDir(), nil
}

func (s *buildStep) CopyIn(ctx context.Context, r io.Reader) error {
	if err := s.create(ctx, nil); err != nil {
		return err
	}
	return s.c.CopyIn(ctx, "/", r)
}

func (s *buildStep) CopyOut(ctx context.Context, p string) (io.ReadCloser, error) {
	if err := s.create(ctx, nil); err != nil {
		return nil, err
	}
	return s.c.CopyOut(ctx, p)
}

func (s *buildStep) Run(ctx context.Context, p build.Process, out io.Writer) (int, error) {
	if err := s.create(ctx, &p); err != nil {
		return 0, err
	}
	if err := s.c.StartAttach(ctx); err != nil {
		var se *runtime.StartError
		if errors.As(err, &se) {
			fmt.Fprintln(out, se.Msg)
			return se.Code, nil
		}
		return 0, err
	}
	s.c.MarkCreated()
	if err := s.c.AttachFromStart(ctx, runtime.Stdio{Stdout: out, Stderr: out}); err != nil && !errdefs.IsCanceled(err) {
		return 0, err
	}
	ex, err := s.c.Wait(ctx)
	if err != nil {
		return 0, err
	}
	return ex.Code, nil
}

func (s *buildStep) Diff(ctx context.Context, w io.Writer) error {
	if err := s.create(ctx, nil); err != nil {
		return err
	}
	l, err := s.c.RootfsLayers(ctx)
	if err != nil {
		return err
	}
	return archive.Diff(ctx, w, l.Upper, archive.DiffOptions{MountTargets: l.MountTargets})
}

func (s *buildStep) Close(ctx context.Context) error {
	if s.c == nil {
		return nil
	}
	err := s.c.Remove(ctx, runtime.RemoveOptions{Force: true})
	if s.nm != nil {
		disconnect(ctx, s.nm, s.spec.Name, s.spec)
	}
	s.c = nil
	return err
}
