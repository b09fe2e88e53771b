package main

import (
	"bufio"
	stdtls "crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"portico.dev/portico/metrics"
)

// passthroughManifests: a Gateway with one TLS listener in Passthrough
// mode and a TLSRoute sending an exact and a wildcard hostname to a TLS
// backend that holds its own certificate.
const passthroughManifests = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: pt, namespace: default}
spec:
  gatewayClassName: portico
  addresses: [{value: 127.0.1.40}]
  listeners:
  - {name: pt, protocol: TLS, port: %d, tls: {mode: Passthrough}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: secure, namespace: default}
spec:
  parentRefs: [{name: pt}]
  hostnames: [secure.passthrough.test, "*.wild.passthrough.test"]
  rules:
  - backendRefs: [{name: tls-backend, port: 80}]
`

// startTLSBackend serves TLS on loopback with pair. Per connection it
// answers each line with "echo <line>"; once the client has closed its
// side (close_notify, then the TCP FIN that only a half-close passed on
// by the gateway brings), it answers "bye <lines>" and closes. When sni
// is not nil, it gets the SNI of every handshake (without waiting).
func startTLSBackend(t *testing.T, pair stdtls.Certificate, sni chan<- string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer raw.Close()
				raw.SetDeadline(time.Now().Add(30 * time.Second))
				c := stdtls.Server(raw, &stdtls.Config{
					Certificates: []stdtls.Certificate{pair},
					GetConfigForClient: func(h *stdtls.ClientHelloInfo) (*stdtls.Config, error) {
						if sni != nil {
							select {
							case sni <- h.ServerName:
							default:
							}
						}
						return nil, nil
					},
				})
				r := bufio.NewReader(c)
				lines := 0
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						break
					}
					lines++
					fmt.Fprintf(c, "echo %s", line)
				}
				// The TLS stream ended with close_notify; wait for the TCP
				// FIN behind it before answering.
				if _, err := io.Copy(io.Discard, raw); err != nil {
					return
				}
				fmt.Fprintf(c, "bye %d\n", lines)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestTLSPassthroughThroughGateway drives TLS sessions through a TLS
// listener in Passthrough mode: the session's certificate is the
// backend's own (the gateway has no key for the name), exact and
// wildcard SNI reach the backend, an unknown SNI is closed without a
// handshake, and the client's half-close reaches the backend, whose
// answer after it still reaches the client.
func TestTLSPassthroughThroughGateway(t *testing.T) {
	e := startEnv(t, "--gateway-address-pool", "127.0.1.0/24")
	certPEM, keyPEM := e.ca.issue(t, 0x7a55, "secure.passthrough.test", "*.wild.passthrough.test")
	pair, err := stdtls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	backendPort := startTLSBackend(t, pair, nil)
	port := freePort(t)
	e.write("passthrough.yaml", fmt.Sprintf(passthroughManifests, port)+"---\n"+manifestService("tls-backend", backendPort))
	waitSockets(t, e.proc.listeners, fmt.Sprintf("TLS 127.0.1.40:%d", port))
	addr := fmt.Sprintf("127.0.1.40:%d", port)

	dial := func(serverName string) (*stdtls.Conn, error) { return e.dialTLS(addr, serverName) }

	for _, name := range []string{"secure.passthrough.test", "x.wild.passthrough.test"} {
		t.Run(name, func(t *testing.T) {
			c, err := dial(name)
			if err != nil {
				t.Fatalf("handshake through the gateway: %v", err)
			}
			defer c.Close()
			if got := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 0x7a55 {
				t.Errorf("certificate serial %#x, want the backend's own 0x7a55", got)
			}
			echoThenHalfClose(t, c)
		})
	}

	t.Run("unknown SNI", func(t *testing.T) {
		c, err := dial("unknown.passthrough.test")
		if err == nil {
			c.Close()
			t.Fatal("handshake with an SNI no TLSRoute takes succeeded; want the connection closed")
		}
	})

	// A connection is counted when it ends, after the client saw it end.
	want := map[string]float64{metrics.PassthroughSpliced: 2, metrics.PassthroughNoRoute: 1}
	var got map[string]float64
	for range 100 {
		got = passthroughResults(t, e.proc.metrics)
		if got[metrics.PassthroughSpliced] == want[metrics.PassthroughSpliced] && got[metrics.PassthroughNoRoute] == want[metrics.PassthroughNoRoute] {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got[metrics.PassthroughSpliced] != 2 || got[metrics.PassthroughNoRoute] != 1 {
		t.Errorf("%s by result: %v, want %v", metrics.PassthroughConnsName, got, want)
	}
}

// passthroughResults reads portico_passthrough_connections_total by
// result; spliced counts only the test's TLSRoute default/secure.
func passthroughResults(t *testing.T, m *metrics.Metrics) map[string]float64 {
	return passthroughConns(t, m, "result", func(l map[string]string) bool {
		return l["result"] != metrics.PassthroughSpliced || (l["name"] == "secure" && l["rule"] == "0/0")
	})
}

// passthroughConns sums portico_passthrough_connections_total by the
// label by, over the series keep accepts.
func passthroughConns(t *testing.T, m *metrics.Metrics, by string, keep func(labels map[string]string) bool) map[string]float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != metrics.PassthroughConnsName {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if keep(labels) {
				out[labels[by]] += s.GetCounter().GetValue()
			}
		}
	}
	return out
}

// echoThenHalfClose exchanges three lines with the line-echo backend of the
// TLS listener tests through c, then half-closes c (close_notify, then the
// TCP FIN) and reads the backend's "bye 3", which it sends only once the end
// reached it. It returns the reader for what follows.
func echoThenHalfClose(t *testing.T, c *stdtls.Conn) *bufio.Reader {
	t.Helper()
	r := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "line %d\n", i)
		got, err := r.ReadString('\n')
		if want := fmt.Sprintf("echo line %d\n", i); got != want || err != nil {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := c.NetConn().(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if got != "bye 3\n" || err != nil {
		t.Errorf("after the half-close read %q, %v; want the backend's \"bye 3\"", got, err)
	}
	return r
}
