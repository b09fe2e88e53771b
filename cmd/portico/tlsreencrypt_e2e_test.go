package main

import (
	stdtls "crypto/tls"
	"fmt"
	"io"
	"testing"
	"time"

	"portico.dev/portico/internal/testkit"
	"portico.dev/portico/metrics"
)

// reencryptManifests: a TLS listener in mode Terminate whose TLSRoutes
// send good.reencrypt.test and bad.reencrypt.test to two TLS backends a
// BackendTLSPolicy targets: verified against the backends' own CA, for
// the name backend.reencrypt.internal.
const reencryptManifests = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: reencrypt, namespace: default}
spec:
  gatewayClassName: portico
  addresses: [{value: 127.0.1.42}]
  listeners:
  - name: term
    protocol: TLS
    port: %[1]d
    hostname: "*.reencrypt.test"
    tls:
      mode: Terminate
      certificateRefs: [{name: reencrypt-tls}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: good, namespace: default}
spec:
  parentRefs: [{name: reencrypt}]
  hostnames: [good.reencrypt.test]
  rules:
  - backendRefs: [{name: tls-good, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: bad, namespace: default}
spec:
  parentRefs: [{name: reencrypt}]
  hostnames: [bad.reencrypt.test]
  rules:
  - backendRefs: [{name: tls-bad, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: backends, namespace: default}
spec:
  targetRefs:
  - {group: "", kind: Service, name: tls-good}
  - {group: "", kind: Service, name: tls-bad}
  validation:
    hostname: backend.reencrypt.internal
    caCertificateRefs: [{group: "", kind: ConfigMap, name: backend-ca}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: backend-ca, namespace: default}
data:
  ca.crt: %[2]q
`

// TestTLSTerminateReencryptsThroughGateway drives TLS sessions to a TLS
// listener in mode Terminate whose backends a BackendTLSPolicy targets:
// the client gets the listener's certificate, the backend gets a TLS
// connection of its own with the policy's hostname as SNI, the lines and
// the half-close go through both TLS connections; a backend whose
// certificate does not verify against the policy's CA is refused and the
// client's connection closed, counted as backend_tls_error.
func TestTLSTerminateReencryptsThroughGateway(t *testing.T) {
	e := startEnv(t, "--gateway-address-pool", "127.0.1.0/24")
	certPEM, keyPEM := e.ca.issue(t, 0x7e12, "good.reencrypt.test", "bad.reencrypt.test")
	backendCA := testkit.NewCA(t, "backend CA")
	good := backendCA.Issue(t, testkit.Leaf{DNSNames: []string{"backend.reencrypt.internal"}})
	// The bad backend's certificate names the right host but chains to
	// the gateway's CA, which the policy does not trust.
	badCert, badKey := e.ca.issue(t, 0xbad, "backend.reencrypt.internal")
	badPair, err := stdtls.X509KeyPair(badCert, badKey)
	if err != nil {
		t.Fatal(err)
	}
	goodSNI := make(chan string, 4)
	goodPort := startTLSBackend(t, good.TLSCertificate(), goodSNI)
	badPort := startTLSBackend(t, badPair, nil)
	port := freePort(t)
	e.write("reencrypt.yaml", fmt.Sprintf(reencryptManifests, port, backendCA.PEM)+
		"---\n"+manifestService("tls-good", goodPort)+"---\n"+manifestService("tls-bad", badPort)+
		"---\n"+manifestSecret("reencrypt-tls", certPEM, keyPEM))
	waitSockets(t, e.proc.listeners, fmt.Sprintf("TLS Terminate 127.0.1.42:%d", port))
	addr := fmt.Sprintf("127.0.1.42:%d", port)

	dial := func(t *testing.T, serverName string) *stdtls.Conn {
		t.Helper()
		c, err := e.dialTLS(addr, serverName)
		if err != nil {
			t.Fatalf("handshake with the gateway: %v", err)
		}
		if got := c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 0x7e12 {
			t.Errorf("certificate serial %#x, want the listener's 0x7e12", got)
		}
		return c
	}

	t.Run("verified backend", func(t *testing.T) {
		c := dial(t, "good.reencrypt.test")
		defer c.Close()
		r := echoThenHalfClose(t, c)
		if rest, err := io.ReadAll(r); len(rest) != 0 || err != nil {
			t.Errorf("after the backend closed read %q, %v; want the end of the stream", rest, err)
		}
		select {
		case got := <-goodSNI:
			if got != "backend.reencrypt.internal" {
				t.Errorf("backend got SNI %q, want the policy's backend.reencrypt.internal", got)
			}
		default:
			t.Error("the backend saw no TLS handshake")
		}
	})

	t.Run("backend certificate does not verify", func(t *testing.T) {
		c := dial(t, "bad.reencrypt.test")
		defer c.Close()
		fmt.Fprintf(c, "line 0\n")
		if got, err := io.ReadAll(c); len(got) != 0 {
			t.Errorf("read %q, %v; want the connection closed unanswered", got, err)
		}
	})

	// A connection is counted when it ends, after the client saw it end.
	var got map[string]float64
	for range 100 {
		got = terminateResults(t, e.proc.metrics)
		if got[metrics.PassthroughSpliced] == 1 && got[metrics.PassthroughBackendTLSError] == 1 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("%s{mode=%q} by result: %v, want spliced 1 and backend_tls_error 1", metrics.PassthroughConnsName, metrics.ModeTerminate, got)
}
