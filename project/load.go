package project

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	yaml "go.yaml.in/yaml/v4"
)

// Options say which project to load and how. The zero value loads the
// project found from the current directory with the process environment.
type Options struct {
	Files       []string          // -f, in order; "-" reads Stdin
	Stdin       io.Reader         // for "-"; nil means os.Stdin
	ProjectName string            // -p: explicit, must already be valid
	ProjectDir  string            // --project-directory
	Profiles    []string          // --profile; nil falls back to COMPOSE_PROFILES
	EnvFiles    []string          // --env-file, in order; replaces the default .env
	Env         map[string]string // the shell environment; nil means os.Environ()
	WorkDir     string            // current directory for discovery and relative paths; "" = os.Getwd()
}

// StdinName is how a project file read from standard input is named in
// messages.
const StdinName = "(stdin)"

// Load reads, converts (fig v1), validates and normalises a project. Every
// error it returns is a *Error naming the file and, where known, the line,
// column, service and field.
func Load(ctx context.Context, o Options) (m *Model, err error) {
	defer func() {
		if r := recover(); r != nil { // compose-go on hostile input
			m, err = nil, &Error{File: firstFile(o), Msg: fmt.Sprintf("the project loader failed: %v", r),
				Hint: "simplify the file around the last change; please report this with the file"}
		}
	}()
	m, err = load(ctx, o)
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) {
			pe = &Error{Msg: err.Error(), Err: err}
		}
		if pe.File == "" && m != nil && len(m.Files) > 0 {
			pe.File = m.Files[0]
		}
		return nil, pe
	}
	return m, nil
}

// load returns a partial Model alongside an error so Load can name a file.
func load(ctx context.Context, o Options) (*Model, error) {
	cwd := o.WorkDir
	if cwd == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, &Error{Msg: "cannot determine the current directory: " + err.Error(), Err: err}
		}
		cwd = wd
	}
	shell := o.Env
	if shell == nil {
		shell = environMap(os.Environ())
	}
	m := &Model{}

	// Which files.
	files := o.Files
	var projectDir string
	if o.ProjectDir != "" {
		projectDir = absFrom(cwd, o.ProjectDir)
		if fi, err := os.Stat(projectDir); err != nil || !fi.IsDir() {
			return m, &Error{File: projectDir, notFound: true, Msg: "project directory does not exist",
				Hint: "pass an existing directory to --project-directory"}
		}
	}
	if len(files) == 0 {
		if v := shell["COMPOSE_FILE"]; v != "" {
			sep := shell["COMPOSE_PATH_SEPARATOR"]
			if sep == "" {
				sep = string(os.PathListSeparator)
			}
			files = strings.Split(v, sep)
		} else if v := shell["FIG_FILE"]; v != "" {
			files = []string{v}
		}
	}
	if len(files) == 0 {
		start := cwd
		if projectDir != "" {
			start = projectDir
		}
		found, ignored, err := discover(start)
		if err != nil {
			return m, err
		}
		files = found
		for _, f := range ignored {
			m.Warnings = append(m.Warnings, fmt.Sprintf("found several project files; using %s and ignoring %s", found[0], f))
		}
	} else {
		for i, f := range files {
			if f != "-" {
				files[i] = absFrom(cwd, f)
			}
		}
	}
	m.Files = make([]string, len(files))
	for i, f := range files {
		m.Files[i] = f
		if f == "-" {
			m.Files[i] = StdinName
		}
	}

	// Working directory: --project-directory, else the first file's directory.
	m.WorkingDir = projectDir
	if m.WorkingDir == "" {
		m.WorkingDir = cwd
		for _, f := range files {
			if f != "-" {
				m.WorkingDir = filepath.Dir(f)
				break
			}
		}
	}

	// Interpolation environment.
	envFiles := make([]string, len(o.EnvFiles))
	for i, f := range o.EnvFiles {
		envFiles[i] = absFrom(cwd, f)
	}
	env, err := loadEnvironment(shell, envFiles, filepath.Join(m.WorkingDir, ".env"))
	if err != nil {
		return m, err
	}
	m.EnvFiles = env.files

	// Read, convert and check each file.
	var docs []*doc
	var details []types.ConfigFile
	for i, f := range files {
		name := m.Files[i]
		var content []byte
		if f == "-" {
			in := o.Stdin
			if in == nil {
				in = os.Stdin
			}
			content, err = io.ReadAll(io.LimitReader(in, 64<<20))
		} else {
			content, err = os.ReadFile(f)
		}
		if err != nil {
			e := &Error{File: name, Msg: "cannot read project file: " + err.Error(), Err: err,
				Hint: "check the path given with -f or COMPOSE_FILE"}
			e.notFound = os.IsNotExist(err)
			return m, e
		}
		d, err := parseDoc(name, content)
		if err != nil {
			return m, err
		}
		if isFigDoc(d.root) {
			conv, err := figConvert(name, d.root)
			if err != nil {
				return m, err
			}
			if content, err = encodeNode(name, conv); err != nil {
				return m, err
			}
			d.root, d.fig, m.Fig = conv, true, true
		}
		d.buildIndex()
		if err := checkNames(d); err != nil {
			return m, err
		}
		docs = append(docs, d)
		cfName := f
		if f == "-" {
			cfName = filepath.Join(m.WorkingDir, "-") // compose-go's stdin marker
		}
		details = append(details, types.ConfigFile{Filename: cfName, Content: content})
	}
	m.docs = docs
	if err := checkReferences(docs); err != nil {
		return m, err
	}

	// Project name: -p > COMPOSE_PROJECT_NAME > FIG_PROJECT_NAME > name: > directory.
	name, err := projectName(o.ProjectName, env, docs, m.WorkingDir)
	if err != nil {
		return m, err
	}
	m.Name = name

	profiles := o.Profiles
	if profiles == nil {
		if v := env.values["COMPOSE_PROFILES"]; v != "" {
			profiles = strings.Split(v, ",")
		}
	}
	m.Profiles = profiles

	var uses []varUse
	for _, d := range docs {
		uses = append(uses, scanVariables(d)...)
	}
	m.Variables = env.provenance(uses)

	lookupEnv := map[string]string{}
	for k, v := range env.values {
		lookupEnv[k] = v
	}
	p, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  m.WorkingDir,
		ConfigFiles: details,
		Environment: lookupEnv,
	}, func(lo *loader.Options) {
		lo.SetProjectName(name, true)
		lo.Profiles = profiles
		lo.ResolvePaths = true
	})
	if err != nil {
		return m, locateError(docs, err)
	}
	m.Project = p
	if err := checkModel(m); err != nil {
		return m, err
	}
	return m, nil
}

func firstFile(o Options) string {
	if len(o.Files) > 0 {
		return o.Files[0]
	}
	return o.WorkDir
}

func environMap(kv []string) map[string]string {
	out := make(map[string]string, len(kv))
	for _, e := range kv {
		if k, v, ok := strings.Cut(e, "="); ok && k != "" {
			out[k] = v
		}
	}
	return out
}

func absFrom(base, p string) string {
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[2:])
		}
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

func projectName(explicit string, env *environment, docs []*doc, workingDir string) (string, error) {
	for _, c := range []struct{ value, what string }{
		{explicit, "-p/--project-name"},
		{env.values["COMPOSE_PROJECT_NAME"], "COMPOSE_PROJECT_NAME"},
		{env.values["FIG_PROJECT_NAME"], "FIG_PROJECT_NAME"},
	} {
		if c.value == "" {
			continue
		}
		if err := ValidateProjectName(c.value); err != nil {
			return "", &Error{Msg: err.Error() + " (from " + c.what + ")",
				Hint: "explicit project names are used as given; pick one like \"myapp\" or \"my_app-2\""}
		}
		return c.value, nil
	}
	var fromFile string
	var at Pos
	for _, d := range docs {
		if k, v := mapGet(d.root, "name"); v != nil && !d.fig {
			v = resolveAlias(v)
			if v.Kind == yaml.ScalarNode && v.Value != "" {
				fromFile, at = v.Value, Pos{d.file, k.Line, k.Column}
			}
		}
	}
	if fromFile != "" {
		s, err := template.Substitute(fromFile, env.lookup)
		if err != nil {
			return "", errorf(at, "name", "check the ${…} expression", "%v", err)
		}
		if s != "" {
			n, err := NormalizeProjectName(s)
			if err != nil {
				return "", errorf(at, "name", "use lower-case letters, digits, '-' and '_'", "%v", err)
			}
			return n, nil
		}
	}
	n, err := NormalizeProjectName(filepath.Base(workingDir))
	if err != nil {
		return "", &Error{File: workingDir, Msg: err.Error(), Hint: "name the project with -p NAME or 'name:' in the file"}
	}
	return n, nil
}

// checkNames validates the names in one file before anything else sees
// them: service, network, volume, secret and config keys, container_name,
// and the name: of networks and volumes (they become paths and devices).
func checkNames(d *doc) error {
	if d.root == nil {
		return nil
	}
	kinds := map[string]string{"services": "service", "networks": "network", "volumes": "volume", "secrets": "secret", "configs": "config"}
	for _, top := range []string{"services", "networks", "volumes", "secrets", "configs"} {
		_, sect := mapGet(d.root, top)
		sect = resolveAlias(sect)
		if sect == nil || sect.Kind != yaml.MappingNode {
			continue
		}
		kind := kinds[top]
		for i := 0; i+1 < len(sect.Content); i += 2 {
			k := sect.Content[i]
			field := top + "." + k.Value
			pos, _ := d.lookup(field)
			if err := ValidateResourceName(kind, k.Value); err != nil {
				return errorf(pos, field, "rename it", "%v", err)
			}
			v := resolveAlias(sect.Content[i+1])
			if top == "services" {
				if ck, cv := mapGet(v, "container_name"); cv != nil && cv.Kind == yaml.ScalarNode && !strings.Contains(cv.Value, "$") {
					if err := ValidateContainerName(cv.Value); err != nil {
						return errorf(Pos{d.file, ck.Line, ck.Column}, field+".container_name", "rename it", "%v", err)
					}
				}
			}
			if top == "networks" || top == "volumes" {
				if nk, nv := mapGet(v, "name"); nv != nil && nv.Kind == yaml.ScalarNode && !strings.Contains(nv.Value, "$") {
					if err := ValidateResourceName(kind, nv.Value); err != nil {
						return errorf(Pos{d.file, nk.Line, nk.Column}, field+".name", "rename it", "%v", err)
					}
				}
			}
		}
	}
	return nil
}

// checkReferences reports service references (depends_on, links,
// volumes_from, network_mode service:, extends) naming no service of the
// project, with the position of the reference. Files with include: are
// left to the loader, which knows the included services.
func checkReferences(docs []*doc) error {
	known := map[string]bool{}
	for _, d := range docs {
		if k, _ := mapGet(d.root, "include"); k != nil {
			return nil
		}
		_, sect := mapGet(d.root, "services")
		sect = resolveAlias(sect)
		if sect == nil || sect.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i < len(sect.Content); i += 2 {
			known[sect.Content[i].Value] = true
		}
	}
	var names []string
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	hint := "the services of this project are: " + strings.Join(names, ", ")
	for _, d := range docs {
		_, sect := mapGet(d.root, "services")
		sect = resolveAlias(sect)
		if sect == nil || sect.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(sect.Content); i += 2 {
			svc := sect.Content[i].Value
			body := resolveAlias(sect.Content[i+1])
			check := func(field string, n *yaml.Node, target, what string) error {
				if target == "" || strings.Contains(target, "$") || known[target] {
					return nil
				}
				return errorf(Pos{d.file, n.Line, n.Column}, "services."+svc+"."+field, hint,
					"service %q %s service %q, which is not defined", svc, what, target)
			}
			if _, dep := mapGet(body, "depends_on"); dep != nil {
				dep = resolveAlias(dep)
				for _, n := range listOrKeys(dep) {
					if err := check("depends_on", n, n.Value, "depends on"); err != nil {
						return err
					}
				}
			}
			if _, links := mapGet(body, "links"); links != nil {
				for _, n := range resolveAlias(links).Content {
					n = resolveAlias(n)
					target, _, _ := strings.Cut(n.Value, ":")
					if err := check("links", n, target, "links to"); err != nil {
						return err
					}
				}
			}
			if _, vf := mapGet(body, "volumes_from"); vf != nil {
				for _, n := range resolveAlias(vf).Content {
					n = resolveAlias(n)
					if strings.HasPrefix(n.Value, "container:") {
						continue
					}
					target, _, _ := strings.Cut(strings.TrimPrefix(n.Value, "service:"), ":")
					if err := check("volumes_from", n, target, "takes volumes from"); err != nil {
						return err
					}
				}
			}
			if _, nm := mapGet(body, "network_mode"); nm != nil {
				nm = resolveAlias(nm)
				if target, ok := strings.CutPrefix(nm.Value, "service:"); ok {
					if err := check("network_mode", nm, target, "shares the network of"); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// listOrKeys returns the items of a sequence or the keys of a mapping.
func listOrKeys(n *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c = resolveAlias(c); c.Kind == yaml.ScalarNode {
				out = append(out, c)
			}
		}
	case yaml.MappingNode:
		for i := 0; i < len(n.Content); i += 2 {
			out = append(out, n.Content[i])
		}
	}
	return out
}

// checkModel validates what only the loaded model shows: names that came
// from interpolation, include or extends, and dependency cycles.
func checkModel(m *Model) error {
	p := m.Project
	for name, s := range p.Services {
		field := "services." + name
		if err := ValidateResourceName("service", name); err != nil {
			return m.errorAt(field, "rename it", "%v", err)
		}
		if s.ContainerName != "" {
			if err := ValidateContainerName(s.ContainerName); err != nil {
				return m.errorAt(field+".container_name", "rename it", "%v", err)
			}
		}
	}
	for key, n := range p.Networks {
		if err := ValidateResourceName("network", n.Name); err != nil && !bool(n.External) {
			return m.errorAt("networks."+key+".name", "rename it", "%v", err)
		}
	}
	for key, v := range p.Volumes {
		if err := ValidateResourceName("volume", v.Name); err != nil && !bool(v.External) {
			return m.errorAt("volumes."+key+".name", "rename it", "%v", err)
		}
	}
	if err := checkCapabilities(m); err != nil {
		return err
	}
	if _, err := m.Order(); err != nil {
		return err
	}
	return nil
}

// errorAt builds an Error at the position of a field in the first file
// that has it.
func (m *Model) errorAt(field, hint, format string, args ...any) *Error {
	pos := Pos{}
	for _, d := range m.docs {
		if p, ok := d.lookup(field); ok {
			pos = p
			if _, exact := d.index[normalizePath(field)]; exact {
				break
			}
		}
	}
	if pos.File == "" && len(m.Files) > 0 {
		pos.File = m.Files[0]
	}
	return errorf(pos, field, hint, format, args...)
}

var (
	pathInErrRe   = regexp.MustCompile(`\b((?:services|networks|volumes|secrets|configs)\.[A-Za-z0-9_.\[\]-]+)`)
	serviceErrRe  = regexp.MustCompile(`service "?([A-Za-z0-9][A-Za-z0-9_.-]*)"?`)
	additionalRe  = regexp.MustCompile(`additional propert(?:y|ies) '([^']+)'`)
	validatingRe  = regexp.MustCompile(`^validating [^:]+: `)
	failedParseRe = regexp.MustCompile(`^failed to parse [^:]+: `)
	falseSchemaRe = regexp.MustCompile(`^(\S+) false schema$`)
	cycleRe       = regexp.MustCompile(`dependency cycle detected: ([A-Za-z0-9_.-]+) ->`)
)

// locateError turns a compose-go error into an *Error positioned on the
// field it names.
func locateError(docs []*doc, err error) *Error {
	msg := err.Error()
	msg = validatingRe.ReplaceAllString(msg, "")
	msg = failedParseRe.ReplaceAllString(msg, "")
	msg = strings.TrimSuffix(msg, ": invalid compose project")
	hint := "see the compose specification for this field"
	field := ""
	if m := falseSchemaRe.FindStringSubmatch(msg); m != nil {
		// jsonschema's way of saying the key is not allowed there
		field = m[1]
		msg = fmt.Sprintf("unknown key '%s'", field[strings.LastIndexByte(field, '.')+1:])
		hint = "check its spelling and indentation against the compose specification"
	} else if m := cycleRe.FindStringSubmatch(msg); m != nil {
		field = "services." + m[1] + ".depends_on"
		hint = "break the cycle: a service cannot (indirectly) depend on itself"
	} else if m := pathInErrRe.FindStringSubmatch(msg); m != nil {
		field = strings.TrimRight(m[1], ".")
	} else if m := serviceErrRe.FindStringSubmatch(msg); m != nil {
		field = "services." + m[1]
	}
	if m := additionalRe.FindStringSubmatch(msg); m != nil && field != "" {
		field += "." + m[1]
	}
	e := &Error{Msg: msg, Err: err, Field: normalizePath(field), Service: serviceOfField(field), Hint: hint}
	var best Pos
	for _, d := range docs {
		if pos, ok := d.lookup(field); ok && field != "" {
			if best.File == "" || len(pos.File) > 0 {
				best = pos
				if _, exact := d.index[normalizePath(field)]; exact {
					break
				}
			}
		}
	}
	if best.File == "" && len(docs) > 0 {
		best.File = docs[0].file
	}
	e.File, e.Line, e.Col = best.File, best.Line, best.Col
	return e
}
