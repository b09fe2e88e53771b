package routing

import (
	"fmt"
	"testing"
)

type pathSpec struct {
	kind PathKind
	path string
}

func compileVhost(t testing.TB, host string, paths ...pathSpec) *Table {
	t.Helper()
	var routes []*Route
	for i, p := range paths {
		routes = append(routes, &Route{
			Source:   Source{Kind: "Ingress", Namespace: "default", Name: "test", Rule: fmt.Sprintf("0/%d", i)},
			Host:     host,
			PathKind: p.kind,
			Path:     p.path,
		})
	}
	table, shadowed := Compile(routes, nil)
	if len(shadowed) != 0 {
		t.Fatalf("unexpected shadowed routes: %v", shadowed)
	}
	return table
}

// TestIngressPathExamples is the table of examples in the Kubernetes Ingress
// documentation ("Examples" under "Path types"), row by row.
func TestIngressPathExamples(t *testing.T) {
	prefix := func(p string) pathSpec { return pathSpec{PathPrefix, p} }
	exact := func(p string) pathSpec { return pathSpec{PathExact, p} }
	tests := []struct {
		name    string
		paths   []pathSpec
		request string
		// want is the index into paths of the route that must match, or -1
		// for no match (the request goes to the default backend).
		want int
	}{
		{"Prefix / matches all paths", []pathSpec{prefix("/")}, "/anything/at/all", 0},
		{"Exact /foo matches /foo", []pathSpec{exact("/foo")}, "/foo", 0},
		{"Exact /foo does not match /bar", []pathSpec{exact("/foo")}, "/bar", -1},
		{"Exact /foo does not match /foo/", []pathSpec{exact("/foo")}, "/foo/", -1},
		{"Exact /foo/ does not match /foo", []pathSpec{exact("/foo/")}, "/foo", -1},
		{"Prefix /foo matches /foo", []pathSpec{prefix("/foo")}, "/foo", 0},
		{"Prefix /foo matches /foo/", []pathSpec{prefix("/foo")}, "/foo/", 0},
		{"Prefix /foo/ matches /foo", []pathSpec{prefix("/foo/")}, "/foo", 0},
		{"Prefix /foo/ matches /foo/", []pathSpec{prefix("/foo/")}, "/foo/", 0},
		{"Prefix /aaa/bb does not match /aaa/bbb", []pathSpec{prefix("/aaa/bb")}, "/aaa/bbb", -1},
		{"Prefix /aaa/bbb matches /aaa/bbb", []pathSpec{prefix("/aaa/bbb")}, "/aaa/bbb", 0},
		{"Prefix /aaa/bbb/ matches /aaa/bbb ignoring trailing slash", []pathSpec{prefix("/aaa/bbb/")}, "/aaa/bbb", 0},
		{"Prefix /aaa/bbb matches /aaa/bbb/ matching trailing slash", []pathSpec{prefix("/aaa/bbb")}, "/aaa/bbb/", 0},
		{"Prefix /aaa/bbb matches subpath /aaa/bbb/ccc", []pathSpec{prefix("/aaa/bbb")}, "/aaa/bbb/ccc", 0},
		{"Prefix /aaa/bbb does not match string prefix /aaa/bbbxyz", []pathSpec{prefix("/aaa/bbb")}, "/aaa/bbbxyz", -1},
		{"Prefix /, /aaa: /aaa/ccc matches /aaa", []pathSpec{prefix("/"), prefix("/aaa")}, "/aaa/ccc", 1},
		{"Prefix /, /aaa, /aaa/bbb: /aaa/bbb matches /aaa/bbb", []pathSpec{prefix("/"), prefix("/aaa"), prefix("/aaa/bbb")}, "/aaa/bbb", 2},
		{"Prefix /, /aaa, /aaa/bbb: /ccc matches /", []pathSpec{prefix("/"), prefix("/aaa"), prefix("/aaa/bbb")}, "/ccc", 0},
		{"Prefix /aaa: /ccc uses the default backend", []pathSpec{prefix("/aaa")}, "/ccc", -1},
		{"Mixed /foo Prefix and /foo Exact: /foo prefers Exact", []pathSpec{prefix("/foo"), exact("/foo")}, "/foo", 1},
		// Beyond the documented table: longest match across kinds.
		{"longer Prefix beats shorter Exact-less match", []pathSpec{exact("/foo"), prefix("/foo/bar")}, "/foo/bar/baz", 1},
		{"Exact wins at full length over a shorter Prefix", []pathSpec{prefix("/foo"), exact("/foo/bar")}, "/foo/bar", 1},
		{"Prefix does not match at a longer Exact miss", []pathSpec{prefix("/foo"), exact("/foo/bar")}, "/foo/bar/", 0},
		{"root request matches Prefix /", []pathSpec{prefix("/")}, "/", 0},
		{"root request does not match Prefix /a", []pathSpec{prefix("/a")}, "/", -1},
		{"paths are case-sensitive", []pathSpec{prefix("/Foo")}, "/foo", -1},
		{"double slash falls back to root", []pathSpec{prefix("/"), prefix("/a")}, "//a", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			table := compileVhost(t, "example.com", tc.paths...)
			got := table.Match("example.com", tc.request)
			if tc.want < 0 {
				if got != nil {
					t.Fatalf("Match(%q) = %s %q, want no match", tc.request, got.PathKind, got.Path)
				}
				return
			}
			want := tc.paths[tc.want]
			if got == nil || got.PathKind != want.kind || got.Path != want.path {
				t.Fatalf("Match(%q) = %v, want %s %q", tc.request, describe(got), want.kind, want.path)
			}
		})
	}
}

func describe(r *Route) string {
	if r == nil {
		return "no match"
	}
	return fmt.Sprintf("%s %s %q", r.Host, r.PathKind, r.Path)
}

func TestHostMatching(t *testing.T) {
	route := func(host, path string) *Route {
		return &Route{Host: host, PathKind: PathPrefix, Path: path, Source: Source{Name: host + path}}
	}
	routes := []*Route{
		route("foo.bar.com", "/"),
		route("*.bar.com", "/"),
		route("*.bar.com", "/wild-only"),
		route("api.bar.com", "/v1"),
		route("", "/any"),
		route("[::1]", "/"),
	}
	table, _ := Compile(routes, nil)
	tests := []struct {
		host, path string
		want       string // Source.Name, or "" for no match
	}{
		{"foo.bar.com", "/x", "foo.bar.com/"},
		{"FOO.Bar.COM", "/x", "foo.bar.com/"},
		{"foo.bar.com:8443", "/x", "foo.bar.com/"},
		{"foo.bar.com.", "/x", "foo.bar.com/"},
		{"baz.bar.com", "/x", "*.bar.com/"},
		{"baz.bar.com", "/wild-only/1", "*.bar.com/wild-only"},
		{"bar.com", "/x", ""},                                // a wildcard never matches the apex
		{"a.b.bar.com", "/x", ""},                            // nor more than one label
		{"foo.bar.com", "/wild-only", "foo.bar.com/"},        // the exact host's "/" wins before the wildcard is tried
		{"api.bar.com", "/v1/users", "api.bar.com/v1"},       // exact host
		{"api.bar.com", "/other", "*.bar.com/"},              // falls through to the wildcard host
		{"api.bar.com", "/any/thing", "*.bar.com/"},          // the wildcard's "/" beats the host-less route
		{"unknown.example", "/any/thing", "/any"},            // host-less routes serve any host
		{"unknown.example", "/other", ""},                    // nothing matches
		{"", "/any", "/any"},                                 // no Host header at all
		{"[::1]:8443", "/", "[::1]/"},                        // IPv6 literal with port
		{string(make([]byte, 300)) + ".com", "/any", "/any"}, // over-long host only matches host-less routes
	}
	for _, tc := range tests {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			got := table.Match(tc.host, tc.path)
			name := ""
			if got != nil {
				name = got.Source.Name
			}
			if name != tc.want {
				t.Fatalf("Match(%q, %q) = %q, want %q", tc.host, tc.path, name, tc.want)
			}
		})
	}
}

func TestCatchAllIsLastWithinItsHost(t *testing.T) {
	routes := []*Route{
		{Host: "a.com", PathKind: PathAny, Source: Source{Name: "default"}},
		{Host: "a.com", PathKind: PathPrefix, Path: "/api", Source: Source{Name: "api"}},
		{Host: "", PathKind: PathPrefix, Path: "/", Source: Source{Name: "anyhost"}},
	}
	table, _ := Compile(routes, nil)
	for path, want := range map[string]string{"/api/x": "api", "/web": "default", "/": "default"} {
		if got := table.Match("a.com", path); got == nil || got.Source.Name != want {
			t.Errorf("Match(a.com, %q) = %v, want %s", path, describe(got), want)
		}
	}
	if got := table.Match("b.com", "/web"); got == nil || got.Source.Name != "anyhost" {
		t.Errorf("Match(b.com, /web) = %v, want anyhost", describe(got))
	}
}

func TestCompileReportsShadowedDuplicates(t *testing.T) {
	first := &Route{Host: "a.com", PathKind: PathPrefix, Path: "/x", Source: Source{Name: "first"}}
	sameButSlash := &Route{Host: "a.com", PathKind: PathPrefix, Path: "/x/", Source: Source{Name: "second"}}
	exactSame := &Route{Host: "a.com", PathKind: PathExact, Path: "/x", Source: Source{Name: "exact"}}
	exactDup := &Route{Host: "a.com", PathKind: PathExact, Path: "/x", Source: Source{Name: "exact-dup"}}
	table, shadowed := Compile([]*Route{first, sameButSlash, exactSame, exactDup}, nil)
	if len(shadowed) != 2 || shadowed[0] != sameButSlash || shadowed[1] != exactDup {
		t.Fatalf("shadowed = %v, want [second exact-dup]", shadowed)
	}
	if n := len(table.Routes()); n != 2 {
		t.Fatalf("table has %d routes, want 2", n)
	}
	if got := table.Match("a.com", "/x/y"); got != first {
		t.Fatalf("Match = %v, want the first route", describe(got))
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	table := benchTable(100, 10)
	hosts := []string{"host-42.example.com", "HOST-42.EXAMPLE.COM:443", "x.wild-7.example.com", "nope.example.org"}
	for _, h := range hosts {
		allocs := testing.AllocsPerRun(100, func() { table.Match(h, "/svc-3/items/17") })
		if allocs != 0 {
			t.Errorf("Match(%q) allocated %.0f times per call", h, allocs)
		}
	}
}

// benchTable builds hosts exact hosts and hosts/10 wildcard hosts with paths
// prefix paths each, like a cluster of many small Ingresses.
func benchTable(hosts, paths int) *Table {
	var routes []*Route
	for h := 0; h < hosts; h++ {
		for p := 0; p < paths; p++ {
			routes = append(routes, &Route{Host: fmt.Sprintf("host-%d.example.com", h), PathKind: PathPrefix, Path: fmt.Sprintf("/svc-%d", p)})
		}
	}
	for h := 0; h < hosts/10+1; h++ {
		routes = append(routes, &Route{Host: fmt.Sprintf("*.wild-%d.example.com", h), PathKind: PathPrefix, Path: "/"})
	}
	t, _ := Compile(routes, nil)
	return t
}

// BenchmarkMatch measures one lookup at 10, 1,000 and 10,000 hosts with 10
// paths each: an exact host with a nested path, a wildcard host, and a miss.
func BenchmarkMatch(b *testing.B) {
	for _, hosts := range []int{10, 1000, 10000} {
		table := benchTable(hosts, 10)
		exactHost := fmt.Sprintf("host-%d.example.com", hosts/2)
		for _, c := range []struct{ name, host, path string }{
			{"exact", exactHost, "/svc-7/orders/12345"},
			{"wildcard", "shop.wild-0.example.com", "/cart"},
			{"miss", "unknown.example.org", "/"},
		} {
			b.Run(fmt.Sprintf("hosts=%d/%s", hosts, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if table.Match(c.host, c.path) == nil && c.name != "miss" {
						b.Fatal("no match")
					}
				}
			})
		}
	}
}
