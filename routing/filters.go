package routing

import (
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// This file holds the pure parts of the Gateway API filters: header edits,
// path replacement, redirect targets and the weighted backend pick.

// apply edits h: Set replaces, Add appends, Remove deletes. Names are
// canonicalised, so a filter naming "x-foo" edits the header "X-Foo".
func (m *HeaderModifier) apply(h http.Header) {
	if m == nil {
		return
	}
	for _, hv := range m.Set {
		h[textproto.CanonicalMIMEHeaderKey(hv.Name)] = []string{hv.Value}
	}
	for _, hv := range m.Add {
		k := textproto.CanonicalMIMEHeaderKey(hv.Name)
		old := h[k]
		// The full slice expression makes append copy: the inbound server
		// may share one backing array between several headers.
		h[k] = append(old[:len(old):len(old)], hv.Value)
	}
	for _, name := range m.Remove {
		delete(h, textproto.CanonicalMIMEHeaderKey(name))
	}
}

// apply returns the path the modifier makes of path for a request route
// matched. ReplacePrefixMatch replaces the part a PathPrefix route matched;
// on any other route, or a path that does not start with the route's path
// element-wise, it changes nothing.
func (m *PathModifier) apply(path string, route *Route) string {
	switch {
	case m == nil:
		return path
	case m.ReplaceFullPath != nil:
		if *m.ReplaceFullPath == "" {
			return "/"
		}
		return *m.ReplaceFullPath
	case m.ReplacePrefixMatch != nil && route.PathKind == PathPrefix:
		return replacePrefix(path, route.Path, *m.ReplacePrefixMatch)
	case m.RegexTemplate != nil && route.PathKind == PathRegex && route.PathRegexp != nil:
		return expandRegexPath(path, route.PathRegexp, *m.RegexTemplate)
	}
	return path
}

// expandRegexPath is the path an nginx rewrite makes of path: the whole
// path replaced by template with re's captures expanded. The submatch
// search and the expansion allocate; only routes with a capture rewrite
// (ingress-nginx rewrite-target) pay for them.
func expandRegexPath(path string, re *regexp.Regexp, template string) string {
	m := re.FindStringSubmatchIndex(path)
	if m == nil {
		return path
	}
	out := string(re.ExpandString(nil, template, path, m))
	if out == "" || out[0] != '/' {
		out = "/" + out
	}
	return out
}

// replacePrefix replaces the path elements prefix matched by replacement,
// following the Gateway API table: with prefix "/foo", replacement "/bar"
// turns "/foo/x" into "/bar/x" and "/foo" into "/bar"; replacement "" or
// "/" turns "/foo/x" into "/x" and "/foo" into "/". Trailing slashes of
// prefix and replacement are ignored.
func replacePrefix(path, prefix, replacement string) string {
	p := strings.TrimSuffix(prefix, "/")
	var rest string
	switch {
	case p == "":
		// Prefix "/" matched every path; "/" itself has nothing after it.
		rest = path
		if rest == "/" {
			rest = ""
		}
	case path == p:
		rest = ""
	case strings.HasPrefix(path, p+"/"):
		rest = path[len(p):]
	default:
		return path
	}
	out := strings.TrimSuffix(replacement, "/") + rest
	if out == "" || out[0] != '/' {
		out = "/" + out
	}
	return out
}

// redirectLocation is the Location of a RequestRedirect for r: the
// request's scheme, host, port and path, with those the filter sets
// replaced. path is the (cleaned) request path and route the route that
// matched it. listenerPort is the port the request came in on.
//
// Port rules (Gateway API): a port equal to the scheme's default is left
// out; a filter that sets a scheme but no port uses that scheme's default
// port; a filter that sets neither keeps the listener's port.
func redirectLocation(r *http.Request, red *Redirect, path string, route *Route, listenerPort int) string {
	if red.Location != "" {
		return red.Location
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if red.Scheme != "" {
		scheme = strings.ToLower(red.Scheme)
	}

	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if red.Hostname != "" {
		host = red.Hostname
	}

	port := int(red.Port)
	if port == 0 {
		if red.Scheme != "" {
			port = defaultPort(scheme)
		}
		if port == 0 {
			port = listenerPort
		}
	}

	var sb strings.Builder
	sb.WriteString(scheme)
	sb.WriteString("://")
	switch {
	case port != 0 && port != defaultPort(scheme):
		sb.WriteString(net.JoinHostPort(host, strconv.Itoa(port)))
	case strings.Contains(host, ":"):
		sb.WriteString("[" + host + "]")
	default:
		sb.WriteString(host)
	}
	if red.Path != nil {
		path = red.Path.apply(path, route)
	}
	u := url.URL{Path: path, RawQuery: r.URL.RawQuery}
	if red.DropQuery {
		u.RawQuery = ""
	}
	sb.WriteString(u.RequestURI())
	return sb.String()
}

func defaultPort(scheme string) int {
	switch scheme {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}

// listenerPort is the local port the request arrived on, else the port of
// its Host header, else the default port of its scheme.
func listenerPort(r *http.Request) int {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if tcp, ok := a.(*net.TCPAddr); ok && tcp.Port != 0 {
			return tcp.Port
		}
		if _, p, err := net.SplitHostPort(a.String()); err == nil {
			if n, err := strconv.Atoi(p); err == nil && n != 0 {
				return n
			}
		}
	}
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		if n, err := strconv.Atoi(p); err == nil {
			return n
		}
	}
	if r.TLS != nil {
		return 443
	}
	return 80
}

// pickBackend picks one backend with probability Weight/sum(Weight), or
// returns nil when every weight is zero.
func pickBackend(backends []WeightedBackend) *WeightedBackend {
	var total int64
	for i := range backends {
		if w := backends[i].Weight; w > 0 {
			total += int64(w)
		}
	}
	if total == 0 {
		return nil
	}
	n := rand.Int64N(total)
	for i := range backends {
		w := int64(backends[i].Weight)
		if w <= 0 {
			continue
		}
		if n < w {
			return &backends[i]
		}
		n -= w
	}
	return nil // unreachable: n < total
}

// sampled reports whether a mirror with the given percentage takes this
// request.
func sampled(percent float64) bool {
	if percent >= 100 {
		return true
	}
	return percent > 0 && rand.Float64()*100 < percent
}

// PickBackend picks one of the route's backends by weight, as a request
// would; nil when every weight is zero. TLS passthrough uses it once per
// connection.
func (r *Route) PickBackend() *WeightedBackend { return pickBackend(r.Backends) }
