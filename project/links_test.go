package project

import (
	"slices"
	"strings"
	"testing"
)

func TestLinkEnv(t *testing.T) {
	const ip = "10.89.0.3"
	for _, tc := range []struct {
		name                  string
		alias, linker, target string
		ip                    string
		ports                 []LinkPort
		env                   []string
		want                  []string
	}{
		{
			name: "postgres", alias: "database", linker: "/web_1", target: "db_1", ip: ip,
			ports: []LinkPort{{Port: 5432, Proto: "tcp"}},
			env:   []string{"POSTGRES_DB=app", "PATH=/usr/bin", "HOME=/root"},
			want: []string{
				"DATABASE_ENV_POSTGRES_DB=app",
				"DATABASE_NAME=/web_1/database",
				"DATABASE_PORT=tcp://10.89.0.3:5432",
				"DATABASE_PORT_5432_TCP=tcp://10.89.0.3:5432",
				"DATABASE_PORT_5432_TCP_ADDR=10.89.0.3",
				"DATABASE_PORT_5432_TCP_PORT=5432",
				"DATABASE_PORT_5432_TCP_PROTO=tcp",
			},
		},
		{
			name: "range", alias: "web", linker: "proj_proxy_1", target: "proj_web_1", ip: ip,
			ports: []LinkPort{{Port: 8000, End: 8002, Proto: "tcp"}},
			want: []string{
				"WEB_NAME=/proj_proxy_1/web",
				"WEB_PORT=tcp://10.89.0.3:8000",
				"WEB_PORT_8000_TCP=tcp://10.89.0.3:8000",
				"WEB_PORT_8000_TCP_ADDR=10.89.0.3",
				"WEB_PORT_8000_TCP_END=tcp://10.89.0.3:8002",
				"WEB_PORT_8000_TCP_PORT=8000",
				"WEB_PORT_8000_TCP_PORT_END=8002",
				"WEB_PORT_8000_TCP_PORT_START=8000",
				"WEB_PORT_8000_TCP_PROTO=tcp",
				"WEB_PORT_8000_TCP_START=tcp://10.89.0.3:8000",
				"WEB_PORT_8001_TCP=tcp://10.89.0.3:8001",
				"WEB_PORT_8001_TCP_ADDR=10.89.0.3",
				"WEB_PORT_8001_TCP_PORT=8001",
				"WEB_PORT_8001_TCP_PROTO=tcp",
				"WEB_PORT_8002_TCP=tcp://10.89.0.3:8002",
				"WEB_PORT_8002_TCP_ADDR=10.89.0.3",
				"WEB_PORT_8002_TCP_PORT=8002",
				"WEB_PORT_8002_TCP_PROTO=tcp",
			},
		},
		{
			name: "dashes, no ports", alias: "my-db", linker: "proj_web_1", target: "proj_db_1", ip: ip,
			env: []string{"HOSTNAME=abc", "A=1", "B=x=y", "EMPTY=", "NOEQUALS", "=odd", "A=2"},
			want: []string{
				"MY_DB_ENV_A=2",
				"MY_DB_ENV_B=x=y",
				"MY_DB_ENV_EMPTY=",
				"MY_DB_NAME=/proj_web_1/my-db",
			},
		},
		{
			name: "no ports, no env", alias: "cache.v2", linker: "w", target: "c", ip: ip,
			want: []string{"CACHE_V2_NAME=/w/cache.v2"},
		},
		{
			name: "no alias: the target's name", linker: "/proj_web_1", target: "/proj_db_1", ip: ip,
			want: []string{"PROJ_DB_1_NAME=/proj_web_1/proj_db_1"},
		},
		{
			// tcp before udp at the same number; the lowest number is the
			// default whatever its protocol; an unordered input is sorted.
			name: "tcp and udp", alias: "dns", linker: "c", target: "d", ip: ip,
			ports: []LinkPort{{Port: 53, Proto: "udp"}, {Port: 80}, {Port: 53, Proto: "TCP"}},
			want: []string{
				"DNS_NAME=/c/dns",
				"DNS_PORT=tcp://10.89.0.3:53",
				"DNS_PORT_53_TCP=tcp://10.89.0.3:53",
				"DNS_PORT_53_TCP_ADDR=10.89.0.3",
				"DNS_PORT_53_TCP_PORT=53",
				"DNS_PORT_53_TCP_PROTO=tcp",
				"DNS_PORT_53_UDP=udp://10.89.0.3:53",
				"DNS_PORT_53_UDP_ADDR=10.89.0.3",
				"DNS_PORT_53_UDP_PORT=53",
				"DNS_PORT_53_UDP_PROTO=udp",
				"DNS_PORT_80_TCP=tcp://10.89.0.3:80",
				"DNS_PORT_80_TCP_ADDR=10.89.0.3",
				"DNS_PORT_80_TCP_PORT=80",
				"DNS_PORT_80_TCP_PROTO=tcp",
			},
		},
		{
			name: "udp only default", alias: "s", linker: "c", target: "d", ip: ip,
			ports: []LinkPort{{Port: 9000, Proto: "tcp"}, {Port: 514, End: 514, Proto: "udp"}},
			want: []string{
				"S_NAME=/c/s",
				"S_PORT=udp://10.89.0.3:514",
				"S_PORT_514_UDP=udp://10.89.0.3:514",
				"S_PORT_514_UDP_ADDR=10.89.0.3",
				"S_PORT_514_UDP_PORT=514",
				"S_PORT_514_UDP_PROTO=udp",
				"S_PORT_9000_TCP=tcp://10.89.0.3:9000",
				"S_PORT_9000_TCP_ADDR=10.89.0.3",
				"S_PORT_9000_TCP_PORT=9000",
				"S_PORT_9000_TCP_PROTO=tcp",
			},
		},
		{
			name: "ipv6 address", alias: "db", linker: "w", target: "d", ip: "fd00:b17e::3",
			ports: []LinkPort{{Port: 5432}},
			want: []string{
				"DB_NAME=/w/db",
				"DB_PORT=tcp://[fd00:b17e::3]:5432",
				"DB_PORT_5432_TCP=tcp://[fd00:b17e::3]:5432",
				"DB_PORT_5432_TCP_ADDR=fd00:b17e::3",
				"DB_PORT_5432_TCP_PORT=5432",
				"DB_PORT_5432_TCP_PROTO=tcp",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LinkEnv(tc.alias, tc.linker, tc.target, tc.ip, tc.ports, tc.env)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

// Ports listed one by one form the same runs as a range (Docker keeps
// exposed ports singly, so it cannot tell them apart); runs are per
// protocol, and a gap ends a run.
func TestLinkEnvRuns(t *testing.T) {
	env := func(ports ...LinkPort) map[string]string {
		m := map[string]string{}
		for _, kv := range LinkEnv("x", "c", "t", "10.0.0.2", ports, nil) {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return m
	}
	ranged := env(LinkPort{Port: 8000, End: 8002, Proto: "tcp"})
	singly := env(LinkPort{Port: 8002}, LinkPort{Port: 8000}, LinkPort{Port: 8001, End: 8001})
	if len(ranged) != len(singly) {
		t.Fatalf("range %v\nsingly %v", ranged, singly)
	}
	for k, v := range ranged {
		if singly[k] != v {
			t.Errorf("%s: range %q, singly %q", k, v, singly[k])
		}
	}

	m := env(LinkPort{Port: 7000, End: 7001, Proto: "udp"}, LinkPort{Port: 7001, End: 7003},
		LinkPort{Port: 7005}, LinkPort{Port: 7002, End: 7000, Proto: "udp"}) // End < Port: just 7002
	for k, want := range map[string]string{
		"X_PORT":                     "udp://10.0.0.2:7000", // the lowest number, whatever its protocol
		"X_PORT_7000_UDP_START":      "udp://10.0.0.2:7000",
		"X_PORT_7000_UDP_PORT_END":   "7002",
		"X_PORT_7001_TCP_PORT_START": "7001",
		"X_PORT_7001_TCP_END":        "tcp://10.0.0.2:7003",
		"X_PORT_7005_TCP":            "tcp://10.0.0.2:7005",
	} {
		if m[k] != want {
			t.Errorf("%s = %q, want %q", k, m[k], want)
		}
	}
	for _, k := range []string{"X_PORT_7005_TCP_START", "X_PORT_7003_UDP", "X_PORT_7000_TCP"} {
		if v, ok := m[k]; ok {
			t.Errorf("unexpected %s=%s", k, v)
		}
	}
	if n := len(LinkEnv("x", "c", "t", "10.0.0.2", []LinkPort{{Port: 65534, End: 65535}, {Port: 0}}, nil)); n != 1+1+8+4 {
		t.Errorf("range to 65535: %d variables", n)
	}
}
