// Package labels holds the one rule every label filter (runtime, network
// and volume List) follows, so the fakes and the real managers agree.
package labels

// Match says whether have carries every key of want with the same value;
// a key missing from have never matches, not even want's "". (A filter on
// a key's presence alone, Docker's --filter label=KEY, is the CLI's.)
func Match(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}
