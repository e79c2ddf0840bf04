// Package archtest enforces ARCHITECTURE.md §2's import rules and that the
// binary is static. It has no code used elsewhere; see its tests.
package archtest

import (
	"fmt"
	"sort"
	"strings"
)

// Module is berth's module path.
const Module = "berth.dev/berth"

// rule forbids some imports for packages matching From.
type rule struct {
	name string
	// from reports whether the rule applies to an importing package
	// (paths relative to the module, "" for the root).
	from func(pkg string) bool
	// forbidden reports whether pkg may not import imp (imp relative to the
	// module when ours, or the full path otherwise, with ours=false).
	forbidden func(pkg, imp string, ours bool) bool
}

func under(prefix string) func(string) bool {
	return func(p string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }
}

func area(p string) string {
	for _, a := range []string{"runtime", "network", "volumes", "image"} {
		if p == a || strings.HasPrefix(p, a+"/") {
			return a
		}
	}
	return ""
}

// rules is the table of ARCHITECTURE.md §2; adding a rule is one entry.
var rules = []rule{
	{
		name:      "project/ imports nothing of ours: it is a pure library over compose-go and yaml",
		from:      under("project"),
		forbidden: func(pkg, imp string, ours bool) bool { return ours && !under("project")(imp) },
	},
	{
		name: "reconcile/ sees interface packages and pure types only",
		from: under("reconcile"),
		forbidden: func(pkg, imp string, ours bool) bool {
			if !ours {
				return false
			}
			switch imp {
			case "project", "runtime", "network", "volumes", "image", "internal/errdefs", "internal/logx", "internal/failpoint":
				return false
			}
			return !under("reconcile")(imp)
		},
	},
	{
		name: "reconcile/ never makes a syscall",
		from: under("reconcile"),
		forbidden: func(pkg, imp string, ours bool) bool {
			return !ours && (imp == "syscall" || imp == "golang.org/x/sys/unix")
		},
	},
	{
		name: "runtime/linux never imports reconcile or project",
		from: under("runtime/linux"),
		forbidden: func(pkg, imp string, ours bool) bool {
			return ours && (under("reconcile")(imp) || under("project")(imp))
		},
	},
	{
		name:      "only cmd/berth imports cmd/berth/...",
		from:      func(p string) bool { return !under("cmd/berth")(p) },
		forbidden: func(pkg, imp string, ours bool) bool { return ours && under("cmd/berth")(imp) },
	},
	{
		name: "implementations do not import each other across areas (the shim may host network/dns and network/proxy)",
		from: func(p string) bool { return area(p) != "" && strings.Contains(p, "/") },
		forbidden: func(pkg, imp string, ours bool) bool {
			if !ours {
				return false
			}
			a, b := area(pkg), area(imp)
			if b == "" || a == b || !strings.Contains(imp, "/") {
				return false // not an implementation of another area (roots are interfaces)
			}
			if under("runtime/linux/shim")(pkg) && (under("network/dns")(imp) || under("network/proxy")(imp)) {
				return false
			}
			return true
		},
	},
	{
		name: "test helpers (internal/testutil, internal/archtest) are for tests only",
		from: func(p string) bool { return !under("internal/testutil")(p) && !under("internal/archtest")(p) },
		forbidden: func(pkg, imp string, ours bool) bool {
			return ours && (under("internal/testutil")(imp) || under("internal/archtest")(imp))
		},
	},
}

// Check returns one line per violation in imports (importer → its non-test
// imports, full paths), sorted.
func Check(imports map[string][]string) []string {
	var out []string
	for pkg, imps := range imports {
		rel, ok := relative(pkg)
		if !ok {
			continue
		}
		for _, r := range rules {
			if !r.from(rel) {
				continue
			}
			for _, imp := range imps {
				irel, ours := relative(imp)
				if !ours {
					irel = imp
				}
				if r.forbidden(rel, irel, ours) {
					out = append(out, fmt.Sprintf("%s → %s: %s", pkg, imp, r.name))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func relative(p string) (string, bool) {
	if p == Module {
		return "", true
	}
	rel, ok := strings.CutPrefix(p, Module+"/")
	return rel, ok
}
