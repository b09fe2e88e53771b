package routing

import (
	"net/http"
	"net/netip"
	"regexp"
	"testing"
)

func TestClientAddrTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cases := []struct {
		remote string
		xff    []string
		want   string
	}{
		{"192.0.2.1:5000", []string{"203.0.113.9"}, "192.0.2.1"},                          // untrusted peer: its XFF is ignored
		{"10.0.0.1:5000", []string{"203.0.113.9"}, "203.0.113.9"},                         // trusted peer names the client
		{"10.0.0.1:5000", []string{"198.51.100.1, 203.0.113.9, 10.1.1.1"}, "203.0.113.9"}, // trusted hops skipped
		{"10.0.0.1:5000", []string{"198.51.100.1", "10.2.2.2"}, "198.51.100.1"},           // across field lines
		{"10.0.0.1:5000", []string{"garbage, 10.2.2.2"}, "10.2.2.2"},                      // unreadable hop ends the walk
		{"10.0.0.1:5000", nil, "10.0.0.1"},
		{"[::ffff:192.0.2.1]:5000", nil, "192.0.2.1"},
	}
	for _, c := range cases {
		r := &http.Request{RemoteAddr: c.remote, Header: http.Header{}}
		if c.xff != nil {
			r.Header["X-Forwarded-For"] = c.xff
		}
		got, ok := clientAddr(r, trusted)
		if !ok || got.String() != c.want {
			t.Errorf("%s %q: got %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

func TestExpandRegexPath(t *testing.T) {
	re := regexp.MustCompile(`(?i)^(?:/something(/|$)(.*)).*`)
	for in, want := range map[string]string{
		"/something":       "/",
		"/something/":      "/",
		"/SOMETHING/new/x": "/new/x",
		"/something/a?b":   "/a?b",
		"/other":           "/other",
	} {
		if got := expandRegexPath(in, re, "/${2}"); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}
