package upstream

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func endpoints(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250+1)
	}
	return out
}

func points(eps []string) []uint64 {
	out := make([]uint64, len(eps))
	for i, ep := range eps {
		out[i] = endpointPoint(ep)
	}
	return out
}

// TestRendezvousDistribution: keys spread evenly over the endpoints.
func TestRendezvousDistribution(t *testing.T) {
	const n, keys = 10, 100000
	p := points(endpoints(n))
	counts := make([]int, n)
	for k := 0; k < keys; k++ {
		counts[rendezvous(p, mix64(uint64(k)))]++
	}
	for i, c := range counts {
		// 10000 expected per endpoint; 5 standard deviations is ~475.
		if c < 9000 || c > 11000 {
			t.Errorf("endpoint %d got %d of %d keys, want about %d", i, c, keys, keys/n)
		}
	}
}

// TestRendezvousRemap: adding an endpoint moves about 1/(n+1) of the keys,
// all of them to the new endpoint; removing one moves only its own keys.
func TestRendezvousRemap(t *testing.T) {
	const n, keys = 10, 100000
	eps := endpoints(n + 1)
	before, after := points(eps[:n]), points(eps)
	moved := 0
	for k := 0; k < keys; k++ {
		key := mix64(uint64(k) + 1<<40)
		a, b := rendezvous(before, key), rendezvous(after, key)
		if a != b {
			moved++
			if b != n {
				t.Fatalf("key %d moved from endpoint %d to %d, not to the new one", k, a, b)
			}
		}
	}
	if want := keys / (n + 1); moved < want*8/10 || moved > want*12/10 {
		t.Errorf("adding one endpoint to %d moved %d of %d keys, want about %d", n, moved, keys, want)
	}

	// Remove endpoint 3 (a middle one, which shifts every later index).
	removed := append(append([]string{}, eps[:3]...), eps[4:n]...)
	rp := points(removed)
	for k := 0; k < keys; k++ {
		key := mix64(uint64(k) + 1<<41)
		a := rendezvous(before, key)
		b := rendezvous(rp, key)
		if a != 3 && removed[b] != eps[a] {
			t.Fatalf("key %d on %s moved to %s though its endpoint stayed", k, eps[a], removed[b])
		}
	}
}

func TestHashKeyParse(t *testing.T) {
	for _, expr := range []string{"$request_uri", "$remote_addr", "$http_x_user", "$cookie_session", "$host$uri", "${arg_id}-x", "static", "$binary_remote_addr"} {
		if _, err := ParseHashKey(expr); err != nil {
			t.Errorf("%q: %v", expr, err)
		}
	}
	for expr, want := range map[string]string{
		"$upstream_addr": "$upstream_addr",
		"$":              "names no variable",
		"${uri":          "closing",
		"  ":             "empty",
		"$http_":         "$http_",
	} {
		if _, err := ParseHashKey(expr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one saying %q", expr, err, want)
		}
	}
}

func TestHashKeySum(t *testing.T) {
	sum := func(expr string, r *http.Request) uint64 {
		k, err := ParseHashKey(expr)
		if err != nil {
			t.Fatal(err)
		}
		return k.Sum(r)
	}
	r1 := httptest.NewRequest("GET", "http://Example.test:8080/a?id=7&x=1", nil)
	r1.Header.Set("X-User", "alice")
	r1.Header.Set("Cookie", "a=1; sess=xyz")
	r1.RemoteAddr = "192.0.2.1:5555"
	r2 := httptest.NewRequest("GET", "http://example.test/a?ID=7", nil)
	r2.Header.Set("X-User", "alice")
	r2.Header.Set("Cookie", "sess=xyz")
	r2.RemoteAddr = "192.0.2.1:6666"
	for _, expr := range []string{"$host", "$http_x_user", "$cookie_sess", "$arg_id", "$remote_addr", "$uri", "$host$uri"} {
		if sum(expr, r1) != sum(expr, r2) {
			t.Errorf("%s differs between requests that share it", expr)
		}
	}
	if sum("$request_uri", r1) == sum("$request_uri", r2) {
		t.Error("$request_uri is the same for different URIs")
	}
	if a, b := sum("$host", r1), sum("$uri", r1); a == b {
		t.Error("different parts hash alike")
	}
}

func TestCookieValue(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; INGRESSCOOKIE=abc ;b=2", "INGRESSCOOKIE=later"}}
	if v, ok := CookieValue(h, "INGRESSCOOKIE"); !ok || v != "abc" {
		t.Errorf("got %q %v", v, ok)
	}
	if _, ok := CookieValue(h, "INGRESS"); ok {
		t.Error("found a cookie by a prefix of its name")
	}
	if v, _ := CookieValue(http.Header{"Cookie": {`s="q"`}}, "s"); v != "q" {
		t.Errorf("quoted value: %q", v)
	}
}

func TestStickyCookie(t *testing.T) {
	base := &Backend{Name: "ns/svc:80", Endpoints: endpoints(4)}
	for _, mode := range []string{AffinityBalanced, AffinityPersistent} {
		t.Run(mode, func(t *testing.T) {
			b := base.WithAffinity(Affinity{Cookie: &SessionCookie{Name: "S", Path: "/app", Mode: mode, SameSite: "None", ConditionalSameSiteNone: true, MaxAge: time.Hour, Key: []byte("k")}})
			r := httptest.NewRequest("GET", "http://x.test/app", nil)
			pinned, set := b.Sticky(r)
			if set == "" {
				t.Fatal("no cookie issued to a new session")
			}
			for _, ep := range base.Endpoints {
				if strings.Contains(set, ep) || strings.Contains(set, strings.Split(ep, ":")[0]) {
					t.Fatalf("cookie %q reveals an endpoint", set)
				}
			}
			if want := "; Path=/app; Max-Age=3600; HttpOnly; SameSite=None"; !strings.HasSuffix(set, want) {
				t.Errorf("Set-Cookie %q, want it to end %q", set, want)
			}
			ep := pinned.Endpoints[pinned.next()]
			value := strings.TrimPrefix(strings.Split(set, ";")[0], "S=")
			for i := 0; i < 20; i++ {
				r := httptest.NewRequest("GET", "http://x.test/app", nil)
				r.Header.Set("Cookie", "S="+value)
				p, set := b.Sticky(r)
				if set != "" || p.Endpoints[p.next()] != ep {
					t.Fatalf("request %d with the cookie went to %s (set %q), want %s", i, p.Endpoints[p.next()], set, ep)
				}
			}
			// The endpoint leaves the Service.
			var rest []string
			for _, e := range base.Endpoints {
				if e != ep {
					rest = append(rest, e)
				}
			}
			b2 := (&Backend{Name: base.Name, Endpoints: rest}).WithAffinity(*b.Affinity())
			r = httptest.NewRequest("GET", "http://x.test/app", nil)
			r.Header.Set("Cookie", "S="+value)
			r.TLS = &tls.ConnectionState{}
			r.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 12_0 like Mac OS X)")
			p, set := b2.Sticky(r)
			if got := p.Endpoints[p.next()]; got == ep {
				t.Fatalf("request went to the removed endpoint")
			}
			if mode == AffinityPersistent {
				if set == "" || strings.Contains(set, value) {
					t.Errorf("cookie not re-issued: %q", set)
				}
				if !strings.HasSuffix(set, "; HttpOnly; Secure") {
					t.Errorf("over TLS to iOS 12: %q, want Secure and no SameSite=None", set)
				}
			} else if set != "" {
				t.Errorf("balanced mode re-issued a key that still hashes onto the endpoints: %q", set)
			}
		})
	}
}

func TestStickyWithoutAffinity(t *testing.T) {
	b := &Backend{Name: "a", Endpoints: endpoints(2)}
	r := httptest.NewRequest("GET", "/", nil)
	if got, set := b.Sticky(r); got != b || set != "" {
		t.Errorf("a backend without affinity became %p %q", got, set)
	}
	if n := testing.AllocsPerRun(100, func() { b.Sticky(r) }); n != 0 {
		t.Errorf("%v allocations per request without affinity", n)
	}
	k, _ := ParseHashKey("$request_uri")
	hb := b.WithAffinity(Affinity{HashBy: k})
	if n := testing.AllocsPerRun(100, func() { hb.Sticky(r) }); n != 0 {
		t.Errorf("%v allocations per request with upstream-hash-by", n)
	}
}

// BenchmarkSticky is the per-request cost of picking the endpoint of a
// route with affinity, over 10 endpoints: a returning session's cookie
// (balanced, persistent) or upstream-hash-by's key; none allocates.
func BenchmarkSticky(b *testing.B) {
	base := &Backend{Name: "ns/svc:80", Endpoints: endpoints(10)}
	key, _ := ParseHashKey("$request_uri")
	for _, tc := range []struct {
		name string
		aff  Affinity
	}{
		{"none", Affinity{}},
		{"balanced", Affinity{Cookie: &SessionCookie{Name: "INGRESSCOOKIE", Mode: AffinityBalanced}}},
		{"persistent", Affinity{Cookie: &SessionCookie{Name: "INGRESSCOOKIE", Mode: AffinityPersistent, Key: []byte("k")}}},
		{"hash-by", Affinity{HashBy: key}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			be := base
			if tc.aff.Cookie != nil || tc.aff.HashBy != nil {
				be = base.WithAffinity(tc.aff)
			}
			r := httptest.NewRequest("GET", "http://x.test/some/path?q=1", nil)
			if tc.aff.Cookie != nil {
				_, set := be.Sticky(r)
				r.Header.Set("Cookie", "other=1; "+strings.Split(set, ";")[0])
			}
			b.ReportAllocs()
			for b.Loop() {
				be.Sticky(r)
			}
		})
	}
}
