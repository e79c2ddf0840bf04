package logfile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func entries(t *testing.T, path string, off int64) []Entry {
	t.Helper()
	r, err := OpenReader(path, off)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []Entry
	if err := r.Drain(func(e Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCopySplitsLines: one entry per line with its newline, long lines cut
// at MaxLine, a last line without newline kept, streams labelled.
func TestCopySplitsLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC) }
	long := strings.Repeat("x", MaxLine+10) + "\n"
	if err := w.Copy("stdout", strings.NewReader("a\nb\n"+long+"tail")); err != nil {
		t.Fatal(err)
	}
	if err := w.Copy("stderr", strings.NewReader("oops\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got := entries(t, path, 0)
	want := []string{"a\n", "b\n", strings.Repeat("x", MaxLine), "xxxxxxxxxx\n", "tail", "oops\n"}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i, e := range got {
		if e.Log != want[i] {
			t.Errorf("entry %d = %.20q…, want %.20q…", i, e.Log, want[i])
		}
	}
	if got[5].Stream != "stderr" || got[0].Stream != "stdout" || !got[0].Time.Equal(w.now()) {
		t.Errorf("labels: %+v %+v", got[0], got[5])
	}
	b, _ := os.ReadFile(path)
	if !bytes.HasPrefix(b, []byte(`{"log":"a\n","stream":"stdout","time":"2026-01-02T03:04:05.000000006Z"}`)) {
		t.Errorf("not Docker's json-file form: %.80s", b)
	}
}

// TestReaderLeavesTornLine: a line the writer has not finished is not
// delivered, and is delivered whole once it is.
func TestReaderLeavesTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "json.log")
	os.WriteFile(path, []byte(`{"log":"one\n","stream":"stdout","time":"2026-01-02T03:04:05Z"}`+"\n"+`{"log":"tw`), 0o600)
	r, err := OpenReader(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	collect := func(e Entry) error { got = append(got, e.Log); return nil }
	r.Drain(collect)
	if len(got) != 1 {
		t.Fatalf("got %q", got)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	io.WriteString(f, `o\n","stream":"stderr","time":"2026-01-02T03:04:05Z"}`+"\nnot json\n")
	f.Close()
	r.Drain(collect)
	if len(got) != 2 || got[1] != "two\n" {
		t.Fatalf("got %q", got)
	}
}

// FuzzLogRead: the reader never panics and never holds more than a few
// MaxLine of unfinished input.
func FuzzLogRead(f *testing.F) {
	f.Add([]byte(`{"log":"a\n","stream":"stdout","time":"2026-01-02T03:04:05Z"}` + "\n"))
	f.Add([]byte("\n\n{\n"))
	f.Add(bytes.Repeat([]byte("y"), 5*MaxLine))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "json.log")
		os.WriteFile(path, data, 0o600)
		r, err := OpenReader(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		r.Drain(func(Entry) error { return nil })
		if n := r.fl.buffered(); n > maxEntry {
			t.Fatalf("reader holds %d bytes", n)
		}
	})
}
