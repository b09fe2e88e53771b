package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests hold the backend leg: what a pooled backend connection may
// carry, how much of a response head is read and what happens to requests
// when a backend restarts.

// answer writes a complete response whose body is body.
func answer(c net.Conn, body string) {
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// A backend that sends bytes after a complete response, or answers a HEAD
// with a body, must not shift the responses of later requests onto other
// clients: the connection it sent them on is never reused.
func TestWireBackendExtraBytesNeverReachAnotherClient(t *testing.T) {
	const smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nSMUGGLED!"
	cases := []struct {
		name   string
		first  string           // the first client's request
		answer func(c net.Conn) // the backend's answer to it, before the late bytes
	}{
		{
			name:   "late second response",
			first:  "GET /api/first HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
			answer: func(c net.Conn) { answer(c, "first") },
		},
		{
			name:  "HEAD answered with a body",
			first: "HEAD /api/first HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
			answer: func(c net.Conn) {
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(smuggled))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t)
			late, wrote := make(chan struct{}), make(chan struct{})
			rb := startRawBackend(t, func(c *rawConn) {
				for {
					req, _, err := c.readRequest()
					if err != nil {
						return
					}
					if req.URL.Path != "/api/first" {
						answer(c, "own answer to "+req.URL.Path)
						continue
					}
					tc.answer(c)
					// The late bytes follow once the first client has its
					// answer, when the connection sits idle in the pool.
					select {
					case <-late:
					case <-time.After(10 * time.Second):
						return
					}
					_, _ = io.WriteString(c, smuggled)
					close(wrote)
				}
			})
			e.routeApp(rb.port())

			a := e.dialHTTPS("app.example.test")
			resp, _ := exchange(t, a, bufio.NewReader(a), tc.first)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("first request: status %d", resp.StatusCode)
			}
			close(late)
			<-wrote

			b := e.dialHTTPS("app.example.test")
			bbr := bufio.NewReader(b)
			for i := range 3 {
				path := fmt.Sprintf("/api/second/%d", i)
				resp, body := exchange(t, b, bbr, "GET "+path+" HTTP/1.1\r\nHost: app.example.test\r\n\r\n")
				if want := "own answer to " + path; resp.StatusCode != http.StatusOK || body != want {
					t.Fatalf("another client's request %d got %d %q, want 200 %q", i, resp.StatusCode, body, want)
				}
			}
		})
	}
}

// A backend's response head is read up to a bound: above it the client
// gets a 502, not the head, and the backend connection is closed.
func TestWireBackendResponseHeadIsBounded(t *testing.T) {
	cases := []struct {
		name string
		head string
	}{
		{"2 MiB header field", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\nContent-Length: 2\r\n\r\nok"},
		{"2 MiB of header fields", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Many: aaaaaaaaaaaaaaaaaaaaaaaa\r\n", 2<<20/34) + "Content-Length: 2\r\n\r\nok"},
		{"a thousand 1xx responses", strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n", 1000) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t)
			closed := make(chan error, 1)
			rb := startRawBackend(t, func(c *rawConn) {
				if _, _, err := c.readRequest(); err != nil {
					return
				}
				go func() { _, _ = io.WriteString(c, tc.head) }()
				// The gateway must hang up rather than wait for more.
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err := c.br.ReadByte()
				closed <- err
			})
			e.routeApp(rb.port())

			a := e.dialHTTPS("app.example.test")
			_ = a.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(a, "GET /api/x HTTP/1.1\r\nHost: app.example.test\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			// Count what the client is sent, head included.
			counted := &countingReader{r: a}
			cbr := bufio.NewReader(counted)
			resp, err := http.ReadResponse(cbr, nil)
			for err == nil && resp.StatusCode < 200 && counted.n < 1<<20 {
				resp, err = http.ReadResponse(cbr, nil)
			}
			if err != nil {
				t.Fatalf("reading the response: %v", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("status %d, want 502", resp.StatusCode)
			}
			if counted.n > 64<<10 {
				t.Errorf("the client was sent %d bytes for a 502", counted.n)
			}
			if err := <-closed; err == nil || isTimeout(err) {
				t.Errorf("the backend connection was not closed: %v", err)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// A backend restarted on the same port leaves the pool full of connections
// it closed; no request, whatever its method, may fail for that.
func TestWireBackendRestartKeepsPOSTsWorking(t *testing.T) {
	e := startEnv(t)
	const warm = 8
	var arrived sync.WaitGroup
	arrived.Add(warm)
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/warm" {
			// Hold every warming request until all have arrived, so each
			// gets a connection of its own.
			arrived.Done()
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	first := &http.Server{Handler: handler}
	go func() { _ = first.Serve(ln) }()
	t.Cleanup(func() { _ = first.Close() })
	e.routeApp(portOf(addr))

	c := e.http1Client()
	var wg sync.WaitGroup
	for range warm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get("https://app.example.test/api/warm")
			if err != nil {
				t.Errorf("warming: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	arrived.Wait()
	close(release)
	wg.Wait()

	// The backend restarts: its idle connections are closed, and a new
	// process listens on the same port.
	_ = first.Close()
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	second := &http.Server{Handler: handler}
	go func() { _ = second.Serve(ln2) }()
	t.Cleanup(func() { _ = second.Close() })

	failed := 0
	for i := range 8 {
		body := fmt.Sprintf("order %d", i)
		resp, err := c.Post("https://app.example.test/api/orders", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "POST /api/orders " + body; resp.StatusCode != http.StatusOK || string(got) != want {
			failed++
			t.Logf("POST %d: %d %q", i, resp.StatusCode, got)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 8 POSTs failed after the backend restarted", failed)
	}
}
