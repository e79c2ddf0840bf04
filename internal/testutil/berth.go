package testutil

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// BerthBinary is the berth binary under test: $BERTH_BIN (make test sets
// it), else one built once per test process.
func BerthBinary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("BERTH_BIN"); b != "" {
		return b
	}
	binOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		mod := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "berth-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "berth")
		// As make build: the CLI with the roles program appended.
		for _, b := range [][2]string{{binPath + ".cli", "./cmd/berth"}, {binPath + ".roles", "./cmd/berth/roles/berth-roles"},
			{binPath + ".packer", "./cmd/berth/roles/pack"}} {
			cmd := exec.Command("go", "build", "-o", b[0], b[1])
			cmd.Dir = mod
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = &buildError{string(out)}
				return
			}
		}
		if out, err := exec.Command(binPath+".packer", binPath+".cli", binPath+".roles", binPath).CombinedOutput(); err != nil {
			binErr = &buildError{string(out)}
		}
	})
	if binErr != nil {
		t.Fatalf("building berth: %v", binErr)
	}
	return binPath
}

type buildError struct{ out string }

func (e *buildError) Error() string { return e.out }

// Result is what one berth command did.
type Result struct {
	Stdout, Stderr string
	Code           int
	Took           time.Duration
}

// Root is a temp state root (short path, leak-checked) with the busybox
// image imported, for tests that run containers through the binary.
type Root struct {
	t    testing.TB
	Path string
	Bin  string
}

// NewRoot makes a fresh root, registers the leak check for it, and imports
// the busybox test image as busybox:latest (CMD sh).
func NewRoot(t testing.TB) *Root {
	t.Helper()
	RequireRoot(t)
	r := &Root{t: t, Path: TempRoot(t), Bin: BerthBinary(t)}
	CheckLeaks(t, r.Path)
	// The default network comes with the first container run; it is the
	// root's, not a test's leak (a test that leaves containers on it
	// still fails: their shims and veths are leaks).
	t.Cleanup(func() { r.RunEnv(nil, "network", "rm", "bridge") })
	if res := r.Run("image", "import", BusyboxTar(t), "busybox:latest", "--change", `CMD ["sh"]`); res.Code != 0 {
		t.Fatalf("import busybox: %s", res.Stderr)
	}
	return r
}

// Run runs berth with args against the root.
func (r *Root) Run(args ...string) Result {
	r.t.Helper()
	return r.RunEnv(nil, args...)
}

// NoEgress is environment that sends any HTTP(S) request berth makes to
// a host other than loopback (a registry on the internet, an ADD URL) to
// a closed local port: a test that would reach out fails at once
// instead, and no traffic leaves the machine.
var NoEgress = []string{"HTTPS_PROXY=http://127.0.0.1:1", "HTTP_PROXY=http://127.0.0.1:1", "NO_PROXY=127.0.0.1,localhost,::1"}

// RunEnv is Run with extra environment.
func (r *Root) RunEnv(env []string, args ...string) Result {
	r.t.Helper()
	return r.RunInput(env, nil, args...)
}

// RunInput is RunEnv with stdin.
func (r *Root) RunInput(env []string, stdin io.Reader, args ...string) Result {
	r.t.Helper()
	cmd := exec.Command(r.Bin, args...)
	cmd.Stdin = stdin
	cmd.Env = append(append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "BERTH_ROOT=" + r.Path}, NoEgress...), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errb.String(), Took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("running berth: %v", err)
	}
	return res
}

// Must runs berth and fails the test unless it exits 0.
func (r *Root) Must(args ...string) string {
	r.t.Helper()
	res := r.Run(args...)
	if res.Code != 0 {
		r.t.Fatalf("berth %v: exit %d\nstdout: %s\nstderr: %s", args, res.Code, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

// BuildStatic builds the Go program in pkg (a ./testdata dir of the
// calling test's package) as a static binary into a fresh temp dir and
// returns its path: tests bind or copy such probes into containers.
func BuildStatic(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
