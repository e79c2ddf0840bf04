package network

import "net/netip"

// RecordsVersion is the format version of a records file.
const RecordsVersion = 1

// Records is a network's DNS records file (records.json): one entry per
// attached container. network/bridge writes it atomically (temp file and
// rename) under the network lock; network/dns reads it in the shim of
// every container on that network.
type Records struct {
	Version int      `json:"version"`
	Network string   `json:"network"`
	Entries []Record `json:"entries"`
}

// Record is one endpoint: the names it answers to on this network (the
// container name, its 12-character short ID, its aliases: the compose
// service name and any network or link aliases) and its addresses.
// Names are compared case-insensitively.
type Record struct {
	ContainerID string     `json:"container_id"`
	Names       []string   `json:"names"`
	IPv4        netip.Addr `json:"ipv4,omitzero"`
	IPv6        netip.Addr `json:"ipv6,omitzero"`
}
