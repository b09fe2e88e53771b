package routing

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"portico.dev/portico/upstream"
)

// lockedBuffer collects log output written from server goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records decodes the JSON access log records written so far.
func (b *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// TestAccessLog sends real HTTP/1.1 traffic through the handler with the
// access log on: a plain response, a request target that is cleaned before
// routing (logged as sent), a streamed response (every byte counted, each
// chunk still flushed) and a WebSocket-style upgrade through the counting
// writer, and a request no route takes.
func TestAccessLog(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/app/stream":
			for i := range 3 {
				fmt.Fprintf(w, "chunk %d\n", i)
				w.(http.Flusher).Flush()
			}
		case "/app/upgrade":
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			_ = brw.Flush()
			line, _ := brw.ReadString('\n')
			_, _ = io.WriteString(conn, line)
		default:
			_, _ = io.WriteString(w, "hello")
		}
	}))
	t.Cleanup(be.Close)
	backend := &upstream.Backend{Name: "shop/app:80", Endpoints: []string{be.Listener.Addr().String()}}
	route := &Route{PathKind: PathPrefix, Path: "/app", Backend: backend,
		Source: Source{Kind: "Ingress", Namespace: "shop", Name: "app", Rule: "0/0"}}
	table, _ := compileHosts(ingressHosts, []*Route{route}, nil)

	logger := slog.New(slog.DiscardHandler)
	tr := upstream.NewTransport(upstream.Config{Logger: logger, AllowedUpgrades: []string{"echo"}})
	t.Cleanup(func() { _ = tr.Close() })
	var out lockedBuffer
	gw := httptest.NewServer(NewHandler(HandlerConfig{
		Table: func() *Table { return table }, Forwarder: tr, Logger: logger,
		AccessLog: slog.New(slog.NewJSONHandler(&out, nil)),
	}))
	t.Cleanup(gw.Close)

	c := noRedirects()
	for _, target := range []string{"/app/hello", "/app/x/../hello", "/app/stream", "/elsewhere"} {
		resp, err := c.Get(gw.URL + target)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	conn, err := net.DialTimeout("tcp", gw.Listener.Addr().String(), safety)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(safety))
	_, _ = io.WriteString(conn, "GET /app/upgrade HTTP/1.1\r\nHost: shop.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping\n")
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	if !strings.Contains(status, "101") {
		t.Fatalf("upgrade answered %q", status)
	}
	for line, _ := br.ReadString('\n'); line != "\r\n" && line != ""; line, _ = br.ReadString('\n') {
	}
	if echoed, _ := br.ReadString('\n'); echoed != "ping\n" {
		t.Errorf("through the tunnel: %q", echoed)
	}
	conn.Close()

	var recs []map[string]any
	for deadline := time.Now().Add(safety); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if recs = out.records(t); len(recs) == 5 {
			break
		}
	}
	if len(recs) != 5 {
		t.Fatalf("%d access log records, want 5: %v", len(recs), recs)
	}
	want := []struct {
		uri    string
		status float64
		bytes  float64
		route  string
	}{
		{"/app/hello", 200, 5, "Ingress shop/app"},
		{"/app/x/../hello", 200, 5, "Ingress shop/app"},
		{"/app/stream", 200, float64(len("chunk 0\nchunk 1\nchunk 2\n")), "Ingress shop/app"},
		{"/elsewhere", 404, -1, ""},
		{"/app/upgrade", 101, 0, "Ingress shop/app"},
	}
	for i, w := range want {
		rec := recs[i]
		if rec["msg"] != "request" || rec["uri"] != w.uri || rec["status"] != w.status || rec["method"] != "GET" {
			t.Errorf("record %d: %v, want uri %s status %v", i, rec, w.uri, w.status)
		}
		if w.bytes >= 0 && rec["bytes"] != w.bytes {
			t.Errorf("record %d (%s): bytes %v, want %v", i, w.uri, rec["bytes"], w.bytes)
		}
		if got := fmt.Sprint(rec["route"]); w.route == "" && got != "" || !strings.HasPrefix(got, w.route) {
			t.Errorf("record %d (%s): route %v, want %s", i, w.uri, rec["route"], w.route)
		}
		if d, ok := rec["duration"].(float64); !ok || d < 0 {
			t.Errorf("record %d: duration %v", i, rec["duration"])
		}
		if rec["remote"] == "" || rec["proto"] != "HTTP/1.1" || rec["user_agent"] == nil {
			t.Errorf("record %d: remote %v, proto %v, user_agent %v", i, rec["remote"], rec["proto"], rec["user_agent"])
		}
	}
}

// TestNoAccessLog: a route with NoAccessLog (enable-access-log false) writes
// no record; the other routes still do.
func TestNoAccessLog(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") }))
	t.Cleanup(be.Close)
	backend := &upstream.Backend{Name: "shop/app:80", Endpoints: []string{be.Listener.Addr().String()}}
	quiet := &Route{PathKind: PathPrefix, Path: "/quiet", Backend: backend, NoAccessLog: true,
		Source: Source{Kind: "Ingress", Namespace: "shop", Name: "quiet", Rule: "0/0"}}
	loud := &Route{PathKind: PathPrefix, Path: "/loud", Backend: backend,
		Source: Source{Kind: "Ingress", Namespace: "shop", Name: "loud", Rule: "0/0"}}
	table, _ := compileHosts(ingressHosts, []*Route{quiet, loud}, nil)
	logger := slog.New(slog.DiscardHandler)
	tr := upstream.NewTransport(upstream.Config{Logger: logger})
	t.Cleanup(func() { _ = tr.Close() })
	var out lockedBuffer
	gw := httptest.NewServer(NewHandler(HandlerConfig{
		Table: func() *Table { return table }, Forwarder: tr, Logger: logger,
		AccessLog: slog.New(slog.NewJSONHandler(&out, nil)),
	}))
	t.Cleanup(gw.Close)
	c := noRedirects()
	for _, target := range []string{"/quiet/a", "/loud/b", "/quiet/c"} {
		resp, err := c.Get(gw.URL + target)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// ServeHTTP logs before it returns, so the last response's record, if
	// any, is written once the next request is answered.
	if recs := out.records(t); len(recs) != 1 || recs[0]["uri"] != "/loud/b" {
		t.Errorf("access log records %v, want only /loud/b's", recs)
	}
}
