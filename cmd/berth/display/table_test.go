package display

import (
	"strings"
	"testing"
)

func TestTableAligns(t *testing.T) {
	tb := NewTable("NAME", "VALUE", "SOURCE")
	tb.Row("A", "ünïcode", "shell")
	tb.Row("LONGER_NAME", "x")
	var b strings.Builder
	if err := tb.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := "NAME          VALUE     SOURCE\n" +
		"A             ünïcode   shell\n" +
		"LONGER_NAME   x\n"
	if b.String() != want {
		t.Fatalf("got:\n%q\nwant:\n%q", b.String(), want)
	}
}

func TestParseProgress(t *testing.T) {
	for _, ok := range []string{"auto", "tty", "plain", "json", "quiet", "PLAIN"} {
		if _, err := ParseProgress(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if _, err := ParseProgress("fancy"); err == nil {
		t.Error("fancy accepted")
	}
}
