package main

import (
	stdtls "crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/internal/testkit"
)

// proxySSLIngresses: two Ingresses with ingress-nginx's backend TLS
// annotations, verifying their backends against the CA of the
// backend-ssl Secret for secure.backend.test (sent as SNI) and presenting
// the Secret's client certificate. The backend of badcert.example.test
// holds a certificate from another CA.
const proxySSLIngresses = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %[1]s
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/backend-protocol: HTTPS
    nginx.ingress.kubernetes.io/proxy-ssl-secret: default/backend-ssl
    nginx.ingress.kubernetes.io/proxy-ssl-verify: "on"
    nginx.ingress.kubernetes.io/proxy-ssl-name: secure.backend.test
    nginx.ingress.kubernetes.io/proxy-ssl-server-name: "on"
spec:
  ingressClassName: portico
  rules:
  - host: %[1]s.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: %[2]s, port: {number: 80}}}}
`

// startHTTPSBackend serves HTTPS on loopback with pair, asking for a
// client certificate from clientCA unless it is nil; it answers with the SNI and the
// client certificate's subject it got.
func startHTTPSBackend(t *testing.T, pair stdtls.Certificate, clientCA *testkit.CA) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := "none"
		if len(r.TLS.PeerCertificates) > 0 {
			client = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "tls sni=%s client=%s path=%s", r.TLS.ServerName, client, r.URL.Path)
	}))
	srv.TLS = &stdtls.Config{Certificates: []stdtls.Certificate{pair}}
	if clientCA != nil {
		srv.TLS.ClientAuth, srv.TLS.ClientCAs = stdtls.RequireAndVerifyClientCert, clientCA.Pool
	}
	// The refused handshakes are the test's point, not noise to print.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return port
}

// TestNginxProxySSLThroughGateway sends requests through the gateway to
// HTTPS backends that ingress-nginx's proxy-ssl-* annotations describe:
// the backend gets TLS with the annotation's name as SNI and the Secret's
// client certificate; a backend whose certificate does not chain to the
// Secret's ca.crt is refused with 502.
func TestNginxProxySSLThroughGateway(t *testing.T) {
	e := startEnv(t)
	backendCA := testkit.NewCA(t, "backend CA")
	good := backendCA.Issue(t, testkit.Leaf{DNSNames: []string{"secure.backend.test"}})
	client := backendCA.Issue(t, testkit.Leaf{CommonName: "portico-client", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	badCert, badKey := e.ca.issue(t, 0xbad1, "secure.backend.test")
	badPair, err := stdtls.X509KeyPair(badCert, badKey)
	if err != nil {
		t.Fatal(err)
	}
	goodPort := startHTTPSBackend(t, good.TLSCertificate(), backendCA)
	badPort := startHTTPSBackend(t, badPair, backendCA)
	// Without proxy-ssl-secret, backend-protocol HTTPS is TLS with
	// ingress-nginx's defaults: no certificate check, no SNI.
	defaultsPort := startHTTPSBackend(t, badPair, nil)
	defaultsIngress := `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: tls-defaults
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/backend-protocol: HTTPS
spec:
  ingressClassName: portico
  rules:
  - host: defaults.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: sec-defaults, port: {number: 80}}}}
`
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	secret := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: backend-ssl, namespace: default}
type: Opaque
stringData:
  ca.crt: |
%s
  tls.crt: |
%s
  tls.key: |
%s
`, indent(backendCA.PEM), indent(client.CertPEM), indent(client.KeyPEM))
	e.write("proxy-ssl.yaml", fmt.Sprintf(proxySSLIngresses, "secure", "sec-good")+"---\n"+fmt.Sprintf(proxySSLIngresses, "badcert", "sec-bad")+
		"---\n"+manifestService("sec-good", goodPort)+"---\n"+manifestService("sec-bad", badPort)+"---\n"+secret+
		"---\n"+defaultsIngress+"---\n"+manifestService("sec-defaults", defaultsPort))

	c := e.http1Client()
	fetch := func(host string) (int, string, error) {
		resp, err := c.Get("http://" + host + "/hello")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	want := "tls sni=secure.backend.test client=portico-client path=/hello"
	testkit.Eventually(t, 20*time.Second, "the secure Ingress served over TLS", func() error {
		code, body, err := fetch("secure.example.test")
		if err != nil {
			return err
		}
		if code != http.StatusOK || body != want {
			return fmt.Errorf("got %d %q, want 200 %q", code, body, want)
		}
		return nil
	})
	testkit.Eventually(t, 20*time.Second, "backend-protocol HTTPS alone served over TLS, unverified, without SNI", func() error {
		code, body, err := fetch("defaults.example.test")
		if err != nil {
			return err
		}
		if want := "tls sni= client=none path=/hello"; code != http.StatusOK || body != want {
			return fmt.Errorf("got %d %q, want 200 %q", code, body, want)
		}
		return nil
	})
	testkit.Eventually(t, 20*time.Second, "the backend with an unverifiable certificate refused", func() error {
		code, body, err := fetch("badcert.example.test")
		if err != nil {
			return err
		}
		if code != http.StatusBadGateway {
			return fmt.Errorf("got %d %q, want 502", code, body)
		}
		return nil
	})
}
