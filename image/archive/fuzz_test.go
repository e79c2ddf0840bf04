package archive

import (
	"bytes"
	"context"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// FuzzApplyLayer: whatever the tar stream, nothing is created or changed
// outside the layer root.
func FuzzApplyLayer(f *testing.F) {
	f.Add(layer(f, file("../outside", "x")))
	f.Add(layer(f, symlink("etc", "../host/etc"), file("etc/passwd", "x")))
	f.Add(layer(f, symlink("a", "b/../.."), symlink("b", "c"), dir("c"), file("a/host/secret", "x")))
	f.Add(layer(f, hardlink("x", "../host/etc/shadow")))
	f.Add(layer(f, symlink("h", "../host"), file("h/.wh.secret", ""), file("h/.wh..wh..opq", "")))
	f.Add(layer(f, dir("etc"), symlink("etc", "/"), file("etc/host/secret", "x")))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSandbox(t)
		testutil.Within(t, 10*time.Second, func() {
			Apply(context.Background(), s.root, bytes.NewReader(data)) //nolint:errcheck // errors are fine; escapes are not
		})
		s.check(t)
	})
}
