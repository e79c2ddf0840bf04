package buildctx

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mk1000 makes 1,000 small files in 20 directories and returns their paths.
func mk1000(b *testing.B) (string, []string) {
	dir := b.TempDir()
	var paths []string
	for i := range 1000 {
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("file%04d.go", i))
		must(b, os.MkdirAll(filepath.Dir(p), 0o755))
		must(b, os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("line %d\n", i), 1+i%200)), 0o644))
		paths = append(paths, p)
	}
	return dir, paths
}

// BenchmarkDigest1000Files times Digest of a COPY of 1,000 small files
// against a baseline of reading the same files with os.ReadFile, in the
// same process and interleaved so both see the same page cache. It reports
// digest/read (the ratio of the times) and ms/digest.
func BenchmarkDigest1000Files(b *testing.B) {
	dir, paths := mk1000(b)
	p, err := openCtx(b, dir).Plan([]string{"."}, CopyOptions{Dest: "/app"})
	must(b, err)
	if p.Entries() != 1021 {
		b.Fatalf("%d entries", p.Entries())
	}
	var tRead, tDigest time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		for _, f := range paths {
			if _, err := os.ReadFile(f); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		if _, err := p.Digest(); err != nil {
			b.Fatal(err)
		}
		tRead += t1.Sub(t0)
		tDigest += time.Since(t1)
	}
	b.ReportMetric(float64(tDigest)/float64(tRead), "digest/read")
	b.ReportMetric(float64(tDigest.Microseconds())/1000/float64(b.N), "ms/digest")
	b.ReportMetric(float64(tRead.Microseconds())/1000/float64(b.N), "ms/read")
}

// BenchmarkPlan1000Files times Plan (the walk and .dockerignore matching)
// of the same context.
func BenchmarkPlan1000Files(b *testing.B) {
	dir, _ := mk1000(b)
	must(b, os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("**/*.log\nd1*\n!d1*/file00*\n"), 0o644))
	c := openCtx(b, dir)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Plan([]string{"."}, CopyOptions{Dest: "/app"}); err != nil {
			b.Fatal(err)
		}
	}
}
