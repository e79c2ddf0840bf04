package local

import (
	"strings"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/errdefs"
)

// NormalizeRef turns a user's reference into Docker's canonical form:
// busybox → docker.io/library/busybox:latest; a digest reference keeps its
// digest and gets no tag.
func NormalizeRef(ref string) (string, error) {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", errdefs.Invalidf("invalid image reference %q: %v", ref, err)
	}
	return reference.TagNameOnly(n).String(), nil
}

// FamiliarRef is the short form users write (busybox:latest).
func FamiliarRef(ref string) string {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarString(n)
}

// SplitFamiliar returns the familiar repository and tag of a reference,
// for display; a digest reference has tag "<none>".
func SplitFamiliar(ref string) (repo, tag string) {
	f := FamiliarRef(ref)
	if i := strings.LastIndex(f, "@"); i > 0 {
		return f[:i], "<none>"
	}
	if i := strings.LastIndex(f, ":"); i > 0 && !strings.Contains(f[i:], "/") {
		return f[:i], f[i+1:]
	}
	return f, "<none>"
}

// looksLikeID reports whether s names an image by (a prefix of) its ID.
func looksLikeID(s string) (string, bool) {
	s = strings.TrimPrefix(s, string(digest.SHA256)+":")
	if len(s) < 4 || len(s) > 64 {
		return "", false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return s, true
}
