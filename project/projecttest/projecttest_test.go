package projecttest

import (
	"strings"
	"testing"

	"berth.dev/berth/project"
)

func TestLoad(t *testing.T) {
	m := Load(t, "services: {web: {image: web}}\n")
	if m.Name != "demo" || len(m.Project.Services) != 1 {
		t.Fatalf("model: name %q, services %v", m.Name, m.Project.ServiceNames())
	}
	if _, err := LoadWith(t, "services: {web: {image: web, bogus: 1}}\n", project.Options{}); err == nil ||
		!strings.Contains(err.Error(), "bogus") {
		t.Fatalf("bad file: %v", err)
	}
	m, err := LoadWith(t, "services: {web: {image: web, profiles: [x]}}\n", project.Options{Profiles: []string{"x"}, ProjectName: "other"})
	if err != nil || m.Name != "other" || len(m.Project.Services) != 1 {
		t.Fatalf("options not used: %v", err)
	}
}
