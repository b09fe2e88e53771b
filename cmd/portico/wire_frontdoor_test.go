package main

import (
	"bufio"
	"bytes"
	stdtls "crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The front-door tests hold what a request must look like before it is
// routed, and what of it may reach a backend.

// echoRawBackend answers every request on a connection with 200 and a body
// naming the request target and the X-Forwarded-For it got. It accepts an
// h2c upgrade with 101, as a backend speaking h2c would, and then reads
// whatever follows as further requests: a tunnel shows up as requests that
// skipped the gateway.
func echoRawBackend(t *testing.T) *rawBackend {
	return startRawBackend(t, func(c *rawConn) {
		for {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			req, _, err := c.readRequest()
			if err != nil {
				return
			}
			if strings.EqualFold(req.Header.Get("Upgrade"), "h2c") {
				_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
				continue
			}
			body := "raw " + req.RequestURI + " xff=" + strings.Join(req.Header.Values("X-Forwarded-For"), "|")
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
				return
			}
		}
	})
}

// routeFallback points the legacy-fallback Service at port.
func (e *env) routeFallback(port string) {
	e.t.Helper()
	app := e.app.port()
	e.republish(func() {
		e.write("services.yaml", manifestService("app", app)+"---\n"+manifestService("legacy-fallback", port))
	})
}

func assertNoH2CReachedBackend(t *testing.T, rb *rawBackend) {
	t.Helper()
	for i, got := range rb.received() {
		lower := strings.ToLower(got)
		if strings.Contains(lower, "upgrade: h2c") || strings.Contains(lower, "http2-settings") {
			t.Errorf("backend connection %d received an h2c upgrade:\n%s", i, got)
		}
	}
}

const h2cUpgradeHeaders = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"

func TestFrontdoorH2CUpgradeIsNotTunnelledOverTLS(t *testing.T) {
	e := startEnv(t)
	rb := echoRawBackend(t)
	e.routeApp(rb.port())

	c := e.dialHTTPS("app.example.test")
	br := bufio.NewReader(c)
	resp, body := exchange(t, c, br, "GET /api/x HTTP/1.1\r\nHost: app.example.test\r\n"+h2cUpgradeHeaders+"\r\n")
	if resp.StatusCode != http.StatusOK || body != "raw /api/x xff=127.0.0.1" {
		t.Fatalf("upgrade request: got %d %q, want 200 from the routed backend as an ordinary request", resp.StatusCode, body)
	}
	// The same client connection must still be routed: /admin/secret is not
	// an app path, so the fallback answers, with the forwarding headers
	// rewritten.
	resp, body = exchange(t, c, br, "GET /admin/secret HTTP/1.1\r\nHost: app.example.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "legacy GET /admin/secret xff=127.0.0.1") {
		t.Fatalf("second request on the connection: got %d %q, want the legacy fallback with xff=127.0.0.1", resp.StatusCode, body)
	}
	assertNoH2CReachedBackend(t, rb)
}

func TestFrontdoorH2CUpgradeIsNotTunnelledOverPlainHTTP(t *testing.T) {
	e := startEnv(t)
	rb := echoRawBackend(t)
	e.routeFallback(rb.port())

	c := e.dialHTTP()
	br := bufio.NewReader(c)
	resp, body := exchange(t, c, br, "GET /x HTTP/1.1\r\nHost: unrouted.example.test\r\n"+h2cUpgradeHeaders+"\r\n")
	if resp.StatusCode != http.StatusOK || body != "raw /x xff=127.0.0.1" {
		t.Fatalf("upgrade request: got %d %q, want 200 as an ordinary request", resp.StatusCode, body)
	}
	resp, body = exchange(t, c, br, "GET /admin/secret HTTP/1.1\r\nHost: unrouted.example.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
	if resp.StatusCode != http.StatusOK || body != "raw /admin/secret xff=127.0.0.1" {
		t.Fatalf("second request on the connection: got %d %q, want it proxied with xff=127.0.0.1", resp.StatusCode, body)
	}
	assertNoH2CReachedBackend(t, rb)
}

func TestFrontdoorAllowedUpgradesRefusesH2C(t *testing.T) {
	cfg, err := parseConfig([]string{"--allowed-upgrades", "websocket, Example"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Upstream.AllowedUpgrades, ","); got != "websocket,Example" {
		t.Errorf("allowed upgrades %q, want websocket,Example", got)
	}
	for _, v := range []string{"websocket,h2c", "H2C"} {
		if _, err := parseConfig([]string{"--allowed-upgrades", v}, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("--allowed-upgrades %q was accepted", v)
		}
	}
}

// h2Exchange sends one HTTP/2 request with exactly the given header fields
// (pseudo-headers first, in order) over a fresh TLS connection, and returns
// the response :status, or "reset" when the stream or connection was
// refused without a response.
func (e *env) h2Exchange(t *testing.T, fields [][2]string) string {
	t.Helper()
	cfg := e.tlsConfig("app.example.test")
	cfg.NextProtos = []string{"h2"}
	c, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.https, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range fields {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	dec := hpack.NewDecoder(4096, nil)
	for range 100 {
		f, err := fr.ReadFrame()
		if err != nil {
			return "reset"
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			hf, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hf {
				if h.Name == ":status" {
					return h.Value
				}
			}
			t.Fatal("response without :status")
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return "reset"
			}
		case *http2.GoAwayFrame:
			return "reset"
		}
	}
	t.Fatal("no response within 100 frames")
	return ""
}

func TestFrontdoorHTTP2RequestLineInjection(t *testing.T) {
	e := startEnv(t)
	rb := echoRawBackend(t)
	e.routeApp(rb.port())

	h2 := func(method, path, authority string) [][2]string {
		return [][2]string{{":method", method}, {":scheme", "https"}, {":authority", authority}, {":path", path}}
	}
	// A well-formed request reaches the backend, so the refusals below are
	// not an artefact of the client.
	if got := e.h2Exchange(t, h2("GET", "/api/ok", "app.example.test")); got != "200" {
		t.Fatalf("well-formed HTTP/2 request: got %s, want 200", got)
	}
	before := len(strings.Join(rb.received(), ""))
	for name, fields := range map[string][][2]string{
		"SP in :method":      h2("GET /admin", "/api/x", "app.example.test"),
		"TAB in :method":     h2("GET\t/admin", "/api/x", "app.example.test"),
		"SP in :path":        h2("GET", "/api/x HTTP/1.1", "app.example.test"),
		"TAB in :path":       h2("GET", "/api/x\t/admin", "app.example.test"),
		"non-ASCII :path":    h2("GET", "/api/\xff", "app.example.test"),
		"SP in :authority":   h2("GET", "/api/x", "app.example.test /admin"),
		"TAB in :authority":  h2("GET", "/api/x", "app.example.test\tx"),
		"userinfo authority": h2("GET", "/api/x", "evil@app.example.test"),
		"slash in authority": h2("GET", "/api/x", "app.example.test/admin"),
		"absolute :path":     h2("GET", "http://app.example.test/api/x", "app.example.test"),
	} {
		// A malformed request may also be refused with a stream error
		// (RFC 9113 section 8.1.1), as the HTTP/2 server does for some
		// of these before any handler runs.
		if got := e.h2Exchange(t, fields); got != "400" && got != "reset" {
			t.Errorf("%s: got %s, want 400", name, got)
		}
	}
	if after := len(strings.Join(rb.received(), "")); after != before {
		t.Errorf("the backend received %d bytes of invalid requests:\n%s", after-before, strings.Join(rb.received(), "\n---\n"))
	}
}

// headerRawBackend answers every request with 200 and keeps each request
// (with its trailers) for the test to inspect.
func headerRawBackend(t *testing.T) (*rawBackend, chan *http.Request) {
	reqs := make(chan *http.Request, 16)
	rb := startRawBackend(t, func(c *rawConn) {
		for {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			req, _, err := c.readRequest()
			if err != nil {
				return
			}
			reqs <- req
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	return rb, reqs
}

func receivedRequest(t *testing.T, reqs chan *http.Request) *http.Request {
	t.Helper()
	select {
	case r := <-reqs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the backend received no request")
		return nil
	}
}

func TestFrontdoorClientAddressHeadersFromUntrustedPeers(t *testing.T) {
	const spoofed = "X-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nX-Forwarded-Port: 1\r\nX-Forwarded-Prefix: /evil\r\n"
	t.Run("untrusted", func(t *testing.T) {
		e := startEnv(t)
		rb, reqs := headerRawBackend(t)
		e.routeApp(rb.port())
		c := e.dialHTTPS("app.example.test")
		if resp, _ := exchange(t, c, bufio.NewReader(c), "GET /api/x HTTP/1.1\r\nHost: app.example.test\r\n"+spoofed+"\r\n"); resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d", resp.StatusCode)
		}
		h := receivedRequest(t, reqs).Header
		if got := h.Values("X-Real-Ip"); len(got) != 1 || got[0] != "127.0.0.1" {
			t.Errorf("X-Real-IP = %q, want the peer 127.0.0.1", got)
		}
		for _, k := range []string{"True-Client-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix"} {
			if got := h.Values(k); len(got) != 0 {
				t.Errorf("%s = %q reached the backend from an untrusted client", k, got)
			}
		}
	})
	t.Run("trusted", func(t *testing.T) {
		e := startEnv(t, "--trusted-proxies", "127.0.0.1")
		rb, reqs := headerRawBackend(t)
		e.routeApp(rb.port())
		c := e.dialHTTPS("app.example.test")
		if resp, _ := exchange(t, c, bufio.NewReader(c), "GET /api/x HTTP/1.1\r\nHost: app.example.test\r\n"+spoofed+"\r\n"); resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d", resp.StatusCode)
		}
		h := receivedRequest(t, reqs).Header
		for k, want := range map[string]string{"X-Real-Ip": "6.6.6.6", "True-Client-Ip": "6.6.6.6", "X-Forwarded-Port": "1", "X-Forwarded-Prefix": "/evil"} {
			if got := h.Values(k); len(got) != 1 || got[0] != want {
				t.Errorf("%s = %q from a trusted proxy, want %q", k, got, want)
			}
		}
	})
}

func TestFrontdoorUnderscoreHeaders(t *testing.T) {
	const req = "GET /api/x HTTP/1.1\r\nHost: app.example.test\r\nX_Forwarded_For: 6.6.6.6\r\nX_Custom: 1\r\nX-Normal: 2\r\n\r\n"
	for _, tc := range []struct {
		flags []string
		want  bool
	}{{nil, false}, {[]string{"--allow-underscores-in-headers"}, true}} {
		e := startEnv(t, tc.flags...)
		rb, reqs := headerRawBackend(t)
		e.routeApp(rb.port())
		c := e.dialHTTPS("app.example.test")
		if resp, _ := exchange(t, c, bufio.NewReader(c), req); resp.StatusCode != http.StatusOK {
			t.Fatalf("%v: got %d", tc.flags, resp.StatusCode)
		}
		h := receivedRequest(t, reqs).Header
		if got := h.Get("X-Normal"); got != "2" {
			t.Errorf("%v: X-Normal = %q, want 2", tc.flags, got)
		}
		got := strings.ToLower(strings.Join(rb.received(), ""))
		custom := strings.Contains(got, "\r\nx_custom: 1\r\n")
		xff := strings.Contains(got, "\r\nx_forwarded_for: 6.6.6.6\r\n")
		if custom != tc.want || xff != tc.want {
			t.Errorf("%v: X_Custom forwarded %v, X_Forwarded_For forwarded %v; want %v", tc.flags, custom, xff, tc.want)
		}
	}
}

func TestFrontdoorRequestTrailers(t *testing.T) {
	e := startEnv(t)
	rb, reqs := headerRawBackend(t)
	e.routeApp(rb.port())
	c := e.dialHTTPS("app.example.test")
	raw := "POST /api/upload HTTP/1.1\r\nHost: app.example.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum, Host, X-Forwarded-For\r\n\r\n" +
		"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nHost: evil.example.test\r\nContent-Length: 5\r\nX-Forwarded-For: 6.6.6.6\r\nX-Undeclared: 1\r\n\r\n"
	if resp, _ := exchange(t, c, bufio.NewReader(c), raw); resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d", resp.StatusCode)
	}
	r := receivedRequest(t, reqs)
	if got := r.Trailer.Get("X-Checksum"); got != "abc" {
		t.Errorf("declared trailer X-Checksum = %q, want abc", got)
	}
	got := strings.Join(rb.received(), "")
	for _, bad := range []string{"evil.example.test", "Content-Length: 5", "6.6.6.6", "X-Undeclared"} {
		if strings.Contains(got, bad) {
			t.Errorf("the backend received %q:\n%s", bad, got)
		}
	}
}

// TestFrontdoorAmbiguousFraming pins what the front door already refuses.
func TestFrontdoorAmbiguousFraming(t *testing.T) {
	e := startEnv(t)
	rb, _ := headerRawBackend(t)
	e.routeApp(rb.port())
	for name, raw := range map[string]string{
		"differing Content-Length": "POST /api/x HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"gzip Transfer-Encoding":   "POST /api/x HTTP/1.1\r\nHost: app.example.test\r\nTransfer-Encoding: gzip\r\n\r\n",
		"gzip, chunked":            "POST /api/x HTTP/1.1\r\nHost: app.example.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"two Transfer-Encodings":   "POST /api/x HTTP/1.1\r\nHost: app.example.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		c := e.dialHTTPS("app.example.test")
		resp, _ := exchange(t, c, bufio.NewReader(c), raw)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented {
			t.Errorf("%s: got %d, want a refusal", name, resp.StatusCode)
		}
	}
	if got := strings.Join(rb.received(), ""); got != "" {
		t.Errorf("the backend received:\n%s", got)
	}
}

func TestFrontdoorTLS12CBCSuites(t *testing.T) {
	cbcOnly := &stdtls.Config{
		MaxVersion:   stdtls.VersionTLS12,
		CipherSuites: []uint16{stdtls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, stdtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA},
	}
	for _, tc := range []struct {
		flags []string
		ok    bool
	}{{nil, false}, {[]string{"--tls-legacy-ciphers"}, true}} {
		e := startEnv(t, tc.flags...)
		cfg := cbcOnly.Clone()
		cfg.RootCAs, cfg.ServerName = e.ca.pool, "unknown.example.test"
		c, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.https, cfg)
		if err == nil {
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%v: TLS 1.2 handshake offering only CBC suites: err = %v, want success %v", tc.flags, err, tc.ok)
		}
	}
	// AEAD suites on TLS 1.2 keep working by default.
	e := startEnv(t)
	cfg := &stdtls.Config{MaxVersion: stdtls.VersionTLS12, RootCAs: e.ca.pool, ServerName: "unknown.example.test",
		CipherSuites: []uint16{stdtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}
	c, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.https, cfg)
	if err != nil {
		t.Fatalf("TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256: %v", err)
	}
	c.Close()
}

// An HTTP/1.0 request with Transfer-Encoding has faulty framing (RFC 9112
// section 6.1): a proxy in front that honours the coding reads what
// follows as body, while the front door ignores the coding and would read
// it as a next request on a kept-alive connection.
func TestFrontdoorHTTP10TransferEncodingClosesConnection(t *testing.T) {
	e := startEnv(t)
	rb, reqs := headerRawBackend(t)
	e.routeApp(rb.port())
	smuggled := "GET /api/smuggled HTTP/1.1\r\nHost: app.example.test\r\n\r\n"
	raw := "POST /api/x HTTP/1.0\r\nHost: app.example.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" +
		fmt.Sprintf("%x\r\n", len(smuggled)) + smuggled + "\r\n0\r\n\r\n"
	c := e.dialHTTPS("app.example.test")
	br := bufio.NewReader(c)
	resp, _ := exchange(t, c, br, raw)
	if resp.StatusCode != http.StatusBadRequest {
		// Answered: then the connection must close after the response,
		// and nothing after the declared framing may be served.
		receivedRequest(t, reqs)
		if n, err := br.ReadByte(); err == nil {
			t.Errorf("the connection stayed open after an HTTP/1.0 request with Transfer-Encoding (read %q)", n)
		}
	}
	if got := strings.Join(rb.received(), ""); strings.Contains(got, "/api/smuggled") {
		t.Errorf("the smuggled request reached the backend:\n%s", got)
	}
}

// HTTP/1.1 requests are held to the same syntax: what the HTTP/1.1 server
// lets through but a backend could read otherwise gets 400 too.
func TestFrontdoorHTTP1RequestLineSyntax(t *testing.T) {
	e := startEnv(t)
	rb := echoRawBackend(t)
	e.routeApp(rb.port())
	for name, raw := range map[string]string{
		"raw UTF-8 in target":  "GET /api/caf\xc3\xa9 HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
		"userinfo in Host":     "GET /api/x HTTP/1.1\r\nHost: evil@app.example.test\r\n\r\n",
		"backslash in Host":    "GET /api/x HTTP/1.1\r\nHost: app.example.test\\admin\r\n\r\n",
		"non-token method":     "G(T /api/x HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
		"asterisk for non-OPT": "GET * HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
	} {
		c := e.dialHTTPS("app.example.test")
		if resp, _ := exchange(t, c, bufio.NewReader(c), raw); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: got %d, want 400", name, resp.StatusCode)
		}
	}
	if got := strings.Join(rb.received(), ""); got != "" {
		t.Errorf("the backend received:\n%s", got)
	}
	c := e.dialHTTPS("app.example.test")
	if resp, body := exchange(t, c, bufio.NewReader(c), "GET /api/caf%C3%A9 HTTP/1.1\r\nHost: app.example.test:443\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Errorf("percent-encoded target: got %d %q, want 200", resp.StatusCode, body)
	}
}
