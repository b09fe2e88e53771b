package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// auth-request-redirect sets the X-Auth-Request-Redirect an auth-url
// service is sent (oauth2-proxy reads it to know where to send the user
// back), with $scheme, $host and $request_uri expanded; without it the
// service gets the request's target, as nginx's $request_uri.
func TestNginxAuthRequestRedirect(t *testing.T) {
	e := startEnv(t)
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Auth-Request-User", r.Header.Get("X-Auth-Request-Redirect"))
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(auth.Close)
	port := startEchoHeaders(t, "X-Auth-Request-User")
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("nginx.yaml", strings.Join([]string{
			nginxIngress("plain", "plain.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-url": auth.URL + "/check", "auth-response-headers": "X-Auth-Request-User"}),
			nginxIngress("redirect", "redirect.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-url": auth.URL + "/check", "auth-response-headers": "X-Auth-Request-User",
				"auth-request-redirect": "$scheme://$host/back?to=$escaped_request_uri"}),
		}, "---\n"))
	})
	c := e.http1Client()
	for _, tc := range []struct{ url, want string }{
		{"http://plain.apps.example.test/cart?id=7", "X-Auth-Request-User=/cart?id=7"},
		{"http://redirect.apps.example.test/cart?id=7", "X-Auth-Request-User=http://redirect.apps.example.test/back?to=%2Fcart%3Fid%3D7"},
	} {
		resp, body := do(t, c, "GET", tc.url, nil, "")
		if resp.StatusCode != http.StatusOK || body != tc.want {
			t.Errorf("%s: %d %q, want 200 %q", tc.url, resp.StatusCode, body, tc.want)
		}
	}
}

// The auth-url service's Set-Cookie reaches the client on a response
// nginx adds headers to (2xx, redirects), and with auth-always-set-cookie
// on its 401 as well.
func TestNginxAuthSetCookie(t *testing.T) {
	e := startEnv(t)
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "_session", Value: "refreshed"})
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(auth.Close)
	port := startCookieEcho(t, "app")
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("nginx.yaml", strings.Join([]string{
			nginxIngress("once", "once.apps.example.test", "/", "Prefix", "", map[string]string{"auth-url": auth.URL + "/check"}),
			nginxIngress("always", "always.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-url": auth.URL + "/check", "auth-always-set-cookie": "true"}),
		}, "---\n"))
	})
	c := e.http1Client()
	for _, tc := range []struct {
		url, token string
		status     int
		want       []string
	}{
		{"http://once.apps.example.test/", "x", 200, []string{"app=", "_session=refreshed"}},
		{"http://once.apps.example.test/", "", 401, nil},
		{"http://always.apps.example.test/", "", 401, []string{"_session=refreshed"}},
	} {
		h := http.Header{}
		if tc.token != "" {
			h.Set("Authorization", tc.token)
		}
		resp, _ := do(t, c, "GET", tc.url, h, "")
		var got []string
		for _, v := range resp.Header.Values("Set-Cookie") {
			name, _, _ := strings.Cut(v, ";")
			if strings.HasPrefix(name, "app=") {
				name = "app="
			}
			got = append(got, name)
		}
		if resp.StatusCode != tc.status || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s (token %q): %d %q, want %d %q", tc.url, tc.token, resp.StatusCode, got, tc.status, tc.want)
		}
	}
}
