package reconcile

import (
	"testing"

	"berth.dev/berth/internal/errdefs"
)

// TestRejectMountOverProc (SECURITY.md): a service mounting onto /proc or
// under it — a bind, a volume or a tmpfs — is ErrInvalid at plan time,
// before any action runs.
func TestRejectMountOverProc(t *testing.T) {
	for name, yaml := range map[string]string{
		"bind":       "services:\n  web: {image: busybox, volumes: [\"/tmp:/proc\"]}\n",
		"bind under": "services:\n  web: {image: busybox, volumes: [\"/tmp:/proc/sys/x\"]}\n",
		"volume":     "services:\n  web: {image: busybox, volumes: [\"data:/proc/self\"]}\nvolumes:\n  data: {}\n",
		"tmpfs":      "services:\n  web: {image: busybox, tmpfs: [\"/proc\"]}\n",
	} {
		t.Run(name, func(t *testing.T) {
			m, _ := specLoad(t, map[string]string{"compose.yaml": yaml})
			_, err := BuildSpec(m, specCase{}.input())
			if !errdefs.IsInvalid(err) {
				t.Fatalf("a mount onto /proc: %v, want ErrInvalid", err)
			}
		})
	}
}
