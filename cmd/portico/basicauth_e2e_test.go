package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// basicAuthSecret is an Opaque Secret whose key auth holds htpasswd lines.
func basicAuthSecret(name string, lines ...string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: default}\ntype: Opaque\nstringData:\n  auth: |\n", name)
	for _, l := range lines {
		fmt.Fprintf(&sb, "    %s\n", l)
	}
	return sb.String()
}

// TestNginxBasicAuth drives ingress-nginx's basic authentication through
// the whole gateway: 401 with the realm's challenge without credentials or
// with wrong ones, the request (its Authorization header cleared, as
// ingress-nginx clears it) forwarded with right ones of each hash scheme, 503 where the authentication cannot
// be checked, and a Secret changed at run time taking effect.
func TestNginxBasicAuth(t *testing.T) {
	e := startEnv(t)
	port := startEchoHeaders(t, "Authorization")
	users := []string{
		// openssl passwd -apr1 -salt OFG3Xybp bar (ingress-nginx's example)
		"foo:$apr1$OFG3Xybp$ckL0FHDAkoXYIlH9.cysT0",
		// openssl passwd -1 -salt saltstri bar
		"md5:$1$saltstri$dbKRuJi/JUZVBOzuSmDvS0",
		// PHP's password_hash example, htpasswd -B's $2y$
		"rasmus:$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a",
		"sha:{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00=",
		"ssha:{SSHA}9FRpe3qBfTnPTO6h5VCSQf8UuVsBAgME",
		// crypt(3) DES, which Portico does not verify: refused.
		"old:abJnggxhB/yWI",
	}
	ingresses := func() string {
		return strings.Join([]string{
			nginxIngress("basic", "basic.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-type": "basic", "auth-secret": "users", "auth-realm": "Staff only"}),
			nginxIngress("later", "later.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-type": "basic", "auth-secret": "later"}),
			nginxIngress("digest", "digest.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-type": "digest", "auth-secret": "users"}),
		}, "---\n")
	}
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("users.yaml", basicAuthSecret("users", users...))
		e.write("nginx.yaml", ingresses())
	})
	c := e.http1Client()
	get := func(t *testing.T, host, user, password string) (*http.Response, string) {
		t.Helper()
		h := http.Header{}
		if user != "" {
			r, _ := http.NewRequest("GET", "http://x/", nil)
			r.SetBasicAuth(user, password)
			h.Set("Authorization", r.Header.Get("Authorization"))
		}
		return do(t, c, "GET", "http://"+host+"/private", h, "")
	}
	wantStatus := func(t *testing.T, host, user, password string, status int) {
		t.Helper()
		resp, body := get(t, host, user, password)
		if resp.StatusCode != status {
			t.Fatalf("%s as %q:%q: status %d (%q), want %d", host, user, password, resp.StatusCode, body, status)
		}
		switch status {
		case http.StatusOK:
			// The backend does not see the client's credentials:
			// ingress-nginx clears Authorization.
			if want := "Authorization="; body != want {
				t.Errorf("backend got %q, want %q", body, want)
			}
		case http.StatusUnauthorized:
			if strings.Contains(body, "Authorization=") {
				t.Errorf("a refused request reached the backend: %q", body)
			}
		}
	}

	t.Run("no credentials", func(t *testing.T) {
		resp, body := get(t, "basic.apps.example.test", "", "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d (%q), want 401", resp.StatusCode, body)
		}
		if got := resp.Header.Get("Www-Authenticate"); got != `Basic realm="Staff only"` {
			t.Errorf("WWW-Authenticate %q", got)
		}
	})
	t.Run("each hash scheme", func(t *testing.T) {
		for _, u := range []string{"foo", "md5", "sha", "ssha"} {
			wantStatus(t, "basic.apps.example.test", u, "bar", http.StatusOK)
		}
		// Twice: the second is answered from the bcrypt cache.
		for range 2 {
			wantStatus(t, "basic.apps.example.test", "rasmus", "rasmuslerdorf", http.StatusOK)
		}
	})
	t.Run("wrong credentials", func(t *testing.T) {
		for _, u := range [][2]string{{"foo", "baz"}, {"rasmus", "rasmuslerdorF"}, {"sha", ""}, {"nobody", "bar"}, {"old", "bar"}, {"", "bar"}} {
			wantStatus(t, "basic.apps.example.test", u[0], u[1], http.StatusUnauthorized)
		}
		// Not Basic at all.
		resp, body := do(t, c, "GET", "http://basic.apps.example.test/", http.Header{"Authorization": {"Bearer bar"}}, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a Bearer token: status %d (%q), want 401", resp.StatusCode, body)
		}
	})
	t.Run("over HTTP/2", func(t *testing.T) {
		h2 := e.http2Client()
		resp, body := do(t, h2, "GET", "https://basic.apps.example.test/", nil, "")
		if resp.StatusCode != http.StatusUnauthorized || resp.Proto != "HTTP/2.0" {
			t.Fatalf("%s without credentials: status %d (%q), want 401", resp.Proto, resp.StatusCode, body)
		}
		r, _ := http.NewRequest("GET", "http://x/", nil)
		r.SetBasicAuth("sha", "bar")
		resp, body = do(t, h2, "GET", "https://basic.apps.example.test/", r.Header, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("with credentials: status %d (%q), want 200", resp.StatusCode, body)
		}
	})
	t.Run("unavailable authentication is never open", func(t *testing.T) {
		wantStatus(t, "later.apps.example.test", "foo", "bar", http.StatusServiceUnavailable)
		wantStatus(t, "digest.apps.example.test", "foo", "bar", http.StatusServiceUnavailable)
	})
	t.Run("the Secret changed at run time", func(t *testing.T) {
		e.republish(func() {
			// foo's password becomes "new" (printf new | openssl dgst
			// -sha1 -binary | base64); the missing Secret appears.
			e.write("users.yaml", basicAuthSecret("users", append([]string{"foo:{SHA}wqawPxkN+ytKqR+K+NR3qbw0Adw="}, users[1:]...)...))
			e.write("later.yaml", basicAuthSecret("later", "late:{PLAIN}comer"))
		})
		wantStatus(t, "basic.apps.example.test", "foo", "bar", http.StatusUnauthorized)
		wantStatus(t, "basic.apps.example.test", "foo", "new", http.StatusOK)
		wantStatus(t, "later.apps.example.test", "late", "comer", http.StatusOK)
		wantStatus(t, "later.apps.example.test", "foo", "bar", http.StatusUnauthorized)
		// A line that is not user:hash: the Ingress is answered 503.
		e.republish(func() { e.write("later.yaml", basicAuthSecret("later", "late:{PLAIN}comer", "just-a-name")) })
		wantStatus(t, "later.apps.example.test", "late", "comer", http.StatusServiceUnavailable)
	})
}
