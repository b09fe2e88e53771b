package routing

import (
	"fmt"
	"testing"
)

// ls describes one listener of a socket as the Gateway API translator
// emits it: its hostname and one rs per (route hostname intersecting the
// listener's, rule match), the older route first.
type ls struct {
	hostname string
	routes   []rs
}

func compileListenerSpecs(t *testing.T, listeners []ls) *Table {
	t.Helper()
	in := make([]ListenerRoutes, len(listeners))
	n := 0
	for i, l := range listeners {
		in[i].Hostname = l.hostname
		for _, s := range l.routes {
			in[i].Routes = append(in[i].Routes, s.route(n))
			n++
		}
	}
	table, shadowed := CompileListeners(in, nil)
	for i, sh := range shadowed {
		if len(sh) != 0 {
			t.Fatalf("listener %d: unexpected shadowed routes: %v", i, sh)
		}
	}
	return table
}

// TestConformanceHostnames replays the conformance cases about hostnames
// (v1.7.0): HTTPRouteHostnameIntersection,
// HTTPRouteMultipleRoutesAttachmentSameHostnameIntersection (feature
// GatewayRouteHostnameIntersectionPrecedence) and
// GatewayHTTPListenerIsolation, with the routes the translator compiles
// from the suites' manifests. Backends are named after the route that
// serves them.
func TestConformanceHostnames(t *testing.T) {
	// gateway-http-listener-isolation.yaml: routes attach to one listener
	// each (sectionName) and have no hostnames.
	isolation := []ls{
		{"", []rs{{kind: PathPrefix, path: "/empty-hostname", backend: "empty"}}},
		{"*.example.com", []rs{{kind: PathPrefix, path: "/wildcard-example-com", backend: "wildcard"}}},
		{"*.foo.example.com", []rs{{kind: PathPrefix, path: "/wildcard-foo-example-com", backend: "wildcard-foo"}}},
		{"abc.foo.example.com", []rs{{kind: PathPrefix, path: "/abc-foo-example-com", backend: "abc-foo"}}},
	}
	// gateway-http-listener-isolation-with-hostname-intersection.yaml:
	// each route lists bar.com, *.example.com, *.foo.example.com and
	// abc.foo.example.com; every one of them that intersects its
	// listener's hostname is compiled, even those that only a more
	// specific listener can be picked for.
	intersecting := func(hostnames []string, path, backend string) []rs {
		var out []rs
		for _, h := range hostnames {
			out = append(out, rs{host: h, kind: PathPrefix, path: path, backend: backend})
		}
		return out
	}
	isolationIntersection := []ls{
		{"", intersecting([]string{"bar.com", "*.example.com", "*.foo.example.com", "abc.foo.example.com"}, "/empty-hostname", "empty")},
		{"*.example.com", intersecting([]string{"*.example.com", "*.foo.example.com", "abc.foo.example.com"}, "/wildcard-example-com", "wildcard")},
		{"*.foo.example.com", intersecting([]string{"*.example.com", "*.foo.example.com", "abc.foo.example.com"}, "/wildcard-foo-example-com", "wildcard-foo")},
		{"abc.foo.example.com", intersecting([]string{"*.example.com", "*.foo.example.com", "abc.foo.example.com"}, "/abc-foo-example-com", "abc-foo")},
	}
	isolationCases := []req{
		{target: "bar.com/empty-hostname", want: "empty"},
		{target: "bar.com/wildcard-example-com", want: ""},
		{target: "bar.com/wildcard-foo-example-com", want: ""},
		{target: "bar.com/abc-foo-example-com", want: ""},
		{target: "bar.example.com/empty-hostname", want: ""},
		{target: "bar.example.com/wildcard-example-com", want: "wildcard"},
		{target: "bar.example.com/wildcard-foo-example-com", want: ""},
		{target: "bar.example.com/abc-foo-example-com", want: ""},
		{target: "bar.foo.example.com/empty-hostname", want: ""},
		{target: "bar.foo.example.com/wildcard-example-com", want: ""},
		{target: "bar.foo.example.com/wildcard-foo-example-com", want: "wildcard-foo"},
		{target: "bar.foo.example.com/abc-foo-example-com", want: ""},
		{target: "abc.foo.example.com/empty-hostname", want: ""},
		{target: "abc.foo.example.com/wildcard-example-com", want: ""},
		{target: "abc.foo.example.com/wildcard-foo-example-com", want: ""},
		{target: "abc.foo.example.com/abc-foo-example-com", want: "abc-foo"},
	}

	tests := []struct {
		name      string
		listeners []ls
		cases     []req
	}{
		{
			name: "HTTPRouteHostnameIntersection/intersecting",
			listeners: []ls{
				{"very.specific.com", []rs{
					{host: "very.specific.com", kind: PathPrefix, path: "/s1", backend: "s1"},
					{host: "*.specific.com", kind: PathPrefix, path: "/s3", backend: "s3"},
				}},
				{"*.wildcard.io", []rs{
					{host: "foo.wildcard.io", kind: PathPrefix, path: "/s2", backend: "s2"},
					{host: "bar.wildcard.io", kind: PathPrefix, path: "/s2", backend: "s2"},
					{host: "foo.bar.wildcard.io", kind: PathPrefix, path: "/s2", backend: "s2"},
				}},
				{"*.anotherwildcard.io", []rs{
					{host: "*.anotherwildcard.io", kind: PathPrefix, path: "/s4", backend: "s4"},
				}},
			},
			cases: []req{
				{target: "very.specific.com/s1", want: "s1"},
				{target: "very.specific.com:1234/s1", want: "s1"},
				{target: "non.matching.com/s1", want: ""},
				{target: "foo.nonmatchingwildcard.io/s1", want: ""},
				{target: "foo.wildcard.io/s1", want: ""},
				{target: "very.specific.com/non-matching-prefix", want: ""},
				{target: "foo.wildcard.io/s2", want: "s2"},
				{target: "bar.wildcard.io/s2", want: "s2"},
				{target: "foo.bar.wildcard.io/s2", want: "s2"},
				{target: "non.matching.com/s2", want: ""},
				{target: "wildcard.io/s2", want: ""},
				{target: "very.specific.com/s2", want: ""},
				{target: "foo.wildcard.io/non-matching-prefix", want: ""},
				{target: "very.specific.com/s3", want: "s3"},
				{target: "non.matching.com/s3", want: ""},
				{target: "foo.specific.com/s3", want: ""},
				{target: "foo.wildcard.io/s3", want: ""},
				{target: "very.specific.com/non-matching-prefix", want: ""},
				{target: "foo.anotherwildcard.io/s4", want: "s4"},
				{target: "bar.anotherwildcard.io/s4", want: "s4"},
				{target: "foo.bar.anotherwildcard.io/s4", want: "s4"},
				{target: "anotherwildcard.io/s4", want: ""},
				{target: "foo.wildcard.io/s4", want: ""},
				{target: "very.specific.com/s4", want: ""},
				{target: "foo.anotherwildcard.io/non-matching-prefix", want: ""},
				// no-intersecting-hosts is not attached at all.
				{target: "specific.but.wrong.com/s5", want: ""},
				{target: "wildcard.io/s5", want: ""},
			},
		},
		{
			name: "HTTPRouteHostnameIntersection/unspecified listener hostname",
			listeners: []ls{{"", []rs{
				{host: "first.com", backend: "all"},
				{host: "sub.first.com", backend: "all"},
				{host: "second.com", backend: "all"},
				{host: "sub.second.com", backend: "all"},
			}}},
			cases: []req{
				{target: "first.com/", want: "all"},
				{target: "sub.first.com/", want: "all"},
				{target: "second.com/", want: "all"},
				{target: "sub.second.com/", want: "all"},
				{target: "third.com/", want: ""},
				{target: "sub.third.com/", want: ""},
			},
		},
		{
			name: "SameHostnameIntersection/exact over wildcard",
			listeners: []ls{{"abc.example.com", []rs{
				{host: "*.example.com", backend: "older-wildcard"},
				{host: "abc.example.com", backend: "newer-exact"},
			}}},
			cases: []req{{target: "abc.example.com/", want: "newer-exact"}},
		},
		{
			name: "SameHostnameIntersection/exact over wildcard with a shorter prefix",
			listeners: []ls{{"abc.example.com", []rs{
				{host: "*.example.com", kind: PathPrefix, path: "/path/prefix", backend: "older-wildcard"},
				{host: "abc.example.com", kind: PathPrefix, path: "/path", backend: "newer-exact"},
			}}},
			cases: []req{{target: "abc.example.com/path/prefix/longer", want: "newer-exact"}},
		},
		{
			name: "SameHostnameIntersection/exact passes unmatched traffic to wildcard",
			listeners: []ls{{"abc.example.com", []rs{
				{host: "*.example.com", kind: PathPrefix, path: "/path/prefix", headers: []string{"Header-B=B"}, backend: "older-wildcard"},
				{host: "abc.example.com", kind: PathPrefix, path: "/path", headers: []string{"Header-A=A"}, backend: "newer-exact"},
			}}},
			cases: []req{
				{target: "abc.example.com/path/prefix/longer", headers: []string{"Header-A: A", "Header-B: B"}, want: "newer-exact"},
				{target: "abc.example.com/path/prefix/longer", headers: []string{"Header-B: B"}, want: "older-wildcard"},
				{target: "abc.example.com/path/prefix/longer", want: ""},
			},
		},
		{
			name: "SameHostnameIntersection/longer wildcard over shorter",
			listeners: []ls{{"*.example.com", []rs{
				{host: "*.com", backend: "older-wildcard"},
				{host: "*.example.com", backend: "newer-wildcard"},
			}}},
			cases: []req{{target: "abc.example.com/", want: "newer-wildcard"}},
		},
		{
			name: "SameHostnameIntersection/longer wildcard over shorter with a shorter prefix",
			listeners: []ls{{"*.example.com", []rs{
				{host: "*.com", kind: PathPrefix, path: "/path/prefix", backend: "older-wildcard"},
				{host: "*.example.com", kind: PathPrefix, path: "/path", backend: "newer-wildcard"},
			}}},
			cases: []req{{target: "abc.example.com/path/prefix/longer", want: "newer-wildcard"}},
		},
		{
			name: "SameHostnameIntersection/longer wildcard passes unmatched traffic to shorter",
			listeners: []ls{{"*.example.com", []rs{
				{host: "*.com", kind: PathPrefix, path: "/path/prefix", headers: []string{"Header-B=B"}, backend: "older-wildcard"},
				{host: "*.example.com", kind: PathPrefix, path: "/path", headers: []string{"Header-A=A"}, backend: "newer-wildcard"},
			}}},
			cases: []req{
				{target: "abc.example.com/path/prefix/longer", headers: []string{"Header-A: A", "Header-B: B"}, want: "newer-wildcard"},
				{target: "abc.example.com/path/prefix/longer", headers: []string{"Header-B: B"}, want: "older-wildcard"},
				{target: "x.abc.example.com/path/prefix/longer", headers: []string{"Header-B: B"}, want: "older-wildcard"},
			},
		},
		{name: "GatewayHTTPListenerIsolation/hostnames in listeners only", listeners: isolation, cases: isolationCases},
		{name: "GatewayHTTPListenerIsolation/intersecting hostnames", listeners: isolationIntersection, cases: isolationCases},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runCases(t, compileListenerSpecs(t, tc.listeners), tc.cases)
		})
	}
}

// TestListenerSelection: the most specific listener matching the host
// takes the request even when it has no route for it, or no routes at
// all; a host no listener matches is not served.
func TestListenerSelection(t *testing.T) {
	table := compileListenerSpecs(t, []ls{
		{"*.example.com", []rs{{kind: PathPrefix, path: "/api", backend: "wildcard"}}},
		{"quiet.example.com", nil},
		{"*.b.example.com", []rs{{host: "*.example.com", kind: PathPrefix, path: "/b", backend: "b"}}},
		{"Shop.Example.com.", []rs{{backend: "shop"}}},
		{"shop.example.com", []rs{{backend: "duplicate"}}}, // the first listener of a hostname serves it
	})
	runCases(t, table, []req{
		{target: "a.example.com/api", want: "wildcard"},
		{target: "a.b.c.example.com/api", want: "wildcard"},
		{target: "quiet.example.com/api", want: ""},
		{target: "x.b.example.com/b", want: "b"},
		{target: "x.y.b.example.com/b", want: "b"},
		{target: "x.b.example.com/api", want: ""},
		{target: "b.example.com/api", want: "wildcard"}, // a wildcard never covers its apex
		{target: "SHOP.example.com./any", want: "shop"},
		{target: "example.com/api", want: ""},
		{target: "other.org/api", want: ""},
	})
	if got := len(table.Listeners()); got != 5 {
		t.Errorf("%d listeners, want 5", got)
	}
	if got := len(table.Routes()); got != 4 {
		t.Errorf("%d routes, want 4", got)
	}

	// A request without Host matches only routes without hostname of the
	// listener without hostname.
	catchAll := compileListenerSpecs(t, []ls{
		{"", []rs{{host: "a.example.com", backend: "named"}, {kind: PathPrefix, path: "/x", backend: "any"}}},
		{"*.example.com", []rs{{backend: "wildcard"}}},
	})
	for _, tc := range []struct{ host, path, want string }{
		{"", "/x", "any"},
		{"", "/", ""},
		{"a.example.com", "/", "wildcard"},
		{"a.example.org", "/x", "any"},
	} {
		got := ""
		if r := catchAll.Match(tc.host, tc.path); r != nil {
			got = r.Source.Name
		}
		if got != tc.want {
			t.Errorf("Match(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
}

// TestListenersShadowing: identical routes shadow each other within a
// listener only.
func TestListenersShadowing(t *testing.T) {
	in := []ListenerRoutes{
		{Hostname: "a.example.com", Routes: []*Route{rs{backend: "first"}.route(0), rs{backend: "second"}.route(1)}},
		{Hostname: "b.example.com", Routes: []*Route{rs{backend: "other"}.route(2)}},
	}
	table, shadowed := CompileListeners(in, nil)
	if len(shadowed) != 2 || len(shadowed[0]) != 1 || shadowed[0][0].Source.Name != "second" || len(shadowed[1]) != 0 {
		t.Fatalf("shadowed = %v", shadowed)
	}
	var names []string
	for _, l := range table.Listeners() {
		for _, r := range l.Routes {
			names = append(names, l.Hostname+"="+r.Source.Name)
		}
	}
	if got := fmt.Sprint(names); got != "[a.example.com=first b.example.com=other]" {
		t.Errorf("listeners hold %s", got)
	}
}

// TestListenerPassthrough checks that a TLS socket's mode follows the
// listener the SNI picks, the most specific one, and that a host no
// listener serves is not marked Passthrough (it gets the terminating
// handshake, which fails without a certificate).
func TestListenerPassthrough(t *testing.T) {
	table, _ := CompileListeners([]ListenerRoutes{
		{Hostname: "tls.example.com"},
		{Hostname: "*.example.com", Passthrough: true},
		{Hostname: "abc.example.com", Passthrough: true},
	}, nil)
	for host, want := range map[string]bool{
		"tls.example.com": false,
		"TLS.Example.com": false,
		"abc.example.com": true,
		"x.y.example.com": true,
		"other.test":      false,
		"":                false,
	} {
		if got := table.Passthrough(host); got != want {
			t.Errorf("Passthrough(%q) = %t, want %t", host, got, want)
		}
	}
	plain, _ := Compile(nil, nil)
	if plain.Passthrough("abc.example.com") {
		t.Error("a table not built by CompileListeners marks a host Passthrough")
	}
}
