package project

import (
	"cmp"
	"path"
	"slices"
	"strconv"
	"strings"
)

// LinkPort is one exposed port, or port range, of a link target: End > Port
// for a range such as 8000-8010/tcp; End == 0 or End == Port for a single
// port. Proto is "tcp" or "udp" (case-insensitive, "" meaning tcp).
type LinkPort struct {
	Port, End uint16
	Proto     string
}

// LinkEnv returns the environment variables Docker's legacy links (docker
// run --link, fig and compose links: [db:database]) give the linking
// container, as "NAME=value" strings sorted by name.
//
// alias is the link's alias ("database"); when empty the target name is the
// alias, as with a link without ":alias". linker is the linking container's
// name ("proj_web_1", a leading "/" optional), target the target
// container's name, ip its IPv4 address, ports its exposed ports and env its
// environment ("K=V" entries).
//
// The variable prefix is the alias upper-cased with every character other
// than an ASCII letter, digit or underscore turned into '_' (my-db → MY_DB;
// Docker itself only maps '-', leaving names like MY.DB_PORT no shell can
// read). With prefix DATABASE and ip 10.89.0.3 the variables are:
//
//	DATABASE_NAME=/proj_web_1/database
//	DATABASE_PORT=tcp://10.89.0.3:5432                 the lowest port
//	DATABASE_PORT_5432_TCP=tcp://10.89.0.3:5432        for every port
//	DATABASE_PORT_5432_TCP_ADDR=10.89.0.3
//	DATABASE_PORT_5432_TCP_PORT=5432
//	DATABASE_PORT_5432_TCP_PROTO=tcp
//	DATABASE_PORT_8000_TCP_START=tcp://10.89.0.3:8000  for every run of
//	DATABASE_PORT_8000_TCP_PORT_START=8000             consecutive ports,
//	DATABASE_PORT_8000_TCP_END=tcp://10.89.0.3:8002    named by its first
//	DATABASE_PORT_8000_TCP_PORT_END=8002
//	DATABASE_ENV_POSTGRES_DB=app                       for the target's env
//
// Ports are ordered by number, tcp before udp at the same number (then
// other protocols by name), and DATABASE_PORT is the first of that order,
// as in Docker. Like Docker, which keeps exposed ports one by one, LinkEnv
// treats a range and the same ports listed singly alike: the _START/_END
// variables describe every run of two or more consecutive ports of one
// protocol. (Docker's run detection ignores the protocol when tcp and udp
// ports interleave; LinkEnv finds runs per protocol.) A Port of 0 is
// skipped and an End below Port means the single port Port.
//
// The target's HOME, HOSTNAME and PATH are not copied (Docker skips HOME
// and PATH, and HOSTNAME is set by the runtime rather than the image);
// entries without '=' are skipped and a repeated variable keeps its last
// value. With no ports only the _NAME and _ENV_ variables are returned. An
// IPv6 address is written in brackets in the URLs.
func LinkEnv(alias, linker, target, ip string, ports []LinkPort, env []string) []string {
	if alias == "" {
		alias = strings.TrimPrefix(target, "/")
	}
	prefix := linkEnvPrefix(alias)
	vars := map[string]string{
		prefix + "_NAME": path.Join("/", linker, alias),
	}

	host := ip
	if strings.Contains(ip, ":") {
		host = "[" + ip + "]"
	}
	url := func(p linkPort) string { return p.proto + "://" + host + ":" + strconv.Itoa(p.num) }
	name := func(p linkPort) string {
		return prefix + "_PORT_" + strconv.Itoa(p.num) + "_" + strings.ToUpper(p.proto)
	}

	list := expandLinkPorts(ports)
	if len(list) > 0 {
		vars[prefix+"_PORT"] = url(list[0])
	}
	for _, p := range list {
		n := name(p)
		vars[n] = url(p)
		vars[n+"_ADDR"] = ip
		vars[n+"_PORT"] = strconv.Itoa(p.num)
		vars[n+"_PROTO"] = p.proto
	}
	for _, run := range linkPortRuns(list) {
		first, last := run[0], run[len(run)-1]
		n := name(first)
		vars[n+"_START"] = url(first)
		vars[n+"_PORT_START"] = strconv.Itoa(first.num)
		vars[n+"_END"] = url(last)
		vars[n+"_PORT_END"] = strconv.Itoa(last.num)
	}

	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || k == "HOME" || k == "HOSTNAME" || k == "PATH" {
			continue
		}
		vars[prefix+"_ENV_"+k] = v
	}

	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]string, len(names))
	for i, k := range names {
		out[i] = k + "=" + vars[k]
	}
	return out
}

// linkEnvPrefix upper-cases alias and turns everything but ASCII letters,
// digits and '_' into '_'.
func linkEnvPrefix(alias string) string {
	var b strings.Builder
	for _, r := range alias {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// linkPort is one port of one protocol.
type linkPort struct {
	num   int
	proto string
}

func linkProtoRank(proto string) int {
	switch proto {
	case "tcp":
		return 0
	case "udp":
		return 1
	}
	return 2
}

// expandLinkPorts lists every port of ports once, by number, then tcp, udp
// and other protocols by name.
func expandLinkPorts(ports []LinkPort) []linkPort {
	seen := map[linkPort]bool{}
	var out []linkPort
	for _, lp := range ports {
		if lp.Port == 0 {
			continue
		}
		proto := strings.ToLower(strings.TrimSpace(lp.Proto))
		if proto == "" {
			proto = "tcp"
		}
		end := int(lp.End)
		if end < int(lp.Port) {
			end = int(lp.Port)
		}
		for n := int(lp.Port); n <= end; n++ {
			p := linkPort{n, proto}
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b linkPort) int {
		return cmp.Or(cmp.Compare(a.num, b.num),
			cmp.Compare(linkProtoRank(a.proto), linkProtoRank(b.proto)),
			strings.Compare(a.proto, b.proto))
	})
	return out
}

// linkPortRuns returns the runs of two or more consecutive port numbers of
// the same protocol in sorted.
func linkPortRuns(sorted []linkPort) [][]linkPort {
	byProto := map[string][]linkPort{}
	var protos []string
	for _, p := range sorted {
		if _, ok := byProto[p.proto]; !ok {
			protos = append(protos, p.proto)
		}
		byProto[p.proto] = append(byProto[p.proto], p)
	}
	var runs [][]linkPort
	for _, proto := range protos {
		ps := byProto[proto]
		for i := 0; i < len(ps); {
			j := i + 1
			for j < len(ps) && ps[j].num == ps[j-1].num+1 {
				j++
			}
			if j-i > 1 {
				runs = append(runs, ps[i:j])
			}
			i = j
		}
	}
	return runs
}
