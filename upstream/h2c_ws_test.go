package upstream

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

func TestForwardH2C(t *testing.T) {
	be := startH2CBackend(t, http.HandlerFunc(echoHandler))
	tr := newTestTransport(t, Config{})
	b := &Backend{Name: "ns/grpc:80", Protocol: H2C, Endpoints: []string{be.addr()}}
	p := startProxy(t, tr, b, true)

	tests := []struct {
		name, method, path string
		body               io.Reader
		wantBody           string
	}{
		{"GET", "GET", "/a?b=c", nil, ""},
		{"escaped path", "GET", "/enc%2Fpath/%7Eu?q=%41&r", nil, ""},
		{"POST fixed", "POST", "/p", strings.NewReader("h2c body"), "h2c body"},
		{"POST chunked", "POST", "/p", onlyReader{strings.NewReader("streamed")}, "streamed"},
		{"large", "GET", "/large", nil, string(largeBody)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, p.URL+tc.path, tc.body)
			req.Header.Set("User-Agent", "")
			c := p.client()
			c.Transport.(*http.Transport).DisableCompression = true
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := readAll(t, resp.Body); got != tc.wantBody {
				t.Errorf("body len %d, want %d", len(got), len(tc.wantBody))
			}
			if resp.StatusCode != 200 {
				t.Errorf("status = %d", resp.StatusCode)
			}
			if g := resp.Header.Get("X-Got-Proto"); g != "HTTP/2.0" {
				t.Errorf("backend proto = %q, want HTTP/2.0", g)
			}
			if g := resp.Header.Get("X-Got-URI"); g != tc.path {
				t.Errorf("backend URI = %q, want %q", g, tc.path)
			}
			for _, k := range []string{"X-Got-User-Agent", "X-Got-Accept-Encoding"} {
				if g := resp.Header.Get(k); g != "" {
					t.Errorf("%s = %q: the proxy added a header", k, g)
				}
			}
		})
	}

	t.Run("refused then retried", func(t *testing.T) {
		b2 := &Backend{Name: "ns/grpc:80", Protocol: H2C, Endpoints: []string{closedPort(t), be.addr()}}
		p2 := startProxy(t, tr, b2, false)
		resp, err := p2.client().Get(p2.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status = %d, want 200", resp.StatusCode)
		}
	})
	t.Run("refused", func(t *testing.T) {
		b3 := &Backend{Name: "ns/grpc:80", Protocol: H2C, Endpoints: []string{closedPort(t)}}
		p3 := startProxy(t, tr, b3, false)
		resp, err := p3.client().Get(p3.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 502 || body != "502 Bad Gateway: cannot connect to backend ns/grpc:80\n" {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
	})
}

func TestForwardH2CHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	be := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	tr := newTestTransport(t, Config{ResponseHeaderTimeout: 200 * time.Millisecond})
	p := startProxy(t, tr, &Backend{Name: "ns/slow:80", Protocol: H2C, Endpoints: []string{be.addr()}}, false)
	resp, err := p.client().Get(p.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 504 {
		t.Errorf("status = %d, want 504", resp.StatusCode)
	}
}

// startWebSocketProxy starts a WebSocket echo backend and a TLS proxy in
// front of it, and returns a client config for the proxy.
func startWebSocketProxy(t *testing.T, tr *Transport) *websocket.Config {
	t.Helper()
	be := startBackend(t, websocket.Handler(func(ws *websocket.Conn) { _, _ = io.Copy(ws, ws) }))
	p := startProxy(t, tr, &Backend{Name: "ns/ws:80", Endpoints: []string{be.addr()}}, true)
	cfg, err := websocket.NewConfig("wss"+strings.TrimPrefix(p.URL, "https")+"/ws", "https://origin.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TlsConfig = tlsClientConfig(p.Server)
	return cfg
}

func TestWebSocketEcho(t *testing.T) {
	tr := newTestTransport(t, Config{})
	cfg := startWebSocketProxy(t, tr)
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetDeadline(time.Now().Add(safety))
	for _, msg := range []string{"hello", "world", strings.Repeat("x", 100<<10)} {
		if _, err := ws.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		// The echo server may split a large message into several frames:
		// read the stream, not one message.
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(ws, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Fatalf("echo differs (len %d)", len(msg))
		}
	}
}

func TestCloseEndsTunnelsWithoutLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	tr := NewTransport(Config{Logger: quietLogger()})
	func() {
		cfg := startWebSocketProxyNoCleanup(t, tr)
		defer cfg.cleanup()
		ws, err := websocket.DialConfig(cfg.Config)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		_ = ws.SetDeadline(time.Now().Add(safety))
		if err := websocket.Message.Send(ws, "ping"); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil || got != "ping" {
			t.Fatalf("echo = %q, %v", got, err)
		}
		// Leave a pooled HTTP/1.1 connection and an h2c connection behind.
		for _, u := range []string{cfg.http1URL, cfg.h2cURL} {
			resp, err := cfg.client.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: status %d", u, resp.StatusCode)
			}
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		// The tunnel is gone: the client sees its connection end.
		if err := websocket.Message.Receive(ws, &got); err == nil {
			t.Fatal("tunnel still open after Close")
		}
	}()
	deadline := time.Now().Add(safety)
	for {
		runtime.GC()
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after Close\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type wsFixture struct {
	*websocket.Config
	client           *http.Client
	http1URL, h2cURL string
	cleanup          func()
}

// startWebSocketProxyNoCleanup is startWebSocketProxy with servers that are
// shut down before the goroutine count is taken, not at test end.
func startWebSocketProxyNoCleanup(t *testing.T, tr *Transport) wsFixture {
	mux := http.NewServeMux()
	mux.Handle("/ws", websocket.Handler(func(ws *websocket.Conn) { _, _ = io.Copy(ws, ws) }))
	mux.HandleFunc("/", echoHandler)
	be := httptest.NewUnstartedServer(mux)
	be.Config.Protocols = plainAndH2C()
	be.Start()
	b := &Backend{Name: "ns/ws:80", Endpoints: []string{be.Listener.Addr().String()}}
	bh2c := &Backend{Name: "ns/h2c:80", Protocol: H2C, Endpoints: b.Endpoints}
	p := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/h2c" {
			tr.Forward(w, r, bh2c)
			return
		}
		tr.Forward(w, r, b)
	}))
	cfg, err := websocket.NewConfig("wss"+strings.TrimPrefix(p.URL, "https")+"/ws", "https://origin.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TlsConfig = tlsClientConfig(p)
	return wsFixture{Config: cfg, client: p.Client(), http1URL: p.URL + "/plain", h2cURL: p.URL + "/h2c", cleanup: func() {
		p.CloseClientConnections()
		p.Close()
		be.CloseClientConnections()
		be.Close()
		p.Client().CloseIdleConnections()
	}}
}
