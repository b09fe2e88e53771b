package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/http1"
)

// The ingress-nginx annotation tests send real traffic through the whole
// gateway to an echo backend, and check what the client got and what the
// backend received. Scenarios follow ingress-nginx's annotation guide and
// its e2e suite (test/e2e/annotations).

// startEcho is a backend that answers with the Host, request URI and
// X-Forwarded-Prefix it received.
func startEcho(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "host=%s uri=%s prefix=%s", r.Host, r.RequestURI, r.Header.Get("X-Forwarded-Prefix"))
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return port
}

// nginxIngress is an Ingress of the portico class for one host and path,
// routed to the echo Service, with ingress-nginx annotations.
func nginxIngress(name, host, path, pathType, tls string, annotations map[string]string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: %s\n  namespace: default\n  annotations:\n", name)
	if len(annotations) == 0 {
		sb.WriteString("    {}\n")
	}
	for k, v := range annotations {
		fmt.Fprintf(&sb, "    nginx.ingress.kubernetes.io/%s: %q\n", k, v)
	}
	sb.WriteString("spec:\n  ingressClassName: portico\n")
	if tls != "" {
		fmt.Fprintf(&sb, "  tls: [{hosts: [%s]}]\n", tls)
	}
	fmt.Fprintf(&sb, "  rules:\n  - host: %s\n    http:\n      paths:\n      - {path: %q, pathType: %s, backend: {service: {name: echo, port: {number: 80}}}}\n", host, path, pathType)
	return sb.String()
}

func writeNginxIngresses(e *env, ingresses ...string) {
	e.t.Helper()
	port := startEcho(e.t.(*testing.T))
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("nginx.yaml", strings.Join(ingresses, "---\n"))
	})
}

// do sends one request through the gateway and returns the response and
// its body.
func do(t *testing.T, c *http.Client, method, url string, header http.Header, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body = http.NoBody
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(b)
}

func TestNginxAnnotationsEndToEnd(t *testing.T) {
	e := startEnv(t)
	writeNginxIngresses(e,
		// ssl-redirect is on by default for a host with TLS.
		nginxIngress("tls-default", "tls.apps.example.test", "/", "Prefix", "tls.apps.example.test",
			map[string]string{"x-forwarded-prefix": "/shop", "upstream-vhost": "inner.example"}),
		nginxIngress("force", "force.apps.example.test", "/", "Prefix", "", map[string]string{"force-ssl-redirect": "true"}),
		nginxIngress("no-tls", "plain.apps.example.test", "/", "Prefix", "", nil),
		nginxIngress("moved", "moved.apps.example.test", "/", "Prefix", "",
			map[string]string{"permanent-redirect": "https://elsewhere.example/new", "permanent-redirect-code": "308"}),
		nginxIngress("temp", "temp.apps.example.test", "/", "Prefix", "", map[string]string{"temporal-redirect": "https://elsewhere.example/tmp", "temporal-redirect-code": "307"}),
		nginxIngress("approot", "approot.apps.example.test", "/", "Prefix", "", map[string]string{"app-root": "/app1"}),
		nginxIngress("www", "site.apps.example.test", "/", "Prefix", "", map[string]string{"from-to-www-redirect": "true"}),
		nginxIngress("rewrite", "rewrite.apps.example.test", "/something(/|$)(.*)", "ImplementationSpecific", "",
			map[string]string{"use-regex": "true", "rewrite-target": "/$2"}),
		// No annotation, but on a host where another Ingress uses regex.
		nginxIngress("same-host", "rewrite.apps.example.test", "/static", "Prefix", "", nil),
		nginxIngress("cors", "cors.apps.example.test", "/", "Prefix", "",
			map[string]string{"enable-cors": "true", "cors-allow-origin": "https://ok.example", "cors-max-age": "600",
				"cors-allow-headers": "X-Custom, Content-Type", "cors-expose-headers": "X-Total"}),
		nginxIngress("limits", "limits.apps.example.test", "/", "Prefix", "", map[string]string{"proxy-body-size": "1k"}),
		nginxIngress("allow", "allow.apps.example.test", "/", "Prefix", "", map[string]string{"whitelist-source-range": "192.0.2.0/24"}),
		nginxIngress("allowed", "allowed.apps.example.test", "/", "Prefix", "", map[string]string{"whitelist-source-range": "10.0.0.0/8, 127.0.0.1"}),
		nginxIngress("allowlist", "allowlist.apps.example.test", "/", "Prefix", "", map[string]string{"allowlist-source-range": "192.0.2.0/24"}),
		nginxIngress("deny", "deny.apps.example.test", "/", "Prefix", "", map[string]string{"denylist-source-range": "127.0.0.0/8"}),
		nginxIngress("bad-allow", "bad-allow.apps.example.test", "/", "Prefix", "", map[string]string{"whitelist-source-range": "not-a-range"}),
		nginxIngress("alias", "aliased.apps.example.test", "/", "Prefix", "",
			map[string]string{"server-alias": "alias-one.apps.example.test, tls.apps.example.test", "x-forwarded-prefix": "/aliased"}),
		nginxIngress("snippet", "snippet.apps.example.test", "/", "Prefix", "",
			map[string]string{"configuration-snippet": "return 200 'pwned';", "ssl-redirect": "nonsense"}),
	)
	c := e.http1Client()

	type want struct {
		status   int
		location string // prefix of the Location header
		body     string // substring of the body
	}
	cases := []struct {
		name, method, url string
		header            http.Header
		body              string
		want              want
	}{
		{"ssl-redirect by default with TLS", "GET", "http://tls.apps.example.test/a?b=1", nil, "", want{308, "https://tls.apps.example.test", ""}},
		{"x-forwarded-prefix and upstream-vhost over HTTPS", "GET", "https://tls.apps.example.test/a", nil, "", want{200, "", "host=inner.example uri=/a prefix=/shop"}},
		{"force-ssl-redirect without TLS", "GET", "http://force.apps.example.test/x", nil, "", want{308, "https://force.apps.example.test", ""}},
		{"no redirect without TLS", "GET", "http://plain.apps.example.test/x", nil, "", want{200, "", "uri=/x"}},
		{"permanent-redirect with code", "GET", "http://moved.apps.example.test/x?q=1", nil, "", want{308, "https://elsewhere.example/new", ""}},
		{"temporal-redirect with code", "GET", "http://temp.apps.example.test/x", nil, "", want{307, "https://elsewhere.example/tmp", ""}},
		{"app-root redirects /", "GET", "http://approot.apps.example.test/?x=1", nil, "", want{302, "http://approot.apps.example.test", ""}},
		{"app-root leaves other paths", "GET", "http://approot.apps.example.test/other", nil, "", want{200, "", "uri=/other"}},
		{"from-to-www-redirect", "GET", "http://www.site.apps.example.test/p?q=1", nil, "", want{308, "http://site.apps.example.test", ""}},
		{"rewrite-target with captures", "GET", "http://rewrite.apps.example.test/something/new/x?y=2", nil, "", want{200, "", "uri=/new/x?y=2"}},
		{"regex paths are case-insensitive", "GET", "http://rewrite.apps.example.test/SOMETHING", nil, "", want{200, "", "uri=/ "}},
		{"regex captures after a slash", "GET", "http://rewrite.apps.example.test/Something/", nil, "", want{200, "", "uri=/ "}},
		{"x-forwarded-prefix replaces the client's", "GET", "https://tls.apps.example.test/b", http.Header{"X-Forwarded-Prefix": {"/spoofed"}}, "", want{200, "", "prefix=/shop"}},
		{"another Ingress's path on a regex host", "GET", "http://rewrite.apps.example.test/STATICfiles", nil, "", want{200, "", "uri=/STATICfiles"}},
		{"cors preflight", "OPTIONS", "http://cors.apps.example.test/api", http.Header{"Origin": {"https://ok.example"}, "Access-Control-Request-Method": {"PUT"}}, "", want{204, "", ""}},
		{"cors actual request", "GET", "http://cors.apps.example.test/api", http.Header{"Origin": {"https://ok.example"}}, "", want{200, "", "uri=/api"}},
		{"body within proxy-body-size", "POST", "http://limits.apps.example.test/up", nil, strings.Repeat("a", 1024), want{200, "", "uri=/up"}},
		{"body over proxy-body-size", "POST", "http://limits.apps.example.test/up", nil, strings.Repeat("a", 1025), want{413, "", ""}},
		{"client outside the allow list", "GET", "http://allow.apps.example.test/", nil, "", want{403, "", ""}},
		{"client in the allow list", "GET", "http://allowed.apps.example.test/", nil, "", want{200, "", "uri=/"}},
		{"client outside allowlist-source-range", "GET", "http://allowlist.apps.example.test/", nil, "", want{403, "", ""}},
		{"client in the deny list", "GET", "http://deny.apps.example.test/", nil, "", want{403, "", ""}},
		{"unreadable allow list admits nobody", "GET", "http://bad-allow.apps.example.test/", nil, "", want{403, "", ""}},
		{"server-alias serves the Ingress under another name", "GET", "http://alias-one.apps.example.test/a", nil, "", want{200, "", "uri=/a prefix=/aliased"}},
		{"server-alias never takes another Ingress's host", "GET", "https://tls.apps.example.test/a", nil, "", want{200, "", "prefix=/shop"}},
		{"snippet never executed", "GET", "http://snippet.apps.example.test/s", nil, "", want{200, "", "uri=/s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, c, tc.method, tc.url, tc.header, tc.body)
			if resp.StatusCode != tc.want.status {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tc.want.status, body)
			}
			if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, tc.want.location) || (tc.want.location == "" && loc != "") {
				t.Errorf("Location %q, want prefix %q", loc, tc.want.location)
			}
			if !strings.Contains(body+" ", tc.want.body) {
				t.Errorf("body %q, want it to contain %q", body, tc.want.body)
			}
		})
	}

	t.Run("proxy-body-size over HTTP/2", func(t *testing.T) {
		resp, _ := do(t, e.http2Client(), "POST", "https://limits.apps.example.test/up", nil, strings.Repeat("a", 1025))
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
	})
	t.Run("proxy-body-size on a chunked body", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://limits.apps.example.test/up", io.MultiReader(strings.NewReader(strings.Repeat("a", 4096))))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d (%q), want 413", resp.StatusCode, body)
		}
	})
	t.Run("exact Location of redirects", func(t *testing.T) {
		resp, _ := do(t, c, "GET", "http://moved.apps.example.test/x?q=1", nil, "")
		if got := resp.Header.Get("Location"); got != "https://elsewhere.example/new" {
			t.Errorf("permanent-redirect Location %q: nginx's return sends the URL as is", got)
		}
		resp, _ = do(t, c, "GET", "http://approot.apps.example.test/?x=1", nil, "")
		if got := resp.Header.Get("Location"); !strings.HasSuffix(got, "/app1") {
			t.Errorf("app-root Location %q, want .../app1 without the query", got)
		}
		resp, _ = do(t, c, "GET", "http://www.site.apps.example.test/p?q=1", nil, "")
		if got := resp.Header.Get("Location"); !strings.HasSuffix(got, "/p?q=1") {
			t.Errorf("from-to-www Location %q, want the request URI kept", got)
		}
	})
	t.Run("cors headers", func(t *testing.T) {
		resp, _ := do(t, c, "OPTIONS", "http://cors.apps.example.test/api", http.Header{"Origin": {"https://ok.example"}, "Access-Control-Request-Method": {"PUT"}}, "")
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://ok.example" {
			t.Errorf("preflight Access-Control-Allow-Origin %q", got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "PUT") {
			t.Errorf("preflight Access-Control-Allow-Methods %q, want ingress-nginx's default list", got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
			t.Errorf("preflight Access-Control-Allow-Credentials %q, want ingress-nginx's default true", got)
		}
		if got := resp.Header.Get("Access-Control-Max-Age"); got != "600" {
			t.Errorf("preflight Access-Control-Max-Age %q, want 600", got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Headers"); got != "X-Custom, Content-Type" {
			t.Errorf("preflight Access-Control-Allow-Headers %q, want cors-allow-headers", got)
		}
		resp, _ = do(t, c, "GET", "http://cors.apps.example.test/api", http.Header{"Origin": {"https://evil.example"}}, "")
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("a foreign origin got Access-Control-Allow-Origin %q", got)
		}
		resp, _ = do(t, c, "GET", "http://cors.apps.example.test/api", http.Header{"Origin": {"https://ok.example"}}, "")
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://ok.example" {
			t.Errorf("actual request Access-Control-Allow-Origin %q", got)
		}
		if got := resp.Header.Get("Access-Control-Expose-Headers"); got != "X-Total" {
			t.Errorf("actual request Access-Control-Expose-Headers %q, want cors-expose-headers", got)
		}
	})
}

// TestNginxAllowListHonoursTrustedProxies checks the allow list against
// the client a trusted proxy names in X-Forwarded-For, and against the
// peer itself otherwise.
func TestNginxAllowListHonoursTrustedProxies(t *testing.T) {
	e := startEnv(t, "--trusted-proxies", "127.0.0.1/32")
	writeNginxIngresses(e,
		nginxIngress("allow", "allow.apps.example.test", "/", "Prefix", "", map[string]string{"whitelist-source-range": "203.0.113.0/24"}))
	c := e.http1Client()
	for _, tc := range []struct {
		xff  string
		want int
	}{
		{"", 403},
		{"203.0.113.5", 200},
		{"203.0.113.5, 127.0.0.1", 200},
		{"198.51.100.1", 403},
		{"203.0.113.5, 198.51.100.1", 403},
	} {
		h := http.Header{}
		if tc.xff != "" {
			h.Set("X-Forwarded-For", tc.xff)
		}
		if resp, body := do(t, c, "GET", "http://allow.apps.example.test/", h, ""); resp.StatusCode != tc.want {
			t.Errorf("X-Forwarded-For %q: status %d, want %d (%q)", tc.xff, resp.StatusCode, tc.want, body)
		}
	}
}

// TestNginxBackendProtocolGRPC: backend-protocol GRPC reaches the backend
// over HTTP/2 with prior knowledge, trailers included, as gRPC needs.
func TestNginxBackendProtocolGRPC(t *testing.T) {
	e := startEnv(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		fmt.Fprintf(w, "proto=%s uri=%s", r.Proto, r.RequestURI)
		w.Header().Set("Grpc-Status", "0")
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("nginx.yaml", nginxIngress("grpc", "grpc.apps.example.test", "/", "Prefix", "grpc.apps.example.test",
			map[string]string{"backend-protocol": "GRPC"}))
	})
	resp, body := do(t, e.http2Client(), "POST", "https://grpc.apps.example.test/helloworld.Greeter/SayHello", http.Header{"Content-Type": {"application/grpc"}, "Te": {"trailers"}}, "\x00\x00\x00\x00\x00")
	if resp.StatusCode != 200 || !strings.Contains(body, "proto=HTTP/2.0 uri=/helloworld.Greeter/SayHello") {
		t.Fatalf("status %d body %q, want the backend reached over HTTP/2", resp.StatusCode, body)
	}
	if got := resp.Trailer.Get("Grpc-Status"); got != "0" {
		t.Errorf("Grpc-Status trailer %q, want 0", got)
	}
}

// TestNginxProxyReadTimeout: proxy-read-timeout replaces the global bound
// on the wait for a backend's answer for its Ingress only.
func TestNginxProxyReadTimeout(t *testing.T) {
	e := startEnv(t, "--upstream-response-header-timeout", "300ms", "--upstream-read-timeout", "300ms")
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delay := 800 * time.Millisecond
		if r.URL.Path == "/slower" {
			delay = 1500 * time.Millisecond
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "late answer")
	}))
	t.Cleanup(slow.Close)
	_, port, _ := net.SplitHostPort(slow.Listener.Addr().String())
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("nginx.yaml", nginxIngress("patient", "patient.apps.example.test", "/", "Prefix", "", map[string]string{"proxy-read-timeout": "30"})+
			"---\n"+nginxIngress("hasty", "hasty.apps.example.test", "/", "Prefix", "", map[string]string{"proxy-send-timeout": "30"}))
	})
	c := e.http1Client()
	if resp, body := do(t, c, "GET", "http://patient.apps.example.test/", nil, ""); resp.StatusCode != 200 || body != "late answer" {
		t.Errorf("with proxy-read-timeout 30: status %d body %q, want the late answer", resp.StatusCode, body)
	}
	if resp, body := do(t, c, "GET", "http://hasty.apps.example.test/", nil, ""); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("without it: status %d body %q, want 504 from the global bound", resp.StatusCode, body)
	}
	// Over HTTPS the event loops start the exchange and, the answer
	// taking longer than http1.LoopExchangeMax, a goroutine finishes it
	// under the route's bound, not the global one.
	before := http1.EventLoopCounts()
	if resp, body := do(t, c, "GET", "https://patient.apps.example.test/slower", nil, ""); resp.StatusCode != 200 || body != "late answer" {
		t.Errorf("HTTPS with proxy-read-timeout 30: status %d body %q, want the late answer", resp.StatusCode, body)
	}
	if runtime.GOOS == "linux" && http1.EventLoopCounts().Continued == before.Continued {
		t.Error("the event loops did not start the exchange of a route with proxy-read-timeout")
	}
}

// startNamedEcho is a backend that answers with its name.
func startNamedEcho(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, name)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return port
}

// TestNginxCanary: a canary Ingress takes its main Ingress's requests by
// header (always, never), then by cookie, then by weight, in ingress-nginx's
// order of precedence.
func TestNginxCanary(t *testing.T) {
	e := startEnv(t)
	mainPort, canaryPort := startNamedEcho(t, "main"), startNamedEcho(t, "canary")
	route := func(name, host, service string, annotations map[string]string) string {
		return strings.Replace(nginxIngress(name, host, "/", "Prefix", "", annotations), "name: echo,", "name: "+service+",", 1)
	}
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", mainPort)+"---\n"+manifestService("echo-v2", canaryPort))
		e.write("nginx.yaml", strings.Join([]string{
			route("main", "shop.apps.example.test", "echo", nil),
			route("canary", "shop.apps.example.test", "echo-v2", map[string]string{
				"canary": "true", "canary-by-header": "X-Canary", "canary-by-cookie": "beta"}),
			route("main-all", "all.apps.example.test", "echo", nil),
			route("canary-all", "all.apps.example.test", "echo-v2", map[string]string{"canary": "true", "canary-weight": "50", "canary-weight-total": "50"}),
			route("main-none", "none.apps.example.test", "echo", nil),
			route("canary-none", "none.apps.example.test", "echo-v2", map[string]string{"canary": "true", "canary-weight": "0", "canary-by-header": "X-Canary", "canary-by-header-value": "yes-please"}),
		}, "---\n"))
	})
	c := e.http1Client()
	for _, tc := range []struct {
		name, host string
		header     http.Header
		want       string
	}{
		{"no header, no cookie", "shop", nil, "main"},
		{"header always", "shop", http.Header{"X-Canary": {"always"}}, "canary"},
		{"header never beats cookie", "shop", http.Header{"X-Canary": {"never"}, "Cookie": {"beta=always"}}, "main"},
		{"other header value falls through to the cookie", "shop", http.Header{"X-Canary": {"maybe"}, "Cookie": {"a=1; beta=always"}}, "canary"},
		{"cookie never", "shop", http.Header{"Cookie": {"beta=never"}}, "main"},
		{"weight equal to canary-weight-total", "all", nil, "canary"},
		{"weight 0", "none", nil, "main"},
		{"header value", "none", http.Header{"X-Canary": {"yes-please"}}, "canary"},
		{"header value mismatch", "none", http.Header{"X-Canary": {"always"}}, "main"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, c, "GET", "http://"+tc.host+".apps.example.test/x", tc.header, "")
			if resp.StatusCode != 200 || body != tc.want {
				t.Errorf("status %d body %q, want %s", resp.StatusCode, body, tc.want)
			}
		})
	}
}

// TestNginxExternalAuth: auth-url asks an authentication service about
// each request: 2xx lets it through with auth-response-headers copied, 401
// and 403 reach the client (401 as a redirect with auth-signin), anything
// else and an unreachable service answer 500.
func TestNginxExternalAuth(t *testing.T) {
	e := startEnv(t, "--external-auth-timeout", "2s")
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer good":
			if r.Header.Get("X-Original-URL") != "http://authed.apps.example.test/private?x=1" || r.Header.Get("X-Original-Method") != "GET" || r.Method != http.MethodPost {
				http.Error(w, "unexpected subrequest "+r.Method+" "+r.Header.Get("X-Original-URL"), http.StatusTeapot)
				return
			}
			w.Header().Set("X-Auth-Request-User", "alice")
			w.Header().Set("X-Not-Copied", "1")
			w.WriteHeader(http.StatusOK)
		case "Bearer forbidden":
			w.WriteHeader(http.StatusForbidden)
		case "Bearer odd":
			w.WriteHeader(http.StatusTeapot)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="shop"`)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(auth.Close)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + down.Addr().String() + "/auth"
	down.Close()

	port := startEchoHeaders(t, "X-Auth-Request-User", "X-Not-Copied")
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("nginx.yaml", strings.Join([]string{
			nginxIngress("authed", "authed.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-url": auth.URL + "/check", "auth-method": "POST", "auth-response-headers": "X-Auth-Request-User"}),
			nginxIngress("signin", "signin.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-url": auth.URL + "/check", "auth-signin": "https://login.example/start", "auth-signin-redirect-param": "next"}),
			nginxIngress("down", "down.apps.example.test", "/", "Prefix", "", map[string]string{"auth-url": downURL}),
		}, "---\n"))
	})
	c := e.http1Client()
	for _, tc := range []struct {
		name, url, token string
		status           int
		body, location   string
	}{
		{"allowed, with the listed headers copied", "http://authed.apps.example.test/private?x=1", "good", 200, "X-Auth-Request-User=alice X-Not-Copied=", ""},
		{"unauthorized", "http://authed.apps.example.test/private?x=1", "", 401, "", ""},
		{"forbidden", "http://authed.apps.example.test/private?x=1", "forbidden", 403, "", ""},
		{"an odd answer is a failure", "http://authed.apps.example.test/private?x=1", "odd", 500, "", ""},
		{"unauthorized with a sign-in page", "http://signin.apps.example.test/cart?id=7", "", 302, "", "https://login.example/start?next=http%3A%2F%2Fsignin.apps.example.test%2Fcart%3Fid%3D7"},
		{"authentication service down", "http://down.apps.example.test/", "good", 500, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.token != "" {
				h.Set("Authorization", "Bearer "+tc.token)
			}
			resp, body := do(t, c, "GET", tc.url, h, "")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, tc.status)
			}
			if tc.body != "" && body != tc.body {
				t.Errorf("backend got %q, want %q", body, tc.body)
			}
			if got := resp.Header.Get("Location"); got != tc.location {
				t.Errorf("Location %q, want %q", got, tc.location)
			}
			if tc.status == 401 && resp.Header.Get("Www-Authenticate") == "" {
				t.Error("the service's WWW-Authenticate was not passed on")
			}
		})
	}
}

// startEchoHeaders is a backend that answers with the values of the named
// request headers.
func startEchoHeaders(t *testing.T, names ...string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var parts []string
		for _, n := range names {
			parts = append(parts, n+"="+r.Header.Get(n))
		}
		fmt.Fprint(w, strings.Join(parts, " "))
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return port
}

// TestNginxServiceUpstream: service-upstream sends requests to the
// Service's cluster IP (here a loopback address with no Endpoints behind
// it), where the Ingress would otherwise find no endpoint.
func TestNginxServiceUpstream(t *testing.T) {
	e := startEnv(t)
	port := startNamedEcho(t, "via-cluster-ip")
	service := fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: mesh, namespace: default}\nspec:\n  clusterIP: 127.0.0.1\n  ports: [{name: http, port: %s}]\n", port)
	ingress := func(name, host string, annotations map[string]string) string {
		return strings.Replace(strings.Replace(nginxIngress(name, host, "/", "Prefix", "", annotations),
			"name: echo,", "name: mesh,", 1), "port: {number: 80}", "port: {number: "+port+"}", 1)
	}
	e.republish(func() {
		e.write("echo.yaml", service)
		e.write("nginx.yaml", ingress("mesh", "mesh.apps.example.test", map[string]string{"service-upstream": "true"})+"---\n"+
			ingress("direct", "direct.apps.example.test", nil))
	})
	c := e.http1Client()
	if resp, body := do(t, c, "GET", "http://mesh.apps.example.test/", nil, ""); resp.StatusCode != 200 || body != "via-cluster-ip" {
		t.Errorf("with service-upstream: status %d body %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, c, "GET", "http://direct.apps.example.test/", nil, ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("without it: status %d, want 503 (no endpoints)", resp.StatusCode)
	}
}

// TestNginxRateLimits: limit-rpm with its burst, per client address behind
// --trusted-proxies, limit-allowlist exempting addresses, and
// limit-connections bounding one client's requests in flight; a request
// over a limit is answered 503, as by ingress-nginx.
func TestNginxRateLimits(t *testing.T) {
	e := startEnv(t, "--trusted-proxies", "127.0.0.1/32")
	echoPort := startEcho(t)
	gate := make(chan struct{})
	arrived := make(chan struct{}, 4)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-gate:
		case <-time.After(10 * time.Second): // a safety net against a hang, not a timing
		}
		fmt.Fprint(w, "slow")
	}))
	t.Cleanup(slow.Close)
	_, slowPort, _ := net.SplitHostPort(slow.Listener.Addr().String())
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", echoPort))
		e.write("slow.yaml", manifestService("slow", slowPort))
		e.write("nginx.yaml", strings.Join([]string{
			// Per minute, so that no token comes back during the test: one
			// request and a burst of 1.
			nginxIngress("rpm", "rpm.apps.example.test", "/", "Prefix", "", map[string]string{"limit-rpm": "1", "limit-burst-multiplier": "1"}),
			nginxIngress("rps", "rps.apps.example.test", "/", "Prefix", "", map[string]string{"limit-rps": "1", "limit-burst-multiplier": "1"}),
			nginxIngress("exempt", "exempt.apps.example.test", "/", "Prefix", "", map[string]string{"limit-rpm": "1", "limit-burst-multiplier": "1", "limit-allowlist": "203.0.113.0/24"}),
			strings.Replace(nginxIngress("conns", "conns.apps.example.test", "/", "Prefix", "", map[string]string{"limit-connections": "1"}), "{name: echo,", "{name: slow,", 1),
		}, "---\n"))
	})
	c := e.http1Client()
	from := func(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }
	status := func(host string, h http.Header) int {
		t.Helper()
		resp, _ := do(t, c, "GET", "http://"+host+"/", h, "")
		return resp.StatusCode
	}

	t.Run("per minute with burst, per client", func(t *testing.T) {
		for i := range 2 {
			if got := status("rpm.apps.example.test", from("198.51.100.1")); got != 200 {
				t.Fatalf("request %d of 1 + a burst of 1: status %d", i+1, got)
			}
		}
		resp, body := do(t, c, "GET", "http://rpm.apps.example.test/", from("198.51.100.1"), "")
		if resp.StatusCode != 503 || !strings.Contains(body, "too many requests") {
			t.Fatalf("third request: status %d %q, want 503", resp.StatusCode, body)
		}
		if got := status("rpm.apps.example.test", from("198.51.100.2")); got != 200 {
			t.Fatalf("another client behind the trusted proxy: status %d, want its own budget", got)
		}
	})

	t.Run("per second", func(t *testing.T) {
		// One request and a burst of 1, then one a second: of ten sent
		// back to back, some must be refused however slow the machine.
		refused := 0
		for range 10 {
			if status("rps.apps.example.test", from("198.51.100.3")) == 503 {
				refused++
			}
		}
		if refused == 0 {
			t.Fatal("ten requests at once at limit-rps 1: none refused")
		}
	})

	t.Run("allowlisted addresses are not limited", func(t *testing.T) {
		for i := range 5 {
			if got := status("exempt.apps.example.test", from("203.0.113.7")); got != 200 {
				t.Fatalf("exempt request %d: status %d", i+1, got)
			}
		}
		status("exempt.apps.example.test", from("198.51.100.1"))
		status("exempt.apps.example.test", from("198.51.100.1"))
		if got := status("exempt.apps.example.test", from("198.51.100.1")); got != 503 {
			t.Fatalf("a client outside the allowlist: status %d, want 503 after its budget", got)
		}
	})

	t.Run("requests in flight", func(t *testing.T) {
		first := make(chan int, 1)
		go func() {
			resp, err := e.http1Client().Get("http://conns.apps.example.test/")
			if err != nil {
				first <- 0
				return
			}
			resp.Body.Close()
			first <- resp.StatusCode
		}()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the first request never reached the backend")
		}
		if got := status("conns.apps.example.test", nil); got != 503 {
			t.Errorf("a second request while the first is in flight: status %d, want 503", got)
		}
		close(gate)
		if got := <-first; got != 200 {
			t.Fatalf("the first request: status %d", got)
		}
		if got := status("conns.apps.example.test", nil); got != 200 {
			t.Fatalf("after the first request ended: status %d, want 200", got)
		}
	})
}

// nginxConfigMapManifest is ingress-nginx's controller ConfigMap with data.
func nginxConfigMapManifest(data map[string]string) string {
	var sb strings.Builder
	sb.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ingress-nginx-controller, namespace: ingress-nginx}\ndata:\n")
	for k, v := range data {
		fmt.Fprintf(&sb, "  %s: %q\n", k, v)
	}
	return sb.String()
}

// TestNginxConfigMapEndToEnd: ingress-nginx's ConfigMap, read from the
// manifest folder by --nginx-configmap, gives every Ingress of the adopted
// nginx class its defaults; an annotation overrides them; an edit at run
// time takes effect, and an edit into garbage keeps the last valid value.
func TestNginxConfigMapEndToEnd(t *testing.T) {
	e := startEnv(t, "--nginx-configmap", "ingress-nginx/ingress-nginx-controller", "--adopt-ingress-classes", "nginx")
	asNginx := func(ing string) string {
		return strings.Replace(ing, "ingressClassName: portico", "ingressClassName: nginx", 1)
	}
	e.republish(func() {
		e.write("ingress-nginx.yaml", nginxConfigMapManifest(map[string]string{"proxy-body-size": "1k", "hsts-max-age": "600", "ssl-redirect": "false",
			"use-forwarded-headers": "true"}))
	})
	writeNginxIngresses(e,
		// use-forwarded-headers does not make Portico trust a client's
		// X-Forwarded-For: without --trusted-proxies it cannot pass the list.
		asNginx(nginxIngress("allow", "allow.apps.example.test", "/", "Prefix", "", map[string]string{"whitelist-source-range": "192.0.2.0/24"})),
		asNginx(nginxIngress("global", "global.apps.example.test", "/", "Prefix", "global.apps.example.test", nil)),
		asNginx(nginxIngress("override", "override.apps.example.test", "/", "Prefix", "", map[string]string{"proxy-body-size": "4k"})),
		// Portico's own class: not written for ingress-nginx, no defaults.
		nginxIngress("own", "own.apps.example.test", "/", "Prefix", "", nil),
	)
	c := e.http1Client()
	post := func(url string, size int) int {
		t.Helper()
		resp, _ := do(t, c, "POST", url, nil, strings.Repeat("a", size))
		return resp.StatusCode
	}
	checks := func(step string, cases map[string]int) {
		t.Helper()
		for req, want := range cases {
			url, sizeText, _ := strings.Cut(req, " ")
			var size int
			fmt.Sscan(sizeText, &size)
			if got := post(url, size); got != want {
				t.Errorf("%s: POST %s with %d bytes: status %d, want %d", step, url, size, got, want)
			}
		}
	}
	checks("proxy-body-size 1k from the ConfigMap", map[string]int{
		"http://global.apps.example.test/ 1024":   200,
		"http://global.apps.example.test/ 1025":   413,
		"https://global.apps.example.test/ 1025":  413,
		"http://override.apps.example.test/ 4096": 200,
		"http://override.apps.example.test/ 4097": 413,
		"http://own.apps.example.test/ 8192":      200,
	})

	resp, _ := do(t, c, "GET", "http://allow.apps.example.test/", http.Header{"X-Forwarded-For": {"192.0.2.1"}, "X-Real-Ip": {"192.0.2.1"}}, "")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("X-Forwarded-For from an untrusted peer with use-forwarded-headers true: status %d, want 403", resp.StatusCode)
	}

	// HSTS on HTTPS responses of a host under spec.tls, never over plain
	// HTTP; the event loops add it themselves (on Linux), so the header
	// does not take the routes off them.
	before := http1.EventLoopCounts()
	for range 3 {
		resp, _ = do(t, c, "GET", "https://global.apps.example.test/", nil, "")
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=600; includeSubDomains" {
			t.Errorf("HTTPS: Strict-Transport-Security %q, want max-age=600; includeSubDomains", got)
		}
	}
	h2 := e.http2Client()
	for range 3 {
		resp, _ = do(t, h2, "GET", "https://global.apps.example.test/", nil, "")
		if got := resp.Header.Get("Strict-Transport-Security"); resp.Proto != "HTTP/2.0" || got != "max-age=600; includeSubDomains" {
			t.Errorf("%s: Strict-Transport-Security %q, want max-age=600; includeSubDomains", resp.Proto, got)
		}
	}
	if served := http1.EventLoopCounts().Served - before.Served; runtime.GOOS == "linux" && served < 6 {
		t.Errorf("the event loops served %d of 6 HTTPS requests (3 over HTTP/1.1, 3 over h2) of a route whose one filter is HSTS", served)
	}
	resp, _ = do(t, c, "GET", "http://global.apps.example.test/", nil, "")
	if got := resp.Header.Get("Strict-Transport-Security"); resp.StatusCode != 200 || got != "" {
		t.Errorf("plain HTTP (ssl-redirect false): status %d, Strict-Transport-Security %q, want 200 and none", resp.StatusCode, got)
	}
	resp, _ = do(t, c, "GET", "https://own.apps.example.test/", nil, "")
	if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
		t.Errorf("Portico's own class: Strict-Transport-Security %q, want none", got)
	}

	e.republish(func() {
		e.write("ingress-nginx.yaml", nginxConfigMapManifest(map[string]string{"proxy-body-size": "2k", "ssl-redirect": "false"}))
	})
	checks("proxy-body-size edited to 2k", map[string]int{
		"http://global.apps.example.test/ 2048":   200,
		"http://global.apps.example.test/ 2049":   413,
		"http://override.apps.example.test/ 4096": 200,
	})

	e.republish(func() {
		e.write("ingress-nginx.yaml", nginxConfigMapManifest(map[string]string{"proxy-body-size": "two kilobytes", "ssl-redirect": "false"}))
	})
	checks("proxy-body-size edited into garbage keeps 2k", map[string]int{
		"http://global.apps.example.test/ 2048": 200,
		"http://global.apps.example.test/ 2049": 413,
	})
	var reported bool
	for _, p := range e.proc.store.Load().Problems {
		if p.Object.Kind == "ConfigMap" && p.Reason == "InvalidNginxConfigMapKey" && strings.Contains(p.Message, `proxy-body-size: "two kilobytes"`) &&
			strings.Contains(p.Message, `its last valid value "2k" keeps applying`) {
			reported = true
		}
	}
	if !reported {
		t.Errorf("the broken key is not reported on the ConfigMap: %v", e.proc.store.Load().Problems)
	}
}
