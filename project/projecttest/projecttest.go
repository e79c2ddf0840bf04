// Package projecttest loads inline compose files for tests.
package projecttest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"berth.dev/berth/project"
)

// ProjectName is the name every project loaded here gets.
const ProjectName = "demo"

// Load writes yaml as compose.yaml in a new temporary directory and loads
// it as project "demo" with an empty shell environment, failing the test
// when the file does not load.
func Load(t testing.TB, yaml string) *project.Model {
	t.Helper()
	m, err := LoadWith(t, yaml, project.Options{})
	if err != nil {
		t.Fatalf("projecttest.Load: %v", err)
	}
	return m
}

// LoadWith is Load with more options (profiles, say) and the error returned
// rather than failing the test. Files, WorkDir, ProjectName and Env are
// filled in when empty.
func LoadWith(t testing.TB, yaml string, o project.Options) (*project.Model, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatalf("projecttest: %v", err)
	}
	if o.ProjectName == "" {
		o.ProjectName = ProjectName
	}
	if o.WorkDir == "" {
		o.WorkDir = dir
	}
	if o.Env == nil {
		o.Env = map[string]string{}
	}
	return project.Load(context.Background(), o)
}
