package main

import (
	"bytes"
	stdtls "crypto/tls"
	"log/slog"
	"net"
	"testing"

	"portico.dev/portico/internal/testkit"
)

// BenchmarkGatewayKeepAlive proxies keep-alive GETs with a 100-byte
// response through the whole gateway over loopback: the HTTPS front door
// (TLS, the HTTP/1.1 engine chosen by the sub-benchmark, on the event loops
// or not), routing and
// the pooled backend leg. The client and the backend are written not to
// allocate, so allocs/op are the gateway's per proxied request;
// cpu-ns/op is the CPU time of the whole process (client, gateway and
// backend) per request.
func BenchmarkGatewayKeepAlive(b *testing.B) {
	for _, v := range []struct{ name, engine, loops string }{
		{"engine=portico", "portico", "true"},
		{"engine=portico,loops=off", "portico", "false"},
		{"engine=net/http", "net/http", "false"},
	} {
		b.Run(v.name, func(b *testing.B) {
			e := startEnvLogging(b, slog.New(slog.DiscardHandler), "--http1-engine", v.engine, "--http1-event-loops="+v.loops)
			e.routeApp(startStaticBackend(b))
			conn, err := stdtls.Dial("tcp", e.https, &stdtls.Config{RootCAs: e.ca.pool, ServerName: "app.example.test", NextProtos: []string{"http/1.1"}})
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			benchExchanges(b, conn, []byte("GET /api/bench?x=1 HTTP/1.1\r\nHost: app.example.test\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n"))
		})
	}
}

// staticResponse is what startStaticBackend answers, nginx-like.
var staticResponse = []byte("HTTP/1.1 200 OK\r\nServer: static\r\nDate: Sun, 06 Dec 2026 12:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nConnection: keep-alive\r\n\r\n" +
	"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789")

// startStaticBackend serves every bodiless request on a loopback
// connection with staticResponse, without allocating per request, and
// returns its port.
func startStaticBackend(b testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 8192)
				n := 0
				for {
					m, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += m
					for {
						end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
						if end < 0 {
							break
						}
						if _, err := c.Write(staticResponse); err != nil {
							return
						}
						n = copy(buf, buf[end+4:n])
					}
					if n == len(buf) {
						return
					}
				}
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// benchExchanges sends req b.N times on conn, each after the previous
// response was read to the end of its Content-Length.
func benchExchanges(b *testing.B, conn net.Conn, req []byte) {
	x := testkit.NewExchanger(conn, req)
	for range 100 { // warm the pools and the backend connection
		if err := x.Exchange(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	cpu0 := testkit.ProcessCPU()
	b.ResetTimer()
	for range b.N {
		if err := x.Exchange(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(testkit.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}
