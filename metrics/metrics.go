package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names. Dashboards and alerts depend on them: change them only with
// a note in docs/metrics.md.
const (
	RequestDurationName       = "portico_request_duration_seconds"
	RequestsInFlightName      = "portico_requests_in_flight"
	EventLoopRequestsName     = "portico_http1_event_loop_requests_total"
	GRPCResponsesName         = "portico_grpc_responses_total"
	UpstreamConnectErrorsName = "portico_upstream_connect_errors_total"
	SnapshotBuildsName        = "portico_snapshot_builds_total"
	SnapshotBuildDurationName = "portico_snapshot_build_duration_seconds"
	SnapshotGenerationName    = "portico_snapshot_generation"
	RoutesName                = "portico_routes"
	ConfigProblemsName        = "portico_config_problems"
	CertificatesLoadedName    = "portico_certificates_loaded"
	CertificateExpiryName     = "portico_certificate_expiry_timestamp_seconds"
	PassthroughConnsName      = "portico_passthrough_connections_total"
	PassthroughBytesName      = "portico_passthrough_bytes_total"
	PassthroughDurationName   = "portico_passthrough_connection_duration_seconds"
)

// Metrics is the set of collectors one Portico process exports.
type Metrics struct {
	Registry *prometheus.Registry

	requestDuration *prometheus.HistogramVec
	grpcResponses   *prometheus.CounterVec
	routes          routeSeriesSet
	InFlight        prometheus.Gauge
	connectErrors   *prometheus.CounterVec
	builds          *prometheus.CounterVec
	buildDuration   prometheus.Histogram
	generation      prometheus.Gauge
	routeCount      prometheus.Gauge
	problems        *prometheus.GaugeVec
	certsLoaded     prometheus.Gauge
	certExpiry      *prometheus.GaugeVec

	passthroughConns    *prometheus.CounterVec
	passthroughBytes    *prometheus.CounterVec
	passthroughDuration *prometheus.HistogramVec
}

// Passthrough results: the outcome of one TLS passthrough connection, a
// fixed set so that clients cannot mint series.
const (
	PassthroughSpliced   = "spliced"    // sent to a backend, both ways until closed
	PassthroughBadHello  = "bad_hello"  // no ClientHello within the bounds
	PassthroughNoRoute   = "no_route"   // no TLSRoute takes the SNI
	PassthroughNoBackend = "no_backend" // the route has no valid backend endpoint
	PassthroughDialError = "dial_error" // the backend endpoint refused or timed out
	// PassthroughBackendTLSError: in mode Terminate, the TLS handshake
	// with a backend a BackendTLSPolicy targets failed (its certificate
	// did not verify, or it does not speak TLS).
	PassthroughBackendTLSError = "backend_tls_error"
)

// Modes of a TLS listener, the mode label of the passthrough metrics.
const (
	ModePassthrough = "passthrough" // the backend terminates the client's TLS
	ModeTerminate   = "terminate"   // Portico terminates it and splices the bytes, re-encrypted for a BackendTLSPolicy
)

// ConnectionBuckets are the passthrough connection-duration buckets in
// seconds: connections live from milliseconds to hours.
var ConnectionBuckets = []float64{.01, .1, 1, 10, 60, 300, 1800, 3600, 4 * 3600}

// RequestBuckets are the request-duration histogram buckets in seconds: fine
// below 10 ms where a proxy's own cost shows, coarse up to a minute.
var RequestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// New creates and registers every collector on a fresh registry, with the Go
// runtime and process collectors beside them.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    RequestDurationName,
		Help:    "Time from receiving a request's headers to the end of its response, per route.",
		Buckets: RequestBuckets,
	}, []string{"kind", "namespace", "name", "rule", "method", "code"})
	m.grpcResponses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: GRPCResponsesName,
		Help: "gRPC calls answered, per route and gRPC status (the code's name; NONE when the response carried none).",
	}, []string{"kind", "namespace", "name", "rule", "grpc_status"})
	m.passthroughConns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: PassthroughConnsName,
		Help: "Connections of TLS listeners (TLSRoutes) ended, per TLSRoute (empty labels when none took the SNI), listener mode (passthrough, terminate) and result (spliced, bad_hello, no_route, no_backend, dial_error; bad_hello is a failed handshake in terminate mode).",
	}, []string{"kind", "namespace", "name", "rule", "mode", "result"})
	m.passthroughBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: PassthroughBytesName,
		Help: "Bytes spliced by TLS listeners, per TLSRoute, listener mode and direction (in: from the client, ClientHello included in passthrough mode; out: to the client; decrypted bytes in terminate mode).",
	}, []string{"kind", "namespace", "name", "rule", "mode", "direction"})
	m.passthroughDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    PassthroughDurationName,
		Help:    "Lifetime of spliced connections of TLS listeners, per TLSRoute and listener mode.",
		Buckets: ConnectionBuckets,
	}, []string{"kind", "namespace", "name", "rule", "mode"})
	m.routes = routeSeriesSet{vec: m.requestDuration, grpcVec: m.grpcResponses, m: make(map[RouteLabels]*RouteSeries),
		extra: []prometheus.Collector{m.passthroughConns, m.passthroughBytes, m.passthroughDuration}}
	m.InFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: RequestsInFlightName,
		Help: "Requests being served right now.",
	})
	m.connectErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: UpstreamConnectErrorsName,
		Help: "Failed connection attempts to backend endpoints, per backend (namespace/service:port).",
	}, []string{"backend"})
	m.builds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: SnapshotBuildsName,
		Help: "Configuration snapshots built, by result (ok: published; unchanged: identical to the one serving).",
	}, []string{"result"})
	m.buildDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    SnapshotBuildDurationName,
		Help:    "Time to build and compile one configuration snapshot.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})
	m.generation = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: SnapshotGenerationName,
		Help: "Generation of the snapshot serving traffic; it rises by one on every published change.",
	})
	m.routeCount = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: RoutesName,
		Help: "Routes in the serving route table.",
	})
	m.problems = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: ConfigProblemsName,
		Help: "Configuration problems in the serving snapshot, by object kind and severity.",
	}, []string{"kind", "severity"})
	m.certsLoaded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: CertificatesLoadedName,
		Help: "Certificates the TLS tier can serve, the default certificate included.",
	})
	m.certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: CertificateExpiryName,
		Help: "Expiry (NotAfter) of each served certificate as a Unix timestamp, by source Secret.",
	}, []string{"secret"})
	m.Registry.MustRegister(m.requestDuration, m.grpcResponses, m.InFlight, m.connectErrors, m.builds, m.buildDuration,
		m.generation, m.routeCount, m.problems, m.certsLoaded, m.certExpiry,
		m.passthroughConns, m.passthroughBytes, m.passthroughDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// CountEventLoops exports what the HTTP/1.1 event loops did, read from
// counts when scraped (the loops keep their own counters, so the hot path
// pays nothing for it): requests they answered (served), connections they
// gave to a goroutine before forwarding a request (handed_off) and
// exchanges they gave to one after (continued).
func (m *Metrics) CountEventLoops(counts func() (served, handedOff, continued uint64)) {
	m.Registry.MustRegister(eventLoopCollector(counts))
}

var eventLoopDesc = prometheus.NewDesc(EventLoopRequestsName,
	"HTTP/1.1 requests and connections by what the event loops did with them: served on a loop, handed_off to a goroutine before forwarding, continued on a goroutine after forwarding.",
	[]string{"outcome"}, nil)

type eventLoopCollector func() (served, handedOff, continued uint64)

func (c eventLoopCollector) Describe(ch chan<- *prometheus.Desc) { ch <- eventLoopDesc }

func (c eventLoopCollector) Collect(ch chan<- prometheus.Metric) {
	served, handedOff, continued := c()
	ch <- prometheus.MustNewConstMetric(eventLoopDesc, prometheus.CounterValue, float64(served), "served")
	ch <- prometheus.MustNewConstMetric(eventLoopDesc, prometheus.CounterValue, float64(handedOff), "handed_off")
	ch <- prometheus.MustNewConstMetric(eventLoopDesc, prometheus.CounterValue, float64(continued), "continued")
}

// Route returns the series of one route; it is safe to keep across snapshots.
func (m *Metrics) Route(l RouteLabels) *RouteSeries { return m.routes.get(l) }

// Passthrough records one ended connection of a TLS listener in mode
// (ModePassthrough or ModeTerminate): its route (zero labels when no route
// took it), result, the bytes it carried each way and its lifetime. It is called once per connection, so it resolves
// the series each time rather than caching them as Route does.
func (m *Metrics) Passthrough(l RouteLabels, mode, result string, in, out int64, seconds float64) {
	if l != (RouteLabels{}) {
		m.routes.get(l) // keeps the route's series until RetainRoutes drops it
	}
	m.passthroughConns.WithLabelValues(l.Kind, l.Namespace, l.Name, l.Rule, mode, result).Inc()
	if result != PassthroughSpliced {
		return
	}
	m.passthroughBytes.WithLabelValues(l.Kind, l.Namespace, l.Name, l.Rule, mode, "in").Add(float64(in))
	m.passthroughBytes.WithLabelValues(l.Kind, l.Namespace, l.Name, l.Rule, mode, "out").Add(float64(out))
	m.passthroughDuration.WithLabelValues(l.Kind, l.Namespace, l.Name, l.Rule, mode).Observe(seconds)
}

// RetainRoutes drops the series of every route not in keep.
func (m *Metrics) RetainRoutes(keep map[RouteLabels]bool) { m.routes.retain(keep) }

// ConnectError counts one failed connection attempt to an endpoint of backend.
func (m *Metrics) ConnectError(backend string) { m.connectErrors.WithLabelValues(backend).Inc() }

// SnapshotBuilt records one build. published is false when the new snapshot
// equalled the serving one and was dropped.
func (m *Metrics) SnapshotBuilt(d time.Duration, published bool) {
	m.buildDuration.Observe(d.Seconds())
	if published {
		m.builds.WithLabelValues("ok").Inc()
	} else {
		m.builds.WithLabelValues("unchanged").Inc()
	}
}

// SnapshotServing describes the snapshot now serving traffic.
type SnapshotServing struct {
	Generation uint64
	Routes     int
	// Problems counts problems by object kind and severity.
	Problems map[[2]string]int
	// CertificateExpiry maps a source Secret ("namespace/name", or "default")
	// to its certificate's NotAfter.
	CertificateExpiry map[string]time.Time
}

// Serving updates the gauges that describe the serving snapshot.
func (m *Metrics) Serving(s SnapshotServing) {
	m.generation.Set(float64(s.Generation))
	m.routeCount.Set(float64(s.Routes))
	m.problems.Reset()
	for k, n := range s.Problems {
		m.problems.WithLabelValues(k[0], k[1]).Set(float64(n))
	}
	if len(s.Problems) == 0 {
		// One series at 0 (its labels empty, so absent in Prometheus): with
		// no series at all, sum(portico_config_problems) is empty and a
		// dashboard shows "No data" for a healthy gateway instead of 0.
		m.problems.WithLabelValues("", "").Set(0)
	}
	m.certsLoaded.Set(float64(len(s.CertificateExpiry)))
	m.certExpiry.Reset()
	for secret, notAfter := range s.CertificateExpiry {
		m.certExpiry.WithLabelValues(secret).Set(float64(notAfter.Unix()))
	}
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
