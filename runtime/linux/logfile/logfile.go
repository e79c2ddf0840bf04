// Package logfile writes and reads container logs in Docker's json-file
// format: one JSON object a line, {"log":"…\n","stream":"stdout","time":"…"},
// time in RFC 3339 with nanoseconds, UTC. The shim is the only writer of a
// container's log.
//
// Files. The live file is json.log; with rotation (OpenWith and a MaxSize)
// it is renamed to json.log.1 before it would grow past MaxSize, json.log.1
// to json.log.2 and so on, and the oldest beyond MaxFiles is removed, as
// Docker's max-size and max-file do. A file is only ever renamed between
// whole entries.
//
// Lines. Writer.Copy writes one entry per line, newline kept. A line longer
// than MaxLine is written as MaxLine pieces (cut before a UTF-8 sequence,
// never inside one), and a line the program leaves without its newline for
// FlushAfter (1 s unless set) is written as it is: such partial entries
// carry no newline, so printing the entries one after the other gives the
// program's output back. Docker cuts at 16 KiB the same way; it has no
// timer (its partial line waits for the next write), berth's has one so
// that a prompt or a progress bar shows up in `logs -f`.
//
// Reading. Read (and the older Reader) read json.log.N … json.log oldest
// first and, following, keep reading what is appended, across rotation: a
// reader notices that json.log is another file than the one it holds open
// (inode), drains what it holds, then goes on with the files that came
// after it. A follower wakes on inotify events of the log's directory, so
// it keeps up with a fast writer and finds each file before rotation drops
// it (a reader slower than the writer, e.g. behind a paused pager, loses
// what rotation dropped meanwhile, as with Docker). A torn last line (the
// writer is mid-append) is left for the next read; a json.log truncated
// in place is read again from its start. Lines that are not entries are
// skipped. Print is Read into a Printer, the way `logs` prints: it decodes
// entries in Writer's exact form by hand (the general decoder, checked
// against encoding/json by FuzzDecode, takes the rest; FuzzFastCopy checks
// the hand path against encoding/json too) and reads a long
// stretch of log through a read-only mapping on every CPU.
package logfile

import (
	"time"
)

// MaxLine is the longest entry Copy writes, in bytes of log text, newline
// included; a longer line is cut into pieces of at most this size, as
// Docker cuts at 16 KiB.
const MaxLine = 16 << 10

// maxEntry bounds one encoded entry: MaxLine bytes of text escaped at worst
// six bytes each (\u00XX), plus the fields. A longer line in a file is not
// one of ours and is skipped.
const maxEntry = 6*MaxLine + 256

// Entry is one log line.
type Entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}
