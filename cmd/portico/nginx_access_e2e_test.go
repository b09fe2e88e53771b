package main

import (
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNginxProxyRedirect: proxy-redirect-from and -to rewrite the Location
// and Refresh of the backend's responses; another Ingress passes them
// unchanged.
func TestNginxProxyRedirect(t *testing.T) {
	e := startEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://internal.svc:8080/next?step=2")
		w.Header().Set("Refresh", "3; url=HTTP://Internal.svc:8080/later")
		w.WriteHeader(http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("nginx.yaml", nginxIngress("rewritten", "rewritten.apps.example.test", "/", "Prefix", "", map[string]string{
			"proxy-redirect-from": "http://internal.svc:8080/", "proxy-redirect-to": "https://rewritten.apps.example.test/app/"})+
			"---\n"+nginxIngress("plain", "plain.apps.example.test", "/", "Prefix", "", nil))
	})
	for _, c := range []struct{ host, location, refresh string }{
		{"rewritten", "https://rewritten.apps.example.test/app/next?step=2", "3; url=https://rewritten.apps.example.test/app/later"},
		{"plain", "http://internal.svc:8080/next?step=2", "3; url=HTTP://Internal.svc:8080/later"},
	} {
		for _, client := range []*http.Client{e.http1Client(), e.http2Client()} {
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, _ := do(t, client, "GET", "https://"+c.host+".apps.example.test/", nil, "")
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != c.location || resp.Header.Get("Refresh") != c.refresh {
				t.Errorf("%s over %s: %d Location %q Refresh %q, want 302 %q %q", c.host, resp.Proto, resp.StatusCode,
					resp.Header.Get("Location"), resp.Header.Get("Refresh"), c.location, c.refresh)
			}
		}
	}
}

// TestNginxSatisfyAny: with satisfy any, a client the allow list grants
// needs no password and one it does not gets the password challenge
// (and in with the password); without it, both are required.
func TestNginxSatisfyAny(t *testing.T) {
	e := startEnv(t)
	port := startEcho(t)
	auth := func(allow string, satisfy bool) map[string]string {
		a := map[string]string{"auth-type": "basic", "auth-secret": "users", "whitelist-source-range": allow}
		if satisfy {
			a["satisfy"] = "any"
		}
		return a
	}
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("users.yaml", basicAuthSecret("users", "alice:{PLAIN}wonderland"))
		e.write("nginx.yaml", strings.Join([]string{
			nginxIngress("near", "near.apps.example.test", "/", "Prefix", "", auth("127.0.0.0/8", true)),
			nginxIngress("far", "far.apps.example.test", "/", "Prefix", "", auth("10.0.0.0/8", true)),
			nginxIngress("both", "both.apps.example.test", "/", "Prefix", "", auth("10.0.0.0/8", false)),
		}, "---\n"))
	})
	c := e.http1Client()
	password := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))}}
	for _, tc := range []struct {
		host   string
		header http.Header
		want   int
	}{
		{"near", nil, 200},
		{"far", nil, 401},
		{"far", password, 200},
		{"both", password, 403},
		{"both", nil, 403},
	} {
		resp, body := do(t, c, "GET", "http://"+tc.host+".apps.example.test/", tc.header, "")
		if resp.StatusCode != tc.want {
			t.Errorf("%s with credentials %t: status %d (%q), want %d", tc.host, tc.header != nil, resp.StatusCode, body, tc.want)
		}
		if tc.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: 401 without a Basic challenge: %q", tc.host, resp.Header.Get("WWW-Authenticate"))
		}
	}
}
