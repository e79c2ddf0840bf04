package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	digest "github.com/opencontainers/go-digest"

	"berth.dev/berth/image"
	"berth.dev/berth/image/local"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/internal/testutil"
)

// openStore is a real image store on a temp state root.
func openStore(t testing.TB) *local.Store {
	s, _ := openStoreRoot(t)
	return s
}

func openStoreRoot(t testing.TB) (*local.Store, string) {
	t.Helper()
	r, err := state.Open(filepath.Join(testutil.TempRoot(t), "root"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := local.Open(r)
	if err != nil {
		t.Fatal(err)
	}
	return s, r.Path
}

type file struct{ name, body string }

func tarball(t testing.TB, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o755, ModTime: time.Unix(946684800, 0), Typeflag: tar.TypeDir}
		if !strings.HasSuffix(f.name, "/") {
			h.Typeflag, h.Size, h.Mode = tar.TypeReg, int64(len(f.body)), 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makeImage imports a three-layer image named ref: an imported rootfs and
// two committed layers, all stored uncompressed as berth makes them.
func makeImage(t testing.TB, s *local.Store, ref string) image.Image {
	t.Helper()
	ctx := context.Background()
	base, err := s.Import(ctx, bytes.NewReader(tarball(t,
		file{"bin/", ""}, file{"bin/sh", "#!fake shell\n"}, file{"etc/", ""},
		file{"etc/passwd", "root:x:0:0::/root:/bin/sh\n"},
		file{"big", strings.Repeat("berth layer content ", 50000)},
	)), "", []string{`CMD ["sh"]`})
	if err != nil {
		t.Fatal(err)
	}
	mid, err := s.CommitLayer(ctx, base, bytes.NewReader(tarball(t, file{"etc/hostname", "berth\n"})), "", local.CommitOptions{CreatedBy: "layer 2"})
	if err != nil {
		t.Fatal(err)
	}
	top, err := s.CommitLayer(ctx, mid, bytes.NewReader(tarball(t, file{"srv/", ""}, file{"srv/app", "app v1\n"})), ref, local.CommitOptions{CreatedBy: "layer 3"})
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// counter counts requests by kind.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[k]++
}

func (c *counter) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = nil
}

// kind names a registry request: "GET blob", "HEAD blob", "PATCH upload"…
func kind(r *http.Request) string {
	switch {
	case strings.Contains(r.URL.Path, "/blobs/uploads"):
		return r.Method + " upload"
	case strings.Contains(r.URL.Path, "/blobs/"):
		return r.Method + " blob"
	case strings.Contains(r.URL.Path, "/manifests/"):
		return r.Method + " manifest"
	}
	return r.Method + " " + r.URL.Path
}

// testRegistry is ggcr's in-process registry on 127.0.0.1, silent, with an
// optional wrapper and a request counter.
type testRegistry struct {
	srv   *httptest.Server
	host  string
	count *counter
	wrap  atomic.Pointer[func(http.Handler) http.Handler]
}

func newRegistry(t testing.TB) *testRegistry {
	t.Helper()
	tr := &testRegistry{count: &counter{}}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.count.add(kind(r))
		h := inner
		if wp := tr.wrap.Load(); wp != nil {
			h = (*wp)(inner)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

// setWrap installs (or with nil removes) a handler wrapper.
func (tr *testRegistry) setWrap(w func(http.Handler) http.Handler) {
	if w == nil {
		tr.wrap.Store(nil)
		return
	}
	tr.wrap.Store(&w)
}

// countingStore counts what goes into the content store.
type countingStore struct {
	*local.Store
	cs *countingContent
}

func newCountingStore(s *local.Store) *countingStore {
	return &countingStore{Store: s, cs: &countingContent{ContentStore: s.Content()}}
}

func (c *countingStore) Content() image.ContentStore { return c.cs }

type countingContent struct {
	image.ContentStore
	writes atomic.Int64
}

func (c *countingContent) Ingest(ctx context.Context, d digest.Digest, size int64, r io.Reader) error {
	c.writes.Add(1)
	return c.ContentStore.Ingest(ctx, d, size, r)
}

func (c *countingContent) Put(ctx context.Context, r io.Reader) (digest.Digest, int64, error) {
	c.writes.Add(1)
	return c.ContentStore.(putter).Put(ctx, r)
}

// ingestEmpty checks no partial blob is left in ROOT/content/ingest.
func ingestEmpty(t testing.TB, root string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "content", "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("partial blobs left in the ingest dir: %v", ents)
	}
}

func mustNoFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s exists", path)
	}
}
