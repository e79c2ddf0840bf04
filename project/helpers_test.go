package project

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// writeTree writes files (relative path → content) under a new temp dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadIn loads the project found in dir with an empty shell environment
// unless o says otherwise.
func loadIn(t *testing.T, dir string, o Options) (*Model, error) {
	t.Helper()
	if o.WorkDir == "" {
		o.WorkDir = dir
	}
	if o.Env == nil {
		o.Env = map[string]string{}
	}
	return Load(context.Background(), o)
}

func mustLoad(t *testing.T, dir string, o Options) *Model {
	t.Helper()
	m, err := loadIn(t, dir, o)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return m
}

// loadYAML loads a single compose.yaml given inline.
func loadYAML(t *testing.T, yml string) *Model {
	t.Helper()
	return mustLoad(t, writeTree(t, map[string]string{"compose.yaml": yml}), Options{ProjectName: "test"})
}
