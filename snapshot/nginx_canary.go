package snapshot

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"portico.dev/portico/routing"
)

// This file holds ingress-nginx canaries: an Ingress with canary: "true"
// serves nothing of its own; for each of its paths that a main Ingress
// routes (same host, same path), it takes that path's requests when the
// canary header says so, else when the canary cookie says so, else by
// weight, in that order of precedence. Everything else about the path
// (redirects, rewrites, limits) is the main Ingress's, as in ingress-nginx.

// canarySpec is what the canary-* annotations of one Ingress ask for.
type canarySpec struct {
	on            bool
	header        string
	headerValue   string
	headerPattern *regexp.Regexp
	cookie        string
	weight, total int32
}

// readCanary reads one canary annotation into nc.canary and returns why
// the value is refused, or "".
func (nc *nginxConfig) readCanary(name, v string) string {
	if nc.canary == nil {
		nc.canary = &canarySpec{total: 100}
	}
	c := nc.canary
	switch name {
	case "canary":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Sprintf("%q is not a boolean (true or false); the Ingress is served as an ordinary one", v)
		}
		c.on = b
	case "canary-by-header":
		if !validHeaderName(v) {
			return fmt.Sprintf("%q is not a header name; the canary is not chosen by header", v)
		}
		c.header = v
	case "canary-by-header-value":
		if !validFieldValue(v) {
			return fmt.Sprintf("%q is not a header value; it is left out", v)
		}
		c.headerValue = v
	case "canary-by-header-pattern":
		// ingress-nginx matches the pattern anywhere in the value; the
		// route's header match must match the whole value.
		re, err := regexp.Compile(`(?s).*(?:` + v + `).*`)
		if err != nil || v == "" {
			return fmt.Sprintf("%q is not a regular expression Portico can run (RE2); it is left out", v)
		}
		c.headerPattern = re
	case "canary-by-cookie":
		if v == "" || strings.ContainsAny(v, "=; \t,") || !validFieldValue(v) {
			return fmt.Sprintf("%q is not a cookie name; the canary is not chosen by cookie", v)
		}
		c.cookie = v
	case "canary-weight", "canary-weight-total":
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 || (name == "canary-weight-total" && n == 0) {
			return fmt.Sprintf("%q is not a non-negative whole number; it is left out", v)
		}
		if name == "canary-weight" {
			c.weight = int32(n)
		} else {
			c.total = int32(n)
		}
	}
	return ""
}

func validHeaderName(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// canaryRoutes are the routes of one canary Ingress, kept aside until every
// main route is known.
type canaryRoutes struct {
	ref    ObjectRef
	spec   *canarySpec
	routes []*routing.Route
}

// applyCanaries joins each canary path to the main route of the same host
// and path: routes that send the canary's header or cookie to its backend
// (or, for "never", to the main one), and the canary's weight among the
// main route's backends. A canary path without a main route, or a second
// canary for one, is reported and not served.
func (b *builder) applyCanaries(routes []*routing.Route, canaries []canaryRoutes) []*routing.Route {
	if len(canaries) == 0 {
		return routes
	}
	mains := make(map[string]*routing.Route)
	for _, r := range routes {
		if r.Source.Kind == "Ingress" && r.Source.Rule != ruleAppRoot && r.Source.Rule != ruleFromToWWW {
			k := canaryKey(r)
			if mains[k] == nil {
				mains[k] = r
			}
		}
	}
	taken := make(map[*routing.Route]ObjectRef)
	before := make(map[*routing.Route][]*routing.Route)
	for _, cr := range canaries {
		s := cr.spec
		for _, c := range cr.routes {
			if c.Source.Rule == ruleAppRoot || c.Source.Rule == ruleFromToWWW {
				continue
			}
			m := mains[canaryKey(c)]
			if m == nil {
				b.problems.add(cr.ref, Warning, "CanaryWithoutMain",
					"canary path %q of host %q has no main Ingress with the same host and path; it is not served (ingress-nginx ignores it too)", c.Path, displayHost(c.Host))
				continue
			}
			if by, ok := taken[m]; ok {
				b.problems.add(cr.ref, Warning, "CanaryConflict",
					"path %q of host %q already has the canary %s; this one is not served (ingress-nginx allows one canary per path)", c.Path, displayHost(c.Host), by)
				continue
			}
			taken[m] = cr.ref
			canary := c.Backend
			match := func(header routing.HeaderMatch, toCanary bool) {
				r := cloneRoute(m)
				r.Headers = append(append([]routing.HeaderMatch(nil), m.Headers...), header)
				r.Backends = nil
				if toCanary {
					r.Backend, r.Source = canary, c.Source
				}
				before[m] = append(before[m], r)
			}
			if s.header != "" {
				switch {
				case s.headerValue != "":
					match(routing.HeaderMatch{Name: s.header, Value: s.headerValue}, true)
				case s.headerPattern != nil:
					match(routing.HeaderMatch{Name: s.header, Regexp: s.headerPattern}, true)
				default:
					match(routing.HeaderMatch{Name: s.header, Value: "always"}, true)
					match(routing.HeaderMatch{Name: s.header, Value: "never"}, false)
				}
			}
			if s.cookie != "" {
				match(routing.HeaderMatch{Name: "Cookie", Regexp: cookieIs(s.cookie, "always")}, true)
				match(routing.HeaderMatch{Name: "Cookie", Regexp: cookieIs(s.cookie, "never")}, false)
			}
			if s.weight > 0 {
				w := min(s.weight, s.total)
				m.Backends = []routing.WeightedBackend{{Backend: m.Backend, Weight: s.total - w}, {Backend: canary, Weight: w}}
			}
		}
	}
	// The header and cookie routes go right before their main route:
	// regex routes are tried in order, and the main one takes any request.
	out := make([]*routing.Route, 0, len(routes)+2*len(before))
	for _, r := range routes {
		out = append(out, before[r]...)
		out = append(out, r)
	}
	return out
}

// canaryKey names a route by host and path as written, so that a canary
// finds its main route whatever regex mode made of both.
func canaryKey(r *routing.Route) string {
	p := r.Path
	exact := r.PathKind == routing.PathExact
	if !exact {
		p = strings.TrimSuffix(p, "/")
	}
	return fmt.Sprintf("%s\x00%t\x00%s", r.Host, exact, p)
}

// cookieIs matches a Cookie header that holds name=value.
func cookieIs(name, value string) *regexp.Regexp {
	return regexp.MustCompile(`(?:.*;\s*)?` + regexp.QuoteMeta(name) + `=` + regexp.QuoteMeta(value) + `(?:;.*)?`)
}

func displayHost(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

// cloneRoute copies a route's configuration (not its metrics series).
func cloneRoute(m *routing.Route) *routing.Route {
	return &routing.Route{
		Source: m.Source, Host: m.Host, PathKind: m.PathKind, Path: m.Path, PathRegexp: m.PathRegexp,
		Backend: m.Backend, Backends: m.Backends, RedirectHTTPS: m.RedirectHTTPS,
		FallbackOnNoEndpoints: m.FallbackOnNoEndpoints, Admission: m.Admission, ExternalAuth: m.ExternalAuth, BasicAuth: m.BasicAuth, ClientCert: m.ClientCert,
		Method: m.Method, Headers: m.Headers, QueryParams: m.QueryParams,
		Filters: m.Filters, Timeouts: m.Timeouts, Retry: m.Retry,
	}
}
