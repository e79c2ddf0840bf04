package archtest

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportRules checks every package's non-test imports against the
// design's table.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, Module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	if len(imports) < 5 {
		t.Fatalf("go list found only %d packages", len(imports))
	}
	for _, v := range Check(imports) {
		t.Error(v)
	}
}

// The checker itself must catch violations, or TestImportRules proves
// nothing.
func TestCheckFindsViolations(t *testing.T) {
	m := Module + "/"
	bad := map[string][]string{
		m + "project":                 {"fmt", m + "internal/errdefs"},
		m + "reconcile":               {m + "project", "golang.org/x/sys/unix", m + "runtime/linux"},
		m + "runtime/linux/rootfs":    {m + "project"},
		m + "image/local":             {m + "network/bridge", m + "image", m + "runtime"},
		m + "runtime/linux/shim":      {m + "network/dns", m + "network/bridge"},
		m + "internal/state":          {m + "cmd/berth/display", m + "internal/testutil"},
		m + "cmd/berth/cli":           {m + "cmd/berth/display", m + "project", m + "internal/testutil"},
		"example.com/other":           {m + "cmd/berth/cli"},
		m + "internal/testutil/cmd/x": {m + "internal/testutil"},
	}
	got := strings.Join(Check(bad), "\n")
	for _, want := range []string{
		"project → " + m + "internal/errdefs",
		"reconcile → golang.org/x/sys/unix",
		"reconcile → " + m + "runtime/linux: reconcile/ sees",
		"rootfs → " + m + "project",
		"image/local → " + m + "network/bridge",
		"shim → " + m + "network/bridge",
		"internal/state → " + m + "cmd/berth/display",
		"internal/state → " + m + "internal/testutil",
		"cmd/berth/cli → " + m + "internal/testutil",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violation %q not reported; got:\n%s", want, got)
		}
	}
	for _, allowed := range []string{"shim → " + m + "network/dns", "image/local → " + m + "image:", "reconcile → " + m + "project:", "cli → " + m + "cmd/berth/display", "example.com", "testutil/cmd/x"} {
		if strings.Contains(got, allowed) {
			t.Errorf("allowed import reported: %s\n%s", allowed, got)
		}
	}
}

// TestBinaryIsStatic: the berth binary has no ELF interpreter and needs no
// shared library (SECURITY.md: never load a library from a container).
func TestBinaryIsStatic(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "berth")
	cmd := exec.Command("go", "build", "-o", bin, Module+"/cmd/berth")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("binary has a PT_INTERP header (dynamically linked)")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("binary needs shared libraries: %v", libs)
	}
}
