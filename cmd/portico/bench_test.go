package main

import (
	"bytes"
	stdtls "crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"portico.dev/portico/http1"
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

// BenchmarkGatewayH2 is BenchmarkGatewayKeepAlive over HTTP/2: one stream
// at a time on one connection, served by the event loops or by net/http's
// HTTP/2 server. The client frames by hand, with literal header fields
// and reused frames, so it allocates nothing per request.
func BenchmarkGatewayH2(b *testing.B) {
	for _, loops := range []string{"true", "false"} {
		b.Run("loops="+loops, func(b *testing.B) {
			e := startEnvLogging(b, slog.New(slog.DiscardHandler), "--http2-event-loops="+loops)
			e.routeApp(startStaticBackend(b))
			conn, err := stdtls.Dial("tcp", e.https, &stdtls.Config{RootCAs: e.ca.pool, ServerName: "app.example.test", NextProtos: []string{"h2"}})
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
				b.Fatal(err)
			}
			fr := http2.NewFramer(conn, conn)
			fr.SetReuseFrames()
			// The connection's window is opened once, far enough for the
			// whole run: no WINDOW_UPDATE per response.
			if err := fr.WriteSettings(); err != nil || fr.WriteWindowUpdate(0, 1<<31-1-65535) != nil {
				b.Fatal(err)
			}
			var block bytes.Buffer
			enc := hpack.NewEncoder(&block)
			enc.SetMaxDynamicTableSizeLimit(0)
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "app.example.test"}, {":path", "/api/bench?x=1"},
				{"user-agent", "bench/1.0"}, {"accept", "*/*"}, {"accept-encoding", "gzip"}} {
				_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			id := uint32(1)
			exchange := func() error {
				if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
					return err
				}
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return err
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							_ = fr.WriteSettingsAck()
						}
					case *http2.WindowUpdateFrame, *http2.PingFrame:
					case *http2.GoAwayFrame:
						return fmt.Errorf("GOAWAY %v", f.ErrCode)
					case *http2.RSTStreamFrame:
						return fmt.Errorf("RST_STREAM %v", f.ErrCode)
					default:
						if f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream) {
							// DATA's and HEADERS' END_STREAM flags are the same bit.
							id += 2
							return nil
						}
					}
				}
			}
			for range 100 {
				if err := exchange(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			cpu0 := testkit.ProcessCPU()
			b.ResetTimer()
			for range b.N {
				if err := exchange(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(testkit.ProcessCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkGatewayNginxDefaults is BenchmarkGatewayKeepAlive's request on
// an Ingress of an adopted ingress-nginx class under --nginx-configmap,
// whose defaults give every such Ingress the HSTS header and a 1m body
// limit: what a move from ingress-nginx looks like. loop-served/op is the
// share of requests the event loops served.
func BenchmarkGatewayNginxDefaults(b *testing.B) {
	for _, loops := range []string{"true", "false"} {
		b.Run("loops="+loops, func(b *testing.B) {
			e := startEnvLogging(b, slog.New(slog.DiscardHandler), "--http1-event-loops="+loops,
				"--nginx-configmap", "ingress-nginx/ingress-nginx-controller", "--adopt-ingress-classes", "nginx")
			port := startStaticBackend(b)
			e.republish(func() {
				e.write("bench-nginx.yaml", manifestService("bench", port)+"---\n"+nginxConfigMapManifest(map[string]string{"hsts-max-age": "31536000"})+`---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: default}
spec:
  ingressClassName: nginx
  tls: [{hosts: [bench.apps.example.test]}]
  rules:
  - host: bench.apps.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}
`)
			})
			conn, err := stdtls.Dial("tcp", e.https, &stdtls.Config{RootCAs: e.ca.pool, ServerName: "bench.apps.example.test", NextProtos: []string{"http/1.1"}})
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			before := http1.EventLoopCounts().Served
			benchExchanges(b, conn, []byte("GET /api/bench?x=1 HTTP/1.1\r\nHost: bench.apps.example.test\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n"))
			b.ReportMetric(float64(http1.EventLoopCounts().Served-before)/float64(b.N+100), "loop-served/op")
		})
	}
}
