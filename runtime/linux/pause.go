package linux

import (
	"context"
	"fmt"
)

// Pause freezes the container (runtime, part 2: pause).
func (c *Container) Pause(ctx context.Context) error { return fmt.Errorf("pause: %w", errLater) }

// Resume thaws the container (runtime, part 2: pause).
func (c *Container) Resume(ctx context.Context) error { return fmt.Errorf("unpause: %w", errLater) }
