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
	vec *prometheus.HistogramVec
	mu  sync.Mutex
	m   map[RouteLabels]*RouteSeries
}

func (s *routeSeriesSet) get(l RouteLabels) *RouteSeries {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.m[l]
	if rs == nil {
		rs = &RouteSeries{labels: l, vec: s.vec}
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
		s.vec.DeletePartialMatch(prometheus.Labels{"kind": l.Kind, "namespace": l.Namespace, "name": l.Name, "rule": l.Rule})
	}
}
