package upstream

import "testing"

func TestValidRequestLine(t *testing.T) {
	tests := []struct {
		method, target, authority string
		want                      bool
	}{
		{"GET", "/", "example.test", true},
		{"GET", "/a/b?c=d&e=%20f", "example.test:8443", true},
		{"PROPFIND", "/dav/", "", true},
		{"GET", "http://example.test/a", "example.test", true},
		{"GET", "HTTPS://example.test/a", "example.test", true},
		{"OPTIONS", "*", "example.test", true},
		{"CONNECT", "example.test:443", "example.test:443", true},
		{"GET", "/", "127.0.0.1:80", true},
		{"GET", "/", "[::1]:8080", true},
		{"GET", "/", "[fe80::1%25eth0]", true},
		{"GET", "/", "xn--bcher-kva.example", true},

		{"", "/", "example.test", false},
		{"GET /admin", "/api/x", "example.test", false},
		{"GET\t", "/api/x", "example.test", false},
		{"G(T", "/", "example.test", false},
		{"GET", "", "example.test", false},
		{"GET", "/api/x /admin", "example.test", false},
		{"GET", "/api/x\t/admin", "example.test", false},
		{"GET", "/api/x\r\nX: y", "example.test", false},
		{"GET", "/api/\x00", "example.test", false},
		{"GET", "/api/\x7f", "example.test", false},
		{"GET", "/caf\xc3\xa9", "example.test", false},
		{"GET", "/api#frag", "example.test", false},
		{"GET", "http://example.test/a#b", "example.test", false},
		{"PRI", "*", "", false},
		{"GET", "example.test:443", "example.test", false},
		{"GET", "*", "example.test", false},
		{"GET", "api/x", "example.test", false},
		{"GET", "ftp://example.test/", "example.test", false},
		{"GET", "http://example.test/a b", "example.test", false},
		{"CONNECT", "other.test:443", "example.test:443", false},
		{"CONNECT", "/", "example.test", false},
		{"GET", "/", "example.test /admin", false},
		{"GET", "/", "example.test\t", false},
		{"GET", "/", "evil@example.test", false},
		{"GET", "/", "example.test/admin", false},
		{"GET", "/", "example.test\\admin", false},
		{"GET", "/", "example.test:80a", false},
		{"GET", "/", "example.test:123456", false},
		{"GET", "/", ":80", false},
		{"GET", "/", "[::1", false},
		{"GET", "/", "[::1]x", false},
		{"GET", "/", "[example.test]", false},
		{"GET", "/", "[::1 ]", false},
		{"GET", "/", "exa\x00mple.test", false},
		{"GET", "/", "b\xc3\xbccher.example", false},
	}
	for _, tc := range tests {
		if got := ValidRequestLine(tc.method, tc.target, tc.authority); got != tc.want {
			t.Errorf("ValidRequestLine(%q, %q, %q) = %v, want %v", tc.method, tc.target, tc.authority, got, tc.want)
		}
	}
}

func TestValidRequestLineDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		ValidRequestLine("GET", "/api/v1/items?id=42", "app.example.test:8443")
	})
	if allocs != 0 {
		t.Errorf("ValidRequestLine allocates %v times per call", allocs)
	}
}

func BenchmarkValidRequestLine(b *testing.B) {
	for b.Loop() {
		ValidRequestLine("GET", "/svc-7/orders/12345?page=2", "host-500.example.com")
	}
}
