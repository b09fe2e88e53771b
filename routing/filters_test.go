package routing

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// TestReplacePrefix is the ReplacePrefixMatch table of the Gateway API
// HTTPPathModifier documentation, plus the conformance rewrite cases.
func TestReplacePrefix(t *testing.T) {
	tests := []struct{ path, prefix, replacement, want string }{
		{"/foo/bar", "/foo", "/xyz", "/xyz/bar"},
		{"/foo/bar", "/foo/", "/xyz", "/xyz/bar"},
		{"/foo/bar", "/foo", "/xyz/", "/xyz/bar"},
		{"/foo/bar", "/foo/", "/xyz/", "/xyz/bar"},
		{"/foo", "/foo", "/xyz", "/xyz"},
		{"/foo/", "/foo", "/xyz", "/xyz/"},
		{"/foo/bar", "/foo", "", "/bar"},
		{"/foo/", "/foo", "", "/"},
		{"/foo", "/foo", "", "/"},
		{"/foo/", "/foo", "/", "/"},
		{"/foo", "/foo", "/", "/"},
		// HTTPRouteRewritePath and HTTPRouteRedirectPath.
		{"/prefix/one/two", "/prefix/one", "/one", "/one/two"},
		{"/strip-prefix/three", "/strip-prefix", "/", "/three"},
		{"/strip-prefix", "/strip-prefix", "/", "/"},
		{"/prefix/rewrite-path-and-modify-headers/one", "/prefix/rewrite-path-and-modify-headers", "/prefix", "/prefix/one"},
		{"/original-prefix/lemon", "/original-prefix", "/replacement-prefix", "/replacement-prefix/lemon"},
		// Prefix "/" matches every path.
		{"/x/y", "/", "/bar", "/bar/x/y"},
		{"/", "/", "/bar", "/bar"},
		{"/x", "/", "/", "/x"},
		// Not element-wise under the prefix: unchanged.
		{"/foobar", "/foo", "/xyz", "/foobar"},
	}
	for _, tc := range tests {
		if got := replacePrefix(tc.path, tc.prefix, tc.replacement); got != tc.want {
			t.Errorf("replacePrefix(%q, %q, %q) = %q, want %q", tc.path, tc.prefix, tc.replacement, got, tc.want)
		}
	}
}

func TestPathModifierOnlyReplacesPrefixOfPrefixRoutes(t *testing.T) {
	repl := "/new"
	m := &PathModifier{ReplacePrefixMatch: &repl}
	if got := m.apply("/old/x", &Route{PathKind: PathExact, Path: "/old/x"}); got != "/old/x" {
		t.Errorf("exact route: %q", got)
	}
	if got := m.apply("/old/x", &Route{PathKind: PathPrefix, Path: "/old"}); got != "/new/x" {
		t.Errorf("prefix route: %q", got)
	}
	full := ""
	if got := (&PathModifier{ReplaceFullPath: &full}).apply("/a/b", &Route{PathKind: PathPrefix, Path: "/"}); got != "/" {
		t.Errorf("empty full path: %q", got)
	}
}

func strp(s string) *string { return &s }

// TestRedirectLocation covers the HTTPRouteRedirect* conformance cases:
// the listener port, scheme and port defaults, hostname and path.
func TestRedirectLocation(t *testing.T) {
	prefixRoute := func(p string) *Route { return &Route{PathKind: PathPrefix, Path: p} }
	tests := []struct {
		name     string
		https    bool
		host     string // request Host header
		listener int
		target   string
		route    *Route
		red      Redirect
		want     string
	}{
		{name: "hostname", host: "gw", listener: 80, target: "/hostname-redirect",
			red: Redirect{Hostname: "example.org"}, want: "http://example.org/hostname-redirect"},
		{name: "prefix replaced", host: "gw", listener: 80, target: "/original-prefix/lemon", route: prefixRoute("/original-prefix"),
			red: Redirect{Path: &PathModifier{ReplacePrefixMatch: strp("/replacement-prefix")}}, want: "http://gw/replacement-prefix/lemon"},
		{name: "full path", host: "gw", listener: 80, target: "/full/path/original?x=1", route: prefixRoute("/full"),
			red: Redirect{Path: &PathModifier{ReplaceFullPath: strp("/full-path-replacement")}}, want: "http://gw/full-path-replacement?x=1"},
		{name: "port only", host: "gw", listener: 80, target: "/port",
			red: Redirect{Port: 8083}, want: "http://gw:8083/port"},
		{name: "scheme https", host: "gw", listener: 80, target: "/scheme",
			red: Redirect{Scheme: "https"}, want: "https://gw/scheme"},
		{name: "80: scheme nil port nil", host: "gw", listener: 80, target: "/a",
			red: Redirect{Hostname: "example.org"}, want: "http://example.org/a"},
		{name: "80: scheme nil port 80", host: "gw", listener: 80, target: "/a",
			red: Redirect{Hostname: "example.org", Port: 80}, want: "http://example.org/a"},
		{name: "80: scheme nil port 8080", host: "gw", listener: 80, target: "/a",
			red: Redirect{Hostname: "example.org", Port: 8080}, want: "http://example.org:8080/a"},
		{name: "80: scheme https port nil", host: "gw", listener: 80, target: "/a",
			red: Redirect{Scheme: "https", Hostname: "example.org"}, want: "https://example.org/a"},
		{name: "80: scheme https port 443", host: "gw", listener: 80, target: "/a",
			red: Redirect{Scheme: "https", Hostname: "example.org", Port: 443}, want: "https://example.org/a"},
		{name: "80: scheme https port 8443", host: "gw", listener: 80, target: "/a",
			red: Redirect{Scheme: "https", Hostname: "example.org", Port: 8443}, want: "https://example.org:8443/a"},
		{name: "8080: scheme nil port nil keeps the listener port", host: "gw:8080", listener: 8080, target: "/a",
			red: Redirect{Hostname: "example.org"}, want: "http://example.org:8080/a"},
		{name: "8080: scheme nil port 80", host: "gw:8080", listener: 8080, target: "/a",
			red: Redirect{Hostname: "example.org", Port: 80}, want: "http://example.org/a"},
		{name: "8080: scheme https port nil", host: "gw:8080", listener: 8080, target: "/a",
			red: Redirect{Scheme: "https", Hostname: "example.org"}, want: "https://example.org/a"},
		{name: "443: scheme nil port nil", https: true, host: "example.org", listener: 443, target: "/a",
			red: Redirect{Hostname: "example.org"}, want: "https://example.org/a"},
		{name: "443: scheme nil port 8443", https: true, host: "example.org", listener: 443, target: "/a",
			red: Redirect{Hostname: "example.org", Port: 8443}, want: "https://example.org:8443/a"},
		{name: "443: scheme http port nil", https: true, host: "example.org", listener: 443, target: "/a",
			red: Redirect{Scheme: "http", Hostname: "example.org"}, want: "http://example.org/a"},
		{name: "443: scheme http port 8080", https: true, host: "example.org", listener: 443, target: "/a",
			red: Redirect{Scheme: "http", Hostname: "example.org", Port: 8080}, want: "http://example.org:8080/a"},
		{name: "IPv6 request host", host: "[::1]:8080", listener: 8080, target: "/a",
			red: Redirect{Port: 80}, want: "http://[::1]/a"},
		{name: "IPv6 request host keeps listener port", host: "[::1]:8080", listener: 8080, target: "/a",
			red: Redirect{}, want: "http://[::1]:8080/a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://"+tc.host+tc.target, nil)
			r.Host = tc.host
			if tc.https {
				r.TLS = &tls.ConnectionState{}
			}
			route := tc.route
			if route == nil {
				route = prefixRoute("/")
			}
			got := redirectLocation(r, &tc.red, r.URL.Path, route, tc.listener)
			if got != tc.want {
				t.Fatalf("Location = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestListenerPort(t *testing.T) {
	r := httptest.NewRequest("GET", "http://gw:9000/", nil)
	if got := listenerPort(r); got != 9000 {
		t.Errorf("from Host: %d", got)
	}
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(local)))
	if got := listenerPort(r); got != 8080 {
		t.Errorf("from the local address: %d", got)
	}
	r = httptest.NewRequest("GET", "https://gw/", nil)
	if got := listenerPort(r); got != 443 {
		t.Errorf("https default: %d", got)
	}
}

// TestHeaderModifier covers HTTPRouteRequestHeaderModifier and
// HTTPRouteResponseHeaderModification: set, add, remove, and names in any
// case.
func TestHeaderModifier(t *testing.T) {
	m := &HeaderModifier{
		Set:    []HeaderValue{{"X-Header-Set", "set-overwrites-values"}, {"x-lower-set", "v"}},
		Add:    []HeaderValue{{"X-Header-Add", "header-add"}, {"x-Mixedcase-ADD-1", "mixed"}},
		Remove: []string{"x-header-remove"},
	}
	shared := []string{"original-val-add", "other"}
	h := http.Header{
		"X-Header-Set":    {"original-val-set"},
		"X-Header-Add":    shared[:1],
		"X-Header-Remove": {"original-val-remove"},
		"Another-Header":  {"another-header-val"},
	}
	m.apply(h)
	want := http.Header{
		"X-Header-Set":      {"set-overwrites-values"},
		"X-Lower-Set":       {"v"},
		"X-Header-Add":      {"original-val-add", "header-add"},
		"X-Mixedcase-Add-1": {"mixed"},
		"Another-Header":    {"another-header-val"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("header = %v, want %v", h, want)
	}
	if shared[1] != "other" {
		t.Fatal("Add wrote into a backing array shared with another header")
	}
}

func TestPickBackend(t *testing.T) {
	if pickBackend([]WeightedBackend{{Weight: 0}, {Weight: 0}}) != nil {
		t.Fatal("all-zero weights picked a backend")
	}
	backends := []WeightedBackend{{Weight: 70}, {Weight: 30}, {Weight: 0}}
	counts := make([]int, len(backends))
	const n = 2000
	for range n {
		b := pickBackend(backends)
		for i := range backends {
			if b == &backends[i] {
				counts[i]++
			}
		}
	}
	if counts[2] != 0 {
		t.Fatalf("weight 0 picked %d times", counts[2])
	}
	// 70% of 2000 is 1400 with a standard deviation near 20; allow a
	// generous margin so the test never flakes.
	if counts[0] < 1200 || counts[0] > 1600 {
		t.Fatalf("weight 70 picked %d of %d times", counts[0], n)
	}
}

// TestLocationRewrite: nginx's proxy_redirect with a prefix: Location and
// the URL of Refresh, compared ignoring case; other values pass.
func TestLocationRewrite(t *testing.T) {
	lr := &LocationRewrite{From: "http://internal:8080/", To: "https://shop.example/app/"}
	for _, c := range []struct{ header, in, want string }{
		{"Location", "http://internal:8080/next?x=1", "https://shop.example/app/next?x=1"},
		{"Location", "HTTP://Internal:8080/a", "https://shop.example/app/a"},
		{"Location", "http://other/a", "http://other/a"},
		{"Location", "/relative", "/relative"},
		{"Refresh", "5; url=http://internal:8080/r", "5; url=https://shop.example/app/r"},
		{"Refresh", "5", "5"},
	} {
		h := http.Header{c.header: {c.in}}
		lr.apply(h)
		if got := h.Get(c.header); got != c.want {
			t.Errorf("%s %q: got %q, want %q", c.header, c.in, got, c.want)
		}
	}
}
