package fake

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/volumes"
)

// The fake also keeps files (volumes.FileStore) and host paths
// (volumes.HostPaths) in memory: every host path exists unless marked
// missing, and creating one clears the mark.
var (
	_ volumes.FileStore = (*Manager)(nil)
	_ volumes.HostPaths = (*Manager)(nil)
)

// File is a file WriteFiles keeps.
type File struct {
	volumes.File
	Path string
}

// fileState is the fake's files and host paths, under Manager.mu.
type fileState struct {
	files   map[string]File // by path
	fileSeq int
	missing map[string]bool
	created []string
}

func (m *Manager) fs() *fileState {
	if m.files == nil {
		m.files = &fileState{files: map[string]File{}, missing: map[string]bool{}}
	}
	return m.files
}

// WriteFiles keeps files under /fake/projects/<project>/files/<n>/.
func (m *Manager) WriteFiles(ctx context.Context, project string, files []volumes.File) ([]string, error) {
	if err := m.call("writefiles", project); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	fs := m.fs()
	fs.fileSeq++
	dir := fmt.Sprintf("/fake/projects/%s/files/%016x", project, fs.fileSeq)
	var out []string
	for _, f := range files {
		if f.Kind != "secrets" && f.Kind != "configs" {
			return nil, errdefs.Invalidf("kind %q", f.Kind)
		}
		p := dir + "/" + f.Kind + "/" + f.Name
		f.Content = slices.Clone(f.Content)
		fs.files[p] = File{File: f, Path: p}
		out = append(out, p)
	}
	return out, nil
}

// ReleaseFiles drops the files in the directories of paths.
func (m *Manager) ReleaseFiles(ctx context.Context, project string, paths []string) error {
	if err := m.call("releasefiles", project); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	fs := m.fs()
	prefix := "/fake/projects/" + project + "/files/"
	for _, p := range paths {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		tok, _, _ := strings.Cut(rest, "/")
		for q := range fs.files {
			if strings.HasPrefix(q, prefix+tok+"/") {
				delete(fs.files, q)
			}
		}
	}
	return nil
}

// OwnsFile reports a path WriteFiles could have returned.
func (m *Manager) OwnsFile(p string) bool {
	rest, ok := strings.CutPrefix(p, "/fake/projects/")
	return ok && strings.Contains(rest, "/files/")
}

// Files are the files kept, by path.
func (m *Manager) Files() map[string]File {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.fs().files)
}

// MarkMissing makes EnsureHostPath find path missing.
func (m *Manager) MarkMissing(path string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fs().missing[path] = true
}

// CreatedHostPaths are the paths EnsureHostPath created, in order.
func (m *Manager) CreatedHostPaths() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.fs().created)
}

// EnsureHostPath succeeds for a path not marked missing, and for a
// missing one with create (which it then records as created).
func (m *Manager) EnsureHostPath(ctx context.Context, path string, create bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	fs := m.fs()
	if !fs.missing[path] {
		return nil
	}
	if !create {
		return errdefs.NotFoundf("%s does not exist on the host", path)
	}
	delete(fs.missing, path)
	fs.created = append(fs.created, path)
	return nil
}
