package main

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
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
	// listeners, when set, binds the sockets each published snapshot's
	// Gateways ask for.
	listeners *gatewayListeners
	// acmeExpiring, when set, reports the ACME certificates close to
	// expiry, which the builder turns into warnings on their objects.
	acmeExpiring func() map[string]time.Time

	mu       sync.Mutex // one build at a time, in source order
	reported map[snapshot.Problem]bool
	// objs are the objects the serving snapshot was built from.
	objs snapshot.Objects
}

func (p *publisher) apply(objs snapshot.Objects) {
	p.mu.Lock()
	defer p.mu.Unlock()

	start := time.Now()
	cfg := p.cfg
	if p.acmeExpiring != nil {
		cfg.ACME.Expiring = p.acmeExpiring()
	}
	snap := snapshot.Build(objs, cfg, p.store.Load())
	p.store.Publish(snap)
	took := time.Since(start)
	p.objs = objs
	if p.listeners != nil {
		p.listeners.reconcile(snap)
	}
	p.offerStatus(snap)
	p.reportProblems(snap.Problems)
	p.recordMetrics(snap, took)
	p.log.Info("configuration applied",
		"generation", snap.Generation,
		"ingresses", len(snap.Ingresses),
		"routes", len(snap.Routes.Routes()),
		"gatewayListeners", len(snap.Listeners),
		"certificates", len(snap.CertificateExpiry),
		"problems", len(snap.Problems),
		"took", took.Round(time.Microsecond))
}

// rebuild builds again from the objects the serving snapshot came from,
// for inputs that change outside the sources (ACME certificate expiry). It
// does nothing before the first snapshot.
func (p *publisher) rebuild() {
	p.mu.Lock()
	built := p.store.Load() != nil
	objs := p.objs
	p.mu.Unlock()
	if built {
		p.apply(objs)
	}
}

// offerStatus hands the status writer the serving snapshot, with the
// Gateways whose sockets could not be bound marked so. Only the status
// written differs; the snapshot serving traffic stays as built.
func (p *publisher) offerStatus(snap *snapshot.Snapshot) {
	if p.status == nil {
		return
	}
	statusSnap := snap
	if p.listeners != nil {
		if failures := p.listeners.bindFailures(); len(failures) > 0 {
			adjusted := *snap
			adjusted.GatewayAPI = withBindFailures(snap.GatewayAPI, p.objs.Gateways, failures)
			statusSnap = &adjusted
		}
	}
	p.status.offer(p.objs, statusSnap)
}

// bindRetryInterval is how often Gateway sockets that could not be bound
// are tried again when no configuration change does it first: an address
// being added to the host, or another process releasing a port, is
// picked up without an edit.
const bindRetryInterval = 10 * time.Second

// retryBinds tries the failed Gateway sockets of the serving snapshot
// again every interval until ctx ends.
func (p *publisher) retryBinds(ctx context.Context, interval time.Duration) {
	if p.listeners == nil {
		return
	}
	_ = wait.PollUntilContextCancel(ctx, interval, false, func(context.Context) (bool, error) {
		p.retryBindsOnce()
		return false, nil // until ctx ends
	})
}

func (p *publisher) retryBindsOnce() {
	p.mu.Lock()
	defer p.mu.Unlock()
	before := p.listeners.bindFailures()
	snap := p.store.Load()
	if len(before) == 0 || snap == nil {
		return
	}
	p.listeners.reconcile(snap)
	if !slices.Equal(before, p.listeners.bindFailures()) {
		p.offerStatus(snap)
	}
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
	// Gateway sockets have tables of their own; their routes' series stay
	// as long as the routes do.
	for _, l := range snap.Listeners {
		if l.Routes == nil {
			continue
		}
		for _, r := range l.Routes.Routes() {
			keep[r.MetricLabels()] = true
		}
		if fb := l.Routes.Fallback; fb != nil {
			keep[fb.MetricLabels()] = true
		}
	}
	keep[metrics.RouteLabels{Kind: "Unmatched"}] = true
	m.RetainRoutes(keep)
}
