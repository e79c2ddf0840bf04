package ctl

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestFramesRoundTrip(t *testing.T) {
	var b bytes.Buffer
	big := bytes.Repeat([]byte{0, 1, 2, 255}, MaxFrame/2)
	WriteFrame(&b, Stdout, []byte("hello "))
	WriteFrame(&b, Stderr, []byte("err"))
	WriteFrame(&b, Stdout, big)
	var out, errb bytes.Buffer
	if err := ReadFrames(&b, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), append([]byte("hello "), big...)) || errb.String() != "err" {
		t.Fatalf("stdout %d bytes, stderr %q", out.Len(), errb.String())
	}
	if err := ReadFrames(bytes.NewReader([]byte{9, 0, 0, 0, 0, 0, 0, 1, 'x'}), &out, &errb); err == nil {
		t.Error("a frame of stream 9 was accepted")
	}
}

func TestRequestVersionAndSize(t *testing.T) {
	if _, err := ReadRequest(bufio.NewReader(strings.NewReader(`{"v":1,"op":"attach"}` + "\n"))); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRequest(bufio.NewReader(strings.NewReader(`{"v":9,"op":"attach"}` + "\n"))); err == nil {
		t.Error("version 9 accepted")
	}
	if _, err := ReadRequest(bufio.NewReader(strings.NewReader(strings.Repeat("x", 10000) + "\n"))); err == nil {
		t.Error("a 10 KB request accepted")
	}
}

// FuzzCtlFrame: reading frames never panics and never allocates past the
// frame limit.
func FuzzCtlFrame(f *testing.F) {
	var b bytes.Buffer
	WriteFrame(&b, Stdout, []byte("seed"))
	f.Add(b.Bytes())
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		ReadFrames(bytes.NewReader(data), nil, nil)
		ReadRequest(bufio.NewReader(bytes.NewReader(data)))
	})
}
