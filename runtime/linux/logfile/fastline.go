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

// The middles as words at 0, 8, 16 and 20 (overlapping: 28 bytes), and
// the start of a line.
var (
	mid0, out1, out2, out3 = word(midStdout, 0), word(midStdout, 8), word(midStdout, 16), word(midStdout, 20)
	err1, err2, err3       = word(midStderr, 8), word(midStderr, 16), word(midStderr, 20)
	logWord                = word(keyLog, 0)
)

// fastLine parses the entry at the start of b if it is in exactly the
// form Writer writes (log text with no escape but a final \n, stdout or
// stderr, a time of 20 to 31 RFC 3339 characters) and returns its length
// with the newline; 0 when it is not (another form, or not complete yet):
// the caller then goes by newline and decode, which give the same record.
func fastLine(b []byte, rec *Record) int {
	n, text, nl, stderr, t := fastParse(b)
	if n > 0 {
		if nl { // resolved in place: b is the follower's own buffer, the line is consumed
			text = text[:len(text)+1]
			text[len(text)-1] = '\n'
		}
		rec.Log, rec.rawTime, rec.parsed = text, t, false
		rec.Stream = "stdout"
		if stderr {
			rec.Stream = "stderr"
		}
	}
	return n
}

// fastParse is fastLine's parser: the line's length, its text without
// the final newline escape and whether there was one (the text then ends
// at the escape's backslash), whether it is stderr's, and its raw time.
// It never writes to b (which may be a read-only mapping).
func fastParse(b []byte) (n int, text []byte, nl, stderr bool, tm []byte) {
	le := binary.LittleEndian
	const minLen = len(keyLog) + 8 + midLen + 32 + 3
	if len(b) < minLen || le.Uint64(b) != logWord {
		return
	}
	// The text: most are short, so its first word is looked at here.
	i := len(keyLog)
	if m := specialWord(le.Uint64(b[i:])); m != 0 {
		i += bits.TrailingZeros64(m) / 8
	} else {
		i = special(b, i+8)
	}
	if len(b)-i < 3+midLen+32+3 {
		return
	}
	end := i // of the text
	switch {
	case b[i] == '"':
		i++
	case b[i] == '\\' && b[i+1] == 'n' && b[i+2] == '"':
		nl = true
		i += 3
	default:
		return
	}
	// b[i-1:] starts with the middle, then the time.
	m := b[i-1 : i-1+midLen+32+3]
	w1, w2, w3 := le.Uint64(m[8:]), le.Uint64(m[16:]), le.Uint64(m[20:])
	switch {
	case le.Uint64(m) != mid0:
		return
	case w1 == out1 && w2 == out2 && w3 == out3:
	case w1 == err1 && w2 == err2 && w3 == err3:
		stderr = true
	default:
		return
	}
	// The time's characters all lie in '#'..'[' (0x23..0x5b), a range
	// without '"', '\\', control characters and non-ASCII. Its first 20
	// bytes must; its closing quote is the first byte outside the range
	// in the 12 after (an unusual time goes the slow way).
	t := m[midLen:]
	if outside(le.Uint64(t))|outside(le.Uint64(t[8:]))|outside(le.Uint64(t[12:])) != 0 {
		return
	}
	var j int
	if m2 := outside(le.Uint64(t[16:])); m2 != 0 {
		j = 16 + bits.TrailingZeros64(m2)/8
	} else if m3 := outside(le.Uint64(t[24:])); m3 != 0 {
		j = 24 + bits.TrailingZeros64(m3)/8
	} else {
		return
	}
	if t[j] != '"' || t[j+1] != '}' || t[j+2] != '\n' {
		return
	}
	return i - 1 + midLen + j + 3, b[len(keyLog):end], nl, stderr, t[:j]
}

// outside flags (0x80) each byte of x outside '#'..'[' (0x23..0x5b); the
// lowest flag is exact (borrows and carries only run upwards).
func outside(x uint64) uint64 {
	m := (x - ones*0x23) & ^x       // bytes < 0x23
	m |= (x + ones*(0x7f-0x5b)) | x // bytes > 0x5b (no carry out of a byte < 0x80)
	return m & highs
}
