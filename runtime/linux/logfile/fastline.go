package logfile

import (
	"encoding/binary"
	"math/bits"
)

// The middle of a line as Writer writes it, from the log's closing quote
// to the time's opening one, for each usual stream.
const (
	midStdout = `","stream":"stdout","time":"`
	midStderr = `","stream":"stderr","time":"`
	midLen    = len(midStdout) // 28
)

// word is 8 bytes of s from i, little-endian.
func word(s string, i int) uint64 {
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// The middles as words at 0, 8, 16 and 20 (overlapping: 28 bytes); the
// stream's name is in the words at 8 and 16. logWord is the start of a
// line.
var (
	mid0, mid3 = word(midStdout, 0), word(midStdout, 20)
	out1, out2 = word(midStdout, 8), word(midStdout, 16)
	err1, err2 = word(midStderr, 8), word(midStderr, 16)
	logWord    = word(keyLog, 0)
)

// Three bytes, little-endian: the \n escape and the closing quote that
// end most texts, and the end of a line after its time.
const (
	nlQuote = '\\' | 'n'<<8 | '"'<<16
	endLine = '"' | '}'<<8 | '\n'<<16
)

// tailLen is how much fastCopy looks at from the log's closing quote on:
// the middle, the time's 32-byte window and "}\n, plus one byte (it reads
// four at once).
const tailLen = midLen + 32 + 4

// textRoom is what fastCopy needs from where it reads the next word of a
// text: the word (the text may end at its last byte), the \n escape's
// other two bytes, and the tail.
const textRoom = 8 + 2 + tailLen

// fastCopy is the fast path of the reader: if b starts with an entry in
// exactly the form Writer writes, it copies the entry's text, newline
// resolved, to the start of dst and returns the line's length with its
// newline, the text's length, where the time starts (it ends at n-3) and
// whether it is stderr's. The form: log text of printable ASCII without
// escapes but a final \n, stream stdout or stderr, a time of 20 to 31
// characters in '#'..'[' (0x23..0x5b, a range without '"', '\\', control
// characters and non-ASCII), a line of at most maxEntry bytes. It returns
// n == 0 when the line is in another form, is not complete yet in b
// (fastCopy looks up to tailLen bytes past the text), or its text may not
// fit dst: the caller then goes by newline and decode, which give the
// same record (FuzzFastCopy). It never writes to b (which may be a
// read-only mapping); it may write up to 8 bytes of dst past the text.
//
// The text is copied 8 bytes at a time as it is scanned for the first
// byte a plain JSON string cannot hold as it is (specialWord): that is
// its closing quote, or the backslash of its \n. The rest is compared a
// word at a time. Everything is inline: this is the loop that reads a
// big log, about 15 ns an entry.
func fastCopy(b, dst []byte) (n, w, ts int, stderr bool) {
	le := binary.LittleEndian
	if len(b) < len(keyLog)+textRoom || le.Uint64(b) != logWord {
		return 0, 0, 0, false
	}
	if len(b) > maxEntry+1 {
		b = b[:maxEntry+1] // a longer line is not an entry: decode skips it too
	}
	i := len(keyLog)
	var m uint64
	for {
		if len(b)-i < textRoom || len(dst)-w < 8 {
			return 0, 0, 0, false
		}
		x := le.Uint64(b[i:])
		le.PutUint64(dst[w:], x)
		if m = specialWord(x); m != 0 {
			break
		}
		i += 8
		w += 8
	}
	k := bits.TrailingZeros64(m) >> 3
	i += k
	w += k
	if b[i] != '"' {
		if le.Uint32(b[i:])&0xffffff != nlQuote {
			return 0, 0, 0, false
		}
		dst[w] = '\n'
		w++
		i += 2
	}
	// b[i:] starts with the middle, then the time.
	mid := b[i : i+tailLen]
	if (le.Uint64(mid)^mid0)|(le.Uint64(mid[20:])^mid3) != 0 {
		return 0, 0, 0, false
	}
	switch w1, w2 := le.Uint64(mid[8:]), le.Uint64(mid[16:]); {
	case w1 == out1 && w2 == out2:
	case w1 == err1 && w2 == err2:
		stderr = true
	default:
		return 0, 0, 0, false
	}
	// The time's first 20 bytes must lie in the range; its closing quote
	// is the first byte outside it in the 12 after.
	t := mid[midLen:]
	if outside(le.Uint64(t))|outside(le.Uint64(t[8:]))|outside(le.Uint64(t[12:])) != 0 {
		return 0, 0, 0, false
	}
	var j int
	if m2 := outside(le.Uint64(t[16:])); m2 != 0 {
		j = 16 + bits.TrailingZeros64(m2)>>3
	} else if m3 := outside(le.Uint64(t[24:])); m3 != 0 {
		j = 24 + bits.TrailingZeros64(m3)>>3
	} else {
		return 0, 0, 0, false
	}
	if le.Uint32(t[j:])&0xffffff != endLine {
		return 0, 0, 0, false
	}
	ts = i + midLen
	return ts + j + 3, w, ts, stderr
}

// fastLine is fastCopy into a Record: it parses the entry at the start of
// b if fastCopy takes it and returns its length with the newline, 0 when
// not. The text goes to d's buffer, the time stays in b: rec is valid
// while both are unchanged.
func (d *decoder) fastLine(b []byte, rec *Record) int {
	if cap(d.buf) < jobRoom {
		d.buf = make([]byte, 0, jobRoom)
	}
	n, w, ts, stderr := fastCopy(b, d.buf[:cap(d.buf)])
	if n > 0 {
		*rec = Record{Log: d.buf[:w], rawTime: b[ts : n-3], Stream: "stdout"}
		if stderr {
			rec.Stream = "stderr"
		}
	}
	return n
}

// jobRoom is the room fastCopy is given for a text: the longest line it
// takes fits, so none falls back for want of room.
const jobRoom = maxEntry + 16

// outside flags (0x80) each byte of x outside '#'..'[' (0x23..0x5b); the
// lowest flag is exact (borrows and carries only run upwards).
func outside(x uint64) uint64 {
	m := (x - ones*0x23) & ^x       // bytes < 0x23
	m |= (x + ones*(0x7f-0x5b)) | x // bytes > 0x5b (no carry out of a byte < 0x80)
	return m & highs
}
