package linux

import (
	"context"
	"fmt"
	"io"

	"berth.dev/berth/runtime"
)

// Logs reads the container's log (runtime, part 2: logs).
func (c *Container) Logs(ctx context.Context, o runtime.LogOptions) (io.ReadCloser, error) {
	return nil, fmt.Errorf("logs: %w", errLater)
}
