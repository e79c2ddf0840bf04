package project

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func examplesDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "examples")
}

// The fig 1.0 example and its compose-spec twin must load to the same
// normalised model.
func TestFigLegacyEqualsComposeSpec(t *testing.T) {
	dir := filepath.Join(examplesDir(t), "fig-legacy")
	render := func(file string) []byte {
		m := mustLoad(t, dir, Options{Files: []string{file}, ProjectName: "legacy"})
		b, err := m.Project.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fig, spec := render("fig.yml"), render("compose-spec.yaml")
	if !bytes.Equal(fig, spec) {
		t.Fatalf("fig.yml and compose-spec.yaml differ:\nfig:  %s\nspec: %s", fig, spec)
	}
	m := mustLoad(t, dir, Options{Files: []string{"fig.yml"}})
	if !m.Fig {
		t.Error("fig.yml was not recognised as a fig v1 file")
	}
	web := m.Project.Services["web"]
	if len(web.Links) != 1 || web.Links[0] != "db:database" {
		t.Errorf("links = %v, want [db:database]", web.Links)
	}
	if web.Environment["APP_MODE"] == nil || *web.Environment["APP_MODE"] != "legacy" {
		t.Errorf("list environment not converted: %v", web.Environment)
	}
	if got := m.Project.Services["data"].NetworkMode; got != "none" {
		t.Errorf("net: none became network_mode %q", got)
	}
	if _, ok := web.DependsOn["db"]; !ok {
		t.Error("a link must make web depend on db")
	}
}

func TestFigPrepass(t *testing.T) {
	cases := []struct {
		name, in string
		want     string // substring of the converted YAML; "" = unchanged input
		err      string // substring of the error
	}{
		{name: "compose file unchanged", in: "services:\n  web:\n    image: busybox\n"},
		{name: "compose v2 file unchanged", in: "version: '2'\nservices:\n  web: {image: busybox}\n"},
		{name: "only volumes is compose", in: "volumes:\n  data: {}\n"},
		{name: "wraps services", in: "web:\n  image: busybox\n", want: "services:\n  web:\n    image: busybox\n"},
		{name: "version 1 dropped", in: "version: '1'\nweb:\n  image: busybox\n", want: "services:\n  web:\n    image: busybox\n"},
		{name: "net host", in: "web:\n  image: b\n  net: host\n", want: "network_mode: host"},
		{name: "net container", in: "web:\n  image: b\n  net: \"container:other\"\n", want: "network_mode: container:other"},
		{name: "net bridge is the default network", in: "web:\n  image: b\n  net: bridge\n", want: "services:\n  web:\n    image: b\n"},
		{name: "net invalid", in: "web:\n  image: b\n  net: weird\n", err: `fig.yml:3:3: web.net: "weird" is not a fig network mode`},
		{name: "net and network_mode", in: "web:\n  image: b\n  net: host\n  network_mode: none\n", err: "both set"},
		{name: "volumes_from service kept", in: "data:\n  image: b\nweb:\n  image: b\n  volumes_from: [data, 'data:ro']\n", want: "volumes_from: [data, 'data:ro']"},
		{name: "volumes_from container", in: "web:\n  image: b\n  volumes_from: [legacy, 'old:ro']\n", want: "volumes_from: ['container:legacy', 'container:old:ro']"},
		{name: "dockerfile moves into build", in: "web:\n  build: .\n  dockerfile: Dockerfile.dev\n", want: "build:\n      context: .\n      dockerfile: Dockerfile.dev"},
		{name: "dockerfile without build", in: "web:\n  image: b\n  dockerfile: D\n", err: "'dockerfile' is set without 'build'"},
		{name: "log_driver and log_opt", in: "web:\n  image: b\n  log_driver: json-file\n  log_opt: {max-size: 1m}\n", want: "logging:\n      driver: json-file\n      options: {max-size: 1m}"},
		{name: "x- keys stay top level", in: "x-common: &c {image: b}\nweb: *c\n", want: "x-common:"},
		{name: "service not a mapping", in: "web: busybox\n", err: `fig.yml:1:1: web: fig service "web" is not a mapping`},
		{name: "empty service", in: "web:\n", err: `fig service "web" is empty`},
		// Found by FuzzFigPrepass: an alias as a service name, and an anchored
		// service whose anchor the conversion dropped.
		{name: "alias as service name", in: "0: &a {}\n*a: *a", err: "a fig service name must be a string"},
		{name: "anchored service keeps its anchor", in: "base: &b {image: busybox}\nweb: *b\n", want: "base: &b\n"},
		{name: "fig keys kept", in: "web:\n  image: b\n  external_links: [x]\n  dns: 8.8.8.8\n  mem_limit: 1g\n  cpu_shares: 5\n  privileged: true\n  restart: always\n", want: "external_links: [x]\n    dns: 8.8.8.8\n    mem_limit: 1g\n    cpu_shares: 5\n    privileged: true\n    restart: always"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, converted, err := FigPrepass("fig.yml", []byte(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error = %v, want %q", err, c.err)
				}
				if _, ok := AsError(err); !ok {
					t.Fatalf("error %T is not a *project.Error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.want == "" {
				if converted || string(out) != c.in {
					t.Fatalf("compose file changed (converted=%v):\n%s", converted, out)
				}
				return
			}
			if !converted || !strings.Contains(string(out), c.want) {
				t.Fatalf("converted=%v, output:\n%s\nwant it to contain:\n%s", converted, out, c.want)
			}
			again, conv2, err := FigPrepass("fig.yml", out)
			if err != nil || conv2 || !bytes.Equal(again, out) {
				t.Fatalf("not idempotent: converted again=%v err=%v\n%s", conv2, err, again)
			}
		})
	}
}

// A fig file with a volumes_from naming a container (not a service) loads
// as container:NAME, and JSON output shows it.
func TestFigVolumesFromContainerLoads(t *testing.T) {
	dir := writeTree(t, map[string]string{"fig.yml": "web:\n  image: busybox\n  volumes_from: [olddata]\n"})
	m := mustLoad(t, dir, Options{})
	b, _ := json.Marshal(m.Project.Services["web"].VolumesFrom)
	if string(b) != `["container:olddata"]` {
		t.Fatalf("volumes_from = %s", b)
	}
}
