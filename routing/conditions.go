package routing

import (
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
)

// candidate is one route filed under a host and path key, with its request
// conditions compiled for matching.
type candidate struct {
	route *Route
	// cond is nil when the route has no condition besides host and path,
	// which is every Ingress route: such a candidate matches at once.
	cond *conditions
}

// regexRoute is a PathRegex route with its expression anchored to the
// whole path.
type regexRoute struct {
	re   *regexp.Regexp
	expr string // the route's own expression, to detect duplicates
	candidate
}

// conditions are a route's method, header and query parameter matches,
// normalised once at compile time: header names canonical, duplicate names
// dropped (only the first entry of a name counts, as the Gateway API
// requires), regular expressions anchored to the whole value.
type conditions struct {
	method  string
	headers []valueMatch
	query   []valueMatch
}

// valueMatch is one header or query parameter condition.
type valueMatch struct {
	name  string
	value string
	re    *regexp.Regexp // anchored; nil for an exact match
	expr  string         // the route's own expression
}

func newCandidate(r *Route) candidate {
	c := candidate{route: r}
	if r.Method == "" && len(r.Headers) == 0 && len(r.QueryParams) == 0 {
		return c
	}
	cond := &conditions{method: r.Method}
	for _, h := range r.Headers {
		name := textproto.CanonicalMIMEHeaderKey(h.Name)
		if !hasName(cond.headers, name) {
			cond.headers = append(cond.headers, newValueMatch(name, h.Value, h.Regexp))
		}
	}
	for _, q := range r.QueryParams {
		if !hasName(cond.query, q.Name) {
			cond.query = append(cond.query, newValueMatch(q.Name, q.Value, q.Regexp))
		}
	}
	c.cond = cond
	return c
}

func newValueMatch(name, value string, re *regexp.Regexp) valueMatch {
	m := valueMatch{name: name, value: value}
	if re != nil {
		m.expr = re.String()
		m.re = regexp.MustCompile(`^(?:` + m.expr + `)$`)
	}
	return m
}

func hasName(ms []valueMatch, name string) bool {
	for _, m := range ms {
		if m.name == name {
			return true
		}
	}
	return false
}

// comparePrecedence orders candidates of one key by Gateway API precedence:
// a method match first, then more header matches, then more query
// parameter matches.
func comparePrecedence(a, b candidate) int {
	am, bm := a.cond.methodSet(), b.cond.methodSet()
	if am != bm {
		if am {
			return -1
		}
		return 1
	}
	if d := b.cond.numHeaders() - a.cond.numHeaders(); d != 0 {
		return d
	}
	return b.cond.numQuery() - a.cond.numQuery()
}

func (c *conditions) methodSet() bool {
	return c != nil && c.method != ""
}

func (c *conditions) numHeaders() int {
	if c == nil {
		return 0
	}
	return len(c.headers)
}

func (c *conditions) numQuery() int {
	if c == nil {
		return 0
	}
	return len(c.query)
}

// sameConditions reports whether a and b accept exactly the same requests
// as far as their declarations go: same method, and the same header and
// query matches in any order.
func sameConditions(a, b *conditions) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.method == b.method && sameMatches(a.headers, b.headers) && sameMatches(a.query, b.query)
}

func sameMatches(a, b []valueMatch) bool {
	if len(a) != len(b) {
		return false
	}
	for _, m := range a {
		found := false
		for _, o := range b {
			if m.name == o.name && m.value == o.value && (m.re == nil) == (o.re == nil) && m.expr == o.expr {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// accepts reports whether req meets every condition. A nil request (Match
// without a request) meets only the absence of conditions.
func (c *conditions) accepts(req *http.Request) bool {
	if c == nil {
		return true
	}
	if req == nil {
		return false
	}
	if c.method != "" && req.Method != c.method {
		return false
	}
	for i := range c.headers {
		if !c.headers[i].matchesHeader(req.Header) {
			return false
		}
	}
	if len(c.query) > 0 {
		raw := ""
		if req.URL != nil {
			raw = req.URL.RawQuery
		}
		for i := range c.query {
			v, ok := queryValue(raw, c.query[i].name)
			if !ok || !c.query[i].matches(v) {
				return false
			}
		}
	}
	return true
}

// matchesHeader reports whether any value of the header matches. A header
// repeated in the request matches when one of its lines does, or when the
// values joined as one comma-separated list (RFC 9110 section 5.3) do.
func (m *valueMatch) matchesHeader(h http.Header) bool {
	vals := h[m.name]
	for _, v := range vals {
		if m.matches(v) {
			return true
		}
	}
	if len(vals) > 1 {
		return m.matches(strings.Join(vals, ", "))
	}
	return false
}

func (m *valueMatch) matches(v string) bool {
	if m.re != nil {
		return m.re.MatchString(v)
	}
	return v == m.value
}

// queryValue returns the first value of the query parameter name in the raw
// query, decoded. Names are compared exactly, after decoding. It allocates
// only to decode an escaped name or value.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		if needsUnescape(key) {
			k, err := url.QueryUnescape(key)
			if err != nil {
				continue
			}
			key = k
		}
		if key != name {
			continue
		}
		if needsUnescape(value) {
			v, err := url.QueryUnescape(value)
			if err != nil {
				continue
			}
			value = v
		}
		return value, true
	}
	return "", false
}

func needsUnescape(s string) bool {
	return strings.ContainsAny(s, "%+")
}
