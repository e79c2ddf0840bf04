package buildctx

import (
	"errors"
	"path"
	"sort"
	"strings"

	"berth.dev/berth/internal/errdefs"
	"golang.org/x/sys/unix"
)

// errMissing: the path (or a parent) does not exist in the context.
var errMissing = errors.New("missing")

// maxLinks bounds the symlinks followed resolving one source (Linux's
// limit).
const maxLinks = 40

// hasMeta reports whether a source uses wildcards.
func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[`) }

// resolveSource expands one COPY/ADD source into the context paths it names.
func (c *Context) resolveSource(rootfd int, arg string) ([]source, error) {
	rel := cleanRel(arg)
	var elems []string
	if rel != "" {
		elems = strings.Split(rel, "/")
	}
	type cand struct{ shown, real string }
	cands := []cand{{}}
	for _, el := range elems {
		var next []cand
		for _, cd := range cands {
			if !hasMeta(el) {
				next = append(next, cand{path.Join(cd.shown, el), path.Join(cd.real, el)})
				continue
			}
			dir, st, err := c.resolve(rootfd, cd.real, arg)
			if err == errMissing || err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				continue
			}
			if err != nil {
				return nil, err
			}
			names, err := listNames(rootfd, dir)
			if err != nil {
				return nil, c.readErr(dir, err)
			}
			for _, n := range names {
				ok, err := path.Match(el, n)
				if err != nil {
					return nil, errdefs.Invalidf("COPY/ADD source %q: bad wildcard %q: %v; fix the pattern (* ? [...] match within one path element)", arg, el, err)
				}
				if ok {
					next = append(next, cand{path.Join(cd.shown, n), path.Join(dir, n)})
				}
			}
		}
		cands = next
	}
	var out []source
	wild := hasMeta(rel)
	for _, cd := range cands {
		real, st, err := c.resolve(rootfd, cd.real, arg)
		if err == errMissing {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !c.visible(rootfd, real, &st) || cd.shown != real && c.Ignored(cd.shown) {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG, unix.S_IFDIR:
		default:
			if wild {
				continue
			}
			return nil, errdefs.Invalidf("COPY/ADD source %s: %s is a device, socket or fifo, which cannot be copied; name a file or directory", arg, c.abs(real))
		}
		out = append(out, source{arg: arg, shown: cd.shown, real: real, st: st})
	}
	if len(out) == 0 {
		return nil, errdefs.NotFoundf("file not found in build context or excluded by .dockerignore: %s (paths are relative to the context %s; check the name and the .dockerignore)", arg, c.dir)
	}
	return out, nil
}

// resolve follows the symlinks of the context path rel, its last element
// included, keeping to the context: a link that climbs out of it, or an
// absolute one that is not under the context directory, is an
// errdefs.ErrInvalid naming arg. It returns the path without symlinks and
// its lstat, or errMissing.
func (c *Context) resolve(rootfd int, rel, arg string) (string, unix.Stat_t, error) {
	var todo, done []string
	if rel != "" {
		todo = strings.Split(rel, "/")
	}
	links := 0
	lastLink, lastTarget := "", ""
	escape := func() error {
		return errdefs.Invalidf("COPY/ADD source %s: symlink %s points to %s, outside the build context %s; copy what it points to into the context, or replace the link with the file itself", arg, c.abs(lastLink), lastTarget, c.dir)
	}
	for len(todo) > 0 {
		el := todo[0]
		todo = todo[1:]
		switch el {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", unix.Stat_t{}, escape()
			}
			done = done[:len(done)-1]
			continue
		}
		cur := strings.Join(append(done[:len(done):len(done)], el), "/")
		st, err := lstatAt(rootfd, cur)
		if err != nil {
			if isNotExist(err) {
				return "", st, errMissing
			}
			return "", st, c.readErr(cur, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if links++; links > maxLinks {
				return "", st, errdefs.Invalidf("COPY/ADD source %s: more than %d symlinks to follow at %s; break the symlink loop", arg, maxLinks, c.abs(cur))
			}
			target, err := readlinkAt(rootfd, cur)
			if err != nil {
				return "", st, c.readErr(cur, err)
			}
			lastLink, lastTarget = cur, target
			if path.IsAbs(target) {
				r, ok := c.inside(target)
				if !ok {
					return "", st, escape()
				}
				done = nil
				todo = append(splitRel(r), todo...)
			} else {
				todo = append(splitRel(target), todo...)
			}
			continue
		case unix.S_IFDIR:
		default:
			if len(todo) > 0 {
				return "", st, errMissing // a file used as a directory
			}
		}
		done = append(done, el)
	}
	final := strings.Join(done, "/")
	st, err := lstatAt(rootfd, final)
	if err != nil {
		if isNotExist(err) {
			return "", st, errMissing
		}
		return "", st, c.readErr(final, err)
	}
	return final, st, nil
}

func splitRel(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// inside maps an absolute symlink target under the context directory to its
// context path.
func (c *Context) inside(target string) (string, bool) {
	target = path.Clean(target)
	for _, base := range []string{c.real, c.dir} {
		if target == base {
			return "", true
		}
		if base == "/" {
			return target[1:], true
		}
		if strings.HasPrefix(target, base+"/") {
			return target[len(base)+1:], true
		}
	}
	return "", false
}

// abs is a context path as a host path, for messages.
func (c *Context) abs(rel string) string {
	if rel == "" {
		return c.dir
	}
	return path.Join(c.dir, rel)
}

// visible reports whether the context path rel (lstat st) is part of the
// context after .dockerignore: not excluded, or an excluded directory with
// something re-included below it.
func (c *Context) visible(rootfd int, rel string, st *unix.Stat_t) bool {
	ex, ms := c.ign.match(rel, nil)
	if !ex {
		return true
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false
	}
	return c.includesBelow(rootfd, rel, ms)
}

// includesBelow reports whether anything below the excluded directory rel
// is re-included by an exception.
func (c *Context) includesBelow(rootfd int, rel string, ms matchState) bool {
	if !c.ign.exceptionBelow(rel) {
		return false
	}
	names, err := listNames(rootfd, rel)
	if err != nil {
		return false
	}
	for _, n := range names {
		crel := path.Join(rel, n)
		ex, cms := c.ign.match(crel, ms)
		if !ex {
			return true
		}
		st, err := lstatAt(rootfd, crel)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && c.includesBelow(rootfd, crel, cms) {
			return true
		}
	}
	return false
}

// listNames lists the directory rel, sorted.
func listNames(rootfd int, rel string) ([]string, error) {
	f, err := openDirAt(rootfd, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}
