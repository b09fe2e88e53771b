package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

func TestHandlerText(t *testing.T) {
	tests := []struct {
		name    string
		backend string
		desc    string
		method  string
		target  string
		headers map[string]string
		want    string
	}{
		{
			name:    "through the gateway",
			backend: "app", desc: "the new component",
			method: http.MethodGet, target: "http://app.example.test/api/orders",
			headers: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https"},
			want:    "app: the new component answered GET /api/orders (host app.example.test, via 127.0.0.1, proto https)\n",
		},
		{
			name:    "legacy with a query and a proxy chain",
			backend: "legacy", desc: "the legacy site",
			method: http.MethodPost, target: "http://www.example.test/about?lang=en",
			headers: map[string]string{"X-Forwarded-For": "10.0.0.1, 127.0.0.1", "X-Forwarded-Proto": "http"},
			want:    "legacy: the legacy site answered POST /about?lang=en (host www.example.test, via 10.0.0.1, 127.0.0.1, proto http)\n",
		},
		{
			name:    "direct, without a proxy",
			backend: "legacy", desc: "the legacy site",
			method: http.MethodGet, target: "http://127.0.0.1:18082/",
			want: "legacy: the legacy site answered GET / (host 127.0.0.1:18082, via direct from 192.0.2.1, proto http)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			newHandler(tt.backend, tt.desc, slog.New(slog.DiscardHandler)).ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Errorf("status = %d", rec.Code)
			}
			if got := rec.Body.String(); got != tt.want {
				t.Errorf("body:\n got %q\nwant %q", got, tt.want)
			}
			if got := rec.Header().Get("X-Demo-Backend"); got != tt.backend {
				t.Errorf("X-Demo-Backend = %q", got)
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	rec := httptest.NewRecorder()
	newHandler("app", "the new component", slog.New(slog.DiscardHandler)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Errorf("healthz = %d %q", rec.Code, rec.Body.String())
	}
}

func TestWebSocketEcho(t *testing.T) {
	srv := httptest.NewServer(newHandler("app", "the new component", slog.New(slog.DiscardHandler)))
	defer srv.Close()

	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	ws, err := websocket.Dial(wsURL, "", srv.URL)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	if err := ws.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"hello", "second message"} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatalf("send: %v", err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil {
			t.Fatalf("receive: %v", err)
		}
		if got != msg {
			t.Errorf("echo = %q, want %q", got, msg)
		}
	}
}

func TestRunServesAndShutsDown(t *testing.T) {
	backends := []backend{
		{name: "app", description: "the new component", addr: "127.0.0.1:0"},
		{name: "legacy", description: "the legacy site", addr: "127.0.0.1:0"},
	}
	listeners, err := listen(backends)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, slog.New(slog.DiscardHandler), backends, listeners) }()

	client := &http.Client{Timeout: 10 * time.Second}
	for i, want := range []string{"app: ", "legacy: "} {
		// The listener is open, so the request queues until Serve runs.
		resp, err := client.Get("http://" + listeners[i].Addr().String() + "/x")
		if err != nil {
			t.Fatalf("backend %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if body := string(b); !strings.HasPrefix(body, want) {
			t.Errorf("backend %d answered %q, want prefix %q", i, body, want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v, want nil after shutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}
