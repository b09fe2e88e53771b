package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/http1"
)

// The event loops serve the common HTTPS/1.1 request and give everything
// else to the goroutine engine; these cases drive each way through the
// whole gateway and check the answer is the same as without loops.
func TestEventLoops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("event loops are Linux only")
	}
	e := startEnv(t)
	c := e.http1Client()
	get := func(t *testing.T, url string) (int, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}

	t.Run("served on the loop", func(t *testing.T) {
		before := http1.EventLoopCounts()
		for i := range 20 {
			code, body := get(t, "https://app.example.test/api/x")
			if code != 200 || !strings.HasPrefix(body, "app GET /api/x") || !strings.Contains(body, "xff=127.0.0.1 proto=https") {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
		}
		if got := http1.EventLoopCounts().Served - before.Served; got < 20 {
			t.Errorf("loops served %d of 20 requests", got)
		}
		// A request that closes its connection: the loop holds the
		// response back and sends it with the TLS close_notify; the
		// client gets all of it, then the end of the stream.
		for i := range 3 {
			tc := e.dialHTTPS("app.example.test")
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(tc, "GET /api/close-me HTTP/1.1\r\nHost: app.example.test\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			all, err := io.ReadAll(tc)
			if err != nil {
				t.Fatalf("close %d: %v after %q", i, err, all)
			}
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(all))), nil)
			if err != nil {
				t.Fatalf("close %d: %v in %q", i, err, all)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !resp.Close || !strings.HasPrefix(string(body), "app GET /api/close-me") {
				t.Errorf("close %d: %d close=%v %q", i, resp.StatusCode, resp.Close, body)
			}
		}
		if got := http1.EventLoopCounts().Served - before.Served; got < 23 {
			t.Errorf("loops served %d of 23 requests", got)
		}
		mresp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + e.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metricsBody, _ := io.ReadAll(mresp.Body)
		mresp.Body.Close()
		metricsText := string(metricsBody)
		for _, outcome := range []string{"served", "handed_off", "continued"} {
			if !strings.Contains(metricsText, `portico_http1_event_loop_requests_total{outcome="`+outcome+`"}`) {
				t.Errorf("/metrics lacks the event loops' %s count", outcome)
			}
		}
	})

	t.Run("a body goes to the goroutine engine", func(t *testing.T) {
		before := http1.EventLoopCounts()
		resp, err := c.Post("https://app.example.test/api/upload", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "app POST /api/upload") {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if http1.EventLoopCounts().HandedOff == before.HandedOff {
			t.Error("the request with a body was not handed off")
		}
	})

	t.Run("pipelined requests are answered in order", func(t *testing.T) {
		conn := e.dialHTTPS("app.example.test")
		defer conn.Close()
		req := "GET /api/one HTTP/1.1\r\nHost: app.example.test\r\n\r\nGET /api/two HTTP/1.1\r\nHost: app.example.test\r\n\r\n"
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		for _, want := range []string{"app GET /api/one", "app GET /api/two"} {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if !strings.HasPrefix(string(body), want) {
				t.Errorf("got %q, want %q", body, want)
			}
		}
	})

	t.Run("responses the loop does not finish", func(t *testing.T) {
		// A chunked answer, a slow one and one too large for the loop's
		// buffer are finished by a goroutine; a pooled connection the
		// backend closed is replaced.
		rb := startRawBackend(t, func(rc *rawConn) {
			for {
				req, _, err := rc.readRequest()
				if err != nil {
					return
				}
				switch req.URL.Path {
				case "/api/chunked":
					io.WriteString(rc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
				case "/api/slow":
					time.Sleep(1500 * time.Millisecond)
					io.WriteString(rc, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
				case "/api/large":
					body := strings.Repeat("x", 100<<10)
					io.WriteString(rc, "HTTP/1.1 200 OK\r\nContent-Length: 102400\r\n\r\n"+body)
				case "/api/close":
					io.WriteString(rc, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclose")
					return // closes the connection the gateway keeps
				default:
					io.WriteString(rc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}
		})
		e.routeApp(rb.port())
		before := http1.EventLoopCounts()
		for _, tc := range []struct{ path, want string }{
			{"/api/chunked", "hello"},
			{"/api/slow", "slow"},
			{"/api/large", strings.Repeat("x", 100<<10)},
			{"/api/close", "close"},
			{"/api/after-close", "ok"},
			{"/api/after-close", "ok"},
		} {
			// A new client each time: a connection handed to a goroutine
			// stays there.
			c := e.http1Client()
			resp, err := c.Get("https://app.example.test" + tc.path)
			if err != nil {
				t.Fatalf("%s: %v", tc.path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != tc.want {
				t.Errorf("%s: %d %q", tc.path, resp.StatusCode, firstLine(string(body)))
			}
		}
		if n := http1.EventLoopCounts().Continued - before.Continued; n < 3 {
			t.Errorf("%d exchanges were continued on a goroutine, want at least 3", n)
		}
	})
}

// A head trickled a line at a time gets the header timeout from its first
// byte on a loop too, not from its latest.
func TestEventLoopHeadTimeout(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("event loops are Linux only")
	}
	e := startEnv(t, "--read-header-timeout", "1s")
	conn := e.dialHTTPS("app.example.test")
	defer conn.Close()
	// A complete request first, so the connection is on a loop and idle.
	br := bufio.NewReader(conn)
	if resp, _ := exchange(t, conn, br, "GET /api/first HTTP/1.1\r\nHost: app.example.test\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	if _, err := conn.Write([]byte("GET /api/slow HTTP/1.1\r\nHost: app.example.test\r\n")); err != nil {
		t.Fatal(err)
	}
	// Five seconds of trickling, five times the timeout: the gateway must
	// close the connection well before.
	for i := range 20 {
		time.Sleep(250 * time.Millisecond)
		if _, err := fmt.Fprintf(conn, "X-Trickle-%d: x\r\n", i); err != nil {
			return // closed
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := br.ReadByte(); err != nil && !isTimeout(err) {
			return // closed
		}
	}
	t.Fatal("the connection was still open after 5s of a trickled head with a 1s header timeout")
}
