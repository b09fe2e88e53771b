package http1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"
)

// startServer serves h on a loopback listener and returns its address.
func startServer(t testing.TB, h http.Handler) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// rawExchange sends req on a new connection and returns everything the
// server sends until it closes the connection (bounded by a deadline).
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	w.Header().Set("X-Method", r.Method)
	w.Header().Set("X-Path", r.URL.Path)
	w.Header().Set("X-Query", r.URL.RawQuery)
	w.Header().Set("X-Host", r.Host)
	w.Header().Set("X-CL", fmt.Sprint(r.ContentLength))
	w.Header().Set("X-Proto", r.Proto)
	if len(r.Trailer) > 0 {
		w.Header().Set("X-Trailer", r.Trailer.Get("X-T"))
	}
	w.Write(body)
}

func TestServeKeepAlive(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(echoHandler))
	var conns int
	var mu sync.Mutex
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		mu.Lock()
		if !i.Reused {
			conns++
		}
		mu.Unlock()
	}}
	for i := range 20 {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST",
			fmt.Sprintf("http://%s/p/%d?q=%d", addr, i, i), strings.NewReader(strings.Repeat("x", i*1000)))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) != i*1000 || resp.Header.Get("X-Path") != fmt.Sprintf("/p/%d", i) ||
			resp.Header.Get("X-Query") != fmt.Sprintf("q=%d", i) {
			t.Fatalf("request %d: %d %q %d bytes", i, resp.StatusCode, resp.Header, len(b))
		}
	}
	if conns != 1 {
		t.Errorf("%d connections for 20 requests, want 1", conns)
	}
}

func TestServeChunkedBothWays(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("body: %v", err)
		}
		w.Header().Set("Trailer", "X-Sum")
		for i := 0; i < 3; i++ {
			w.Write(b)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Sum", fmt.Sprint(len(b)*3))
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	}))
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 4; i++ {
			pw.Write([]byte("abcde"))
		}
		pw.Close()
	}()
	resp, err := http.Post("http://"+addr+"/", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != strings.Repeat("abcde", 12) {
		t.Errorf("body %q", b)
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("transfer encoding %v", resp.TransferEncoding)
	}
	if resp.Trailer.Get("X-Sum") != "60" || resp.Trailer.Get("X-Late") != "yes" {
		t.Errorf("trailers %v", resp.Trailer)
	}
}

func TestServeRequestTrailers(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(echoHandler))
	got := rawExchange(t, addr, "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\nConnection: close\r\n\r\n"+
		"3;ext=1\r\nabc\r\n0\r\nX-T: v1\r\nX-Undeclared: u\r\n\r\n")
	if !strings.Contains(got, "X-Trailer: v1\r\n") || !strings.HasSuffix(got, "abc") || !strings.Contains(got, "X-Cl: -1") {
		t.Errorf("response:\n%s", got)
	}
}

func TestServePipelining(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(echoHandler))
	got := rawExchange(t, addr, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"+
		"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"+
		"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"+
		"GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	for _, want := range []string{"X-Path: /1\r\n", "X-Path: /2\r\n", "xyz", "X-Path: /3\r\n", "hi", "X-Path: /4\r\n", "Connection: close"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if n := strings.Count(got, "HTTP/1.1 200 OK"); n != 4 {
		t.Errorf("%d responses, want 4:\n%s", n, got)
	}
}

func TestServeRefusals(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(echoHandler))
	for _, tc := range []struct{ req, status string }{
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "400"},
		{"GET / HTTP/1.1\r\n\r\n", "400"},
		{"GET / HTTP/1.1\nHost: a\r\n\r\n", "400"},
		{"GET / HTTP/1.2\r\nHost: a\r\n\r\n", "505"},
		{"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", "431"},
		{"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\nContent-Length: 1\r\n\r\nx", "417"},
		{"GET a.test:443 HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
	} {
		got := rawExchange(t, addr, tc.req)
		if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status+" ") || !strings.Contains(got, "Connection: close") {
			t.Errorf("%q: got %q", tc.req[:min(len(tc.req), 60)], got[:min(len(got), 80)])
		}
	}
}

func TestServeBadChunkClosesConnection(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(echoHandler))
	got := rawExchange(t, addr, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 400 ") || strings.Contains(got, "/next") {
		t.Errorf("got %q", got)
	}
}

func TestServeExpectContinue(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(echoHandler))
	var got100 bool
	trace := &httptrace.ClientTrace{Got100Continue: func() { got100 = true }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "PUT", "http://"+addr+"/c", strings.NewReader("payload"))
	req.Header.Set("Expect", "100-continue")
	tr := &http.Transport{ExpectContinueTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !got100 || string(b) != "payload" {
		t.Errorf("100 Continue %v, body %q", got100, b)
	}

	// A handler that answers without reading gets no 100 and the
	// connection closes.
	_, addr2 := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) }))
	raw := rawExchange(t, addr2, "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	if strings.Contains(raw, "100 Continue") || !strings.HasPrefix(raw, "HTTP/1.1 403 ") || !strings.Contains(raw, "Connection: close") {
		t.Errorf("got %q", raw)
	}
}

func TestServeHEADAndNoBodyStatuses(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		default:
			io.WriteString(w, "hello")
		}
	}))
	got := rawExchange(t, addr, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	parts := strings.Split(got, "HTTP/1.1 ")
	if len(parts) != 5 || !strings.Contains(parts[1], "Content-Length: 5\r\n") || !strings.HasSuffix(parts[1], "\r\n\r\n") ||
		!strings.HasPrefix(parts[2], "204") || strings.Contains(parts[2], "Content-Length") ||
		!strings.HasPrefix(parts[3], "304") || !strings.HasSuffix(parts[4], "hello") {
		t.Errorf("got %q", got)
	}
}

func TestServeInformational(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</s.css>; rel=preload")
		w.WriteHeader(103)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	}))
	got := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n") || strings.Count(got, "Link") != 1 || !strings.HasSuffix(got, "final") {
		t.Errorf("got %q", got)
	}
}

func TestServeHijack(t *testing.T) {
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer nc.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo:" + line)
		brw.Flush()
	}))
	got := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping\n")
	if got != "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\necho:ping\n" {
		t.Errorf("got %q", got)
	}
}

func TestServeClientDisconnectCancelsContext(t *testing.T) {
	cancelled := make(chan error, 1)
	started := make(chan struct{})
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		cancelled <- r.Context().Err()
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	<-started
	c.Close()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Errorf("context error %v", err)
	}
}

func TestServeContextCancelledAfterHandler(t *testing.T) {
	ctxs := make(chan context.Context, 1)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ctxs <- r.Context() }))
	rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	<-(<-ctxs).Done()
}

func TestServeShutdownWaitsForActive(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	s, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	}))
	// An idle keep-alive connection is closed by Shutdown.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	} else {
		io.ReadAll(resp.Body)
	}

	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- fmt.Sprint(string(b), " close=", resp.Close)
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// The idle connection is closed while the slow request still runs.
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle connection read: %v, want EOF", err)
	}
	close(release)
	if got := <-result; got != "done close=true" {
		t.Errorf("in-flight request got %q", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestServeTLSDispatch(t *testing.T) {
	cert := httptest.NewTLSServer(http.NotFoundHandler())
	cfg := cert.TLS.Clone()
	cert.Close()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s tls=%v", r.Proto, r.TLS != nil && r.TLS.HandshakeComplete)
	})}
	var h2 []string
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- s.ServeTLS(ln, cfg, 5*time.Second, func(c *tls.Conn) {
			mu.Lock()
			h2 = append(h2, c.ConnectionState().NegotiatedProtocol)
			mu.Unlock()
			c.Close()
		})
	}()
	defer func() {
		s.Close()
		<-done
	}()
	for _, protos := range [][]string{{"http/1.1"}, nil} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: protos})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasSuffix(string(b), "HTTP/1.1 tls=true") {
			t.Errorf("ALPN %v: %q", protos, b)
		}
	}
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Read(make([]byte, 1)) // returns when the h2 side closes
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(h2) != 1 || h2[0] != "h2" {
		t.Errorf("h2 connections %v", h2)
	}
}

// watchStarts makes the disconnect watch report its starts on the
// returned channel for the rest of the test.
func watchStarts(t *testing.T) <-chan struct{} {
	ch := make(chan struct{}, 16)
	testHookWatch = func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { testHookWatch = nil })
	return ch
}

func TestServeWatchKeepsPipelinedRequest(t *testing.T) {
	started := watchStarts(t)
	release := make(chan struct{})
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			io.ReadAll(r.Body)
			<-release
		}
		io.WriteString(w, r.URL.Path)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
	<-started
	// The watch is reading now: the next request lands in its hands.
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	close(release)
	b, _ := io.ReadAll(c)
	if got := string(b); !strings.HasSuffix(got, "/next") || strings.Count(got, "200 OK") != 2 || !strings.Contains(got, "/slow") {
		t.Errorf("got %q", got)
	}
}

func TestServeDisconnectAfterBodyCancelsContext(t *testing.T) {
	started := watchStarts(t)
	cancelled := make(chan error, 1)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		<-r.Context().Done()
		cancelled <- r.Context().Err()
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	<-started
	c.Close()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Errorf("context error %v", err)
	}
}

func TestServeShutdownDoesNotWaitForHijacked(t *testing.T) {
	hijacked := make(chan net.Conn, 1)
	s, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		hijacked <- nc
	}))
	var closed sync.WaitGroup
	closed.Add(1)
	var tunnel net.Conn
	s.RegisterOnShutdown(func() {
		defer closed.Done()
		tunnel.Close()
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	tunnel = <-hijacked
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	closed.Wait()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("tunnel read: %v, want EOF after the shutdown hook closed it", err)
	}
}

// countingConn counts the writes made to a connection.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func TestServeSmallResponseIsOneWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello, ")
		io.WriteString(w, "world")
	})}
	served := make(chan *countingConn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		cc := &countingConn{Conn: nc}
		s.ServeConn(cc)
		served <- cc
	}()
	got := rawExchange(t, ln.Addr().String(), "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	cc := <-served
	if strings.Count(got, "Content-Length: 12\r\n") != 2 || strings.Count(got, "hello, world") != 2 {
		t.Errorf("got %q", got)
	}
	if cc.writes != 2 {
		t.Errorf("%d writes for two small responses, want 2", cc.writes)
	}
}
