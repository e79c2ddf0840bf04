package logfile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writerLine is the line Writer writes for one entry.
func writerLine(stream, text string, t time.Time) []byte {
	return appendEntry(nil, stream, []byte(text), t)
}

// pad gives fastCopy the look-ahead it needs past a line (the next line
// of a log, or the end of a buffer).
func pad(line []byte) []byte {
	return append(append([]byte(nil), line...), strings.Repeat("{", tailLen+8)...)
}

// TestFastCopyTakesWriterForm: the lines Writer writes for plain ASCII
// text, with or without the newline, on stdout or stderr, with times of
// every length RFC3339Nano gives, go the fast way, with the text, stream
// and time the general decoder gives; the others are refused (and the
// decoder, tested against encoding/json, has them).
func TestFastCopyTakesWriterForm(t *testing.T) {
	base := time.Date(2026, 12, 1, 19, 18, 17, 0, time.UTC)
	times := []time.Time{base} // no fraction: 20 characters
	for _, ns := range []int{100000000, 120000000, 123000000, 123400000, 123450000, 123456000, 123456700, 123456780, 123456789} {
		times = append(times, base.Add(time.Duration(ns)))
	}
	fast := []string{"", "\n", "x", "x\n", "521661\n", "1000000\n", "a line of some usual length, 0123456789\n",
		"exactly 7", "exactly8", "exactly 8\n", "0123456789abcdef\n", "partial line, no newline",
		strings.Repeat("0123456789", 1600) + "\n", "'single' quotes, {braces} [] ~`!@#$%^*()_+=-|?;:,./\n"}
	slow := []string{"tab\there\n", `quote " here` + "\n", `back\slash` + "\n", "<html>\n", "a & b\n",
		"caf\u00e9\n", "\U0001F600\n", "bad \xff utf-8\n", "\r\n", "\x00\n", "two\nnewlines\n", "\u2028\n"}
	for _, stream := range []string{"stdout", "stderr", "other"} {
		for _, tm := range times {
			for _, text := range append(fast, slow...) {
				line := writerLine(stream, text, tm)
				var d decoder
				var ref Record
				if !d.decode(line[:len(line)-1], &ref) {
					t.Fatalf("decoder refuses the writer's %q", line)
				}
				b := pad(line)
				dst := make([]byte, jobRoom)
				n, w, ts, stderr := fastCopy(b, dst)
				want := stream != "other" && !slicesContains(slow, text)
				if (n > 0) != want {
					t.Fatalf("fastCopy(%q) = %d, want it taken: %v", line, n, want)
				}
				if n == 0 {
					continue
				}
				if n != len(line) || string(dst[:w]) != string(ref.Log) || string(b[ts:n-3]) != string(ref.rawTime) ||
					stderr != (ref.Stream == "stderr") {
					t.Fatalf("fastCopy(%q) = %d %q %q %v; decoder %q %q %q", line, n, dst[:w], b[ts:n-3], stderr,
						ref.Log, ref.rawTime, ref.Stream)
				}
			}
		}
	}
}

func slicesContains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestFastCopyRefusesNearMisses: one byte off the writer's form anywhere
// in the frame (key order, stream, quotes, the time's end, the newline)
// and the line goes the slow way; so does a line cut before its end, or
// whose text does not fit.
func TestFastCopyRefusesNearMisses(t *testing.T) {
	good := `{"log":"abc\n","stream":"stdout","time":"2026-12-01T19:18:17.270685712Z"}` + "\n"
	for _, line := range []string{
		`{"log" :"abc\n","stream":"stdout","time":"2026-12-01T19:18:17.270685712Z"}` + "\n",
		`{"stream":"stdout","log":"abc\n","time":"2026-12-01T19:18:17.270685712Z"}` + "\n",
		`{"log":"abc\n","stream":"stdoux","time":"2026-12-01T19:18:17.270685712Z"}` + "\n",
		`{"log":"abc\n","stream":"stdout","Time":"2026-12-01T19:18:17.270685712Z"}` + "\n",
		`{"log":"abc\n","stream":"stdout","time":"2026-12-01T19:18:17.270685712Z" }` + "\n",
		`{"log":"abc\n","stream":"stdout","time":"2026-12-01T19:18:17.270685712Z"}` + "\r\n",
		`{"log":"abc\n","stream":"stdout","time":"2026-12-01T19:18:17.270685712Z"},` + "\n",
		`{"log":"abc\n","stream":"stdout","time":"2026-12-01T19:18:17.270685712Z\"}` + "\n",
		`{"log":"abc\n","stream":"stdout","time":"2026-12-01T19:18:17.270685712Z` + "\x7f" + `"}` + "\n",
		`{"log":"abc\n","stream":"stdout","time":"2026-12-01T19:18:17.2706857129999Z"}` + "\n", // 34 characters
		`{"log":"abc\n","stream":"stdout","time":"2026-12-01"}` + "\n",                         // 10
		`{"log":"abc\n","stream":"stdout","time":""}` + "\n",
		`{"log":"abc\t","stream":"stdout","time":"2026-12-01T19:18:17.270685712Z"}` + "\n",
		`{"log":"abc\","stream":"stdout","time":"2026-12-01T19:18:17.270685712Z"}` + "\n",
		`{"log":"abc` + "\n" + `","stream":"stdout","time":"2026-12-01T19:18:17.270685712Z"}` + "\n",
	} {
		if n, _, _, _ := fastCopy(pad([]byte(line)), make([]byte, jobRoom)); n != 0 {
			t.Errorf("fastCopy took %q", line)
		}
	}
	b := pad([]byte(good))
	if n, _, _, _ := fastCopy(b, make([]byte, jobRoom)); n != len(good) {
		t.Fatalf("fastCopy(%q) = %d", good, n)
	}
	for k := 0; k < len(b); k++ {
		if n, _, _, _ := fastCopy(b[:k], make([]byte, jobRoom)); n != 0 && n > k {
			t.Fatalf("fastCopy of %d bytes took %d", k, n)
		}
	}
	if n, _, _, _ := fastCopy(b, make([]byte, 7)); n != 0 {
		t.Fatal("fastCopy wrote a text into a buffer too short for it")
	}
	long := writerLine("stdout", strings.Repeat("x", maxEntry), time.Now())
	if n, _, _, _ := fastCopy(pad(long), make([]byte, 2*maxEntry)); n != 0 {
		t.Fatalf("fastCopy took a line of %d bytes, longer than any entry", len(long))
	}
}

// randomEntries is a log of n random entries: mostly the usual short
// lines, some with escapes, non-ASCII, invalid UTF-8, partial lines, both
// streams and an unusual one, and lines that are not entries at all.
func randomEntries(rng *rand.Rand, n int) []byte {
	t := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var b []byte
	pieces := []string{"abc", " ", "0123456789", "\t", "\"", "\\", "<", "&", "\u00e9", "\U0001F600", "\xff", "\x00", "\u2028", "/"}
	for i := range n {
		t = t.Add(time.Duration(rng.IntN(2000000)))
		stream := "stdout"
		switch rng.IntN(10) {
		case 0, 1:
			stream = "stderr"
		case 2:
			if rng.IntN(10) == 0 {
				stream = "debug"
			}
		}
		var text string
		switch rng.IntN(8) {
		case 0:
			var sb strings.Builder
			for range rng.IntN(12) {
				sb.WriteString(pieces[rng.IntN(len(pieces))])
			}
			text = sb.String()
		case 1:
			text = strings.Repeat("x", rng.IntN(300))
		default:
			text = fmt.Sprint(i)
		}
		if rng.IntN(20) != 0 {
			text += "\n"
		}
		switch rng.IntN(50) {
		case 0:
			b = append(b, "not an entry\n"...)
		case 1:
			b = append(b, fmt.Sprintf(`{"stream":%q,"log":%q,"time":%q}`+"\n", stream, text, t.Format(time.RFC3339Nano))...)
		}
		b = appendEntry(b, stream, []byte(text), t)
	}
	return b
}

// TestJobDecodeLikeDecode: decoding a piece of log the fast way gives,
// in order and by stream, the texts the general decoder gives line by
// line.
func TestJobDecodeLikeDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		data := randomEntries(rng, 2000)
		var want []byte
		var wantRuns []run
		var d decoder
		var rec Record
		for _, line := range bytes.SplitAfter(data, []byte("\n")) {
			if len(line) == 0 || !d.decode(line[:len(line)-1], &rec) {
				continue
			}
			stderr := rec.Stream == "stderr"
			if k := len(wantRuns); k == 0 || wantRuns[k-1].stderr != stderr {
				wantRuns = append(wantRuns, run{stderr: stderr})
			}
			want = append(want, rec.Log...)
			wantRuns[len(wantRuns)-1].end = len(want)
		}
		j := &job{data: data}
		if round%2 == 1 {
			j.text = make([]byte, 0, 10) // grows
		}
		j.decode()
		if j.fault || !bytes.Equal(j.text, want) || fmt.Sprint(j.runs) != fmt.Sprint(wantRuns) {
			t.Fatalf("round %d: job decoded %d bytes in runs %v, want %d in %v", round, len(j.text), j.runs, len(want), wantRuns)
		}
	}
}

// TestPrintFastLikeRead: Print's fast paths (mapped and not) write, per
// stream, what Read's records give, for a log of random entries.
func TestPrintFastLikeRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	path := filepath.Join(t.TempDir(), "json.log")
	if err := os.WriteFile(path, randomEntries(rng, 150000), 0o600); err != nil { // > aheadMin: mapped
		t.Fatal(err)
	}
	var wantOut, wantErr bytes.Buffer
	err := Read(context.Background(), path, ReadOptions{Tail: All}, func(r *Record) error {
		if r.Stream == "stderr" {
			wantErr.Write(r.Log)
		} else {
			wantOut.Write(r.Log)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tail := range []int{All, 40000} { // tail: a stretch too short to map
		var out, errs bytes.Buffer
		if err := Print(context.Background(), path, ReadOptions{Tail: tail}, &Printer{Stdout: &out, Stderr: &errs}); err != nil {
			t.Fatal(err)
		}
		if tail == All {
			if !bytes.Equal(out.Bytes(), wantOut.Bytes()) || !bytes.Equal(errs.Bytes(), wantErr.Bytes()) {
				t.Fatalf("Print gave %d+%d bytes, Read %d+%d", out.Len(), errs.Len(), wantOut.Len(), wantErr.Len())
			}
			continue
		}
		if !bytes.HasSuffix(wantOut.Bytes(), out.Bytes()) || !bytes.HasSuffix(wantErr.Bytes(), errs.Bytes()) || out.Len() == 0 {
			t.Fatalf("Print --tail %d gave %d+%d bytes, not an end of Read's", tail, out.Len(), errs.Len())
		}
	}
}

// TestPutLineSwitchesStreams: the Printer's fast path writes out one
// stream's text before the other's, in order, through a small buffer.
func TestPutLineSwitchesStreams(t *testing.T) {
	var out, errs, both bytes.Buffer
	p := &Printer{Stdout: io.MultiWriter(&out, &both), Stderr: io.MultiWriter(&errs, &both)}
	var want, wantOut, wantErr strings.Builder
	tm := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	var log []byte
	for i := range 5000 {
		stream, text := "stdout", fmt.Sprintf("out %d\n", i)
		if i%3 == 0 || i%7 == 0 {
			stream, text = "stderr", fmt.Sprintf("err %d\n", i)
			wantErr.WriteString(text)
		} else {
			wantOut.WriteString(text)
		}
		want.WriteString(text)
		log = appendEntry(log, stream, []byte(text), tm)
	}
	b := pad(log)
	for r := 0; r < len(log); {
		n, err := p.putLine(b[r:])
		if err != nil || n == 0 {
			t.Fatalf("putLine at %d: %d %v", r, n, err)
		}
		r += n
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if out.String() != wantOut.String() || errs.String() != wantErr.String() || both.String() != want.String() {
		t.Fatal("putLine mixed up the streams or their order")
	}
}

// FuzzFastCopy: whatever fastCopy takes is an entry to encoding/json with
// the same text, stream and time, ends at the first newline, and leaves
// its input alone. Seeds: testdata/fuzz/FuzzFastCopy.
func FuzzFastCopy(f *testing.F) {
	tm := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for _, text := range []string{"a\n", "", "0123456789abcdef\n", "é\n", "\"\\\n", "<>&\n"} {
		f.Add(writerLine("stdout", text, tm), uint8(0))
		f.Add(writerLine("stderr", text, tm.Truncate(time.Second)), uint8(7))
	}
	f.Add([]byte(`{"log":"x\n","stream":"stdout","time":"2026-01-02T03:04:05.1Z"}`+"\n"), uint8(3))
	f.Add([]byte(`{"log":"x\n","stream":"stdout","time":"#####################"}`+"\n"), uint8(1))
	f.Add([]byte(`{"log":"x\n","stream":"stdout","time":"2026-01-02T03:04:05.1Z\"}`+"\n"), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, room uint8) {
		orig := append([]byte(nil), b...)
		dst := make([]byte, int(room)*64)
		n, w, ts, stderr := fastCopy(b, dst)
		if !bytes.Equal(b, orig) {
			t.Fatalf("fastCopy changed its input: %q -> %q", orig, b)
		}
		if n == 0 {
			return
		}
		if i := bytes.IndexByte(b, '\n'); i != n-1 || n-1 > maxEntry {
			t.Fatalf("fastCopy took %d bytes, the first newline is at %d", n, i)
		}
		var ref struct {
			Log    string `json:"log"`
			Stream string `json:"stream"`
			Time   string `json:"time"`
		}
		if err := json.Unmarshal(b[:n-1], &ref); err != nil || ref.Time == "" {
			t.Fatalf("fastCopy took %q, encoding/json: %v, time %q", b[:n], err, ref.Time)
		}
		if string(dst[:w]) != ref.Log || string(b[ts:n-3]) != ref.Time || stderr != (ref.Stream == "stderr") ||
			!(ref.Stream == "stdout" || ref.Stream == "stderr") {
			t.Fatalf("fastCopy %q %q stderr %v, encoding/json %q %q %q", dst[:w], b[ts:n-3], stderr, ref.Log, ref.Time, ref.Stream)
		}
	})
}

// BenchmarkDecode: the fast decoder on a piece of log of short entries,
// as the mapped read runs it, against copying the same bytes (the least
// any reader does); reports ratio-vs-copy, never an absolute time.
func BenchmarkDecode(b *testing.B) {
	var data []byte
	tm := time.Date(2026, 12, 1, 19, 18, 17, 0, time.UTC)
	for i := 0; len(data) < pieceSize; i++ {
		data = appendEntry(data, "stdout", fmt.Appendf(nil, "%d\n", 500000+i), tm.Add(time.Duration(i)*1234567))
	}
	dst := make([]byte, len(data))
	j := &job{}
	var decodeTime, copyTime time.Duration
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		start := time.Now()
		j.data = data
		j.decode()
		decodeTime += time.Since(start)
		start = time.Now()
		copy(dst, data)
		copyTime += time.Since(start)
	}
	b.ReportMetric(float64(decodeTime)/float64(copyTime), "ratio-vs-copy")
}
