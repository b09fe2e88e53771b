package routing

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/metrics"
	"portico.dev/portico/upstream"
)

// safety bounds anything a test waits for; it only keeps a broken test from
// hanging and asserts nothing about speed.
const safety = 10 * time.Second

// echoed is what an echo backend saw of a request.
type echoed struct {
	Backend string
	Method  string
	URI     string
	Host    string
	Header  http.Header
	Body    string
}

// echoBackend answers every request with what it saw, as JSON. A request
// with "respond-header=Name:value" query parameters gets those response
// headers; one with "hang", or any request to the backend named "hang",
// waits until the client gives up or the test ends. Requests it saw are also sent to seen, when it has room.
type echoBackend struct {
	name string
	srv  *httptest.Server
	seen chan echoed
}

func startEcho(t *testing.T, name string) *echoBackend {
	t.Helper()
	e := &echoBackend{name: name, seen: make(chan echoed, 64)}
	release := make(chan struct{})
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := r.URL.Query()
		if _, ok := q["hang"]; ok || e.name == "hang" {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		for _, h := range q["respond-header"] {
			name, value, _ := strings.Cut(h, ":")
			w.Header().Add(name, value)
		}
		got := echoed{Backend: e.name, Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header, Body: string(body)}
		select {
		case e.seen <- got:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(got)
	}))
	t.Cleanup(func() {
		close(release)
		e.srv.Close()
	})
	return e
}

func (e *echoBackend) backend() *upstream.Backend {
	return &upstream.Backend{Name: "gateway-conformance-infra/" + e.name + ":8080", Endpoints: []string{e.srv.Listener.Addr().String()}}
}

// gateway is an inbound server running the routing handler over a table
// compiled from routes, with the production upstream Transport.
func startGateway(t *testing.T, routes ...*Route) *httptest.Server {
	t.Helper()
	table, shadowed := compileHosts(gatewayHosts, routes, nil)
	if len(shadowed) > 0 {
		t.Fatalf("shadowed routes: %v", shadowed)
	}
	logger := slog.New(slog.DiscardHandler)
	tr := upstream.NewTransport(upstream.Config{Logger: logger})
	t.Cleanup(func() { _ = tr.Close() })
	srv := httptest.NewServer(NewHandler(HandlerConfig{
		Table:      func() *Table { return table },
		Forwarder:  tr,
		Logger:     logger,
		BodyLimits: BodyLimits{MirrorBodyLimit: 1 << 10},
	}))
	t.Cleanup(srv.Close)
	return srv
}

func noRedirects() *http.Client {
	return &http.Client{
		Timeout: safety,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// send makes one request and returns the response, with the echo decoded
// when the body is one.
func send(t *testing.T, c *http.Client, method, url string, header http.Header, body string) (*http.Response, *echoed) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vv := range header {
		req.Header[k] = vv
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var e echoed
	if json.Unmarshal(raw, &e) != nil || e.Backend == "" {
		return resp, nil
	}
	return resp, &e
}

func prefixRoute(path string, b *upstream.Backend) *Route {
	return &Route{
		Source:   Source{Kind: "HTTPRoute", Namespace: "gateway-conformance-infra", Name: "test", Rule: "0/0"},
		PathKind: PathPrefix, Path: path, Backend: b,
	}
}

func TestGatewayFiltersOverHTTP(t *testing.T) {
	v1, v2 := startEcho(t, "v1"), startEcho(t, "v2")
	modifier := &HeaderModifier{
		Set:    []HeaderValue{{"X-Header-Set", "set-overwrites-values"}},
		Add:    []HeaderValue{{"X-Header-Add", "header-val-1"}, {"X-Header-Add-Append", "header-val-2"}},
		Remove: []string{"X-Header-Remove"},
	}
	withFilters := func(r *Route, f *Filters) *Route { r.Filters = f; return r }
	routes := []*Route{
		withFilters(prefixRoute("/modify", v1.backend()), &Filters{RequestHeaders: modifier}),
		withFilters(prefixRoute("/prefix/one", v1.backend()), &Filters{Rewrite: &Rewrite{Path: &PathModifier{ReplacePrefixMatch: strp("/one")}}}),
		withFilters(prefixRoute("/strip-prefix", v1.backend()), &Filters{Rewrite: &Rewrite{Path: &PathModifier{ReplacePrefixMatch: strp("/")}}}),
		withFilters(prefixRoute("/full/one", v1.backend()), &Filters{Rewrite: &Rewrite{Path: &PathModifier{ReplaceFullPath: strp("/one")}}}),
		withFilters(prefixRoute("/host", v1.backend()), &Filters{Rewrite: &Rewrite{Hostname: "one.example.org"}}),
		withFilters(prefixRoute("/response", v1.backend()), &Filters{ResponseHeaders: &HeaderModifier{
			Set:    []HeaderValue{{"X-Header-Set", "set-overwrites-values"}},
			Add:    []HeaderValue{{"x-header-add", "add-appends-values"}},
			Remove: []string{"X-Header-Remove"},
		}}),
		withFilters(prefixRoute("/redirect", nil), &Filters{Redirect: &Redirect{Hostname: "example.org", StatusCode: 301,
			Path: &PathModifier{ReplacePrefixMatch: strp("/replacement")}}}),
		prefixRoute("/no-backend", nil),
		{PathKind: PathPrefix, Path: "/invalid", Backends: []WeightedBackend{{Weight: 1, Invalid: true}}},
		{PathKind: PathPrefix, Path: "/zero", Backends: []WeightedBackend{{Weight: 0, Backend: v1.backend()}}},
		prefixRoute("/no-endpoints", &upstream.Backend{Name: "ns/empty:80"}),
		{PathKind: PathPrefix, Path: "/backend-filters", Backends: []WeightedBackend{
			{Weight: 1, Backend: v1.backend(), Filters: &Filters{RequestHeaders: &HeaderModifier{Set: []HeaderValue{{"Backend", "v1"}}}}},
			{Weight: 1, Backend: v2.backend(), Filters: &Filters{
				RequestHeaders: &HeaderModifier{Set: []HeaderValue{{"Backend", "v2"}}},
				Rewrite:        &Rewrite{Path: &PathModifier{ReplacePrefixMatch: strp("/rewritten")}},
			}},
		}},
	}
	gw := startGateway(t, routes...)
	c := noRedirects()

	t.Run("request headers", func(t *testing.T) {
		h := http.Header{"X-Header-Remove": {"remove-val"}, "X-Header-Add-Append": {"append-val-1"}, "X-Header-Set": {"set-val"}}
		_, e := send(t, c, "GET", gw.URL+"/modify", h, "")
		if e == nil {
			t.Fatal("no echo")
		}
		if got := e.Header.Get("X-Header-Set"); got != "set-overwrites-values" {
			t.Errorf("X-Header-Set = %q", got)
		}
		if got := e.Header["X-Header-Add"]; len(got) != 1 || got[0] != "header-val-1" {
			t.Errorf("X-Header-Add = %q", got)
		}
		if got := strings.Join(e.Header["X-Header-Add-Append"], ","); got != "append-val-1,header-val-2" {
			t.Errorf("X-Header-Add-Append = %q", got)
		}
		if _, ok := e.Header["X-Header-Remove"]; ok {
			t.Error("X-Header-Remove was forwarded")
		}
	})

	for _, tc := range []struct{ path, want string }{
		{"/prefix/one/two?q=1", "/one/two?q=1"},
		{"/strip-prefix/three", "/three"},
		{"/strip-prefix", "/"},
		{"/full/one/two", "/one"},
	} {
		t.Run("rewrite "+tc.path, func(t *testing.T) {
			_, e := send(t, c, "GET", gw.URL+tc.path, nil, "")
			if e == nil || e.URI != tc.want {
				t.Fatalf("backend saw %+v, want URI %q", e, tc.want)
			}
		})
	}

	t.Run("rewrite host", func(t *testing.T) {
		_, e := send(t, c, "GET", gw.URL+"/host", http.Header{"Host": {"rewrite.example"}}, "")
		if e == nil || e.Host != "one.example.org" {
			t.Fatalf("backend saw %+v, want Host one.example.org", e)
		}
		if got := e.Header.Get("X-Forwarded-Host"); got != "rewrite.example" {
			t.Errorf("X-Forwarded-Host = %q, want the client's host", got)
		}
	})

	t.Run("response headers", func(t *testing.T) {
		q := "?respond-header=X-Header-Set:some-other-value&respond-header=x-header-add:original&respond-header=X-Header-Remove:val&respond-header=Another-Header:kept"
		resp, _ := send(t, c, "GET", gw.URL+"/response"+q, nil, "")
		want := map[string]string{"X-Header-Set": "set-overwrites-values", "X-Header-Add": "original,add-appends-values", "Another-Header": "kept"}
		for k, v := range want {
			if got := strings.Join(resp.Header[k], ","); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if _, ok := resp.Header["X-Header-Remove"]; ok {
			t.Error("X-Header-Remove reached the client")
		}
	})

	t.Run("redirect", func(t *testing.T) {
		resp, e := send(t, c, "GET", gw.URL+"/redirect/lemon?x=1", nil, "")
		if resp.StatusCode != 301 || e != nil {
			t.Fatalf("status %d, echo %v", resp.StatusCode, e)
		}
		// No scheme and no port in the filter: the listener's port stays.
		port := strconv.Itoa(gw.Listener.Addr().(*net.TCPAddr).Port)
		if got, want := resp.Header.Get("Location"), "http://example.org:"+port+"/replacement/lemon?x=1"; got != want {
			t.Errorf("Location = %q, want %q", got, want)
		}
	})

	for path, want := range map[string]int{"/no-backend": 500, "/invalid": 500, "/zero": 500, "/no-endpoints": 503, "/unrouted": 404} {
		t.Run("status "+path, func(t *testing.T) {
			resp, _ := send(t, c, "GET", gw.URL+path, nil, "")
			if resp.StatusCode != want {
				t.Fatalf("status %d, want %d", resp.StatusCode, want)
			}
		})
	}

	t.Run("backend filters", func(t *testing.T) {
		// HTTPRouteRequestHeaderModifierBackendWeights: each backend's own
		// filter applies only when that backend is picked.
		seen := map[string]int{}
		for range 40 {
			_, e := send(t, c, "GET", gw.URL+"/backend-filters/x", nil, "")
			if e == nil {
				t.Fatal("no echo")
			}
			if got := e.Header["Backend"]; len(got) != 1 || got[0] != e.Backend {
				t.Fatalf("backend %s saw Backend header %q", e.Backend, got)
			}
			if e.Backend == "v2" && e.URI != "/rewritten/x" {
				t.Fatalf("v2 saw %q, want its rewrite", e.URI)
			}
			seen[e.Backend]++
		}
		if seen["v1"] == 0 || seen["v2"] == 0 {
			t.Fatalf("picks %v: one backend was never picked in 40 requests", seen)
		}
	})
}

// TestWeightedBackendsOverHTTP is HTTPRouteWeight: 70/30/0.
func TestWeightedBackendsOverHTTP(t *testing.T) {
	v1, v2, v3 := startEcho(t, "v1"), startEcho(t, "v2"), startEcho(t, "v3")
	gw := startGateway(t, &Route{PathKind: PathPrefix, Path: "/", Backends: []WeightedBackend{
		{Backend: v1.backend(), Weight: 70},
		{Backend: v2.backend(), Weight: 30},
		{Backend: v3.backend(), Weight: 0},
	}})
	c := noRedirects()
	counts := map[string]int{}
	const n = 300
	for range n {
		_, e := send(t, c, "GET", gw.URL+"/", nil, "")
		if e == nil {
			t.Fatal("no echo")
		}
		counts[e.Backend]++
	}
	// Expected 210 for v1 with a standard deviation near 8: the bounds are
	// loose enough never to flake.
	if counts["v3"] != 0 || counts["v1"] < 160 || counts["v1"] > 260 || counts["v1"]+counts["v2"] != n {
		t.Fatalf("distribution %v over %d requests, want about 70/30/0", counts, n)
	}
}

// TestMirrorOverHTTP is HTTPRouteRequestMirror and
// HTTPRouteRequestMultipleMirrors: each mirror gets the filtered request
// with its body, and neither a hanging mirror nor an oversized body holds
// up or changes the main request.
func TestMirrorOverHTTP(t *testing.T) {
	v1, m2, m3, hang := startEcho(t, "v1"), startEcho(t, "v2"), startEcho(t, "v3"), startEcho(t, "hang")
	hanging := hang.backend()
	route := prefixRoute("/mirror", v1.backend())
	route.Filters = &Filters{
		RequestHeaders: &HeaderModifier{Set: []HeaderValue{{"X-Header-Set", "set-overwrites-values"}}},
		Mirrors:        []Mirror{{Backend: m2.backend(), Percent: 100}, {Backend: m3.backend(), Percent: 100}},
	}
	hangRoute := prefixRoute("/hang-mirror", v1.backend())
	hangRoute.Filters = &Filters{Mirrors: []Mirror{{Backend: hanging, Percent: 100}}}
	neverRoute := prefixRoute("/never", v1.backend())
	neverRoute.Filters = &Filters{Mirrors: []Mirror{{Backend: m2.backend(), Percent: 0}}}
	gw := startGateway(t, route, hangRoute, neverRoute)
	c := noRedirects()

	resp, e := send(t, c, "POST", gw.URL+"/mirror/a?id=1", http.Header{"X-Header-Set": {"x"}}, "payload")
	if resp.StatusCode != 200 || e == nil || e.Backend != "v1" || e.Body != "payload" {
		t.Fatalf("main request: status %d, echo %+v", resp.StatusCode, e)
	}
	for _, m := range []*echoBackend{m2, m3} {
		select {
		case got := <-m.seen:
			if got.Method != "POST" || got.URI != "/mirror/a?id=1" || got.Body != "payload" ||
				got.Header.Get("X-Header-Set") != "set-overwrites-values" {
				t.Errorf("mirror %s saw %+v", m.name, got)
			}
		case <-time.After(safety):
			t.Fatalf("mirror %s never got the request", m.name)
		}
	}

	big := strings.Repeat("x", 4<<10) // over the 1 KiB limit of startGateway
	resp, e = send(t, c, "POST", gw.URL+"/mirror/big", nil, big)
	if resp.StatusCode != 200 || e == nil || e.Body != big {
		t.Fatalf("oversized body: status %d, echo body of %d bytes", resp.StatusCode, len(e.Body))
	}

	// The "hang" mirror backend holds every request: the main request is
	// answered all the same.
	resp, e = send(t, c, "GET", gw.URL+"/hang-mirror", nil, "")
	if resp.StatusCode != 200 || e == nil {
		t.Fatalf("main request behind a hanging mirror: status %d", resp.StatusCode)
	}

	resp, _ = send(t, c, "GET", gw.URL+"/never", nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestBufferBodyForMirrors(t *testing.T) {
	for _, tc := range []struct {
		body     string
		chunked  bool
		mirrored bool
	}{
		{"", false, true},
		{"12345678", false, true},
		{"12345678", true, true},
		{"123456789", false, false},
		{"123456789", true, false},
	} {
		r := httptest.NewRequest("POST", "http://gw/", strings.NewReader(tc.body))
		if tc.body == "" {
			r.Body, r.ContentLength = http.NoBody, 0
		}
		if tc.chunked {
			r.ContentLength = -1
		}
		buf, ok := bufferBody(r, 8)
		if ok != tc.mirrored || (ok && string(buf) != tc.body) {
			t.Errorf("body %q chunked=%v: buffered %q, %v", tc.body, tc.chunked, buf, ok)
		}
		rest, _ := io.ReadAll(r.Body)
		if string(rest) != tc.body {
			t.Errorf("body %q chunked=%v: main request reads %q", tc.body, tc.chunked, rest)
		}
	}
	if sampled(0) || !sampled(100) {
		t.Error("sampled(0) must never take a request and sampled(100) always")
	}
}

// TestTimeoutsOverHTTP is HTTPRouteTimeoutRequest and
// HTTPRouteTimeoutBackendRequest: a backend that does not answer within the
// route's timeout gets the client a 504.
func TestTimeoutsOverHTTP(t *testing.T) {
	v1 := startEcho(t, "v1")
	request := prefixRoute("/request-timeout", v1.backend())
	request.Timeouts = Timeouts{Request: 50 * time.Millisecond}
	backend := prefixRoute("/backend-timeout", v1.backend())
	backend.Timeouts = Timeouts{BackendRequest: 50 * time.Millisecond}
	gw := startGateway(t, request, backend)
	c := noRedirects()
	for _, path := range []string{"/request-timeout", "/backend-timeout"} {
		t.Run(path, func(t *testing.T) {
			resp, e := send(t, c, "GET", gw.URL+path, nil, "")
			if resp.StatusCode != 200 || e == nil {
				t.Fatalf("fast request: status %d", resp.StatusCode)
			}
			resp, _ = send(t, c, "GET", gw.URL+path+"?hang", nil, "")
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Fatalf("hanging backend: status %d, want 504", resp.StatusCode)
			}
		})
	}
}

// TestGatewayRouteMetrics checks that HTTPRoute routes get their own
// request series, labelled by object and rule/match, whatever answered.
func TestGatewayRouteMetrics(t *testing.T) {
	v1 := startEcho(t, "v1")
	forwarded := prefixRoute("/forward", v1.backend())
	redirected := prefixRoute("/redirect", nil)
	redirected.Source.Rule = "1/0"
	redirected.Filters = &Filters{Redirect: &Redirect{Hostname: "example.org"}}
	table, _ := compileHosts(gatewayHosts, []*Route{forwarded, redirected}, nil)
	logger := slog.New(slog.DiscardHandler)
	tr := upstream.NewTransport(upstream.Config{Logger: logger})
	t.Cleanup(func() { _ = tr.Close() })
	m := metrics.New()
	gw := httptest.NewServer(NewHandler(HandlerConfig{Table: func() *Table { return table }, Forwarder: tr, Logger: logger, Metrics: m}))
	t.Cleanup(gw.Close)
	c := noRedirects()
	send(t, c, "GET", gw.URL+"/forward", nil, "")
	send(t, c, "GET", gw.URL+"/redirect", nil, "")

	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != metrics.RequestDurationName {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			key := labels["kind"] + " " + labels["name"] + " " + labels["rule"] + " " + labels["code"]
			got[key] += s.GetHistogram().GetSampleCount()
		}
	}
	for _, want := range []string{"HTTPRoute test 0/0 2xx", "HTTPRoute test 1/0 3xx"} {
		if got[want] != 1 {
			t.Errorf("series %q counted %d requests; all series: %v", want, got[want], got)
		}
	}
}

// TestMirrorGRPCStream: a gRPC call's body is a stream the client may keep
// open until it has answers, so a mirrored call reaches its backend as the
// client sends it, and the mirror gets the whole body once it has ended.
func TestMirrorGRPCStream(t *testing.T) {
	m := startEcho(t, "mirror")
	gotFirst := make(chan string, 1)
	main := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			return
		}
		gotFirst <- string(first)
		rest, _ := io.ReadAll(r.Body)
		_, _ = w.Write(append(first, rest...))
	}))
	t.Cleanup(main.Close)
	route := prefixRoute("/svc", &upstream.Backend{Name: "main", Endpoints: []string{main.Listener.Addr().String()}})
	route.Filters = &Filters{Mirrors: []Mirror{{Backend: m.backend(), Percent: 100}}}
	gw := startGateway(t, route)

	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/svc/Method", pr)
	req.Header.Set("Content-Type", "application/grpc")
	done := make(chan string, 1)
	go func() {
		resp, err := noRedirects().Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(body)
	}()
	if _, err := pw.Write([]byte("part1")); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-gotFirst:
		if got != "part1" {
			t.Fatalf("backend got %q first", got)
		}
	case <-time.After(safety):
		t.Fatal("the call's body did not reach the backend while the client kept it open")
	}
	_, _ = pw.Write([]byte("part2"))
	pw.Close()
	if got := <-done; got != "part1part2" {
		t.Fatalf("response %q", got)
	}
	select {
	case got := <-m.seen:
		if got.Body != "part1part2" || got.URI != "/svc/Method" {
			t.Errorf("mirror saw %+v", got)
		}
	case <-time.After(safety):
		t.Fatal("the mirror never got the call")
	}
}
