package upstream

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// The h2c leg builds its header map apart from the HTTP/1.1 writer: it must
// drop the same fields.
func TestForwardH2CHeaderHygiene(t *testing.T) {
	type seen struct{ header, trailer http.Header }
	got := make(chan seen, 1)
	be := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got <- seen{r.Header.Clone(), r.Trailer.Clone()}
	}))
	tr := newTestTransport(t, Config{})
	p := startProxy(t, tr, &Backend{Name: "ns/grpc:80", Protocol: H2C, Endpoints: []string{be.addr()}}, false)

	c, err := net.DialTimeout("tcp", p.Listener.Addr().String(), safety)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(safety))
	_, _ = io.WriteString(c, "POST /p HTTP/1.1\r\nHost: app.test\r\nX_Custom: 1\r\nX-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\n"+
		"X-Forwarded-Prefix: /evil\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum, Host\r\n\r\n"+
		"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nHost: evil.test\r\nX-Undeclared: 1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var s seen
	select {
	case s = <-got:
	case <-time.After(safety):
		t.Fatal("the backend got no request")
	}
	for _, k := range []string{"X_custom", "True-Client-Ip", "X-Forwarded-Prefix", "Http2-Settings"} {
		if v, ok := s.header[k]; ok {
			t.Errorf("%s = %q reached the backend", k, v)
		}
	}
	if v := s.header.Values("X-Real-Ip"); len(v) != 1 || v[0] != "127.0.0.1" {
		t.Errorf("X-Real-IP = %q, want the peer 127.0.0.1", v)
	}
	if v := s.trailer.Get("X-Checksum"); v != "abc" {
		t.Errorf("declared trailer X-Checksum = %q, want abc", v)
	}
	for _, k := range []string{"Host", "X-Undeclared"} {
		if v, ok := s.trailer[k]; ok {
			t.Errorf("trailer %s = %q reached the backend", k, v)
		}
	}
}

// The routing handler refuses invalid request lines; the writers refuse
// them again, before writing a byte, should a handler edit the request
// after it was routed.
func TestWritersRefuseInvalidRequestLines(t *testing.T) {
	var received atomic.Int64
	rb := startRawBackend(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(safety))
		buf := make([]byte, 4096)
		if n, _ := c.Read(buf); n > 0 {
			received.Add(int64(n))
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	})
	tr := newTestTransport(t, Config{})
	for _, proto := range []Protocol{HTTP1, H2C} {
		b := &Backend{Name: "ns/app:80", Protocol: proto, Endpoints: []string{rb.addr()}}
		for name, edit := range map[string]func(r *http.Request){
			"SP in method":       func(r *http.Request) { r.Method = "GET /admin" },
			"SP in target":       func(r *http.Request) { r.RequestURI = "/api /admin" },
			"TAB in Host":        func(r *http.Request) { r.Host = "app.test\t/admin" },
			"userinfo in Host":   func(r *http.Request) { r.Host = "evil@app.test" },
			"non-ASCII in path":  func(r *http.Request) { r.RequestURI = "/caf\xc3\xa9" },
			"slash in rewritten": nil,
		} {
			var o *ForwardOptions
			if edit == nil {
				o = &ForwardOptions{Host: "app.test/admin"}
			}
			r := httptest.NewRequest("GET", "/api", nil)
			r.Host = "app.test"
			if edit != nil {
				edit(r)
			}
			w := httptest.NewRecorder()
			if out := tr.ForwardWith(w, r, b, o); out.Status != http.StatusBadRequest || w.Code != http.StatusBadRequest {
				t.Errorf("%s, %s: outcome %d, response %d, want 400", proto, name, out.Status, w.Code)
			}
		}
	}
	if n := received.Load(); n != 0 {
		t.Errorf("the backend received %d bytes", n)
	}
}
