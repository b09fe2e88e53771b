// Package loadbench owns Portico's load benchmark: it starts a static
// backend, starts each target (Portico itself, a direct path to the backend,
// and peer proxies configured from small templates), drives them with wrk
// over loopback, and reports throughput, latency percentiles, CPU time per
// request and proxy memory side by side.
//
// Targets run interleaved and repeated (every round runs every target once,
// in the same order) so that slow drift of a shared machine spreads evenly
// over all of them; the report shows per-target medians.
//
// Adding a peer is adding one config template under templates/ and one entry
// to the list in targets.go.
package loadbench
