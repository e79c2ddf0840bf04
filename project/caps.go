package project

import (
	"fmt"
	"strings"
)

// capabilityNames are the Linux capabilities (without the CAP_ prefix) up
// to CAP_CHECKPOINT_RESTORE (40), the last one kernel 6.x defines.
var capabilityNames = map[string]bool{
	"CHOWN": true, "DAC_OVERRIDE": true, "DAC_READ_SEARCH": true, "FOWNER": true, "FSETID": true,
	"KILL": true, "SETGID": true, "SETUID": true, "SETPCAP": true, "LINUX_IMMUTABLE": true,
	"NET_BIND_SERVICE": true, "NET_BROADCAST": true, "NET_ADMIN": true, "NET_RAW": true,
	"IPC_LOCK": true, "IPC_OWNER": true, "SYS_MODULE": true, "SYS_RAWIO": true, "SYS_CHROOT": true,
	"SYS_PTRACE": true, "SYS_PACCT": true, "SYS_ADMIN": true, "SYS_BOOT": true, "SYS_NICE": true,
	"SYS_RESOURCE": true, "SYS_TIME": true, "SYS_TTY_CONFIG": true, "MKNOD": true, "LEASE": true,
	"AUDIT_WRITE": true, "AUDIT_CONTROL": true, "SETFCAP": true, "MAC_OVERRIDE": true,
	"MAC_ADMIN": true, "SYSLOG": true, "WAKE_ALARM": true, "BLOCK_SUSPEND": true, "AUDIT_READ": true,
	"PERFMON": true, "BPF": true, "CHECKPOINT_RESTORE": true,
}

// CanonicalCapability returns the CAP_-less upper-case name of a
// capability as written in cap_add/cap_drop ("net_admin", "CAP_NET_ADMIN"
// and "NET_ADMIN" are one), "ALL" for all, or an error for unknown names.
func CanonicalCapability(s string) (string, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "CAP_")
	if n == "ALL" || capabilityNames[n] {
		return n, nil
	}
	return "", fmt.Errorf("unknown capability %q", s)
}

// checkCapabilities rejects unknown names in cap_add and cap_drop.
func checkCapabilities(m *Model) error {
	for _, name := range sortedServiceNames(m) {
		s := m.Project.Services[name]
		for field, list := range map[string][]string{"cap_add": s.CapAdd, "cap_drop": s.CapDrop} {
			for i, c := range list {
				if _, err := CanonicalCapability(c); err != nil {
					f := fmt.Sprintf("services.%s.%s", name, field)
					e := m.errorAt(fmt.Sprintf("%s[%d]", f, i), "write a name such as NET_ADMIN or SYS_TIME (see capabilities(7)), or ALL", "%v", err)
					e.Field = f
					return e
				}
			}
		}
	}
	return nil
}
