// Package archive applies image layers (tar streams) to snapshot
// directories without letting any entry reach outside them, and turns
// OCI/Docker whiteouts into overlayfs ones. Nothing here runs a program:
// gzip and zstd are decoded in process.
package archive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Compression of a layer stream.
type Compression int

// Compressions berth reads.
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return "uncompressed"
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Decompress sniffs r's compression and returns a reader of the plain tar
// stream. Closing it releases the decoder; it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return nil, Uncompressed, fmt.Errorf("read layer header: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, Gzip, fmt.Errorf("gzip layer: %w", err)
		}
		return zr, Gzip, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, Zstd, fmt.Errorf("zstd layer: %w", err)
		}
		return zr.IOReadCloser(), Zstd, nil
	}
	return io.NopCloser(br), Uncompressed, nil
}
