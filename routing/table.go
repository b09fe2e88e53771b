// Package routing owns the routing tier: a compiled, immutable route table
// that maps a request's host and path to a route, and the HTTP handler that
// serves every request from the current table, in the same process as the
// TLS tier that accepted it.
//
// The table knows nothing of Kubernetes. The snapshot builder translates
// Ingress and Gateway API objects into plain Routes and compiles them here;
// matching is a pure function of (table, request host, path, method,
// headers, query); the table of a socket shared by several Gateway
// listeners first picks the listener whose routes may serve the request
// (listeners.go). The handler then applies the chosen route: an Ingress
// route is forwarded as is, a Gateway API route through its filters, its
// weighted backends and its timeouts (gateway.go), its CORS filter
// (cors.go) and its retry policy (retry.go). On HTTPS sockets shared by
// several Gateway listeners, it answers 421 to requests meant for another
// listener than their connection (misdirected.go).
package routing

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"

	"portico.dev/portico/hostname"
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
	// Ingress spec.rules[].http.paths[], or "default" for spec.defaultBackend;
	// "<rule>/<match>" indexes of an HTTPRoute spec.rules[].matches[]. One
	// HTTPRoute match served under several hostnames keeps one label.
	Rule string
}

// Route is one compiled routing decision. Routes are immutable once compiled,
// apart from the lazily attached metrics series.
type Route struct {
	Source Source
	// Host is "" for any host, "*.example.com" for a wildcard (one label in
	// an ingressHosts table, any number of labels in a gatewayHosts one),
	// or an exact lower-case host name. A Gateway API route keeps its own
	// hostname here, which ranks it within its listener.
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
	// Admission, when set, is checked before the route serves a request
	// (admission.go): body size, client address ranges.
	Admission *Admission
	// ExternalAuth, when set, asks an authentication service about each
	// request after Admission and before serving it (extauth.go).
	ExternalAuth *ExternalAuth
	// BasicAuth, when set, asks for a user name and password after
	// Admission and before ExternalAuth (basicauth.go).
	BasicAuth *BasicAuth
	// SatisfyAny lets a request in when either the Admission's allow list
	// grants its address or its authentication (BasicAuth, ExternalAuth)
	// passes, as nginx's satisfy any; without it both must.
	SatisfyAny bool
	// NoAccessLog leaves the route's requests out of the access log
	// (ingress-nginx's enable-access-log false).
	NoAccessLog bool
	// ClientCert, when set, checks the client's TLS certificate after
	// Admission and before BasicAuth, and tells the backend the verdict
	// (clientcert.go).
	ClientCert *ClientCertAuth
	// CustomErrors, when set, replaces the responses with its listed
	// status codes by its error backend's (customerrors.go).
	CustomErrors *CustomErrors

	// Gateway API features (see gatewayapi.go); zero for Ingress routes.
	// PathRegexp is set when PathKind is PathRegex; it must match the whole
	// path (Compile anchors it).
	PathRegexp *regexp.Regexp
	// Method, Headers and QueryParams are conditions a request must meet
	// besides host and path; all must hold. Method "" matches any method.
	Method      string
	Headers     []HeaderMatch
	QueryParams []QueryMatch
	// Backends, when set, replaces Backend: one is picked per request by
	// weight. A route with neither Backend nor Backends (an HTTPRoute rule
	// without backendRefs) answers 500.
	Backends []WeightedBackend
	Filters  *Filters
	Timeouts Timeouts
	// Retry, when set, sends a request again after a listed status or a
	// connection failure (retry.go).
	Retry *Retry

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
	hostRules hostMode
	// selector and scopes are set in a Gateway socket's table
	// (CompileListeners): a request is matched only against the routes of
	// the listener selector picks for its host, scopes[i] holding those
	// of listener i. The host maps above are then empty.
	selector *listenerHosts
	scopes   []*Table
	// passthrough[i] is ListenerRoutes.Passthrough of listener i.
	passthrough []bool
	// misdirect, when set, answers 421 to HTTPS requests whose Host
	// selects another listener than their SNI (misdirected.go).
	misdirect bool
}

// vhost holds the routes of one host pattern. Every key holds candidates
// in Gateway API precedence order (see Compile); an Ingress key holds one.
type vhost struct {
	exact map[string][]candidate
	// regex routes are tried in input order, after exact and before prefix.
	regex []regexRoute
	// prefix is keyed by the route path without its trailing slash, so "/"
	// is stored as "".
	prefix     map[string][]candidate
	catchAll   []candidate
	longestKey int
}

func (t *Table) notFound() *Route { return t.unmatched }

// unmatchedKind is the Source kind of the pseudo-route that labels the
// metrics of requests no route took.
const unmatchedKind = "Unmatched"

// Routes lists the compiled routes in input order, shadowed ones left out.
func (t *Table) Routes() []*Route { return t.routes }

// Hosts reports how many distinct host patterns the table holds; in a
// Gateway socket's table, the sum over its listeners.
func (t *Table) Hosts() int {
	n := len(t.exact) + len(t.wildcard)
	if t.anyHost != nil {
		n++
	}
	for _, s := range t.scopes {
		n += s.Hosts()
	}
	return n
}

// Compile builds an ingressHosts Table (see compileHosts for Gateway API
// tables).
//
// Routes are taken in input order, which breaks every tie: when two routes
// claim the same host, path kind and path with identical conditions
// (method, headers, query parameters), the first one wins and the later one
// is returned in shadowed, so the caller can report it. Routes that share a
// host and path but differ in conditions are all kept, ordered by Gateway
// API precedence: a route with a method before one without, then more
// header matches first, then more query parameter matches first, then input
// order.
func Compile(routes []*Route, fallback *Route) (t *Table, shadowed []*Route) {
	t = newTable(fallback)
	for _, r := range routes {
		v := t.vhostFor(r.Host)
		if !v.add(r) {
			shadowed = append(shadowed, r)
			continue
		}
		t.routes = append(t.routes, r)
	}
	for _, v := range t.exact {
		v.sort()
	}
	for _, v := range t.wildcard {
		v.sort()
	}
	if t.anyHost != nil {
		t.anyHost.sort()
	}
	return t, shadowed
}

func newTable(fallback *Route) *Table {
	return &Table{
		exact:     make(map[string]*vhost),
		wildcard:  make(map[string]*vhost),
		Fallback:  fallback,
		unmatched: &Route{Source: Source{Kind: unmatchedKind}},
	}
}

func (t *Table) vhostFor(host string) *vhost {
	newVhost := func() *vhost {
		return &vhost{exact: make(map[string][]candidate), prefix: make(map[string][]candidate)}
	}
	switch {
	case host == "":
		if t.anyHost == nil {
			t.anyHost = newVhost()
		}
		return t.anyHost
	case hostname.IsWildcard(host):
		suffix := hostname.NewPattern(host).Key()
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

// add files r under its path key, or reports false when an earlier route
// with the same key and the same conditions shadows it.
func (v *vhost) add(r *Route) bool {
	c := newCandidate(r)
	switch r.PathKind {
	case PathExact:
		list, ok := appendCandidate(v.exact[r.Path], c)
		if !ok {
			return false
		}
		v.exact[r.Path] = list
	case PathAny:
		list, ok := appendCandidate(v.catchAll, c)
		if !ok {
			return false
		}
		v.catchAll = list
	case PathRegex:
		if r.PathRegexp == nil {
			return false
		}
		expr := r.PathRegexp.String()
		for _, rr := range v.regex {
			if rr.expr == expr && sameConditions(rr.cond, c.cond) {
				return false
			}
		}
		v.regex = append(v.regex, regexRoute{
			// The route's expression must match the whole path.
			re:        regexp.MustCompile(`^(?:` + expr + `)$`),
			expr:      expr,
			candidate: c,
		})
	default:
		key := strings.TrimSuffix(r.Path, "/")
		list, ok := appendCandidate(v.prefix[key], c)
		if !ok {
			return false
		}
		v.prefix[key] = list
		if len(key) > v.longestKey {
			v.longestKey = len(key)
		}
	}
	return true
}

func appendCandidate(list []candidate, c candidate) ([]candidate, bool) {
	for _, old := range list {
		if sameConditions(old.cond, c.cond) {
			return list, false
		}
	}
	return append(list, c), true
}

// sort puts every key's candidates in precedence order. The sort is
// stable, so input order breaks ties.
func (v *vhost) sort() {
	for _, list := range v.exact {
		slices.SortStableFunc(list, comparePrecedence)
	}
	for _, list := range v.prefix {
		slices.SortStableFunc(list, comparePrecedence)
	}
	slices.SortStableFunc(v.catchAll, comparePrecedence)
}

// Match returns the route for a request's Host header (or :authority) and
// URL path, or nil when none matches (the caller then uses Fallback). It
// matches only routes without conditions; MatchRequest also evaluates them.
//
// Host patterns are tried from the most specific: the exact host, then
// wildcards, then routes without host, and when a pattern's routes match
// no path (or no conditions), the next, less specific pattern is tried. In
// an ingressHosts table a wildcard covers exactly one label; in a
// gatewayHosts table it covers any number of labels, the longest suffix
// first. A Gateway socket's table (CompileListeners) first picks the one
// listener that serves the host, and tries that listener's routes only.
func (t *Table) Match(host, path string) *Route {
	return t.match(host, path, nil)
}

// MatchRequest is Match for a request, which also evaluates the routes'
// method, header and query parameter conditions. path is the request path
// after cleaning; the host is r.Host.
func (t *Table) MatchRequest(r *http.Request, path string) *Route {
	return t.match(r.Host, path, r)
}

func (t *Table) match(host, path string, req *http.Request) *Route {
	var buf [256]byte
	h := hostname.AppendHost(buf[:0], host)
	if t.scopes != nil {
		i := t.selector.listenerOf(h)
		if i < 0 {
			return nil
		}
		// The rest of the match sees only the listener's routes.
		t = t.scopes[i]
	}
	if len(h) == 0 {
		return t.matchVhost(t.anyHost, path, req)
	}
	// string(h) inside a map index does not allocate.
	if v := t.exact[string(h)]; v != nil {
		if r := v.match(path, req); r != nil {
			return r
		}
	}
	if len(t.wildcard) > 0 {
		// The suffixes wildcards may be keyed by, longest first; an
		// Ingress wildcard covers exactly one label, so it has only one.
		mode := t.hostRules.wildcards()
		for i := hostname.FirstKey(h, mode); i >= 0; i = hostname.NextKey(h, i, mode) {
			if v := t.wildcard[string(h[i:])]; v != nil {
				if r := v.match(path, req); r != nil {
					return r
				}
			}
		}
	}
	return t.matchVhost(t.anyHost, path, req)
}

func (t *Table) matchVhost(v *vhost, path string, req *http.Request) *Route {
	if v == nil {
		return nil
	}
	return v.match(path, req)
}

func (v *vhost) match(path string, req *http.Request) *Route {
	if len(v.exact) > 0 {
		if r := pick(v.exact[path], req); r != nil {
			return r
		}
	}
	for i := range v.regex {
		rr := &v.regex[i]
		if rr.cond.accepts(req) && rr.re.MatchString(path) {
			return rr.route
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
			if r := pick(v.prefix[p], req); r != nil {
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
	return pick(v.catchAll, req)
}

// pick returns the first candidate whose conditions req meets.
func pick(list []candidate, req *http.Request) *Route {
	for i := range list {
		if list[i].cond.accepts(req) {
			return list[i].route
		}
	}
	return nil
}
