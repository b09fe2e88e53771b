package controlplane

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"
)

// SkipEnv names the variable that, set to 1, makes StartForTest skip the
// test instead of failing it when the binaries are missing. Without it a
// missing binary is a failure, so CI cannot silently skip integration tests.
const SkipEnv = "PORTICO_SKIP_CONTROLPLANE"

// StartForTest starts a control plane for t (Dir defaults to t.TempDir(),
// Logger to t's output) and stops it when the test ends.
func StartForTest(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	if err := Available(opts.BinDir); err != nil {
		if os.Getenv(SkipEnv) == "1" {
			t.Skipf("%s=1: %v", SkipEnv, err)
		}
		t.Fatal(err)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cp, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(cp.Stop)
	return cp
}

// NetnsForTest creates a network namespace for t and removes it when the
// test ends.
func NetnsForTest(t testing.TB) *Netns {
	t.Helper()
	n, err := NewNetns()
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("remove network namespace %s: %v", n.Name, err)
		}
	})
	return n
}
