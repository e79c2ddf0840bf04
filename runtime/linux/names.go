package linux

import (
	"crypto/rand"
	"math/big"
)

// Random container names in Docker's adjective_surname style, from berth's
// own short lists.
var (
	adjectives = []string{"amber", "brave", "calm", "deft", "eager", "fond", "gentle", "happy", "keen", "lucid",
		"merry", "nimble", "proud", "quiet", "rapid", "sharp", "steady", "tidy", "vivid", "witty", "young", "zesty"}
	harbours = []string{"anchor", "beacon", "buoy", "capstan", "dock", "ferry", "galley", "harbor", "jetty", "keel",
		"lantern", "mooring", "oar", "pier", "quay", "rudder", "sail", "skiff", "tide", "wharf", "yawl"}
)

func pick(list []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	if err != nil {
		return list[0]
	}
	return list[n.Int64()]
}

// freeName returns an unused random name.
func (r *Runtime) freeName() string {
	for i := 0; ; i++ {
		name := pick(adjectives) + "_" + pick(harbours)
		if i > 10 {
			name += "_" + newID()[:4]
		}
		if _, err := r.root.LookupName(name); err != nil {
			return name
		}
	}
}

// FreeName is a generated name no container has now (Create takes it
// atomically later; a race loses with ErrConflict).
func (r *Runtime) FreeName() string { return r.freeName() }
