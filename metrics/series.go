// Package metrics owns Portico's Prometheus metrics: their names, labels and
// buckets, and the per-route series cache that keeps the request path free of
// label hashing and locks.
//
// Label values are bounded by construction: a route is labelled by the object
// and rule that defined it, a method by one of the standard methods or
// "OTHER", a status by its class. Raw hosts and paths never become labels.
package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// RouteLabels identifies a route in metrics.
type RouteLabels struct {
	Kind, Namespace, Name, Rule string
}

// methods are the request methods that get their own label value; anything
// else is counted as "OTHER" so a client cannot mint series.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "OTHER"}

const codeClasses = 6 // 1xx..5xx and "other"

var codeLabels = [codeClasses]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "PATCH":
		return 4
	case "DELETE":
		return 5
	case "OPTIONS":
		return 6
	case "CONNECT":
		return 7
	case "TRACE":
		return 8
	}
	return 9
}

func codeIndex(code int) int {
	if code < 100 || code > 599 {
		return 0
	}
	return code / 100
}

// CodeClass returns the label value used for an HTTP status code.
func CodeClass(code int) string { return codeLabels[codeIndex(code)] }

// RouteSeries caches the histogram children of one route. The first request
// with a given method and status class resolves its child once; later ones
// observe through an atomic load.
type RouteSeries struct {
	labels   RouteLabels
	vec      *prometheus.HistogramVec
	children [len(methods) * codeClasses]atomic.Pointer[observer]
	grpcVec  *prometheus.CounterVec
	grpc     [len(grpcStatuses)]atomic.Pointer[counter]
}

type counter struct{ prometheus.Counter }

// grpcStatuses are the label values of gRPC statuses: the names of the
// codes gRPC defines (0 to 16), then one for any other value and one for a
// response without grpc-status, so a backend cannot mint series.
var grpcStatuses = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED", "OTHER", "NONE"}

const (
	grpcOther = len(grpcStatuses) - 2
	grpcNone  = len(grpcStatuses) - 1
)

// GRPCStatusLabel returns the label value of a grpc-status header value
// ("" when the response had none).
func GRPCStatusLabel(v string) string { return grpcStatuses[grpcStatusIndex(v)] }

func grpcStatusIndex(v string) int {
	switch {
	case v == "":
		return grpcNone
	case len(v) == 1 && v[0] >= '0' && v[0] <= '9':
		return int(v[0] - '0')
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '6':
		return 10 + int(v[1]-'0')
	}
	return grpcOther
}

// ObserveGRPC counts one gRPC call answered with grpc-status v ("" for
// none).
func (s *RouteSeries) ObserveGRPC(v string) {
	i := grpcStatusIndex(v)
	c := s.grpc[i].Load()
	if c == nil {
		c = &counter{s.grpcVec.WithLabelValues(s.labels.Kind, s.labels.Namespace, s.labels.Name, s.labels.Rule, grpcStatuses[i])}
		s.grpc[i].Store(c)
	}
	c.Inc()
}

type observer struct{ prometheus.Observer }

// Observe records one request's duration in seconds.
func (s *RouteSeries) Observe(method string, code int, seconds float64) {
	i := methodIndex(method)*codeClasses + codeIndex(code)
	o := s.children[i].Load()
	if o == nil {
		o = &observer{s.vec.WithLabelValues(s.labels.Kind, s.labels.Namespace, s.labels.Name, s.labels.Rule,
			methods[i/codeClasses], codeLabels[i%codeClasses])}
		s.children[i].Store(o)
	}
	o.Observe(seconds)
}

// routeSeriesSet hands out one RouteSeries per route, shared across snapshots
// so a configuration change neither resets nor duplicates a route's series.
type routeSeriesSet struct {
	vec     *prometheus.HistogramVec
	grpcVec *prometheus.CounterVec
	// extra are other per-route vectors (TLS passthrough), whose series
	// of a dropped route are deleted too.
	extra []prometheus.Collector
	mu    sync.Mutex
	m     map[RouteLabels]*RouteSeries
}

func (s *routeSeriesSet) get(l RouteLabels) *RouteSeries {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.m[l]
	if rs == nil {
		rs = &RouteSeries{labels: l, vec: s.vec, grpcVec: s.grpcVec}
		s.m[l] = rs
	}
	return rs
}

// retain forgets every route not in keep and deletes its series from the
// registry, so routes removed from the configuration stop being exported.
func (s *routeSeriesSet) retain(keep map[RouteLabels]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.m {
		if keep[l] {
			continue
		}
		delete(s.m, l)
		route := prometheus.Labels{"kind": l.Kind, "namespace": l.Namespace, "name": l.Name, "rule": l.Rule}
		s.vec.DeletePartialMatch(route)
		if s.grpcVec != nil {
			s.grpcVec.DeletePartialMatch(route)
		}
		for _, c := range s.extra {
			if v, ok := c.(interface{ DeletePartialMatch(prometheus.Labels) int }); ok {
				v.DeletePartialMatch(route)
			}
		}
	}
}
