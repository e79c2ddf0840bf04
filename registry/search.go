package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"berth.dev/berth/internal/errdefs"
)

// Search lists the repositories of registry's /v2/_catalog whose name
// contains term (case-insensitive), following the catalog's pages, at most
// limit of them (limit <= 0: all), sorted. A registry refusing the catalog gives
// ErrUnavailable saying so; Docker Hub's search is not a registry API and
// gives ErrUnavailable explaining that.
func Search(ctx context.Context, registry, term string, limit int, o Options) ([]string, error) {
	host := loginHost(registry)
	if isHub(host) {
		return nil, errdefs.Unavailablef("search: Docker Hub does not serve the registry catalog (/v2/_catalog), and its search is a web API, not a registry one; search on https://hub.docker.com, or name a registry to search (HOST[:PORT])")
	}
	cred, err := loadCredential(o, host)
	if err != nil {
		return nil, err
	}
	out, err := search(ctx, host, term, limit, cred, o)
	return out, scrub(err, cred.secrets())
}

func search(ctx context.Context, host, term string, limit int, cred *credential, o Options) ([]string, error) {
	what := "search " + host
	reg, err := name.NewRegistry(host, nameOptions(host, o)...)
	if err != nil {
		return nil, errdefs.Invalidf("search: invalid registry %q: %v; write HOST[:PORT]", host, err)
	}
	p, err := remote.NewPuller(
		remote.WithContext(ctx),
		remote.WithTransport(baseTransport(o)),
		remote.WithAuth(cred.authenticator()),
		remote.WithUserAgent("berth"),
		remote.WithPageSize(100),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	refused := func(err error) error {
		var terr *transport.Error
		if errors.As(err, &terr) {
			switch terr.StatusCode {
			case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusBadRequest:
				return errdefs.Unavailablef("%s: the registry refuses to list its repositories (GET /v2/_catalog: %v); log in with `berth login %s` if it needs credentials, or browse it another way", what, terr, host)
			}
		}
		return classify(what, host, err)
	}
	c, err := p.Catalogger(ctx, reg)
	if err != nil {
		return nil, refused(err)
	}
	term = strings.ToLower(term)
	out := []string{}
	for c.HasNext() {
		page, err := c.Next(ctx)
		if err != nil {
			return nil, refused(err)
		}
		for _, r := range page.Repos {
			if strings.Contains(strings.ToLower(r), term) {
				out = append(out, r)
				if limit > 0 && len(out) >= limit {
					sort.Strings(out)
					return out, nil
				}
			}
		}
	}
	sort.Strings(out) // the catalog is lexical by the spec; not every registry keeps to it
	return out, nil
}
