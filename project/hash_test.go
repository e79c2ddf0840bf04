package project

import (
	"strings"
	"testing"
)

const hashBase = `services:
  web:
    image: busybox:1
    command: ["httpd", "-f"]
    environment: {A: "1", B: "2"}
    ports: ["127.0.0.1:8080:80"]
    volumes: ["data:/data"]
    networks: [front]
    depends_on: [db]
  db:
    image: busybox:1
volumes:
  data: {}
networks:
  front: {}
`

func hashOf(t *testing.T, yml string) ServiceHash {
	t.Helper()
	h, err := loadYAML(t, yml).Hash("web", "")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestConfigHash(t *testing.T) {
	base := hashOf(t, hashBase)
	if base.Hash != hashOf(t, hashBase).Hash {
		t.Fatal("hash differs between two loads of the same file")
	}
	// Same content, keys and map entries in another order.
	reordered := `networks:
  front: {}
volumes:
  data: {}
services:
  db:
    image: busybox:1
  web:
    depends_on: [db]
    networks: [front]
    volumes: ["data:/data"]
    ports: ["127.0.0.1:8080:80"]
    environment: {B: "2", A: "1"}
    command: ["httpd", "-f"]
    image: busybox:1
`
	if h := hashOf(t, reordered); h.Hash != base.Hash {
		t.Fatalf("reordering keys changed the hash: %v", ChangedFields(base, h))
	}
	// environment as a list is the same environment.
	if h := hashOf(t, strings.Replace(hashBase, `environment: {A: "1", B: "2"}`, `environment: ["B=2", "A=1"]`, 1)); h.Hash != base.Hash {
		t.Fatalf("list environment changed the hash: %v", ChangedFields(base, h))
	}

	changes := []struct {
		name, from, to string
		field          string // "" = hash must not change
	}{
		{"image", "image: busybox:1\n    command", "image: busybox:2\n    command", "image"},
		{"command", `["httpd", "-f"]`, `["httpd", "-f", "-v"]`, "command"},
		{"env value", `A: "1"`, `A: "3"`, "environment"},
		{"env added", `B: "2"}`, `B: "2", C: "3"}`, "environment"},
		{"port", "127.0.0.1:8080:80", "127.0.0.1:8081:80", "ports"},
		{"volume", `"data:/data"`, `"data:/srv"`, "volumes"},
		{"volume read-only", `"data:/data"`, `"data:/data:ro"`, "volumes"},
		{"network", "networks: [front]\n    depends", "networks: [front, default]\n    depends", "networks"},
		{"user added", "    depends_on: [db]\n", "    depends_on: [db]\n    user: \"1000\"\n", "user"},
		{"depends_on is not config", "depends_on: [db]", "depends_on: {db: {condition: service_healthy}}", ""},
		{"scale is not config", "    depends_on: [db]\n", "    depends_on: [db]\n    scale: 3\n", ""},
		{"profiles are not config", "    depends_on: [db]\n", "    depends_on: [db]\n    profiles: [dev, default]\n", ""},
		{"pull_policy is not config", "    depends_on: [db]\n", "    depends_on: [db]\n    pull_policy: always\n", ""},
		{"other service is not config", "  db:\n    image: busybox:1\n", "  db:\n    image: busybox:9\n", ""},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(hashBase, c.from) {
				t.Fatalf("test bug: %q not in base", c.from)
			}
			yml := strings.Replace(hashBase, c.from, c.to, 1)
			if c.name == "profiles are not config" {
				yml = strings.Replace(yml, "[dev, default]", "[dev]", 1)
				h, err := mustLoad(t, writeTree(t, map[string]string{"compose.yaml": yml}), Options{ProjectName: "t", Profiles: []string{"dev"}}).Hash("web", "")
				if err != nil || h.Hash != base.Hash {
					t.Fatalf("err=%v changed=%v", err, ChangedFields(base, h))
				}
				return
			}
			h := hashOf(t, yml)
			changed := ChangedFields(base, h)
			if c.field == "" {
				if h.Hash != base.Hash {
					t.Fatalf("hash changed (%v)", changed)
				}
				return
			}
			if h.Hash == base.Hash {
				t.Fatal("hash did not change")
			}
			if len(changed) != 1 || changed[0] != c.field {
				t.Fatalf("changed fields = %v, want [%s]", changed, c.field)
			}
		})
	}

	// The resolved image digest is part of the hash.
	m := loadYAML(t, hashBase)
	a, _ := m.Hash("web", "sha256:aaa")
	b, _ := m.Hash("web", "sha256:bbb")
	if a.Hash == b.Hash || strings.Join(ChangedFields(a, b), ",") != "image_digest" {
		t.Fatalf("digest change: %v", ChangedFields(a, b))
	}
	if _, err := m.Hash("nope", ""); err == nil || !strings.Contains(err.Error(), "no such service") {
		t.Fatalf("unknown service: %v", err)
	}
}
