package main

import (
	stdtls "crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// errorPageRequest is what an error backend received.
type errorPageRequest struct {
	method, uri string
	header      http.Header
}

// startErrorPages is an ingress-nginx style error backend: it answers with
// the status X-Code names, as ingress-nginx's own does, except 410 for a
// 404 (its own choice, which the client must get), with a page naming the
// headers it got.
func startErrorPages(t *testing.T) (port string, seen chan errorPageRequest) {
	t.Helper()
	seen = make(chan errorPageRequest, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- errorPageRequest{r.Method, r.RequestURI, r.Header.Clone()}:
		default:
		}
		w.Header().Set("X-Error-Page", "yes")
		code, _ := strconv.Atoi(r.Header.Get("X-Code"))
		if code == http.StatusNotFound {
			code = http.StatusGone
		}
		if code >= 200 && code <= 599 {
			w.WriteHeader(code)
		}
		fmt.Fprintf(w, "error page code=%s uri=%s format=%s", r.Header.Get("X-Code"), r.Header.Get("X-Original-URI"), r.Header.Get("X-Format"))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Port(), seen
}

// startFailingApp answers /secret with 503, a secret body and a cookie,
// /teapot with 418 and anything else with 200 and a cookie.
func startFailingApp(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "session=leaked")
		w.Header().Set("X-Original", "yes")
		switch r.URL.Path {
		case "/secret":
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "SECRET-STACK-TRACE "+strings.Repeat("x", 100<<10))
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, "not here")
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
			fmt.Fprint(w, "short and stout")
		default:
			fmt.Fprint(w, "all fine")
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Port()
}

func TestNginxCustomHTTPErrors(t *testing.T) {
	e := startEnv(t)
	errPort, seen := startErrorPages(t)
	appPort := startFailingApp(t)
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", appPort)+"---\n"+manifestService("errpages", errPort))
		e.write("nginx.yaml", strings.Join([]string{
			nginxIngress("errs", "errs.apps.example.test", "/", "Prefix", "",
				map[string]string{"custom-http-errors": "404,503", "default-backend": "errpages"}),
			nginxIngress("errs-fallback", "fb.apps.example.test", "/", "Prefix", "",
				map[string]string{"custom-http-errors": "503"}),
		}, "---\n"))
	})

	for _, client := range []struct {
		name   string
		c      *http.Client
		scheme string
	}{
		{"HTTPS/1.1", e.http1Client(), "https"},
		{"plain HTTP/1.1", e.http1Client(), "http"},
		{"HTTP/2", e.http2Client(), "https"},
	} {
		t.Run(client.name, func(t *testing.T) {
			base := client.scheme + "://errs.apps.example.test"
			h := http.Header{"Accept": {"application/json"}, "X-Request-Id": {"req-42"}}
			resp, body := do(t, client.c, "GET", base+"/secret?q=1", h, "")
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503 (%.80q)", resp.StatusCode, body)
			}
			if want := "error page code=503 uri=/secret?q=1 format=application/json"; body != want {
				t.Errorf("body %.80q, want %q", body, want)
			}
			if strings.Contains(body, "SECRET") || resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Original") != "" {
				t.Errorf("the original response leaked: headers %v", resp.Header)
			}
			if resp.Header.Get("X-Error-Page") != "yes" {
				t.Errorf("the error backend's headers were not passed: %v", resp.Header)
			}
			select {
			case got := <-seen:
				want := map[string]string{"X-Code": "503", "X-Original-Uri": "/secret?q=1", "X-Format": "application/json",
					"X-Namespace": "default", "X-Ingress-Name": "errs", "X-Service-Name": "echo", "X-Service-Port": "80", "X-Request-Id": "req-42"}
				for k, v := range want {
					if got.header.Get(k) != v {
						t.Errorf("error backend got %s=%q, want %q", k, got.header.Get(k), v)
					}
				}
				if got.method != "GET" || got.uri != "/" {
					t.Errorf("error backend asked %s %s, want GET /", got.method, got.uri)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the error backend was not asked")
			}

			resp, body = do(t, client.c, "GET", base+"/ok", nil, "")
			if resp.StatusCode != 200 || body != "all fine" || resp.Header.Get("Set-Cookie") != "session=leaked" {
				t.Errorf("a 200 was changed: %d %q %v", resp.StatusCode, body, resp.Header)
			}
			// The error backend's own status goes to the client, as nginx
			// passes it.
			resp, body = do(t, client.c, "GET", base+"/missing", nil, "")
			if resp.StatusCode != http.StatusGone || !strings.HasPrefix(body, "error page code=404") {
				t.Errorf("the error backend's own status: %d %.80q, want 410 and its page", resp.StatusCode, body)
			}
			select {
			case <-seen:
			case <-time.After(5 * time.Second):
				t.Fatal("the error backend was not asked for the 404")
			}
			resp, body = do(t, client.c, "GET", base+"/teapot", nil, "")
			if resp.StatusCode != http.StatusTeapot || body != "short and stout" {
				t.Errorf("an unlisted code was changed: %d %q", resp.StatusCode, body)
			}

			resp, _ = do(t, client.c, "HEAD", base+"/secret", nil, "")
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Error-Page") != "yes" || resp.Header.Get("Set-Cookie") != "" {
				t.Errorf("HEAD: %d %v", resp.StatusCode, resp.Header)
			}
			select {
			case got := <-seen:
				if got.method != "HEAD" {
					t.Errorf("error backend asked with %s for a HEAD request", got.method)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the error backend was not asked for HEAD")
			}

			// Without default-backend, the fallback Service serves the page.
			resp, body = do(t, client.c, "GET", client.scheme+"://fb.apps.example.test/secret", nil, "")
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(body, "legacy GET / ") || resp.Header.Get("Set-Cookie") != "" {
				t.Errorf("fallback error page: %d %.80q %v", resp.StatusCode, body, resp.Header)
			}
		})
	}

	// An error backend that does not answer: the original status with a
	// body of Portico's own, still nothing of the original.
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", appPort)+"---\n"+manifestService("errpages", closedPort(t)))
	})
	resp, body := do(t, e.http1Client(), "GET", "https://errs.apps.example.test/secret", nil, "")
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "SECRET") || resp.Header.Get("Set-Cookie") != "" ||
		!strings.Contains(body, "error page service did not answer") {
		t.Errorf("error backend down: %d %.80q %v", resp.StatusCode, body, resp.Header)
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u, _ := url.Parse(srv.URL)
	srv.Close()
	return u.Port()
}

// A WebSocket upgrade (101) on a route with custom-http-errors is never
// intercepted: the tunnel works as on any route.
func TestNginxCustomHTTPErrorsWebSocket(t *testing.T) {
	e := startEnv(t)
	errPort, _ := startErrorPages(t)
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", e.app.port())+"---\n"+manifestService("errpages", errPort))
		e.write("nginx.yaml", nginxIngress("ws-errs", "ws.apps.example.test", "/", "Prefix", "",
			map[string]string{"custom-http-errors": "404,503", "default-backend": "errpages"}))
	})
	cfg, err := websocket.NewConfig("wss://ws.apps.example.test/ws", "https://ws.apps.example.test/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TlsConfig = e.tlsConfig("ws.apps.example.test")
	cfg.Dialer = &net.Dialer{Timeout: 5 * time.Second}
	raw, err := stdtls.DialWithDialer(cfg.Dialer, "tcp", e.https, cfg.TlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ws, err := websocket.NewClient(cfg, raw)
	if err != nil {
		t.Fatalf("WebSocket handshake through a custom-http-errors route: %v", err)
	}
	defer ws.Close()
	if err := websocket.Message.Send(ws, "hello"); err != nil {
		t.Fatal(err)
	}
	var got string
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := websocket.Message.Receive(ws, &got); err != nil || got != "hello" {
		t.Fatalf("echo %q (%v), want hello", got, err)
	}
}
