package examples

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// project writes files into a temp project dir and returns a runner of
// berth commands in it (-p NAME) and the dir.
func project(t *testing.T, r *testutil.Root, name string, files map[string]string) (func(args ...string) testutil.Result, string) {
	t.Helper()
	dir := t.TempDir()
	for f, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) testutil.Result {
		t.Helper()
		return r.Run(append([]string{"--project-directory", dir, "-p", name}, args...)...)
	}
	t.Cleanup(func() { run("down", "-t", "0", "--remove-orphans") })
	return run, dir
}

func must(t *testing.T, res testutil.Result, what string) string {
	t.Helper()
	if res.Code != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, res.Code, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

func answers(out string) []string {
	var addrs []string
	answer := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Name:") {
			answer = true
		}
		if v, ok := strings.CutPrefix(l, "Address:"); ok && answer {
			addrs = append(addrs, strings.TrimSpace(v))
		}
	}
	sort.Strings(addrs)
	return addrs
}

// TestComposeNetworksMustResolveScaleAndIsolate: on project networks up
// creates, a service name answers with every replica (3, then 1 after
// scaling down); a service on another network of the project can neither
// resolve nor reach them; an internal network has no route out; down
// leaves no bridge, veth, rule or lease (the leak check).
func TestComposeNetworksMustResolveScaleAndIsolate(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "net", map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    command: ["sleep", "300"]
  worker:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    deploy: {replicas: 3}
  outsider:
    image: busybox
    command: ["sleep", "300"]
    networks: [back]
  locked:
    image: busybox
    command: ["sleep", "300"]
    networks: [sealed]
networks:
  back: {}
  sealed: {internal: true}
`})
	must(t, run("up", "-d"), "up")
	out := must(t, run("exec", "web", "nslookup", "worker"), "nslookup worker")
	if got := answers(out); len(got) != 3 {
		t.Errorf("worker with 3 replicas answers %v:\n%s", got, out)
	}
	if out := must(t, run("exec", "worker", "ping", "-c1", "-W2", "web"), "ping web"); !strings.Contains(out, "1 packets received") {
		t.Errorf("worker pinging web: %s", out)
	}
	if out := must(t, run("exec", "web", "ping", "-c1", "-W2", "net-worker-2"), "ping by container name"); !strings.Contains(out, "1 packets received") {
		t.Errorf("web pinging net-worker-2: %s", out)
	}
	must(t, run("scale", "worker=1"), "scale worker=1")
	if got := answers(must(t, run("exec", "web", "nslookup", "worker"), "nslookup after scale")); len(got) != 1 {
		t.Errorf("worker after scale=1 answers %v", got)
	}
	webIP := strings.TrimSpace(must(t, run("exec", "web", "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1"), "web's address"))
	if res := run("exec", "outsider", "ping", "-c1", "-W1", webIP); res.Code == 0 {
		t.Errorf("a service on another network reached web at %s: %s", webIP, res.Stdout)
	}
	if res := run("exec", "outsider", "nslookup", "web"); len(answers(res.Stdout)) > 0 {
		t.Errorf("another network resolved web: %s", res.Stdout)
	}
	res := run("exec", "locked", "sh", "-c", "ip route; ping -c1 -W1 192.0.2.1")
	if res.Code == 0 || strings.Contains(res.Stdout, "default") {
		t.Errorf("internal network: exit %d\n%s", res.Code, res.Stdout)
	}
	must(t, run("down", "-t", "0"), "down")
	if out := r.Must("network", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("networks left after down: %s", out)
	}
}

// TestComposePortsMustPublishAndClashCleanly: a loopback port serves from
// the host; a container-only port gets a free host port `port` prints;
// the same host port in two services fails naming the service, the other
// one runs, and nothing of the failed container is left.
func TestComposePortsMustPublishAndClashCleanly(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "ports", map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo from-compose > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: ["127.0.0.1:18085:8080"]
  any:
    image: busybox
    command: ["httpd", "-f", "-p", "8080"]
    ports: ["127.0.0.1::8080"]
`})
	must(t, run("up", "-d"), "up")
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://127.0.0.1:18085/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
	}
	if body != "from-compose\n" {
		t.Errorf("GET 127.0.0.1:18085: %q", body)
	}
	addr := strings.TrimSpace(must(t, run("port", "any", "8080"), "port any 8080"))
	if !strings.HasPrefix(addr, "127.0.0.1:") || addr == "127.0.0.1:0" {
		t.Errorf("port any 8080: %q", addr)
	}
	if ps := must(t, run("ps"), "ps"); !strings.Contains(ps, addr+"->8080/tcp") {
		t.Errorf("ps does not show %s:\n%s", addr, ps)
	}
	clash, _ := project(t, r, "clash", map[string]string{"compose.yaml": `
services:
  second:
    image: busybox
    command: ["sleep", "300"]
    ports: ["127.0.0.1:18085:80"]
  bystander:
    image: busybox
    command: ["sleep", "300"]
`})
	res := clash("up", "-d")
	if res.Code == 0 || !strings.Contains(res.Stderr, "second") || !strings.Contains(res.Stderr, "127.0.0.1:18085") {
		t.Errorf("a clashing port: exit %d: %s", res.Code, res.Stderr)
	}
	ps := must(t, clash("ps", "-a", "--format", "json"), "ps -a")
	if strings.Contains(ps, `"Service":"second"`) || !strings.Contains(ps, `"Service":"bystander"`) {
		t.Errorf("after the clash: %s", ps)
	}
}

// TestFigLinksMustGiveLinkEnvAndHosts: a fig v1 file with links:
// [db:database] gives web Docker's link variables for db's exposed port
// and /etc/hosts lines for the alias and the service.
func TestFigLinksMustGiveLinkEnvAndHosts(t *testing.T) {
	r := testutil.NewRoot(t)
	run, _ := project(t, r, "fig", map[string]string{"fig.yml": `
web:
  image: busybox
  command: sleep 300
  links:
    - db:database
db:
  image: busybox
  command: sleep 300
  expose:
    - "5432"
  environment:
    POSTGRES_DB: app
`})
	must(t, run("up", "-d"), "up")
	ip := strings.TrimSpace(must(t, run("exec", "db", "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1"), "db's address"))
	env := must(t, run("exec", "web", "sh", "-c", "env | grep ^DATABASE_ | sort"), "web env")
	want := strings.Join([]string{
		"DATABASE_ENV_POSTGRES_DB=app",
		"DATABASE_NAME=/fig-web-1/database",
		"DATABASE_PORT=tcp://" + ip + ":5432",
		"DATABASE_PORT_5432_TCP=tcp://" + ip + ":5432",
		"DATABASE_PORT_5432_TCP_ADDR=" + ip,
		"DATABASE_PORT_5432_TCP_PORT=5432",
		"DATABASE_PORT_5432_TCP_PROTO=tcp",
	}, "\n") + "\n"
	if env != want {
		t.Errorf("link env:\n%s\nwant:\n%s", env, want)
	}
	hosts := must(t, run("exec", "web", "cat", "/etc/hosts"), "hosts")
	var line string
	for _, l := range strings.Split(hosts, "\n") {
		if strings.HasPrefix(l, ip+"\t") && strings.Contains(l, "database") {
			line = l
		}
	}
	for _, name := range []string{"database", "db"} {
		if !strings.Contains(" "+strings.ReplaceAll(line, "\t", " ")+" ", " "+name+" ") {
			t.Errorf("/etc/hosts has no %s for %s:\n%s", name, ip, hosts)
		}
	}
	if out := must(t, run("exec", "web", "ping", "-c1", "-W2", "database"), "ping database"); !strings.Contains(out, "1 packets received") {
		t.Errorf("ping database: %s", out)
	}
}

// TestComposeNetworkOptionsMustApply: network_mode service:, an external
// network by name, aliases, a bridge name from driver_opts, extra_hosts
// and dns_search reach the containers.
func TestComposeNetworkOptionsMustApply(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("network", "create", "shared-ext")
	t.Cleanup(func() { r.Run("network", "rm", "shared-ext") })
	run, _ := project(t, r, "opts", map[string]string{"compose.yaml": `
services:
  app:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    networks:
      front: {aliases: [api, backend]}
      ext: {}
    extra_hosts: ["printer.lan:10.1.2.3", "gw:host-gateway"]
    dns_search: [corp.example]
  sidecar:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    network_mode: "service:app"
  peer:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    networks: [front]
networks:
  front:
    driver_opts: {com.docker.network.bridge.name: br-berth-front}
  ext:
    external: true
    name: shared-ext
`})
	must(t, run("up", "-d"), "up")
	addrs := "ip -4 -o addr | awk '$2 != \"lo\" {print $2, $4}'"
	appAddrs := must(t, run("exec", "app", "sh", "-c", addrs), "app's addresses")
	if side := must(t, run("exec", "sidecar", "sh", "-c", addrs), "sidecar's addresses"); side != appAddrs || !strings.Contains(appAddrs, "eth1") {
		t.Errorf("network_mode service:app: sidecar has %q, app %q (two networks)", side, appAddrs)
	}
	// The peer shares only front with app: it sees app's address there.
	peerNet := strings.Fields(must(t, run("exec", "peer", "sh", "-c", addrs), "peer's address"))[1]
	for _, name := range []string{"api", "backend", "app"} {
		got := answers(must(t, run("exec", "peer", "nslookup", name), "nslookup "+name))
		if len(got) != 1 || !strings.Contains(appAddrs, " "+got[0]+"/") || got[0][:strings.LastIndex(got[0], ".")] != peerNet[:strings.LastIndex(peerNet, ".")] {
			t.Errorf("alias %s answers %v; app has %q, peer %s", name, got, appAddrs, peerNet)
		}
	}
	if _, err := os.Stat("/sys/class/net/br-berth-front"); err != nil {
		t.Errorf("driver_opts bridge name: %v", err)
	}
	hosts := must(t, run("exec", "app", "cat", "/etc/hosts", "/etc/resolv.conf"), "hosts")
	for _, want := range []string{"10.1.2.3\tprinter.lan", "\tgw\n", "search corp.example"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("missing %q in:\n%s", want, hosts)
		}
	}
	nets := r.Must("network", "inspect", "shared-ext")
	if !strings.Contains(nets, "opts-app-1") {
		t.Errorf("app is not on the external network:\n%s", nets)
	}
	must(t, run("down", "-t", "0"), "down")
	if res := r.Run("network", "inspect", "shared-ext"); res.Code != 0 {
		t.Error("down removed the external network")
	}
}

// TestDownNeverTouchesUnlabelled (SECURITY.md): a network and a volume of
// the names a project would use, made by hand (no project labels), make
// up fail naming them, and survive up and down -v.
func TestDownNeverTouchesUnlabelled(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("network", "create", "mine_default")
	r.Must("volume", "create", "mine_data")
	t.Cleanup(func() {
		r.Run("network", "rm", "mine_default")
		r.Run("volume", "rm", "mine_data")
	})
	run, _ := project(t, r, "mine", map[string]string{"compose.yaml": `
services:
  app:
    image: busybox
    command: ["sleep", "300"]
    stop_signal: SIGKILL
    volumes: ["data:/data"]
volumes:
  data: {}
`})
	res := run("up", "-d")
	if res.Code == 0 || !strings.Contains(res.Stderr, "mine_default") {
		t.Errorf("up over an unlabelled network: exit %d: %s", res.Code, res.Stderr)
	}
	run("down", "-v", "-t", "0")
	if r.Run("network", "inspect", "mine_default").Code != 0 {
		t.Error("down -v removed the unlabelled network")
	}
	if r.Run("volume", "inspect", "mine_data").Code != 0 {
		t.Error("down -v removed the unlabelled volume")
	}
	r.Must("network", "rm", "mine_default")
	res = run("up", "-d")
	if res.Code == 0 || !strings.Contains(res.Stderr, "mine_data") {
		t.Errorf("up over an unlabelled volume: exit %d: %s", res.Code, res.Stderr)
	}
	run("down", "-v", "-t", "0")
	if r.Run("volume", "inspect", "mine_data").Code != 0 {
		t.Error("down -v removed the unlabelled volume")
	}
}
