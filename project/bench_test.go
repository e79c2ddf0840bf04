package project

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

func bigProject(n int) string {
	var b strings.Builder
	b.WriteString("services:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  svc%03d:\n    image: \"busybox:${TAG:-1}\"\n    command: [\"sh\", \"-c\", \"echo %d\"]\n", i, i)
		fmt.Fprintf(&b, "    environment: {A: \"1\", B: \"${B:-2}\"}\n    ports: [\"127.0.0.1:%d:80\"]\n", 10000+i)
		if i > 0 {
			fmt.Fprintf(&b, "    depends_on: [svc%03d]\n", i-1)
		}
	}
	return b.String()
}

// BenchmarkLoad loads a 300-service project with berth's loader and, in the
// same run, with compose-go alone (what every peer pays), and reports
// berth's cost as a ratio: the price of the fig pre-pass, positions,
// name and reference checks, provenance and the dependency order.
func BenchmarkLoad(b *testing.B) {
	dir := b.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	content := bigProject(300)
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var berthTime, composeTime time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := Load(ctx, Options{WorkDir: dir, ProjectName: "bench", Env: map[string]string{}}); err != nil {
			b.Fatal(err)
		}
		berthTime += time.Since(start)
		start = time.Now()
		raw, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		_, err = loader.LoadWithContext(ctx, types.ConfigDetails{WorkingDir: dir,
			ConfigFiles: []types.ConfigFile{{Filename: file, Content: raw}}, Environment: map[string]string{}},
			func(o *loader.Options) { o.SetProjectName("bench", true) })
		if err != nil {
			b.Fatal(err)
		}
		composeTime += time.Since(start)
	}
	b.ReportMetric(float64(berthTime)/float64(composeTime), "ratio-vs-compose-go")
	b.ReportMetric(float64(berthTime.Microseconds())/float64(b.N), "berth-µs/load")
}
