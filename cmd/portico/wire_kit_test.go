package main

import (
	"bufio"
	"bytes"
	stdtls "crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The wire tests speak raw bytes to the gateway and script backends that
// misbehave in ways no well-behaved server will. They drive the whole
// gateway, front door included, so they hold whatever engine serves it.

// rawBackend is a loopback TCP backend whose behaviour per connection is
// scripted by the test; it records every byte each connection received.
type rawBackend struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns []*rawConn
}

// rawConn is one accepted backend connection. Reads through br are recorded.
type rawConn struct {
	net.Conn
	br  *bufio.Reader
	mu  sync.Mutex
	rec bytes.Buffer
}

type recordingReader struct{ c *rawConn }

func (r recordingReader) Read(p []byte) (int, error) {
	n, err := r.c.Conn.Read(p)
	r.c.mu.Lock()
	r.c.rec.Write(p[:n])
	r.c.mu.Unlock()
	return n, err
}

// received returns every byte read from the connection so far.
func (c *rawConn) received() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.String()
}

// readRequest reads one request, body included, as a strict HTTP/1.1
// server would.
func (c *rawConn) readRequest() (*http.Request, []byte, error) {
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

// startRawBackend serves every accepted connection with serve on its own
// goroutine; the connection is closed when serve returns.
func startRawBackend(t testing.TB, serve func(c *rawConn)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &rawBackend{ln: ln}
	rb.wg.Add(1)
	go func() {
		defer rb.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			rb.accepted.Add(1)
			c := &rawConn{Conn: nc}
			c.br = bufio.NewReader(recordingReader{c})
			rb.mu.Lock()
			rb.conns = append(rb.conns, c)
			rb.mu.Unlock()
			rb.wg.Add(1)
			go func() {
				defer rb.wg.Done()
				defer nc.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		rb.mu.Lock()
		for _, c := range rb.conns {
			_ = c.Close()
		}
		rb.mu.Unlock()
		rb.wg.Wait()
	})
	return rb
}

func (rb *rawBackend) port() string {
	_, port, _ := net.SplitHostPort(rb.ln.Addr().String())
	return port
}

// received returns what each connection received, in accept order.
func (rb *rawBackend) received() []string {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	out := make([]string, len(rb.conns))
	for i, c := range rb.conns {
		out[i] = c.received()
	}
	return out
}

// routeApp points the app Service (app.example.test/api, /ws, /login and
// *.apps.example.test) at port and waits until the gateway serves it.
func (e *env) routeApp(port string) {
	e.t.Helper()
	legacy := e.legacy.port()
	e.republish(func() {
		e.write("services.yaml", manifestService("app", port)+"---\n"+manifestService("legacy-fallback", legacy))
	})
}

// republish runs change and waits for the gateway to publish the
// configuration that follows it.
func (e *env) republish(change func()) {
	e.t.Helper()
	gen := e.proc.store.Load().Generation
	change()
	deadline := time.Now().Add(10 * time.Second)
	for e.proc.store.Load().Generation <= gen {
		if time.Now().After(deadline) {
			e.t.Fatal("the gateway published no new configuration within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialHTTPS opens a TLS connection to the gateway's HTTPS listener that
// negotiates HTTP/1.1 for serverName.
func (e *env) dialHTTPS(serverName string) *stdtls.Conn {
	e.t.Helper()
	cfg := e.tlsConfig(serverName)
	cfg.NextProtos = []string{"http/1.1"}
	c, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.https, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialTLS connects to addr, a TLS listener of the gateway, and completes
// a handshake for serverName that trusts the test CA; the connection gets
// a 20 s deadline.
func (e *env) dialTLS(addr, serverName string) (*stdtls.Conn, error) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	c := stdtls.Client(raw, e.tlsConfig(serverName))
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// dialHTTP opens a plain connection to the gateway's HTTP listener.
func (e *env) dialHTTP() net.Conn {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", e.http, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// exchange writes raw to c and reads one response to it; the response body
// is read whole.
func exchange(t testing.TB, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("writing request: %v", err)
	}
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response to %q: %v", firstLine(raw), err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body to %q: %v", firstLine(raw), err)
	}
	return resp, string(body)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
