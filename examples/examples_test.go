// Package examples holds runnable projects; each is also an end-to-end
// fixture driven through the berth binary.
package examples

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/testutil"
)

var berthBin string

// TestMain builds berth once, unless BERTH_BIN names a binary already built
// (make test-e2e does).
func TestMain(m *testing.M) {
	berthBin = os.Getenv("BERTH_BIN")
	if berthBin == "" {
		dir, err := os.MkdirTemp("", "berth-e2e-")
		if err != nil {
			panic(err)
		}
		berthBin = filepath.Join(dir, "berth")
		build := exec.Command("go", "build", "-o", berthBin, "../cmd/berth")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			panic("building berth: " + err.Error())
		}
		os.Setenv("BERTH_BIN", berthBin) // testutil.NewRoot runs the same binary
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

type result struct {
	stdout, stderr string
	code           int
}

// berth runs the binary in dir with a clean environment plus env.
func berth(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"BERTH_ROOT=" + filepath.Join(t.TempDir(), "root")}, testutil.NoEgress...), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running berth: %v", err)
	}
	return r
}

func noStackTrace(t *testing.T, r result) {
	t.Helper()
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Fatalf("stack trace reached the user:\n%s", r.stderr)
	}
}

// TestFigLegacyConfigMustPrintModel: berth must convert a fig 1.0 file and
// print the compose-spec model as JSON; --services must list its services.
func TestFigLegacyConfigMustPrintModel(t *testing.T) {
	r := berth(t, ".", nil, "-f", "fig-legacy/fig.yml", "config", "--format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var model struct {
		Name     string `json:"name"`
		Services map[string]struct {
			Links       []string          `json:"links"`
			NetworkMode string            `json:"network_mode"`
			VolumesFrom []string          `json:"volumes_from"`
			Environment map[string]string `json:"environment"`
			Ports       []struct {
				HostIP    string `json:"host_ip"`
				Published string `json:"published"`
				Target    int    `json:"target"`
			} `json:"ports"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &model); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	web := model.Services["web"]
	if model.Name != "fig-legacy" || len(model.Services) != 3 ||
		strings.Join(web.Links, ",") != "db:database" ||
		model.Services["data"].NetworkMode != "none" ||
		strings.Join(web.VolumesFrom, ",") != "data" ||
		web.Environment["APP_MODE"] != "legacy" ||
		len(web.Ports) != 1 || web.Ports[0].HostIP != "127.0.0.1" || web.Ports[0].Published != "8081" {
		t.Fatalf("unexpected model: %+v", model)
	}
	r = berth(t, ".", nil, "-f", "fig-legacy/fig.yml", "config", "--services")
	if r.code != 0 || r.stdout != "data\ndb\nweb\n" {
		t.Fatalf("--services: exit %d, %q", r.code, r.stdout)
	}
}

// TestMalformedYAMLMustReportPosition: a syntax error must exit 2 with
// FILE:LINE:COL and no stack trace.
func TestMalformedYAMLMustReportPosition(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("services:\n  web:\n    image: busybox\n   command: [x\n"), 0o644)
	r := berth(t, dir, nil, "config")
	noStackTrace(t, r)
	want := filepath.Join(dir, "compose.yaml") + ":4:"
	if r.code != 2 || !strings.HasPrefix(r.stderr, "berth: "+want) {
		t.Fatalf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, want)
	}
}

// TestUnknownDependencyMustNameBothServices.
func TestUnknownDependencyMustNameBothServices(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("services:\n  web:\n    image: busybox\n    depends_on: [dbx]\n"), 0o644)
	r := berth(t, dir, nil, "config", "-q")
	noStackTrace(t, r)
	if r.code != 2 || !strings.Contains(r.stderr, `service "web" depends on service "dbx"`) {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

// TestInvalidProjectNameMustWriteNothing: -p ../etc must be refused before
// any file is written, the state root included.
func TestInvalidProjectNameMustWriteNothing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	for _, args := range [][]string{{"-p", "../etc", "config"}, {"-p", "../etc", "config", "-q"}} {
		r := berth(t, "hello", []string{"BERTH_ROOT=" + root}, args...)
		noStackTrace(t, r)
		if r.code != 2 || !strings.Contains(r.stderr, `invalid project name "../etc"`) {
			t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("state root was created: %v", err)
	}
}

// TestConfigEnvironmentMustShowSources.
func TestConfigEnvironmentMustShowSources(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("services:\n  web:\n    image: \"busybox:${TAG}\"\n    environment: [\"MODE=${MODE:-dev}\", \"K=${KEY}\"]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".env"), []byte("TAG=dotenv\nKEY=dotenv\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "ci.env"), []byte("KEY=ci\n"), 0o644)
	r := berth(t, dir, []string{"TAG=shell"}, "--env-file", "ci.env", "config", "--environment")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "VARIABLE") {
		t.Fatalf("output:\n%s", r.stdout)
	}
	for _, want := range [][]string{
		{"KEY", "ci", "env-file ci.env:1"},
		{"MODE", "dev", "default compose.yaml:4"},
		{"TAG", "shell", "shell"},
	} {
		found := false
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) >= 4 && f[0] == want[0] && f[1] == want[1] && strings.Join(f[2:len(f)-1], " ") == want[2] {
				found = true
			}
		}
		if !found {
			t.Errorf("no row %v in:\n%s", want, r.stdout)
		}
	}
}

// TestConfigHashMustBeStable: the hash printed for a service must not
// change between runs and must change when the service changes.
func TestConfigHashMustBeStable(t *testing.T) {
	a := berth(t, "hello", nil, "config", "--hash", "*")
	b := berth(t, "hello", nil, "config", "--hash", "web")
	if a.code != 0 || b.code != 0 {
		t.Fatalf("exit %d/%d: %s%s", a.code, b.code, a.stderr, b.stderr)
	}
	lines := strings.Split(strings.TrimSpace(a.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "worker ") || lines[0] != strings.TrimSpace(b.stdout) {
		t.Fatalf("--hash * = %q, --hash web = %q", a.stdout, b.stdout)
	}
	c := berth(t, "hello", []string{"HELLO_PORT=9090"}, "config", "--hash", "web")
	if c.stdout == b.stdout {
		t.Fatal("changing the published port did not change the hash")
	}
}

// TestUsageErrorsMustExit2.
func TestUsageErrorsMustExit2(t *testing.T) {
	for _, args := range [][]string{{"--no-such-flag"}, {"--progress", "fancy", "version"}, {"config", "--format", "toml"}} {
		r := berth(t, "hello", nil, args...)
		noStackTrace(t, r)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, r.code, r.stderr)
		}
	}
	if r := berth(t, ".", nil, "version", "--format", "json"); r.code != 0 || !strings.Contains(r.stdout, `"version"`) {
		t.Errorf("version: %d %s", r.code, r.stdout)
	}
	if r := berth(t, ".", nil, "completion", "bash"); r.code != 0 || !strings.Contains(r.stdout, "__start_berth") {
		t.Errorf("completion bash: exit %d", r.code)
	}
}
