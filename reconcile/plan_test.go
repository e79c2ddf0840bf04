package reconcile

import (
	"strings"
	"testing"
)

// The design's sample plan renders as ARCHITECTURE.md §3 shows it.
func TestPlanStringMatchesDesignSample(t *testing.T) {
	p := &Plan{Actions: []*Action{
		{ID: 1, Kind: CreateNetwork, Resource: "network:default", Cause: "missing"},
		{ID: 2, Kind: CreateVolume, Resource: "volume:pgdata", Cause: "missing"},
		{ID: 3, Kind: CreateContainer, Resource: "container:db-1", Cause: "missing", Deps: []Edge{{1, Done}, {2, Done}}},
		{ID: 4, Kind: StartContainer, Resource: "container:db-1", Deps: []Edge{{3, Done}}},
		{ID: 5, Kind: RecreateContainer, Resource: "container:web-1", Cause: "config hash changed: image", Deps: []Edge{{1, Done}, {4, Healthy}}},
	}}
	want := strings.Join([]string{
		"#1 create   network:default missing",
		"#2 create   volume:pgdata   missing",
		"#3 create   container:db-1  missing                    <- #1 #2",
		"#4 start    container:db-1                             <- #3",
		"#5 recreate container:web-1 config hash changed: image <- #1 #4(healthy)",
	}, "\n") + "\n"
	if got := p.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if (&Plan{}).String() != "(nothing to do)\n" {
		t.Error("empty plan text")
	}
}

func TestPlanValidate(t *testing.T) {
	forward := &Plan{Actions: []*Action{
		{ID: 1, Kind: StartContainer, Resource: "container:a-1", Deps: []Edge{{2, Done}}},
		{ID: 2, Kind: CreateContainer, Resource: "container:a-1"},
	}}
	if err := forward.Validate(); err == nil || !strings.Contains(err.Error(), "waits for #2") {
		t.Fatalf("forward edge: %v", err)
	}
	gap := &Plan{Actions: []*Action{{ID: 2, Kind: CreateNetwork}}}
	if err := gap.Validate(); err == nil {
		t.Fatal("ID gap accepted")
	}
}
