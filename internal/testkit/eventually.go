package testkit

import (
	"testing"
	"time"
)

// Eventually retries check until it passes, for work that happens in the
// background. The limit is a safety net against hangs, not a speed
// assertion.
func Eventually(t testing.TB, limit time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
