package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/logs"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"berth.dev/berth/internal/errdefs"
)

// requireBasic wraps a registry with HTTP basic auth; echo makes the 401
// body repeat what the client sent (a hostile or careless registry).
func requireBasic(user, pass string, echo bool) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="berth-test"`)
				w.WriteHeader(http.StatusUnauthorized)
				if echo {
					fmt.Fprintf(w, "bad credentials %q (password %s)", r.Header.Get("Authorization"), p)
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

// requireBearer wraps a registry with bearer tokens from a token server
// at /token of the same test server, which takes basic auth.
func requireBearer(reg *testRegistry, user, pass string) func(http.Handler) http.Handler {
	const token = "tok-3f9a1c"
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				u, p, ok := r.BasicAuth()
				if !ok || u != user || p != pass {
					w.WriteHeader(http.StatusUnauthorized)
					io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`)
					return
				}
				json.NewEncoder(w).Encode(map[string]string{"token": token})
				return
			}
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="berth-test"`, reg.srv.URL))
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

func readConfig(t *testing.T, dir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// privateImage pushes an image before auth is switched on.
func privateImage(t *testing.T, reg *testRegistry) string {
	t.Helper()
	src := openStore(t)
	ref := reg.host + "/private/app:1"
	makeImage(t, src, ref)
	if _, err := Push(context.Background(), src, ref, Options{}); err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestLoginStoresOnlyOnSuccess: wrong credentials store nothing; right
// ones land in config.json (0600, merged with what it had) and let a
// private pull through; Logout removes them. Basic and bearer auth.
func TestLoginStoresOnlyOnSuccess(t *testing.T) {
	for _, scheme := range []string{"basic", "bearer"} {
		t.Run(scheme, func(t *testing.T) {
			ctx := context.Background()
			reg := newRegistry(t)
			ref := privateImage(t, reg)
			if scheme == "basic" {
				reg.setWrap(requireBasic("alice", "right-pw", false))
			} else {
				reg.setWrap(requireBearer(reg, "alice", "right-pw"))
			}
			dir := filepath.Join(t.TempDir(), "docker")
			o := Options{ConfigDir: dir}

			err := Login(ctx, reg.host, "alice", "wrong-pw", o)
			t.Logf("error: %v", err)
			if !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "rejected user alice") || !strings.Contains(err.Error(), reg.host) {
				t.Fatalf("wrong password: want ErrInvalid naming the user, got %v", err)
			}
			mustNoFile(t, filepath.Join(dir, "config.json"))

			if _, err := Pull(ctx, openStore(t), ref, o); err == nil {
				t.Fatal("anonymous pull of a private repo succeeded")
			} else {
				t.Logf("anonymous: %v", err)
			}

			if err := Login(ctx, reg.host, "alice", "right-pw", o); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(dir, "config.json"))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("config.json: %v %v", fi, err)
			}
			if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
				t.Fatalf("config dir mode %v", di.Mode())
			}
			auths := readConfig(t, dir)["auths"].(map[string]any)
			entry := auths[reg.host].(map[string]any)
			if entry["auth"] != base64.StdEncoding.EncodeToString([]byte("alice:right-pw")) {
				t.Fatalf("stored entry %v", entry)
			}
			if res, err := Pull(ctx, openStore(t), ref, o); err != nil || res.Fetched != 3 {
				t.Fatalf("pull with the stored credentials: %+v %v", res, err)
			}

			if err := Logout(reg.host, o); err != nil {
				t.Fatal(err)
			}
			if auths := readConfig(t, dir)["auths"].(map[string]any); len(auths) != 0 {
				t.Fatalf("after logout: %v", auths)
			}
			if err := Logout(reg.host, o); !errdefs.IsNotFound(err) {
				t.Fatalf("second logout: want NotFound, got %v", err)
			}
			if _, err := Pull(ctx, openStore(t), ref, o); err == nil {
				t.Fatal("pull after logout succeeded")
			}
		})
	}
}

// TestLoginMergesConfig: login keeps every other key and entry of
// config.json, and Docker Hub uses Docker's key.
func TestLoginMergesConfig(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	reg.setWrap(requireBasic("bob", "pw", false))
	dir := t.TempDir()
	orig := `{"auths":{"other.example":{"auth":"eDp5"}},"psFormat":"table {{.ID}}","someTool":{"keep":[1,2]}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Login(ctx, "http://"+reg.host+"/", "bob", "pw", Options{ConfigDir: dir}); err != nil {
		t.Fatal(err)
	}
	m := readConfig(t, dir)
	if m["psFormat"] != "table {{.ID}}" || fmt.Sprint(m["someTool"]) != "map[keep:[1 2]]" {
		t.Fatalf("other keys lost: %v", m)
	}
	auths := m["auths"].(map[string]any)
	if _, ok := auths["other.example"]; !ok || auths[reg.host] == nil {
		t.Fatalf("auths: %v", auths)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "config.json")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if k := configKey(loginHost("")); k != "https://index.docker.io/v1/" {
		t.Fatalf("hub key %q", k)
	}
	if k := configKey(loginHost("docker.io")); k != "https://index.docker.io/v1/" {
		t.Fatalf("hub key %q", k)
	}
	// An unreachable registry is ErrUnavailable, and nothing is stored.
	before, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := Login(ctx, "127.0.0.1:1", "bob", "pw", Options{ConfigDir: dir}); !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "config.json")); !bytes.Equal(before, after) {
		t.Fatal("config.json changed by a failed login")
	}
	// A malformed config.json is an error before the registry is asked.
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{not json"), 0o600)
	if err := Login(ctx, reg.host, "bob", "pw", Options{ConfigDir: dir}); !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("malformed config: %v", err)
	}
}

// TestLoginCredentialHelper: with credsStore set, the secret goes to the
// helper, config.json keeps an empty entry, and pulls use the helper.
func TestLoginCredentialHelper(t *testing.T) {
	ctx := context.Background()
	bin := t.TempDir()
	script := `#!/bin/sh
d="$(dirname "$0")"
case "$1" in
store) cat > "$d/cred.json" ;;
get) cat > /dev/null; if [ -f "$d/cred.json" ]; then cat "$d/cred.json"; else echo "credentials not found in native keychain"; exit 1; fi ;;
erase) cat > /dev/null; rm -f "$d/cred.json" ;;
list) echo "{}" ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-berthtest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	reg := newRegistry(t)
	ref := privateImage(t, reg)
	reg.setWrap(requireBasic("carol", "helper-pw", false))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credsStore":"berthtest"}`), 0o600)
	o := Options{ConfigDir: dir}
	if err := Login(ctx, reg.host, "carol", "helper-pw", o); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if bytes.Contains(b, []byte("helper-pw")) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte("carol:helper-pw")))) {
		t.Fatalf("secret in config.json with a credsStore: %s", b)
	}
	if hb, err := os.ReadFile(filepath.Join(bin, "cred.json")); err != nil || !bytes.Contains(hb, []byte("helper-pw")) {
		t.Fatalf("helper did not get the secret: %s %v", hb, err)
	}
	if _, err := Pull(ctx, openStore(t), ref, o); err != nil {
		t.Fatal(err)
	}
	if err := Logout(reg.host, o); err != nil {
		t.Fatal(err)
	}
	mustNoFile(t, filepath.Join(bin, "cred.json"))
	if err := Logout(reg.host, o); !errdefs.IsNotFound(err) {
		t.Fatalf("second logout: %v", err)
	}
}

// TestCredentialsNeverLogged: no error message, progress event or
// go-containerregistry debug log line carries a password, even from a
// registry that echoes what it was sent.
func TestCredentialsNeverLogged(t *testing.T) {
	ctx := context.Background()
	const pw, wrong = "Sup3r-s3cret-PW", "wr0ng-s3cret-PW"
	secrets := []string{pw, wrong,
		base64.StdEncoding.EncodeToString([]byte("dave:" + pw)),
		base64.StdEncoding.EncodeToString([]byte("dave:" + wrong))}
	check := func(what, s string) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("%s contains a secret: %s", what, s)
			}
		}
	}
	var dbg bytes.Buffer
	var dmu sync.Mutex
	logs.Debug.SetOutput(writerFunc(func(p []byte) (int, error) { dmu.Lock(); defer dmu.Unlock(); return dbg.Write(p) }))
	logs.Warn.SetOutput(writerFunc(func(p []byte) (int, error) { dmu.Lock(); defer dmu.Unlock(); return dbg.Write(p) }))
	t.Cleanup(func() { logs.Debug.SetOutput(io.Discard); logs.Warn.SetOutput(io.Discard) })

	// An echoing registry: its error bodies repeat the credentials.
	echo := newRegistry(t)
	ref := privateImage(t, echo)
	echo.setWrap(requireBasic("dave", pw, true))
	dir := t.TempDir()
	err := Login(ctx, echo.host, "dave", wrong, Options{ConfigDir: dir})
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	if !errdefs.IsInvalid(err) {
		t.Errorf("class lost by redaction: %v", err)
	}
	check("login error", err.Error())
	// Stored but wrong credentials, then a pull and a push through them.
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, echo.host, secrets[3])), 0o600)
	var events []Progress
	var emu sync.Mutex
	o := Options{ConfigDir: dir, Progress: func(p Progress) { emu.Lock(); events = append(events, p); emu.Unlock() }}
	_, err = Pull(ctx, openStore(t), ref, o)
	if err == nil {
		t.Fatal("pull with wrong credentials succeeded")
	}
	check("pull error", err.Error())
	src := openStore(t)
	makeImage(t, src, echo.host+"/private/other:1")
	_, err = Push(ctx, src, echo.host+"/private/other:1", o)
	if err == nil {
		t.Fatal("push with wrong credentials succeeded")
	}
	check("push error", err.Error())
	_, err = Search(ctx, echo.host, "", 0, o)
	if err == nil {
		t.Fatal("search with wrong credentials succeeded")
	}
	check("search error", err.Error())

	// The right credentials: login, pull, push with the debug log on.
	if err := Login(ctx, echo.host, "dave", pw, Options{ConfigDir: dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(ctx, openStore(t), ref, o); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, src, echo.host+"/private/other:1", o); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		check("progress", fmt.Sprintf("%+v", e))
	}
	dmu.Lock()
	// Drop the echoing registry's own 401 bodies from the debug log: they
	// are the server's words, not berth's or ggcr's.
	var kept []string
	for _, line := range strings.Split(dbg.String(), "\n") {
		if !strings.Contains(line, "bad credentials") {
			kept = append(kept, line)
		}
	}
	dmu.Unlock()
	if len(kept) < 2 {
		t.Fatalf("the debug log is empty; is logs.Debug wired? %q", kept)
	}
	check("ggcr debug log", strings.Join(kept, "\n"))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// mapTransport dials the given host:port names to test servers and
// refuses every other address: no real network.
func mapTransport(m map[string]string, tlsConf *tls.Config) *http.Transport {
	return &http.Transport{
		TLSClientConfig: tlsConf,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			to, ok := m[addr]
			if !ok {
				return nil, fmt.Errorf("test: no network for %s", addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, to)
		},
	}
}

// TestInsecureOnlyWhenListed: a non-loopback registry is only spoken to
// over verified HTTPS unless listed as insecure (an RFC 1918 address
// too, which go-containerregistry alone would reach over HTTP); loopback
// works over HTTP.
func TestInsecureOnlyWhenListed(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	src := openStore(t)
	ref := reg.host + "/team/app:1"
	makeImage(t, src, ref)
	if _, err := Push(ctx, src, ref, Options{}); err != nil { // loopback over HTTP
		t.Fatal(err)
	}
	addr := reg.srv.Listener.Addr().String()
	tr := mapTransport(map[string]string{"registry.test:5000": addr, "10.1.2.3:5000": addr}, nil)
	for _, host := range []string{"registry.test:5000", "10.1.2.3:5000"} {
		reg.count.reset()
		_, err := Pull(ctx, openStore(t), host+"/team/app:1", Options{Transport: tr})
		t.Logf("%s not listed: %v", host, err)
		if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), host) {
			t.Fatalf("%s not listed: want ErrUnavailable naming it, got %v", host, err)
		}
		reg.count.mu.Lock()
		n := len(reg.count.n)
		reg.count.mu.Unlock()
		if n != 0 {
			t.Fatalf("%s not listed: plain HTTP requests reached the registry: %v", host, reg.count.n)
		}
		if err := Login(ctx, host, "u", "p", Options{Transport: tr, ConfigDir: t.TempDir()}); !errdefs.IsUnavailable(err) {
			t.Fatalf("login to unlisted %s: %v", host, err)
		}
		res, err := Pull(ctx, openStore(t), host+"/team/app:1", Options{Transport: tr, Insecure: []string{host}})
		if err != nil || res.Fetched != 3 {
			t.Fatalf("%s listed as insecure: %+v %v", host, res, err)
		}
	}
	// A CIDR entry lists a range.
	if _, err := Pull(ctx, openStore(t), "10.1.2.3:5000/team/app:1", Options{Transport: tr, Insecure: []string{"10.0.0.0/8"}}); err != nil {
		t.Fatal(err)
	}

	// Verified TLS: a registry with a certificate the client does not
	// trust fails; trusting it works.
	tlsReg := httptest.NewTLSServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	tlsReg.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(tlsReg.Close)
	m := map[string]string{"example.com:5443": tlsReg.Listener.Addr().String()}
	trusted := mapTransport(m, tlsReg.Client().Transport.(*http.Transport).TLSClientConfig)
	untrusted := mapTransport(m, nil)
	if _, err := Push(ctx, src, ref, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := src.Tag(ctx, ref, "example.com:5443/team/app:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, src, "example.com:5443/team/app:1", Options{Transport: trusted}); err != nil {
		t.Fatal(err)
	}
	_, err := Pull(ctx, openStore(t), "example.com:5443/team/app:1", Options{Transport: untrusted})
	t.Logf("untrusted certificate: %v", err)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "example.com:5443") {
		t.Fatalf("untrusted certificate: want ErrUnavailable, got %v", err)
	}
	if _, err := Pull(ctx, openStore(t), "example.com:5443/team/app:1", Options{Transport: trusted}); err != nil {
		t.Fatal(err)
	}
}

func TestPlainHTTPAllowed(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:5000": true, "127.0.0.1:5000": true, "127.9.9.9": true, "[::1]:5000": true,
		"10.0.0.1:5000": false, "192.168.1.2": false, "registry.local:5000": false, "example.com": false,
		"listed.test:5000": true, "listed.test:6000": false, "anyport.test:1": true, "172.20.0.1:5000": true,
	} {
		if got := plainHTTPAllowed(host, []string{"listed.test:5000", "anyport.test", "172.16.0.0/12"}); got != want {
			t.Errorf("plainHTTPAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestSearch: the catalog filtered by term, limited; a refused catalog
// and Docker Hub are ErrUnavailable.
func TestSearch(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	src := openStore(t)
	makeImage(t, src, reg.host+"/team/app:1")
	for _, r := range []string{"team/app:1", "team/web:1", "other/db:1"} {
		if r != "team/app:1" {
			if err := src.Tag(ctx, reg.host+"/team/app:1", reg.host+"/"+r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Push(ctx, src, reg.host+"/"+r, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Search(ctx, reg.host, "TEAM", 0, Options{})
	if err != nil || strings.Join(got, ",") != "team/app,team/web" {
		t.Fatalf("search: %v %v", got, err)
	}
	if got, err := Search(ctx, reg.host, "", 2, Options{}); err != nil || len(got) != 2 {
		t.Fatalf("limit 2: %v %v", got, err)
	}
	reg.setWrap(func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/_catalog") {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	_, err = Search(ctx, reg.host, "", 0, Options{})
	t.Logf("refused: %v", err)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "refuses to list") {
		t.Fatalf("refused catalog: %v", err)
	}
	for _, hub := range []string{"", "docker.io"} {
		if _, err := Search(ctx, hub, "busybox", 10, Options{}); !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "Docker Hub") {
			t.Fatalf("hub search: %v", err)
		}
	}
}

func TestHost(t *testing.T) {
	for ref, want := range map[string]string{
		"busybox": "docker.io", "library/busybox:1": "docker.io", "127.0.0.1:5000/app:1": "127.0.0.1:5000",
		"ghcr.io/a/b@sha256:" + strings.Repeat("a", 64): "ghcr.io", "localhost/app": "localhost",
	} {
		if got, err := Host(ref); err != nil || got != want {
			t.Errorf("Host(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	if _, err := Host("Bad Ref"); !errdefs.IsInvalid(err) {
		t.Errorf("bad ref: %v", err)
	}
}
