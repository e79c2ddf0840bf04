package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/build/buildctx"
	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
)

// exec is one instruction being keyed and, on a miss, executed.
type exec struct {
	r   *run
	sr  *stageRun
	s   *stageState
	c   instructions.Command
	log *stepLog

	// What key() worked out, for execute.
	proc     Process
	copySrc  *copySource
	tmpFiles []string
}

// copySource is where a COPY/ADD reads from: the build context (or a
// named one, or downloaded files), or another stage's or image's root.
type copySource struct {
	ctx   *buildctx.Context
	srcs  []string
	img   *image.Image // --from a stage or an image
	opts  buildctx.CopyOptions
	chown string
}

// key is the step's cache key: the parent image, the instruction after
// expansion, and what it reads (the environment for RUN, the content
// digest of the files for COPY and ADD).
func (x *exec) key(ctx context.Context) (string, error) {
	inst, err := json.Marshal(x.c)
	if err != nil {
		return "", err
	}
	parts := []string{digestOf(x.s.img), x.c.Name(), string(inst)}
	switch c := x.c.(type) {
	case *instructions.RunCommand:
		p, err := x.runProcess(c)
		if err != nil {
			return "", err
		}
		x.proc = p
		var declared []string
		for _, k := range x.s.order {
			declared = append(declared, k+"="+x.s.args[k])
		}
		parts = append(parts, strings.Join(p.Args, "\x00"), strings.Join(declared, "\x00"), p.Network, p.User, p.Cwd)
	case *instructions.CopyCommand:
		d, err := x.copyDigest(ctx, c.From, c.SourcePaths, c.SourceContents, c.DestPath, c.Chmod, c.Chown, false)
		if err != nil {
			return "", err
		}
		parts = append(parts, d)
	case *instructions.AddCommand:
		if c.Checksum != "" && len(c.SourcePaths) != 1 {
			return "", errdefs.Invalidf("--checksum needs exactly one source")
		}
		d, err := x.copyDigest(ctx, "", c.SourcePaths, c.SourceContents, c.DestPath, c.Chmod, c.Chown, true)
		if err != nil {
			return "", err
		}
		parts = append(parts, d)
	case *instructions.WorkdirCommand:
		parts = append(parts, absPath(x.s.conf.Config.WorkingDir, c.Path))
	case *instructions.ExposeCommand:
		parts = append(parts, strings.Join(x.s.env(), "\x00"))
	}
	return cacheKey(parts...), nil
}

// execute runs the step and commits its image.
func (x *exec) execute(ctx context.Context) error {
	cfg := &x.s.conf.Config
	hist := &ocispec.History{CreatedBy: x.describe(), EmptyLayer: true, Comment: "berth.dockerfile.v0"}
	switch c := x.c.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.MaintainerCommand:
		x.s.conf.Author = c.Maintainer
	case *instructions.ExposeCommand:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range c.Ports {
			ep, err := x.r.expand(p, x.s.env())
			if err != nil {
				return errdefs.Invalidf("%v", err)
			}
			for _, one := range strings.Fields(ep) {
				if !strings.Contains(one, "/") {
					one += "/tcp"
				}
				cfg.ExposedPorts[strings.ToLower(one)] = struct{}{}
			}
		}
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v = strings.TrimSpace(v); v == "" {
				return errdefs.Invalidf("VOLUME needs a path")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
	case *instructions.CmdCommand:
		cfg.Cmd = x.shellForm(c.ShellDependantCmdLine)
		x.s.cmdSet = true
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = x.shellForm(c.ShellDependantCmdLine)
		if !x.s.cmdSet {
			cfg.Cmd = nil // the base image's CMD does not apply to a new ENTRYPOINT
		}
	case *instructions.HealthCheckCommand:
		h := *c.Health
		x.s.conf.Config.Healthcheck = &h
	case *instructions.ShellCommand:
		x.s.conf.Config.Shell = append([]string(nil), c.Shell...)
	case *instructions.OnbuildCommand:
		x.s.conf.Config.OnBuild = append(x.s.conf.Config.OnBuild, c.Expression)
	case *instructions.WorkdirCommand:
		wd := absPath(cfg.WorkingDir, c.Path)
		cfg.WorkingDir = wd
		made, err := x.workdir(ctx, wd)
		if err != nil {
			return err
		}
		hist.EmptyLayer = !made
	case *instructions.RunCommand:
		made, err := x.run(ctx)
		if err != nil {
			return err
		}
		hist.EmptyLayer = !made
	case *instructions.CopyCommand, *instructions.AddCommand:
		made, err := x.copy(ctx)
		if err != nil {
			return err
		}
		hist.EmptyLayer = !made
	default:
		return errdefs.Invalidf("%s is not supported by berth's builder", strings.ToUpper(x.c.Name()))
	}
	_, err := x.r.commit(ctx, x.s, hist, true)
	return err
}

// cleanup removes the scratch dirs of heredoc files and downloads.
func (x *exec) cleanup() {
	for _, f := range x.tmpFiles {
		os.RemoveAll(f)
	}
}

// describe is the step's history created_by.
func (x *exec) describe() string {
	if c, ok := x.c.(*instructions.RunCommand); ok {
		return "RUN " + strings.Join(x.procArgs(c), " ")
	}
	return x.r.describe(x.c)
}

// shellForm turns a shell-form CMD/ENTRYPOINT into the SHELL's argv.
func (x *exec) shellForm(cl instructions.ShellDependantCmdLine) []string {
	if !cl.PrependShell {
		return append([]string(nil), cl.CmdLine...)
	}
	return append(x.shell(), strings.Join(cl.CmdLine, " "))
}

func (x *exec) shell() []string {
	if sh := x.s.conf.Config.Shell; len(sh) > 0 {
		return append([]string(nil), sh...)
	}
	return []string{"/bin/sh", "-c"}
}

func (x *exec) procArgs(c *instructions.RunCommand) []string {
	if !c.PrependShell {
		return append([]string(nil), c.CmdLine...)
	}
	script := strings.Join(c.CmdLine, " ")
	// RUN <<EOF alone: the heredoc is the script (as buildkit).
	if len(c.Files) == 1 && strings.HasPrefix(strings.TrimSpace(script), "<<") && len(strings.Fields(script)) == 1 {
		return append(x.shell(), c.Files[0].Data)
	}
	// Other heredocs: the shell reads them from the script itself.
	for _, f := range c.Files {
		data := f.Data
		if !strings.HasSuffix(data, "\n") {
			data += "\n"
		}
		script += "\n" + data + f.Name
	}
	return append(x.shell(), script)
}

// runProcess is a RUN's process: argv, the environment (ENV, the
// declared args, the predefined proxy args), user, working dir, network.
func (x *exec) runProcess(c *instructions.RunCommand) (Process, error) {
	if ms := instructions.GetMounts(c); len(ms) > 0 {
		return Process{}, errdefs.Unavailablef("RUN --mount is not supported by berth's builder yet; copy what the step needs with COPY")
	}
	if sec := instructions.GetSecurity(c); sec != "" && sec != "sandbox" {
		return Process{}, errdefs.Unavailablef("RUN --security=%s is not supported; berth runs build steps with the default confinement", sec)
	}
	args := x.procArgs(c)
	if len(args) == 0 {
		return Process{}, errdefs.Invalidf("RUN needs a command")
	}
	env := append([]string(nil), x.s.conf.Config.Env...)
	for _, k := range x.s.order {
		if _, set := lookupEnv(env, k); !set {
			env = append(env, k+"="+x.s.args[k])
		}
	}
	for k, v := range x.r.args {
		if predefined[k] {
			if _, set := lookupEnv(env, k); !set {
				env = append(env, k+"="+v)
			}
		}
	}
	if _, ok := lookupEnv(env, "PATH"); !ok {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	network := string(instructions.GetNetwork(c))
	if network == "" {
		network = x.r.o.Network
	}
	switch network {
	case "", "default", "bridge":
		network = "default"
	case "none", "host":
	default:
		return Process{}, errdefs.Invalidf("RUN --network=%s: berth's builder knows default, none and host", network)
	}
	return Process{Args: args, Env: env, Cwd: x.s.conf.Config.WorkingDir, User: x.s.conf.Config.User, Network: network}, nil
}

// layerOf stores a step's diff; made is false when it changed nothing.
func (x *exec) layerOf(ctx context.Context, st Step) (bool, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(st.Diff(ctx, pw)) }()
	desc, n, err := x.r.b.Store.PutLayer(ctx, pr)
	pr.CloseWithError(errors.New("layer stored"))
	if err != nil {
		return false, fmt.Errorf("commit the step's changes: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	x.s.layers = append(x.s.layers, desc)
	x.s.conf.RootFS.DiffIDs = append(x.s.conf.RootFS.DiffIDs, desc.Digest)
	return true, nil
}

// run runs a RUN step in a container and keeps its changes.
func (x *exec) run(ctx context.Context) (bool, error) {
	st, err := x.r.b.Worker.New(ctx, x.s.img)
	if err != nil {
		return false, err
	}
	defer st.Close(context.WithoutCancel(ctx))
	code, err := st.Run(ctx, x.proc, x.log)
	x.log.flush()
	if err != nil {
		return false, err
	}
	if code != 0 {
		return false, fmt.Errorf("%w: process %q did not complete successfully: exit code: %d", errStep, strings.Join(x.proc.Args, " "), code)
	}
	return x.layerOf(ctx, st)
}

// workdir creates the working dir when the image lacks it.
func (x *exec) workdir(ctx context.Context, wd string) (bool, error) {
	st, err := x.r.b.Worker.New(ctx, x.s.img)
	if err != nil {
		return false, err
	}
	defer st.Close(context.WithoutCancel(ctx))
	exists, dir, err := st.Stat(ctx, wd)
	if err != nil {
		return false, err
	}
	if exists && dir {
		return false, nil
	}
	if exists {
		return false, errdefs.Invalidf("WORKDIR %s exists in the image and is not a directory", wd)
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(wd, "/") + "/", Mode: 0o755, ModTime: time.Now()})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	if err := st.CopyIn(ctx, pr); err != nil {
		return false, fmt.Errorf("create %s: %w", wd, err)
	}
	return x.layerOf(ctx, st)
}

// copyDigest works out a COPY/ADD's sources and hashes them.
func (x *exec) copyDigest(ctx context.Context, from string, srcs []string, contents []instructions.SourceContent, dest, chmod, chown string, add bool) (string, error) {
	wd := x.s.conf.Config.WorkingDir
	dst := absPath(wd, dest)
	dirDest := strings.HasSuffix(dest, "/") || dest == "." || len(srcs)+len(contents) > 1
	for _, s := range srcs {
		if strings.ContainsAny(s, "*?[") {
			dirDest = true
		}
	}
	o := buildctx.CopyOptions{Dest: dst, DestIsDir: dirDest, ExtractArchives: add}
	if chmod != "" {
		m, err := strconv.ParseUint(chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return "", errdefs.Invalidf("--chmod=%s: give octal permission bits such as 0755", chmod)
		}
		fm := fs.FileMode(m)
		o.Chmod = &fm
	}
	cs := &copySource{srcs: srcs, opts: o, chown: chown}
	x.copySrc = cs
	if from != "" {
		return x.fromDigest(ctx, cs, from)
	}
	cs.ctx = x.r.ctx
	var extraDigest []string
	if len(contents) > 0 || hasURL(srcs) {
		// Heredoc files and downloads live in a scratch context of their own.
		dir, err := os.MkdirTemp("", "berth-build-src-")
		if err != nil {
			return "", err
		}
		x.tmpFiles = append(x.tmpFiles, dir)
		var local []string
		for _, sc := range contents {
			name := path.Base(sc.Path)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(sc.Data), 0o644); err != nil {
				return "", err
			}
			local = append(local, name)
		}
		for _, s := range srcs {
			if !isURL(s) {
				if len(local) > 0 || hasURL(srcs) {
					return "", errdefs.Invalidf("mix of context files and URLs or heredocs in one instruction: split it into one instruction each")
				}
				continue
			}
			if !add {
				return "", errdefs.Invalidf("COPY cannot fetch URLs (%s); use ADD", s)
			}
			name, sum, err := x.download(ctx, dir, s)
			if err != nil {
				return "", err
			}
			extraDigest = append(extraDigest, s+"="+sum)
			local = append(local, name)
		}
		c, err := buildctx.Open(dir)
		if err != nil {
			return "", err
		}
		cs.ctx, cs.srcs = c, local
		cs.opts.ExtractArchives = false // downloads are not unpacked (Docker)
	}
	p, err := cs.ctx.Plan(cs.srcs, cs.opts)
	if err != nil {
		return "", err
	}
	d, err := p.Digest()
	if err != nil {
		return "", err
	}
	if c, ok := x.c.(*instructions.AddCommand); ok && c.Checksum != "" {
		if len(extraDigest) != 1 || !strings.HasSuffix(extraDigest[0], "="+strings.TrimPrefix(c.Checksum, "sha256:")) {
			return "", errdefs.Invalidf("--checksum=%s does not match what was downloaded (%s)", c.Checksum, strings.Join(extraDigest, ", "))
		}
	}
	return d.String() + "\x00" + strings.Join(extraDigest, "\x00"), nil
}

// fromDigest resolves COPY --from: a stage, a named context, or an image.
func (x *exec) fromDigest(ctx context.Context, cs *copySource, from string) (string, error) {
	from, err := x.r.expand(from, x.s.env())
	if err != nil {
		return "", errdefs.Invalidf("--from: %v", err)
	}
	if ac, ok := x.r.extra[from]; ok {
		cs.ctx = ac
		p, err := ac.Plan(cs.srcs, cs.opts)
		if err != nil {
			return "", err
		}
		d, err := p.Digest()
		return "context:" + from + ":" + d.String(), err
	}
	var img image.Image
	if j := x.r.stageRef(from, x.sr.i); j >= 0 {
		img = x.r.stages[j].img
	} else {
		ref := from
		if v, ok := x.r.o.Contexts[from]; ok && strings.HasPrefix(v, "docker-image://") {
			ref = strings.TrimPrefix(v, "docker-image://")
		}
		if img, err = x.r.b.Store.Get(ctx, ref); err != nil {
			if errdefs.IsNotFound(err) {
				return "", errdefs.NotFoundf("--from=%s is neither a stage before this one nor a local image; name a stage or import the image", from)
			}
			return "", err
		}
	}
	if img.ID == "" {
		return "", errdefs.Invalidf("--from=%s: that stage made no image (an empty FROM scratch)", from)
	}
	for _, s := range cs.srcs {
		if strings.ContainsAny(s, "*?[") {
			return "", errdefs.Unavailablef("--from=%s %s: wildcards in sources from another stage or image are not supported yet; name the path", from, s)
		}
	}
	cs.img = &img
	o := cs.opts
	return strings.Join(append([]string{"image:" + img.ID.String(), o.Dest, strconv.FormatBool(o.DestIsDir), fmt.Sprint(o.Chmod)}, cs.srcs...), "\x00"), nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func hasURL(srcs []string) bool {
	for _, s := range srcs {
		if isURL(s) {
			return true
		}
	}
	return false
}

// download fetches an ADD URL into dir and returns its file name and
// sha256.
func (x *exec) download(ctx context.Context, dir, src string) (string, string, error) {
	u, err := url.Parse(src)
	if err != nil {
		return "", "", errdefs.Invalidf("ADD %s: %v", src, err)
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || name == "" {
		name = "index.html"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return "", "", errdefs.Invalidf("ADD %s: %v", src, err)
	}
	cl := &http.Client{Timeout: 5 * time.Minute}
	resp, err := cl.Do(req)
	if err != nil {
		return "", "", errdefs.Unavailablef("ADD %s: cannot download it: %v; check the URL and the network, or download it into the context and COPY it", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", "", errdefs.Unavailablef("ADD %s: the server answered %s", src, resp.Status)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		return "", "", errdefs.Unavailablef("ADD %s: download: %v", src, err)
	}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		os.Chtimes(f.Name(), t, t)
	}
	return name, hex.EncodeToString(h.Sum(nil)), nil
}

// copy runs a COPY/ADD: the files into a step container, its diff kept.
func (x *exec) copy(ctx context.Context) (bool, error) {
	cs := x.copySrc
	st, err := x.r.b.Worker.New(ctx, x.s.img)
	if err != nil {
		return false, err
	}
	defer st.Close(context.WithoutCancel(ctx))
	o := cs.opts
	if cs.chown != "" {
		uid, gid, err := resolveOwner(ctx, st, cs.chown)
		if err != nil {
			return false, fmt.Errorf("--chown=%s: %w", cs.chown, err)
		}
		o.Chown = &buildctx.Owner{UID: uid, GID: gid}
	}
	if !o.DestIsDir {
		// A single file into an existing directory goes inside it.
		if exists, dir, err := st.Stat(ctx, o.Dest); err != nil {
			return false, err
		} else if exists && dir {
			o.DestIsDir = true
		}
	}
	pr, pw := io.Pipe()
	if cs.img != nil {
		src, err := x.r.b.Worker.New(ctx, *cs.img)
		if err != nil {
			return false, err
		}
		defer src.Close(context.WithoutCancel(ctx))
		go func() { pw.CloseWithError(copyFromImage(ctx, src, cs.srcs, o, pw)) }()
	} else {
		p, err := cs.ctx.Plan(cs.srcs, o)
		if err != nil {
			return false, err
		}
		go func() { pw.CloseWithError(p.WriteTar(pw)) }()
	}
	if err := st.CopyIn(ctx, pr); err != nil {
		pr.CloseWithError(err)
		return false, fmt.Errorf("copy into %s: %w", o.Dest, err)
	}
	return x.layerOf(ctx, st)
}

// copyFromImage writes the tar of COPY --from's sources, renamed to the
// destination as COPY's rules say (a directory's contents go into dest).
func copyFromImage(ctx context.Context, src Step, srcs []string, o buildctx.CopyOptions, w io.Writer) error {
	tw := tar.NewWriter(w)
	dest := strings.TrimPrefix(path.Clean(o.Dest), "/")
	for _, s := range srcs {
		sp := path.Clean("/" + s)
		rc, err := src.CopyOut(ctx, sp)
		if err != nil {
			if errdefs.IsNotFound(err) {
				return errdefs.NotFoundf("%s: not found in the source image", sp)
			}
			return err
		}
		tr := tar.NewReader(rc)
		top := ""
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				return err
			}
			name := strings.TrimSuffix(h.Name, "/")
			if top == "" {
				top = name
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(name, top), "/")
			var out string
			switch {
			case name == top && h.Typeflag == tar.TypeDir:
				out = dest
			case name == top && o.DestIsDir:
				out = path.Join(dest, path.Base(top))
			case name == top:
				out = dest
			default:
				out = path.Join(dest, rel)
			}
			if out == "" || out == "." {
				continue // the root itself keeps its metadata
			}
			h.Name = out
			if h.Typeflag == tar.TypeDir {
				h.Name += "/"
			}
			if h.Typeflag == tar.TypeLink {
				lrel := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSuffix(h.Linkname, "/"), top), "/")
				h.Linkname = path.Join(dest, lrel)
			}
			h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
			if o.Chown != nil {
				h.Uid, h.Gid = o.Chown.UID, o.Chown.GID
			}
			if o.Chmod != nil && h.Typeflag != tar.TypeSymlink {
				h.Mode = int64(*o.Chmod)
			}
			if err := tw.WriteHeader(h); err != nil {
				rc.Close()
				return err
			}
			if _, err := io.Copy(tw, tr); err != nil {
				rc.Close()
				return err
			}
		}
		rc.Close()
	}
	return tw.Close()
}

// resolveOwner turns --chown's user[:group] into numbers, names looked up
// in the image's /etc/passwd and /etc/group.
func resolveOwner(ctx context.Context, st Step, spec string) (int, int, error) {
	user, group, hasGroup := strings.Cut(spec, ":")
	uid, err := strconv.Atoi(user)
	gid := -1
	if err != nil {
		u, g, ok, rerr := lookupPasswd(ctx, st, "/etc/passwd", user)
		if rerr != nil {
			return 0, 0, rerr
		}
		if !ok {
			return 0, 0, errdefs.NotFoundf("no user %q in the image's /etc/passwd", user)
		}
		uid, gid = u, g
	}
	if !hasGroup {
		if gid < 0 {
			gid = uid
		}
		return uid, gid, nil
	}
	if gid, err = strconv.Atoi(group); err == nil {
		return uid, gid, nil
	}
	g, _, ok, rerr := lookupPasswd(ctx, st, "/etc/group", group)
	if rerr != nil {
		return 0, 0, rerr
	}
	if !ok {
		return 0, 0, errdefs.NotFoundf("no group %q in the image's /etc/group", group)
	}
	return uid, g, nil
}

// lookupPasswd finds name in a passwd or group file of the step's root:
// the third field and (passwd) the fourth.
func lookupPasswd(ctx context.Context, st Step, file, name string) (int, int, bool, error) {
	rc, err := st.CopyOut(ctx, file)
	if errdefs.IsNotFound(err) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil || h.Typeflag != tar.TypeReg {
		return 0, 0, false, nil
	}
	b, err := io.ReadAll(io.LimitReader(tr, 4<<20))
	if err != nil {
		return 0, 0, false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || f[0] != name {
			continue
		}
		id, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		second := id
		if len(f) > 3 {
			if g, err := strconv.Atoi(f[3]); err == nil {
				second = g
			}
		}
		return id, second, true, nil
	}
	return 0, 0, false, nil
}
