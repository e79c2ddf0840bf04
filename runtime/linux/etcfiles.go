package linux

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"strings"

	"berth.dev/berth/runtime"
)

const hostsHeader = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"

// hostsFile is the container's /etc/hosts: localhost, extra_hosts, link
// aliases, then the container's own addresses under its hostname (as
// Docker writes it).
func hostsFile(s runtime.ContainerSpec, nw runtime.Networking) string {
	var b strings.Builder
	b.WriteString(hostsHeader)
	gw := ""
	if len(nw.Endpoints) > 0 {
		gw = nw.Endpoints[0].Gateway
	}
	for _, h := range s.ExtraHosts {
		name, ip, ok := SplitExtraHost(h)
		if !ok {
			continue
		}
		if ip == "host-gateway" {
			if gw == "" {
				continue
			}
			ip = gw
		}
		b.WriteString(ip + "\t" + name + "\n")
	}
	for _, h := range nw.Hosts {
		b.WriteString(h.IP + "\t" + strings.Join(h.Names, " ") + "\n")
	}
	host := s.OCI.Hostname
	if host == "" {
		return b.String()
	}
	names := host
	if s.OCI.Domainname != "" {
		names = host + "." + s.OCI.Domainname + " " + host
	}
	own := false
	for _, ep := range nw.Endpoints {
		for _, ip := range []string{ep.IPv4, ep.IPv6} {
			if ip != "" {
				b.WriteString(ip + "\t" + names + "\n")
				own = true
			}
		}
	}
	if !own {
		b.WriteString("127.0.1.1\t" + names + "\n")
	}
	return b.String()
}

// SplitExtraHost splits "name:ip" or "name=ip" (IPv6 may be bracketed).
func SplitExtraHost(h string) (name, ip string, ok bool) {
	if n, v, found := strings.Cut(h, "="); found {
		name, ip = n, v
	} else if n, v, found := strings.Cut(h, ":"); found {
		name, ip = n, v
	} else {
		return "", "", false
	}
	ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
	if name == "" || ip == "" || (ip != "host-gateway" && net.ParseIP(ip) == nil) {
		return "", "", false
	}
	return name, ip, true
}

// hostResolv is the host's resolv.conf: nameservers, search, options.
func hostResolv() (servers, search, options []string) {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil, nil, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			servers = append(servers, f[1])
		case "search", "domain":
			search = f[1:]
		case "options":
			options = append(options, f[1:]...)
		}
	}
	return servers, search, options
}

func isLoopback(ip string) bool {
	a := net.ParseIP(ip)
	return a != nil && a.IsLoopback()
}

// resolvConfFor is the container's resolv.conf. On a bridge network the
// embedded DNS answers (it forwards what it does not know); otherwise the
// dns: servers or the host's, without loopback ones, which mean nothing in
// another network namespace (Docker filters them the same way).
func resolvConfFor(s runtime.ContainerSpec, nw runtime.Networking) string {
	hs, hsearch, hopts := hostResolv()
	search, opts := hsearch, hopts
	if len(s.DNSSearch) > 0 {
		search = s.DNSSearch
	}
	if len(s.DNSOptions) > 0 {
		opts = s.DNSOptions
	}
	var b strings.Builder
	if len(nw.Endpoints) > 0 && ownNetNS(s) {
		b.WriteString("nameserver " + EmbeddedDNS + "\n")
		if !hasOpt(opts, "ndots") {
			opts = append([]string{"ndots:0"}, opts...)
		}
	} else {
		servers := s.DNS
		if len(servers) == 0 {
			for _, n := range hs {
				if s.NetNS == "host" || !isLoopback(n) {
					servers = append(servers, n)
				}
			}
		}
		for _, n := range servers {
			b.WriteString("nameserver " + n + "\n")
		}
	}
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	if len(opts) > 0 {
		b.WriteString("options " + strings.Join(opts, " ") + "\n")
	}
	return b.String()
}

func hasOpt(opts []string, name string) bool {
	for _, o := range opts {
		if o == name || strings.HasPrefix(o, name+":") {
			return true
		}
	}
	return false
}

// upstreams is where the embedded DNS forwards: dns: or the host's
// resolvers (loopback ones included: the shim asks from the host's
// network namespace).
func upstreams(dns []string) []string {
	servers := dns
	if len(servers) == 0 {
		servers, _, _ = hostResolv()
	}
	var out []string
	for _, s := range servers {
		if ip := net.ParseIP(s); ip != nil {
			out = append(out, net.JoinHostPort(ip.String(), "53"))
		}
	}
	return out
}
