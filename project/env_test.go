package project

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func varByName(m *Model, name string) (Variable, bool) {
	for _, v := range m.Variables {
		if v.Name == name {
			return v, true
		}
	}
	return Variable{}, false
}

// Precedence as compose documents it: shell > --env-file (last wins) >
// the project's .env, which is read only when no --env-file is given; then
// a default written in the file.
func TestEnvironmentPrecedence(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"compose.yaml": `services:
  web:
    image: "busybox:${TAG}"
    environment:
      A: "${A}"
      B: "${B}"
      C: "${C}"
      D: "${D:-dflt}"
      E: "${E-only-if-unset}"
      F: "${F:-empty-or-unset}"
      G: "${G}"
`,
		".env":     "# project defaults\nTAG=1.36\nA=dotenv\nB=dotenv\nC=dotenv\nE=\nF=\n",
		"one.env":  "B=one\nC=one\n\nexport G=one\n",
		"two.env":  "C=two\n",
		"sub/.env": "A=elsewhere\n",
	})
	shell := map[string]string{"A": "shell"}

	// No --env-file: .env applies under the shell.
	m := mustLoad(t, dir, Options{ProjectName: "x", Env: shell})
	want := map[string]struct{ value, from string }{
		"TAG": {"1.36", ".env " + filepath.Join(dir, ".env") + ":2"},
		"A":   {"shell", "shell"},
		"B":   {"dotenv", ".env " + filepath.Join(dir, ".env") + ":4"},
		"C":   {"dotenv", ".env " + filepath.Join(dir, ".env") + ":5"},
		"D":   {"dflt", "default " + filepath.Join(dir, "compose.yaml") + ":8"},
		"E":   {"", ".env " + filepath.Join(dir, ".env") + ":6"},
		"F":   {"empty-or-unset", "default " + filepath.Join(dir, "compose.yaml") + ":10"},
		"G":   {"", "unset"},
	}
	check := func(m *Model, want map[string]struct{ value, from string }) {
		t.Helper()
		for name, w := range want {
			v, ok := varByName(m, name)
			if !ok {
				t.Errorf("%s not listed", name)
				continue
			}
			if v.Value != w.value || v.From != w.from {
				t.Errorf("%s = %q from %q, want %q from %q", name, v.Value, v.From, w.value, w.from)
			}
		}
	}
	check(m, want)
	if img := m.Project.Services["web"].Image; img != "busybox:1.36" {
		t.Errorf("image = %q", img)
	}

	// --env-file replaces .env; the last file wins; the shell still wins.
	m = mustLoad(t, dir, Options{ProjectName: "x", Env: shell, EnvFiles: []string{"one.env", "two.env"}})
	check(m, map[string]struct{ value, from string }{
		"A":   {"shell", "shell"},
		"B":   {"one", "env-file " + filepath.Join(dir, "one.env") + ":1"},
		"C":   {"two", "env-file " + filepath.Join(dir, "two.env") + ":1"},
		"G":   {"one", "env-file " + filepath.Join(dir, "one.env") + ":4"},
		"TAG": {"", "unset"},
	})
	if got := *m.Project.Services["web"].Environment["C"]; got != "two" {
		t.Errorf("interpolated C = %q", got)
	}

	// COMPOSE_DISABLE_ENV_FILE turns the default .env off.
	m = mustLoad(t, dir, Options{ProjectName: "x", Env: map[string]string{"COMPOSE_DISABLE_ENV_FILE": "1"}})
	if v, _ := varByName(m, "B"); v.Set {
		t.Errorf("B = %+v with the .env disabled", v)
	}

	// A missing --env-file is an error naming it.
	if _, err := loadIn(t, dir, Options{ProjectName: "x", EnvFiles: []string{"missing.env"}}); err == nil || !strings.Contains(err.Error(), "missing.env") {
		t.Errorf("missing env file: %v", err)
	}
}

// env files are data: command substitution and backticks stay literal.
func TestEnvFileNeverExecutes(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "PWNED")
	dir := writeTree(t, map[string]string{
		"compose.yaml": "services:\n  web:\n    image: busybox\n    environment: {A: \"${A}\", B: \"${B}\"}\n    env_file: [app.env]\n",
		".env":         "A=$(touch " + marker + ")\nB=`touch " + marker + "`\n",
		"app.env":      "C=$(touch " + marker + ")\n",
	})
	m := mustLoad(t, dir, Options{ProjectName: "x"})
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("loading the project ran a command from an env file")
	}
	env := m.Project.Services["web"].Environment
	if *env["A"] != "$(touch "+marker+")" || *env["B"] != "`touch "+marker+"`" || *env["C"] != "$(touch "+marker+")" {
		t.Fatalf("values not literal: A=%q B=%q C=%q", *env["A"], *env["B"], *env["C"])
	}
}

func TestEnvFileLines(t *testing.T) {
	got := envFileLines([]byte("# c\nA=1\n  export B = 2\nM=\"multi\nX=inside\n\"\nC: 3\nA=again\nBARE\n"))
	want := map[string]int{"A": 8, "B": 3, "M": 4, "C": 7, "BARE": 9}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s at line %d, want %d", k, got[k], v)
		}
	}
	if _, ok := got["X"]; ok {
		t.Error("a line inside a quoted value was taken for a key")
	}
}

func TestRequiredVariableNamesItself(t *testing.T) {
	dir := writeTree(t, map[string]string{"compose.yaml": "services:\n  web:\n    image: \"busybox:${TAG:?set TAG to the image tag}\"\n"})
	_, err := loadIn(t, dir, Options{ProjectName: "x"})
	if err == nil || !strings.Contains(err.Error(), "compose.yaml:3:5: ") || !strings.Contains(err.Error(), "set TAG to the image tag") {
		t.Fatalf("err = %v", err)
	}
	m := mustLoad(t, dir, Options{ProjectName: "x", Env: map[string]string{"TAG": "1"}})
	if v, _ := varByName(m, "TAG"); !v.Required || v.From != "shell" {
		t.Fatalf("TAG = %+v", v)
	}
}
