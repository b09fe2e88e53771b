package hostname

import (
	"slices"
	"testing"
)

// TestMatchesByMode pins each wildcard rule, one row per case, and where
// the two specs part.
//
// Ingress v1 (k8s.io/api networking/v1, IngressRule.host): "host can be
// "precise" [...] or "wildcard", which is a domain name prefixed with a
// single wildcard label (e.g. "*.foo.com"). The wildcard character '*'
// must appear by itself as the first DNS label and matches only a single
// label. [...] If host is a wildcard, then the request matches this rule if
// the http host header is to equal to the suffix (removing the first
// label) of the wildcard rule."
//
// Gateway API v1 (sigs.k8s.io/gateway-api apis/v1, Listener.hostname and
// HTTPRouteSpec.hostnames): "Hostnames that are prefixed with a wildcard
// label (`*.`) are interpreted as a suffix match. That means that a match
// for `*.example.com` would match both `test.example.com`, and
// `foo.test.example.com`, but not `example.com`." And on listeners: "The
// wildcard character will match any number of characters _and dots_ to
// the left, however, so `"*.example.com"` will match both
// `"foo.bar.example.com"` _and_ `"bar.example.com"`."
func TestMatchesByMode(t *testing.T) {
	for _, tc := range []struct {
		pattern, host      string
		oneLabel, anyLabel bool
		why                string
	}{
		{"*.example.com", "a.example.com", true, true, "one label: both specs"},
		// Where the specs differ.
		{"*.example.com", "a.b.example.com", false, true, "Ingress: only a single label; Gateway API: foo.test.example.com matches"},
		{"*.example.com", "x.y.z.example.com", false, true, "Gateway API: any number of labels"},
		// Both specs: the wildcard never matches the bare suffix.
		{"*.example.com", "example.com", false, false, "Ingress: removing the first label; Gateway API: but not example.com"},
		{"*.example.com", "aexample.com", false, false, "a label boundary, not a string suffix"},
		{"*.example.com", "a.example.org", false, false, "another suffix"},
		{"*.example.com", ".example.com", false, false, "an empty first label is no label"},
		{"*.b.example.com", "a.b.example.com", true, true, "a deeper wildcard"},
		{"*.b.example.com", "b.example.com", false, false, "a deeper wildcard, bare"},
		// Exact names and any host.
		{"a.example.com", "a.example.com", true, true, "precise: equal to host"},
		{"a.example.com", "b.a.example.com", false, false, "precise: no suffix match"},
		{"", "a.b.example.com", true, true, "no host: every host"},
	} {
		p := NewPattern(tc.pattern)
		if got := p.Matches(tc.host, OneLabel); got != tc.oneLabel {
			t.Errorf("%q.Matches(%q, OneLabel) = %v, want %v (%s)", tc.pattern, tc.host, got, tc.oneLabel, tc.why)
		}
		if got := p.Matches(tc.host, AnyLabels); got != tc.anyLabel {
			t.Errorf("%q.Matches(%q, AnyLabels) = %v, want %v (%s)", tc.pattern, tc.host, got, tc.anyLabel, tc.why)
		}
	}
}

// TestKeys pins the wildcard keys a table looks a host up under: the
// longest (most specific) first, and only the first under OneLabel.
//
// Gateway API v1, Listener: "if there are multiple wildcard entries, more
// specific wildcard entries must be processed before less specific
// wildcard entries. For example, `"*.foo.example.com"` takes precedence
// over `"*.example.com"`."
func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		host           string
		oneLabel, many []string
	}{
		{"a.b.example.com", []string{"b.example.com"}, []string{"b.example.com", "example.com", "com"}},
		{"a.example.com", []string{"example.com"}, []string{"example.com", "com"}},
		{"localhost", nil, nil},
		{"", nil, nil},
		// A leading dot is no label: OneLabel has no key at all, AnyLabels
		// skips it.
		{".example.com", nil, []string{"com"}},
	} {
		for _, m := range []struct {
			mode Mode
			want []string
		}{{OneLabel, tc.oneLabel}, {AnyLabels, tc.many}} {
			var got []string
			for i := FirstKey(tc.host, m.mode); i >= 0; i = NextKey(tc.host, i, m.mode) {
				got = append(got, tc.host[i:])
			}
			var gotBytes []string
			h := []byte(tc.host)
			for i := FirstKey(h, m.mode); i >= 0; i = NextKey(h, i, m.mode) {
				gotBytes = append(gotBytes, string(h[i:]))
			}
			if !slices.Equal(got, m.want) || !slices.Equal(gotBytes, m.want) {
				t.Errorf("keys of %q under %v = %q (bytes %q), want %q", tc.host, m.mode, got, gotBytes, m.want)
			}
		}
	}
}

// TestCoversAndIntersect pins the Gateway API listener/route hostname
// rules.
//
// Gateway API v1, HTTPRouteSpec.hostnames: "A Listener with
// `test.example.com` as the hostname matches HTTPRoutes that have either
// not specified any hostnames, or have specified at least one of
// `test.example.com` or `*.example.com`. A Listener with `*.example.com` as
// the hostname matches HTTPRoutes that have either not specified any
// hostnames or have specified at least one hostname that matches the
// Listener hostname. For example, `*.example.com`, `test.example.com`, and
// `foo.test.example.com` would all match. On the other hand, `example.com`
// and `test.example.net` would not match."
func TestCoversAndIntersect(t *testing.T) {
	for _, tc := range []struct {
		listener, route string
		effective       string
		ok              bool
	}{
		{"test.example.com", "test.example.com", "test.example.com", true},
		{"test.example.com", "*.example.com", "test.example.com", true},
		{"test.example.com", "example.com", "", false},
		{"*.example.com", "*.example.com", "*.example.com", true},
		{"*.example.com", "test.example.com", "test.example.com", true},
		{"*.example.com", "foo.test.example.com", "foo.test.example.com", true},
		{"*.example.com", "example.com", "", false},
		{"*.example.com", "test.example.net", "", false},
		// A more specific wildcard on either side narrows to itself.
		{"*.example.com", "*.test.example.com", "*.test.example.com", true},
		{"*.test.example.com", "*.example.com", "*.test.example.com", true},
		{"foo.test.example.com", "*.example.com", "foo.test.example.com", true},
		// No listener hostname: the route's.
		{"", "*.example.com", "*.example.com", true},
		{"", "a.example.com", "a.example.com", true},
	} {
		eff, ok := Intersect(NewPattern(tc.listener), NewPattern(tc.route))
		if ok != tc.ok || eff.String() != tc.effective {
			t.Errorf("Intersect(%q, %q) = %q, %v; want %q, %v", tc.listener, tc.route, eff, ok, tc.effective, tc.ok)
		}
	}

	for _, tc := range []struct {
		p, q               string
		oneLabel, anyLabel bool
	}{
		{"", "*.example.com", true, true},
		{"*.example.com", "*.example.com", true, true},
		{"*.example.com", "a.example.com", true, true},
		// Where the rules differ: "*.a.example.com" stands for hosts two
		// labels deeper than example.com.
		{"*.example.com", "*.a.example.com", false, true},
		{"*.example.com", "a.b.example.com", false, true},
		{"*.a.example.com", "*.example.com", false, false},
		{"a.example.com", "*.example.com", false, false},
		{"a.example.com", "", false, false},
	} {
		p, q := NewPattern(tc.p), NewPattern(tc.q)
		if got := p.Covers(q, OneLabel); got != tc.oneLabel {
			t.Errorf("%q.Covers(%q, OneLabel) = %v, want %v", tc.p, tc.q, got, tc.oneLabel)
		}
		if got := p.Covers(q, AnyLabels); got != tc.anyLabel {
			t.Errorf("%q.Covers(%q, AnyLabels) = %v, want %v", tc.p, tc.q, got, tc.anyLabel)
		}
	}
}

// TestSpecificity pins the Gateway API listener precedence: "Exact matches
// MUST be processed before wildcard matches, and wildcard matches MUST be
// processed before fallback (empty Hostname value) matches. For example,
// `"foo.example.com"` takes precedence over `"*.example.com"`, and
// `"*.example.com"` takes precedence over `""`."
func TestSpecificity(t *testing.T) {
	order := []string{"foo.example.com", "*.foo.example.com", "*.example.com", ""}
	for i := 1; i < len(order); i++ {
		hi, lo := NewPattern(order[i-1]).Specificity(), NewPattern(order[i]).Specificity()
		if hi <= lo {
			t.Errorf("%q ranks %d, not above %q at %d", order[i-1], hi, order[i], lo)
		}
	}
}

func TestPattern(t *testing.T) {
	for _, tc := range []struct {
		name           string
		any, wild      bool
		key            string
		normalizedFrom string
	}{
		{"", true, false, "", ""},
		{"a.example.com", false, false, "a.example.com", "A.Example.COM."},
		{"*.example.com", false, true, "example.com", "*.EXAMPLE.com."},
	} {
		p := NewPattern(tc.name)
		if p.IsAny() != tc.any || p.IsWildcard() != tc.wild || p.Key() != tc.key || p.String() != tc.name {
			t.Errorf("NewPattern(%q) = any %v wildcard %v key %q", tc.name, p.IsAny(), p.IsWildcard(), p.Key())
		}
		if got := Normalize(tc.normalizedFrom); got != tc.name {
			t.Errorf("Normalize(%q) = %q, want %q", tc.normalizedFrom, got, tc.name)
		}
	}
	if got := Lower("A.Example.com."); got != "a.example.com." {
		t.Errorf("Lower kept %q; a spec hostname keeps its trailing dot", got)
	}
}

// TestAppendHost pins the normal form of a Host header: HTTPRoute
// spec.hostnames, "Implementations MUST ignore any port value specified in
// the HTTP Host header while performing a match".
func TestAppendHost(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Shop.Example.COM", "shop.example.com"},
		{"shop.example.com.", "shop.example.com"},
		{"shop.example.com:8443", "shop.example.com"},
		{"shop.example.com.:8443", "shop.example.com"},
		{"[::1]:8443", "[::1]"},
		{"[::1]", "[::1]"},
		{"", ""},
	} {
		var buf [64]byte
		if got := string(AppendHost(buf[:0], tc.in)); got != tc.want {
			t.Errorf("AppendHost(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	var small [4]byte
	if got := AppendHost(small[:0], "example.com"); len(got) != 0 {
		t.Errorf("AppendHost into a short buffer = %q, want empty", got)
	}
	// A server name has no port: a colon stays.
	var buf [64]byte
	if got := string(AppendName(buf[:0], "A.example.com.")); got != "a.example.com" {
		t.Errorf("AppendName = %q", got)
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	wild := map[string]int{"example.com": 1}
	allocs := testing.AllocsPerRun(100, func() {
		var buf [256]byte
		h := AppendHost(buf[:0], "A.B.Example.com:443")
		for i := FirstKey(h, AnyLabels); i >= 0; i = NextKey(h, i, AnyLabels) {
			if wild[string(h[i:])] == 1 {
				return
			}
		}
		t.Fatal("no key matched")
	})
	if allocs != 0 {
		t.Errorf("%v allocations per lookup, want 0", allocs)
	}
}
