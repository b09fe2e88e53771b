package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Session affinity through the whole gateway: ingress-nginx's affinity:
// cookie (balanced and persistent modes) and upstream-hash-by, over a
// Service with two endpoints, one of which is then removed.

// startCookieEcho is a backend that answers with its name and sets a
// cookie of its own, which must reach the client beside the session
// cookie.
func startCookieEcho(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "app="+name)
		fmt.Fprint(w, name)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return port
}

// manifestStickyService is the Service "sticky" with one endpoint per
// port, all on 127.0.0.1.
func manifestStickyService(ports ...string) string {
	var sb strings.Builder
	sb.WriteString("apiVersion: v1\nkind: Service\nmetadata: {name: sticky, namespace: default}\nspec:\n  ports: [{name: http, port: 80}]\n---\n")
	sb.WriteString("apiVersion: v1\nkind: Endpoints\nmetadata: {name: sticky, namespace: default}\nsubsets:\n")
	for _, p := range ports {
		fmt.Fprintf(&sb, "- addresses: [{ip: 127.0.0.1}]\n  ports: [{name: http, port: %s}]\n", p)
	}
	return sb.String()
}

// sessionCookie returns the value of the Set-Cookie named name, the
// whole header line, and whether there was one.
func sessionCookie(resp *http.Response, name string) (value, line string, ok bool) {
	for _, l := range resp.Header.Values("Set-Cookie") {
		if v, found := strings.CutPrefix(l, name+"="); found {
			value, _, _ = strings.Cut(v, ";")
			return value, l, true
		}
	}
	return "", "", false
}

func TestNginxAffinity(t *testing.T) {
	e := startEnv(t)
	names := map[string]string{}
	var ports []string
	for _, name := range []string{"one", "two"} {
		p := startCookieEcho(t, name)
		ports = append(ports, p)
		names[name] = p
	}
	ingress := func(name, host string, annotations map[string]string) string {
		return strings.Replace(nginxIngress(name, host, "/", "Prefix", "", annotations), "name: echo,", "name: sticky,", 1)
	}
	ingresses := strings.Join([]string{
		ingress("balanced", "balanced.apps.example.test", map[string]string{"affinity": "cookie", "session-cookie-max-age": "60"}),
		ingress("persistent", "persistent.apps.example.test", map[string]string{"affinity": "cookie", "affinity-mode": "persistent", "session-cookie-name": "route", "session-cookie-samesite": "Lax"}),
		ingress("hashed", "hashed.apps.example.test", map[string]string{"upstream-hash-by": "$request_uri"}),
	}, "---\n")
	e.republish(func() {
		e.write("sticky.yaml", manifestStickyService(ports...))
		e.write("nginx.yaml", ingresses)
	})
	c := e.http1Client()

	type session struct{ cookie, backend string }
	start := func(t *testing.T, url, cookieName string) session {
		t.Helper()
		resp, body := do(t, c, "GET", url, nil, "")
		v, line, ok := sessionCookie(resp, cookieName)
		if resp.StatusCode != 200 || !ok {
			t.Fatalf("first request: status %d, Set-Cookie %q: want 200 with a %s cookie", resp.StatusCode, resp.Header.Values("Set-Cookie"), cookieName)
		}
		if _, _, ok := sessionCookie(resp, "app"); !ok {
			t.Errorf("the backend's own Set-Cookie was lost: %q", resp.Header.Values("Set-Cookie"))
		}
		if strings.Contains(line, "127.0.0.1") || strings.Contains(line, ports[0]) || strings.Contains(line, ports[1]) {
			t.Errorf("the cookie reveals the endpoint: %q", line)
		}
		return session{v, body}
	}
	follow := func(t *testing.T, url, cookie string) (backend string, reissued string) {
		t.Helper()
		resp, body := do(t, c, "GET", url, http.Header{"Cookie": {cookie}}, "")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		name, _, _ := strings.Cut(cookie, "=")
		v, _, _ := sessionCookie(resp, name)
		return body, v
	}

	var balanced, persistent session
	t.Run("balanced", func(t *testing.T) {
		url := "http://balanced.apps.example.test/cart"
		resp, _ := do(t, c, "GET", url, nil, "")
		_, line, _ := sessionCookie(resp, "INGRESSCOOKIE")
		if want := "; Path=/; Max-Age=60; HttpOnly"; !strings.HasSuffix(line, want) {
			t.Errorf("Set-Cookie %q, want it to end %q", line, want)
		}
		// New sessions spread over both endpoints (all 40 on one: 2^-39).
		seen := map[string]bool{}
		for i := 0; i < 40; i++ {
			seen[start(t, url, "INGRESSCOOKIE").backend] = true
		}
		if !seen["one"] || !seen["two"] {
			t.Errorf("40 new sessions reached only %v", seen)
		}
		balanced = start(t, url, "INGRESSCOOKIE")
		for i := 0; i < 20; i++ {
			if got, set := follow(t, url, "INGRESSCOOKIE="+balanced.cookie); got != balanced.backend || set != "" {
				t.Fatalf("request %d with the cookie reached %s (Set-Cookie %q), want %s and no new cookie", i, got, set, balanced.backend)
			}
		}
	})
	t.Run("persistent", func(t *testing.T) {
		url := "http://persistent.apps.example.test/"
		persistent = start(t, url, "route")
		for i := 0; i < 20; i++ {
			if got, set := follow(t, url, "route="+persistent.cookie); got != persistent.backend || set != "" {
				t.Fatalf("request %d with the cookie reached %s (Set-Cookie %q), want %s", i, got, set, persistent.backend)
			}
		}
		// A cookie Portico did not issue starts a new session.
		if _, set := follow(t, url, "route=0123456789abcdef"); set == "" {
			t.Error("an unknown cookie value was not replaced")
		}
	})
	t.Run("hash by request URI", func(t *testing.T) {
		seen := map[string]bool{}
		for u := 0; u < 20; u++ {
			url := fmt.Sprintf("http://hashed.apps.example.test/item/%d?v=1", u)
			_, first := do(t, c, "GET", url, nil, "")
			seen[first] = true
			for i := 0; i < 5; i++ {
				if _, got := do(t, c, "GET", url, nil, ""); got != first {
					t.Fatalf("%s reached %s, then %s", url, first, got)
				}
			}
		}
		if !seen["one"] || !seen["two"] {
			t.Errorf("20 URIs all hashed to %v", seen)
		}
	})
	if t.Failed() {
		return
	}

	// The endpoint of the persistent session leaves the Service; the
	// balanced session is moved with it when it lived there too.
	gone := persistent.backend
	stay := "one"
	if gone == "one" {
		stay = "two"
	}
	e.republish(func() { e.write("sticky.yaml", manifestStickyService(names[stay])) })

	t.Run("persistent endpoint removed", func(t *testing.T) {
		url := "http://persistent.apps.example.test/"
		got, set := follow(t, url, "route="+persistent.cookie)
		if got != stay || set == "" || set == persistent.cookie {
			t.Fatalf("after %s left: reached %s with Set-Cookie %q, want %s and a new cookie", gone, got, set, stay)
		}
		for i := 0; i < 5; i++ {
			if got, again := follow(t, url, "route="+set); got != stay || again != "" {
				t.Fatalf("with the re-issued cookie: reached %s (Set-Cookie %q), want %s", got, again, stay)
			}
		}
	})
	t.Run("balanced endpoint removed", func(t *testing.T) {
		// The key still hashes onto the endpoints that are left, so the
		// cookie stays as it is, as in ingress-nginx's balanced mode.
		got, set := follow(t, "http://balanced.apps.example.test/cart", "INGRESSCOOKIE="+balanced.cookie)
		if got != stay || set != "" {
			t.Fatalf("reached %s (Set-Cookie %q), want %s and the same cookie", got, set, stay)
		}
	})
	t.Run("over HTTPS", func(t *testing.T) {
		resp, _ := do(t, c, "GET", "https://persistent.apps.example.test/", nil, "")
		if _, line, _ := sessionCookie(resp, "route"); !strings.HasSuffix(line, "; HttpOnly; Secure; SameSite=Lax") {
			t.Errorf("Set-Cookie %q: want HttpOnly, Secure (issued over TLS) and SameSite=Lax", line)
		}
	})
}
