package logfile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// rawChain decodes every file of the log at path with encoding/json,
// oldest first: the oracle the reader is checked against.
func rawChain(t *testing.T, path string) (files [][]Entry, sizes []int64) {
	t.Helper()
	for _, name := range chainNames(path) {
		b, err := os.ReadFile(name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var es []Entry
		for _, line := range bytes.SplitAfter(b, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var e Entry
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatalf("%s: %q is not an entry: %v", name, line, err)
			}
			es = append(es, e)
		}
		files = append(files, es)
		sizes = append(sizes, int64(len(b)))
	}
	return files, sizes
}

// numbered writes lines "first..last\n" through Copy.
func numbered(first, last int) io.Reader {
	var b strings.Builder
	for i := first; i <= last; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return strings.NewReader(b.String())
}

// seq checks that es are the lines first, first+1, … and returns the
// number after the last.
func seq(t *testing.T, es []string, first int) int {
	t.Helper()
	for i, e := range es {
		if e != strconv.Itoa(first+i)+"\n" {
			t.Fatalf("entry %d is %q, want %d", i, e, first+i)
		}
	}
	return first + len(es)
}

func readAll(t *testing.T, path string, o ReadOptions) []string {
	t.Helper()
	var out []string
	if err := Read(context.Background(), path, o, func(r *Record) error {
		out = append(out, string(r.Log))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRotationKeepsMaxFiles: rotation keeps at most MaxFiles files, none
// larger than MaxSize, and the kept entries are the newest ones, in order
// across the files; every file ends at a whole entry.
func TestRotationKeepsMaxFiles(t *testing.T) {
	for _, maxFiles := range []int{1, 2, 3, 5} {
		t.Run(strconv.Itoa(maxFiles), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "json.log")
			const maxSize = 4 << 10
			w, err := OpenWith(path, Options{MaxSize: maxSize, MaxFiles: maxFiles})
			if err != nil {
				t.Fatal(err)
			}
			const n = 5000
			if err := w.Copy("stdout", numbered(1, n)); err != nil {
				t.Fatal(err)
			}
			w.Close()
			files, sizes := rawChain(t, path)
			if len(files) != maxFiles {
				t.Fatalf("%d files, want %d", len(files), maxFiles)
			}
			var all []string
			for i, es := range files {
				if sizes[i] > maxSize {
					t.Errorf("file %d is %d bytes, over MaxSize %d", i, sizes[i], maxSize)
				}
				if i < len(files)-1 && sizes[i] < maxSize-100 {
					t.Errorf("rotated file %d is only %d bytes", i, sizes[i])
				}
				for _, e := range es {
					all = append(all, e.Log)
				}
			}
			first, _ := strconv.Atoi(strings.TrimSpace(all[0]))
			if seq(t, all, first) != n+1 {
				t.Fatalf("last entry %q, want %d", all[len(all)-1], n)
			}
			if got := readAll(t, path, ReadOptions{Tail: All}); strings.Join(got, "") != strings.Join(all, "") {
				t.Errorf("Read gives %d entries, the files hold %d", len(got), len(all))
			}
		})
	}
}

// TestRotationBigEntry: an entry larger than MaxSize gets a file of its
// own; nothing is lost or reordered.
func TestRotationBigEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, err := OpenWith(path, Options{MaxSize: 100, MaxFiles: 10})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("b", 500) + "\n"
	if err := w.Copy("stdout", strings.NewReader("a\n"+big+"c\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	files, _ := rawChain(t, path)
	if len(files) != 3 || files[1][0].Log != big || files[0][0].Log != "a\n" || files[2][0].Log != "c\n" {
		t.Fatalf("files: %v", files)
	}
}

// TestOpenWithReopensAndTrims: reopening appends (sizes carry on) and
// removes rotated files beyond a smaller MaxFiles.
func TestOpenWithReopensAndTrims(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "json.log")
	w, _ := OpenWith(path, Options{MaxSize: 1 << 10, MaxFiles: 6})
	w.Copy("stdout", numbered(1, 1000))
	w.Close()
	w, _ = OpenWith(path, Options{MaxSize: 1 << 10, MaxFiles: 2})
	if w.Size() == 0 {
		t.Error("reopened log has size 0")
	}
	w.Copy("stdout", numbered(1001, 1010))
	w.Close()
	files, _ := rawChain(t, path)
	if len(files) != 2 {
		t.Fatalf("%d files, want 2", len(files))
	}
	got := readAll(t, path, ReadOptions{Tail: 3})
	seq(t, got, 1008)
}

// TestTailExactAcrossFiles: Tail n gives exactly the last n entries for
// every n, wherever the files split, torn last line and junk excluded.
func TestTailExactAcrossFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, _ := OpenWith(path, Options{MaxSize: 1 << 10, MaxFiles: 4})
	w.Copy("stdout", numbered(1, 2000))
	w.Close()
	var all []string
	files, _ := rawChain(t, path)
	for _, es := range files {
		for _, e := range es {
			all = append(all, e.Log)
		}
	}
	// junk and a torn line at the end of json.log
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("not json\n" + `{"log":"torn`)
	f.Close()
	for n := 0; n <= len(all)+2; n++ {
		got := readAll(t, path, ReadOptions{Tail: n})
		want := all[max(0, len(all)-n):]
		if strings.Join(got, "") != strings.Join(want, "") {
			t.Fatalf("tail %d: %d entries %.40q…, want %d %.40q…", n, len(got), got, len(want), want)
		}
	}
}

// TestSinceUntil: Since skips older entries, Until ends at the first
// newer one, alone and with Tail.
func TestSinceUntil(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, _ := OpenWith(path, Options{MaxSize: 512, MaxFiles: 100})
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	i := 0
	w.now = func() time.Time { i++; return base.Add(time.Duration(i) * time.Second) } // line k at base+k s
	w.Copy("stdout", numbered(1, 100))
	w.Close()
	at := func(k int) time.Time { return base.Add(time.Duration(k) * time.Second) }
	cases := []struct {
		o           ReadOptions
		first, last int
	}{
		{ReadOptions{Tail: All, Since: at(50)}, 50, 100},
		{ReadOptions{Tail: All, Since: at(50).Add(time.Millisecond)}, 51, 100},
		{ReadOptions{Tail: All, Until: at(10)}, 1, 10},
		{ReadOptions{Tail: All, Since: at(20), Until: at(30)}, 20, 30},
		{ReadOptions{Tail: 5, Since: at(20), Until: at(30)}, 26, 30},
		{ReadOptions{Tail: 50, Since: at(20), Until: at(30)}, 20, 30},
		{ReadOptions{Tail: 3, Until: at(10)}, 8, 10},
		{ReadOptions{Tail: All, Since: at(200)}, 0, -1},
		{ReadOptions{Tail: All, Until: at(0)}, 0, -1},
	}
	for _, c := range cases {
		got := readAll(t, path, c.o)
		if len(got) != c.last-c.first+1 {
			t.Errorf("%+v: %d entries, want %d..%d", c.o, len(got), c.first, c.last)
			continue
		}
		seq(t, got, c.first)
	}
}

// TestFollowAcrossRotation: a follower sees every entry, in order, while a
// writer goroutine rotates the log under it many times, and ends once
// the writer is done and everything is read.
func TestFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, err := OpenWith(path, Options{MaxSize: 1 << 10, MaxFiles: 4})
	if err != nil {
		t.Fatal(err)
	}
	const batches, per = 60, 25 // a batch is ~2 rotations: never more than the kept files
	var writing atomic.Bool
	writing.Store(true)
	var seen atomic.Int64
	go func() {
		defer writing.Store(false)
		deadline := time.Now().Add(time.Minute) // the reader failed: let it end
		for b := 0; b < batches; b++ {
			w.Copy("stdout", numbered(b*per+1, (b+1)*per))
			for seen.Load() < int64((b+1)*per) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		// then as fast as it can: order still holds, and the end is seen
		w.Copy("stdout", numbered(batches*per+1, batches*per+3000))
	}()
	next := 1
	gaps := 0
	err = Read(context.Background(), path, ReadOptions{Tail: All, Follow: true, Poll: time.Millisecond,
		Writing: writing.Load}, func(r *Record) error {
		n, err := strconv.Atoi(strings.TrimSpace(string(r.Log)))
		if err != nil || n < next {
			return fmt.Errorf("entry %q after %d", r.Log, next-1)
		}
		if n > next {
			if n <= batches*per {
				return fmt.Errorf("entry %d missing (got %d)", next, n)
			}
			gaps++ // the free-running phase may outrun the kept files
		}
		next = n + 1
		seen.Store(int64(n))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != batches*per+3001 {
		t.Fatalf("follow ended after %d", next-1)
	}
	t.Logf("free-running phase: %d gaps", gaps)
}

// TestFollowTornAndLate: following from the end (Tail 0) delivers a line
// once its writer finishes it, and entries appended later.
func TestFollowTornAndLate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	os.WriteFile(path, []byte(`{"log":"old\n","stream":"stdout","time":"2026-01-02T03:04:05Z"}`+"\n"+`{"log":"ne`), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, path, ReadOptions{Tail: 0, Follow: true, Poll: time.Millisecond}, func(r *Record) error {
			got <- string(r.Log)
			return nil
		})
	}()
	time.Sleep(20 * time.Millisecond)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`w\n","stream":"stderr","time":"2026-01-02T03:04:06Z"}` + "\n")
	f.Close()
	if s := <-got; s != "new\n" {
		t.Fatalf("got %q", s)
	}
	w, _ := Open(path)
	w.Copy("stdout", strings.NewReader("later\n"))
	if s := <-got; s != "later\n" {
		t.Fatalf("got %q", s)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Read returned %v, want context.Canceled", err)
	}
}

// TestFollowWaitsForLog: following a log that does not exist yet picks it
// up, rotated files included, once it appears.
func TestFollowWaitsForLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	var writing atomic.Bool
	writing.Store(true)
	go func() {
		time.Sleep(20 * time.Millisecond)
		w, _ := OpenWith(path, Options{MaxSize: 1 << 10, MaxFiles: 50})
		w.Copy("stdout", numbered(1, 200))
		w.Close()
		writing.Store(false)
	}()
	got := readAll(t, path, ReadOptions{Tail: All, Follow: true, Writing: writing.Load, Poll: time.Millisecond})
	if seq(t, got, 1) != 201 {
		t.Fatalf("got %d entries", len(got))
	}
}

// TestReaderFollowsRotation: the offset Reader (attach) goes on into the
// new json.log after a rotation.
func TestReaderFollowsRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, _ := OpenWith(path, Options{MaxSize: 300, MaxFiles: 3})
	w.Copy("stdout", numbered(1, 2))
	r, err := OpenReader(path, w.Size())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.Copy("stdout", numbered(3, 12)) // a rotation or two
	var got []string
	r.Drain(func(e Entry) error { got = append(got, e.Log); return nil })
	seq(t, got, 3)
	if len(got) != 10 {
		t.Fatalf("got %q", got)
	}
}

// TestCopyFlushesPausedLine: a line without its newline is written as a
// partial entry once the stream pauses for FlushAfter (through CopyTee,
// which hands the tee everything); the rest of the line follows as its
// own entry.
func TestCopyFlushesPausedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, _ := OpenWith(path, Options{MaxSize: -1, FlushAfter: 30 * time.Millisecond})
	pr, pw, _ := os.Pipe()
	done := make(chan error)
	var tee bytes.Buffer
	go func() { done <- w.CopyTee("stdout", pr, &tee) }()
	pw.WriteString("prompt> ")
	deadline := time.Now().Add(5 * time.Second)
	for w.Size() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	pw.WriteString("answer\nno newline")
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := readAll(t, path, ReadOptions{Tail: All})
	if strings.Join(got, "|") != "prompt> |answer\n|no newline" {
		t.Fatalf("got %q", got)
	}
	if tee.String() != "prompt> answer\nno newline" {
		t.Fatalf("tee got %q", tee.String())
	}
}

// TestCopyCutsBeforeRune: a long line is cut at MaxLine, or just before a
// UTF-8 sequence that would straddle the cut; the text comes back whole.
func TestCopyCutsBeforeRune(t *testing.T) {
	for pad := 0; pad < 4; pad++ {
		path := filepath.Join(t.TempDir(), "json.log")
		w, _ := Open(path)
		line := strings.Repeat("x", MaxLine-3+pad) + strings.Repeat("€", 10) + "\n"
		w.Copy("stdout", strings.NewReader(line))
		w.Close()
		got := readAll(t, path, ReadOptions{Tail: All})
		if strings.Join(got, "") != line {
			t.Fatalf("pad %d: text changed", pad)
		}
		for _, e := range got {
			if len(e) > MaxLine || !utf8Valid(e) {
				t.Errorf("pad %d: piece of %d bytes, valid UTF-8 %v", pad, len(e), utf8Valid(e))
			}
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\x00") == s }

// TestCopyExactMaxLine: a line of exactly MaxLine bytes with its newline
// is one entry; one byte more splits it.
func TestCopyExactMaxLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, _ := Open(path)
	a := strings.Repeat("a", MaxLine-1) + "\n"
	b := strings.Repeat("b", MaxLine) + "\n"
	w.Copy("stdout", strings.NewReader(a+b))
	w.Close()
	got := readAll(t, path, ReadOptions{Tail: All})
	if len(got) != 3 || got[0] != a || got[2] != "\n" {
		t.Fatalf("%d entries", len(got))
	}
}

// TestPrinter: streams to their writers in order, timestamps as docker
// logs -t prints them.
func TestPrinter(t *testing.T) {
	var out, errb bytes.Buffer
	p := &Printer{Stdout: &out, Stderr: &errb, Timestamps: true}
	tm := []byte("2026-01-02T03:04:05.5Z")
	p.Print(&Record{Log: []byte("a\n"), Stream: "stdout", rawTime: tm})
	p.Print(&Record{Log: []byte("b\n"), Stream: "stderr", rawTime: tm})
	if out.String() != "2026-01-02T03:04:05.500000000Z a\n" || errb.Len() != 0 {
		t.Errorf("stdout %q stderr %q: stdout must be out before stderr's first record", out.String(), errb.String())
	}
	p.Flush()
	if errb.String() != "2026-01-02T03:04:05.500000000Z b\n" {
		t.Errorf("stderr %q", errb.String())
	}
}

// TestEncodeLikeEncodingJSON: the hand-written encoder writes what
// json.Marshal writes, for every byte and the awkward runes.
func TestEncodeLikeEncodingJSON(t *testing.T) {
	var s []byte
	for c := 0; c < 256; c++ {
		s = append(s, byte(c))
	}
	s = append(s, "\u2028\u2029€😀\xed\xa0\x80\xf0\x9f"...)
	checkEncode(t, "stdout", s)
}

func checkEncode(t *testing.T, stream string, log []byte) {
	t.Helper()
	tm := time.Date(2026, 1, 2, 3, 4, 5, 60, time.FixedZone("x", 3600))
	want, err := json.Marshal(Entry{Log: string(log), Stream: stream, Time: tm.UTC()})
	if err != nil {
		t.Fatal(err)
	}
	got := appendEntry(nil, stream, log, tm)
	if string(got) != string(want)+"\n" {
		t.Fatalf("encoded\n%q\nencoding/json\n%q", got, want)
	}
	var d decoder
	var rec Record
	if !d.decode(got[:len(got)-1], &rec) {
		t.Fatalf("own line not decoded: %q", got)
	}
	e, err := rec.Entry()
	var ref Entry
	json.Unmarshal(want, &ref)
	if err != nil || e.Log != ref.Log || e.Stream != ref.Stream || !e.Time.Equal(ref.Time) {
		t.Fatalf("decoded %+v (%v), encoding/json %+v", e, err, ref)
	}
}

// FuzzEncode: encoding any text gives json.Marshal's bytes, and decoding
// gives back what encoding/json decodes.
func FuzzEncode(f *testing.F) {
	f.Add([]byte("hello\n"), "stdout")
	f.Add([]byte("\x00\x1f<>&\"\\\u2028\xff"), "std\"err")
	f.Fuzz(func(t *testing.T, log []byte, stream string) {
		checkEncode(t, stream, log)
	})
}

// FuzzDecode: the hand-written decoder agrees with encoding/json on any
// line: the same entries, the same texts, the same times.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"log":"a\n","stream":"stdout","time":"2026-01-02T03:04:05.123Z"}`,
		`{"log":"\u00e9\ud83d\ude00\ud800x\/\b\f\r\t\"\\","stream":"stderr","time":"2026-01-02T03:04:05Z"}`,
		`{"log":"\uD800\uDC00\udc00","stream":"stdout","time":"2026-02-30T03:04:05Z"}`,
		`{"log":"x","stream":"stdout","time":"2026-01-02T03:04:05+01:00"}`,
		`{"log":"x","stream":"stdout","time":"2026-01-02T03:04:05.1234567891Z"}`,
		`{"log":"x","stream":"stdout","time":"2026-01-02T24:04:05Z"}`,
		`{"stream":"stdout","log":"x","time":"2026-01-02T03:04:05Z","attrs":{"a":"b"}}`,
		`{"log":"x","stream":"stdout","time":""}`,
		`{"log":"` + "\xff\x01" + `","stream":"stdout","time":"2026-01-02T03:04:05Z"}`,
		`{"log":"x","stream":"stdout","time":"2026-01-02T03:04:05Z"} `,
		`{"log":"x\u"}`, `{}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var ref struct {
			Log    string `json:"log"`
			Stream string `json:"stream"`
			Time   string `json:"time"`
		}
		refOK := json.Unmarshal(line, &ref) == nil && ref.Time != ""
		var d decoder
		var rec Record
		ok := d.decode(line, &rec)
		if ok != refOK {
			t.Fatalf("decoder says %v, encoding/json %v", ok, refOK)
		}
		if !ok {
			return
		}
		if string(rec.Log) != ref.Log || rec.Stream != ref.Stream || string(rec.rawTime) != ref.Time {
			t.Fatalf("decoder %q %q %q, encoding/json %q %q %q", rec.Log, rec.Stream, rec.rawTime, ref.Log, ref.Stream, ref.Time)
		}
		var want time.Time
		werr := want.UnmarshalText([]byte(ref.Time))
		got, gerr := rec.Time()
		if (werr == nil) != (gerr == nil) || !got.Equal(want) {
			t.Fatalf("time %q: %v %v, encoding/json %v %v", ref.Time, got, gerr, want, werr)
		}
	})
}

// BenchmarkLogWrite: Copy of short lines, as a busy container writes them.
func BenchmarkLogWrite(b *testing.B) {
	var text bytes.Buffer
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&text, "%d some log text of a usual length\n", i)
	}
	path := filepath.Join(b.TempDir(), "json.log")
	w, _ := OpenWith(path, Options{MaxSize: 64 << 20, MaxFiles: 2})
	b.SetBytes(int64(text.Len()))
	for b.Loop() {
		w.Copy("stdout", bytes.NewReader(text.Bytes()))
	}
	w.Close()
}

// BenchmarkLogRead: Read of 100,000 short entries into a Printer.
func BenchmarkLogRead(b *testing.B) {
	path := filepath.Join(b.TempDir(), "json.log")
	w, _ := Open(path)
	var text bytes.Buffer
	for i := 0; i < 100000; i++ {
		fmt.Fprintf(&text, "%d\n", i)
	}
	w.Copy("stdout", &text)
	w.Close()
	fi, _ := os.Stat(path)
	b.SetBytes(fi.Size())
	for b.Loop() {
		out := bufio.NewWriter(io.Discard)
		p := &Printer{Stdout: out, Stderr: out}
		Read(context.Background(), path, ReadOptions{Tail: All}, func(r *Record) error { return p.Print(r) })
		p.Flush()
	}
}

// FuzzFastLine: whenever the fast path takes a line, it ends at the
// first newline and gives what the general decoder gives for that line,
// and it leaves its input alone.
func FuzzFastLine(f *testing.F) {
	f.Add([]byte(`{"log":"a\n","stream":"stdout","time":"2026-01-02T03:04:05.123Z"}` + "\n{"))
	f.Add([]byte(`{"log":"a","stream":"stderr","time":"2026-01-02T03:04:05Z"}` + "\n"))
	f.Add([]byte(`{"log":"a\n","stream":"stdout","time":"2026-01-02T03:04:05Z\"}` + "\n"))
	f.Add([]byte(`{"log":"14405\n","stream":"stdout","ti`)) // cut by the buffer's end
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		var d decoder
		var rec Record
		n := d.fastLine(b, &rec)
		if !bytes.Equal(b, orig) {
			t.Fatalf("fast path changed its input: %q -> %q", orig, b)
		}
		if n == 0 {
			return
		}
		if i := bytes.IndexByte(orig, '\n'); i != n-1 {
			t.Fatalf("fast path took %d bytes, the first newline is at %d", n, i)
		}
		var ref Record
		if !(&decoder{}).decode(orig[:n-1], &ref) {
			t.Fatalf("fast path took %q, the decoder refuses it", orig[:n])
		}
		if string(rec.Log) != string(ref.Log) || rec.Stream != ref.Stream || string(rec.rawTime) != string(ref.rawTime) {
			t.Fatalf("fast %q %q %q, decoder %q %q %q", rec.Log, rec.Stream, rec.rawTime, ref.Log, ref.Stream, ref.rawTime)
		}
	})
}

// TestReadAcrossBufferEnds: a log many read buffers long comes back whole:
// no line is lost or changed where a read cuts it.
func TestReadAcrossBufferEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, _ := Open(path)
	w.Copy("stdout", numbered(1, 200000))
	w.Copy("stderr", strings.NewReader(strings.Repeat("é\"\\\t<>\n", 20000)))
	w.Close()
	got := readAll(t, path, ReadOptions{Tail: All})
	if len(got) != 220000 {
		t.Fatalf("%d entries, want 220000", len(got))
	}
	seq(t, got[:200000], 1)
	for _, e := range got[200000:] {
		if e != "é\"\\\t<>\n" {
			t.Fatalf("entry %q", e)
		}
	}
}

// TestReadAheadStops: reading a long log ahead still ends exactly at
// Until, and at once when ctx ends or the callback fails.
func TestReadAheadStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, _ := Open(path)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	i := 0
	w.now = func() time.Time { i++; return base.Add(time.Duration(i) * time.Millisecond) }
	w.Copy("stdout", numbered(1, 200000))
	w.Close()
	got := readAll(t, path, ReadOptions{Tail: All, Until: base.Add(100000 * time.Millisecond)})
	if seq(t, got, 1) != 100001 {
		t.Fatalf("until: %d entries", len(got))
	}
	got = readAll(t, path, ReadOptions{Tail: 150000, Since: base.Add(70000 * time.Millisecond)})
	if seq(t, got, 70000) != 200001 {
		t.Fatalf("tail+since: %d entries", len(got))
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := Read(ctx, path, ReadOptions{Tail: All}, func(*Record) error {
		if n++; n == 1000 {
			cancel()
		}
		return nil
	})
	if err != context.Canceled || n > 1000+readChunk/60 {
		t.Fatalf("after cancel: %v, %d entries", err, n)
	}
	stop := fmt.Errorf("full")
	n = 0
	err = Read(context.Background(), path, ReadOptions{Tail: All}, func(*Record) error {
		if n++; n == 5000 {
			return stop
		}
		return nil
	})
	if err != stop || n != 5000 {
		t.Fatalf("after a failed callback: %v, %d entries", err, n)
	}
}

// segments records what a Printer writes to each stream, in order, with
// adjacent writes to one stream merged.
type segments struct{ segs []string }

type segWriter struct {
	s   *segments
	tag string
}

func (w segWriter) Write(b []byte) (int, error) {
	if n := len(w.s.segs); n > 0 && strings.HasPrefix(w.s.segs[n-1], w.tag) {
		w.s.segs[n-1] += string(b)
	} else {
		w.s.segs = append(w.s.segs, w.tag+string(b))
	}
	return len(b), nil
}

// TestPrintLikeRead: Print (fast, parallel, straight into the Printer)
// writes exactly what Read into a Printer writes: same text on the same
// streams in the same order, over a long log of both streams, escapes,
// partial lines, junk, an overlong junk line across read buffers and a
// torn end.
func TestPrintLikeRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, _ := Open(path)
	for k := 0; k < 40; k++ {
		w.Copy("stdout", numbered(k*5000+1, k*5000+4000))
		w.Copy("stderr", strings.NewReader(strings.Repeat("é\"\\\t<x>\n", 300)+"partial"))
		f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		switch k {
		case 7:
			f.WriteString("junk\n{}\n" + `{"stream":"stdout","time":"2026-01-02T03:04:05Z","log":"other order\n"}` + "\n")
		case 13:
			f.WriteString(strings.Repeat("z", readChunk+2*maxEntry) + "\n") // overlong: dropped
		}
		f.Close()
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"log":"torn`)
	f.Close()
	if fi, _ := os.Stat(path); fi.Size() < 2*aheadMin {
		t.Fatalf("log of %d bytes is too short to be read ahead", fi.Size())
	}
	var want, got segments
	p := &Printer{Stdout: segWriter{&want, "O:"}, Stderr: segWriter{&want, "E:"}}
	if err := Read(context.Background(), path, ReadOptions{Tail: All}, p.Print); err != nil {
		t.Fatal(err)
	}
	p.Flush()
	if err := Print(context.Background(), path, ReadOptions{Tail: All}, &Printer{Stdout: segWriter{&got, "O:"}, Stderr: segWriter{&got, "E:"}}); err != nil {
		t.Fatal(err)
	}
	if len(got.segs) != len(want.segs) {
		t.Fatalf("Print wrote %d runs, Read %d", len(got.segs), len(want.segs))
	}
	for i := range want.segs {
		if got.segs[i] != want.segs[i] {
			t.Fatalf("run %d differs: %.60q… vs %.60q…", i, got.segs[i], want.segs[i])
		}
	}
	if !strings.Contains(want.segs[0], "other order\n") && !strings.Contains(strings.Join(want.segs, ""), "other order\n") {
		t.Error("the entry in another key order is missing")
	}
}

// TestFollowWakesOnWrite: a follower wakes when the log changes, not at
// its next poll (an hour here), and ends at once when ctx does.
func TestFollowWakesOnWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, _ := Open(path)
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, path, ReadOptions{Tail: All, Follow: true, Poll: time.Hour}, func(r *Record) error {
			got <- string(r.Log)
			return nil
		})
	}()
	time.Sleep(50 * time.Millisecond) // asleep in its wait
	w.Copy("stdout", strings.NewReader("woken\n"))
	select {
	case s := <-got:
		if s != "woken\n" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the follower did not wake on the write")
	}
	start := time.Now()
	cancel()
	if err := <-done; err != context.Canceled || time.Since(start) > 2*time.Second {
		t.Fatalf("after cancel: %v in %v", err, time.Since(start))
	}
}

// TestPrintFollowIntoLongStretch: a follower holding the start of a line
// when several MiB arrive at once (read through a mapping) joins the line
// and loses nothing.
func TestPrintFollowIntoLongStretch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	entry := func(i int) string {
		return string(appendEntry(nil, "stdout", []byte(strconv.Itoa(i)+"\n"), time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)))
	}
	first := entry(1)
	os.WriteFile(path, []byte(first[:20]), 0o600) // a torn first entry
	var writing atomic.Bool
	writing.Store(true)
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Print(context.Background(), path, ReadOptions{Tail: All, Follow: true, Writing: writing.Load, Poll: time.Millisecond},
			&Printer{Stdout: &out})
	}()
	time.Sleep(30 * time.Millisecond)
	var b strings.Builder
	b.WriteString(first[20:])
	const n = 150000 // ~11 MiB: mapped
	for i := 2; i <= n; i++ {
		b.WriteString(entry(i))
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(b.String())
	f.Close()
	time.Sleep(30 * time.Millisecond)
	writing.Store(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != n || got[0] != "1" || got[n-1] != strconv.Itoa(n) {
		t.Fatalf("%d lines, first %q", len(got), got[0])
	}
}

// TestMappedTruncation: a log truncated under its mapping ends the decode
// of a piece with a fault, not a crash.
func TestMappedTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	os.WriteFile(path, bytes.Repeat([]byte(`{"log":"x\n","stream":"stdout","time":"2026-01-02T03:04:05Z"}`+"\n"), 2000), 0o600)
	f, _ := os.Open(path)
	defer f.Close()
	fi, _ := f.Stat()
	m, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	os.Truncate(path, 0)
	j := &job{data: m}
	fault := make(chan bool)
	go func() {
		debug.SetPanicOnFault(true)
		j.decode()
		fault <- j.fault
	}()
	if !<-fault {
		t.Fatal("decoding a truncated mapping reported no fault")
	}
}

// BenchmarkLogPrint: Print of a 15 MB log (mapped, decoded on every CPU)
// into a discarding Printer; bench/logs times the same through the CLI.
func BenchmarkLogPrint(b *testing.B) {
	path := filepath.Join(b.TempDir(), "json.log")
	w, _ := Open(path)
	w.Copy("stdout", numbered(1, 200000))
	w.Close()
	fi, _ := os.Stat(path)
	b.SetBytes(fi.Size())
	for b.Loop() {
		if err := Print(context.Background(), path, ReadOptions{Tail: All}, &Printer{Stdout: io.Discard}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFollowTruncatedInPlace: a follower goes on with a json.log cut to
// nothing in place (truncate -s 0), from its new start.
func TestFollowTruncatedInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, _ := Open(path)
	defer w.Close()
	w.Copy("stdout", numbered(1, 100))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 1000)
	go Read(ctx, path, ReadOptions{Tail: All, Follow: true, Poll: time.Millisecond}, func(r *Record) error {
		got <- string(r.Log)
		return nil
	})
	for i := 1; i <= 100; i++ {
		<-got
	}
	os.Truncate(path, 0)
	time.Sleep(20 * time.Millisecond)
	w.Copy("stdout", strings.NewReader("after\n")) // O_APPEND: at the new end
	select {
	case s := <-got:
		if s != "after\n" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing read after the truncation")
	}
}
