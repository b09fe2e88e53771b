package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// FuzzWriteRequest feeds the request writer arbitrary methods, targets,
// hosts, header fields and bodies, and reads what it wrote back with a
// strict HTTP/1.1 parser. Whatever it is given, the writer must either
// refuse (return an error) or write exactly one request that a backend
// reads as intended: the same method, target and Host, only fields the
// writer meant to send, none of them malformed, the same body, and not one
// byte after it. Anything else is a head a backend may read differently
// from the gateway: request smuggling or header injection.
func FuzzWriteRequest(f *testing.F) {
	f.Add("GET", "/api/x?q=1", "app.example.test", "X-Request-Id", "abc", "", []byte(nil), false, false)
	f.Add("POST", "/upload", "app.example.test:8443", "Content-Type", "text/plain", "", []byte("hello"), false, false)
	f.Add("PUT", "/chunked", "app.example.test", "Te", "trailers", "", []byte("hello"), true, false)
	f.Add("GET", "/", "app.example.test", "X-Forwarded-For", "192.0.2.1", "192.0.2.1, 198.51.100.7", []byte(nil), false, true)
	f.Add("GET", "*", "app.example.test", "Accept", "*/*", "", []byte(nil), false, false)
	f.Add("GET", "http://other.example.test/abs", "other.example.test", "Accept", "*/*", "", []byte(nil), false, false)
	f.Add("GET", "/a", "app.example.test", "X-A", "b\r\nX-Injected: 1", "", []byte(nil), false, false)
	f.Add("POST", "/api", "app.example.test", "Transfer-Encoding", "chunked", "", []byte("0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n"), false, false)

	tr := NewTransport(Config{Logger: quietLogger(), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	f.Cleanup(func() { _ = tr.Close() })
	const poolAddr = "192.0.2.10:8080"

	f.Fuzz(func(t *testing.T, method, target, host, name, value, xff string, body []byte, chunked, trusted bool) {
		// Both inbound servers refuse a target that does not parse.
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		r := &http.Request{
			Method: method, URL: u, RequestURI: target, Host: host,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:     http.Header{},
			RemoteAddr: "203.0.113.5:41000",
			Body:       http.NoBody,
		}
		if trusted {
			r.RemoteAddr = "10.1.2.3:41000"
		}
		// The inbound servers hand over canonical keys; so do the header
		// filters, which use Header.Set.
		r.Header[http.CanonicalHeaderKey(name)] = []string{value}
		if xff != "" {
			r.Header["X-Forwarded-For"] = append(r.Header["X-Forwarded-For"], xff)
		}
		if len(body) > 0 {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			if chunked {
				r.ContentLength = -1
				r.Trailer = http.Header{http.CanonicalHeaderKey(name): {value}}
			}
		}

		var out bytes.Buffer
		c := &conn{nc: bufferConn{&out}, bw: bufio.NewWriter(&out), pool: &endpointPool{addr: poolAddr}}
		fw := tr.forwardingFor(r)
		if _, err := tr.writeRequest(c, httptest.NewRecorder(), r, &fw, nil, tr.upgradeType(r)); err != nil {
			return // refused: nothing a backend could misread
		}

		wantURI := target
		if !strings.HasPrefix(wantURI, "/") {
			wantURI = u.RequestURI()
		}
		wantHost := host
		if wantHost == "" || !validHeaderValue(wantHost) {
			wantHost = poolAddr
		}
		wrote := out.String()
		br := bufio.NewReader(strings.NewReader(wrote))
		got, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("wrote a request a strict parser refuses (%v):\n%q", err, wrote)
		}
		switch {
		case got.Method != method:
			t.Fatalf("method %q read back as %q:\n%q", method, got.Method, wrote)
		case got.RequestURI != wantURI:
			t.Fatalf("target %q read back as %q:\n%q", wantURI, got.RequestURI, wrote)
		case got.Host != wantHost:
			t.Fatalf("Host %q read back as %q:\n%q", wantHost, got.Host, wrote)
		case !validHeaderName(got.Method):
			t.Fatalf("method %q is not a token:\n%q", got.Method, wrote)
		case !validRequestTarget(got.RequestURI):
			t.Fatalf("target %q holds whitespace or control bytes:\n%q", got.RequestURI, wrote)
		case !httpguts.ValidHostHeader(got.Host):
			t.Fatalf("Host %q is not a valid host:\n%q", got.Host, wrote)
		}
		allowed := map[string]bool{
			http.CanonicalHeaderKey(name): true,
			"X-Forwarded-For":             true, "X-Forwarded-Proto": true, "X-Forwarded-Host": true, "Forwarded": true, "X-Real-Ip": true,
			"Content-Length": true, "Transfer-Encoding": true, "Trailer": true, "Te": true,
			"Connection": true, "Upgrade": true,
		}
		for _, h := range []http.Header{got.Header} {
			for k, vv := range h {
				if !allowed[k] {
					t.Fatalf("field %q appeared, which nobody sent:\n%q", k, wrote)
				}
				for _, v := range vv {
					if !httpguts.ValidHeaderFieldValue(v) {
						t.Fatalf("field %s has an invalid value %q:\n%q", k, v, wrote)
					}
				}
			}
		}
		gotBody, err := io.ReadAll(got.Body)
		if err != nil {
			t.Fatalf("the body cannot be read back (%v):\n%q", err, wrote)
		}
		if !bytes.Equal(gotBody, body) {
			t.Fatalf("body %q read back as %q:\n%q", body, gotBody, wrote)
		}
		for k, vv := range got.Trailer {
			if !allowed[k] {
				t.Fatalf("trailer %q appeared, which nobody sent:\n%q", k, wrote)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("trailer %s has an invalid value %q:\n%q", k, v, wrote)
				}
			}
		}
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			t.Fatalf("%d bytes follow the request, a second request to the backend: %q\nin:\n%q", len(rest), rest, wrote)
		}
	})
}

// validRequestTarget reports whether a request target has no byte a
// request line cannot carry: whitespace, controls and non-ASCII.
func validRequestTarget(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// bufferConn is a backend connection that only collects what is written.
type bufferConn struct{ w *bytes.Buffer }

func (c bufferConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c bufferConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c bufferConn) Close() error                     { return nil }
func (c bufferConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c bufferConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c bufferConn) SetDeadline(time.Time) error      { return nil }
func (c bufferConn) SetReadDeadline(time.Time) error  { return nil }
func (c bufferConn) SetWriteDeadline(time.Time) error { return nil }
