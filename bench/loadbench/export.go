package loadbench

import "context"

// Prepare writes the benchmark certificate and files into cfg.WorkDir and
// starts the shared backend, as Execute does before its runs, for other
// benchmarks that drive the same targets (bench/abuse). The caller stops
// the backend.
func Prepare(ctx context.Context, cfg Config) (*Env, *Process, error) {
	return prepare(ctx, cfg)
}

// WrkScript is the Lua script every wrk run loads: it resolves the virtual
// host to loopback and prints exact figures for ParseWrkOutput.
const WrkScript = wrkScript
