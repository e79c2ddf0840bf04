// Package registry pulls images from and pushes them to OCI / Docker v2
// registries, and logs in to them, over go-containerregistry's remote
// protocol code. Pulled blobs go into berth's content store, verified
// (size and sha256) while they stream; nothing is unpacked before that.
//
// Transport policy: HTTPS with verified TLS for every registry except
// loopback ones (localhost, 127.0.0.0/8, ::1) and those listed in
// Options.Insecure, which may also be reached over plain HTTP. The policy
// is enforced on every request berth sends, token servers and blob
// redirects included: a plain-HTTP URL for any other host is sent over
// HTTPS instead, so credentials never travel in clear to it.
//
// The package prints nothing; go-containerregistry's loggers stay at their
// silent defaults.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"syscall"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/image"
	"berth.dev/berth/internal/errdefs"
)

// Store is what pulls and pushes need of the image store (*local.Store
// satisfies it).
type Store interface {
	Get(ctx context.Context, ref string) (image.Image, error)
	Content() image.ContentStore
	RawConfig(ctx context.Context, id digest.Digest) ([]byte, error)
	CommitConfig(ctx context.Context, cb []byte, layers []ocispec.Descriptor, ref string, intermediate bool) (image.Image, error)
}

// Options configure Pull, Push, Login, Logout and Search.
type Options struct {
	// Platform is "os/arch[/variant]"; "" means "linux/"+runtime.GOARCH.
	Platform string
	// Insecure lists registries (host[:port], a host without port
	// matching every port, or an IP CIDR) allowed over plain HTTP.
	// Loopback registries (localhost, 127.0.0.0/8, [::1]) always are;
	// anything else is HTTPS with verified TLS.
	Insecure []string
	// ConfigDir is the Docker config dir holding config.json; "" means
	// $DOCKER_CONFIG, else $HOME/.docker.
	ConfigDir string
	// Progress, when set, receives progress events; it is called from
	// several goroutines.
	Progress func(Progress)
	// Transport is the base HTTP transport; nil means a clone of
	// http.DefaultTransport. Tests inject one.
	Transport http.RoundTripper
	// Jobs is the number of parallel layer transfers; 0 means 4.
	Jobs int
	// LayerCache is a JSON file mapping diff ID → the compressed blob
	// pushed for it (digest, size, media type), so a layer is compressed
	// once; "" means no cache.
	LayerCache string
}

// Progress is one progress event.
type Progress struct {
	Ref string
	// ID is the short layer digest (12 hex) or "" for image-level messages.
	ID string
	// Status uses Docker's words: "Pulling fs layer", "Waiting",
	// "Downloading", "Verifying Checksum", "Download complete", "Pull
	// complete", "Already exists", "Preparing", "Pushing", "Pushed",
	// "Layer already exists"; image-level: "Pulling from <repo>", "The
	// push refers to repository [<repo>]".
	Status string
	// Current and Total are bytes, when known.
	Current, Total int64
}

// Host is the registry host of a reference ("busybox" → "docker.io",
// "127.0.0.1:5000/app:1" → "127.0.0.1:5000").
func Host(ref string) (string, error) {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", errdefs.Invalidf("invalid image reference %q: %v; write [HOST[:PORT]/]NAME[:TAG|@DIGEST], e.g. busybox:latest", ref, err)
	}
	return reference.Domain(n), nil
}

// normalize is image/local.NormalizeRef: Docker's canonical form.
func normalize(ref string) (string, error) {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", errdefs.Invalidf("invalid image reference %q: %v; write [HOST[:PORT]/]NAME[:TAG|@DIGEST], e.g. busybox:latest", ref, err)
	}
	return reference.TagNameOnly(n).String(), nil
}

func (o Options) jobs() int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return 4
}

func (o Options) emit(p Progress) {
	if o.Progress != nil {
		o.Progress(p)
	}
}

func shortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		return e[:12]
	}
	return e
}

// isHub reports whether host is Docker Hub.
func isHub(host string) bool {
	switch strings.ToLower(host) {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/":
		return true
	}
	return false
}

// plainHTTPAllowed reports whether hostport may be reached over plain
// HTTP: loopback, or listed in insecure.
func plainHTTPAllowed(hostport string, insecure []string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.IsLoopback() {
		return true
	}
	for _, e := range insecure {
		e = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(e), "http://"), "https://"), "/")
		if e == "" {
			continue
		}
		if strings.EqualFold(e, hostport) || strings.EqualFold(strings.Trim(e, "[]"), host) {
			return true
		}
		if _, block, err := net.ParseCIDR(e); err == nil && ip != nil && block.Contains(ip) {
			return true
		}
	}
	return false
}

// policyTransport enforces the transport policy on every request: a
// plain-HTTP URL whose host is neither loopback nor listed as insecure is
// sent over HTTPS instead. go-containerregistry by itself would talk plain
// HTTP to RFC 1918 addresses and fall back to it after a failed HTTPS
// ping; this is the innermost transport, so token servers and redirects
// are covered too.
type policyTransport struct {
	inner    http.RoundTripper
	insecure []string
}

func (p *policyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !plainHTTPAllowed(req.URL.Host, p.insecure) {
		r := req.Clone(req.Context())
		r.URL.Scheme = "https"
		resp, err := p.inner.RoundTrip(r)
		if err != nil {
			return nil, fmt.Errorf("%s is neither loopback nor listed as insecure, so berth uses HTTPS with it: %w", req.URL.Host, err)
		}
		return resp, nil
	}
	return p.inner.RoundTrip(req)
}

func baseTransport(o Options) http.RoundTripper {
	t := o.Transport
	if t == nil {
		t = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &policyTransport{inner: t, insecure: o.Insecure}
}

// session is one operation against one repository.
type session struct {
	o       Options
	ref     string // normalised (docker.io/library/busybox:latest)
	host    string // as in the reference (docker.io)
	nref    name.Reference
	auth    *credential
	opts    []remote.Option
	secrets []string
}

func nameOptions(host string, o Options) []name.Option {
	if plainHTTPAllowed(host, o.Insecure) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// newSession parses ref and loads the credentials for its registry.
func newSession(ctx context.Context, ref string, o Options) (*session, error) {
	n, err := normalize(ref)
	if err != nil {
		return nil, err
	}
	host, _ := Host(n)
	nref, err := name.ParseReference(n, nameOptions(host, o)...)
	if err != nil {
		return nil, errdefs.Invalidf("invalid image reference %q: %v", ref, err)
	}
	cred, err := loadCredential(o, host)
	if err != nil {
		return nil, err
	}
	s := &session{o: o, ref: n, host: host, nref: nref, auth: cred, secrets: cred.secrets()}
	s.opts = []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(baseTransport(o)),
		remote.WithAuth(cred.authenticator()),
		remote.WithJobs(o.jobs()),
		remote.WithUserAgent("berth"),
	}
	return s, nil
}

// scrub removes every secret from err's message (a registry may echo what
// it was sent); errors.Is still sees err's class.
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	leaked := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "<redacted>")
			leaked = true
		}
	}
	if !leaked {
		return err
	}
	r := &redacted{msg: msg}
	for _, c := range []error{errdefs.ErrNotFound, errdefs.ErrInvalid, errdefs.ErrConflict, errdefs.ErrUnavailable, errdefs.ErrCanceled, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, c) {
			r.classes = append(r.classes, c)
		}
	}
	return r
}

// redacted is an error whose message had secrets removed. It unwraps to
// the error classes only: the original chain holds the secret.
type redacted struct {
	msg     string
	classes []error
}

func (r *redacted) Error() string   { return r.msg }
func (r *redacted) Unwrap() []error { return r.classes }

// classify turns a remote error into a berth error naming what failed
// (what, e.g. "pull docker.io/library/busybox:latest") and what to do.
func classify(what, host string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w (%w)", what, errdefs.ErrCanceled, err)
	}
	if errdefs.IsInvalid(err) || errdefs.IsNotFound(err) || errdefs.IsUnavailable(err) || errdefs.IsConflict(err) {
		return fmt.Errorf("%s: %w", what, err)
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return errdefs.Invalidf("%s: registry %s denied access (%v); log in with `%s`, or check the repository name and your permissions", what, host, terr, loginCommand(host))
		case http.StatusNotFound:
			return errdefs.NotFoundf("%s: not found on registry %s (%v); check the repository name and tag", what, host, terr)
		case http.StatusTooManyRequests:
			return errdefs.Unavailablef("%s: registry %s is rate-limiting requests (%v); wait and try again, or log in to raise the limit", what, host, terr)
		}
		if terr.StatusCode >= 500 {
			return errdefs.Unavailablef("%s: registry %s failed (%v); try again later", what, host, terr)
		}
		return errdefs.Unavailablef("%s: registry %s refused the request (%v)", what, host, terr)
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return errdefs.Unavailablef("%s: registry %s answers plain HTTP, and berth talks to it over HTTPS only (%v); if you trust the network to it, list it as an insecure registry", what, host, err)
	}
	if isTLSError(err) {
		return errdefs.Unavailablef("%s: registry %s: no verified HTTPS connection (%v); fix its certificate or add its CA to the system trust store, or, for a plain-HTTP registry you trust, list it as insecure", what, host, err)
	}
	if isNetError(err) {
		return errdefs.Unavailablef("%s: cannot reach registry %s (%v); check the name, the port and that the registry is running", what, host, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func loginCommand(host string) string {
	if isHub(host) {
		return "berth login"
	}
	return "berth login " + host
}

func isTLSError(err error) bool {
	var (
		rh   tls.RecordHeaderError
		ua   x509.UnknownAuthorityError
		he   x509.HostnameError
		ci   x509.CertificateInvalidError
		cv   *tls.CertificateVerificationError
		alrt tls.AlertError
	)
	return errors.As(err, &rh) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) ||
		errors.As(err, &cv) || errors.As(err, &alrt) || strings.Contains(err.Error(), "tls: ") ||
		strings.Contains(err.Error(), "x509: ")
}

func isNetError(err error) bool {
	var (
		op  *net.OpError
		dns *net.DNSError
		ue  *url.Error
	)
	return errors.As(err, &op) || errors.As(err, &dns) || errors.As(err, &ue) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// parsePlatform parses "os/arch[/variant]" ("" → linux/GOARCH).
func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return v1.Platform{}, errdefs.Invalidf("invalid platform %q; write os/arch[/variant], e.g. linux/amd64 or linux/arm/v7", s)
	}
	p := v1.Platform{OS: strings.ToLower(parts[0]), Architecture: strings.ToLower(parts[1])}
	if len(parts) == 3 {
		p.Variant = strings.ToLower(parts[2])
	}
	return p, nil
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// basicAuth is the value of an "auth" entry in config.json.
func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}
