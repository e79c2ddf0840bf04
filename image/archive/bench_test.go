package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// writeBenchLayer writes an uncompressed layer of about size bytes: a tree
// of directories with files of mixed sizes, some symlinks and hardlinks.
func writeBenchLayer(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(w)
	rnd := rand.New(rand.NewSource(1))
	buf := make([]byte, 1<<20)
	rnd.Read(buf)
	mt := time.Unix(1700000000, 0)
	var written int64
	for d := 0; written < size; d++ {
		dir := fmt.Sprintf("usr/lib/pkg%03d", d)
		tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt})
		for i := 0; i < 40 && written < size; i++ {
			n := int64(512 << (i % 10)) // 512 B .. 256 KiB
			name := fmt.Sprintf("%s/f%02d", dir, i)
			tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: n, ModTime: mt})
			tw.Write(buf[:n])
			written += n
			if i%8 == 0 {
				tw.WriteHeader(&tar.Header{Name: name + ".l", Typeflag: tar.TypeSymlink, Linkname: fmt.Sprintf("f%02d", i), ModTime: mt})
				tw.WriteHeader(&tar.Header{Name: name + ".h", Typeflag: tar.TypeLink, Linkname: name, ModTime: mt})
			}
		}
	}
	tw.Close()
	w.Flush()
	f.Close()
}

// BenchmarkApplyLayer unpacks a 100 MB layer with Apply and, in the same
// run, with GNU tar -x (preserving owners and permissions, as Apply does),
// and reports Apply's time as a ratio of tar's.
func BenchmarkApplyLayer(b *testing.B) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		b.Skip("no tar on this machine to compare with")
	}
	dir := b.TempDir()
	layerPath := filepath.Join(dir, "layer.tar")
	writeBenchLayer(b, layerPath, 100<<20)
	fi, _ := os.Stat(layerPath)
	b.SetBytes(fi.Size())
	var applyTime, tarTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst1 := filepath.Join(dir, fmt.Sprintf("apply%d", i))
		dst2 := filepath.Join(dir, fmt.Sprintf("tar%d", i))
		os.Mkdir(dst1, 0o755)
		os.Mkdir(dst2, 0o755)
		// alternate the order so page-cache warmth favours neither side
		runTar := func() {
			start := time.Now()
			cmd := exec.Command(tarBin, "-x", "-p", "--same-owner", "-f", layerPath, "-C", dst2)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("tar: %v %s", err, out)
			}
			tarTime += time.Since(start)
		}
		runApply := func() {
			b.StartTimer()
			start := time.Now()
			f, _ := os.Open(layerPath)
			if _, err := Apply(context.Background(), dst1, bufio.NewReaderSize(f, 1<<20)); err != nil {
				b.Fatal(err)
			}
			f.Close()
			applyTime += time.Since(start)
			b.StopTimer()
		}
		if i%2 == 0 {
			runTar()
			runApply()
		} else {
			runApply()
			runTar()
		}
		os.RemoveAll(dst1)
		os.RemoveAll(dst2)
	}
	b.ReportMetric(float64(applyTime)/float64(tarTime), "ratio-vs-tar")
}
