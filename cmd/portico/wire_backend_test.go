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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"portico.dev/portico/upstream"
)

// These tests hold the backend leg: what a pooled backend connection may
// carry, how much of a response head is read, what happens to requests when
// a backend restarts, and how many connections a client can make the
// gateway open.

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

// An HTTP/2 client that opens streams and resets them at once (rapid
// reset) must not make the gateway open a backend connection per stream.
// Go's HTTP/2 server does not end such a connection by itself: it only
// answers ENHANCE_YOUR_CALM when more than 4×MaxConcurrentStreams reset
// streams wait for a handler, and Portico's handlers return at once; the
// GOAWAYs seen are logged.
func TestWireBackendRapidResetBoundsBackendConnects(t *testing.T) {
	e := startEnv(t)
	var accepts atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A backend that answers only when the gateway gives up on the
	// request, so every stream is reset while its exchange is in progress
	// and no connection goes back to the pool, however slow the run.
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			_, _ = io.WriteString(w, "ok")
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				accepts.Add(1)
			}
		},
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	e.routeApp(portOf(ln.Addr().String()))

	const conns, batches, batch = 2, 20, 100
	start := time.Now()
	var goaways atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			flood(t, e, batches, batch, &goaways)
		}()
	}
	wg.Wait()
	n := accepts.Load()
	elapsed := time.Since(start)
	t.Logf("%d client connections, %d rapid-reset streams each, in %s: %d backend connects, %d GOAWAYs", conns, batches*batch, elapsed, n, goaways.Load())
	// Each client connection may waste its burst of dials and then the
	// rate for as long as the flood lasted; a few more connects cover
	// dials in flight when the count is read.
	bound := conns*(upstream.DefaultClientDialBurst+int64(upstream.DefaultClientDialRate*elapsed.Seconds())+1) + 8
	if n > bound {
		t.Errorf("%d backend connects for %d reset streams, want at most %d", n, conns*batches*batch, bound)
	}
}

// A client connection that resets streams faster than any browser is
// closed: the flood cannot go on for as long as its client likes.
func TestWireResetFloodClosesClientConnection(t *testing.T) {
	e := startEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	e.routeApp(portOf(ln.Addr().String()))

	const batches, batch = 20, 50
	var goaways atomic.Int64
	resets, cut := flood(t, e, batches, batch, &goaways)
	t.Logf("%d streams reset before the connection ended (cut %v)", resets, cut)
	if !cut {
		t.Fatalf("the gateway kept a connection that reset %d streams", resets)
	}
	// The limit, plus the batch in flight when it was reached.
	if limit := upstream.DefaultHTTP2ResetLimit + 2*batch; resets > limit {
		t.Errorf("%d streams reset before the connection was closed, want at most %d", resets, limit)
	}
}

// flood opens one HTTP/2 connection and sends batches of streams: the
// HEADERS of a batch, a PING whose answer shows the server has read them
// and started their handlers, then a RST_STREAM for each. It stops early
// when the server ends the connection, and reports how many streams it
// reset and whether the server ended the connection.
func flood(t *testing.T, e *env, batches, batch int, goaways *atomic.Int64) (resets int, cut bool) {
	cfg := e.tlsConfig("app.example.test")
	cfg.NextProtos = []string{"h2"}
	c, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.https, cfg)
	if err != nil {
		t.Error(err)
		return 0, false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Error(err)
		return 0, false
	}
	var wmu sync.Mutex
	fr := http2.NewFramer(c, c)
	_ = fr.WriteSettings()

	// Read whatever the server sends, acknowledging its settings and
	// passing on PING answers, until it ends the connection.
	pong := make(chan struct{}, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		rf := http2.NewFramer(nil, c)
		for {
			f, err := rf.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					wmu.Lock()
					_ = fr.WriteSettingsAck()
					wmu.Unlock()
				}
			case *http2.PingFrame:
				if f.IsAck() {
					pong <- struct{}{}
				}
			case *http2.GoAwayFrame:
				goaways.Add(1)
				return
			}
		}
	}()
	write := func(f func() error) bool {
		wmu.Lock()
		defer wmu.Unlock()
		return f() == nil
	}

	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	id := uint32(1)
	for range batches {
		first := id
		for range batch {
			hb.Reset()
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "app.example.test"}, {":path", "/api/reset"}} {
				_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			if !write(func() error {
				return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
			}) {
				return resets, true // the server closed the connection
			}
			id += 2
		}
		if !write(func() error { return fr.WritePing(false, [8]byte{1}) }) {
			return resets, true
		}
		select {
		case <-pong:
		case <-ended:
			return resets, true
		}
		for s := first; s < id; s += 2 {
			if !write(func() error { return fr.WriteRSTStream(s, http2.ErrCodeCancel) }) {
				return resets, true
			}
			resets++
		}
	}
	// A last round trip lets a GOAWAY the flood provoked arrive.
	if write(func() error { return fr.WritePing(false, [8]byte{2}) }) {
		select {
		case <-pong:
		case <-ended:
		}
	}
	return resets, isEnded(ended)
}

// isEnded reports whether ch is closed.
func isEnded(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
