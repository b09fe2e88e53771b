package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Timeouts once a request is under way. Each test shrinks the one timeout
// it exercises through its flag, so it ends quickly; the safety deadlines
// only stop a hang and are far longer than any timeout under test.

const wireSafety = 10 * time.Second

// closedWithin waits for ch, failing the test with what if it does not
// come within the safety deadline.
func closedWithin(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wireSafety):
		t.Fatalf("%s within %s", what, wireSafety)
	}
}

// readUntilClosed reads c until it fails, then closes done: the gateway
// closed (or reset) its side of the connection.
func readUntilClosed(c *rawConn, done chan<- struct{}) {
	_ = c.SetReadDeadline(time.Now().Add(2 * wireSafety))
	_, _ = io.Copy(io.Discard, c.br)
	close(done)
}

// cutOrEnded reports whether err is the end of a connection the gateway
// closed, as opposed to the test's own safety deadline passing.
func cutOrEnded(err error) bool {
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// A client that sends a head with Content-Length and then stalls its body
// gets 408 (or its connection closed), and the backend connection that
// waited for the body is closed.
func TestTimeoutClientBodyStalls(t *testing.T) {
	e := startEnv(t, "--client-body-timeout", "300ms")
	backendDone := make(chan struct{})
	rb := startRawBackend(t, func(c *rawConn) { readUntilClosed(c, backendDone) })
	e.routeApp(rb.port())

	conn := e.dialHTTPS("app.example.test")
	_ = conn.SetDeadline(time.Now().Add(wireSafety))
	if _, err := io.WriteString(conn, "POST /api/upload HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodPost})
	switch {
	case err == nil:
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("stalled request body: status %d, want 408", resp.StatusCode)
		}
	case !cutOrEnded(err):
		t.Fatalf("stalled request body: no answer and the connection still open: %v", err)
	}
	closedWithin(t, backendDone, "the backend connection waiting for the stalled body was not closed")
}

// A client that never reads a large response does not pin the backend
// connection: the send timeout cuts the client and the backend connection
// is closed.
func TestTimeoutClientNeverReads(t *testing.T) {
	e := startEnv(t, "--send-timeout", "300ms")
	rb, backendDone := startLargeResponseBackend(t)
	e.routeApp(rb.port())

	conn := e.dialHTTPS("app.example.test")
	if _, err := io.WriteString(conn, "GET /api/big HTTP/1.1\r\nHost: app.example.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing more.
	closedWithin(t, backendDone, "the backend connection of a response the client never reads was not released")
}

// A backend that sends its head and then stalls the body gets the client's
// response cut, and its connection closed.
func TestTimeoutBackendBodyStalls(t *testing.T) {
	e := startEnv(t, "--upstream-read-timeout", "300ms")
	backendDone := make(chan struct{})
	rb := startRawBackend(t, func(c *rawConn) {
		if _, _, err := c.readRequest(); err != nil {
			close(backendDone)
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
		readUntilClosed(c, backendDone)
	})
	e.routeApp(rb.port())

	expectResponseCut(t, e, "stalled backend body")
	closedWithin(t, backendDone, "the connection of the stalled backend was not closed")
}

// An upgraded connection through which nothing passes is closed on both
// sides after the tunnel idle timeout; bytes that do pass keep it open.
func TestTimeoutTunnelIdle(t *testing.T) {
	e := startEnv(t, "--tunnel-idle-timeout", "300ms")
	backendDone := make(chan struct{})
	rb := startRawBackend(t, func(c *rawConn) {
		if _, err := http.ReadRequest(c.br); err != nil {
			close(backendDone)
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		// Echo one byte, then wait for the gateway to close.
		var b [1]byte
		if _, err := io.ReadFull(c.br, b[:]); err == nil {
			_, _ = c.Write(b[:])
		}
		readUntilClosed(c, backendDone)
	})
	e.routeApp(rb.port())

	conn := e.dialHTTPS("app.example.test")
	_ = conn.SetDeadline(time.Now().Add(wireSafety))
	if _, err := io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: app.example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("reading the upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: status %d", resp.StatusCode)
	}
	if _, err := conn.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if b, err := br.ReadByte(); err != nil || b != 'x' {
		t.Fatalf("echo through the tunnel: %q, %v", b, err)
	}
	// Now idle: the gateway must close both sides.
	if _, err := br.ReadByte(); !cutOrEnded(err) {
		t.Fatalf("idle tunnel: client side still open: %v", err)
	}
	closedWithin(t, backendDone, "the backend side of the idle tunnel was not closed")
}

// The head of a chunked upload and each chunk reach the backend as the
// client sends them, not all at once at the end.
func TestTimeoutChunkedUploadStreams(t *testing.T) {
	e := startEnv(t)
	gotFirst := make(chan struct{})
	rb := startRawBackend(t, func(c *rawConn) {
		_ = c.SetDeadline(time.Now().Add(2 * wireSafety))
		req, err := http.ReadRequest(c.br)
		if err != nil {
			return
		}
		first := make([]byte, 5)
		if _, err := io.ReadFull(req.Body, first); err != nil || string(first) != "hello" {
			return
		}
		close(gotFirst)
		rest, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		body := "got " + string(first) + string(rest)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	})
	e.routeApp(rb.port())

	conn := e.dialHTTPS("app.example.test")
	_ = conn.SetDeadline(time.Now().Add(wireSafety))
	if _, err := io.WriteString(conn, "POST /api/upload HTTP/1.1\r\nHost: app.example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"); err != nil {
		t.Fatal(err)
	}
	closedWithin(t, gotFirst, "the backend did not get the head and first chunk of a chunked upload before its end")
	if _, err := io.WriteString(conn, "6\r\n world\r\n0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodPost})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "got hello world" {
		t.Fatalf("chunked upload: %d %q %v", resp.StatusCode, body, err)
	}
}

// Over HTTP/2, a stalled request body ends in 408 on its stream, and the
// backend connection waiting for the body is closed.
func TestTimeoutClientBodyStallsHTTP2(t *testing.T) {
	e := startEnv(t, "--client-body-timeout", "300ms")
	backendDone := make(chan struct{})
	rb := startRawBackend(t, func(c *rawConn) { readUntilClosed(c, backendDone) })
	e.routeApp(rb.port())

	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, "https://app.example.test/api/upload", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 100
	go func() { _, _ = io.WriteString(pw, "0123456789") }()
	resp, err := e.http2Client().Do(req)
	if err != nil {
		t.Fatalf("stalled request body over HTTP/2: %v", err)
	}
	_ = resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled request body over HTTP/2: %s %d, want HTTP/2 408", resp.Proto, resp.StatusCode)
	}
	closedWithin(t, backendDone, "the backend connection waiting for the stalled body was not closed")
}

// An HTTP/2 (h2c) backend that sends its head and then stalls the body gets
// the client's response cut and its request cancelled.
func TestTimeoutH2CBackendBodyStalls(t *testing.T) {
	e := startEnv(t, "--upstream-read-timeout", "300ms")
	backendDone := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &h2c, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		_, _ = io.WriteString(w, "0123456789")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
			close(backendDone)
		case <-time.After(2 * wireSafety):
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	legacy := e.legacy.port()
	e.republish(func() {
		e.write("services.yaml", strings.Replace(manifestService("app", port), "port: 80}", "port: 80, appProtocol: kubernetes.io/h2c}", 1)+
			"---\n"+manifestService("legacy-fallback", legacy))
	})

	expectResponseCut(t, e, "stalled h2c backend body")
	closedWithin(t, backendDone, "the request to the stalled h2c backend was not cancelled")
}

// Over HTTP/2, a client that stops reading a large response has its stream
// cut by the send timeout once flow control holds the gateway back, and
// the backend connection is released.
func TestTimeoutClientNeverReadsHTTP2(t *testing.T) {
	e := startEnv(t, "--send-timeout", "300ms")
	rb, backendDone := startLargeResponseBackend(t)
	e.routeApp(rb.port())

	// No client timeout: only the gateway may end the stream.
	client := e.http2Client()
	client.Timeout = 0
	ctx, cancel := context.WithTimeout(context.Background(), 3*wireSafety)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://app.example.test/api/big", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("response over %s, want HTTP/2", resp.Proto)
	}
	// The client reads nothing of the body.
	closedWithin(t, backendDone, "the backend connection of an HTTP/2 response the client never reads was not released")
}

// A backend that stops reading an upload is bounded by the send timeout:
// the client gets 504 (the backend sent no early answer) instead of an
// upload held forever, and the backend connection is closed.
func TestTimeoutBackendStopsReading(t *testing.T) {
	// The response header timeout bounds the wait for an early answer
	// after the failed write.
	e := startEnv(t, "--upstream-send-timeout", "300ms", "--upstream-response-header-timeout", "300ms")
	answered := make(chan struct{})
	backendDone := make(chan struct{})
	rb := startRawBackend(t, func(c *rawConn) {
		if _, err := http.ReadRequest(c.br); err != nil {
			close(backendDone)
			return
		}
		// Read nothing of the body until the client has its answer.
		select {
		case <-answered:
		case <-time.After(2 * wireSafety):
		}
		readUntilClosed(c, backendDone)
	})
	e.routeApp(rb.port())

	conn := e.dialHTTPS("app.example.test")
	_ = conn.SetDeadline(time.Now().Add(wireSafety))
	const size = 256 << 20
	go func() {
		if _, err := io.WriteString(conn, "POST /api/upload HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n"); err != nil {
			return
		}
		chunk := make([]byte, 64<<10)
		for written := 0; written < size; written += len(chunk) {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodPost})
	close(answered)
	switch {
	case err == nil:
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("backend stopped reading the upload: status %d, want 504", resp.StatusCode)
		}
	case !cutOrEnded(err):
		t.Fatalf("backend stopped reading the upload: no answer and the connection still open: %v", err)
	}
	closedWithin(t, backendDone, "the connection of the backend that stopped reading was not closed")
}

// The idle timeouts have nginx's defaults, are set by flag or environment,
// and must be positive.
func TestTimeoutFlags(t *testing.T) {
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.Upstream
	if u.ClientBodyTimeout != time.Minute || u.SendTimeout != time.Minute || u.UpstreamReadTimeout != time.Minute ||
		u.UpstreamSendTimeout != time.Minute || u.TunnelIdleTimeout != time.Hour {
		t.Errorf("defaults: %+v", u)
	}
	env := map[string]string{"PORTICO_TUNNEL_IDLE_TIMEOUT": "10m"}
	cfg, err = parseConfig([]string{"--client-body-timeout", "5s", "--send-timeout", "6s", "--upstream-read-timeout", "7s", "--upstream-send-timeout", "8s"},
		func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	u = cfg.Upstream
	if u.ClientBodyTimeout != 5*time.Second || u.SendTimeout != 6*time.Second || u.UpstreamReadTimeout != 7*time.Second ||
		u.UpstreamSendTimeout != 8*time.Second || u.TunnelIdleTimeout != 10*time.Minute {
		t.Errorf("set: %+v", u)
	}
	for _, flag := range []string{"--client-body-timeout", "--send-timeout", "--upstream-read-timeout", "--upstream-send-timeout", "--tunnel-idle-timeout"} {
		if _, err := parseConfig([]string{flag, "0s"}, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s 0s: error %v, want one naming the flag", flag, err)
		}
	}
}

const retryRouteManifests = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: portico
  addresses: [{value: 127.0.0.1}]
  listeners:
  - {name: http, protocol: HTTP, port: %d}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: edge}]
  hostnames: [app.example.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: app, port: 80}]
    retry: {attempts: 1, codes: [503]}
`

// A route with a retry policy buffers the request body before forwarding
// it; a client that stalls that body is bounded by the client body timeout
// too.
func TestTimeoutClientBodyStallsRetryRoute(t *testing.T) {
	e := startEnv(t, "--client-body-timeout", "300ms")
	rb := startRawBackend(t, func(c *rawConn) { readUntilClosed(c, make(chan struct{})) })
	e.routeApp(rb.port())
	port := freePort(t)
	e.write("gateway.yaml", fmt.Sprintf(retryRouteManifests, port))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitSockets(t, e.proc.listeners, "HTTP "+addr)

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wireSafety))
	if _, err := io.WriteString(conn, "POST /api/upload HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodPost})
	switch {
	case err == nil:
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("stalled request body on a retry route: status %d, want 408", resp.StatusCode)
		}
	case !cutOrEnded(err):
		t.Fatalf("stalled request body on a retry route: no answer and the connection still open: %v", err)
	}
}

// startLargeResponseBackend answers one request with a 256 MiB body,
// written for as long as the gateway reads it; backendDone is closed when
// it stops writing.
func startLargeResponseBackend(t *testing.T) (rb *rawBackend, backendDone chan struct{}) {
	backendDone = make(chan struct{})
	rb = startRawBackend(t, func(c *rawConn) {
		defer close(backendDone)
		if _, _, err := c.readRequest(); err != nil {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(2 * wireSafety))
		const size = 256 << 20
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 268435456\r\n\r\n"); err != nil {
			return
		}
		chunk := make([]byte, 64<<10)
		for written := 0; written < size; written += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	return rb, backendDone
}

// expectResponseCut asks for /api/stall over HTTPS/1.1 and fails unless the
// response ends early: no answer, or a body cut short. The head may still
// sit in the gateway's buffer when the response is cut: either way the
// client must see the connection end.
func expectResponseCut(t *testing.T, e *env, what string) {
	t.Helper()
	conn := e.dialHTTPS("app.example.test")
	_ = conn.SetDeadline(time.Now().Add(wireSafety))
	if _, err := io.WriteString(conn, "GET /api/stall HTTP/1.1\r\nHost: app.example.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodGet})
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		if err == nil {
			t.Fatalf("%s: got a whole response %q", what, body)
		}
	}
	if !cutOrEnded(err) {
		t.Fatalf("%s: %v; want the response cut", what, err)
	}
}
