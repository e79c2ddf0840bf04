package project

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	projectNameRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	resourceNameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	// Docker's rule for container names (a leading / is accepted and dropped).
	containerNameRe = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
)

// maxNameLen bounds names that end up in file names and kernel-visible
// identifiers.
const maxNameLen = 200

// ValidateProjectName checks an explicitly given project name (-p,
// COMPOSE_PROJECT_NAME). Explicit names are never rewritten.
func ValidateProjectName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("project name is empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("project name is longer than %d characters", maxNameLen)
	case !projectNameRe.MatchString(name):
		return fmt.Errorf("invalid project name %q: use only lower-case letters, digits, '-' and '_', starting with a letter or digit", name)
	}
	return nil
}

// NormalizeProjectName derives a project name from a directory name the
// way compose does: lower-case, keep [a-z0-9_-], drop leading '_' and '-'.
// It fails when nothing usable is left (a directory named "___").
func NormalizeProjectName(s string) (string, error) {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' || r == '-' {
			b.WriteRune(r)
		}
	}
	n := strings.TrimLeft(b.String(), "_-")
	if len(n) > maxNameLen {
		n = n[:maxNameLen]
	}
	if n == "" {
		return "", fmt.Errorf("cannot derive a project name from %q: it has no letters or digits", s)
	}
	return n, nil
}

// ValidateResourceName checks a service, network, volume, secret or config
// key: ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$, never "." or "..".
func ValidateResourceName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name is empty", kind)
	case len(name) > maxNameLen:
		return fmt.Errorf("%s name is longer than %d characters", kind, maxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("%s name %q is not allowed", kind, name)
	case !resourceNameRe.MatchString(name):
		return fmt.Errorf("invalid %s name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", kind, name)
	}
	return nil
}

// ValidateContainerName checks container_name by Docker's rule.
func ValidateContainerName(name string) error {
	switch {
	case len(name) > maxNameLen:
		return fmt.Errorf("container name is longer than %d characters", maxNameLen)
	case !containerNameRe.MatchString(name):
		return fmt.Errorf("invalid container name %q: use at least two of letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return nil
}
