package routing

import (
	"regexp"
	"time"

	"portico.dev/portico/upstream"
)

// This file holds the route features Gateway API HTTPRoutes need beyond
// Ingress: request conditions besides host and path, filters, weighted
// backends and timeouts. Ingress routes leave them all zero.

// PathRegex matches the whole request path against Route.PathRegexp (an
// HTTPRoute RegularExpression path match, RE2 syntax).
const PathRegex PathKind = PathAny + 1

// HostMode says how a table's wildcard hosts match.
type HostMode uint8

const (
	// IngressHosts: "*.example.com" matches exactly one extra label, and a
	// host whose routes match no path falls through to less specific hosts.
	IngressHosts HostMode = iota
	// GatewayHosts: "*.example.com" matches any number of extra labels, the
	// longest matching suffix wins, and there is no fall-through between
	// host patterns (the Gateway API hostname rules).
	GatewayHosts
)

// HeaderMatch is one request header condition; the header's value must
// equal Value, or match Regexp when it is set. Name is canonical
// (textproto.CanonicalMIMEHeaderKey).
type HeaderMatch struct {
	Name   string
	Value  string
	Regexp *regexp.Regexp
}

// QueryMatch is one query parameter condition, on the first value of the
// parameter; Name is compared exactly.
type QueryMatch struct {
	Name   string
	Value  string
	Regexp *regexp.Regexp
}

// HeaderModifier edits a header set: Set replaces, Add appends, Remove
// deletes, applied in that order by name.
type HeaderModifier struct {
	Set    []HeaderValue
	Add    []HeaderValue
	Remove []string
}

// HeaderValue is one header name and value; Name is canonical.
type HeaderValue struct {
	Name, Value string
}

// PathModifier replaces a request path: the whole path (ReplaceFullPath), or
// the part the route's PathPrefix matched (ReplacePrefixMatch).
type PathModifier struct {
	ReplaceFullPath    *string
	ReplacePrefixMatch *string
}

// Redirect answers the request with a redirect instead of proxying it. Zero
// fields keep the request's own scheme, host, port and path.
type Redirect struct {
	Scheme     string
	Hostname   string
	Port       int32
	Path       *PathModifier
	StatusCode int // 301, 302, 303, 307 or 308; 0 means 302
}

// Rewrite changes the request before it is forwarded.
type Rewrite struct {
	Hostname string
	Path     *PathModifier
}

// Mirror sends a copy of each request (a fraction of them when Percent is
// below 100) to another backend; its responses are discarded.
type Mirror struct {
	Backend *upstream.Backend
	Percent float64
}

// Filters are applied in the order Gateway API defines: a redirect answers
// at once; otherwise request headers and the rewrite are applied, mirrors
// are sent, the request is forwarded, and response headers are edited.
type Filters struct {
	RequestHeaders  *HeaderModifier
	ResponseHeaders *HeaderModifier
	Redirect        *Redirect
	Rewrite         *Rewrite
	Mirrors         []Mirror
}

// WeightedBackend is one HTTPRoute backendRef. A request picks one backend
// with probability Weight/sum(Weight). Invalid backends (unresolved refs)
// still take their share, answered 500, as the Gateway API requires.
type WeightedBackend struct {
	Backend *upstream.Backend
	Weight  int32
	Invalid bool
	// Filters applied only when this backend is picked (backendRef filters).
	Filters *Filters
}

// Timeouts bound an HTTPRoute rule's requests; zero means no limit beyond
// the global ones.
type Timeouts struct {
	// Request bounds the whole request, from receipt to the end of the
	// response (a 504 if the response has not started).
	Request time.Duration
	// BackendRequest bounds each request to a backend.
	BackendRequest time.Duration
}

// CompileHosts is Compile for a table whose hosts follow mode; Compile
// itself builds an IngressHosts table.
func CompileHosts(mode HostMode, routes []*Route, fallback *Route) (t *Table, shadowed []*Route) {
	t, shadowed = Compile(routes, fallback)
	t.hostMode = mode
	return t, shadowed
}
