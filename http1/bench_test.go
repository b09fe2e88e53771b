package http1

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/internal/testkit"
)

var benchBody = []byte("0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789")

func benchHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Write(benchBody)
}

// BenchmarkServeKeepAlive measures a keep-alive GET with a 100-byte
// response through a loopback connection: this engine against net/http's
// server with the same handler. The client is the same for both and does
// not allocate (it writes a fixed request and reads the response by its
// Content-Length), so allocs/op are the server's.
func BenchmarkServeKeepAlive(b *testing.B) {
	b.Run("engine=portico", func(b *testing.B) {
		_, addr := startServer(b, http.HandlerFunc(benchHandler))
		benchClient(b, addr)
	})
	b.Run("engine=net-http", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(benchHandler), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		benchClient(b, ln.Addr().String())
	})
	cfg := benchTLSConfig(b)
	b.Run("engine=portico/tls", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := &Server{Handler: http.HandlerFunc(benchHandler)}
		go s.ServeTLS(ln, cfg, 5*time.Second, nil)
		defer s.Close()
		benchClient(b, "tls:"+ln.Addr().String())
	})
	b.Run("engine=net-http/tls", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(benchHandler), TLSConfig: cfg, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
		go srv.Serve(tls.NewListener(ln, cfg))
		defer srv.Close()
		benchClient(b, "tls:"+ln.Addr().String())
	})
}

func benchTLSConfig(b *testing.B) *tls.Config {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	cfg := ts.TLS.Clone()
	ts.Close()
	cfg.NextProtos = []string{"http/1.1"}
	return cfg
}

// benchClient runs the requests on one connection to addr, over TLS when
// addr starts with "tls:".
func benchClient(b *testing.B, addr string) {
	var c net.Conn
	var err error
	if a, ok := strings.CutPrefix(addr, "tls:"); ok {
		c, err = tls.Dial("tcp", a, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	x := testkit.NewExchanger(c, []byte("GET /bench?x=1 HTTP/1.1\r\nHost: bench.example.test\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n"))
	b.ReportAllocs()
	cpu0 := testkit.ProcessCPU()
	b.ResetTimer()
	defer func() {
		// Wall time per request is mostly loopback round-trip latency;
		// the CPU the process (client and server) spent is the cost.
		b.ReportMetric(float64(testkit.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	}()
	for range b.N {
		if err := x.Exchange(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWatch measures the two costs armWatch chooses between, on a
// loopback connection: arming and stopping the timer (what every request
// pays), and starting a reader and interrupting it (what a request still
// running after watchDelay pays once, and about what net/http's per-request
// background read costs).
func BenchmarkWatch(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	nc, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	s := &Server{}
	c := s.newConn(nc)
	c.buf = make([]byte, readBufferSize)
	c.rctx = newRequestContext(context.Background())
	b.Run("timer", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			c.armWatch(true)
			c.stopWatch()
		}
	})
	b.Run("reader", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			c.watchMu.Lock()
			c.watchState = watchPending
			c.watchMu.Unlock()
			c.bodyEOF() // starts the reader
			c.stopWatch()
			c.r, c.w = 0, 0
		}
	})
}
