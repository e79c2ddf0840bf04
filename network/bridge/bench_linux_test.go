package bridge

import (
	"context"
	"fmt"
	"testing"

	"berth.dev/berth/network"
)

// BenchmarkAttachDetach is one endpoint's plumbing and unplumbing, with
// a namespace pin (the runtime's share) as the baseline in the same run.
func BenchmarkAttachDetach(b *testing.B) {
	ctx := context.Background()
	m, root := newManagerB(b)
	if _, err := m.Create(ctx, network.Spec{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	defer m.Remove(ctx, "bench")
	for i := 0; b.Loop(); i++ {
		p := pinB(b, root, fmt.Sprint("c", i))
		if _, err := m.Attach(ctx, "bench", network.EndpointSpec{Name: fmt.Sprint("c", i), NetNS: p, DefaultRoute: true}); err != nil {
			b.Fatal(err)
		}
		if err := m.Detach(ctx, "bench", fmt.Sprint("c", i)); err != nil {
			b.Fatal(err)
		}
	}
}
