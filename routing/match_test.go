package routing

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// rs describes one route as the Gateway API translator emits it: one per
// hostname and rule match. backend names what the route sends to, which is
// what the conformance cases check.
type rs struct {
	host    string
	kind    PathKind
	path    string
	regex   string
	method  string
	headers []string // "name=value" or "name~regexp"
	query   []string // "name=value" or "name~regexp"
	backend string
}

func (s rs) route(i int) *Route {
	r := &Route{
		Source:   Source{Kind: "HTTPRoute", Namespace: "gateway-conformance-infra", Name: s.backend, Rule: fmt.Sprintf("%d/0", i)},
		Host:     s.host,
		PathKind: s.kind,
		Path:     s.path,
		Method:   s.method,
	}
	if r.PathKind == 0 {
		r.PathKind, r.Path = PathPrefix, "/"
	}
	if s.regex != "" {
		r.PathKind, r.PathRegexp = PathRegex, regexp.MustCompile(s.regex)
	}
	for _, h := range s.headers {
		name, value, re := splitCondition(h)
		r.Headers = append(r.Headers, HeaderMatch{Name: name, Value: value, Regexp: re})
	}
	for _, q := range s.query {
		name, value, re := splitCondition(q)
		r.QueryParams = append(r.QueryParams, QueryMatch{Name: name, Value: value, Regexp: re})
	}
	return r
}

func splitCondition(c string) (name, value string, re *regexp.Regexp) {
	if name, expr, ok := strings.Cut(c, "~"); ok && !strings.Contains(name, "=") {
		return name, "", regexp.MustCompile(expr)
	}
	name, value, _ = strings.Cut(c, "=")
	return name, value, nil
}

// req is one request of a matching case: "METHOD host/path?query" with
// headers "Name: value".
type req struct {
	target  string
	headers []string
	want    string // backend, or "" for no match (404)
}

func (q req) build() *http.Request {
	method, rest, ok := strings.Cut(q.target, " ")
	if !ok {
		method, rest = http.MethodGet, q.target
	}
	host, path := "gw.example", rest
	if i := strings.IndexByte(rest, '/'); i > 0 {
		host, path = rest[:i], rest[i:]
	}
	r := httptest.NewRequest(method, "http://"+host+path, nil)
	for _, h := range q.headers {
		name, value, _ := strings.Cut(h, ": ")
		r.Header.Add(name, value)
	}
	return r
}

func compileSpecs(t *testing.T, mode hostMode, specs []rs) (*Table, []*Route) {
	t.Helper()
	routes := make([]*Route, len(specs))
	for i, s := range specs {
		routes[i] = s.route(i)
	}
	return compileHosts(mode, routes, nil)
}

func runCases(t *testing.T, table *Table, cases []req) {
	t.Helper()
	for _, c := range cases {
		name := c.target
		if len(c.headers) > 0 {
			name += " " + strings.Join(c.headers, " ")
		}
		t.Run(name, func(t *testing.T) {
			r := c.build()
			got := table.MatchRequest(r, r.URL.Path)
			backend := ""
			if got != nil {
				backend = got.Source.Name
			}
			if backend != c.want {
				t.Fatalf("matched %q (rule %v), want %q", backend, ruleOf(got), c.want)
			}
		})
	}
}

func ruleOf(r *Route) string {
	if r == nil {
		return "none"
	}
	return r.Source.Rule
}

// TestConformanceMatching replays the matching cases of the Gateway API
// conformance suite (v1.7.0) against routes built as the translator builds
// them from the suite's manifests.
func TestConformanceMatching(t *testing.T) {
	tests := []struct {
		name   string
		routes []rs
		cases  []req
	}{
		{
			name: "HTTPRouteMatching",
			routes: []rs{
				{backend: "v1"},
				{headers: []string{"version=one"}, backend: "v1"},
				{kind: PathPrefix, path: "/v2", backend: "v2"},
				{headers: []string{"version=two"}, backend: "v2"},
			},
			cases: []req{
				{target: "/", want: "v1"},
				{target: "/example", want: "v1"},
				{target: "/", headers: []string{"Version: one"}, want: "v1"},
				{target: "/v2", want: "v2"},
				{target: "/v2/example", want: "v2"},
				{target: "/", headers: []string{"Version: two"}, want: "v2"},
				{target: "/v2/", want: "v2"},
				{target: "/v2example", want: "v1"},
				{target: "/foo/v2/example", want: "v1"},
			},
		},
		{
			name: "HTTPRouteMatchingAcrossRoutes",
			routes: []rs{
				{host: "example.com", backend: "v1"},
				{host: "example.com", headers: []string{"version=one"}, backend: "v1"},
				{host: "example.net", backend: "v1"},
				{host: "example.net", headers: []string{"version=one"}, backend: "v1"},
				{host: "example.com", kind: PathPrefix, path: "/v2", backend: "v2"},
				{host: "example.com", headers: []string{"version=two"}, backend: "v2"},
			},
			cases: []req{
				{target: "example.com/", want: "v1"},
				{target: "example.com/example", want: "v1"},
				{target: "example.net/example", want: "v1"},
				{target: "example.com/example", headers: []string{"Version: one"}, want: "v1"},
				{target: "example.com/v2", want: "v2"},
				{target: "example.net/v2", want: "v1"},
				{target: "example.com/v2/example", want: "v2"},
				{target: "example.com/", headers: []string{"Version: two"}, want: "v2"},
				{target: "other.org/", want: ""},
			},
		},
		{
			name: "HTTPRouteHeaderMatching",
			routes: []rs{
				{headers: []string{"version=one"}, backend: "v1"},
				{headers: []string{"version=two"}, backend: "v2"},
				{headers: []string{"version=two", "color=orange"}, backend: "v1"},
				{headers: []string{"color=blue"}, backend: "v1"},
				{headers: []string{"color=green"}, backend: "v1"},
				{headers: []string{"color=red"}, backend: "v2"},
				{headers: []string{"color=yellow"}, backend: "v2"},
			},
			cases: []req{
				{target: "/", headers: []string{"Version: one"}, want: "v1"},
				{target: "/", headers: []string{"Version: two"}, want: "v2"},
				{target: "/", headers: []string{"Version: two", "Color: orange"}, want: "v1"},
				{target: "/", headers: []string{"Version: two", "Color: blue"}, want: "v2"},
				{target: "/", headers: []string{"Color: orange"}, want: ""},
				{target: "/", headers: []string{"Some-Other-Header: one"}, want: ""},
				{target: "/", headers: []string{"Color: blue"}, want: "v1"},
				{target: "/", headers: []string{"Color: green"}, want: "v1"},
				{target: "/", headers: []string{"Color: red"}, want: "v2"},
				{target: "/", headers: []string{"Color: yellow"}, want: "v2"},
				{target: "/", headers: []string{"Color: purple"}, want: ""},
				// Header names are case-insensitive; values are not.
				{target: "/", headers: []string{"VERSION: one"}, want: "v1"},
				{target: "/", headers: []string{"Version: ONE"}, want: ""},
			},
		},
		{
			name: "HTTPRouteQueryParamMatching",
			routes: []rs{
				{query: []string{"animal=whale"}, backend: "v1"},
				{query: []string{"animal=dolphin"}, backend: "v2"},
				{query: []string{"animal=dolphin", "color=blue"}, backend: "v3"},
				{query: []string{"ANIMAL=Whale"}, backend: "v3"},
				{kind: PathPrefix, path: "/path1", query: []string{"animal=whale"}, backend: "v1"},
				{headers: []string{"version=one"}, query: []string{"animal=whale"}, backend: "v2"},
				{kind: PathPrefix, path: "/path2", headers: []string{"version=two"}, query: []string{"animal=whale"}, backend: "v3"},
				{kind: PathPrefix, path: "/path3", query: []string{"animal=shark"}, backend: "v1"},
				{kind: PathPrefix, path: "/path4", headers: []string{"version=three"}, query: []string{"animal=kraken"}, backend: "v1"},
				{kind: PathPrefix, path: "/path5", backend: "v1"},
				{query: []string{"animal=hydra"}, backend: "v2"},
				{headers: []string{"version=four"}, backend: "v3"},
			},
			cases: []req{
				{target: "/?animal=whale", want: "v1"},
				{target: "/?animal=dolphin", want: "v2"},
				{target: "/?animal=dolphin&color=blue", want: "v3"},
				{target: "/?ANIMAL=Whale", want: "v3"},
				{target: "/?animal=whale&otherparam=irrelevant", want: "v1"},
				{target: "/?animal=dolphin&color=yellow", want: "v2"},
				{target: "/?color=blue", want: ""},
				{target: "/?animal=dog", want: ""},
				{target: "/?animal=whaledolphin", want: ""},
				{target: "/", want: ""},
				{target: "/path1?animal=whale", want: "v1"},
				{target: "/?animal=whale", headers: []string{"version: one"}, want: "v2"},
				{target: "/path2?animal=whale", headers: []string{"version: two"}, want: "v3"},
				{target: "/path3?animal=shark", want: "v1"},
				{target: "/path4?animal=kraken", headers: []string{"version: three"}, want: "v1"},
				{target: "/?animal=shark", want: ""},
				{target: "/path4?animal=kraken", want: ""},
				{target: "/path5?animal=hydra", want: "v1"},
				{target: "/?animal=hydra", headers: []string{"version: four"}, want: "v3"},
				// Only the first value of a repeated parameter counts, and
				// names and values are matched after decoding.
				{target: "/?animal=dog&animal=whale", want: ""},
				{target: "/?%61nimal=wh%61le", want: "v1"},
			},
		},
		{
			name: "HTTPRouteMethodMatching",
			routes: []rs{
				{method: "POST", backend: "v1"},
				{method: "GET", backend: "v2"},
				{kind: PathPrefix, path: "/path1", method: "GET", backend: "v1"},
				{headers: []string{"version=one"}, method: "PUT", backend: "v2"},
				{kind: PathPrefix, path: "/path2", headers: []string{"version=two"}, method: "POST", backend: "v3"},
				{kind: PathPrefix, path: "/path3", method: "PATCH", backend: "v1"},
				{kind: PathPrefix, path: "/path4", headers: []string{"version=three"}, method: "DELETE", backend: "v1"},
				{kind: PathPrefix, path: "/path5", backend: "v1"},
				{method: "PATCH", backend: "v2"},
				{headers: []string{"version=four"}, backend: "v3"},
			},
			cases: []req{
				{target: "POST /", want: "v1"},
				{target: "GET /", want: "v2"},
				{target: "HEAD /", want: ""},
				{target: "GET /path1", want: "v1"},
				{target: "PUT /", headers: []string{"version: one"}, want: "v2"},
				{target: "POST /path2", headers: []string{"version: two"}, want: "v3"},
				{target: "PATCH /path3", want: "v1"},
				{target: "DELETE /path4", headers: []string{"version: three"}, want: "v1"},
				{target: "PUT /", want: ""},
				{target: "DELETE /path4", want: ""},
				{target: "PATCH /path5", want: "v1"},
				{target: "PATCH /", headers: []string{"version: four"}, want: "v2"},
			},
		},
		{
			name: "HTTPRoutePathMatchOrder",
			routes: []rs{
				{kind: PathExact, path: "/match", backend: "v1"},
				{kind: PathExact, path: "/match/exact", backend: "v2"},
				{kind: PathExact, path: "/match/exact/one", backend: "v3"},
				{kind: PathPrefix, path: "/match/", backend: "v3"},
				{kind: PathPrefix, path: "/match/prefix/", backend: "v1"},
				{kind: PathPrefix, path: "/match/prefix/one", backend: "v2"},
			},
			cases: []req{
				{target: "/match/exact/one", want: "v3"},
				{target: "/match/exact", want: "v2"},
				{target: "/match", want: "v1"},
				{target: "/match/prefix/one/any", want: "v2"},
				{target: "/match/prefix/any", want: "v1"},
				{target: "/match/any", want: "v3"},
			},
		},
		{
			name: "HTTPRouteExactPathMatching",
			routes: []rs{
				{kind: PathExact, path: "/one", backend: "v1"},
				{kind: PathExact, path: "/two", backend: "v2"},
			},
			cases: []req{
				{target: "/one", want: "v1"},
				{target: "/two", want: "v2"},
				{target: "/", want: ""},
				{target: "/one/example", want: ""},
				{target: "/two/", want: ""},
				{target: "/Two", want: ""},
			},
		},
		{
			name: "regular expression paths",
			routes: []rs{
				{kind: PathPrefix, path: "/api", backend: "prefix"},
				{regex: `/api/v[0-9]+`, backend: "versioned"},
				{regex: `/api/v1`, backend: "shadowed-by-order"},
				{regex: `/api/.*`, method: "POST", backend: "post-any"},
				{kind: PathExact, path: "/api/v1", backend: "exact"},
			},
			cases: []req{
				{target: "/api/v1", want: "exact"},
				{target: "/api/v2", want: "versioned"},
				{target: "/api/v2/users", want: "prefix"}, // the whole path must match
				{target: "POST /api/v2/users", want: "post-any"},
				{target: "/xapi/v2", want: ""},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			table, shadowed := compileSpecs(t, gatewayHosts, tc.routes)
			if len(shadowed) != 0 {
				t.Fatalf("unexpected shadowed routes: %v", shadowed)
			}
			runCases(t, table, tc.cases)
		})
	}
}

func TestIdenticalConditionsAreShadowed(t *testing.T) {
	// HTTPRouteRuleOrder: the same headers in another order are the same
	// conditions, so the later rule never matches.
	table, shadowed := compileSpecs(t, gatewayHosts, []rs{
		{kind: PathExact, path: "/rule-order", headers: []string{"x-version=one", "x-color=blue"}, backend: "v1"},
		{kind: PathExact, path: "/rule-order", headers: []string{"x-color=blue", "x-version=one"}, backend: "v2"},
		{kind: PathExact, path: "/rule-order", headers: []string{"x-color=blue"}, backend: "kept"},
		{kind: PathExact, path: "/rule-order", headers: []string{"x-color~blue"}, backend: "kept-regex"},
		{regex: "/r.*", method: "GET", backend: "r1"},
		{regex: "/r.*", method: "GET", backend: "r2"},
		{regex: "/r.*", backend: "r3"},
	})
	var names []string
	for _, r := range shadowed {
		names = append(names, r.Source.Name)
	}
	if got := strings.Join(names, ","); got != "v2,r2" {
		t.Fatalf("shadowed = %s, want v2,r2", got)
	}
	runCases(t, table, []req{
		{target: "/rule-order", headers: []string{"x-color: blue", "x-version: one"}, want: "v1"},
		{target: "/rule-order", headers: []string{"x-color: blue"}, want: "kept"},
	})
}

func TestHeaderConditionDetails(t *testing.T) {
	table, _ := compileSpecs(t, gatewayHosts, []rs{
		{headers: []string{"x-list=a, b"}, backend: "joined"},
		{headers: []string{"x-tag=two"}, backend: "any-line"},
		{headers: []string{"x-re~v[0-9]+"}, backend: "regex"},
		// Only the first entry of a repeated name counts.
		{headers: []string{"x-dup=first", "X-Dup=second"}, backend: "dup"},
	})
	runCases(t, table, []req{
		{target: "/", headers: []string{"X-List: a", "X-List: b"}, want: "joined"},
		{target: "/", headers: []string{"X-Tag: one", "X-Tag: two"}, want: "any-line"},
		{target: "/", headers: []string{"X-Re: v12"}, want: "regex"},
		{target: "/", headers: []string{"X-Re: xv12"}, want: ""}, // anchored to the whole value
		{target: "/", headers: []string{"X-Dup: first"}, want: "dup"},
		{target: "/", headers: []string{"X-Dup: second"}, want: ""},
	})
}

func TestGatewayHostMatching(t *testing.T) {
	specs := []rs{
		{host: "foo.example.com", kind: PathPrefix, path: "/foo", backend: "exact"},
		{host: "*.example.com", backend: "wild"},
		{host: "*.b.example.com", backend: "wild-b"},
		{host: "*.c.example.com", kind: PathPrefix, path: "/c", backend: "wild-c"},
		{host: "", backend: "any"},
	}
	table, _ := compileSpecs(t, gatewayHosts, specs)
	runCases(t, table, []req{
		{target: "foo.example.com/foo/x", want: "exact"},
		{target: "FOO.example.com:8080/foo", want: "exact"},
		{target: "foo.example.com/bar", want: "wild"}, // falls through to *.example.com
		{target: "x.example.com/bar", want: "wild"},
		{target: "x.y.z.example.com/bar", want: "wild"}, // any number of labels
		{target: "x.b.example.com/bar", want: "wild-b"}, // longest suffix wins
		{target: "x.y.b.example.com/", want: "wild-b"},
		{target: "x.c.example.com/c/1", want: "wild-c"},
		{target: "x.c.example.com/other", want: "wild"}, // then the shorter suffix
		{target: "example.com/", want: "any"},           // a wildcard never matches its apex
		{target: "other.org/", want: "any"},
	})

	// The same routes in an Ingress table keep the Ingress rules.
	ingress, _ := compileSpecs(t, ingressHosts, specs)
	runCases(t, ingress, []req{
		{target: "foo.example.com/bar", want: "wild"},
		{target: "x.y.z.example.com/bar", want: "any"},
		{target: "x.c.example.com/other", want: "any"},
	})
}

func TestQueryValue(t *testing.T) {
	tests := []struct {
		raw, name string
		want      string
		found     bool
	}{
		{"a=1&b=2", "b", "2", true},
		{"a=1&a=2", "a", "1", true},
		{"a", "a", "", true},
		{"a=", "a", "", true},
		{"&&a=x", "a", "x", true},
		{"b=1", "a", "", false},
		{"", "a", "", false},
		{"q=hello+world", "q", "hello world", true},
		{"%7Bk%7D=%2F", "{k}", "/", true},
		{"bad%zz=1&a=2", "a", "2", true},
		{"A=1", "a", "", false},
	}
	for _, tc := range tests {
		got, found := queryValue(tc.raw, tc.name)
		if got != tc.want || found != tc.found {
			t.Errorf("queryValue(%q, %q) = %q, %v; want %q, %v", tc.raw, tc.name, got, found, tc.want, tc.found)
		}
	}
}

func TestMatchRequestDoesNotAllocate(t *testing.T) {
	ingress := benchTable(100, 10)
	gateway := conditionTable()
	cases := []struct {
		table *Table
		r     *http.Request
	}{
		{ingress, httptest.NewRequest("GET", "http://host-42.example.com/svc-3/items/17", nil)},
		{gateway, conditionRequest()},
		{listenerTable(), listenerRequest()},
	}
	for _, c := range cases {
		if c.table.MatchRequest(c.r, c.r.URL.Path) == nil {
			t.Fatalf("no match for %s", c.r.URL)
		}
		allocs := testing.AllocsPerRun(100, func() { c.table.MatchRequest(c.r, c.r.URL.Path) })
		if allocs != 0 {
			t.Errorf("MatchRequest(%s) allocated %.0f times per call", c.r.URL, allocs)
		}
	}
}

// conditionTable is one Gateway host whose "/api" prefix carries routes
// told apart by method, headers and query parameters, as a busy HTTPRoute
// would.
func conditionTable() *Table {
	var routes []*Route
	for i := range 8 {
		routes = append(routes,
			&Route{Host: "api.example.com", PathKind: PathPrefix, Path: "/api", Method: "POST",
				Headers: []HeaderMatch{{Name: "X-Tenant", Value: fmt.Sprintf("t%d", i)}}},
			&Route{Host: "api.example.com", PathKind: PathPrefix, Path: "/api",
				Headers:     []HeaderMatch{{Name: "X-Tenant", Value: fmt.Sprintf("t%d", i)}},
				QueryParams: []QueryMatch{{Name: "version", Value: "2"}}},
		)
	}
	routes = append(routes,
		&Route{Host: "api.example.com", PathKind: PathPrefix, Path: "/api", Headers: []HeaderMatch{{Name: "X-Canary", Value: "true"}}},
		&Route{Host: "api.example.com", PathKind: PathPrefix, Path: "/"},
	)
	t, _ := compileHosts(gatewayHosts, routes, nil)
	return t
}

// listenerTable is a Gateway socket of 20 listeners (an exact and a
// wildcard hostname for each of 10 domains) whose wildcard listeners hold
// 100 routes each with hostnames of three specificities.
func listenerTable() *Table {
	var listeners []ListenerRoutes
	for d := range 10 {
		domain := fmt.Sprintf("d%d.example.com", d)
		var routes []*Route
		for i := range 100 {
			routes = append(routes,
				&Route{Host: fmt.Sprintf("app-%d.%s", i, domain), PathKind: PathPrefix, Path: "/v2", Headers: []HeaderMatch{{Name: "X-Tenant", Value: "t1"}}},
				&Route{Host: fmt.Sprintf("*.app-%d.%s", i, domain), PathKind: PathPrefix, Path: fmt.Sprintf("/svc-%d", i)},
			)
		}
		routes = append(routes, &Route{Host: "*." + domain, PathKind: PathPrefix, Path: "/"})
		listeners = append(listeners,
			ListenerRoutes{Hostname: "www." + domain, Routes: []*Route{{PathKind: PathPrefix, Path: "/"}}},
			ListenerRoutes{Hostname: "*." + domain, Routes: routes},
		)
	}
	t, _ := CompileListeners(listeners, nil)
	return t
}

// listenerRequest falls through its exact route hostname (header
// mismatch) to the shorter wildcard of its listener.
func listenerRequest() *http.Request {
	r := httptest.NewRequest("GET", "http://app-50.d7.example.com/v2/orders/17", nil)
	r.Header.Set("X-Tenant", "t7")
	return r
}

func conditionRequest() *http.Request {
	r := httptest.NewRequest("GET", "http://api.example.com/api/orders/17?page=3&version=2", nil)
	r.Header.Set("X-Tenant", "t7")
	r.Header.Set("User-Agent", "bench")
	return r
}

// BenchmarkMatchRequest measures MatchRequest on the Ingress table of
// BenchmarkMatch and on a Gateway host with conditions, where the request
// is tested against 15 candidates of its key before the 16th matches.
func BenchmarkMatchRequest(b *testing.B) {
	ingress := benchTable(1000, 10)
	ingressReq := httptest.NewRequest("GET", "http://host-500.example.com/svc-7/orders/12345", nil)
	gateway := conditionTable()
	gatewayReq := conditionRequest()
	for _, c := range []struct {
		name  string
		table *Table
		r     *http.Request
	}{
		{"ingress", ingress, ingressReq},
		{"conditions", gateway, gatewayReq},
		{"listeners", listenerTable(), listenerRequest()},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if c.table.MatchRequest(c.r, c.r.URL.Path) == nil {
					b.Fatal("no match")
				}
			}
		})
	}
}
