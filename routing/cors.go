package routing

import (
	"net/http"
	"strconv"
	"strings"
)

// This file holds the HTTPRoute CORS filter: matching a request's Origin
// against the allowed origins, answering preflight requests, and the
// headers added to the response of an actual cross-origin request.

// CORS is an HTTPRoute CORS filter. Portico answers preflight requests
// (OPTIONS with Origin and Access-Control-Request-Method) itself; other
// requests are forwarded and, when their Origin is allowed, get the
// Access-Control-* response headers.
//
// The allowed Origin is always echoed rather than answered with "*", and
// a wildcard method or header list echoes what the preflight asked for:
// both are valid with and without credentials, so one rule serves both.
type CORS struct {
	// AllowOrigins are "<scheme>://<host>[:<port>]" origins, whose host may
	// start with "*" (matching any number of labels, as "*.bar.com" matches
	// "a.b.bar.com"), or the single entry "*" for any origin. A missing
	// port is the scheme's default.
	AllowOrigins []string
	// AllowMethods are the methods sent in Access-Control-Allow-Methods, or
	// the single entry "*" for any method.
	AllowMethods []string
	// AllowHeaders are the request headers allowed, or the single entry
	// "*" for any.
	AllowHeaders []string
	// ExposeHeaders are the response headers the browser may read, or the
	// single entry "*" (sent only without credentials, where it means
	// every header).
	ExposeHeaders []string
	// MaxAge is how long, in seconds, the browser may cache a preflight
	// answer; zero means defaultCORSMaxAge.
	MaxAge int32
	// AllowCredentials sends Access-Control-Allow-Credentials: true.
	AllowCredentials bool
}

// defaultCORSMaxAge is the Access-Control-Max-Age sent when the filter
// sets none (the Gateway API default).
const defaultCORSMaxAge = 5

// isPreflight reports whether r is a CORS preflight request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// allows reports whether the filter allows requests from origin.
func (c *CORS) allows(origin string) bool {
	if origin == "" {
		return false
	}
	for _, pattern := range c.AllowOrigins {
		if matchOrigin(pattern, origin) {
			return true
		}
	}
	return false
}

// matchOrigin reports whether origin ("<scheme>://<host>[:<port>]") is
// allowed by pattern: "*" allows every origin; otherwise the schemes and
// ports must be equal (a missing port being the scheme's default), and the
// hosts equal ignoring case, or, for a pattern host "*.suffix", the origin
// host must end in ".suffix" after at least one more character. A pattern
// host of "*" alone matches any host.
func matchOrigin(pattern, origin string) bool {
	if pattern == "*" {
		return true
	}
	ps, ph, pp, ok := splitOrigin(pattern)
	if !ok {
		return false
	}
	os, oh, op, ok := splitOrigin(origin)
	if !ok || !strings.EqualFold(ps, os) || pp != op {
		return false
	}
	switch {
	case ph == "*":
		return true
	case strings.HasPrefix(ph, "*"):
		suffix := ph[1:]
		return len(oh) > len(suffix) && strings.EqualFold(oh[len(oh)-len(suffix):], suffix)
	}
	return strings.EqualFold(ph, oh)
}

// splitOrigin splits "<scheme>://<host>[:<port>]" into its parts, with the
// scheme's default port filled in. A path, query or user part makes it
// invalid, as does "null" (the opaque origin browsers send).
func splitOrigin(origin string) (scheme, host, port string, ok bool) {
	scheme, rest, found := strings.Cut(origin, "://")
	if !found || scheme == "" || rest == "" || strings.ContainsAny(rest, "/?#@") {
		return "", "", "", false
	}
	host = rest
	if strings.HasPrefix(rest, "[") {
		// An IPv6 literal: its port follows the closing bracket.
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", "", false
		}
		host = rest[:end+1]
		if tail := rest[end+1:]; tail != "" {
			if tail[0] != ':' {
				return "", "", "", false
			}
			port = tail[1:]
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i+1:]
	}
	if host == "" {
		return "", "", "", false
	}
	if port == "" {
		switch strings.ToLower(scheme) {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme, host, port, true
}

// preflight answers a preflight request: 204 with the Access-Control-*
// headers when the Origin is allowed, 204 without them otherwise (the
// browser then refuses the actual request).
func (c *CORS) preflight(w http.ResponseWriter, r *http.Request) int {
	h := w.Header()
	addVaryOrigin(h)
	origin := r.Header.Get("Origin")
	if c.allows(origin) {
		h.Set("Access-Control-Allow-Origin", origin)
		if c.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if methods := c.allowedMethods(r.Header.Get("Access-Control-Request-Method")); methods != "" {
			h.Set("Access-Control-Allow-Methods", methods)
		}
		if headers := c.allowedHeaders(r.Header.Values("Access-Control-Request-Headers")); headers != "" {
			h.Set("Access-Control-Allow-Headers", headers)
		}
		if expose := c.exposedHeaders(); expose != "" {
			h.Set("Access-Control-Expose-Headers", expose)
		}
		maxAge := c.MaxAge
		if maxAge <= 0 {
			maxAge = defaultCORSMaxAge
		}
		h.Set("Access-Control-Max-Age", strconv.Itoa(int(maxAge)))
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// editResponse adds the Access-Control-* headers of an actual
// cross-origin request from an allowed origin to the backend's response,
// replacing any the backend set.
func (c *CORS) editResponse(h http.Header, origin string) {
	addVaryOrigin(h)
	if !c.allows(origin) {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	} else {
		h.Del("Access-Control-Allow-Credentials")
	}
	if expose := c.exposedHeaders(); expose != "" {
		h.Set("Access-Control-Expose-Headers", expose)
	}
}

// allowedMethods is the Access-Control-Allow-Methods value: the configured
// list, or for "*" the method the preflight asked for.
func (c *CORS) allowedMethods(requested string) string {
	if len(c.AllowMethods) == 1 && c.AllowMethods[0] == "*" {
		return requested
	}
	return strings.Join(c.AllowMethods, ", ")
}

// allowedHeaders is the Access-Control-Allow-Headers value: the configured
// list, or for "*" the headers the preflight asked for.
func (c *CORS) allowedHeaders(requested []string) string {
	if len(c.AllowHeaders) == 1 && c.AllowHeaders[0] == "*" {
		var names []string
		for _, v := range requested {
			for _, name := range strings.Split(v, ",") {
				if name = strings.TrimSpace(name); name != "" {
					names = append(names, name)
				}
			}
		}
		return strings.Join(names, ", ")
	}
	return strings.Join(c.AllowHeaders, ", ")
}

// exposedHeaders is the Access-Control-Expose-Headers value. "*" means
// every header only for requests without credentials; with credentials
// browsers read it as a header named "*", so nothing is sent.
func (c *CORS) exposedHeaders() string {
	if len(c.ExposeHeaders) == 1 && c.ExposeHeaders[0] == "*" && c.AllowCredentials {
		return ""
	}
	return strings.Join(c.ExposeHeaders, ", ")
}

// addVaryOrigin tells caches that the response depends on the Origin
// request header, unless the header already says so.
func addVaryOrigin(h http.Header) {
	for _, v := range h["Vary"] {
		for _, name := range strings.Split(v, ",") {
			if n := strings.TrimSpace(name); n == "*" || strings.EqualFold(n, "Origin") {
				return
			}
		}
	}
	vary := h["Vary"]
	h["Vary"] = append(vary[:len(vary):len(vary)], "Origin")
}
