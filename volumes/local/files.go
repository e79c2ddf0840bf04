package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/volumes"
)

// filesDir is where a project's secrets and configs are written:
// ROOT/projects/<project>/files/<16 hex>/{secrets,configs}/<name>, one
// random directory per WriteFiles call (one container), so a recreated
// container never shares (and its predecessor's removal never deletes)
// the files of the container that replaces it.
const filesDir = "files"

// maxFileSize bounds a secret or config copied from the host.
const maxFileSize = 16 << 20

var (
	_ volumes.FileStore = (*Manager)(nil)
	_ volumes.HostPaths = (*Manager)(nil)
)

func (m *Manager) projectFiles(project string) (string, error) {
	dir, err := m.root.ProjectDir(project)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filesDir), nil
}

// WriteFiles writes files into ROOT/projects/<project>/files/<random>/
// (directories 0700, each file with its mode and owner, written
// atomically) and returns their paths. A file copied from the host must
// be a regular file of at most 16 MiB.
func (m *Manager) WriteFiles(ctx context.Context, project string, files []volumes.File) ([]string, error) {
	base, err := m.projectFiles(project)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Mkdir(d, 0o700); err != nil && !os.IsExist(err) {
			return nil, fmt.Errorf("project %s: files: %w", project, err)
		}
	}
	dir := filepath.Join(base, NewAnonymousName()[:16])
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("project %s: files: %w", project, err)
	}
	out := make([]string, 0, len(files))
	for _, f := range files {
		p, err := writeOne(dir, f)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		out = append(out, p)
	}
	if err := state.SyncDir(base); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("project %s: files: %w", project, err)
	}
	return out, nil
}

func writeOne(dir string, f volumes.File) (string, error) {
	what := strings.TrimSuffix(f.Kind, "s") + " " + f.Name
	if f.Kind != "secrets" && f.Kind != "configs" {
		return "", errdefs.Invalidf("%s: kind %q is neither secrets nor configs", what, f.Kind)
	}
	if err := state.ValidName(strings.TrimSuffix(f.Kind, "s"), f.Name); err != nil {
		return "", err
	}
	if f.UID < 0 || f.GID < 0 {
		return "", errdefs.Invalidf("%s: uid and gid cannot be negative", what)
	}
	content := f.Content
	if f.Source != "" {
		b, err := readHostFile(f.Source)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		content = b
	}
	sub := filepath.Join(dir, f.Kind)
	if err := os.Mkdir(sub, 0o700); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	p := filepath.Join(sub, f.Name)
	mode := os.FileMode(f.Mode & 0o777)
	if err := state.WriteFile(p, content, mode); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	// The chown clears setuid bits, which are not allowed anyway; the mode
	// again after it, as asked.
	if err := os.Lchown(p, f.UID, f.GID); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Chmod(p, mode); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return p, nil
}

// readHostFile reads a regular file of at most maxFileSize bytes.
func readHostFile(p string) ([]byte, error) {
	if !filepath.IsAbs(p) {
		return nil, errdefs.Invalidf("file %q must be an absolute host path", p)
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errdefs.NotFoundf("file %s does not exist on the host; create it or fix the path", p)
		}
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errdefs.Invalidf("file %s is not a regular file", p)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, errdefs.Invalidf("file %s is larger than %d MiB", p, maxFileSize>>20)
	}
	return b, nil
}

// ReleaseFiles removes the WriteFiles directories of project's that hold
// one of paths.
func (m *Manager) ReleaseFiles(ctx context.Context, project string, paths []string) error {
	base, err := m.projectFiles(project)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var errs []error
	for _, p := range paths {
		rel, err := filepath.Rel(base, filepath.Clean(p))
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue
		}
		tok, _, _ := strings.Cut(rel, string(filepath.Separator))
		if len(tok) != 16 || strings.Trim(tok, "0123456789abcdef") != "" || seen[tok] {
			continue
		}
		seen[tok] = true
		if err := os.RemoveAll(filepath.Join(base, tok)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// OwnsFile reports a path under some project's files directory.
func (m *Manager) OwnsFile(p string) bool {
	rel, err := filepath.Rel(filepath.Join(m.root.Path, "projects"), filepath.Clean(p))
	if err != nil || strings.HasPrefix(rel, "..") {
		return false
	}
	parts := strings.Split(rel, string(filepath.Separator))
	return len(parts) >= 3 && parts[1] == filesDir
}

// EnsureHostPath checks that the absolute host path p exists, creating it
// (and its parents, 0755) as a directory when create is set, as compose
// does for short-syntax binds.
func (m *Manager) EnsureHostPath(ctx context.Context, p string, create bool) error {
	if !filepath.IsAbs(p) || strings.ContainsRune(p, 0) {
		return errdefs.Invalidf("host path %q must be absolute", p)
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if !create {
		return errdefs.NotFoundf("%s does not exist on the host", p)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("create %s on the host: %w", p, err)
	}
	return nil
}
