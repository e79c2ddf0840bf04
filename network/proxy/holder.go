package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Holder finds the process holding a socket bound to addr ("tcp" or "udp"),
// for an "already in use" error: the socket's inode from /proc/net/{tcp,
// tcp6,udp,udp6} (of this process's network namespace), then the process with
// a /proc/PID/fd link "socket:[inode]". An unspecified address, in addr or
// in the table, matches any address on the port; an exact match, and for
// TCP a listening socket, is preferred. Best effort: ok is false when the
// socket or its process cannot be seen (another user's fds need root).
func Holder(proto string, addr netip.AddrPort) (pid int, comm string, ok bool) {
	// The tables are read a page at a time, each read resuming by
	// position, so sockets made or closed meanwhile (by anyone) can shift
	// ours past a page boundary unseen: look again before giving up.
	var inode uint64
	var found bool
	for range 3 {
		if inode, found = socketInode(proto, addr); found {
			break
		}
	}
	if !found {
		return 0, "", false
	}
	pid, found = inodeOwner(inode)
	if !found {
		return 0, "", false
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return pid, strings.TrimSpace(string(b)), true
}

// socketInode scans the kernel's socket tables for the best match of addr.
func socketInode(proto string, addr netip.AddrPort) (uint64, bool) {
	var tables []string
	switch {
	case strings.HasPrefix(proto, "tcp"):
		proto, tables = "tcp", []string{"/proc/net/tcp", "/proc/net/tcp6"}
	case strings.HasPrefix(proto, "udp"):
		proto, tables = "udp", []string{"/proc/net/udp", "/proc/net/udp6"}
	default:
		return 0, false
	}
	want := addr.Addr().Unmap().WithZone("")
	var best uint64
	bestScore := 0
	for _, table := range tables {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
			f := strings.Fields(sc.Text())
			if len(f) < 10 {
				continue
			}
			local, ok := parseProcAddr(f[1])
			if !ok || local.Port() != addr.Port() {
				continue
			}
			inode, err := strconv.ParseUint(f[9], 10, 64)
			if err != nil || inode == 0 { // 0: TIME_WAIT and other orphans
				continue
			}
			score := 0
			switch got := local.Addr().Unmap(); {
			case got == want:
				score = 4
			case got.IsUnspecified() || want.IsUnspecified():
				score = 2
			default:
				continue
			}
			if proto == "tcp" {
				switch f[3] {
				case "0A": // LISTEN
					score++
				case "07": // CLOSE: bound, not listening
				default:
					continue // a connection: it shares the port but does not hold it
				}
			}
			if score > bestScore {
				best, bestScore = inode, score
			}
		}
	}
	return best, bestScore > 0
}

// parseProcAddr decodes /proc/net/* "0100007F:1F90": the address as 32-bit
// words printed in host byte order, then the port in hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	hexIP, hexPort, ok := strings.Cut(s, ":")
	if !ok || len(hexIP) != 8 && len(hexIP) != 32 {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	var b [16]byte
	for i := 0; i < len(hexIP)/8; i++ {
		w, err := strconv.ParseUint(hexIP[i*8:i*8+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, false
		}
		binary.NativeEndian.PutUint32(b[i*4:], uint32(w))
	}
	var ip netip.Addr
	if len(hexIP) == 8 {
		ip = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		ip = netip.AddrFrom16(b)
	}
	return netip.AddrPortFrom(ip, uint16(port)), true
}

// inodeOwner finds the lowest pid with an fd on socket inode.
func inodeOwner(inode uint64) (int, bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	target := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	for _, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			if link, err := os.Readlink(dir + fd.Name()); err == nil && link == target {
				return pid, true
			}
		}
	}
	return 0, false
}
