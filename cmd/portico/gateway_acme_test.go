package main

import (
	stdtls "crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/tls/acme/acmetest"
)

// gatewayACMEManifests: an HTTP listener on the port Pebble validates
// HTTP-01 challenges on, and an HTTPS socket with one listener asking for
// an ACME certificate and one with a Secret.
const gatewayACMEManifests = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: portico
  addresses: [{value: 127.0.0.1}]
  listeners:
  - {name: http, protocol: HTTP, port: %[1]d}
  - name: acme
    protocol: HTTPS
    port: %[2]d
    hostname: gw-acme.example.test
    tls:
      options: {portico.dev/acme: "true"}
  - name: secret
    protocol: HTTPS
    port: %[2]d
    hostname: app.example.test
    tls: {certificateRefs: [{name: app-tls}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: acme, namespace: default}
spec:
  parentRefs: [{name: edge}]
  hostnames: [gw-acme.example.test, app.example.test]
  rules:
  - backendRefs: [{name: app, port: 80}]
`

// TestGatewayListenerACME runs Portico against Pebble with a Gateway whose
// HTTPS listener asks for an ACME certificate through tls.options: the
// challenge is answered on the Gateway's own HTTP socket, and the
// certificate is served on the Gateway's HTTPS socket, next to a listener
// whose Secret keeps serving its name.
func TestGatewayListenerACME(t *testing.T) {
	ports := acmetest.FreePorts(t, 2)
	httpPort, httpsPort := ports[0], ports[1]
	pb := acmetest.Start(t, httpPort)
	roots := filepath.Join(t.TempDir(), "acme-roots.pem")
	if err := os.WriteFile(roots, pb.ListenerRootsPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, "--acme-directory", pb.Directory, "--acme-ca-roots", roots, "--acme-storage-dir", t.TempDir())
	e.write("gateway.yaml", fmt.Sprintf(gatewayACMEManifests, httpPort, httpsPort))
	waitSockets(t, e.proc.listeners, fmt.Sprintf("HTTP 127.0.0.1:%d", httpPort), fmt.Sprintf("HTTPS 127.0.0.1:%d", httpsPort))

	socket := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort))
	handshake := func(serverName string, roots *stdtls.Config) (*stdtls.Conn, error) {
		roots.ServerName = serverName
		return stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", socket, roots)
	}
	// Bounded wait for the snapshot, the order and the challenge.
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for {
		var conn *stdtls.Conn
		if conn, err = handshake("gw-acme.example.test", &stdtls.Config{RootCAs: pb.IssuerRoots}); err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Gateway listener was not served a certificate from the ACME CA: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:     e.dialGateway(socket),
		TLSClientConfig: &stdtls.Config{RootCAs: pb.IssuerRoots},
	}}
	defer client.CloseIdleConnections()
	if resp, body := get(t, client, "https://gw-acme.example.test/orders"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "app GET /orders") {
		t.Errorf("GET over the ACME certificate: %d %q", resp.StatusCode, body)
	}

	// The Secret keeps its name on the same socket, and a name no listener
	// asks ACME for is not served an ACME certificate.
	conn, err := handshake("app.example.test", e.tlsConfig(""))
	if err != nil {
		t.Fatalf("app.example.test on the Gateway socket: %v", err)
	}
	if serial := conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16); serial != "1" {
		t.Errorf("app.example.test: serial %s, want its Secret's certificate (serial 1)", serial)
	}
	conn.Close()
	if conn, err := handshake("stranger.example.test", &stdtls.Config{RootCAs: pb.IssuerRoots}); err == nil {
		conn.Close()
		t.Error("an unrouted name was served a certificate from the ACME CA on the Gateway socket")
	}
}
