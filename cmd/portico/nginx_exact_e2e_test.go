package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/snapshot"
)

// These tests drive, through the whole gateway, the annotations of the
// table marked exact that the other end-to-end tests leave out, each
// against ingress-nginx's documented behaviour: its annotations guide, its
// nginx.tmpl (CORS) and its Lua balancer (the session cookie).

// TestNginxExactCORSMethodsAndCredentials: a preflight is answered with
// cors-allow-methods and, unless cors-allow-credentials is false,
// Access-Control-Allow-Credentials: true; unset, ingress-nginx's default
// methods and credentials true. The actual request carries the
// credentials header on the same terms, never the methods.
func TestNginxExactCORSMethodsAndCredentials(t *testing.T) {
	e := startEnv(t)
	writeNginxIngresses(e,
		nginxIngress("defaults", "cors-defaults.apps.example.test", "/", "Prefix", "",
			map[string]string{"enable-cors": "true", "cors-allow-origin": "https://ok.example"}),
		nginxIngress("set", "cors-set.apps.example.test", "/", "Prefix", "",
			map[string]string{"enable-cors": "true", "cors-allow-origin": "https://ok.example",
				"cors-allow-methods": "GET, POST", "cors-allow-credentials": "false"}),
		nginxIngress("credentials", "cors-credentials.apps.example.test", "/", "Prefix", "",
			map[string]string{"enable-cors": "true", "cors-allow-origin": "https://ok.example",
				"cors-allow-methods": "PUT", "cors-allow-credentials": "true"}),
	)
	c := e.http1Client()
	preflight := http.Header{"Origin": {"https://ok.example"}, "Access-Control-Request-Method": {"PUT"}}
	actual := http.Header{"Origin": {"https://ok.example"}}
	for _, tc := range []struct {
		name, host, methods, credentials string
	}{
		{"unset: ingress-nginx's defaults", "cors-defaults.apps.example.test", "GET, PUT, POST, DELETE, PATCH, OPTIONS", "true"},
		{"methods set, credentials false", "cors-set.apps.example.test", "GET, POST", ""},
		{"methods set, credentials true", "cors-credentials.apps.example.test", "PUT", "true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, c, "OPTIONS", "http://"+tc.host+"/api", preflight, "")
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("preflight: status %d (%q), want 204", resp.StatusCode, body)
			}
			if got := resp.Header.Values("Access-Control-Allow-Methods"); len(got) != 1 || got[0] != tc.methods {
				t.Errorf("preflight Access-Control-Allow-Methods %q, want %q", got, tc.methods)
			}
			if got := resp.Header.Values("Access-Control-Allow-Credentials"); tc.credentials == "" && len(got) != 0 ||
				tc.credentials != "" && (len(got) != 1 || got[0] != tc.credentials) {
				t.Errorf("preflight Access-Control-Allow-Credentials %q, want %q", got, tc.credentials)
			}
			resp, body = do(t, c, "GET", "http://"+tc.host+"/api", actual, "")
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, "uri=/api") {
				t.Fatalf("actual request: status %d (%q), want the backend's 200", resp.StatusCode, body)
			}
			if got := resp.Header.Values("Access-Control-Allow-Credentials"); tc.credentials == "" && len(got) != 0 ||
				tc.credentials != "" && (len(got) != 1 || got[0] != tc.credentials) {
				t.Errorf("actual request Access-Control-Allow-Credentials %q, want %q", got, tc.credentials)
			}
			if got := resp.Header.Get("Access-Control-Allow-Methods"); got != "" {
				t.Errorf("actual request Access-Control-Allow-Methods %q: nginx sends it on preflights only", got)
			}
		})
	}
}

// TestNginxExactLimitWhitelist: limit-whitelist is ingress-nginx's older
// name of limit-allowlist: the addresses it lists are not limited by
// limit-rps, exactly as with limit-allowlist, and it is read only when
// limit-allowlist is absent or empty (ingress-nginx's annotation alias).
func TestNginxExactLimitWhitelist(t *testing.T) {
	e := startEnv(t, "--trusted-proxies", "127.0.0.1/32")
	limited := func(name string, extra map[string]string) string {
		a := map[string]string{"limit-rps": "1", "limit-burst-multiplier": "1"}
		for k, v := range extra {
			a[k] = v
		}
		return nginxIngress(name, name+".apps.example.test", "/", "Prefix", "", a)
	}
	writeNginxIngresses(e,
		limited("whitelist", map[string]string{"limit-whitelist": "203.0.113.0/24, 192.0.2.9"}),
		limited("allowlist", map[string]string{"limit-allowlist": "203.0.113.0/24, 192.0.2.9"}),
		limited("both", map[string]string{"limit-allowlist": "198.51.100.0/24", "limit-whitelist": "203.0.113.0/24"}),
		limited("empty-allowlist", map[string]string{"limit-allowlist": "", "limit-whitelist": "203.0.113.0/24"}),
	)
	c := e.http1Client()
	// refused sends ten requests back to back from a client: at limit-rps
	// 1 with a burst of 1, some must be refused however slow the machine,
	// unless the client is exempt.
	refused := func(t *testing.T, host, client string) int {
		t.Helper()
		n := 0
		for range 10 {
			resp, body := do(t, c, "GET", "http://"+host+"/", http.Header{"X-Forwarded-For": {client}}, "")
			switch resp.StatusCode {
			case http.StatusOK:
			case http.StatusServiceUnavailable:
				n++
			default:
				t.Fatalf("%s from %s: status %d (%q)", host, client, resp.StatusCode, body)
			}
		}
		return n
	}
	for _, tc := range []struct {
		host, client string
		exempt       bool
	}{
		{"whitelist.apps.example.test", "203.0.113.7", true},
		{"whitelist.apps.example.test", "192.0.2.9", true},
		{"whitelist.apps.example.test", "198.51.100.7", false},
		{"allowlist.apps.example.test", "203.0.113.7", true},
		{"allowlist.apps.example.test", "192.0.2.9", true},
		{"allowlist.apps.example.test", "198.51.100.7", false},
		{"both.apps.example.test", "198.51.100.7", true},
		{"both.apps.example.test", "203.0.113.7", false},
		{"empty-allowlist.apps.example.test", "203.0.113.7", true},
		{"empty-allowlist.apps.example.test", "198.51.100.7", false},
	} {
		n := refused(t, tc.host, tc.client)
		if tc.exempt && n != 0 {
			t.Errorf("%s from %s, an exempt address: %d of 10 refused, want none", tc.host, tc.client, n)
		}
		if !tc.exempt && n == 0 {
			t.Errorf("%s from %s, not exempt: none of 10 refused at limit-rps 1", tc.host, tc.client)
		}
	}
}

// TestNginxExactWhitelistSourceRangeAlias: whitelist-source-range is the
// older name of allowlist-source-range, read only when the latter is
// absent or empty, so an address only it lists is refused beside an
// allowlist-source-range that leaves it out.
func TestNginxExactWhitelistSourceRangeAlias(t *testing.T) {
	e := startEnv(t)
	writeNginxIngresses(e,
		nginxIngress("both", "both.apps.example.test", "/", "Prefix", "",
			map[string]string{"allowlist-source-range": "192.0.2.0/24", "whitelist-source-range": "127.0.0.1"}),
		nginxIngress("alias", "alias.apps.example.test", "/", "Prefix", "",
			map[string]string{"allowlist-source-range": "", "whitelist-source-range": "127.0.0.1"}),
	)
	c := e.http1Client()
	for host, want := range map[string]int{"both.apps.example.test": 403, "alias.apps.example.test": 200} {
		if resp, body := do(t, c, "GET", "http://"+host+"/", nil, ""); resp.StatusCode != want {
			t.Errorf("%s from 127.0.0.1: status %d (%q), want %d", host, resp.StatusCode, body, want)
		}
	}
}

// TestNginxExactAuthSecretType: auth-secret-type auth-file (the default)
// reads htpasswd lines from the Secret's key auth; auth-map reads a Secret
// whose keys are the users and whose values are their hashes. An
// auth-file Secret without the key auth denies the Ingress with 503.
func TestNginxExactAuthSecretType(t *testing.T) {
	e := startEnv(t)
	port := startEchoHeaders(t, "Authorization")
	const (
		// openssl passwd -apr1 -salt OFG3Xybp bar
		fooHash = "$apr1$OFG3Xybp$ckL0FHDAkoXYIlH9.cysT0"
		// printf bar | openssl dgst -sha1 -binary | base64
		shaHash = "{SHA}Ys23Ag/5IOWqZCw9QGaVDdHwH00="
	)
	authMap := fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: users-map, namespace: default}\ntype: Opaque\nstringData:\n  foo: %q\n  sha: %q\n", fooHash, shaHash)
	basic := func(name, secret, typ string) string {
		return nginxIngress(name, name+".apps.example.test", "/", "Prefix", "", map[string]string{
			"auth-type": "basic", "auth-secret": secret, "auth-secret-type": typ})
	}
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("users.yaml", basicAuthSecret("users-file", "foo:"+fooHash)+"---\n"+authMap)
		e.write("nginx.yaml", strings.Join([]string{
			basic("file", "users-file", "auth-file"),
			basic("map", "users-map", "auth-map"),
			basic("file-of-map", "users-map", "auth-file"),
		}, "---\n"))
	})
	c := e.http1Client()
	for _, tc := range []struct {
		host, user, password string
		status               int
	}{
		{"file", "foo", "bar", 200},
		{"file", "foo", "baz", 401},
		{"file", "", "", 401},
		{"map", "foo", "bar", 200},
		{"map", "sha", "bar", 200},
		{"map", "foo", "baz", 401},
		{"map", "nobody", "bar", 401},
		{"map", "", "", 401},
		{"file-of-map", "foo", "bar", 503},
	} {
		h := http.Header{}
		if tc.user != "" {
			r, _ := http.NewRequest("GET", "http://x/", nil)
			r.SetBasicAuth(tc.user, tc.password)
			h.Set("Authorization", r.Header.Get("Authorization"))
		}
		resp, body := do(t, c, "GET", "http://"+tc.host+".apps.example.test/private", h, "")
		if resp.StatusCode != tc.status {
			t.Errorf("%s as %q:%q: status %d (%q), want %d", tc.host, tc.user, tc.password, resp.StatusCode, body, tc.status)
			continue
		}
		switch tc.status {
		case http.StatusOK:
			// Served, with the credentials cleared as ingress-nginx does.
			if want := "Authorization="; body != want {
				t.Errorf("%s as %q: backend got %q, want %q", tc.host, tc.user, body, want)
			}
		case http.StatusUnauthorized:
			if got := resp.Header.Get("Www-Authenticate"); !strings.HasPrefix(got, "Basic realm=") {
				t.Errorf("%s as %q: WWW-Authenticate %q, want a Basic challenge", tc.host, tc.user, got)
			}
		}
	}
}

// cookieAttributes splits a Set-Cookie line into its attributes, names
// lower-cased; a flag has the value "".
func cookieAttributes(line string) map[string]string {
	attrs := map[string]string{}
	parts := strings.Split(line, ";")
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		attrs[strings.ToLower(k)] = v
	}
	return attrs
}

// TestNginxExactSessionCookieAttributes: the session cookie carries
// session-cookie-path (else the Ingress path that matched),
// session-cookie-domain, and for session-cookie-expires an Expires that
// many seconds from now (and no Max-Age unless session-cookie-max-age);
// with session-cookie-conditional-samesite-none, SameSite=None is left
// out for the user agents ingress-nginx names as rejecting it.
func TestNginxExactSessionCookieAttributes(t *testing.T) {
	e := startEnv(t)
	one, two := startCookieEcho(t, "one"), startCookieEcho(t, "two")
	sticky := func(name, path string, annotations map[string]string) string {
		a := map[string]string{"affinity": "cookie"}
		for k, v := range annotations {
			a[k] = v
		}
		return strings.Replace(nginxIngress(name, name+".apps.example.test", path, "Prefix", "", a), "name: echo,", "name: sticky,", 1)
	}
	e.republish(func() {
		e.write("sticky.yaml", manifestStickyService(one, two))
		e.write("nginx.yaml", strings.Join([]string{
			sticky("attrs", "/", map[string]string{"session-cookie-path": "/shop", "session-cookie-domain": ".example.test", "session-cookie-expires": "3600"}),
			sticky("both-ages", "/", map[string]string{"session-cookie-expires": "120", "session-cookie-max-age": "60"}),
			sticky("plain", "/cart", nil),
			sticky("conditional", "/", map[string]string{"session-cookie-samesite": "None", "session-cookie-conditional-samesite-none": "true"}),
			sticky("unconditional", "/", map[string]string{"session-cookie-samesite": "None"}),
			sticky("lax", "/", map[string]string{"session-cookie-samesite": "Lax", "session-cookie-conditional-samesite-none": "true"}),
		}, "---\n"))
	})
	c := e.http1Client()
	issue := func(t *testing.T, url string, h http.Header) (string, map[string]string) {
		t.Helper()
		resp, body := do(t, c, "GET", url, h, "")
		_, line, ok := sessionCookie(resp, "INGRESSCOOKIE")
		if resp.StatusCode != 200 || !ok {
			t.Fatalf("GET %s: status %d (%q), Set-Cookie %q: want 200 with a session cookie", url, resp.StatusCode, body, resp.Header.Values("Set-Cookie"))
		}
		return line, cookieAttributes(line)
	}

	t.Run("path, domain and expires", func(t *testing.T) {
		before := time.Now().Truncate(time.Second)
		line, attrs := issue(t, "http://attrs.apps.example.test/shop/cart", nil)
		after := time.Now()
		if got := attrs["path"]; got != "/shop" {
			t.Errorf("%q: Path %q, want session-cookie-path /shop", line, got)
		}
		if got := attrs["domain"]; got != ".example.test" {
			t.Errorf("%q: Domain %q, want session-cookie-domain .example.test", line, got)
		}
		if _, ok := attrs["max-age"]; ok {
			t.Errorf("%q: a Max-Age without session-cookie-max-age", line)
		}
		expires, ok := parseCookieTime(attrs["expires"])
		if !ok {
			t.Fatalf("%q: Expires %q is not a cookie date", line, attrs["expires"])
		}
		if lo, hi := before.Add(time.Hour), after.Add(time.Hour); expires.Before(lo) || expires.After(hi) {
			t.Errorf("%q: Expires %v, want session-cookie-expires 3600 s after the request (%v to %v)", line, expires, lo, hi)
		}
	})
	t.Run("expires beside max-age", func(t *testing.T) {
		before := time.Now().Truncate(time.Second)
		line, attrs := issue(t, "http://both-ages.apps.example.test/", nil)
		after := time.Now()
		if got := attrs["max-age"]; got != "60" {
			t.Errorf("%q: Max-Age %q, want 60", line, got)
		}
		expires, ok := parseCookieTime(attrs["expires"])
		if lo, hi := before.Add(2*time.Minute), after.Add(2*time.Minute); !ok || expires.Before(lo) || expires.After(hi) {
			t.Errorf("%q: Expires %q, want 120 s after the request", line, attrs["expires"])
		}
	})
	t.Run("defaults", func(t *testing.T) {
		line, attrs := issue(t, "http://plain.apps.example.test/cart/item", nil)
		if got := attrs["path"]; got != "/cart" {
			t.Errorf("%q: Path %q, want the Ingress path /cart", line, got)
		}
		for _, a := range []string{"domain", "expires", "max-age", "samesite", "secure"} {
			if _, ok := attrs[a]; ok {
				t.Errorf("%q: %s set without its annotation", line, a)
			}
		}
		if _, ok := attrs["httponly"]; !ok {
			t.Errorf("%q: not HttpOnly", line)
		}
	})

	// The user agents of ingress-nginx's same_site_none_compatible, and
	// some it lets have SameSite=None.
	incompatible := map[string]string{
		"Chrome 51":          "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 Safari/537.36",
		"Chrome 66":          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/66.0.3359.139 Safari/537.36",
		"iOS 12":             "Mozilla/5.0 (iPhone; CPU iPhone OS 12_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.0 Mobile/15E148 Safari/604.1",
		"iPadOS 12":          "Mozilla/5.0 (iPad; CPU OS 12_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"macOS 10.14 Safari": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Safari/605.1.15",
	}
	compatible := map[string]string{
		"Chrome 120":         "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"macOS 10.14 Chrome": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/74.0.3729.169 Safari/537.36",
		"iOS 13":             "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0.5 Mobile/15E148 Safari/604.1",
		"Firefox":            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"no User-Agent":      "",
	}
	sameSite := func(t *testing.T, host, ua string) (string, bool) {
		t.Helper()
		_, attrs := issue(t, "http://"+host+"/", http.Header{"User-Agent": {ua}})
		v, ok := attrs["samesite"]
		return v, ok
	}
	t.Run("conditional SameSite=None", func(t *testing.T) {
		for name, ua := range incompatible {
			if v, ok := sameSite(t, "conditional.apps.example.test", ua); ok {
				t.Errorf("%s: SameSite=%s, want none for a user agent that rejects SameSite=None", name, v)
			}
			if v, _ := sameSite(t, "unconditional.apps.example.test", ua); v != "None" {
				t.Errorf("%s without the conditional option: SameSite %q, want None", name, v)
			}
			if v, _ := sameSite(t, "lax.apps.example.test", ua); v != "Lax" {
				t.Errorf("%s with SameSite Lax: SameSite %q, want Lax (only None is dropped)", name, v)
			}
		}
		for name, ua := range compatible {
			if v, _ := sameSite(t, "conditional.apps.example.test", ua); v != "None" {
				t.Errorf("%s: SameSite %q, want None", name, v)
			}
		}
	})
}

// parseCookieTime reads a cookie's Expires as Portico (RFC 1123) or nginx
// (ngx.cookie_time: "Thu, 18-Nov-10 11:27:35 GMT") writes it.
func parseCookieTime(v string) (time.Time, bool) {
	for _, layout := range []string{http.TimeFormat, "Mon, 02-Jan-06 15:04:05 GMT", "Mon, 02-Jan-2006 15:04:05 GMT"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// TestNginxExactAnnotationsHaveEndToEndTests holds the table to its
// promise: an annotation marked exact is served as ingress-nginx serves
// it, which only traffic through the whole gateway shows, so some
// end-to-end test of this folder must name it.
func TestNginxExactAnnotationsHaveEndToEndTests(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), "_e2e_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(".", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, string(b))
	}
	if len(sources) == 0 {
		t.Fatal("no *_e2e_test.go file found")
	}
	var missing []string
	for _, row := range snapshot.NginxAnnotations() {
		if row.Verdict != snapshot.NginxExact {
			continue
		}
		found := false
		for _, src := range sources {
			if mentionsAnnotation(src, row.Name) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, row.Name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("annotations marked %s that no *_e2e_test.go mentions (as %q or with %s): %s",
			snapshot.NginxExact, "name", snapshot.NginxPrefix, strings.Join(missing, ", "))
	}
}

// mentionsAnnotation reports whether src names the annotation as a quoted
// string or with its full prefix, not as the start of a longer name
// (limit-rps is not limit-rpsx).
func mentionsAnnotation(src, name string) bool {
	if strings.Contains(src, `"`+name+`"`) {
		return true
	}
	full := snapshot.NginxPrefix + name
	for rest := src; ; {
		i := strings.Index(rest, full)
		if i < 0 {
			return false
		}
		rest = rest[i+len(full):]
		if rest == "" || !isAnnotationNameByte(rest[0]) {
			return true
		}
	}
}

func isAnnotationNameByte(c byte) bool {
	return c == '-' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}
