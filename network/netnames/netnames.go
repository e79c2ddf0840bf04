// Package netnames derives the kernel-visible names of a state root's
// networks: bridges br-<tag>…, host veths bth<tag>…, the nftables table
// berth_<tag>. It imports nothing of berth's, so the leak checker of the
// tests can name a root's leftovers without the manager.
package netnames

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
)

// Tag is 5 hex digits of the sha256 of the root's clean absolute path: two
// roots never share names (but 1 in a million), and a root's leftovers are
// found by prefix.
func Tag(root string) string {
	p := filepath.Clean(root)
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	sum := sha256.Sum256([]byte(p))
	return hex.EncodeToString(sum[:])[:5]
}

// Table is the nftables table (family inet) of a state root.
func Table(root string) string { return "berth_" + Tag(root) }

// BridgePrefix starts every bridge berth names for root.
func BridgePrefix(root string) string { return "br-" + Tag(root) }

// VethPrefix starts every host-side veth of root.
func VethPrefix(root string) string { return "bth" + Tag(root) }
