package labels

import "testing"

func TestMatch(t *testing.T) {
	have := map[string]string{"a": "1", "b": ""}
	for _, c := range []struct {
		want map[string]string
		ok   bool
	}{
		{nil, true},
		{map[string]string{"a": "1"}, true},
		{map[string]string{"a": "2"}, false},
		{map[string]string{"a": ""}, false}, // the value must be equal
		{map[string]string{"b": ""}, true},
		{map[string]string{"c": ""}, false}, // a missing key never matches
		{map[string]string{"a": "1", "c": "3"}, false},
	} {
		if got := Match(have, c.want); got != c.ok {
			t.Errorf("Match(%v, %v) = %v, want %v", have, c.want, got, c.ok)
		}
	}
}
