package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// startScriptedBackend answers each request by its X-Case header, counting
// the requests of each X-Sub apart: "503" answers 503 to the first two
// requests and 200 after, "close"
// closes the connection without a byte of response on the first request
// and answers 200 after, "always503" answers 503 every time. Every response
// closes its connection, so no exchange rides a pooled connection. It
// returns the port and the count of requests seen per X-Sub.
func startScriptedBackend(t *testing.T) (string, func(string) int) {
	var mu sync.Mutex
	seen := make(map[string]int)
	rb := startRawBackend(t, func(c *rawConn) {
		req, _, err := c.readRequest()
		if err != nil {
			return
		}
		kase := req.Header.Get("X-Sub")
		mu.Lock()
		seen[kase]++
		n := seen[kase]
		mu.Unlock()
		status := 200
		switch req.Header.Get("X-Case") {
		case "503":
			if n <= 2 {
				status = 503
			}
		case "always503":
			status = 503
		case "slow503":
			// The first answer comes after proxy-next-upstream-timeout.
			if n == 1 {
				time.Sleep(1500 * time.Millisecond)
				status = 503
			}
		case "close":
			if n == 1 {
				return
			}
		}
		body := fmt.Sprintf("try %d", n)
		fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status, http.StatusText(status), len(body), body)
	})
	return rb.port(), func(kase string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[kase]
	}
}

// TestNginxProxyNextUpstream: proxy-next-upstream retries the conditions
// it lists up to proxy-next-upstream-tries, never a POST that reached the
// backend unless non_idempotent is listed; without the annotation a
// backend's 503 and a connection closed before the response reach the
// client as they are.
func TestNginxProxyNextUpstream(t *testing.T) {
	e := startEnv(t)
	port, seen := startScriptedBackend(t)
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("nginx.yaml", strings.Join([]string{
			nginxIngress("retried", "retried.apps.example.test", "/", "Prefix", "", map[string]string{
				"proxy-next-upstream": "error timeout http_503", "proxy-next-upstream-tries": "3"}),
			nginxIngress("posts", "posts.apps.example.test", "/", "Prefix", "", map[string]string{
				"proxy-next-upstream": "error http_503 non_idempotent", "proxy-next-upstream-tries": "3"}),
			nginxIngress("plain", "plain.apps.example.test", "/", "Prefix", "", nil),
			nginxIngress("budget", "budget.apps.example.test", "/", "Prefix", "", map[string]string{
				"proxy-next-upstream": "http_503", "proxy-next-upstream-tries": "3", "proxy-next-upstream-timeout": "1"}),
		}, "---\n"))
	})
	for _, c := range []struct {
		name            string
		client          *http.Client
		scheme          string
		method, host    string
		kase            string
		status, backend int
	}{
		{"503 retried until 200", e.http1Client(), "http", "GET", "retried", "503", 200, 3},
		{"503 retried over HTTP/2", e.http2Client(), "https", "GET", "retried", "503", 200, 3},
		{"tries exhausted", e.http1Client(), "http", "GET", "retried", "always503", 503, 3},
		{"closed before the response retried (error)", e.http1Client(), "http", "GET", "retried", "close", 200, 2},
		{"POST not resent without non_idempotent", e.http1Client(), "http", "POST", "retried", "503", 503, 1},
		{"POST closed not resent without non_idempotent", e.http1Client(), "http", "POST", "retried", "close", 502, 1},
		{"POST resent with non_idempotent", e.http1Client(), "http", "POST", "posts", "503", 200, 3},
		{"no annotation: 503 passed", e.http1Client(), "http", "GET", "plain", "503", 503, 1},
		{"no annotation: closed answered 502", e.http1Client(), "http", "GET", "plain", "close", 502, 1},
		{"no retry past proxy-next-upstream-timeout", e.http1Client(), "http", "GET", "budget", "slow503", 503, 1},
		{"a slow 503 retried without a time budget", e.http1Client(), "http", "GET", "retried", "slow503", 200, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			host := c.host + ".apps.example.test"
			h := http.Header{"X-Case": {c.kase}, "X-Sub": {c.name}}
			var body string
			if c.method == "POST" {
				body = "payload"
			}
			resp, got := do(t, c.client, c.method, c.scheme+"://"+host+"/", h, body)
			if resp.StatusCode != c.status {
				t.Errorf("status %d (body %q), want %d", resp.StatusCode, got, c.status)
			}
			if n := seen(c.name); n != c.backend {
				t.Errorf("the backend saw %d requests, want %d", n, c.backend)
			}
		})
	}
}
