package dns

import (
	"net/netip"
	"strings"
)

// ParseResolvConf reads a resolv.conf (the host's, for the upstreams) the
// way glibc does: "nameserver ADDR" lines in order (IPv4 or IPv6, with an
// optional %zone; port 53; duplicates dropped; malformed ones skipped),
// the last "search" or "domain" line, and the words of every "options"
// line. Text from '#' or ';' to the end of a line is a comment. No
// nameserver line yields no servers: the caller picks the fallback.
func ParseResolvConf(data []byte) (servers []netip.AddrPort, search []string, options []string) {
	seen := map[netip.AddrPort]bool{}
	for line := range strings.Lines(string(data)) {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 {
				continue
			}
			a, err := netip.ParseAddr(f[1])
			if err != nil {
				continue
			}
			ap := netip.AddrPortFrom(a.Unmap(), 53)
			if !seen[ap] {
				seen[ap] = true
				servers = append(servers, ap)
			}
		case "search":
			search = append([]string(nil), f[1:]...)
		case "domain":
			search = nil
			if len(f) > 1 {
				search = []string{f[1]}
			}
		case "options":
			options = append(options, f[1:]...)
		}
	}
	return servers, search, options
}
