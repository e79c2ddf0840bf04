package logfile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Record is one entry as Read hands it to its callback. Log (and the raw
// time) point into the reader's buffers: they are valid only until the
// callback returns; copy what is kept (Entry does).
type Record struct {
	Log    []byte // the text, with its newline unless it is a partial line
	Stream string // "stdout" or "stderr" (as written; other names are kept)

	rawTime []byte
	time    time.Time
	timeErr error
	parsed  bool
}

// Time is the entry's time, parsed on first use (as encoding/json parses
// a time.Time: strict RFC 3339).
func (r *Record) Time() (time.Time, error) {
	if !r.parsed {
		r.parsed = true
		r.time, r.timeErr = parseTime(r.rawTime)
	}
	return r.time, r.timeErr
}

// Entry copies the record out of the reader's buffers.
func (r *Record) Entry() (Entry, error) {
	t, err := r.Time()
	if err != nil {
		return Entry{}, err
	}
	return Entry{Log: string(r.Log), Stream: r.Stream, Time: t}, nil
}

var errBadTime = errors.New("log entry: time is not RFC 3339")

// parseTime parses b as time.Time.UnmarshalText does, with a fast path for
// the form Writer writes: YYYY-MM-DDTHH:MM:SS[.fraction]Z.
func parseTime(b []byte) (time.Time, error) {
	if t, ok := parseUTC(b); ok {
		return t, nil
	}
	var t time.Time
	if err := t.UnmarshalText(b); err != nil {
		return time.Time{}, errBadTime
	}
	return t, nil
}

// parseUTC parses the Z form of RFC 3339 with 1 to 9 fractional digits or
// none; anything else (offsets, out-of-range fields) is left to the
// standard parser.
func parseUTC(b []byte) (time.Time, bool) {
	if len(b) < 20 || len(b) > 30 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		n, ok := num(frac[1:])
		if !ok {
			return time.Time{}, false
		}
		for i := len(frac) - 1; i < 9; i++ {
			n *= 10
		}
		nsec = n
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // 31 April and the like: the strict parser refuses it
		return time.Time{}, false
	}
	return t, true
}

// decoder turns lines into Records: by hand for the exact form Writer
// writes, through encoding/json for anything else (other key order, more
// keys, whitespace). Both give the same result for any line (FuzzDecode).
type decoder struct {
	buf  []byte // unescaped log text
	slow struct {
		Log    string `json:"log"`
		Stream string `json:"stream"`
		Time   string `json:"time"`
	}
}

const (
	keyLog    = `{"log":"`
	keyStream = `,"stream":"`
	keyTime   = `,"time":"`
)

// decode fills rec from line (no newline) and reports whether it is an
// entry: a JSON object with string fields log, stream and a non-empty time.
func (d *decoder) decode(line []byte, rec *Record) bool {
	*rec = Record{}
	if d.fast(line, rec) {
		return true
	}
	d.slow.Log, d.slow.Stream, d.slow.Time = "", "", ""
	if json.Unmarshal(line, &d.slow) != nil || d.slow.Time == "" {
		return false
	}
	*rec = Record{Log: []byte(d.slow.Log), Stream: d.slow.Stream, rawTime: []byte(d.slow.Time)}
	return true
}

func (d *decoder) fast(line []byte, rec *Record) bool {
	if !bytes.HasPrefix(line, []byte(keyLog)) {
		return false
	}
	i := len(keyLog)
	log, i, ok := d.unquote(line, i)
	if !ok || !bytes.HasPrefix(line[i:], []byte(keyStream)) {
		return false
	}
	i += len(keyStream)
	stream, i, ok := plain(line, i)
	if !ok || !bytes.HasPrefix(line[i:], []byte(keyTime)) {
		return false
	}
	i += len(keyTime)
	t, i, ok := plain(line, i)
	if !ok || len(t) == 0 || len(line)-i != 1 || line[i] != '}' {
		return false
	}
	rec.Log, rec.rawTime = log, t
	switch string(stream) { // no allocation for the two usual names
	case "stdout":
		rec.Stream = "stdout"
	case "stderr":
		rec.Stream = "stderr"
	default:
		rec.Stream = string(stream)
	}
	return true
}

// plain reads a JSON string of printable ASCII without escapes starting
// at line[i] (after its opening quote); it returns the text and the index
// after the closing quote.
func plain(line []byte, i int) ([]byte, int, bool) {
	j := special(line, i)
	if j >= len(line) || line[j] != '"' {
		return nil, 0, false
	}
	return line[i:j], j + 1, true
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special returns the index of the first byte of s from i on that a JSON
// string cannot hold as it is ('"', '\\', a control character) or that
// is not ASCII, or len(s). It tests eight bytes at a time: a word has such
// a byte iff one of the masks below is non-zero, and the lowest flagged
// byte is always a real one (borrows only run upwards).
func special(s []byte, i int) int {
	for ; i+8 <= len(s); i += 8 {
		if m := specialWord(binary.LittleEndian.Uint64(s[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return i
		}
	}
	return i
}

// specialWord flags (0x80) the bytes of x that special looks for; the
// lowest flag is exact.
func specialWord(x uint64) uint64 {
	q := x ^ (ones * '"')
	b := x ^ (ones * '\\')
	m := (x - ones*0x20) & ^x // bytes < 0x20
	m |= (q - ones) & ^q      // '"'
	m |= (b - ones) & ^b      // '\\'
	m |= x                    // bytes >= 0x80
	return m & highs
}

// unquote reads the JSON string starting at line[i] (after its opening
// quote) as encoding/json does: escapes resolved, invalid UTF-8 and lone
// surrogates replaced by U+FFFD, raw control characters refused. The text
// aliases line when it has nothing to resolve, else d.buf.
func (d *decoder) unquote(line []byte, i int) ([]byte, int, bool) {
	start := i
	i = special(line, i)
	if i < len(line) && line[i] == '"' {
		return line[start:i], i + 1, true
	}
	b := append(d.buf[:0], line[start:i]...)
	b, i, ok := unescape(b, line, i)
	d.buf = b[:0]
	return b, i, ok
}

// unescape appends to b the rest of the JSON string at line[i:], see
// unquote.
func unescape(b, line []byte, i int) ([]byte, int, bool) {
	for i < len(line) {
		c := line[i]
		switch {
		case c == '"':
			return b, i + 1, true
		case c < 0x20:
			return nil, 0, false
		case c == '\\':
			if i+1 >= len(line) {
				return nil, 0, false
			}
			switch e := line[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := hex4(line[i:])
				if r < 0 {
					return nil, 0, false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2 := hex4(line[i:]); r2 >= 0 {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							b = utf8.AppendRune(b, dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				return nil, 0, false
			}
			i += 2
		case c < utf8.RuneSelf:
			j := special(line, i)
			b = append(b, line[i:j]...)
			i = j
		default:
			r, size := utf8.DecodeRune(line[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, line[i:i+size]...)
			}
			i += size
		}
	}
	return nil, 0, false
}

// hex4 reads a \uXXXX escape at the start of s, or returns -1.
func hex4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
