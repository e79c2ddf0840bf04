package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/errdefs"
)

// TestPushPullRoundTrip: an image pushed from one root and pulled into
// another keeps its ID and diff IDs; a second pull fetches no layer; a
// second push skips every blob and compresses nothing again.
func TestPushPullRoundTrip(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	src := newCountingStore(openStore(t))
	ref := reg.host + "/team/app:1"
	img := makeImage(t, src.Store, ref)
	cache := filepath.Join(t.TempDir(), "layercache.json")
	o := Options{LayerCache: cache}

	var mu sync.Mutex
	var events []Progress
	o.Progress = func(p Progress) { mu.Lock(); events = append(events, p); mu.Unlock() }
	pr, err := Push(ctx, src, ref, o)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Pushed != 3 || pr.Skipped != 0 || pr.Digest == "" || pr.Ref != ref {
		t.Fatalf("first push: %+v", pr)
	}
	if n := src.cs.writes.Load(); n != 3 {
		t.Fatalf("first push stored %d compressed blobs, want 3", n)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("layer cache: %v %v", fi, err)
	}
	if !hasStatus(events, "Pushed") || !hasStatus(events, "Preparing") {
		t.Errorf("push progress lacks Preparing/Pushed: %v", events)
	}
	// The manifest on the registry is OCI (berth's layers are OCI-typed).
	desc, err := remote.Get(mustRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType != types.OCIManifestSchema1 || desc.Digest.String() != pr.Digest.String() {
		t.Fatalf("registry manifest %s %s, push said %s", desc.MediaType, desc.Digest, pr.Digest)
	}

	dst, dstRoot := openStoreRoot(t)
	events = nil
	res, err := Pull(ctx, dst, ref, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Image.ID != img.ID {
		t.Fatalf("pulled image ID %s, pushed %s", res.Image.ID, img.ID)
	}
	if fmt.Sprint(res.Image.Config.RootFS.DiffIDs) != fmt.Sprint(img.Config.RootFS.DiffIDs) {
		t.Fatalf("diff IDs differ:\n%v\n%v", res.Image.Config.RootFS.DiffIDs, img.Config.RootFS.DiffIDs)
	}
	if res.Fetched != 3 || res.Present != 0 || res.Digest != pr.Digest || res.Ref != ref {
		t.Fatalf("first pull: %+v", res)
	}
	if got, err := dst.Get(ctx, ref); err != nil || got.ID != img.ID {
		t.Fatalf("Get after pull: %v", err)
	}
	for _, s := range []string{"Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Pull complete"} {
		if !hasStatus(events, s) {
			t.Errorf("pull progress lacks %q", s)
		}
	}
	ingestEmpty(t, dstRoot)

	reg.count.reset()
	res2, err := Pull(ctx, dst, ref, o)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Fetched != 0 || res2.Present != 3 || res2.Image.ID != img.ID {
		t.Fatalf("second pull: %+v", res2)
	}
	if n := reg.count.get("GET blob"); n != 0 {
		t.Fatalf("second pull fetched %d blobs, want none", n)
	}

	reg.count.reset()
	before := src.cs.writes.Load()
	pr2, err := Push(ctx, src, ref, o)
	if err != nil {
		t.Fatal(err)
	}
	if pr2.Pushed != 0 || pr2.Skipped != 3 || pr2.Digest != pr.Digest {
		t.Fatalf("second push: %+v (first %+v)", pr2, pr)
	}
	if n := src.cs.writes.Load() - before; n != 0 {
		t.Fatalf("second push compressed %d layers again", n)
	}
	if n := reg.count.get("POST upload") + reg.count.get("PATCH upload") + reg.count.get("PUT upload"); n != 0 {
		t.Fatalf("second push uploaded: %v", reg.count.n)
	}
	// The pulled image's layers (gzip, OCI) push as they are: no compression.
	other := newCountingStore(dst)
	if err := dst.Tag(ctx, ref, reg.host+"/team/copy:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, other, reg.host+"/team/copy:1", Options{}); err != nil {
		t.Fatal(err)
	}
	if n := other.cs.writes.Load(); n != 0 {
		t.Fatalf("pushing compressed layers compressed %d", n)
	}
}

// TestPushDockerManifestForDockerLayers pins the manifest rule: an image
// whose layers all have Docker media types goes out as Docker schema2.
func TestPushDockerManifestForDockerLayers(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	img, err := random.Image(2048, 2) // Docker media types
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.host + "/docker/img:1"
	if err := remote.Write(mustRef(t, ref), img); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	if _, err := Pull(ctx, s, ref, Options{}); err != nil {
		t.Fatal(err)
	}
	ref2 := reg.host + "/docker/again:1"
	if err := tag(ctx, s, ref, ref2); err != nil {
		t.Fatal(err)
	}
	pr, err := Push(ctx, s, ref2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(mustRef(t, ref2))
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType != types.DockerManifestSchema2 || desc.Digest.String() != pr.Digest.String() {
		t.Fatalf("pushed %s %s (push said %s), want a Docker schema2 manifest", desc.MediaType, desc.Digest, pr.Digest)
	}
	got, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := img.Manifest()
	if got.Config.Digest != orig.Config.Digest || got.Config.MediaType != types.DockerConfigJSON || len(got.Layers) != 2 {
		t.Fatalf("manifest %+v, original %+v", got, orig)
	}
	for i, l := range got.Layers {
		if l.Digest != orig.Layers[i].Digest || l.MediaType != types.DockerLayer {
			t.Fatalf("layer %d: %+v, original %+v", i, l, orig.Layers[i])
		}
	}
	if pr.Pushed != 0 || pr.Skipped != 2 {
		t.Fatalf("push of blobs the registry has: %+v", pr)
	}
}

func tag(ctx context.Context, s interface {
	Tag(ctx context.Context, src, dst string) error
}, src, dst string) error {
	return s.Tag(ctx, src, dst)
}

func hasStatus(events []Progress, s string) bool {
	for _, e := range events {
		if e.Status == s {
			return true
		}
	}
	return false
}

func platformImage(t *testing.T, os, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func writeIndex(t *testing.T, ref string, plats ...[2]string) map[string]v1.Image {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	imgs := map[string]v1.Image{}
	for _, p := range plats {
		img := platformImage(t, p[0], p[1])
		imgs[p[0]+"/"+p[1]] = img
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p[0], Architecture: p[1]}}})
	}
	if err := remote.WriteIndex(mustRef(t, ref), idx); err != nil {
		t.Fatal(err)
	}
	return imgs
}

// TestPullPicksPlatform: an index resolves to linux/GOARCH; no match is
// NotFound listing the platforms the index has.
func TestPullPicksPlatform(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	ref := reg.host + "/multi/app:1"
	imgs := writeIndex(t, ref, [2]string{"linux", other}, [2]string{"linux", runtime.GOARCH}, [2]string{"windows", "amd64"})
	s := openStore(t)
	res, err := Pull(ctx, s, ref, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := imgs["linux/"+runtime.GOARCH].ConfigName()
	if res.Image.ID.String() != want.String() {
		t.Fatalf("pulled %s, want the linux/%s image %s", res.Image.ID, runtime.GOARCH, want)
	}
	if res.Image.Config.Architecture != runtime.GOARCH {
		t.Fatalf("architecture %q", res.Image.Config.Architecture)
	}
	idxDesc, _ := remote.Get(mustRef(t, ref))
	if res.Digest.String() != idxDesc.Digest.String() {
		t.Fatalf("result digest %s, want the index's %s", res.Digest, idxDesc.Digest)
	}
	// Platform chosen explicitly.
	res, err = Pull(ctx, s, ref, Options{Platform: "linux/" + other})
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := imgs["linux/"+other].ConfigName(); res.Image.ID.String() != want.String() {
		t.Fatalf("--platform linux/%s pulled %s", other, res.Image.ID)
	}

	ref2 := reg.host + "/multi/none:1"
	writeIndex(t, ref2, [2]string{"linux", "s390x"}, [2]string{"windows", "amd64"})
	_, err = Pull(ctx, s, ref2, Options{Platform: "linux/riscv64"})
	t.Logf("error: %v", err)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "linux/s390x, windows/amd64") || !strings.Contains(err.Error(), ref2) {
		t.Fatalf("want NotFound listing the platforms, got %v", err)
	}
	if _, err := s.Get(ctx, ref2); !errdefs.IsNotFound(err) {
		t.Fatalf("image recorded after a failed pull: %v", err)
	}
}

// tamper serves blob d with one byte changed (or, truncate, half of it
// and then a dropped connection).
func tamper(d digest.Digest, truncate bool) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()) {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(rec.Code)
			if truncate {
				w.Write(body[:len(body)/2])
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			}
			b := bytes.Clone(body)
			b[len(b)/2] ^= 0xff
			w.Write(b)
		})
	}
}

// TestPullRejectsTamperedLayer: a layer with one byte changed fails with
// a digest error, keeps no blob and records no image; a truncated
// download fails too; the honest registry's pull then succeeds.
func TestPullRejectsTamperedLayer(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	src := openStore(t)
	ref := reg.host + "/team/app:1"
	makeImage(t, src, ref)
	if _, err := Push(ctx, src, ref, Options{}); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(mustRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	bad := digest.Digest(m.Layers[0].Digest.String()) // the biggest layer

	for _, truncate := range []bool{false, true} {
		t.Run(fmt.Sprintf("truncate=%v", truncate), func(t *testing.T) {
			dst, root := openStoreRoot(t)
			reg.setWrap(tamper(bad, truncate))
			_, err := Pull(ctx, dst, ref, Options{Jobs: 1})
			reg.setWrap(nil)
			if err == nil {
				t.Fatal("pull of a tampered layer succeeded")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), "digest") || !strings.Contains(err.Error(), bad.String()) || !strings.Contains(err.Error(), ref) {
				t.Fatalf("error does not name the blob, ref and digest: %v", err)
			}
			if !truncate && !errdefs.IsInvalid(err) {
				t.Fatalf("tampered: want ErrInvalid, got %v", err)
			}
			if _, err := dst.Content().Size(ctx, bad); !errdefs.IsNotFound(err) {
				t.Fatalf("the bad blob was kept: %v", err)
			}
			if _, err := dst.Get(ctx, ref); !errdefs.IsNotFound(err) {
				t.Fatalf("an image was recorded: %v", err)
			}
			if imgs, _ := dst.List(ctx); len(imgs) != 0 {
				t.Fatalf("images after a failed pull: %v", imgs)
			}
			ingestEmpty(t, root)
			reg.count.reset()
			res, err := Pull(ctx, dst, ref, Options{})
			if err != nil {
				t.Fatalf("retry with the honest registry: %v", err)
			}
			if res.Fetched+res.Present != 3 || res.Fetched < 1 {
				t.Fatalf("retry: %+v", res)
			}
			if got := reg.count.get("GET blob"); got > res.Fetched+1 {
				t.Fatalf("retry fetched %d blobs for %d missing layers", got, res.Fetched)
			}
		})
	}
}

// TestPullSchema1Unavailable: a schema1 manifest is refused clearly.
func TestPullSchema1Unavailable(t *testing.T) {
	reg := newRegistry(t)
	body := `{"schemaVersion":1,"name":"old/app","tag":"1","architecture":"amd64","fsLayers":[],"history":[]}`
	req, _ := http.NewRequest(http.MethodPut, reg.srv.URL+"/v2/old/app/manifests/1", strings.NewReader(body))
	req.Header.Set("Content-Type", string(types.DockerManifestSchema1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("put schema1: %s", resp.Status)
	}
	_, err = Pull(context.Background(), openStore(t), reg.host+"/old/app:1", Options{})
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "schema 1") || !strings.Contains(err.Error(), "old/app:1") {
		t.Fatalf("want ErrUnavailable about schema 1, got %v", err)
	}
}

// TestPullCanceled: a canceled pull returns ErrCanceled and leaves no
// partial blob; the re-run completes.
func TestPullCanceled(t *testing.T) {
	reg := newRegistry(t)
	src := openStore(t)
	ref := reg.host + "/team/app:1"
	makeImage(t, src, ref)
	if _, err := Push(context.Background(), src, ref, Options{}); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	var once sync.Once
	reg.setWrap(func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				once.Do(func() { close(started) })
				<-r.Context().Done() // hang until the client gives up
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	dst, root := openStoreRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := Pull(ctx, dst, ref, Options{})
	t.Logf("error: %v", err)
	if !errdefs.IsCanceled(err) && !errors.Is(err, context.Canceled) {
		t.Fatalf("want canceled, got %v", err)
	}
	reg.setWrap(nil)
	ingestEmpty(t, root)
	if _, err := Pull(context.Background(), dst, ref, Options{}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPullPresent times a second pull (every layer present) as a
// ratio to the first pull of the same image in the same process.
func BenchmarkPullPresent(b *testing.B) {
	ctx := context.Background()
	reg := newRegistry(b)
	src := openStore(b)
	ref := reg.host + "/bench/app:1"
	makeImage(b, src, ref)
	if _, err := Push(ctx, src, ref, Options{}); err != nil {
		b.Fatal(err)
	}
	var first, second time.Duration
	for b.Loop() {
		b.StopTimer()
		dst := openStore(b)
		t0 := time.Now()
		if _, err := Pull(ctx, dst, ref, Options{}); err != nil {
			b.Fatal(err)
		}
		first += time.Since(t0)
		b.StartTimer()
		t1 := time.Now()
		res, err := Pull(ctx, dst, ref, Options{})
		second += time.Since(t1)
		if err != nil || res.Fetched != 0 {
			b.Fatalf("second pull: %+v %v", res, err)
		}
	}
	if first > 0 {
		b.ReportMetric(float64(second)/float64(first), "ratio-vs-first-pull")
	}
}

func mustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
