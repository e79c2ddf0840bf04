package logfile

import (
	"context"
	"fmt"
	"io"
	"os"
)

// Reader (tests only) reads the entries of one log from an offset on,
// following it across rotation; it tolerates a torn last line (the writer is
// mid-append) by leaving it for the next Drain.
type Reader struct {
	fl follower
}

// OpenReader opens the log at path at offset off of json.log.
func OpenReader(path string, off int64) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.Seek(off, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	return &Reader{fl: follower{path: path, cur: &logFile{f: f, info: fi}}}, nil
}

// Close closes the files.
func (r *Reader) Close() error {
	r.fl.close()
	return nil
}

// Drain calls fn for every complete entry written so far (lines that are
// not entries, or whose time does not parse, are skipped).
func (r *Reader) Drain(fn func(Entry) error) error {
	_, err := r.fl.drain(context.Background(), func(rec *Record) error {
		e, err := rec.Entry()
		if err != nil {
			return nil
		}
		return fn(e)
	})
	return err
}
