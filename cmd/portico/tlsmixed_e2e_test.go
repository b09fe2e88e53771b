package main

import (
	stdtls "crypto/tls"
	"fmt"
	"io"
	"testing"
	"time"

	"portico.dev/portico/metrics"
)

// mixedManifests: a Gateway with two TLS listeners on one port
// (TLSRouteModeMixed): one in mode Terminate with its certificate from a
// Secret, its TLSRoute to a plain TCP backend, and one in mode
// Passthrough, its TLSRoute to a TLS backend that holds its own
// certificate.
const mixedManifests = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: mixed, namespace: default}
spec:
  gatewayClassName: portico
  addresses: [{value: 127.0.1.43}]
  listeners:
  - name: terminate
    protocol: TLS
    port: %[1]d
    hostname: tcp.mixed.test
    tls:
      mode: Terminate
      certificateRefs: [{name: mixed-tls}]
  - name: passthrough
    protocol: TLS
    port: %[1]d
    hostname: secure.mixed.test
    tls: {mode: Passthrough}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: terminated, namespace: default}
spec:
  parentRefs: [{name: mixed, sectionName: terminate}]
  hostnames: [tcp.mixed.test]
  rules:
  - backendRefs: [{name: tcp-backend, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: passed, namespace: default}
spec:
  parentRefs: [{name: mixed, sectionName: passthrough}]
  hostnames: [secure.mixed.test]
  rules:
  - backendRefs: [{name: tls-backend, port: 80}]
`

// TestTLSMixedModesThroughGateway drives TLS sessions to one port shared
// by a Terminate and a Passthrough listener: the Terminate hostname's
// client gets the gateway's certificate and its bytes reach the plain TCP
// backend decrypted; the Passthrough hostname's client gets the backend's
// own certificate, the backend seeing the client's SNI; both pass a
// half-close on. A name neither listener has fails the handshake.
func TestTLSMixedModesThroughGateway(t *testing.T) {
	e := startEnv(t, "--gateway-address-pool", "127.0.1.0/24")
	gwCert, gwKey := e.ca.issue(t, 0x3e11, "tcp.mixed.test")
	beCert, beKey := e.ca.issue(t, 0x3a55, "secure.mixed.test")
	pair, err := stdtls.X509KeyPair(beCert, beKey)
	if err != nil {
		t.Fatal(err)
	}
	sni := make(chan string, 4)
	tlsPort := startTLSBackend(t, pair, sni)
	tcpPort := startLineBackend(t)
	port := freePort(t)
	e.write("mixed.yaml", fmt.Sprintf(mixedManifests, port)+
		"---\n"+manifestService("tcp-backend", tcpPort)+
		"---\n"+manifestService("tls-backend", tlsPort)+
		"---\n"+manifestSecret("mixed-tls", gwCert, gwKey))
	waitSockets(t, e.proc.listeners, fmt.Sprintf("TLS Terminate 127.0.1.43:%d", port))
	addr := fmt.Sprintf("127.0.1.43:%d", port)

	dial := func(serverName string) (*stdtls.Conn, error) { return e.dialTLS(addr, serverName) }

	for i := range 2 {
		t.Run(fmt.Sprintf("terminate %d", i), func(t *testing.T) {
			c, err := dial("tcp.mixed.test")
			if err != nil {
				t.Fatalf("handshake with the gateway: %v", err)
			}
			defer c.Close()
			if got := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 0x3e11 {
				t.Errorf("certificate serial %#x, want the Terminate listener's 0x3e11", got)
			}
			// The line backend ends the connection on any byte that is not
			// a plain line: its echoes show it got the bytes decrypted.
			r := echoThenHalfClose(t, c)
			if rest, err := io.ReadAll(r); len(rest) != 0 || err != nil {
				t.Errorf("after the backend closed read %q, %v; want the end of the stream", rest, err)
			}
		})
		t.Run(fmt.Sprintf("passthrough %d", i), func(t *testing.T) {
			c, err := dial("secure.mixed.test")
			if err != nil {
				t.Fatalf("handshake through the gateway: %v", err)
			}
			defer c.Close()
			if got := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 0x3a55 {
				t.Errorf("certificate serial %#x, want the backend's own 0x3a55", got)
			}
			select {
			case got := <-sni:
				if got != "secure.mixed.test" {
					t.Errorf("the backend saw SNI %q, want the client's secure.mixed.test", got)
				}
			case <-time.After(10 * time.Second):
				t.Error("the TLS backend saw no handshake")
			}
			echoThenHalfClose(t, c)
		})
	}

	t.Run("unknown SNI", func(t *testing.T) {
		c, err := dial("other.mixed.test")
		if err == nil {
			c.Close()
			t.Fatal("handshake for a name neither listener has succeeded")
		}
	})

	// A connection is counted when it ends, after the client saw it end.
	var byMode map[string]float64
	for range 100 {
		byMode = splicedByMode(t, e.proc.metrics)
		if byMode[metrics.ModeTerminate] == 2 && byMode[metrics.ModePassthrough] == 2 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("%s{result=%q} by mode: %v, want 2 of each", metrics.PassthroughConnsName, metrics.PassthroughSpliced, byMode)
}

// splicedByMode reads portico_passthrough_connections_total of result
// spliced by mode.
func splicedByMode(t *testing.T, m *metrics.Metrics) map[string]float64 {
	return passthroughConns(t, m, "mode", func(l map[string]string) bool { return l["result"] == metrics.PassthroughSpliced })
}
