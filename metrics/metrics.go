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
	GRPCResponsesName         = "portico_grpc_responses_total"
	UpstreamConnectErrorsName = "portico_upstream_connect_errors_total"
	SnapshotBuildsName        = "portico_snapshot_builds_total"
	SnapshotBuildDurationName = "portico_snapshot_build_duration_seconds"
	SnapshotGenerationName    = "portico_snapshot_generation"
	RoutesName                = "portico_routes"
	ConfigProblemsName        = "portico_config_problems"
	CertificatesLoadedName    = "portico_certificates_loaded"
	CertificateExpiryName     = "portico_certificate_expiry_timestamp_seconds"
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
}

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
	m.routes = routeSeriesSet{vec: m.requestDuration, grpcVec: m.grpcResponses, m: make(map[RouteLabels]*RouteSeries)}
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
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Route returns the series of one route; it is safe to keep across snapshots.
func (m *Metrics) Route(l RouteLabels) *RouteSeries { return m.routes.get(l) }

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
