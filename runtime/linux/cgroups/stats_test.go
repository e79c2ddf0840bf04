package cgroups

import "testing"

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]uint64{
		"max\n":                 0,
		"67108864\n":            64 << 20,
		"9223372036854771712\n": 0, // v1 unlimited, 4 KiB pages
		"9223372036854710272\n": 0, // v1 unlimited, 64 KiB pages
		"100":                   100,
		" 4611686018427387903 ": 4611686018427387903,
	} {
		if got, err := parseLimit(in); err != nil || got != want {
			t.Errorf("parseLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "lots"} {
		if _, err := parseLimit(in); err == nil {
			t.Errorf("parseLimit(%q) accepted", in)
		}
	}
}

func TestParseKeyed(t *testing.T) {
	const memStat = "cache 10514432\nrss 5648384\ntotal_cache 20000\ntotal_inactive_file 300\nweird line here\nbad x\n\n"
	kv := parseKeyed(memStat)
	if kv["cache"] != 10514432 || kv["rss"] != 5648384 || kv["total_cache"] != 20000 || len(kv) != 4 {
		t.Errorf("parseKeyed = %v", kv)
	}
	if got := firstKey(kv, "total_cache", "cache"); got != 20000 {
		t.Errorf("firstKey prefers the first present key: %d", got)
	}
	if got := firstKey(kv, "nope", "cache"); got != 10514432 {
		t.Errorf("firstKey falls back: %d", got)
	}
	if got := firstKey(kv, "nope"); got != 0 {
		t.Errorf("firstKey of nothing: %d", got)
	}
}

func TestParseBlkioV1(t *testing.T) {
	const content = `8:0 Read 4096
8:0 Write 8192
8:0 Sync 12288
8:0 Async 0
8:0 Discard 0
8:0 Total 12288
254:0 Read 1000
254:0 Write 24
254:0 Total 1024
Total 13312
`
	r, w, err := parseBlkioV1(content)
	if err != nil || r != 5096 || w != 8216 {
		t.Errorf("parseBlkioV1 = %d, %d, %v; want 5096, 8216", r, w, err)
	}
	if r, w, err := parseBlkioV1("Total 0\n"); err != nil || r != 0 || w != 0 {
		t.Errorf("empty: %d %d %v", r, w, err)
	}
	if _, _, err := parseBlkioV1("8:0 Read x\n"); err == nil {
		t.Error("a bad number was accepted")
	}
}

func TestParseIOStatV2(t *testing.T) {
	const content = "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n"
	r, w, err := parseIOStatV2(content)
	if err != nil || r != 4097 || w != 8194 {
		t.Errorf("parseIOStatV2 = %d, %d, %v; want 4097, 8194", r, w, err)
	}
	if r, w, err := parseIOStatV2(""); err != nil || r != 0 || w != 0 {
		t.Errorf("empty: %d %d %v", r, w, err)
	}
	if _, _, err := parseIOStatV2("254:0 rbytes=-1\n"); err == nil {
		t.Error("a bad number was accepted")
	}
}

func TestParseFreezerState(t *testing.T) {
	for _, c := range []struct {
		content        string
		frozen, thawed bool
	}{
		{"FROZEN\n", true, false},
		{"THAWED\n", false, true},
		{"FREEZING\n", false, false},
		{"populated 1\nfrozen 1\n", true, false},
		{"populated 1\nfrozen 0\n", false, true},
	} {
		frozenLine, thawedLine := "FROZEN", "THAWED"
		if c.content[0] == 'p' {
			frozenLine, thawedLine = "frozen 1", "frozen 0"
		}
		f, th := parseFreezerState(c.content, frozenLine, thawedLine)
		if f != c.frozen || th != c.thawed {
			t.Errorf("%q: frozen %v thawed %v; want %v %v", c.content, f, th, c.frozen, c.thawed)
		}
	}
}

func TestParseProcIO(t *testing.T) {
	const content = "rchar: 8389424\nwchar: 8388680\nsyscr: 11\nsyscw: 12\nread_bytes: 4198400\nwrite_bytes: 4202496\ncancelled_write_bytes: 4096\n"
	if r, w := parseProcIO(content); r != 4198400 || w != 4198400 {
		t.Errorf("parseProcIO = %d, %d; want 4198400, 4198400", r, w)
	}
	if r, w := parseProcIO("write_bytes: 10\ncancelled_write_bytes: 20\n"); r != 0 || w != 0 {
		t.Errorf("more cancelled than written: %d, %d; want 0, 0", r, w)
	}
}
