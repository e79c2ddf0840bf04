// Package testutil holds what berth's tests share: root gating, short temp
// roots, polling. Later issues add the environment and leak checker of
// TESTING.md §4.
package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// RequireRoot skips a root test under -short or without root, and fails it
// instead when CI=true and not root: a root test is never silently skipped
// where it matters (SECURITY.md §3 rule 5).
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("root test: run by make test-root")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("root test needs root, and CI=true: refusing to skip")
		}
		t.Skip("needs root")
	}
}

// TempRoot returns a fresh 0700 directory /tmp/berth-t-<8 hex> (short, so
// socket paths under it stay below 108 bytes), removed after the test.
func TempRoot(t testing.TB) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(os.TempDir(), "berth-t-"+hex.EncodeToString(b[:]))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Eventually polls cond every 10 ms (growing to 200 ms) until it holds or
// timeout passes, then fails the test.
func Eventually(t testing.TB, cond func() bool, timeout time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := 10 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
		if pause < 200*time.Millisecond {
			pause *= 2
		}
	}
}

// Within fails the test when fn runs longer than d: fuzz targets use it so
// a slow input is reported (and kept) instead of stalling the fuzzer. fn
// keeps running in the background after a failure.
func Within(t testing.TB, d time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("took longer than %v", d)
	}
}
