package routing

import (
	"strings"
	"testing"
)

// FuzzCleanPath checks the path cleaner the router matches on, and the
// isClean shortcut that lets most requests skip it: the path matched is
// always absolute and free of dot and empty segments, cleaning it again
// changes nothing, and it resolves where RFC 3986 section 5.2.4 says the
// input does, so that no "/x/../api" or "/api/../x" trick can land in, or
// leave, a prefix such as /api behind the router's back.
func FuzzCleanPath(f *testing.F) {
	for _, p := range []string{
		"/", "", "/api", "/api/", "/api/x", "api/x", "//api", "/api//x", "/./api", "/api/.",
		"/api/..", "/api/../admin", "/static/../api/x", "/api/x/../../..", "/..", "/.../api",
		"/api/.x", "/a/b/./../c/", "*", "/api\\..\\admin", "/api/%2e%2e/admin",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c := cleanPath(p)
		if again := cleanPath(c); again != c {
			t.Fatalf("cleanPath(%q) = %q, but cleaning that again gives %q", p, c, again)
		}
		if msg := uncleanReason(c); msg != "" {
			t.Fatalf("cleanPath(%q) = %q, which %s", p, c, msg)
		}
		if !isClean(c) {
			t.Fatalf("cleanPath(%q) = %q, which isClean calls unclean", p, c)
		}
		// The handler matches a path isClean accepts as it is.
		if isClean(p) && p != "*" {
			if msg := uncleanReason(p); msg != "" {
				t.Fatalf("isClean(%q) is true, but the path %s", p, msg)
			}
			if c != p {
				t.Fatalf("isClean(%q) is true, but cleanPath changes it to %q", p, c)
			}
		}
		ref := removeDotSegments(p)
		if strings.TrimSuffix(c, "/") != strings.TrimSuffix(ref, "/") {
			t.Fatalf("cleanPath(%q) = %q, but the path resolves to %q", p, c, ref)
		}
		if under(c, "/api") != under(ref, "/api") {
			t.Fatalf("cleanPath(%q) = %q is under /api: %v; the path resolves to %q, under /api: %v", p, c, under(c, "/api"), ref, under(ref, "/api"))
		}
	})
}

// uncleanReason says what is wrong with a path the router would match on,
// or "" if nothing is.
func uncleanReason(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "does not start with /"
	case strings.Contains(p, "//"):
		return "holds an empty segment"
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			return "holds a dot segment"
		}
	}
	return ""
}

// removeDotSegments resolves p segment by segment as RFC 3986 section
// 5.2.4 does, with empty segments dropped as the router merges slashes:
// written independently of cleanPath, as the reference it is held to.
func removeDotSegments(p string) string {
	var out []string
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	return "/" + strings.Join(out, "/")
}

// under reports whether p falls under a Prefix match for prefix.
func under(p, prefix string) bool {
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}
