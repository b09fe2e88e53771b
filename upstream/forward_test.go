package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoHandler reports what the backend received in response headers and
// echoes the request body.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h := w.Header()
	h.Set("X-Got-Method", r.Method)
	h.Set("X-Got-URI", r.RequestURI)
	h.Set("X-Got-Host", r.Host)
	h.Set("X-Got-Content-Length", strconv.FormatInt(r.ContentLength, 10))
	h.Set("X-Got-Transfer-Encoding", strings.Join(r.TransferEncoding, ","))
	h.Set("X-Got-Body-Len", strconv.Itoa(len(body)))
	h.Set("X-Got-User-Agent", strings.Join(r.Header.Values("User-Agent"), ","))
	h.Set("X-Got-Accept-Encoding", strings.Join(r.Header.Values("Accept-Encoding"), ","))
	h.Set("X-Got-Proto", r.Proto)
	switch r.URL.Path {
	case "/nocontent":
		w.WriteHeader(http.StatusNoContent)
		return
	case "/large":
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.Itoa(len(largeBody)))
		_, _ = w.Write(largeBody)
		return
	}
	h.Set("Content-Type", "text/plain")
	_, _ = w.Write(body)
}

var largeBody = func() []byte {
	b := make([]byte, 1<<20)
	_, _ = rand.Read(b)
	return b
}()

// onlyReader hides a body's length so the client sends it chunked.
type onlyReader struct{ io.Reader }

func TestForwardHTTP1(t *testing.T) {
	be := startBackend(t, http.HandlerFunc(echoHandler))
	tr := newTestTransport(t, Config{})
	b := &Backend{Name: "ns/echo:80", Endpoints: []string{be.addr()}}

	for _, useTLS := range []bool{false, true} {
		p := startProxy(t, tr, b, useTLS)
		tests := []struct {
			name, method, path string
			body               io.Reader
			wantStatus         int
			wantBody           string
			wantCL             string // Content-Length the backend saw
			wantTE             string
		}{
			{name: "GET", method: "GET", path: "/a/b?x=1&y=%2F", wantStatus: 200, wantCL: "0"},
			{name: "escaped path", method: "GET", path: "/enc%2Fpath/%7Eu?q=%41&r", wantStatus: 200, wantCL: "0"},
			{name: "POST fixed", method: "POST", path: "/post", body: strings.NewReader("hello world"), wantStatus: 200, wantBody: "hello world", wantCL: "11"},
			{name: "POST chunked", method: "POST", path: "/post", body: onlyReader{strings.NewReader("streamed body")}, wantStatus: 200, wantBody: "streamed body", wantCL: "-1", wantTE: "chunked"},
			{name: "POST empty", method: "POST", path: "/post", wantStatus: 200, wantCL: "0"},
			{name: "HEAD", method: "HEAD", path: "/head", wantStatus: 200, wantCL: "0"},
			{name: "204", method: "GET", path: "/nocontent", wantStatus: 204, wantCL: "0"},
			{name: "large", method: "GET", path: "/large", wantStatus: 200, wantBody: string(largeBody), wantCL: "0"},
		}
		for _, tc := range tests {
			t.Run(tc.name+"/tls="+strconv.FormatBool(useTLS), func(t *testing.T) {
				req, err := http.NewRequest(tc.method, p.URL+tc.path, tc.body)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("User-Agent", "")
				resp, err := p.client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got := readAll(t, resp.Body)
				if resp.StatusCode != tc.wantStatus {
					t.Fatalf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
				}
				if got != tc.wantBody {
					t.Errorf("body = %.60q (len %d), want len %d", got, len(got), len(tc.wantBody))
				}
				if o := p.lastOutcome(t); o.Status != tc.wantStatus || o.Err != nil {
					t.Errorf("outcome = %+v", o)
				}
				if tc.wantStatus == 204 {
					return
				}
				h := resp.Header
				if h.Get("X-Got-Method") != tc.method || h.Get("X-Got-URI") != tc.path {
					t.Errorf("backend saw %s %s, want %s %s", h.Get("X-Got-Method"), h.Get("X-Got-URI"), tc.method, tc.path)
				}
				if g := h.Get("X-Got-Content-Length"); g != tc.wantCL {
					t.Errorf("backend Content-Length = %s, want %s", g, tc.wantCL)
				}
				if g := h.Get("X-Got-Transfer-Encoding"); g != tc.wantTE {
					t.Errorf("backend Transfer-Encoding = %q, want %q", g, tc.wantTE)
				}
				if g := h.Get("X-Got-Host"); g != strings.TrimPrefix(strings.TrimPrefix(p.URL, "http://"), "https://") {
					t.Errorf("backend Host = %q, want the inbound host", g)
				}
				if g := h.Get("X-Got-User-Agent"); g != "" {
					t.Errorf("User-Agent %q was injected", g)
				}
			})
		}
	}
}

func TestStreamingResponseIsFlushed(t *testing.T) {
	release := make(chan struct{})
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: second\n\n")
	}))
	tr := newTestTransport(t, Config{})
	p := startProxy(t, tr, &Backend{Name: "ns/sse:80", Endpoints: []string{be.addr()}}, true)

	resp, err := p.client().Get(p.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// The backend only finishes after the client saw the first event, so
	// this read would hang if the proxy held the stream back.
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	close(release)
	rest := readAll(t, br)
	if rest != "\ndata: second\n\n" {
		t.Fatalf("rest = %q", rest)
	}
}

func TestKeepAlive(t *testing.T) {
	tests := []struct {
		name      string
		close     bool
		wantConns int64
	}{
		{name: "reused", close: false, wantConns: 1},
		{name: "backend says close", close: true, wantConns: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.close {
					w.Header().Set("Connection", "close")
				}
				_, _ = io.WriteString(w, "ok")
			}))
			tr := newTestTransport(t, Config{})
			p := startProxy(t, tr, &Backend{Name: "ns/ka:80", Endpoints: []string{be.addr()}}, false)
			for i := 0; i < 5; i++ {
				resp, err := p.client().Get(p.URL + "/")
				if err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, resp.Body); got != "ok" {
					t.Fatalf("body = %q", got)
				}
				resp.Body.Close()
			}
			if got := be.conns.Load(); got != tc.wantConns {
				t.Errorf("backend saw %d connections, want %d", got, tc.wantConns)
			}
		})
	}
}

func TestHopByHopHeaders(t *testing.T) {
	var got http.Header
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		h := w.Header()
		h.Set("Connection", "X-Resp-Private")
		h.Set("X-Resp-Private", "secret")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("X-Resp-Public", "yes")
		_, _ = io.WriteString(w, "ok")
	}))
	tr := newTestTransport(t, Config{})
	p := startProxy(t, tr, &Backend{Name: "ns/hop:80", Endpoints: []string{be.addr()}}, false)

	req, _ := http.NewRequest("GET", p.URL+"/", nil)
	req.Header.Set("Connection", "X-Private, keep-alive")
	req.Header.Set("X-Private", "1")
	req.Header.Set("Keep-Alive", "timeout=10")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("Proxy-Connection", "keep-alive")
	req.Header.Set("Te", "trailers, deflate")
	req.Header.Set("Trailer", "X-T")
	req.Header.Set("X-Public", "2")
	resp, err := p.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	resp.Body.Close()

	for _, k := range []string{"Connection", "X-Private", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Trailer", "Upgrade"} {
		if v, ok := got[k]; ok {
			t.Errorf("backend received hop-by-hop %s: %q", k, v)
		}
	}
	if g := got.Get("Te"); g != "trailers" {
		t.Errorf("backend TE = %q, want trailers", g)
	}
	if g := got.Get("X-Public"); g != "2" {
		t.Errorf("backend X-Public = %q", g)
	}
	for _, k := range []string{"X-Resp-Private", "Keep-Alive", "Proxy-Authenticate"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("client received hop-by-hop %s: %q", k, v)
		}
	}
	if g := resp.Header.Get("X-Resp-Public"); g != "yes" {
		t.Errorf("client X-Resp-Public = %q", g)
	}
}

func TestForwardingHeaders(t *testing.T) {
	var got atomic.Pointer[http.Header]
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		got.Store(&h)
	}))
	spoofed := map[string]string{
		"X-Forwarded-For":   "203.0.113.7",
		"X-Forwarded-Proto": "gopher",
		"X-Forwarded-Host":  "spoofed.example",
		"Forwarded":         "for=203.0.113.7;proto=gopher",
	}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		useTLS  bool
		want    func(host string) map[string]string
	}{
		{
			name: "untrusted peer is replaced", useTLS: true,
			want: func(host string) map[string]string {
				return map[string]string{
					"X-Forwarded-For":   "127.0.0.1",
					"X-Forwarded-Proto": "https",
					"X-Forwarded-Host":  host,
					"Forwarded":         `for=127.0.0.1;host="` + host + `";proto=https`,
				}
			},
		},
		{
			name: "trusted peer is appended to", trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			want: func(host string) map[string]string {
				return map[string]string{
					"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
					"X-Forwarded-Proto": "gopher",
					"X-Forwarded-Host":  "spoofed.example",
					"Forwarded":         `for=203.0.113.7;proto=gopher, for=127.0.0.1;host="` + host + `";proto=http`,
				}
			},
		},
		{
			name: "untrusted plain http without inbound headers",
			want: func(host string) map[string]string {
				return map[string]string{
					"X-Forwarded-For":   "127.0.0.1",
					"X-Forwarded-Proto": "http",
					"X-Forwarded-Host":  host,
					"Forwarded":         `for=127.0.0.1;host="` + host + `";proto=http`,
				}
			},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestTransport(t, Config{TrustedProxies: tc.trusted})
			p := startProxy(t, tr, &Backend{Name: "ns/fwd:80", Endpoints: []string{be.addr()}}, tc.useTLS)
			req, _ := http.NewRequest("GET", p.URL+"/", nil)
			if i < 2 {
				for k, v := range spoofed {
					req.Header.Set(k, v)
				}
			}
			resp, err := p.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := *got.Load()
			host := req.URL.Host
			for k, want := range tc.want(host) {
				if vv := h.Values(k); len(vv) != 1 || vv[0] != want {
					t.Errorf("%s = %q, want %q", k, vv, want)
				}
			}
		})
	}
}

func TestForwardedValues(t *testing.T) {
	tests := []struct {
		name       string
		remoteAddr string
		host       string
		wantXFF    string
		wantFwd    string
	}{
		{"ipv4", "192.0.2.1:1234", "example.com", "192.0.2.1", "for=192.0.2.1;host=example.com;proto=http"},
		{"ipv6", "[2001:db8::1]:443", "example.com:8443", "2001:db8::1", `for="[2001:db8::1]";host="example.com:8443";proto=http`},
		{"mapped ipv4", "[::ffff:192.0.2.9]:1", "a.example", "192.0.2.9", "for=192.0.2.9;host=a.example;proto=http"},
		{"not an ip", "@", "a.example", "unknown", "for=unknown;host=a.example;proto=http"},
	}
	tr := newTestTransport(t, Config{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remoteAddr, Host: tc.host, Header: http.Header{}}
			f := tr.forwardingFor(r)
			if got := string(appendXFF(nil, &f, nil)); got != tc.wantXFF {
				t.Errorf("X-Forwarded-For = %q, want %q", got, tc.wantXFF)
			}
			if got := string(appendForwarded(nil, &f, nil)); got != tc.wantFwd {
				t.Errorf("Forwarded = %q, want %q", got, tc.wantFwd)
			}
		})
	}
}

// silentBackend accepts connections and reads requests but never answers.
func silentBackend(t *testing.T) *rawBackend {
	return startRawBackend(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
}

func TestErrorResponses(t *testing.T) {
	ok := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	silent := silentBackend(t)
	tests := []struct {
		name             string
		endpoints        []string
		wantStatus       int
		wantBody         string
		wantConnectFails int64
	}{
		{"no endpoints", nil, 503, "503 Service Unavailable: no ready endpoints for backend ns/svc:80\n", 0},
		{"refused", []string{closedPort(t)}, 502, "502 Bad Gateway: cannot connect to backend ns/svc:80\n", 1},
		{"both refused", []string{closedPort(t), closedPort(t)}, 502, "502 Bad Gateway: cannot connect to backend ns/svc:80\n", 2},
		{"retried on second endpoint", []string{closedPort(t), ok.addr()}, 200, "ok", 1},
		{"header timeout", []string{silent.addr()}, 504, "504 Gateway Timeout: backend ns/svc:80 did not answer in time\n", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fails atomic.Int64
			tr := newTestTransport(t, Config{
				ResponseHeaderTimeout: 200 * time.Millisecond,
				OnConnectError: func(name string) {
					if name == "ns/svc:80" {
						fails.Add(1)
					}
				},
			})
			b := &Backend{Name: "ns/svc:80", Endpoints: tc.endpoints}
			// A fresh Backend's round robin starts at its first endpoint.
			p := startProxy(t, tr, b, false)
			resp, err := p.client().Get(p.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || body != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			if tc.wantStatus >= 500 && resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("error Content-Type = %q", resp.Header.Get("Content-Type"))
			}
			if got := fails.Load(); got != tc.wantConnectFails {
				t.Errorf("OnConnectError called %d times, want %d", got, tc.wantConnectFails)
			}
			o := p.lastOutcome(t)
			if o.Status != tc.wantStatus || (tc.wantStatus >= 500) != (o.Err != nil) {
				t.Errorf("outcome = %+v", o)
			}
		})
	}
}

// oneShotBackend answers one request per connection with a keep-alive
// response and then closes the connection, as a backend with a short idle
// timeout does; closed is signalled after each close.
func oneShotBackend(t *testing.T, closed chan<- struct{}) *rawBackend {
	return startRawBackend(t, func(c net.Conn) {
		defer func() { closed <- struct{}{} }()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		_ = c.Close()
	})
}

// A pooled connection the backend closed while it was idle is found closed
// before the request is written to it, so a request of any method goes to
// a new connection instead.
func TestStalePooledConnection(t *testing.T) {
	tests := []struct {
		method     string
		wantStatus int
	}{
		{"GET", 200},
		{"DELETE", 200},
		{"POST", 200},
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			closed := make(chan struct{}, 8)
			rb := oneShotBackend(t, closed)
			tr := newTestTransport(t, Config{})
			p := startProxy(t, tr, &Backend{Name: "ns/stale:80", Endpoints: []string{rb.addr()}}, false)

			resp, err := p.client().Get(p.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp.Body)
			resp.Body.Close()
			select {
			case <-closed:
			case <-time.After(safety):
				t.Fatal("backend did not close")
			}
			// The pooled connection is now dead on the backend side.
			req, _ := http.NewRequest(tc.method, p.URL+"/", strings.NewReader("x"))
			if tc.method != "POST" {
				req.Body, req.ContentLength = nil, 0
			}
			resp, err = p.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus == 200 {
				if got := rb.count.Load(); got != 2 {
					t.Errorf("backend saw %d connections, want 2", got)
				}
			}
		})
	}
}

func TestClientCancel(t *testing.T) {
	tests := []struct {
		name string
		// headersFirst makes the backend send its headers before stalling,
		// so the cancel happens during the body rather than before headers.
		headersFirst bool
	}{
		{"awaiting headers", false},
		{"streaming body", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			backendDone := make(chan struct{})
			be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.headersFirst {
					w.WriteHeader(200)
					_, _ = io.WriteString(w, "partial")
					w.(http.Flusher).Flush()
				}
				<-r.Context().Done() // the proxy closed the backend connection
				close(backendDone)
			}))
			tr := newTestTransport(t, Config{})
			p := startProxy(t, tr, &Backend{Name: "ns/slow:80", Endpoints: []string{be.addr()}}, false)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/", nil)
			errc := make(chan error, 1)
			go func() {
				resp, err := p.client().Do(req)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				errc <- err
			}()
			// Wait until the backend has the request before canceling.
			deadline := time.After(safety)
			for be.conns.Load() == 0 {
				select {
				case <-deadline:
					t.Fatal("backend never got the request")
				case <-time.After(5 * time.Millisecond):
				}
			}
			if tc.headersFirst {
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			select {
			case <-backendDone:
			case <-time.After(safety):
				t.Fatal("backend connection was not closed after the client went away")
			}
			if err := <-errc; err == nil {
				t.Error("client request succeeded despite cancel")
			}
			if o := p.lastOutcome(t); o.Status != StatusClientClosedRequest {
				t.Errorf("outcome = %+v, want status 499", o)
			}
		})
	}
}

func TestResponseTrailers(t *testing.T) {
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	}))
	tr := newTestTransport(t, Config{})
	p := startProxy(t, tr, &Backend{Name: "ns/tr:80", Endpoints: []string{be.addr()}}, true)
	resp, err := p.client().Get(p.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp.Body); body != "body" {
		t.Errorf("body = %q", body)
	}
	resp.Body.Close()
	if g := resp.Trailer.Get("X-Checksum"); g != "abc" {
		t.Errorf("trailer X-Checksum = %q (trailers %v)", g, resp.Trailer)
	}
	if g := resp.Trailer.Get("X-Late"); g != "late" {
		t.Errorf("trailer X-Late = %q (trailers %v)", g, resp.Trailer)
	}
}

func TestRequestTrailers(t *testing.T) {
	var gotTrailer atomic.Value
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		gotTrailer.Store(r.Trailer.Get("X-Sum"))
	}))
	tr := newTestTransport(t, Config{})
	p := startProxy(t, tr, &Backend{Name: "ns/tr:80", Endpoints: []string{be.addr()}}, false)
	req, _ := http.NewRequest("POST", p.URL+"/", onlyReader{strings.NewReader("payload")})
	req.Trailer = http.Header{"X-Sum": {"42"}}
	resp, err := p.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g, _ := gotTrailer.Load().(string); g != "42" {
		t.Errorf("backend trailer X-Sum = %q, want 42", g)
	}
}

func TestBackendTruncatedBodyAbortsClient(t *testing.T) {
	rb := startRawBackend(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	})
	tr := newTestTransport(t, Config{})
	p := startProxy(t, tr, &Backend{Name: "ns/trunc:80", Endpoints: []string{rb.addr()}}, false)
	resp, err := p.client().Get(p.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("truncated backend response reached the client as complete")
	}
	if o := p.lastOutcome(t); o.Err == nil {
		t.Errorf("outcome = %+v, want an error", o)
	}
}

func TestEarlyHints(t *testing.T) {
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "final")
	}))
	tr := newTestTransport(t, Config{})
	p := startProxy(t, tr, &Backend{Name: "ns/hints:80", Endpoints: []string{be.addr()}}, false)
	conn, err := net.Dial("tcp", p.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(safety))
	_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(conn)
	if !bytes.HasPrefix(raw, []byte("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n")) {
		t.Fatalf("response = %q", raw)
	}
	if bytes.Count(raw, []byte("Link:")) != 1 {
		t.Errorf("Link header leaked into the final response: %q", raw)
	}
}

func TestIdleConnectionsExpire(t *testing.T) {
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tr := newTestTransport(t, Config{IdleConnTimeout: 50 * time.Millisecond})
	p := startProxy(t, tr, &Backend{Name: "ns/idle:80", Endpoints: []string{be.addr()}}, false)
	resp, err := p.client().Get(p.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The reaper closes the idle connection; the backend notices.
	deadline := time.Now().Add(safety)
	for {
		pool := tr.pool(be.addr())
		pool.mu.Lock()
		n := len(pool.idle)
		pool.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle connection never reaped")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRoundRobin(t *testing.T) {
	var hits [2]atomic.Int64
	var addrs []string
	for i := range hits {
		be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits[i].Add(1) }))
		addrs = append(addrs, be.addr())
	}
	tr := newTestTransport(t, Config{})
	p := startProxy(t, tr, &Backend{Name: "ns/rr:80", Endpoints: addrs}, false)
	for i := 0; i < 10; i++ {
		resp, err := p.client().Get(p.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if hits[0].Load() != 5 || hits[1].Load() != 5 {
		t.Errorf("hits = %d, %d; want 5, 5", hits[0].Load(), hits[1].Load())
	}
}

func TestConcurrentRequests(t *testing.T) {
	var addrs []string
	for i := 0; i < 2; i++ {
		addrs = append(addrs, startBackend(t, http.HandlerFunc(echoHandler)).addr())
	}
	tr := newTestTransport(t, Config{MaxIdleConnsPerEndpoint: 2})
	p := startProxy(t, tr, &Backend{Name: "ns/conc:80", Endpoints: addrs}, true)
	c := p.client()
	const workers, perWorker = 8, 25
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < perWorker; i++ {
				want := strconv.Itoa(w) + "-" + strconv.Itoa(i)
				resp, err := c.Post(p.URL+"/", "text/plain", strings.NewReader(want))
				if err != nil {
					errc <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(got) != want {
					errc <- errors.New("got " + string(got) + ", want " + want)
					return
				}
			}
			errc <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range addrs {
		pool := tr.pool(a)
		// The burst's surplus stays warm for surplusIdleTime; once that has
		// passed, only the cap remains.
		pool.trimSurplus(time.Now().Add(surplusIdleTime), 2)
		pool.mu.Lock()
		n := len(pool.idle)
		pool.mu.Unlock()
		if n > 2 {
			t.Errorf("endpoint %s keeps %d idle connections, limit 2", a, n)
		}
	}
}

func TestForwardAfterClose(t *testing.T) {
	be := startBackend(t, http.HandlerFunc(echoHandler))
	tr := newTestTransport(t, Config{})
	p := startProxy(t, tr, &Backend{Name: "ns/closed:80", Endpoints: []string{be.addr()}}, false)
	_ = tr.Close()
	resp, err := p.client().Get(p.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	pool := tr.pool(be.addr())
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if len(pool.idle) != 0 {
		t.Error("a closed Transport pooled a connection")
	}
}

// TestHeaderDeadlineAcrossRequests: the response-header bound a connection
// keeps armed between requests still ends a backend that stops answering on
// a reused connection, and a body that arrives slower than the bound is
// never cut by it.
func TestHeaderDeadlineAcrossRequests(t *testing.T) {
	const timeout = 100 * time.Millisecond
	be := startRawBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/fast":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			case "/slow-body":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nsl")
				time.Sleep(3 * timeout)
				_, _ = io.WriteString(c, "ow")
			default: // never answers
				_, _ = io.Copy(io.Discard, c)
				return
			}
		}
	})
	tr := newTestTransport(t, Config{ResponseHeaderTimeout: timeout})
	p := startProxy(t, tr, &Backend{Name: "ns/deadline:80", Endpoints: []string{be.addr()}}, false)
	c := p.client()
	for i, tc := range []struct {
		path       string
		wantStatus int
		wantBody   string
		wantConns  int64
	}{
		{"/fast", 200, "ok", 1},
		{"/stall", 504, "504 Gateway Timeout: backend ns/deadline:80 did not answer in time\n", 1},
		{"/slow-body", 200, "slow", 2},
		{"/fast", 200, "ok", 2},
	} {
		resp, err := c.Get(p.URL + tc.path)
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, tc.path, err)
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatus || body != tc.wantBody {
			t.Errorf("request %d (%s): got %d %q, want %d %q", i, tc.path, resp.StatusCode, body, tc.wantStatus, tc.wantBody)
		}
		if n := be.count.Load(); n != tc.wantConns {
			t.Errorf("request %d (%s): %d backend connections, want %d", i, tc.path, n, tc.wantConns)
		}
	}
}
