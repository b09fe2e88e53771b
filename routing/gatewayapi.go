package routing

import (
	"regexp"
	"time"

	"portico.dev/portico/hostname"
	"portico.dev/portico/upstream"
)

// This file holds the route features Gateway API HTTPRoutes need beyond
// Ingress: request conditions besides host and path, filters, weighted
// backends and timeouts. Ingress routes leave them all zero.

// PathRegex matches the whole request path against Route.PathRegexp (an
// HTTPRoute RegularExpression path match, RE2 syntax).
const PathRegex PathKind = PathAny + 1

// hostMode says how a table's wildcard hosts match.
type hostMode uint8

const (
	// ingressHosts: "*.example.com" matches exactly one extra label
	// (hostname.OneLabel), and a host whose routes match no path falls
	// through to less specific hosts.
	ingressHosts hostMode = iota
	// gatewayHosts: "*.example.com" matches any number of extra labels
	// (hostname.AnyLabels), and a route's hostname ranks before its path:
	// the exact host first, then the longer wildcard suffix, then routes
	// without hostname, falling through to the next when a pattern's
	// routes match no path or conditions (the Gateway API hostname rules
	// within one listener).
	gatewayHosts
)

// wildcards is the wildcard rule of the mode's tables.
func (m hostMode) wildcards() hostname.Mode {
	if m == gatewayHosts {
		return hostname.AnyLabels
	}
	return hostname.OneLabel
}

// HeaderMatch is one request header condition; the header's value must
// equal Value, or match Regexp (as a whole: Compile anchors it) when it is
// set. Name is compared case-insensitively. A header the request repeats
// matches when one of its values does, or all of them joined with ", ".
// When a route names a header twice, only the first entry counts.
type HeaderMatch struct {
	Name   string
	Value  string
	Regexp *regexp.Regexp
}

// QueryMatch is one query parameter condition, on the first value of the
// parameter after decoding; Name is compared exactly, and Regexp must
// match the whole value. When a route names a parameter twice, only the
// first entry counts.
type QueryMatch struct {
	Name   string
	Value  string
	Regexp *regexp.Regexp
}

// HeaderModifier edits a header set: Set replaces, Add appends, Remove
// deletes, applied in that order by name. Names may be in any case.
type HeaderModifier struct {
	Set    []HeaderValue
	Add    []HeaderValue
	Remove []string
}

// HeaderValue is one header name and value.
type HeaderValue struct {
	Name, Value string
}

// PathModifier replaces a request path: the whole path (ReplaceFullPath), or
// the part the route's PathPrefix matched (ReplacePrefixMatch, element-wise:
// prefix "/foo" replaced by "/bar" turns "/foo/x" into "/bar/x" and "/foo"
// into "/bar"; replaced by "" or "/", it turns "/foo/x" into "/x"). A
// ReplacePrefixMatch on a route that is not a PathPrefix changes nothing.
// The query string is kept.
type PathModifier struct {
	ReplaceFullPath    *string
	ReplacePrefixMatch *string
	// RegexTemplate, on a PathRegex route, replaces the whole path with
	// the template expanded with the captures of the route's PathRegexp
	// (${1}, ${2}, ...), as an nginx rewrite does; on another route it
	// changes nothing. The ingress-nginx rewrite-target annotation.
	RegexTemplate *string
}

// Redirect answers the request with a redirect instead of proxying it. Zero
// fields keep the request's own scheme, host, port and path, with the
// Gateway API port rules: the port the request came in on is kept when
// neither Scheme nor Port is set; a Scheme without Port uses the scheme's
// default port; the scheme's default port is left out of the Location.
type Redirect struct {
	Scheme     string
	Hostname   string
	Port       int32
	Path       *PathModifier
	StatusCode int // 301, 302, 303, 307 or 308; 0 means 302
	// Location, when set, is sent as is and every other field but
	// StatusCode is ignored (an nginx "return 301 <url>").
	Location string
	// DropQuery leaves the request's query out of the Location, as an
	// nginx return does, where a Gateway API redirect keeps it.
	DropQuery bool
}

// Rewrite changes the request before it is forwarded. A Hostname replaces
// the Host header sent to the backend; X-Forwarded-Host keeps the client's.
type Rewrite struct {
	Hostname string
	Path     *PathModifier
	// ForwardedPrefix, when set, is sent as X-Forwarded-Prefix in place of
	// any the client sent (ingress-nginx's x-forwarded-prefix).
	ForwardedPrefix string
}

// Mirror sends a copy of each request (a fraction of them when Percent is
// below 100) to another backend; its responses are discarded. Percent runs
// from 0 (nothing is mirrored) to 100: the translator passes 100 when the
// filter gives neither percent nor fraction. The copy carries the request
// as filtered (headers, rewrite) and its body when it is within
// HandlerConfig.MirrorBodyLimit; a mirror never delays or fails the request.
type Mirror struct {
	Backend *upstream.Backend
	Percent float64
	// Host, when set, is the copy's Host header in place of the request's
	// (ingress-nginx's mirror-host, or its mirror-target's host).
	Host string
	// NoBody sends the copy without the request's body, which is then
	// never read ahead for it (ingress-nginx's mirror-request-body off).
	NoBody bool
}

// Filters are applied in the order Gateway API defines: a CORS preflight
// is answered first, then a redirect answers at once; otherwise request
// headers and the rewrite are applied, mirrors are sent, the request is
// forwarded, and response headers are edited (CORS headers last).
type Filters struct {
	RequestHeaders  *HeaderModifier
	ResponseHeaders *HeaderModifier
	Redirect        *Redirect
	Rewrite         *Rewrite
	Mirrors         []Mirror
	// CORS of a backendRef applies to requests sent to that backend when
	// the route itself has none: a route's preflight is answered before
	// any backend is picked.
	CORS *CORS
	// HSTS, when set, is the Strict-Transport-Security value sent on the
	// backend's responses to requests that came over TLS (ingress-nginx's
	// hsts ConfigMap keys); responses over plain HTTP never carry it
	// (RFC 6797 section 7.2).
	HSTS string
	// LocationRewrite, when set, rewrites the Location and Refresh of the
	// backend's responses (filtered.go).
	LocationRewrite *LocationRewrite
}

// WeightedBackend is one HTTPRoute backendRef. A request picks one backend
// with probability Weight/sum(Weight). Invalid backends (unresolved refs)
// still take their share, answered 500, as the Gateway API requires.
type WeightedBackend struct {
	Backend *upstream.Backend
	Weight  int32
	Invalid bool
	// Filters applied only when this backend is picked (backendRef filters),
	// after the route's own.
	Filters *Filters
}

// Timeouts bound an HTTPRoute rule's requests; zero means no limit beyond
// the global ones. When a bound passes before the response has started,
// the client gets a 504; after that, the response is cut.
type Timeouts struct {
	// Request bounds the whole request, from receipt to the end of the
	// response (a 504 if the response has not started).
	Request time.Duration
	// BackendRequest bounds each request to a backend, up to the end of its
	// response.
	BackendRequest time.Duration
	// BackendRead and BackendSend, when set, bound each read from and each
	// write to the backend instead of the global flags (ingress-nginx's
	// proxy-read-timeout and proxy-send-timeout, nginx's per-operation
	// timeouts): a stream that keeps moving is never cut.
	BackendRead, BackendSend time.Duration
	// Connect, when set, bounds each connect (and TLS handshake) to the
	// backend instead of --upstream-dial-timeout (ingress-nginx's
	// proxy-connect-timeout).
	Connect time.Duration
}

// compileHosts is Compile for a table whose hosts follow mode; Compile
// itself builds an ingressHosts table. A gatewayHosts table is that of one
// Gateway listener without hostname; CompileListeners builds the table of
// a socket several listeners share.
func compileHosts(mode hostMode, routes []*Route, fallback *Route) (t *Table, shadowed []*Route) {
	t, shadowed = Compile(routes, fallback)
	t.hostRules = mode
	return t, shadowed
}
