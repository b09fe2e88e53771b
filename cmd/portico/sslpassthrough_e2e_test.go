package main

import (
	"bufio"
	stdtls "crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/http1"
	"portico.dev/portico/metrics"
)

// sslPassthroughIngress is an ingress-nginx Ingress asking for
// ssl-passthrough (value %s) on passthrough.example.test, whose rule's
// path / goes to the TLS backend (the other path is not passed through).
const sslPassthroughIngress = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: passthrough
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/ssl-passthrough: "%s"
spec:
  ingressClassName: portico
  rules:
  - host: passthrough.example.test
    http:
      paths:
      - {path: /other, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: pt-backend, port: {number: 80}}}}
`

// TestIngressSSLPassthrough drives ingress-nginx's ssl-passthrough through
// the gateway's HTTPS socket: a client naming the passthrough host gets the
// backend's own certificate and a spliced session with half-close; a client
// naming another host on the same socket gets Portico's certificate and HTTP
// routing, still on the event loops (the ClientHello was peeked, not read);
// behind a PROXY protocol header both still hold; and turning the
// annotation off terminates the host again at the next snapshot.
func TestIngressSSLPassthrough(t *testing.T) {
	e := startEnv(t, "--proxy-protocol-from", "127.0.0.2/32")
	certPEM, keyPEM := e.ca.issue(t, 0x55a1, "passthrough.example.test")
	pair, err := stdtls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	backendPort := startTLSBackend(t, pair, nil)
	e.write("passthrough.yaml", fmt.Sprintf(sslPassthroughIngress, "true")+"---\n"+manifestService("pt-backend", backendPort))
	waitPassthrough(t, e, true)

	// handshake dials the HTTPS socket (from 127.0.0.2 with a PROXY
	// header when proxied) and completes TLS for serverName.
	handshake := func(t *testing.T, serverName string, proxied bool) *stdtls.Conn {
		t.Helper()
		d := net.Dialer{Timeout: 5 * time.Second}
		if proxied {
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
		}
		raw, err := d.Dial("tcp", e.https)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		raw.SetDeadline(time.Now().Add(20 * time.Second))
		if proxied {
			fmt.Fprintf(raw, "PROXY TCP4 192.0.2.7 127.0.0.1 40000 443\r\n")
		}
		c := stdtls.Client(raw, e.tlsConfig(serverName))
		if err := c.Handshake(); err != nil {
			t.Fatalf("handshake for %s: %v", serverName, err)
		}
		return c
	}
	serial := func(c *stdtls.Conn) int64 { return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64() }

	for _, proxied := range []bool{false, true} {
		t.Run(fmt.Sprintf("passthrough host, proxied %t", proxied), func(t *testing.T) {
			c := handshake(t, "passthrough.example.test", proxied)
			if got := serial(c); got != 0x55a1 {
				t.Fatalf("certificate serial %#x, want the backend's own 0x55a1", got)
			}
			echoThenHalfClose(t, c)
		})
		t.Run(fmt.Sprintf("other host on the same socket, proxied %t", proxied), func(t *testing.T) {
			c := handshake(t, "app.example.test", proxied)
			if got := serial(c); got != 1 {
				t.Fatalf("certificate serial %#x, want the gateway's 1", got)
			}
			resp, body := exchange(t, c, bufio.NewReader(c), "GET /api/x HTTP/1.1\r\nHost: app.example.test\r\n\r\n")
			if resp.StatusCode != 200 || !strings.HasPrefix(body, "app GET /api/x") {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
			if want := "xff=127.0.0.1 "; proxied {
				if !strings.Contains(body, "xff=192.0.2.7 ") {
					t.Errorf("body %q does not name the PROXY header's client", body)
				}
			} else if !strings.Contains(body, want) {
				t.Errorf("body %q, want %q", body, want)
			}
		})
	}

	t.Run("other hosts stay on the event loops", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("event loops are Linux only")
		}
		c := e.http1Client()
		before := http1.EventLoopCounts()
		for i := range 20 {
			resp, err := c.Get("https://app.example.test/api/x")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "app GET /api/x") {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
			}
		}
		if got := http1.EventLoopCounts().Served - before.Served; got < 20 {
			t.Errorf("loops served %d of 20 requests", got)
		}
	})

	// A connection is counted when it ends, after the client saw it end.
	var got float64
	for range 100 {
		if got = ingressSpliced(t, e.proc.metrics); got == 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got != 2 {
		t.Errorf("%s spliced for Ingress default/passthrough: %v, want 2", metrics.PassthroughConnsName, got)
	}

	t.Run("annotation off", func(t *testing.T) {
		e.write("passthrough.yaml", fmt.Sprintf(sslPassthroughIngress, "false")+"---\n"+manifestService("pt-backend", backendPort))
		waitPassthrough(t, e, false)
		raw, err := net.DialTimeout("tcp", e.https, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(20 * time.Second))
		// No certificate of the gateway names the host: its default one
		// answers, and Portico terminates.
		c := stdtls.Client(raw, &stdtls.Config{ServerName: "passthrough.example.test", InsecureSkipVerify: true})
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		if got := serial(c); got == 0x55a1 {
			t.Error("the backend's certificate still answers with the annotation off")
		}
	})
}

// waitPassthrough waits until the serving snapshot has a passthrough table,
// or has none.
func waitPassthrough(t *testing.T, e *env, want bool) {
	t.Helper()
	for range 200 {
		if s := e.proc.store.Load(); s != nil && (s.SSLPassthrough != nil) == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the snapshot's passthrough table present: want %t, it never was", want)
}

// ingressSpliced reads portico_passthrough_connections_total's spliced
// connections of the Ingress default/passthrough.
func ingressSpliced(t *testing.T, m *metrics.Metrics) float64 {
	return passthroughConns(t, m, "result", func(l map[string]string) bool {
		return l["kind"] == "Ingress" && l["name"] == "passthrough"
	})[metrics.PassthroughSpliced]
}
