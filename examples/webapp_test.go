package examples

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// debianTar is the debian:bookworm rootfs tarball hack/debian-image.sh
// makes ($BERTH_DEBIAN_TAR, else _output/debian/bookworm.tar); the test
// skips, saying how to make it, when there is none.
func debianTar(t *testing.T) string {
	t.Helper()
	tar := os.Getenv("BERTH_DEBIAN_TAR")
	if tar == "" {
		tar = filepath.Join("..", "_output", "debian", "bookworm.tar")
	}
	abs, err := filepath.Abs(tar)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Skipf("no debian:bookworm tarball at %s (make debian-image builds it with debootstrap from Debian's mirror; or set BERTH_DEBIAN_TAR): %v", abs, err)
	}
	return abs
}

// freePort is a TCP port on 127.0.0.1 nothing listened on a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// webappReply is what the app answers on / (through nginx).
type webappReply struct {
	Postgres struct {
		Message   string `json:"message"`
		CreatedAt string `json:"created_at"`
		Visits    int    `json:"visits"`
	} `json:"postgres"`
	Redis struct {
		Hits int `json:"hits"`
	} `json:"redis"`
}

// stepLine is a build step that does work unless cached: "#7 [3/6] RUN …".
var stepLine = regexp.MustCompile(`(?m)^#(\d+) \[\d+/\d+\] (RUN|COPY|ADD) `)

// TestWebappMustServeFromPostgresAndRedis: examples/webapp, built FROM
// debian:bookworm with apt-get inside berth's builds, comes up with
// --wait; a request through nginx returns the row the migration wrote and
// a counter from PostgreSQL and a hit counter from Redis; an unchanged
// rebuild is all cached; down then up keeps the database volume, down -v
// drops it.
func TestWebappMustServeFromPostgresAndRedis(t *testing.T) {
	tar := debianTar(t)
	r := testutil.NewRoot(t)
	r.Must("image", "import", tar, "debian:bookworm", "--change", `CMD ["bash"]`,
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	dir, err := filepath.Abs("webapp")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	run := func(args ...string) testutil.Result {
		t.Helper()
		return r.RunEnv([]string{"WEBAPP_PORT=" + port}, append([]string{"--project-directory", dir, "-p", "webapp"}, args...)...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, args := range [][]string{{"ps", "-a"}, {"logs", "--no-log-prefix", "-n", "40"}} {
				res := run(args...)
				t.Logf("berth %s:\n%s%s", strings.Join(args, " "), res.Stdout, res.Stderr)
			}
		}
		run("down", "-v", "-t", "0", "--remove-orphans")
	})

	start := time.Now()
	res := run("build", "--progress", "plain")
	must(t, res, "build")
	t.Logf("cold build of 4 images (apt-get through berth's NAT and DNS): %s", time.Since(start).Round(100*time.Millisecond))
	res = run("build", "--progress", "plain")
	must(t, res, "second build")
	out := res.Stdout + res.Stderr
	steps := stepLine.FindAllStringSubmatch(out, -1)
	if len(steps) == 0 {
		t.Fatalf("second build shows no RUN/COPY steps:\n%s", out)
	}
	for _, s := range steps {
		if !strings.Contains(out, "#"+s[1]+" CACHED\n") {
			t.Errorf("unchanged rebuild ran step #%s (%s) again:\n%s", s[1], s[2], out)
		}
	}
	t.Logf("unchanged rebuild: %s, %d steps cached", res.Took.Round(time.Millisecond), len(steps))

	up := func(what string) {
		t.Helper()
		res := run("up", "-d", "--wait", "--wait-timeout", "120")
		must(t, res, what)
		// The target is 10 s once images are built; a loaded CI
		// machine gets a generous bound.
		t.Logf("%s: up -d --wait took %s", what, res.Took.Round(100*time.Millisecond))
		if res.Took > 90*time.Second {
			t.Errorf("%s: up -d --wait took %s", what, res.Took)
		}
		for name, e := range psAll(t, run) {
			want := "running"
			if e.Service == "migrate" {
				want = "exited"
			}
			if e.State != want || e.ExitCode != 0 {
				t.Errorf("%s: %s is %s (exit %d), want %s", what, name, e.State, e.ExitCode, want)
			}
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}
	get := func() webappReply {
		t.Helper()
		resp, err := client.Get("http://127.0.0.1:" + port + "/")
		if err != nil {
			t.Fatalf("GET through nginx: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var rep webappReply
		if resp.StatusCode != 200 || resp.Header.Get("Server") == "" || json.Unmarshal(body, &rep) != nil {
			t.Fatalf("GET through nginx: %s (Server %q): %s", resp.Status, resp.Header.Get("Server"), body)
		}
		if !strings.HasPrefix(resp.Header.Get("Server"), "nginx") {
			t.Errorf("reply did not come through nginx: Server %q", resp.Header.Get("Server"))
		}
		if rep.Postgres.Message != "hello from PostgreSQL" || rep.Postgres.CreatedAt == "" {
			t.Fatalf("no migrated row from PostgreSQL: %s", body)
		}
		return rep
	}

	up("first up")
	a, b := get(), get()
	if a.Postgres.Visits != 1 || b.Postgres.Visits != 2 || a.Redis.Hits != 1 || b.Redis.Hits != 2 {
		t.Errorf("counters on a fresh stack: PostgreSQL %d then %d, Redis %d then %d; want 1, 2 and 1, 2",
			a.Postgres.Visits, b.Postgres.Visits, a.Redis.Hits, b.Redis.Hits)
	}

	must(t, run("down"), "down")
	up("up after down")
	c := get()
	if c.Postgres.CreatedAt != a.Postgres.CreatedAt || c.Postgres.Visits != 3 {
		t.Errorf("down then up lost the database: row created %s (was %s), visits %d (want 3)",
			c.Postgres.CreatedAt, a.Postgres.CreatedAt, c.Postgres.Visits)
	}
	if c.Redis.Hits < 1 {
		t.Errorf("no hit counter from Redis after up: %+v", c)
	}

	must(t, run("down", "-v"), "down -v")
	if vols := r.Must("volume", "ls", "-q"); strings.Contains(vols, "webapp_pgdata") {
		t.Errorf("down -v left the database volume: %s", vols)
	}
	up("up after down -v")
	d := get()
	if d.Postgres.Visits != 1 || d.Postgres.CreatedAt == a.Postgres.CreatedAt {
		t.Errorf("down -v kept the database: visits %d (want 1), row created %s (first was %s)",
			d.Postgres.Visits, d.Postgres.CreatedAt, a.Postgres.CreatedAt)
	}
	must(t, run("down", "-v", "-t", "5"), "final down -v")
}
