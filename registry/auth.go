package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
)

// hubKey is Docker Hub's key in config.json, as Docker writes it.
const hubKey = "https://index.docker.io/v1/"

// configKey is the config.json key of a registry host.
func configKey(host string) string {
	if isHub(host) {
		return hubKey
	}
	return host
}

// loginHost turns what a user passes to login ("", docker.io, a URL) into
// a registry host.
func loginHost(registry string) string {
	r := strings.TrimSpace(registry)
	if isHub(r) {
		return "docker.io"
	}
	return credentials.ConvertToHostname(r)
}

func configDir(o Options) string {
	if o.ConfigDir != "" {
		return o.ConfigDir
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/root"
	}
	return filepath.Join(home, ".docker")
}

// dockerConfig is config.json: parsed by docker/cli's configfile for the
// fields berth reads (auths, credsStore, credHelpers), and kept as raw
// JSON so a write changes the one "auths" entry and nothing else.
type dockerConfig struct {
	path string
	raw  map[string]json.RawMessage
	file *configfile.ConfigFile
}

func loadConfig(o Options) (*dockerConfig, error) {
	path := filepath.Join(configDir(o), "config.json")
	c := &dockerConfig{path: path, raw: map[string]json.RawMessage{}, file: configfile.New(path)}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, errdefs.Unavailablef("read the Docker config %s: %v; check its permissions", path, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(b, &c.raw); err != nil {
		return nil, errdefs.Invalidf("the Docker config %s is not a JSON object (%v); fix it or move it away", path, err)
	}
	if err := c.file.LoadFromReader(bytes.NewReader(b)); err != nil {
		return nil, errdefs.Invalidf("the Docker config %s is invalid (%v); fix it or move it away", path, err)
	}
	return c, nil
}

// helper is the credential helper config.json names for key (credHelpers,
// else credsStore), or "".
func (c *dockerConfig) helper(key string) string {
	if h, ok := c.file.CredentialHelpers[key]; ok {
		return h
	}
	if key == hubKey {
		for _, k := range []string{"docker.io", "index.docker.io", "registry-1.docker.io"} {
			if h, ok := c.file.CredentialHelpers[k]; ok {
				return h
			}
		}
	}
	return c.file.CredentialsStore
}

// fileEntry finds the auths entry for key, also under legacy spellings
// (https://host/v1/, http://host).
func (c *dockerConfig) fileEntry(key string) (string, types.AuthConfig, bool) {
	auths := c.file.GetAuthConfigs()
	if a, ok := auths[key]; ok {
		return key, a, true
	}
	for k, a := range auths {
		h := credentials.ConvertToHostname(k)
		if h == key || key == hubKey && isHub(h) {
			return k, a, true
		}
	}
	return "", types.AuthConfig{}, false
}

// memFile is the "file" docker/cli's native store keeps e-mails in; berth
// writes config.json itself.
type memFile struct{ auths map[string]types.AuthConfig }

func (m *memFile) Save() error                                 { return nil }
func (m *memFile) GetAuthConfigs() map[string]types.AuthConfig { return m.auths }
func (m *memFile) GetFilename() string                         { return "" }

func nativeStore(helper string) credentials.Store {
	return credentials.NewNativeStore(&memFile{auths: map[string]types.AuthConfig{}}, helper)
}

// credential is what berth authenticates with to one registry.
type credential struct {
	types.AuthConfig
}

func (c *credential) secrets() []string {
	if c == nil {
		return nil
	}
	var s []string
	for _, v := range []string{c.Password, c.IdentityToken, c.RegistryToken} {
		if v != "" {
			s = append(s, v)
		}
	}
	if c.Username != "" || c.Password != "" {
		s = append(s, basicAuth(c.Username, c.Password))
	}
	return s
}

func (c *credential) authenticator() authn.Authenticator {
	if c == nil || c.Username == "" && c.Password == "" && c.IdentityToken == "" && c.RegistryToken == "" {
		return authn.Anonymous
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      c.Username,
		Password:      c.Password,
		IdentityToken: c.IdentityToken,
		RegistryToken: c.RegistryToken,
	})
}

// loadCredential reads the credentials for host from config.json or its
// credential helper; none means anonymous (a nil *credential).
func loadCredential(o Options, host string) (*credential, error) {
	c, err := loadConfig(o)
	if err != nil {
		return nil, err
	}
	key := configKey(host)
	if h := c.helper(key); h != "" {
		a, err := nativeStore(h).Get(key)
		if err != nil {
			return nil, errdefs.Unavailablef("registry %s: credential helper docker-credential-%s failed (%v); install it, or remove it from %s", host, h, err, c.path)
		}
		if a.Username == "" && a.Password == "" && a.IdentityToken == "" {
			return nil, nil
		}
		return &credential{a}, nil
	}
	if _, a, ok := c.fileEntry(key); ok {
		return &credential{a}, nil
	}
	return nil, nil
}

// save writes config.json with auths[key] set to entry (nil: deleted),
// leaving every other key as it was: file 0600, a new dir 0700.
func (c *dockerConfig) save(key string, entry any, drop []string) error {
	auths := map[string]json.RawMessage{}
	if a, ok := c.raw["auths"]; ok && len(a) > 0 && string(a) != "null" {
		if err := json.Unmarshal(a, &auths); err != nil {
			return errdefs.Invalidf("the Docker config %s: \"auths\" is not an object (%v); fix it or move it away", c.path, err)
		}
	}
	for _, k := range drop {
		delete(auths, k)
	}
	if entry != nil {
		b, err := json.Marshal(entry)
		if err != nil {
			return err
		}
		auths[key] = b
	}
	ab, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	c.raw["auths"] = ab
	out, err := json.MarshalIndent(c.raw, "", "\t")
	if err != nil {
		return err
	}
	dir := filepath.Dir(c.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return errdefs.Unavailablef("create the Docker config dir %s: %v", dir, err)
	}
	path := c.path
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p // config.json may be a symlink into a dotfiles repo
	}
	if err := state.WriteFile(path, append(out, '\n'), 0o600); err != nil {
		return errdefs.Unavailablef("save credentials in %s: %v", c.path, err)
	}
	return nil
}

// Login checks user and password against registry (GET /v2/ and its auth
// challenge: basic, or a bearer token from the challenge's realm) and only
// on success stores them in ConfigDir/config.json (mode 0600, a new dir
// 0700), merged with what the file has, or in the credential helper that
// config.json names for the registry (credHelpers, else credsStore), as
// Docker does. registry "" or docker.io means Docker Hub (key
// "https://index.docker.io/v1/").
func Login(ctx context.Context, registry, user, password string, o Options) error {
	host := loginHost(registry)
	secrets := []string{password, basicAuth(user, password)}
	err := login(ctx, host, user, password, o)
	return scrub(err, secrets)
}

func login(ctx context.Context, host, user, password string, o Options) error {
	if user == "" {
		return errdefs.Invalidf("login to %s: a user name is required; pass --username", host)
	}
	if password == "" {
		return errdefs.Invalidf("login to %s as %s: a password or token is required; pass --password-stdin", host, user)
	}
	// Read config.json first: a malformed one fails before the registry
	// sees the password.
	c, err := loadConfig(o)
	if err != nil {
		return err
	}
	if err := checkLogin(ctx, host, user, password, o); err != nil {
		return err
	}
	key := configKey(host)
	var drop []string
	if k, _, ok := c.fileEntry(key); ok && k != key {
		drop = append(drop, k) // a legacy spelling of the same registry
	}
	if h := c.helper(key); h != "" {
		if err := nativeStore(h).Store(types.AuthConfig{Username: user, Password: password, ServerAddress: key}); err != nil {
			return errdefs.Unavailablef("login to %s: credential helper docker-credential-%s could not store the credentials (%v); check the helper, or remove it from %s", host, h, err, c.path)
		}
		return c.save(key, struct{}{}, drop) // Docker keeps an empty entry
	}
	return c.save(key, struct {
		Auth string `json:"auth"`
	}{basicAuth(user, password)}, drop)
}

// checkLogin authenticates once against host's /v2/.
func checkLogin(ctx context.Context, host, user, password string, o Options) error {
	what := fmt.Sprintf("login to %s as %s", host, user)
	reg, err := name.NewRegistry(host, nameOptions(host, o)...)
	if err != nil {
		return errdefs.Invalidf("login: invalid registry %q: %v; write HOST[:PORT]", host, err)
	}
	rejected := func(detail error) error {
		return errdefs.Invalidf("login to %s: the registry rejected user %s (%v); check the user name and password (or token); nothing was stored", host, user, detail)
	}
	tr, err := transport.NewWithContext(ctx, reg, &authn.Basic{Username: user, Password: password}, baseTransport(o), nil)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
			return rejected(err)
		}
		return classify(what, host, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return classify(what, host, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return rejected(fmt.Errorf("GET /v2/: %s", resp.Status))
	}
	return errdefs.Unavailablef("login to %s: GET /v2/ answered %s; is %s a registry?", host, resp.Status, host)
}

// Logout removes the stored credentials for registry (from config.json
// and from the credential helper it names); ErrNotFound when there are
// none.
func Logout(registry string, o Options) error {
	host := loginHost(registry)
	c, err := loadConfig(o)
	if err != nil {
		return err
	}
	key := configKey(host)
	found := false
	if h := c.helper(key); h != "" {
		ns := nativeStore(h)
		a, err := ns.Get(key)
		if err != nil {
			return errdefs.Unavailablef("logout from %s: credential helper docker-credential-%s failed (%v); check the helper", host, h, err)
		}
		if a.Username != "" || a.Password != "" || a.IdentityToken != "" {
			found = true
			if err := ns.Erase(key); err != nil {
				return errdefs.Unavailablef("logout from %s: credential helper docker-credential-%s could not erase the credentials (%v)", host, h, err)
			}
		}
	}
	var drop []string
	for k := range c.file.GetAuthConfigs() {
		if k == key || credentials.ConvertToHostname(k) == key || key == hubKey && isHub(credentials.ConvertToHostname(k)) {
			drop = append(drop, k)
		}
	}
	if len(drop) > 0 {
		found = true
		if err := c.save(key, nil, drop); err != nil {
			return err
		}
	}
	if !found {
		return errdefs.NotFoundf("not logged in to %s: %s has no credentials for it", host, c.path)
	}
	return nil
}
