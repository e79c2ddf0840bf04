// Package golden compares what berth's pure planners produce with files
// under testdata/, TESTING.md §3: go test ./reconcile -update rewrites
// the files, and their diff is reviewed like code.
//
// The -update flag is registered here unless the test binary already has
// one (a package's own tests that define it initialise first); Updating
// reads whichever it is.
package golden

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"berth.dev/berth/project"
	"berth.dev/berth/reconcile"
)

// UpdateFlag is the flag that makes File rewrite golden files instead of
// comparing with them (go test ./reconcile -update).
const UpdateFlag = "update"

var _ = registerUpdate()

func registerUpdate() bool {
	if flag.Lookup(UpdateFlag) == nil {
		flag.Bool(UpdateFlag, false, "rewrite golden files (testdata/) with the current output")
	}
	return true
}

// Updating reports whether -update was given.
func Updating() bool {
	f := flag.Lookup(UpdateFlag)
	return f != nil && f.Value.String() == "true"
}

// Dir is the directory golden files live in, relative to the test's
// working directory (the package directory under go test).
const Dir = "testdata"

// Source is what gives Plan its observed state: reconciletest's builder,
// or Of for a value built by hand.
type Source interface{ Observed() *reconcile.Observed }

type fixed struct{ o *reconcile.Observed }

func (f fixed) Observed() *reconcile.Observed { return f.o }

// Of wraps an Observed as a Source.
func Of(o *reconcile.Observed) Source { return fixed{o} }

// seeds shuffle the observed state of Plan's three runs.
var seeds = [...]uint64{1, 2, 3}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Plan computes the plan for m and the observed state three times, each
// on a copy with its slices shuffled and its maps rebuilt in another
// order (opt's too), requires the three texts to be byte-identical, the
// plan valid and the inputs untouched, then compares the text (Text) with
// testdata/<name>.plan. It returns the first plan.
func Plan(t testing.TB, m *project.Model, src Source, opt reconcile.Options, name string) *reconcile.Plan {
	t.Helper()
	if !nameRe.MatchString(name) {
		t.Fatalf("golden: bad name %q: use lower-case letters, digits, '_' and '-'", name)
	}
	o := src.Observed()
	before := Shuffle(o, 0)
	var first *reconcile.Plan
	var firstText string
	for i, seed := range seeds {
		p, err := reconcile.Compute(m, Shuffle(o, seed), ShuffleOptions(opt, seed))
		if err != nil {
			t.Fatalf("golden %s: Compute (run %d): %v", name, i+1, err)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("golden %s: invalid plan (run %d): %v\n%s", name, i+1, err, p)
		}
		text := Text(p)
		if i == 0 {
			first, firstText = p, text
			continue
		}
		if text != firstText {
			t.Fatalf("golden %s: Compute is not deterministic: run 1 and run %d differ (%s)\nrun 1:\n%s\nrun %d:\n%s",
				name, i+1, lineDiff(firstText, text), firstText, i+1, text)
		}
	}
	if !reflect.DeepEqual(before, Shuffle(o, 0)) {
		t.Fatalf("golden %s: Compute modified the observed state it was given", name)
	}
	File(t, filepath.Join(Dir, name+".plan"), firstText)
	return first
}

// Text is a plan's golden form: Plan.String(), then, when actions carry
// Needs (depends_on conditions checked on the machine, which String does
// not show), one line per such action:
//
//	needs:
//	#2 db(healthy) cache(started, optional)
func Text(p *reconcile.Plan) string {
	var b strings.Builder
	b.WriteString(p.String())
	header := false
	for _, a := range p.Actions {
		if len(a.Needs) == 0 {
			continue
		}
		if !header {
			b.WriteString("needs:\n")
			header = true
		}
		fmt.Fprintf(&b, "#%d", a.ID)
		for _, n := range a.Needs {
			opt := ""
			if !n.Required {
				opt = ", optional"
			}
			fmt.Fprintf(&b, " %s(%s%s)", n.Service, n.Cond, opt)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// File compares got with the file at path (relative to the test's
// working directory), or writes it there under -update.
func File(t testing.TB, path, got string) {
	t.Helper()
	if Updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden: %v (run go test with -update to create it, then review it)\ngot:\n%s", err, got)
	}
	if string(want) != got {
		t.Fatalf("golden: output differs from %s (%s); rerun with -update and review the diff\nwant:\n%s\ngot:\n%s",
			path, lineDiff(string(want), got), want, got)
	}
}

// Shuffle returns a deep copy of o with its slices in an order drawn from
// seed and its maps rebuilt in another insertion order; seed 0 keeps the
// slices' order.
func Shuffle(o *reconcile.Observed, seed uint64) *reconcile.Observed {
	if o == nil {
		return nil
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	perm := func(n int) []int {
		p := make([]int, n)
		for i := range p {
			p[i] = i
		}
		if seed != 0 {
			r.Shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
		}
		return p
	}
	cp := func(m map[string]string) map[string]string {
		if m == nil {
			return nil
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		// Sorted first, so the permutation alone decides the order.
		sort.Strings(keys)
		out := make(map[string]string, len(m))
		for _, i := range perm(len(keys)) {
			out[keys[i]] = m[keys[i]]
		}
		return out
	}
	out := &reconcile.Observed{Project: o.Project, Images: cp(o.Images)}
	if o.Containers != nil {
		out.Containers = make([]reconcile.Container, 0, len(o.Containers))
		for _, i := range perm(len(o.Containers)) {
			c := o.Containers[i]
			c.Labels, c.HashFields = cp(c.Labels), cp(c.HashFields)
			if c.Exit != nil {
				e := *c.Exit
				c.Exit = &e
			}
			out.Containers = append(out.Containers, c)
		}
	}
	if o.Networks != nil {
		out.Networks = make([]reconcile.Network, 0, len(o.Networks))
		for _, i := range perm(len(o.Networks)) {
			n := o.Networks[i]
			n.Labels = cp(n.Labels)
			out.Networks = append(out.Networks, n)
		}
	}
	if o.Volumes != nil {
		out.Volumes = make([]reconcile.Volume, 0, len(o.Volumes))
		for _, i := range perm(len(o.Volumes)) {
			v := o.Volumes[i]
			v.Labels = cp(v.Labels)
			out.Volumes = append(out.Volumes, v)
		}
	}
	return out
}

// ShuffleOptions is opt with Services in an order drawn from seed and
// Scale rebuilt: neither order may matter to Compute.
func ShuffleOptions(opt reconcile.Options, seed uint64) reconcile.Options {
	r := rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d))
	if opt.Services != nil {
		s := append([]string(nil), opt.Services...)
		r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		opt.Services = s
	}
	if opt.Scale != nil {
		keys := make([]string, 0, len(opt.Scale))
		for k := range opt.Scale {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		sc := make(map[string]int, len(keys))
		for _, k := range keys {
			sc[k] = opt.Scale[k]
		}
		opt.Scale = sc
	}
	return opt
}

// lineDiff names the first line where want and got differ.
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
			return fmt.Sprintf("line %d: want %q, got %q", i+1, a, b)
		}
	}
	return "no difference"
}
