package http1

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
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
	req := []byte("GET /bench?x=1 HTTP/1.1\r\nHost: bench.example.test\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n")
	buf := make([]byte, 4096)
	clField := []byte("\r\nContent-Length: ")
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	defer func() {
		// Wall time per request is mostly loopback round-trip latency;
		// the CPU the process (client and server) spent is the cost.
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	}()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += m
			end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
			if end < 0 {
				continue
			}
			i := bytes.Index(buf[:end], clField)
			if i < 0 || !bytes.HasPrefix(buf, []byte("HTTP/1.1 200 ")) {
				b.Fatalf("response %q", buf[:n])
			}
			cl := 0
			for _, d := range buf[i+len(clField) : end] {
				if d == '\r' {
					break
				}
				cl = cl*10 + int(d-'0')
			}
			if n == end+4+cl {
				break
			}
			if n > end+4+cl {
				b.Fatalf("extra bytes after the response")
			}
		}
	}
}

// processCPU is the user and system CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
