package project

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestLoadGolden loads each testdata/load/<case>/ project (and the example
// projects) and compares the normalised model, as JSON with the directory
// replaced by ${DIR}, with <case>.golden.json. go test ./project -update
// rewrites them; review the diff like code.
func TestLoadGolden(t *testing.T) {
	cases := map[string]Options{
		"extends-include": {},
		"profiles":        {Profiles: []string{"tools"}},
		"fig-full":        {},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			dir, err := filepath.Abs(filepath.Join("testdata", "load", name))
			if err != nil {
				t.Fatal(err)
			}
			m := mustLoad(t, dir, o)
			got, err := m.Project.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			got = append(bytes.ReplaceAll(got, []byte(dir), []byte("${DIR}")), '\n')
			golden := filepath.Join("testdata", "load", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./project -run TestLoadGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("model differs from %s (rerun with -update and review the diff):\n%s", golden, lineDiff(string(want), string(got)))
			}
		})
	}
}

// lineDiff shows the first differing lines.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, a, b)
		}
	}
	return ""
}
