package examples

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// nslookupAddrs runs nslookup NAME in a container on net and returns the
// addresses of the answer (not the server's).
func nslookupAddrs(t *testing.T, r *testutil.Root, net, name string) []string {
	t.Helper()
	res := r.Run("container", "run", "--rm", "--network", net, "busybox", "nslookup", "-type=a", name)
	var addrs []string
	answer := false
	for _, l := range strings.Split(res.Stdout, "\n") {
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

// answersOf is the addresses of an nslookup answer, joined.
func answersOf(out string) string { return strings.Join(answers(out), " ") }

func containerIP(t *testing.T, r *testutil.Root, name string) string {
	t.Helper()
	out := r.Must("container", "exec", name, "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'")
	ip, _, _ := strings.Cut(strings.TrimSpace(out), "/")
	return ip
}

// TestNetworkMustResolveReplicasAndIsolate: containers of one network find
// each other by name and alias (all replicas, fewer after one goes); a
// container on another network cannot reach them; an internal network has
// no route out.
func TestNetworkMustResolveReplicasAndIsolate(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("network", "create", "--label", "com.docker.compose.project=p", "p_default")
	r.Must("network", "create", "p_other")
	r.Must("network", "create", "--internal", "p_internal")
	t.Cleanup(func() {
		r.Run("container", "rm", "-f", "p-web-1", "p-worker-1", "p-worker-2", "p-worker-3")
		r.Run("network", "rm", "p_default", "p_other", "p_internal")
	})
	r.Must("container", "run", "-d", "--name", "p-web-1", "--network", "p_default", "--network-alias", "web", "busybox", "sleep", "300")
	var workers []string
	for _, n := range []string{"p-worker-1", "p-worker-2", "p-worker-3"} {
		r.Must("container", "run", "-d", "--name", n, "--network", "p_default", "--network-alias", "worker", "busybox", "sleep", "300")
		workers = append(workers, containerIP(t, r, n))
	}
	sort.Strings(workers)
	if out := r.Must("container", "exec", "p-web-1", "ping", "-c", "1", "-W", "2", "p-worker-2"); !strings.Contains(out, "1 packets received") {
		t.Errorf("web pinging worker-2 by container name: %s", out)
	}
	if out := r.Must("container", "exec", "p-worker-1", "ping", "-c", "1", "-W", "2", "web"); !strings.Contains(out, "1 packets received") {
		t.Errorf("worker-1 pinging web by alias: %s", out)
	}
	if got := nslookupAddrs(t, r, "p_default", "worker"); strings.Join(got, " ") != strings.Join(workers, " ") {
		t.Errorf("nslookup worker with 3 replicas: %v, want %v", got, workers)
	}
	r.Must("container", "rm", "-f", "p-worker-2", "p-worker-3")
	if got := nslookupAddrs(t, r, "p_default", "worker"); len(got) != 1 {
		t.Errorf("nslookup worker after scaling to 1: %v", got)
	}
	// A stopped replica is not answered either.
	r.Must("container", "stop", "-t", "1", "p-worker-1")
	if got := nslookupAddrs(t, r, "p_default", "worker"); len(got) != 0 {
		t.Errorf("nslookup worker with its only replica stopped: %v", got)
	}
	webIP := containerIP(t, r, "p-web-1")
	res := r.Run("container", "run", "--rm", "--network", "p_other", "busybox", "ping", "-c", "1", "-W", "1", webIP)
	if res.Code == 0 || strings.Contains(res.Stdout, "1 packets received") {
		t.Errorf("a container on another network reached web at %s: %s", webIP, res.Stdout)
	}
	if got := nslookupAddrs(t, r, "p_other", "p-web-1"); len(got) != 0 {
		t.Errorf("another network resolved p-web-1: %v", got)
	}
	res = r.Run("container", "run", "--rm", "--network", "p_internal", "busybox", "sh", "-c", "ip route; ping -c 1 -W 1 192.0.2.1")
	if res.Code == 0 || strings.Contains(res.Stdout, "default") {
		t.Errorf("internal network has a route out: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}

// TestNetworkMustReachHostAndFallThroughToHostDNS: a host server on the
// gateway address is reachable (the NAT path out), and a name berth does
// not know goes to the host's resolvers: answered or NXDOMAIN, never a hang.
func TestNetworkMustReachHostAndFallThroughToHostDNS(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("network", "create", "hostpath")
	t.Cleanup(func() { r.Run("network", "rm", "hostpath") })
	var nets []map[string]any
	if err := json.Unmarshal([]byte(r.Must("network", "inspect", "hostpath")), &nets); err != nil {
		t.Fatal(err)
	}
	gw := nets[0]["IPAM"].(map[string]any)["Config"].([]any)[0].(map[string]any)["Gateway"].(string)
	www := t.TempDir()
	os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from the host\n"), 0o644)
	srv := exec.Command("busybox", "httpd", "-f", "-p", gw+":19999", "-h", www)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	time.Sleep(200 * time.Millisecond)
	if out := r.Must("container", "run", "--rm", "--network", "hostpath", "busybox", "wget", "-qO-", "http://"+gw+":19999/"); out != "hello from the host\n" {
		t.Errorf("host server on the gateway: %q", out)
	}
	start := time.Now()
	res := r.Run("container", "run", "--rm", "--network", "hostpath", "busybox", "timeout", "10", "nslookup", "debian.org")
	if time.Since(start) > 12*time.Second {
		t.Errorf("an outside name took %v", time.Since(start))
	}
	// Answered or NXDOMAIN: either came from the host's resolver (the
	// embedded DNS alone could only say SERVFAIL for a name it forwards).
	if !strings.Contains(answersOf(res.Stdout), ".") && !strings.Contains(res.Stdout+res.Stderr, "NXDOMAIN") {
		t.Errorf("an outside name: neither answered nor NXDOMAIN: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}

// TestPublishedPortsMustServeAndFailCleanly: a loopback-published port
// serves from the host; a port with no host port gets one that `port`
// prints; the same host port twice fails naming it and leaves nothing.
func TestPublishedPortsMustServeAndFailCleanly(t *testing.T) {
	r := testutil.NewRoot(t)
	t.Cleanup(func() { r.Run("container", "rm", "-f", "web", "web2") })
	r.Must("container", "run", "-d", "--name", "web", "-p", "127.0.0.1:18080:8080", "busybox", "sh", "-c",
		"mkdir -p /www && echo served-by-busybox > /www/index.html && exec httpd -f -p 8080 -h /www")
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://127.0.0.1:18080/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
	}
	if body != "served-by-busybox\n" {
		t.Errorf("GET through 127.0.0.1:18080: %q", body)
	}
	if out := r.Must("container", "port", "web"); strings.TrimSpace(out) != "8080/tcp -> 127.0.0.1:18080" {
		t.Errorf("port web: %q", out)
	}
	r.Must("container", "run", "-d", "--name", "web2", "-p", "127.0.0.1::8080", "busybox", "httpd", "-f", "-p", "8080")
	addr := strings.TrimSpace(r.Must("container", "port", "web2", "8080"))
	if !strings.HasPrefix(addr, "127.0.0.1:") || addr == "127.0.0.1:0" {
		t.Errorf("port web2 8080: %q", addr)
	}
	if ps := r.Must("container", "ls"); !strings.Contains(ps, addr+"->8080/tcp") {
		t.Errorf("ls does not show %s:\n%s", addr, ps)
	}
	before := r.Must("container", "ls", "-a", "-q")
	res := r.Run("container", "run", "-d", "--name", "clash", "-p", "127.0.0.1:18080:80", "busybox", "sleep", "30")
	if res.Code != 125 || !strings.Contains(res.Stderr, "127.0.0.1:18080") || !strings.Contains(res.Stderr, "in use") {
		t.Errorf("the same host port twice: exit %d: %s", res.Code, res.Stderr)
	}
	if after := r.Must("container", "ls", "-a", "-q"); after != before {
		t.Errorf("a failed publish left a container:\nbefore %s\nafter %s", before, after)
	}
	if res := r.Run("container", "inspect", "clash"); res.Code == 0 {
		t.Errorf("clash still exists")
	}
}

// TestLinksMustGiveDockerEnvAndHosts: --link db:database gives the legacy
// variables for each exposed port and the /etc/hosts lines.
func TestLinksMustGiveDockerEnvAndHosts(t *testing.T) {
	r := testutil.NewRoot(t)
	t.Cleanup(func() { r.Run("container", "rm", "-f", "db") })
	r.Must("container", "run", "-d", "--name", "db", "--expose", "5432", "-e", "POSTGRES_DB=app", "busybox", "sleep", "300")
	ip := containerIP(t, r, "db")
	out := r.Must("container", "run", "--rm", "--name", "web", "--link", "db:database", "busybox", "sh", "-c", "env | grep ^DATABASE_ | sort; echo ---; cat /etc/hosts")
	env, hosts, _ := strings.Cut(out, "---\n")
	want := strings.Join([]string{
		"DATABASE_ENV_POSTGRES_DB=app",
		"DATABASE_NAME=/web/database",
		"DATABASE_PORT=tcp://" + ip + ":5432",
		"DATABASE_PORT_5432_TCP=tcp://" + ip + ":5432",
		"DATABASE_PORT_5432_TCP_ADDR=" + ip,
		"DATABASE_PORT_5432_TCP_PORT=5432",
		"DATABASE_PORT_5432_TCP_PROTO=tcp",
	}, "\n") + "\n"
	if env != want {
		t.Errorf("link env:\n%s\nwant:\n%s", env, want)
	}
	if !strings.Contains(hosts, ip+"\tdatabase db\n") {
		t.Errorf("/etc/hosts has no link line for %s:\n%s", ip, hosts)
	}
}

// TestNetworkRemoveMustLeaveNothing: a network with a container refuses
// removal naming it; once the container is gone, rm leaves no bridge,
// veth, rule, lease or DNS server (the leak check sees links and tables).
func TestNetworkRemoveMustLeaveNothing(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("network", "create", "--subnet", "10.89.250.0/24", "gone")
	r.Must("container", "run", "-d", "--name", "c1", "--network", "gone", "busybox", "sleep", "300")
	res := r.Run("network", "rm", "gone")
	if res.Code == 0 || !strings.Contains(res.Stderr, "c1") {
		t.Errorf("rm of a network in use: exit %d: %s", res.Code, res.Stderr)
	}
	if res := r.Run("network", "create", "--subnet", "10.89.250.0/25", "clash"); res.Code == 0 || !strings.Contains(res.Stderr, "overlaps") {
		t.Errorf("an overlapping subnet: exit %d: %s", res.Code, res.Stderr)
	}
	r.Must("container", "rm", "-f", "c1")
	r.Must("network", "rm", "gone")
	if ents, _ := os.ReadDir(filepath.Join(r.Path, "networks", "gone")); len(ents) > 0 {
		t.Errorf("network state left: %v", ents)
	}
	if out := r.Must("network", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("networks left: %s", out)
	}
}

// TestNetworkIPv6MustAddressAndResolve: an --ipv6 network gives each
// container a ULA address; containers reach each other over it and the
// embedded DNS answers AAAA.
func TestNetworkIPv6MustAddressAndResolve(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("network", "create", "--ipv6", "v6")
	t.Cleanup(func() {
		r.Run("container", "rm", "-f", "v6a")
		r.Run("network", "rm", "v6")
	})
	r.Must("container", "run", "-d", "--name", "v6a", "--network", "v6", "busybox", "sleep", "300")
	out := r.Must("container", "run", "--rm", "--network", "v6", "busybox", "sh", "-c", "ping6 -c1 -W2 v6a && nslookup -type=aaaa v6a")
	if !strings.Contains(out, "1 packets received") || !strings.Contains(out, "Address: fd") {
		t.Errorf("IPv6 between containers:\n%s", out)
	}
}
