package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/project"
	"berth.dev/berth/runtime"
)

var updateSpecs = flag.Bool("update-specs", false, "rewrite reconcile/testdata/spec/*.spec.json from BuildSpec's output")

// specTestDigest and specTestChain stand for a resolved image.
const (
	specTestDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	specTestChain  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// specTestHash is a fixed config hash: the real one covers absolute
// paths, which differ per run (TestSpecConfigHashLabels checks the real
// one).
var specTestHash = project.ServiceHash{
	Hash: "3333333333333333333333333333333333333333333333333333333333333333",
	Fields: map[string]string{
		"image":        "4444444444444444444444444444444444444444444444444444444444444444",
		"command":      "5555555555555555555555555555555555555555555555555555555555555555",
		"image_digest": "66666666",
	},
}

// specBusybox is an image with a CMD and nothing else to speak of.
var specBusybox = ImageConfig{
	Cmd:    []string{"sh"},
	Env:    []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	Labels: map[string]string{"org.opencontainers.image.title": "busybox"},
}

// specPostgres is an image with an ENTRYPOINT, a CMD, env, a workdir, a
// user, a stop signal and a healthcheck.
var specPostgres = ImageConfig{
	Entrypoint: []string{"docker-entrypoint.sh"},
	Cmd:        []string{"postgres"},
	Env: []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"PGDATA=/var/lib/postgresql/data",
		"LANG=en_US.utf8",
	},
	User:       "postgres",
	WorkingDir: "/var/lib/postgresql",
	StopSignal: "SIGINT",
	Labels:     map[string]string{"maintainer": "image", "org.opencontainers.image.version": "16"},
	Healthcheck: &runtime.HealthCheck{
		Test:     []string{"CMD", "pg_isready"},
		Interval: 10 * time.Second,
		Retries:  5,
	},
}

// specLoad writes files (compose.yaml and any others) to a temp dir and
// loads the project through the real loader, as project "demo" with an
// empty shell environment.
func specLoad(t *testing.T, files map[string]string) (*project.Model, string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := project.Load(context.Background(), project.Options{ProjectName: "demo", Env: map[string]string{}, WorkDir: dir})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return m, dir
}

type specCase struct {
	name    string // golden file testdata/spec/<name>.spec.json
	yaml    string
	files   map[string]string // beside compose.yaml
	service string            // "web" when empty
	number  int               // 1 when 0
	oneOff  bool
	image   *ImageConfig // specBusybox when nil
}

func (c specCase) input() SpecInput {
	in := SpecInput{Service: c.service, Number: c.number, OneOff: c.oneOff, Hash: specTestHash}
	if in.Service == "" {
		in.Service = "web"
	}
	if in.Number == 0 {
		in.Number = 1
	}
	ic := specBusybox
	if c.image != nil {
		ic = *c.image
	}
	in.Image = ResolvedImage{Digest: specTestDigest, ChainID: specTestChain, Config: ic}
	return in
}

func (c specCase) load(t *testing.T) (*project.Model, string) {
	t.Helper()
	files := map[string]string{"compose.yaml": c.yaml}
	for k, v := range c.files {
		files[k] = v
	}
	return specLoad(t, files)
}

// specJSON is the golden form of b: indented JSON, the project dir
// written /PROJECT.
func specJSON(t *testing.T, b Built, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(b); err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(buf.Bytes(), []byte(dir), []byte("/PROJECT"))
}

func specImg(c ImageConfig) *ImageConfig { return &c }

var specCases = []specCase{
	{name: "minimal", yaml: `
services:
  web:
    image: busybox
`},
	{name: "build_image_ref_container_name", yaml: `
services:
  web:
    build: .
    container_name: my-web
`, files: map[string]string{"Dockerfile": "FROM busybox\n"}},
	{name: "labels_image_service_compose", yaml: `
services:
  web:
    image: busybox
    labels:
      org.opencontainers.image.title: mine
      com.example.team: infra
      com.docker.compose.project: not-this
`},
	{name: "entrypoint_replaces_image_cmd", image: &specPostgres, yaml: `
services:
  web:
    image: postgres
    entrypoint: ["/bin/run", "-x"]
`},
	{name: "command_keeps_image_entrypoint", image: &specPostgres, yaml: `
services:
  web:
    image: postgres
    command: postgres -c fsync=off
`},
	{name: "entrypoint_empty_and_command", image: &specPostgres, yaml: `
services:
  web:
    image: postgres
    entrypoint: []
    command: [sleep, "10"]
`},
	{name: "command_empty_clears_image_cmd", image: &specPostgres, yaml: `
services:
  web:
    image: postgres
    command: []
`},
	{name: "env_merge", image: &specPostgres, yaml: `
services:
  web:
    image: postgres
    env_file: web.env
    environment:
      LANG: C.UTF-8
      ZED: last
      EMPTY: ""
      UNSET:
      ALPHA: first
`, files: map[string]string{"web.env": "FROM_FILE=1\nZED=file\n"}},
	{name: "process_options", image: &specPostgres, yaml: `
services:
  web:
    image: postgres
    user: "1000:1000"
    working_dir: /srv
    hostname: web1
    domainname: example.com
    tty: true
    stdin_open: true
    init: true
    shm_size: 256m
    group_add: [audio, "44"]
    oom_score_adj: -500
    stop_signal: SIGUSR1
    stop_grace_period: 1m30s
    sysctls:
      net.core.somaxconn: "1024"
      net.ipv4.tcp_syncookies: "0"
    ulimits:
      nproc: 65535
      nofile: {soft: 20000, hard: 40000}
      core: -1
`},
	{name: "image_stop_signal_and_workdir", image: &specPostgres, yaml: `
services:
  web:
    image: postgres
`},
	{name: "ports", yaml: `
services:
  web:
    image: busybox
    ports:
      - "8080:80"
      - "127.0.0.1:5432:5432"
      - "9000-9001:9000-9001/udp"
      - "3000"
      - "127.0.0.1::6379"
      - "[::1]:5353:53/udp"
      - target: 443
        published: "8443"
        host_ip: "::1"
        protocol: tcp
      - target: 8125
        protocol: udp
    expose: ["5432", "8000-8010/udp", 9090]
`},
	{name: "networks_priority_aliases_ipv4", yaml: `
services:
  web:
    image: busybox
    networks:
      front:
        aliases: [www, web, www]
        priority: 10
        ipv4_address: 172.28.0.10
      shared:
        priority: 5
        use_service_name_alias: false
        aliases: [legacy]
      back:
      admin:
        ipv6_address: "fd00::10"
networks:
  front:
    ipam: {config: [{subnet: 172.28.0.0/24}]}
  back: {}
  admin: {enable_ipv6: true}
  shared:
    external: true
    name: shared-net
`},
	{name: "network_mode_host_drops_ports", yaml: `
services:
  web:
    image: busybox
    network_mode: host
    ports: ["8080:80"]
`},
	{name: "network_mode_none", yaml: `
services:
  web:
    image: busybox
    network_mode: none
`},
	{name: "network_mode_service", yaml: `
services:
  db:
    image: busybox
    container_name: pg
  web:
    image: busybox
    network_mode: service:db
    ports: ["8080:80"]
`},
	{name: "network_mode_bridge", yaml: `
services:
  web:
    image: busybox
    network_mode: bridge
`},
	{name: "healthcheck_cmd_all_fields", yaml: `
services:
  web:
    image: busybox
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://localhost/"]
      interval: 15s
      timeout: 3s
      retries: 4
      start_period: 1m
      start_interval: 2s
`},
	{name: "healthcheck_string_defaults", yaml: `
services:
  web:
    image: busybox
    healthcheck:
      test: curl -f http://localhost/ || exit 1
`},
	{name: "healthcheck_image_merged", image: &specPostgres, yaml: `
services:
  web:
    image: postgres
    healthcheck:
      interval: 2s
`},
	{name: "healthcheck_disable", image: &specPostgres, yaml: `
services:
  web:
    image: postgres
    healthcheck:
      disable: true
`},
	{name: "healthcheck_test_none", image: &specPostgres, yaml: `
services:
  web:
    image: postgres
    healthcheck:
      test: ["NONE"]
`},
	{name: "resources_service_fields", yaml: `
services:
  web:
    image: busybox
    mem_limit: 512m
    memswap_limit: 1g
    mem_reservation: 256m
    cpus: 1.5
    cpu_shares: 512
    cpuset: "0-1"
    pids_limit: 100
`},
	{name: "resources_deploy_limits", yaml: `
services:
  web:
    image: busybox
    deploy:
      resources:
        limits:
          cpus: "0.25"
          memory: 128M
          pids: 50
        reservations:
          memory: 64M
`},
	{name: "restart_on_failure", yaml: `
services:
  web:
    image: busybox
    restart: on-failure:5
`},
	{name: "restart_unless_stopped", yaml: `
services:
  web:
    image: busybox
    restart: unless-stopped
`},
	{name: "restart_deploy_policy", yaml: `
services:
  web:
    image: busybox
    deploy:
      restart_policy:
        condition: on-failure
        max_attempts: 3
`},
	{name: "security_caps_read_only_opts", yaml: `
services:
  web:
    image: busybox
    read_only: true
    cap_add: [NET_ADMIN, sys_time]
    cap_drop: [MKNOD, CAP_NET_RAW]
    security_opt:
      - no-new-privileges:false
      - seccomp:unconfined
      - apparmor=unconfined
`},
	{name: "security_drop_all_add_one", yaml: `
services:
  web:
    image: busybox
    cap_drop: [ALL]
    cap_add: [NET_BIND_SERVICE]
`},
	{name: "privileged", yaml: `
services:
  web:
    image: busybox
    privileged: true
`},
	{name: "logging_json_file", yaml: `
services:
  web:
    image: busybox
    logging:
      driver: json-file
      options:
        max-size: 10m
        max-file: "3"
`},
	{name: "logging_none", yaml: `
services:
  web:
    image: busybox
    logging:
      driver: none
`},
	{name: "dns_extra_hosts", yaml: `
services:
  web:
    image: busybox
    dns: [1.1.1.1, 8.8.8.8]
    dns_search: example.com
    dns_opt: ["ndots:2", timeout:1]
    extra_hosts:
      - "db.local:10.0.0.5"
      - "host.docker.internal:host-gateway"
      - "v6.local=::1"
      - "b.local:10.0.0.6"
`},
	{name: "links_depends_on", yaml: `
services:
  db: {image: busybox, healthcheck: {test: ["CMD", "true"]}}
  cache: {image: busybox}
  web:
    image: busybox
    links: [db, "db:database", cache]
    external_links: [legacy-redis, "legacy-mq:mq"]
    depends_on:
      db: {condition: service_healthy, restart: true}
      cache: {condition: service_started}
`},
	{name: "mounts_named_volumes", yaml: `
services:
  web:
    image: busybox
    volumes:
      - data:/var/lib/data
      - type: volume
        source: cache
        target: /cache
        read_only: true
        volume: {nocopy: true}
volumes:
  data: {}
  cache: {name: shared-cache}
`},
	{name: "mounts_bind_tmpfs", yaml: `
services:
  web:
    image: busybox
    volumes:
      - /var/log/app:/var/log/app
      - ./data:/data:ro
      - ./data/sub:/data/sub
      - type: bind
        source: ./conf
        target: /etc/app
        bind: {propagation: rslave}
      - type: tmpfs
        target: /cache
        tmpfs: {size: 64m, mode: 01777}
    tmpfs:
      - /run:size=64m,mode=1777
      - /tmp
`},
	{name: "mounts_anonymous_and_image_volumes", image: specImg(ImageConfig{Cmd: []string{"sh"}, Volumes: []string{"/cache", "/data", "/var/lib/app/", "relative", "/proc/x"}}), yaml: `
services:
  web:
    image: busybox
    volumes:
      - /data
      - type: volume
        target: /scratch
        read_only: true
        volume: {nocopy: true}
      - cache:/cache
volumes:
  cache: {}
`},
	{name: "mounts_bind_host_paths", yaml: `
services:
  web:
    image: busybox
    volumes:
      - ./short:/short:z
      - type: bind
        source: ./long
        target: /long
      - type: bind
        source: ./asked
        target: /asked
        bind: {create_host_path: true, selinux: Z}
      - type: bind
        source: ./refused
        target: /refused
        bind: {create_host_path: false}
`},
	{name: "volumes_from_services_and_containers", yaml: `
services:
  data:
    image: busybox
    volumes: ["/data"]
  logs:
    image: busybox
  web:
    image: busybox
    volumes_from:
      - data
      - logs:ro
      - container:legacy
      - container:other:ro
`},
	{name: "secrets_and_configs", yaml: `
services:
  web:
    image: busybox
    secrets:
      - plain
      - source: moded
        mode: 0400
      - source: token
        target: api/token
        uid: "1000"
        gid: "1001"
    configs:
      - app
      - source: nginx
        target: /etc/nginx/nginx.conf
        mode: 0440
      - source: rel
        target: etc/rel.conf
secrets:
  plain: {file: ./plain.txt}
  moded: {file: ./moded.txt}
  token: {environment: API_TOKEN}
configs:
  app: {content: "debug=1"}
  nginx: {file: ./nginx.conf}
  rel: {content: "x"}
`, files: map[string]string{"plain.txt": "p", "moded.txt": "m", "nginx.conf": "n", ".env": "API_TOKEN=s3cr3t\n"}},
	{name: "oneoff_keeps_ports_no_aliases", number: 2, oneOff: true, yaml: `
services:
  web:
    image: busybox
    ports: ["8080:80"]
    networks:
      default:
        aliases: [www]
`},
	{name: "replica_number_3", number: 3, yaml: `
services:
  web:
    image: busybox
`},
}

// Each case's Built equals its golden file (-update-specs rewrites them),
// and three builds give byte-identical JSON (maps are walked sorted).
func TestSpecGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range specCases {
		if seen[c.name] {
			t.Fatalf("two cases named %s", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			m, dir := c.load(t)
			var got []byte
			for i := 0; i < 3; i++ {
				b, err := BuildSpec(m, c.input())
				if err != nil {
					t.Fatalf("BuildSpec: %v", err)
				}
				j := specJSON(t, b, dir)
				if i > 0 && !bytes.Equal(j, got) {
					t.Fatalf("BuildSpec is not deterministic:\n%s\nthen:\n%s", got, j)
				}
				got = j
			}
			file := filepath.Join("testdata", "spec", c.name+".spec.json")
			if *updateSpecs {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./reconcile -run TestSpecGolden -update-specs)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (go test ./reconcile -run TestSpecGolden -update-specs rewrites it); got:\n%s", file, got)
			}
		})
	}
}

// No golden file is left without its case.
func TestSpecGoldenFilesHaveCases(t *testing.T) {
	if *updateSpecs {
		t.Skip("rewriting")
	}
	files, err := filepath.Glob(filepath.Join("testdata", "spec", "*.spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range specCases {
		names[c.name] = true
	}
	for _, f := range files {
		if n := strings.TrimSuffix(filepath.Base(f), ".spec.json"); !names[n] {
			t.Errorf("%s has no case in specCases", f)
		}
	}
}

// Errors name the service and what to change, and are ErrInvalid.
func TestSpecErrors(t *testing.T) {
	noCmd := ImageConfig{}
	for _, c := range []struct {
		name  string
		yaml  string
		image *ImageConfig
		want  []string
	}{
		{"no command", `
services:
  web: {image: scratchy}
`, &noCmd, []string{"no command", "no CMD or ENTRYPOINT"}},
		{"empty entrypoint drops the image cmd", `
services:
  web: {image: busybox, entrypoint: []}
`, nil, []string{"no command"}},
		{"published range onto one port", `
services:
  web: {image: busybox, ports: ["8000-8001:80"]}
`, nil, []string{"ports[0]", "published range 8000-8001", "single container port 80", `"8000-8001:80-81"`}},
		{"sctp port", `
services:
  web: {image: busybox, ports: ["80:80/sctp"]}
`, nil, []string{"ports[0]", `protocol "sctp"`}},
		{"log driver", `
services:
  web: {image: busybox, logging: {driver: syslog}}
`, nil, []string{`driver "syslog" is not supported`, "json-file"}},
		{"log option", `
services:
  web: {image: busybox, logging: {options: {compress: "true"}}}
`, nil, []string{`option "compress"`, "max-size and max-file"}},
		{"log size", `
services:
  web: {image: busybox, logging: {options: {max-size: lots}}}
`, nil, []string{`max-size "lots"`}},
		{"none driver with options", `
services:
  web: {image: busybox, logging: {driver: none, options: {max-size: 1m}}}
`, nil, []string{"none driver takes no options"}},
		{"stop signal", `
services:
  web: {image: busybox, stop_signal: SIGFOO}
`, nil, []string{"stop_signal", `invalid signal "SIGFOO"`}},
		{"image stop signal", `
services:
  web: {image: busybox}
`, specImg(ImageConfig{Cmd: []string{"sh"}, StopSignal: "99"}), []string{"the image's STOPSIGNAL", `"99"`}},
		{"mount onto /proc", `
services:
  web: {image: busybox, volumes: ["./x:/proc/sys/x"]}
`, nil, []string{"/proc/sys/x", "refused"}},
		{"tmpfs onto /proc", `
services:
  web: {image: busybox, tmpfs: ["/proc"]}
`, nil, []string{"mount target /proc", "refused"}},
		{"memswap without memory", `
services:
  web: {image: busybox, memswap_limit: 1g}
`, nil, []string{"memswap_limit needs mem_limit"}},
		{"memswap below memory", `
services:
  web: {image: busybox, mem_limit: 1g, memswap_limit: 512m}
`, nil, []string{"memswap_limit", "below mem_limit"}},
		{"tiny memory", `
services:
  web: {image: busybox, mem_limit: 1m}
`, nil, []string{"minimum memory limit is 6MB"}},
		{"restart", `
services:
  web: {image: busybox, restart: sometimes}
`, nil, []string{`restart "sometimes"`, "on-failure[:N]"}},
		{"restart count on always", `
services:
  web: {image: busybox, restart: "always:3"}
`, nil, []string{"only on-failure takes a retry count"}},
		{"security opt", `
services:
  web: {image: busybox, security_opt: ["label:type:svirt_t"]}
`, nil, []string{`security_opt "label:type:svirt_t"`}},
		{"seccomp profile", `
services:
  web: {image: busybox, security_opt: ["seccomp=./profile.json"]}
`, nil, []string{"custom seccomp profiles are not supported yet"}},
		{"devices", `
services:
  web: {image: busybox, devices: ["/dev/fuse:/dev/fuse"]}
`, nil, []string{"devices is not supported"}},
		{"volumes_from mode", `
services:
  db: {image: busybox}
  web: {image: busybox, volumes_from: ["db:rx"]}
`, nil, []string{"volumes_from[0]", `mode "rx"`}},
		{"external secret", `
services:
  web: {image: busybox, secrets: [token]}
secrets:
  token: {external: true}
`, nil, []string{"secrets[0]", `secret "token"`, "swarm"}},
		{"secret from an unset variable", `
services:
  web: {image: busybox, secrets: [token]}
secrets:
  token: {environment: NOT_SET_ANYWHERE}
`, nil, []string{"secrets[0]", "NOT_SET_ANYWHERE is not set"}},
		{"config uid by name", `
services:
  web:
    image: busybox
    configs: [{source: app, uid: www-data}]
configs:
  app: {content: "x"}
`, nil, []string{"configs[0]", `config "app"`, `uid "www-data"`, "must be a number"}},
		{"config mode", `
services:
  web:
    image: busybox
    configs: [{source: app, mode: 04755}]
configs:
  app: {content: "x"}
`, nil, []string{"configs[0]", "mode 04755", "permission bits"}},
		{"secret over a volume target", `
services:
  web:
    image: busybox
    volumes: ["/run/secrets/token"]
    secrets: [token]
secrets:
  token: {file: ./token.txt}
`, nil, []string{"two mounts target /run/secrets/token"}},
		{"pid host", `
services:
  web: {image: busybox, pid: host}
`, nil, []string{"pid is not supported"}},
		{"healthcheck CMD alone", `
services:
  web: {image: busybox, healthcheck: {test: [CMD]}}
`, nil, []string{"CMD needs a command"}},
		{"image healthcheck malformed", `
services:
  web: {image: busybox}
`, specImg(ImageConfig{Cmd: []string{"sh"}, Healthcheck: &runtime.HealthCheck{Test: []string{"CMD-SHELL"}}}), []string{"the image's HEALTHCHECK", "CMD-SHELL takes one command string"}},
		{"relative working_dir", `
services:
  web: {image: busybox, working_dir: srv}
`, nil, []string{`working_dir "srv"`, "absolute"}},
		{"ulimit soft above hard", `
services:
  web: {image: busybox, ulimits: {nofile: {soft: 200, hard: 100}}}
`, nil, []string{"ulimits.nofile", "soft limit 200 is above the hard limit 100"}},
		{"ulimit name", `
services:
  web: {image: busybox, ulimits: {nofiles: 10}}
`, nil, []string{"ulimits.nofiles", "unknown limit", "nofile"}},
		{"network mode", `
services:
  web: {image: busybox, network_mode: "ns:/run/netns/x"}
`, nil, []string{`network_mode "ns:/run/netns/x"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, _ := specLoad(t, map[string]string{"compose.yaml": c.yaml})
			in := specCase{image: c.image}.input()
			_, err := BuildSpec(m, in)
			if err == nil {
				t.Fatal("no error")
			}
			if !errdefs.IsInvalid(err) {
				t.Errorf("not ErrInvalid: %v", err)
			}
			for _, w := range append([]string{`service "web"`}, c.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestSpecUnknownService(t *testing.T) {
	m, _ := specLoad(t, map[string]string{"compose.yaml": "services:\n  web: {image: busybox}\n"})
	_, err := BuildSpec(m, SpecInput{Service: "nope", Number: 1})
	if err == nil || !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), `service "nope"`) || !strings.Contains(err.Error(), "web") {
		t.Fatalf("got %v", err)
	}
}

func TestSpecNetworkModeContainer(t *testing.T) {
	m, _ := specLoad(t, map[string]string{"compose.yaml": `
services:
  web: {image: busybox, network_mode: "container:other-box", ports: ["80:80"]}
`})
	b, err := BuildSpec(m, specCase{}.input())
	if err != nil {
		t.Fatal(err)
	}
	s := b.Spec
	if s.NetNS != "container:other-box" || s.Networks != nil || s.Ports != nil {
		t.Fatalf("NetNS %q, Networks %v, Ports %v", s.NetNS, s.Networks, s.Ports)
	}
	if _, ok := s.Labels[LabelNetworks]; ok {
		t.Errorf("LabelNetworks set without networks: %q", s.Labels[LabelNetworks])
	}
}

// The config-hash labels carry the model's real hash: the full digest, and
// every field cut to 12 hex digits as compact JSON.
func TestSpecConfigHashLabels(t *testing.T) {
	m, _ := specLoad(t, map[string]string{"compose.yaml": `
services:
  web: {image: busybox, environment: {A: "1"}, ports: ["80:80"]}
`})
	h, err := m.Hash("web", specTestDigest)
	if err != nil {
		t.Fatal(err)
	}
	in := specCase{}.input()
	in.Hash = h
	b, err := BuildSpec(m, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Spec.Labels[runtime.LabelConfigHash]; got != h.Hash {
		t.Errorf("config-hash %q, want %q", got, h.Hash)
	}
	raw := b.Spec.Labels[LabelHashFields]
	var fields map[string]string
	if err := json.Unmarshal([]byte(raw), &fields); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if len(fields) != len(h.Fields) || len(fields) == 0 {
		t.Fatalf("fields %v, want the keys of %v", fields, h.Fields)
	}
	hex12 := regexp.MustCompile(`^[0-9a-f]{12}$`)
	for k, v := range fields {
		if !hex12.MatchString(v) || !strings.HasPrefix(h.Fields[k], v) {
			t.Errorf("field %s = %q, want the first 12 hex of %q", k, v, h.Fields[k])
		}
	}
	if want, _ := json.Marshal(fields); raw != string(want) {
		t.Errorf("label %s, want compact JSON with sorted keys %s", raw, want)
	}
}

func TestSpecParseSignal(t *testing.T) {
	for in, want := range map[string]int{
		"SIGTERM": 15, "TERM": 15, "term": 15, "15": 15, "SIGKILL": 9, "SIGUSR1": 10, "SIGWINCH": 28,
		"SIGRTMIN": 34, "RTMIN+3": 37, "SIGRTMAX": 64, "SIGRTMAX-2": 62, "64": 64, "SIGIOT": 6,
	} {
		if got, err := specParseSignal(in); err != nil || got != want {
			t.Errorf("%q: got %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "SIGFOO", "RTMIN+31", "RTMAX+1", "RTMIN-1", "SIG"} {
		if n, err := specParseSignal(in); err == nil {
			t.Errorf("%q: got %d, want an error", in, n)
		}
	}
}

// deploy.restart_policy maps onto Docker's policies; condition defaults to
// any (the compose specification's default).
func TestSpecRestartDeployConditions(t *testing.T) {
	three := uint64(3)
	for cond, want := range map[string]runtime.RestartPolicy{
		"none":       {Name: "no"},
		"any":        {Name: "always"},
		"":           {Name: "always"},
		"on-failure": {Name: "on-failure", MaxRetries: 3},
	} {
		svc := types.ServiceConfig{Name: "web", Deploy: &types.DeployConfig{
			RestartPolicy: &types.RestartPolicy{Condition: cond, MaxAttempts: &three}}}
		if got, err := specRestart(svc); err != nil || got != want {
			t.Errorf("condition %q: got %+v, %v; want %+v", cond, got, err, want)
		}
	}
	svc := types.ServiceConfig{Name: "web", Restart: "always",
		Deploy: &types.DeployConfig{RestartPolicy: &types.RestartPolicy{Condition: "none"}}}
	if got, _ := specRestart(svc); got.Name != "always" {
		t.Errorf("restart: should win over deploy.restart_policy, got %+v", got)
	}
}

// cpus becomes a CFS quota over a 100ms period, rounded (float32 0.1 is
// not exactly 0.1).
func TestSpecCPUQuotaRounds(t *testing.T) {
	for cpus, want := range map[float32]int64{0.1: 10000, 0.3: 30000, 1.5: 150000, 2: 200000, 0.001: 100} {
		r, err := specResources(types.ServiceConfig{Name: "web", ContainerSpec: types.ContainerSpec{CPUS: cpus}})
		if err != nil {
			t.Fatal(err)
		}
		if *r.CPU.Quota != want || *r.CPU.Period != 100000 {
			t.Errorf("cpus %v: quota %d period %d, want %d / 100000", cpus, *r.CPU.Quota, *r.CPU.Period, want)
		}
	}
	if r, err := specResources(types.ServiceConfig{Name: "web"}); err != nil || r != nil {
		t.Errorf("no limits: got %+v, %v; want nil", r, err)
	}
}

// An image's NONE healthcheck disables it unless the service gives a test.
func TestSpecHealthImageNone(t *testing.T) {
	none := &runtime.HealthCheck{Test: []string{"NONE"}}
	if hc, err := specHealth(types.ServiceConfig{Name: "web"}, none); err != nil || hc != nil {
		t.Errorf("image NONE: got %+v, %v", hc, err)
	}
	svc := types.ServiceConfig{Name: "web"}
	svc.HealthCheck = &types.HealthCheckConfig{Test: types.HealthCheckTest{"CMD", "true"}}
	hc, err := specHealth(svc, none)
	if err != nil || hc == nil || hc.Test[1] != "true" || hc.Retries != 3 || hc.Interval != 30*time.Second {
		t.Errorf("service test over image NONE: got %+v, %v", hc, err)
	}
}

// Bind sources are what compose-go resolved: relative paths against the
// project directory (.. included), ~ against $HOME, and absolute ones as
// written; the short syntax may create its source, the long syntax only
// with bind.create_host_path.
func TestSpecBindPathsResolve(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	m, dir := specLoad(t, map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    volumes:
      - ./rel:/rel
      - ../up:/up:ro
      - ~/cfg:/cfg
      - /abs/path:/abs
      - {type: bind, source: ~/long, target: /long}
`})
	b, err := BuildSpec(m, specCase{}.input())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]HostPath{
		"/rel":  {Path: filepath.Join(dir, "rel"), Create: true},
		"/up":   {Path: filepath.Join(filepath.Dir(dir), "up"), Create: true},
		"/cfg":  {Path: filepath.Join(home, "cfg"), Create: true},
		"/abs":  {Path: "/abs/path", Create: true},
		"/long": {Path: filepath.Join(home, "long")},
	}
	got := map[string]HostPath{}
	for _, mt := range b.Spec.OCI.Mounts {
		for _, hp := range b.HostPaths {
			if hp.Path == mt.Source {
				got[mt.Destination] = hp
			}
		}
	}
	for dst, w := range want {
		if got[dst] != w {
			t.Errorf("%s: bind source %+v, want %+v", dst, got[dst], w)
		}
	}
}
