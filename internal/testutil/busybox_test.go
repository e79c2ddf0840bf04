package testutil

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"testing"
)

func TestImageIsReproducibleAndComplete(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("/bin/busybox missing: .ci/run must apt-get install busybox-static")
		}
		t.Skip("/bin/busybox missing: apt-get install -y busybox-static")
	}
	var a, b bytes.Buffer
	if err := WriteBusyboxImage(&a, "/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	if err := WriteBusyboxImage(&b, "/bin/busybox"); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(a.Bytes()) != sha256.Sum256(b.Bytes()) {
		t.Fatal("two builds differ")
	}
	seen := map[string]*tar.Header{}
	tr := tar.NewReader(&a)
	prev := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name < prev {
			t.Errorf("entries not sorted: %s after %s", h.Name, prev)
		}
		prev = h.Name
		seen[h.Name] = h
	}
	for _, want := range []string{"bin/", "sbin/", "usr/bin/", "usr/sbin/", "etc/", "root/", "proc/", "sys/", "dev/", "tmp/", "bin/busybox", "bin/sh", "usr/bin/env", "etc/passwd", "etc/group"} {
		if seen[want] == nil {
			t.Errorf("missing %s", want)
		}
	}
	if h := seen["tmp/"]; h != nil && h.Mode != 0o1777 {
		t.Errorf("tmp mode %o", h.Mode)
	}
	if h := seen["usr/bin/env"]; h != nil && (h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox") {
		t.Errorf("usr/bin/env: %+v", h)
	}
}
