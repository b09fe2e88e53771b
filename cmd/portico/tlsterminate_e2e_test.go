package main

import (
	"bufio"
	stdtls "crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/metrics"
)

// terminateManifests: a Gateway with one TLS listener in mode Terminate,
// its certificate from a Secret, and a TLSRoute sending the listener's
// hostname to a plain TCP backend.
const terminateManifests = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: term, namespace: default}
spec:
  gatewayClassName: portico
  addresses: [{value: 127.0.1.41}]
  listeners:
  - name: term
    protocol: TLS
    port: %d
    hostname: tcp.terminate.test
    tls:
      mode: Terminate
      certificateRefs: [{name: terminate-tls}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: plain, namespace: default}
spec:
  parentRefs: [{name: term}]
  hostnames: [tcp.terminate.test]
  rules:
  - backendRefs: [{name: tcp-backend, port: 80}]
`

// startLineBackend serves plain TCP on loopback. Per connection it
// answers each line with "echo <line>"; once the gateway has half-closed
// its side, it answers "bye <lines>" and closes. Any byte that is not a
// printable line (a TLS record) ends the connection unanswered.
func startLineBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				r := bufio.NewReader(c)
				lines := 0
				for {
					line, err := r.ReadString('\n')
					if err == io.EOF && line == "" {
						break
					}
					if err != nil || !strings.HasPrefix(line, "line ") {
						return
					}
					lines++
					fmt.Fprintf(c, "echo %s", line)
				}
				fmt.Fprintf(c, "bye %d\n", lines)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestTLSTerminateThroughGateway drives TLS sessions to a TLS listener in
// mode Terminate: the client gets the listener's certificate, its
// decrypted bytes reach a plain TCP backend and the answers come back
// encrypted, the client's half-close reaches the backend as a TCP FIN and
// the backend's answer after it still reaches the client, and an SNI
// the listener has no certificate for fails the handshake.
func TestTLSTerminateThroughGateway(t *testing.T) {
	e := startEnv(t, "--gateway-address-pool", "127.0.1.0/24")
	certPEM, keyPEM := e.ca.issue(t, 0x7e11, "tcp.terminate.test")
	backendPort := startLineBackend(t)
	port := freePort(t)
	e.write("terminate.yaml", fmt.Sprintf(terminateManifests, port)+"---\n"+manifestService("tcp-backend", backendPort)+
		"---\n"+manifestSecret("terminate-tls", certPEM, keyPEM))
	waitSockets(t, e.proc.listeners, fmt.Sprintf("TLS Terminate 127.0.1.41:%d", port))
	addr := fmt.Sprintf("127.0.1.41:%d", port)

	dial := func(serverName string) (*stdtls.Conn, error) { return e.dialTLS(addr, serverName) }

	for i := range 2 {
		t.Run(fmt.Sprintf("session %d", i), func(t *testing.T) {
			c, err := dial("tcp.terminate.test")
			if err != nil {
				t.Fatalf("handshake with the gateway: %v", err)
			}
			defer c.Close()
			if got := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 0x7e11 {
				t.Errorf("certificate serial %#x, want the listener's 0x7e11", got)
			}
			// The backend answers the half-close only after the gateway
			// passed the end on.
			r := echoThenHalfClose(t, c)
			if rest, err := io.ReadAll(r); len(rest) != 0 || err != nil {
				t.Errorf("after the backend closed read %q, %v; want the end of the stream", rest, err)
			}
		})
	}

	t.Run("SNI without a certificate", func(t *testing.T) {
		c, err := dial("other.terminate.test")
		if err == nil {
			c.Close()
			t.Fatal("handshake for a name the listener has no certificate for succeeded")
		}
	})

	// A connection is counted when it ends, after the client saw it end.
	var got map[string]float64
	for range 100 {
		got = terminateResults(t, e.proc.metrics)
		if got[metrics.PassthroughSpliced] == 2 && got[metrics.PassthroughBadHello] == 1 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("%s{mode=%q} by result: %v, want spliced 2 and bad_hello 1", metrics.PassthroughConnsName, metrics.ModeTerminate, got)
}

// terminateResults reads portico_passthrough_connections_total of mode
// terminate by result.
func terminateResults(t *testing.T, m *metrics.Metrics) map[string]float64 {
	return passthroughConns(t, m, "result", func(l map[string]string) bool { return l["mode"] == metrics.ModeTerminate })
}
