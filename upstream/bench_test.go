package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

var body100 = strings.Repeat("x", 100)

// benchBackend is the net/http backend of the end-to-end benchmarks.
func benchBackend(b *testing.B) *backendServer {
	return startBackend(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, body100)
	}))
}

func benchClient(p *proxy) *http.Client {
	c := p.client()
	if tr, ok := c.Transport.(*http.Transport); ok {
		tr.MaxIdleConnsPerHost = 64
	}
	return c
}

func benchGet(b *testing.B, c *http.Client, url string, buf []byte) {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.ReadFull(resp.Body, buf)
	resp.Body.Close()
	if resp.StatusCode != 200 || n != 100 {
		b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
	}
}

// BenchmarkForwardHTTP1 measures client -> inbound server -> Forward ->
// net/http backend over loopback; allocations include all three parties.
func BenchmarkForwardHTTP1(b *testing.B) {
	forEachInbound(b, func(b *testing.B, url string, c *http.Client) {
		buf := make([]byte, 128)
		for b.Loop() {
			benchGet(b, c, url, buf)
		}
	})
}

func BenchmarkForwardHTTP1Parallel(b *testing.B) {
	forEachInbound(b, func(b *testing.B, url string, c *http.Client) {
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 128)
			for pb.Next() {
				benchGet(b, c, url, buf)
			}
		})
	})
}

// forEachInbound runs bench once with a plain and once with a TLS inbound
// server in front of Forward and a net/http backend, with the timer reset
// after the set-up.
func forEachInbound(b *testing.B, bench func(b *testing.B, url string, c *http.Client)) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		b.Run(name, func(b *testing.B) {
			be := benchBackend(b)
			tr := newTestTransport(b, Config{})
			p := startProxy(b, tr, &Backend{Name: "ns/bench:80", Endpoints: []string{be.addr()}}, useTLS)
			c := benchClient(p)
			b.ReportAllocs()
			b.ResetTimer()
			bench(b, p.URL+"/bench", c)
		})
	}
}

// cannedBackend answers every request on a connection with the same
// 100-byte response without allocating, so a benchmark's allocations are
// the proxy's own. It only understands body-less requests.
func cannedBackend(b *testing.B) *rawBackend {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + body100)
	return startRawBackend(b, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) <= 2 {
					break
				}
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}

// discardWriter is an in-memory http.ResponseWriter.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *discardWriter) Flush()                      {}

// BenchmarkForwardDirect calls Forward with an in-memory ResponseWriter
// against a backend that does not allocate, so allocs/op are Portico's.
func BenchmarkForwardDirect(b *testing.B) {
	rb := cannedBackend(b)
	tr := newTestTransport(b, Config{})
	be := &Backend{Name: "ns/bench:80", Endpoints: []string{rb.addr()}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, "GET", "http://bench.example/bench?q=1", nil)
	r.RemoteAddr = "192.0.2.10:51234"
	r.RequestURI = "/bench?q=1" // as the inbound server sets it
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("Accept", "*/*")
	r.Header.Set("Accept-Encoding", "gzip")
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.n = 0
		out := tr.Forward(w, r, be)
		if out.Status != 200 || w.n != 100 {
			b.Fatalf("outcome %+v, %d bytes", out, w.n)
		}
	}
}

// rawClientGet sends one keep-alive GET over c and reads the 100-byte
// response, allocating nothing, so the proxy dominates the profile.
func rawClientGet(b *testing.B, c net.Conn, br *bufio.Reader, req []byte) {
	if _, err := c.Write(req); err != nil {
		b.Fatal(err)
	}
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if len(line) <= 2 {
			break
		}
		if bytes.HasPrefix(line, []byte("Content-Length: ")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(line[len("Content-Length: "):])))
		}
	}
	if length != 100 {
		b.Fatalf("Content-Length %d", length)
	}
	if _, err := br.Discard(length); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkForwardHTTP1Lean is the parallel TLS benchmark with a
// non-allocating client and backend, so ns/op and allocs/op are mostly the
// inbound server's and Forward's.
func BenchmarkForwardHTTP1Lean(b *testing.B) {
	rb := cannedBackend(b)
	tr := newTestTransport(b, Config{})
	p := startProxy(b, tr, &Backend{Name: "ns/bench:80", Endpoints: []string{rb.addr()}}, true)
	tlsConf := tlsClientConfig(p.Server)
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	b.ResetTimer()
	// Eight connections per CPU keep the proxy busy while others wait on
	// the network, as under real load.
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		c, err := tls.Dial("tcp", p.Listener.Addr().String(), tlsConf)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			rawClientGet(b, c, br, req)
		}
	})
}
