package dns

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	mdns "github.com/miekg/dns"

	"berth.dev/berth/network"
)

// zoneFile is one records file and the entries last read from it.
type zoneFile struct {
	path    string
	entries []network.Record
	seen    stamp  // what stat said right before the last read
	racy    bool   // seen was young: checks compare raw too (watch.go)
	raw     []byte // the bytes last read, kept while racy
}

// entry is one record as the index keeps it.
type entry struct {
	id   string
	name string       // the first valid name, for PTR answers ("" = none)
	v4   []netip.Addr // at most one each today; slices keep the format open
	v6   []netip.Addr
}

// index is the merged, immutable view of every zone.
type index struct {
	entries []entry
	names   map[string][]int32     // lower-case name without the trailing dot → entries
	addrs   map[netip.Addr][]int32 // address → entries, in zone order
}

// load reads every zone file and swaps in a new index. A file that fails
// keeps its previous entries (empty on the first load) until it changes
// again.
func (s *Server) load() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	var errs []error
	for i := range s.zones {
		z := &s.zones[i]
		st := statStamp(z.path) // before the read: a write after it is seen next time
		data, err := readRaw(z.path)
		z.seen, z.racy, z.raw = st, false, nil
		if err != nil {
			errs = append(errs, fmt.Errorf("zone %s: %w", z.path, err))
			continue
		}
		if st.young(time.Now()) {
			z.racy, z.raw = true, data
		}
		recs, err := parseZoneData(z.path, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		z.entries = recs
	}
	s.idx.Store(buildIndex(s.zones))
	return errors.Join(errs...)
}

// parseZoneData checks a zone file's size and parses it; no data (a
// missing file) is an empty zone.
func parseZoneData(path string, data []byte) ([]network.Record, error) {
	if data == nil {
		return nil, nil
	}
	if len(data) > MaxZoneSize {
		return nil, fmt.Errorf("zone %s: larger than %d bytes: %w", path, MaxZoneSize, errTooLarge)
	}
	return parseZone(path, data)
}

var errTooLarge = errors.New("zone file too large")

func parseZone(path string, data []byte) ([]network.Record, error) {
	var r network.Records
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("zone %s: %w", path, err)
	}
	if r.Version != network.RecordsVersion {
		return nil, fmt.Errorf("zone %s: records version %d, want %d", path, r.Version, network.RecordsVersion)
	}
	return r.Entries, nil
}

func buildIndex(zones []zoneFile) *index {
	idx := &index{names: map[string][]int32{}, addrs: map[netip.Addr][]int32{}}
	for _, z := range zones {
		for _, rec := range z.entries {
			e := entry{id: rec.ContainerID}
			for _, a := range []netip.Addr{rec.IPv4, rec.IPv6} {
				if !a.IsValid() {
					continue
				}
				a = a.Unmap().WithZone("")
				if a.Is4() {
					e.v4 = append(e.v4, a)
				} else {
					e.v6 = append(e.v6, a)
				}
			}
			n := int32(len(idx.entries))
			seen := map[string]bool{}
			for _, name := range rec.Names {
				key := canonical(name)
				if !validName(key) || seen[key] {
					continue
				}
				seen[key] = true
				if e.name == "" {
					e.name = key
				}
				idx.names[key] = append(idx.names[key], n)
			}
			if len(seen) == 0 {
				continue // a record without a usable name answers nothing
			}
			idx.entries = append(idx.entries, e)
			for _, a := range e.v4 {
				idx.addrs[a] = append(idx.addrs[a], n)
			}
			for _, a := range e.v6 {
				idx.addrs[a] = append(idx.addrs[a], n)
			}
		}
	}
	return idx
}

// canonical lower-cases ASCII letters and drops one trailing dot: the key
// names are compared by. DNS compares names ASCII-case-insensitively
// (RFC 4343); other bytes are left alone.
func canonical(name string) string {
	if n := len(name); n > 1 && name[n-1] == '.' && name[n-2] != '\\' {
		name = name[:n-1]
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			b := []byte(name)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return name
}

// validName reports whether a record name (canonical form) can be an owner
// name: a domain name of at most 253 characters in presentation form,
// without escapes (a query name carrying one is never a container's name).
func validName(key string) bool {
	if key == "" || key == "." || len(key) > 253 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c == '\\' || c <= ' ' || c >= 0x7f {
			return false
		}
	}
	_, ok := mdns.IsDomainName(key + ".")
	return ok
}
