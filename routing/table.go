// Package routing owns the routing tier: a compiled, immutable route table
// that maps a request's host and path to a route, and the HTTP handler that
// serves every request from the current table, in the same process as the
// TLS tier that accepted it.
//
// The table knows nothing of Kubernetes. The snapshot builder translates
// Ingress (and later Gateway API) objects into plain Routes and compiles them
// here; matching is a pure function of (table, host, path).
package routing

import (
	"regexp"
	"strings"
	"sync/atomic"

	"portico.dev/portico/metrics"
	"portico.dev/portico/upstream"
)

// PathKind says how a route's path is compared with a request path.
type PathKind uint8

const (
	// PathPrefix matches by path element: "/foo" matches "/foo", "/foo/" and
	// "/foo/bar" but not "/foobar". A trailing slash in the route's path is
	// ignored. Ingress ImplementationSpecific is compiled as PathPrefix.
	PathPrefix PathKind = iota + 1
	// PathExact matches the request path exactly, case-sensitively.
	PathExact
	// PathAny is a host's catch-all (an Ingress spec.defaultBackend): it
	// matches any path of its host, after every Exact and Prefix route of that
	// host has failed to match.
	PathAny
)

func (k PathKind) String() string {
	switch k {
	case PathPrefix:
		return "Prefix"
	case PathExact:
		return "Exact"
	case PathAny:
		return "Any"
	}
	return "Unknown"
}

// Source names the object and rule a route came from. It labels the route's
// metrics, so it must stay bounded: never a raw path or host.
type Source struct {
	Kind      string // "Ingress", "HTTPRoute" or "Fallback"
	Namespace string
	Name      string
	// Rule locates the route inside its object: "<rule>/<path>" indexes of an
	// Ingress spec.rules[].http.paths[], or "default" for spec.defaultBackend.
	Rule string
}

// Route is one compiled routing decision. Routes are immutable once compiled,
// apart from the lazily attached metrics series.
type Route struct {
	Source Source
	// Host is "" for any host, "*.example.com" for a wildcard first label, or
	// an exact lower-case host name.
	Host     string
	PathKind PathKind
	Path     string
	Backend  *upstream.Backend
	// RedirectHTTPS answers plain-HTTP requests with a permanent redirect to
	// the same URL over HTTPS instead of proxying them.
	RedirectHTTPS bool
	// FallbackOnNoEndpoints hands requests to the fallback backend while this
	// route's backend has no ready endpoints, instead of answering 503.
	FallbackOnNoEndpoints bool

	// Gateway API features (see gatewayapi.go); zero for Ingress routes.
	// PathRegexp is set when PathKind is PathRegex.
	PathRegexp  *regexp.Regexp
	Method      string // "" matches any method
	Headers     []HeaderMatch
	QueryParams []QueryMatch
	// Backends, when set, replaces Backend: one is picked per request by
	// weight.
	Backends []WeightedBackend
	Filters  *Filters
	Timeouts Timeouts

	series atomic.Pointer[metrics.RouteSeries]
}

// Table is an immutable route table. Match reads it without locks and
// without allocating, so any number of requests can share one Table.
type Table struct {
	exact    map[string]*vhost // keyed by lower-case host
	wildcard map[string]*vhost // keyed by the suffix after "*."
	anyHost  *vhost            // routes with no host
	// Fallback serves requests no route matches; nil means 404.
	Fallback *Route
	routes   []*Route
	// unmatched labels the metrics of requests answered 404 because nothing
	// matched and no fallback is configured.
	unmatched *Route
	hostMode  HostMode
}

// vhost holds the routes of one host pattern.
type vhost struct {
	exact map[string]*Route
	// prefix is keyed by the route path without its trailing slash, so "/"
	// is stored as "".
	prefix     map[string]*Route
	catchAll   *Route
	longestKey int
}

// Compile builds a Table. Routes are taken in precedence order: when two
// routes claim the same host, path kind and path, the first one wins and the
// later one is returned in shadowed, so the caller can report it.
func Compile(routes []*Route, fallback *Route) (t *Table, shadowed []*Route) {
	t = &Table{
		exact:     make(map[string]*vhost),
		wildcard:  make(map[string]*vhost),
		Fallback:  fallback,
		unmatched: &Route{Source: Source{Kind: "Unmatched"}},
	}
	for _, r := range routes {
		v := t.vhostFor(r.Host)
		if !v.add(r) {
			shadowed = append(shadowed, r)
			continue
		}
		t.routes = append(t.routes, r)
	}
	return t, shadowed
}

func (t *Table) notFound() *Route { return t.unmatched }

// Routes lists the compiled routes in precedence order, shadowed ones left out.
func (t *Table) Routes() []*Route { return t.routes }

// Hosts reports how many distinct host patterns the table holds.
func (t *Table) Hosts() int {
	n := len(t.exact) + len(t.wildcard)
	if t.anyHost != nil {
		n++
	}
	return n
}

func (t *Table) vhostFor(host string) *vhost {
	newVhost := func() *vhost {
		return &vhost{exact: make(map[string]*Route), prefix: make(map[string]*Route)}
	}
	switch {
	case host == "":
		if t.anyHost == nil {
			t.anyHost = newVhost()
		}
		return t.anyHost
	case strings.HasPrefix(host, "*."):
		suffix := host[2:]
		v := t.wildcard[suffix]
		if v == nil {
			v = newVhost()
			t.wildcard[suffix] = v
		}
		return v
	default:
		v := t.exact[host]
		if v == nil {
			v = newVhost()
			t.exact[host] = v
		}
		return v
	}
}

func (v *vhost) add(r *Route) bool {
	switch r.PathKind {
	case PathExact:
		if _, dup := v.exact[r.Path]; dup {
			return false
		}
		v.exact[r.Path] = r
	case PathAny:
		if v.catchAll != nil {
			return false
		}
		v.catchAll = r
	default:
		key := strings.TrimSuffix(r.Path, "/")
		if _, dup := v.prefix[key]; dup {
			return false
		}
		v.prefix[key] = r
		if len(key) > v.longestKey {
			v.longestKey = len(key)
		}
	}
	return true
}

// Match returns the route for a request's Host header (or :authority) and
// URL path, or nil when none matches (the caller then uses Fallback).
//
// Host patterns are tried from the most specific: the exact host, then a
// wildcard for its first label, then routes without host. Within a host the
// longest matching path wins and Exact beats Prefix at equal length. When a
// host pattern matches but none of its paths do, the next, less specific
// pattern is tried.
func (t *Table) Match(host, path string) *Route {
	var buf [256]byte
	h := normalizeHost(host, buf[:0])
	if len(h) == 0 {
		return t.matchVhost(t.anyHost, path)
	}
	// string(h) inside a map index does not allocate.
	if v := t.exact[string(h)]; v != nil {
		if r := v.match(path); r != nil {
			return r
		}
	}
	if len(t.wildcard) > 0 {
		for i, c := range h {
			if c == '.' {
				if i > 0 {
					if v := t.wildcard[string(h[i+1:])]; v != nil {
						if r := v.match(path); r != nil {
							return r
						}
					}
				}
				break
			}
		}
	}
	return t.matchVhost(t.anyHost, path)
}

func (t *Table) matchVhost(v *vhost, path string) *Route {
	if v == nil {
		return nil
	}
	return v.match(path)
}

func (v *vhost) match(path string) *Route {
	if len(v.exact) > 0 {
		if r := v.exact[path]; r != nil {
			return r
		}
	}
	if len(v.prefix) > 0 {
		p := strings.TrimSuffix(path, "/")
		// Skip candidates longer than any stored prefix: they cannot match.
		for len(p) > v.longestKey {
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				p = ""
				break
			}
			p = p[:i]
		}
		for {
			if r := v.prefix[p]; r != nil {
				return r
			}
			if p == "" {
				break
			}
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
	return v.catchAll
}

// normalizeHost appends to dst the lower-cased Host header value without its
// port and trailing dot. It returns an empty slice for an empty host or one
// longer than cap(dst), which then matches only routes without host.
func normalizeHost(host string, dst []byte) []byte {
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		if strings.HasPrefix(host, "[") {
			// IPv6 literal: "[::1]:8443" or "[::1]".
			if end := strings.IndexByte(host, ']'); end > 0 {
				host = host[:end+1]
			}
		} else {
			host = host[:i]
		}
	}
	host = strings.TrimSuffix(host, ".")
	if len(host) > cap(dst) {
		return dst[:0]
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
