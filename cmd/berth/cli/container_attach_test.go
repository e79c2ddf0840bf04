package cli

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"berth.dev/berth/runtime/linux"
)

func TestDetachKeys(t *testing.T) {
	keys, err := parseDetachKeys("ctrl-p,ctrl-q")
	if err != nil || !bytes.Equal(keys, []byte{16, 17}) {
		t.Fatalf("%v %v", keys, err)
	}
	for _, bad := range []string{"ctrl-", "ctrl-pp", "shift-a"} {
		if _, err := parseDetachKeys(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	cases := []struct {
		in, want string
		detached bool
	}{
		{"hello", "hello", false},
		{"ab\x10\x11rest", "ab", true},
		{"a\x10b", "a\x10b", false},    // a partial sequence passes on
		{"\x10\x10\x11", "\x10", true}, // a repeated first key restarts the match
		{"x\x10", "x", false},          // held back at EOF
	}
	for _, c := range cases {
		// One byte at a time, the hardest case for holding back.
		got, err := io.ReadAll(&detachReader{r: iotest.OneByteReader(bytes.NewReader([]byte(c.in))), keys: keys})
		if errors.Is(err, linux.ErrDetached) != c.detached || string(got) != c.want {
			t.Errorf("%q: got %q, %v", c.in, got, err)
		}
		got, err = io.ReadAll(&detachReader{r: bytes.NewReader([]byte(c.in)), keys: keys})
		if errors.Is(err, linux.ErrDetached) != c.detached || string(got) != c.want {
			t.Errorf("%q whole: got %q, %v", c.in, got, err)
		}
	}
}
