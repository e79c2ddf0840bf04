package initproc

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"berth.dev/berth/internal/errdefs"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

app:x:1000:1000:App:/home/app:/bin/sh
nohome:x:1001:1001::
short:x:1002
badid:x:abc:1:::
+nis::::::
web:x:33:33:www:/var/www:/bin/false
big:x:4294967295:1:::
`

const testGroup = `root:x:0:
daemon:x:1:app
app:x:1000:
wheel:x:10:root,app, web
audio:x:29:app
web:x:33:
broken:x
docker:x:999:app,app
dup:x:1000:app
`

func TestResolveUser(t *testing.T) {
	for _, tc := range []struct {
		spec   string
		extra  []string
		noFile bool // nil readers
		want   User
	}{
		{spec: "", want: User{UID: 0, GID: 0, Groups: []uint32{10}, Home: "/root"}},
		{spec: "root", want: User{UID: 0, GID: 0, Groups: []uint32{10}, Home: "/root"}},
		{spec: "0", want: User{UID: 0, GID: 0, Groups: []uint32{10}, Home: "/root"}},
		{spec: "app", want: User{UID: 1000, GID: 1000, Groups: []uint32{1, 10, 29, 999}, Home: "/home/app"}},
		{spec: "1000", want: User{UID: 1000, GID: 1000, Groups: []uint32{1, 10, 29, 999}, Home: "/home/app"}},
		{spec: "app:web", want: User{UID: 1000, GID: 33, Home: "/home/app"}},
		{spec: "app:4242", want: User{UID: 1000, GID: 4242, Home: "/home/app"}},
		{spec: "1000:33", want: User{UID: 1000, GID: 33, Home: "/home/app"}},
		{spec: "33:audio", want: User{UID: 33, GID: 29, Home: "/var/www"}},
		{spec: "web", want: User{UID: 33, GID: 33, Groups: []uint32{10}, Home: "/var/www"}},
		{spec: "nohome", want: User{UID: 1001, GID: 1001, Home: "/"}},
		{spec: "5000", want: User{UID: 5000, GID: 0, Home: "/"}},
		{spec: "5000:5000", want: User{UID: 5000, GID: 5000, Home: "/"}},
		{spec: "5000:wheel", want: User{UID: 5000, GID: 10, Home: "/"}},
		{spec: "app:", want: User{UID: 1000, GID: 1000, Groups: []uint32{1, 10, 29, 999}, Home: "/home/app"}},
		{spec: ":33", want: User{UID: 0, GID: 33, Home: "/root"}},
		{spec: "2147483647", want: User{UID: 2147483647, Home: "/"}},
		// group_add: names and numbers, no repeats, never the primary gid.
		{spec: "app", extra: []string{"web", "4000", "wheel", "1000", "4000"}, want: User{UID: 1000, GID: 1000, Groups: []uint32{1, 10, 29, 999, 33, 4000}, Home: "/home/app"}},
		{spec: "app:web", extra: []string{"audio"}, want: User{UID: 1000, GID: 33, Groups: []uint32{29}, Home: "/home/app"}},
		{spec: "5000", extra: []string{"33"}, want: User{UID: 5000, Groups: []uint32{33}, Home: "/"}},
		// No /etc/passwd or /etc/group in the image.
		{spec: "", noFile: true, want: User{Home: "/root"}},
		{spec: "1000", noFile: true, want: User{UID: 1000, Home: "/"}},
		{spec: "1000:1000", noFile: true, want: User{UID: 1000, GID: 1000, Home: "/"}},
		{spec: "1000", extra: []string{"27"}, noFile: true, want: User{UID: 1000, Groups: []uint32{27}, Home: "/"}},
	} {
		var pw, gr io.Reader
		if !tc.noFile {
			pw, gr = strings.NewReader(testPasswd), strings.NewReader(testGroup)
		}
		got, err := ResolveUser(tc.spec, pw, gr, tc.extra)
		if err != nil {
			t.Errorf("%q %v: %v", tc.spec, tc.extra, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q %v (no files %v):\n got %+v\nwant %+v", tc.spec, tc.extra, tc.noFile, got, tc.want)
		}
	}
}

func TestResolveUserErrors(t *testing.T) {
	for _, tc := range []struct {
		spec   string
		extra  []string
		noFile bool
		want   string
	}{
		{spec: "nobody", want: "unable to find user nobody: no matching entries in passwd file"},
		{spec: "nobody", noFile: true, want: "unable to find user nobody: no matching entries in passwd file"},
		{spec: "short", want: "unable to find user short"}, // malformed line skipped
		{spec: "badid", want: "unable to find user badid"}, // malformed line skipped
		{spec: "+nis", want: "unable to find user +nis"},   // NIS compat entries are not users
		{spec: "big", want: "unable to find user big"},     // uid out of range: skipped
		{spec: "-1", want: "unable to find user -1"},       // not a number, so a name
		{spec: "app:nogroup", want: "unable to find group nogroup: no matching entries in group file"},
		{spec: "app:broken", want: "unable to find group broken"},
		{spec: "1000:staff", noFile: true, want: "unable to find group staff"},
		{spec: "app", extra: []string{"video"}, want: "group_add: unable to find group video"},
		{spec: "4294967295", want: "must be a number from 0 to 2147483647"},
		{spec: "2147483648", want: "must be a number from 0 to 2147483647"},
		{spec: "1:99999999999", want: "must be a number from 0 to 2147483647"},
		{spec: "app", extra: []string{"4294967295"}, want: "must be a number from 0 to 2147483647"},
	} {
		var pw, gr io.Reader
		if !tc.noFile {
			pw, gr = strings.NewReader(testPasswd), strings.NewReader(testGroup)
		}
		_, err := ResolveUser(tc.spec, pw, gr, tc.extra)
		if err == nil || !errdefs.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %v: %v, want ErrInvalid with %q", tc.spec, tc.extra, err, tc.want)
		}
	}
	// Docker's exact message.
	_, err := ResolveUser("ghost", strings.NewReader(testPasswd), nil, nil)
	if err == nil || err.Error() != "unable to find user ghost: no matching entries in passwd file" {
		t.Errorf("message %q", err)
	}
	// A read error is reported, not taken for a missing file.
	boom := errors.New("boom")
	if _, err := ResolveUser("app", iotest.ErrReader(boom), nil, nil); !errors.Is(err, boom) || !strings.Contains(err.Error(), "/etc/passwd") {
		t.Errorf("read error: %v", err)
	}
}

// Only 4 MiB of a file is read, and the line cut there is dropped.
func TestResolveUserBounded(t *testing.T) {
	filler := strings.Repeat("x", 100) + "\n"
	var b strings.Builder
	for b.Len() < maxUserFileBytes-1000 {
		b.WriteString(filler)
	}
	// The first user line straddles the 4 MiB mark: cut, so dropped.
	b.WriteString(strings.Repeat("y", maxUserFileBytes-b.Len()-10))
	b.WriteString("\nlate:x:7:7::/late:/bin/sh\n")
	r := &countingReader{r: strings.NewReader(b.String() + strings.Repeat("z", 8<<20))}
	if _, err := ResolveUser("late", r, nil, nil); err == nil || !strings.Contains(err.Error(), "unable to find user late") {
		t.Fatalf("a user past 4 MiB was found: %v", err)
	}
	if r.n > maxUserFileBytes+1 {
		t.Fatalf("read %d bytes, want at most %d", r.n, maxUserFileBytes+1)
	}

	// Entries past the limit are not parsed.
	b.Reset()
	for i := 0; i < maxUserEntries; i++ {
		b.WriteString("u:x:1:1::/:\n")
	}
	b.WriteString("late:x:7:7::/late:/bin/sh\n")
	if _, err := ResolveUser("late", strings.NewReader(b.String()), nil, nil); err == nil {
		t.Fatal("an entry past the entry limit was parsed")
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzResolveUser: no input makes ResolveUser panic, and a result never
// lists the primary gid or a gid twice among the supplementary groups.
func FuzzResolveUser(f *testing.F) {
	f.Add("", testPasswd, testGroup, "")
	f.Add("app:web", testPasswd, testGroup, "audio,4000")
	f.Add("1000:1000", "", "", "27")
	f.Add("a:b:c", "a:x:1:2:::\n", "b:x:3:a,a\n", "b,b")
	f.Add(":", "::::::\n:::\n", ":::\n", ",")
	f.Fuzz(func(t *testing.T, spec, passwd, group, extra string) {
		var extras []string
		if extra != "" {
			extras = strings.Split(extra, ",")
		}
		u, err := ResolveUser(spec, strings.NewReader(passwd), strings.NewReader(group), extras)
		if err != nil {
			if !errdefs.IsInvalid(err) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if u.UID > maxID || u.GID > maxID {
			t.Fatalf("id out of range: %+v", u)
		}
		seen := map[uint32]bool{u.GID: true}
		for _, g := range u.Groups {
			if seen[g] {
				t.Fatalf("gid %d repeated or primary in %+v", g, u)
			}
			seen[g] = true
		}
		if u.Home == "" {
			t.Fatalf("empty home: %+v", u)
		}
	})
}
