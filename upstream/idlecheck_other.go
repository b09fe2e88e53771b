//go:build !linux

package upstream

// peekFunc has no non-blocking peek to build on elsewhere than Linux, the
// platform Portico ships for: idle connections are then trusted until
// used, and the retry of idempotent requests on dead connections is all
// that covers them.
func peekFunc(*conn) func(fd uintptr) bool { return nil }
