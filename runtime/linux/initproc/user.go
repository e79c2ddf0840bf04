package initproc

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"berth.dev/berth/internal/errdefs"
)

// User is a resolved container user.
type User struct {
	UID, GID uint32
	Groups   []uint32 // supplementary, from /etc/group membership + extra
	Home     string
}

// Bounds on what is read from an image's /etc/passwd and /etc/group: a
// hostile image must not make init read or hold without limit.
const (
	maxUserFileBytes = 4 << 20 // each file; the rest is ignored
	maxUserEntries   = 1 << 16 // entries parsed per file
	maxID            = 1<<31 - 1
)

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// ResolveUser resolves Docker's user: forms "", "name", "uid",
// "name:group", "uid:gid", "name:gid", "uid:group" against passwd and
// group file contents (readers may be nil when the image has no such
// file). Empty = root (0:0, home "/root" or from passwd). A numeric uid
// absent from passwd is fine (gid 0 unless given, home "/"). A name
// absent → errdefs.ErrInvalid: `unable to find user NAME: no matching
// entries in passwd file` (Docker's message).
//
// Supplementary groups, as Docker: when no group is given, every group in
// group listing the user's name as a member; with an explicit group, none
// from membership. Then extraGroups (group_add: names or numbers, a name
// resolved against group). The primary gid and repeats are left out.
//
// At most 4 MiB of each file and 65536 entries are read; malformed lines
// are skipped.
func ResolveUser(spec string, passwd, group io.Reader, extraGroups []string) (User, error) {
	userArg, groupArg, _ := strings.Cut(spec, ":")
	explicitGroup := groupArg != ""
	users, err := parsePasswd(passwd)
	if err != nil {
		return User{}, fmt.Errorf("user %q: read /etc/passwd: %w", spec, err)
	}
	groups, err := parseGroup(group)
	if err != nil {
		return User{}, fmt.Errorf("user %q: read /etc/group: %w", spec, err)
	}

	u := User{Home: "/"}
	name := ""
	switch {
	case userArg == "":
		u.Home = "/root"
		if e, ok := findUID(users, 0); ok {
			u.GID, u.Home, name = e.gid, homeOr(e.home), e.name
		}
	case isNumber(userArg):
		uid, err := parseID(userArg)
		if err != nil {
			return User{}, errdefs.Invalidf("user %q: uid %s: %w", spec, userArg, err)
		}
		u.UID = uid
		if e, ok := findUID(users, uid); ok {
			u.GID, u.Home, name = e.gid, homeOr(e.home), e.name
		}
	default:
		e, ok := findName(users, userArg)
		if !ok {
			return User{}, errdefs.Invalidf("unable to find user %s: no matching entries in passwd file", userArg)
		}
		u.UID, u.GID, u.Home, name = e.uid, e.gid, homeOr(e.home), e.name
	}

	if explicitGroup {
		gid, err := resolveGroup(groups, groupArg)
		if err != nil {
			return User{}, fmt.Errorf("user %q: %w", spec, err)
		}
		u.GID = gid
	}

	seen := map[uint32]bool{u.GID: true}
	add := func(g uint32) {
		if !seen[g] {
			seen[g] = true
			u.Groups = append(u.Groups, g)
		}
	}
	if !explicitGroup && name != "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == name {
					add(g.gid)
					break
				}
			}
		}
	}
	for _, eg := range extraGroups {
		gid, err := resolveGroup(groups, eg)
		if err != nil {
			return User{}, fmt.Errorf("group_add: %w", err)
		}
		add(gid)
	}
	return u, nil
}

func homeOr(h string) string {
	if h == "" {
		return "/"
	}
	return h
}

func findUID(users []passwdEntry, uid uint32) (passwdEntry, bool) {
	for _, e := range users {
		if e.uid == uid {
			return e, true
		}
	}
	return passwdEntry{}, false
}

func findName(users []passwdEntry, name string) (passwdEntry, bool) {
	for _, e := range users {
		if e.name == name {
			return e, true
		}
	}
	return passwdEntry{}, false
}

// resolveGroup turns a group name or number into a gid; a number needs
// no entry, a name does.
func resolveGroup(groups []groupEntry, arg string) (uint32, error) {
	if isNumber(arg) {
		gid, err := parseID(arg)
		if err != nil {
			return 0, errdefs.Invalidf("gid %s: %w", arg, err)
		}
		return gid, nil
	}
	for _, g := range groups {
		if g.name == arg {
			return g.gid, nil
		}
	}
	return 0, errdefs.Invalidf("unable to find group %s: no matching entries in group file", arg)
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseID parses a decimal uid or gid in 0..2147483647.
func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > maxID {
		return 0, fmt.Errorf("must be a number from 0 to %d", maxID)
	}
	return uint32(n), nil
}

// readLines reads at most maxUserFileBytes of r and returns its complete
// lines, at most maxUserEntries of them that are not blank or comments.
func readLines(r io.Reader) ([][]byte, error) {
	if r == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxUserFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxUserFileBytes {
		b = b[:maxUserFileBytes]
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[:i] // drop the cut line
		} else {
			b = nil
		}
	}
	var lines [][]byte
	for len(b) > 0 && len(lines) < maxUserEntries {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		lines = append(lines, line)
	}
	return lines, nil
}

// validName refuses empty names and NIS compat entries (+name, -name).
func validName(n string) bool {
	return n != "" && n[0] != '+' && n[0] != '-'
}

// parsePasswd parses name:password:uid:gid:gecos:home:shell lines.
func parsePasswd(r io.Reader) ([]passwdEntry, error) {
	lines, err := readLines(r)
	if err != nil {
		return nil, err
	}
	var out []passwdEntry
	for _, l := range lines {
		f := strings.Split(string(l), ":")
		if len(f) < 4 || !validName(f[0]) {
			continue
		}
		uid, err1 := parseID(f[2])
		gid, err2 := parseID(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	}
	return out, nil
}

// parseGroup parses name:password:gid:member,member lines.
func parseGroup(r io.Reader) ([]groupEntry, error) {
	lines, err := readLines(r)
	if err != nil {
		return nil, err
	}
	var out []groupEntry
	for _, l := range lines {
		f := strings.Split(string(l), ":")
		if len(f) < 3 || !validName(f[0]) {
			continue
		}
		gid, err := parseID(f[2])
		if err != nil {
			continue
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					e.members = append(e.members, m)
				}
			}
		}
		out = append(out, e)
	}
	return out, nil
}
