package examples

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// startRegistry runs Debian's docker-registry (the distribution registry)
// on a free 127.0.0.1 port with its storage in a temp dir, with htpasswd
// basic auth for user/password when auth is set, and returns host:port.
// .ci/run installs docker-registry and apache2-utils (htpasswd).
func startRegistry(t *testing.T, auth bool) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry is not installed (apt-get install docker-registry apache2-utils)")
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s/data\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", dir, addr)
	if auth {
		out, err := exec.Command("htpasswd", "-Bbn", "user", "s3cret-pw").Output()
		if err != nil {
			t.Skipf("htpasswd (apache2-utils) is needed for the auth test: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "htpasswd"), out, 0o600); err != nil {
			t.Fatal(err)
		}
		conf += fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s/htpasswd\n", dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	logf, _ := os.Create(filepath.Join(dir, "registry.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("the registry did not come up on %s: %v\n%s", addr, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRegistryRoundTripMustKeepTheImage: push from one root, pull into a
// root that has nothing: the same image ID; a second pull downloads
// nothing; a compose project naming the image comes up by pulling it.
func TestRegistryRoundTripMustKeepTheImage(t *testing.T) {
	host := startRegistry(t, false)
	a := testutil.NewRoot(t)
	ref := host + "/demo/bb:1"
	a.Must("image", "tag", "busybox", ref)
	res := a.Run("image", "push", ref)
	if res.Code != 0 || !strings.Contains(res.Stderr, "Pushed") || !strings.Contains(res.Stderr, "1: digest: sha256:") {
		t.Fatalf("push: %d\n%s", res.Code, res.Stderr)
	}
	if res = a.Run("image", "push", ref); res.Code != 0 || !strings.Contains(res.Stderr, "Layer already exists") {
		t.Errorf("second push: %d\n%s", res.Code, res.Stderr)
	}
	// A compressed layer survives a GC (a prune) while
	// its layer is in use: the next push does not compress again.
	a.Must("image", "prune", "-f")
	cache, _ := os.ReadFile(filepath.Join(a.Path, "registry", "layers.json"))
	var entries map[string]struct{ Digest string }
	json.Unmarshal(cache, &entries)
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(a.Path, "content", "blobs", "sha256", strings.TrimPrefix(e.Digest, "sha256:"))); err != nil {
			t.Errorf("GC removed the pushed compressed layer %s: %v", e.Digest, err)
		}
	}
	if len(entries) == 0 {
		t.Errorf("no layer cache after a push: %s", cache)
	}
	id := imageID(t, a, ref)

	b := testutil.NewRoot(t)
	b.Must("image", "rm", "busybox") // nothing local: the pull downloads every layer
	res = b.Run("image", "pull", ref)
	if res.Code != 0 || !strings.Contains(res.Stderr, "Pull complete") || !strings.Contains(res.Stderr, "Status: Downloaded newer image for "+ref) {
		t.Fatalf("pull: %d\n%s", res.Code, res.Stderr)
	}
	if got := imageID(t, b, ref); got != id {
		t.Errorf("pulled image %s, pushed %s", got, id)
	}
	res = b.Run("image", "pull", ref)
	if res.Code != 0 || !strings.Contains(res.Stderr, "Image is up to date") {
		t.Errorf("second pull: %d\n%s", res.Code, res.Stderr)
	}
	if out := b.Must("container", "run", "--rm", ref, "echo", "pulled"); out != "pulled\n" {
		t.Errorf("run of the pulled image: %q", out)
	}

	// compose: up pulls the missing image, then starts.
	b.Must("image", "rm", ref)
	run, _ := project(t, b, "reg", map[string]string{"compose.yaml": "services:\n  app:\n    image: " + ref + "\n    command: [\"sleep\", \"300\"]\n    stop_signal: SIGKILL\n"})
	res = run("up", "-d")
	must(t, res, "up with the image in the registry")
	if psAll(t, run)["reg-app-1"].State != "running" {
		t.Errorf("after up:\n%s", res.Stderr)
	}
	if res = run("pull"); res.Code != 0 {
		t.Errorf("compose pull: %s", res.Stderr)
	}
	// A build whose base image is only in the registry pulls it.
	c := testutil.NewRoot(t)
	c.Must("image", "rm", "busybox")
	ctxDir := t.TempDir()
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM "+ref+"\nRUN echo built > /built\n"), 0o644)
	res = c.Run("image", "build", "-t", "onpulled:1", ctxDir)
	if res.Code != 0 || !strings.Contains(res.Stderr, "Pull complete") {
		t.Errorf("build FROM a registry image: %d\n%s", res.Code, res.Stderr)
	}
	res = b.Run("image", "pull", host+"/demo/missing:1")
	if res.Code == 0 || !strings.Contains(res.Stderr, "demo/missing") {
		t.Errorf("pull of a missing repository: %d\n%s", res.Code, res.Stderr)
	}
}

// TestRegistryLoginMustCheckCredentials: a wrong password stores nothing;
// the right one is stored 0600 and lets push and pull through; logout
// takes it away again.
func TestRegistryLoginMustCheckCredentials(t *testing.T) {
	host := startRegistry(t, true)
	r := testutil.NewRoot(t)
	cfg := t.TempDir()
	env := []string{"DOCKER_CONFIG=" + cfg}
	res := r.RunInput(env, strings.NewReader("wrong\n"), "login", "-u", "user", "--password-stdin", host)
	if res.Code == 0 || !strings.Contains(res.Stderr, host) {
		t.Errorf("login with a wrong password: %d\n%s", res.Code, res.Stderr)
	}
	if _, err := os.Stat(filepath.Join(cfg, "config.json")); err == nil {
		b, _ := os.ReadFile(filepath.Join(cfg, "config.json"))
		if strings.Contains(string(b), host) {
			t.Errorf("a rejected login stored credentials:\n%s", b)
		}
	}
	ref := host + "/private/bb:1"
	r.Must("image", "tag", "busybox", ref)
	if res = r.RunEnv(env, "image", "push", ref); res.Code == 0 {
		t.Errorf("push without login succeeded")
	}
	res = r.RunInput(env, strings.NewReader("s3cret-pw\n"), "login", "-u", "user", "--password-stdin", host)
	if res.Code != 0 || res.Stdout != "Login Succeeded\n" {
		t.Fatalf("login: %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	st, err := os.Stat(filepath.Join(cfg, "config.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("config.json: %v %v", st, err)
	}
	var conf struct{ Auths map[string]json.RawMessage }
	b, _ := os.ReadFile(filepath.Join(cfg, "config.json"))
	if json.Unmarshal(b, &conf); conf.Auths[host] == nil {
		t.Errorf("config.json has no auth for %s:\n%s", host, b)
	}
	if res = r.RunEnv(env, "image", "push", ref); res.Code != 0 {
		t.Fatalf("push after login: %s", res.Stderr)
	}
	r.Must("image", "rm", ref)
	if res = r.RunEnv(env, "image", "pull", ref); res.Code != 0 {
		t.Fatalf("pull after login: %s", res.Stderr)
	}
	for _, out := range []string{res.Stdout, res.Stderr} {
		if strings.Contains(out, "s3cret-pw") {
			t.Error("the password shows in berth's output")
		}
	}
	if res = r.RunEnv(env, "logout", host); res.Code != 0 || !strings.Contains(res.Stdout, "Removing login credentials for "+host) {
		t.Errorf("logout: %d %s%s", res.Code, res.Stdout, res.Stderr)
	}
	r.Must("image", "rm", ref)
	if res = r.RunEnv(env, "image", "pull", ref); res.Code == 0 {
		t.Error("pull after logout succeeded")
	}
	res = r.RunInput(env, strings.NewReader(""), "login", "-u", "user", "-p", "s3cret-pw", host)
	if res.Code != 0 || !strings.Contains(res.Stderr, "WARNING! Using --password via the CLI is insecure") {
		t.Errorf("login -p: %d\n%s", res.Code, res.Stderr)
	}
}
