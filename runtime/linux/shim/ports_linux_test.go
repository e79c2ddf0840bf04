package shim_test

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"berth.dev/berth/internal/testutil"
)

// listeners returns the host-namespace TCP/UDP sockets in LISTEN (TCP) or
// bound (UDP) state that pid holds, as "addr:port/proto".
func listeners(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), e.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	var out []string
	for _, f := range []struct{ file, proto, state string }{{"tcp", "tcp", "0A"}, {"tcp6", "tcp", "0A"}, {"udp", "udp", "07"}, {"udp6", "udp", "07"}} {
		fh, err := os.Open("/proc/net/" + f.file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan()
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != f.state || !inodes[fs[9]] {
				continue
			}
			out = append(out, procAddr(fs[1])+"/"+f.proto)
		}
		fh.Close()
	}
	return out
}

// procAddr decodes /proc/net/tcp's "0100007F:1F90".
func procAddr(s string) string {
	h, p, _ := strings.Cut(s, ":")
	port, _ := strconv.ParseUint(p, 16, 16)
	b, _ := hex.DecodeString(h)
	for i := 0; i+4 <= len(b); i += 4 { // each 32-bit word is host-endian
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)).String()
}

// TestPortsBindWhatUserWrote (SECURITY.md): a port published on
// 127.0.0.1 is the only listener the shim has, on that address; --expose
// publishes nothing; run without -p has no host listener at all (the
// embedded DNS listens inside the container's namespace only).
func TestPortsBindWhatUserWrote(t *testing.T) {
	r := testutil.NewRoot(t)
	t.Cleanup(func() { r.Run("container", "rm", "-f", "pub", "exp", "none") })
	r.Must("container", "run", "-d", "--name", "pub", "-p", "127.0.0.1:18181:80", "-p", "127.0.0.1:18182:53/udp", "busybox", "sleep", "300")
	r.Must("container", "run", "-d", "--name", "exp", "--expose", "80", "busybox", "sleep", "300")
	r.Must("container", "run", "-d", "--name", "none", "busybox", "sleep", "300")
	ids := map[string]string{}
	for _, n := range []string{"pub", "exp", "none"} {
		ids[n] = strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.Id}}", n))
	}
	sh := shims(r.Path)
	got := listeners(t, sh[ids["pub"]])
	if strings.Join(got, " ") != "127.0.0.1:18181/tcp 127.0.0.1:18182/udp" {
		t.Errorf("pub's shim listens on %v, want exactly 127.0.0.1:18181/tcp and 127.0.0.1:18182/udp", got)
	}
	for _, n := range []string{"exp", "none"} {
		if got := listeners(t, sh[ids[n]]); len(got) != 0 {
			t.Errorf("%s's shim listens on the host: %v", n, got)
		}
	}
}
