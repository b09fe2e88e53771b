package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"portico.dev/portico/metrics"
	"portico.dev/portico/snapshot"
)

// publisher turns each new set of objects into a snapshot, swaps it in, and
// reports what changed: metrics, and a log line per problem that appeared or
// went away (not one per build, so a steady problem is not repeated).
type publisher struct {
	store   *snapshot.Store
	metrics *metrics.Metrics
	log     *slog.Logger
	cfg     snapshot.Config
	// status, when set, gets every published snapshot with its objects.
	status *statusLoop

	mu       sync.Mutex // one build at a time, in source order
	reported map[snapshot.Problem]bool
}

func (p *publisher) apply(objs snapshot.Objects) {
	p.mu.Lock()
	defer p.mu.Unlock()

	start := time.Now()
	snap := snapshot.Build(objs, p.cfg, p.store.Load())
	p.store.Publish(snap)
	took := time.Since(start)

	if p.status != nil {
		p.status.offer(objs, snap)
	}
	p.reportProblems(snap.Problems)
	p.recordMetrics(snap, took)
	p.log.Info("configuration applied",
		"generation", snap.Generation,
		"ingresses", len(snap.Ingresses),
		"routes", len(snap.Routes.Routes()),
		"certificates", len(snap.CertificateExpiry),
		"problems", len(snap.Problems),
		"took", took.Round(time.Microsecond))
}

func (p *publisher) reportProblems(problems []snapshot.Problem) {
	now := make(map[snapshot.Problem]bool, len(problems))
	for _, pr := range problems {
		now[pr] = true
		if p.reported[pr] {
			continue
		}
		level := slog.LevelWarn
		if pr.Severity == snapshot.Error {
			level = slog.LevelError
		}
		p.log.Log(context.Background(), level, pr.Message, problemAttrs(pr)...)
	}
	for pr := range p.reported {
		if !now[pr] {
			p.log.Info("resolved: "+pr.Message, problemAttrs(pr)...)
		}
	}
	p.reported = now
}

func problemAttrs(pr snapshot.Problem) []any {
	return []any{"kind", pr.Object.Kind, "namespace", pr.Object.Namespace, "name", pr.Object.Name, "reason", pr.Reason}
}

func (p *publisher) recordMetrics(snap *snapshot.Snapshot, took time.Duration) {
	m := p.metrics
	m.SnapshotBuilt(took, true)
	counts := make(map[[2]string]int)
	for _, pr := range snap.Problems {
		counts[[2]string{pr.Object.Kind, string(pr.Severity)}]++
	}
	m.Serving(metrics.SnapshotServing{
		Generation:        snap.Generation,
		Routes:            len(snap.Routes.Routes()),
		Problems:          counts,
		CertificateExpiry: snap.CertificateExpiry,
	})
	keep := make(map[metrics.RouteLabels]bool)
	for _, r := range snap.Routes.Routes() {
		keep[r.MetricLabels()] = true
	}
	if fb := snap.Routes.Fallback; fb != nil {
		keep[fb.MetricLabels()] = true
	}
	keep[metrics.RouteLabels{Kind: "Unmatched"}] = true
	m.RetainRoutes(keep)
}
