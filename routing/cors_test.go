package routing

import (
	"net/http"
	"strings"
	"testing"
)

func TestMatchOrigin(t *testing.T) {
	tests := []struct {
		pattern, origin string
		want            bool
	}{
		{"*", "https://anything.example:8443", true},
		{"https://www.foo.com", "https://www.foo.com", true},
		{"https://www.foo.com", "HTTPS://WWW.FOO.COM", true},
		{"https://www.foo.com", "http://www.foo.com", false},
		{"https://www.foo.com", "https://www.foo.com:443", true},
		{"https://www.foo.com:443", "https://www.foo.com", true},
		{"https://www.foo.com", "https://www.foo.com:8443", false},
		{"http://www.foo.com", "http://www.foo.com:80", true},
		{"https://www.foo.com", "https://foo.com", false},
		// "*" is greedy to the left: any number of labels.
		{"https://*.bar.com", "https://www.bar.com", true},
		{"https://*.bar.com", "https://xpto.www.bar.com", true},
		{"https://*.bar.com", "https://bar.com", false},
		{"https://*.bar.com", "https://.bar.com", false},
		{"https://*.bar.com", "https://www.bar.com.evil", false},
		{"https://*.bar.com", "https://foobar.com", false},
		{"https://*", "https://foobar.com:443", true},
		{"https://*", "http://foobar.com", false},
		{"https://[::1]:8443", "https://[::1]:8443", true},
		{"https://[::1]", "https://[::1]:443", true},
		// Not origins.
		{"https://www.foo.com", "null", false},
		{"https://www.foo.com", "https://www.foo.com/path", false},
		{"https://www.foo.com", "", false},
		{"www.foo.com", "www.foo.com", false},
	}
	for _, tc := range tests {
		if got := matchOrigin(tc.pattern, tc.origin); got != tc.want {
			t.Errorf("matchOrigin(%q, %q) = %v, want %v", tc.pattern, tc.origin, got, tc.want)
		}
	}
}

// The routes of the httproute-cors conformance manifest.
func conformanceCORSRoutes(v1 *echoBackend) []*Route {
	multiple := prefixRoute("/cors-1", v1.backend())
	multiple.Filters = &Filters{CORS: &CORS{
		AllowOrigins:     []string{"https://www.foo.com", "https://*.bar.com"},
		AllowMethods:     []string{"GET", "OPTIONS"},
		AllowHeaders:     []string{"x-header-1", "x-header-2"},
		ExposeHeaders:    []string{"x-header-3", "x-header-4"},
		AllowCredentials: true,
		MaxAge:           3600,
	}}
	wildcardMethods := prefixRoute("/cors-2", v1.backend())
	wildcardMethods.Filters = &Filters{CORS: &CORS{
		AllowOrigins: []string{"https://www.foo.com"},
		AllowMethods: []string{"*"},
	}}
	wildcardOrigin := prefixRoute("/cors-wildcard-origin", v1.backend())
	wildcardOrigin.Filters = &Filters{CORS: &CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"PUT"}}}
	all := prefixRoute("/cors-wildcard-methods-headers", v1.backend())
	all.Filters = &Filters{CORS: &CORS{
		AllowOrigins: []string{"*"}, AllowMethods: []string{"*"}, AllowHeaders: []string{"*"}, AllowCredentials: true,
	}}
	unauth := prefixRoute("/cors-wildcard-methods-headers-unauth", v1.backend())
	unauth.Filters = &Filters{CORS: &CORS{
		AllowOrigins: []string{"*"}, AllowMethods: []string{"*"}, AllowHeaders: []string{"*"},
	}}
	return []*Route{multiple, wildcardMethods, wildcardOrigin, all, unauth}
}

// TestCORSOverHTTP is the httproute-cors conformance test: preflights are
// answered by the gateway, actual requests reach the backend and get the
// Access-Control-* headers.
func TestCORSOverHTTP(t *testing.T) {
	v1 := startEcho(t, "v1")
	gw := startGateway(t, conformanceCORSRoutes(v1)...)
	c := noRedirects()

	const absent = "<absent>"
	tests := []struct {
		name    string
		method  string
		path    string
		header  map[string]string
		status  int
		backend bool // the request must reach the backend
		want    map[string]string
	}{
		{
			name: "preflight from an exact origin", method: "OPTIONS", path: "/cors-1",
			header: map[string]string{"Origin": "https://www.foo.com", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-header-1, x-header-2"},
			status: 204,
			want: map[string]string{
				"Access-Control-Allow-Origin":      "https://www.foo.com",
				"Access-Control-Allow-Methods":     "GET, OPTIONS",
				"Access-Control-Allow-Headers":     "x-header-1, x-header-2",
				"Access-Control-Expose-Headers":    "x-header-3, x-header-4",
				"Access-Control-Max-Age":           "3600",
				"Access-Control-Allow-Credentials": "true",
			},
		},
		{
			name: "preflight from a wildcard origin, several labels", method: "OPTIONS", path: "/cors-1",
			header: map[string]string{"Origin": "https://xpto.www.bar.com", "Access-Control-Request-Method": "GET"},
			status: 204,
			want:   map[string]string{"Access-Control-Allow-Origin": "https://xpto.www.bar.com", "Access-Control-Max-Age": "3600"},
		},
		{
			name: "preflight from an origin not allowed", method: "OPTIONS", path: "/cors-1",
			header: map[string]string{"Origin": "https://foobar.com", "Access-Control-Request-Method": "GET"},
			status: 204,
			want:   map[string]string{"Access-Control-Allow-Origin": absent, "Access-Control-Allow-Methods": absent},
		},
		{
			name: "simple request from an allowed origin", method: "GET", path: "/cors-1",
			header: map[string]string{"Origin": "https://www.bar.com"}, status: 200, backend: true,
			want: map[string]string{"Access-Control-Allow-Origin": "https://www.bar.com", "Access-Control-Allow-Credentials": "true"},
		},
		{
			name: "simple request from an origin not allowed", method: "GET", path: "/cors-1",
			header: map[string]string{"Origin": "https://foobar.com"}, status: 200, backend: true,
			want: map[string]string{"Access-Control-Allow-Origin": absent},
		},
		{
			name: "request without Origin", method: "GET", path: "/cors-1", status: 200, backend: true,
			want: map[string]string{"Access-Control-Allow-Origin": absent},
		},
		{
			name: "OPTIONS without Access-Control-Request-Method is forwarded", method: "OPTIONS", path: "/cors-1",
			header: map[string]string{"Origin": "https://www.foo.com"}, status: 200, backend: true,
			want: map[string]string{"Access-Control-Allow-Origin": "https://www.foo.com"},
		},
		{
			name: "wildcard methods echo the requested one", method: "OPTIONS", path: "/cors-2",
			header: map[string]string{"Origin": "https://www.foo.com", "Access-Control-Request-Method": "POST"},
			status: 204,
			want: map[string]string{
				"Access-Control-Allow-Origin": "https://www.foo.com", "Access-Control-Allow-Methods": "POST",
				"Access-Control-Allow-Credentials": absent, "Access-Control-Max-Age": "5",
			},
		},
		{
			name: "wildcard origin with a port", method: "OPTIONS", path: "/cors-wildcard-origin",
			header: map[string]string{"Origin": "https://foobar.com:12345", "Access-Control-Request-Method": "PUT"},
			status: 204,
			want: map[string]string{
				"Access-Control-Allow-Origin": "https://foobar.com:12345", "Access-Control-Allow-Methods": "PUT",
				"Access-Control-Allow-Credentials": absent,
			},
		},
		{
			name: "actual request from a wildcard origin", method: "PUT", path: "/cors-wildcard-origin",
			header: map[string]string{"Origin": "https://foobar.com"}, status: 200, backend: true,
			want: map[string]string{"Access-Control-Allow-Origin": "https://foobar.com", "Access-Control-Allow-Credentials": absent},
		},
		{
			name: "wildcards with credentials echo method and headers", method: "OPTIONS", path: "/cors-wildcard-methods-headers",
			header: map[string]string{"Origin": "https://other.foo.com", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-header-1, x-header-2"},
			status: 204,
			want: map[string]string{
				"Access-Control-Allow-Origin": "https://other.foo.com", "Access-Control-Allow-Methods": "PUT",
				"Access-Control-Allow-Headers": "x-header-1, x-header-2", "Access-Control-Allow-Credentials": "true",
			},
		},
		{
			name: "wildcards without credentials", method: "OPTIONS", path: "/cors-wildcard-methods-headers-unauth",
			header: map[string]string{"Origin": "https://other.foo.com", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-header-1, x-header-2"},
			status: 204,
			want: map[string]string{
				"Access-Control-Allow-Origin": "https://other.foo.com", "Access-Control-Allow-Methods": "PUT",
				"Access-Control-Allow-Headers": "x-header-1, x-header-2", "Access-Control-Allow-Credentials": absent,
			},
		},
		{
			name: "actual request with credentials", method: "GET", path: "/cors-wildcard-methods-headers",
			header: map[string]string{"Origin": "https://other.foo.com"}, status: 200, backend: true,
			want: map[string]string{"Access-Control-Allow-Origin": "https://other.foo.com", "Access-Control-Allow-Credentials": "true"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			resp, e := send(t, c, tc.method, gw.URL+tc.path, h, "")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.backend != (e != nil) {
				t.Fatalf("reached the backend: %v, want %v", e != nil, tc.backend)
			}
			for name, want := range tc.want {
				got, ok := resp.Header[http.CanonicalHeaderKey(name)]
				switch {
				case want == absent && ok:
					t.Errorf("%s: %q, want none", name, got)
				case want != absent && strings.Join(got, ",") != want:
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			if tc.header["Origin"] != "" && !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary %q does not name Origin", resp.Header.Values("Vary"))
			}
		})
	}
}

// TestBackendCORS checks that a backendRef's CORS filter applies when the
// route has none.
func TestBackendCORS(t *testing.T) {
	v1 := startEcho(t, "v1")
	route := prefixRoute("/", nil)
	route.Backends = []WeightedBackend{{Backend: v1.backend(), Weight: 1,
		Filters: &Filters{CORS: &CORS{AllowOrigins: []string{"https://backend.example"}}}}}
	gw := startGateway(t, route)
	for origin, allowed := range map[string]bool{"https://other.example": false, "https://backend.example": true} {
		h := http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"GET"}}
		resp, _ := send(t, noRedirects(), "OPTIONS", gw.URL+"/x", h, "")
		if got := resp.Header.Get("Access-Control-Allow-Origin") != ""; got != allowed {
			t.Errorf("origin %s: allowed %v, want %v", origin, got, allowed)
		}
	}
}

func TestAddVaryOrigin(t *testing.T) {
	tests := []struct{ in, want []string }{
		{nil, []string{"Origin"}},
		{[]string{"Accept-Encoding"}, []string{"Accept-Encoding", "Origin"}},
		{[]string{"Accept-Encoding, origin"}, []string{"Accept-Encoding, origin"}},
		{[]string{"*"}, []string{"*"}},
	}
	for _, tc := range tests {
		h := http.Header{}
		if tc.in != nil {
			h["Vary"] = tc.in
		}
		addVaryOrigin(h)
		if strings.Join(h["Vary"], "|") != strings.Join(tc.want, "|") {
			t.Errorf("Vary %q: got %q, want %q", tc.in, h["Vary"], tc.want)
		}
	}
}
