// Package buildctx is the build context of a Dockerfile build: a directory
// with its .dockerignore applied, and the COPY/ADD planner that turns
// instruction sources into the entries of a layer tar.
//
// Files are only ever read relative to the context directory's fd, one path
// element at a time with O_NOFOLLOW (or openat2 with RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS), so a context modified while the build runs can make
// a copy fail but never makes it read a file outside the context.
package buildctx

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"berth.dev/berth/internal/errdefs"
	"golang.org/x/sys/unix"
)

// Context is a build context directory with its .dockerignore applied.
// It is safe for concurrent use.
type Context struct {
	dir  string   // absolute, clean
	real string   // dir with symlinks resolved, for absolute link targets
	root *os.File // the directory, opened once; closed when garbage collected
	ign  *ignorer
}

// Open opens dir as a build context: reads dir/.dockerignore if present
// (moby/patternmatcher semantics: comments '#', blank lines, '!' exceptions,
// leading '/' and './' stripped, patterns cleaned as Docker's ignorefile
// reader does). A missing dir → errdefs.ErrNotFound naming it; a bad pattern
// → errdefs.ErrInvalid naming ".dockerignore" and the line.
func Open(dir string) (*Context, error) {
	return open(dir, filepath.Join(dir, ".dockerignore"), true)
}

// OpenWithIgnore is Open with the ignore file given by path instead of
// dir/.dockerignore ("" = none; Docker also honours <Dockerfile>.dockerignore
// next to the Dockerfile: the caller passes it). A named ignore file that
// does not exist is an errdefs.ErrNotFound.
func OpenWithIgnore(dir, ignoreFile string) (*Context, error) {
	return open(dir, ignoreFile, false)
}

func open(dir, ignoreFile string, optional bool) (*Context, error) {
	if dir == "" {
		return nil, errdefs.Invalidf("build context: no directory given; pass the directory that holds the files to build")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, errdefs.Invalidf("build context %s: %w", dir, err)
	}
	fd, err := openat(unix.AT_FDCWD, abs, unix.O_RDONLY|unix.O_DIRECTORY)
	switch {
	case err == unix.ENOTDIR:
		if st, serr := os.Stat(abs); serr == nil && !st.IsDir() {
			return nil, errdefs.Invalidf("build context %s is not a directory; pass the directory that holds the files to build", dir)
		}
		fallthrough
	case err != nil && isNotExist(err):
		return nil, errdefs.NotFoundf("build context %s not found: %w; check the path of the build context", dir, fs.ErrNotExist)
	case err != nil:
		return nil, errdefs.Invalidf("build context %s: cannot open it: %w; make the directory readable", dir, err)
	}
	c := &Context{dir: abs, real: abs, root: os.NewFile(uintptr(fd), abs)}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		c.real = r
	}
	if ignoreFile != "" {
		data, err := os.ReadFile(ignoreFile)
		switch {
		case err != nil && optional && isNotExist(err):
		case err != nil && isNotExist(err):
			c.root.Close()
			return nil, errdefs.NotFoundf("ignore file %s not found: %w; create it or do not name it", ignoreFile, fs.ErrNotExist)
		case err != nil:
			c.root.Close()
			return nil, errdefs.Invalidf("cannot read ignore file %s: %w; make it a readable file or remove it", ignoreFile, err)
		default:
			if c.ign, err = parseIgnore(ignoreFile, bytes.NewReader(data)); err != nil {
				c.root.Close()
				return nil, err
			}
		}
	}
	return c, nil
}

// Dir is the context directory, absolute and clean.
func (c *Context) Dir() string { return c.dir }

// Ignored reports whether the context-relative slash path rel is excluded
// by .dockerignore. "/x", "./x" and "x" are the same path; the context root
// itself is never excluded.
func (c *Context) Ignored(rel string) bool {
	ex, _ := c.ign.match(cleanRel(rel), nil)
	return ex
}

// cleanRel makes a COPY source or a path argument context-relative: clean,
// no leading slash, ".." clamped at the root as Docker does, "" the root.
func cleanRel(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// withRoot runs fn with the context root's fd, keeping the fd open (and
// the Context reachable) while fn runs.
func (c *Context) withRoot(fn func(rootfd int) error) error {
	rc, err := c.root.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
