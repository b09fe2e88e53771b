package tls

import (
	stdtls "crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"portico.dev/portico/internal/testkit"
)

// clientCert issues a client certificate signed by ca.
func clientCert(t *testing.T, ca *testCA) stdtls.Certificate {
	t.Helper()
	return ca.Issue(t, testkit.Leaf{
		CommonName:  "client",
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}).TLSCertificate()
}

func TestNewClientValidation(t *testing.T) {
	ca := newTestCA(t)
	if _, err := NewClientValidation(ca.PEM, AllowValidOnly); err != nil {
		t.Errorf("valid bundle: %v", err)
	}
	for _, bad := range []string{"", "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		if _, err := NewClientValidation([]byte(bad), AllowValidOnly); err == nil {
			t.Errorf("bundle %q: no error", bad)
		}
	}
}

// TestClientValidationHandshakes is the
// gateway-with-clientcertificate-validation(-insecure-fallback)
// conformance cases over real TLS connections: a listener validating with
// one CA, clients with a certificate of that CA, of another CA, and none.
func TestClientValidationHandshakes(t *testing.T) {
	ca, otherCA := newTestCA(t), newTestCA(t)
	server := ca.pair(t, "example.org")
	good, wrong := clientCert(t, ca), clientCert(t, otherCA)
	validOnly, err := NewClientValidation(ca.PEM, AllowValidOnly)
	if err != nil {
		t.Fatal(err)
	}
	fallback, err := NewClientValidation(ca.PEM, AllowInsecureFallback)
	if err != nil {
		t.Fatal(err)
	}

	var current atomic.Pointer[ClientValidation]
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "peer certificates: "+itoa(len(r.TLS.PeerCertificates)))
	}))
	base := &stdtls.Config{
		MinVersion:     stdtls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: CertificateGetter(func(string) *KeyPair { return server }),
	}
	base.GetConfigForClient = ConfigForClient(base, current.Load)
	srv.TLS = base
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	tests := []struct {
		name       string
		validation *ClientValidation
		client     *stdtls.Certificate
		ok         bool
	}{
		{"no validation, no certificate", nil, nil, true},
		{"no validation, a certificate", nil, &wrong, true},
		{"valid only, matching certificate", validOnly, &good, true},
		{"valid only, other CA", validOnly, &wrong, false},
		{"valid only, no certificate", validOnly, nil, false},
		{"insecure fallback, matching certificate", fallback, &good, true},
		{"insecure fallback, other CA", fallback, &wrong, true},
		{"insecure fallback, no certificate", fallback, nil, true},
		{"valid only without CAs", &ClientValidation{Mode: AllowValidOnly}, &good, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			current.Store(tc.validation)
			cfg := &stdtls.Config{RootCAs: ca.Pool, ServerName: "example.org", NextProtos: []string{"h2"}}
			if tc.client != nil {
				cfg.Certificates = []stdtls.Certificate{*tc.client}
			}
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
			defer c.CloseIdleConnections()
			resp, err := c.Get(srv.URL)
			if !tc.ok {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request succeeded with status %d, want a failed handshake", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
				t.Fatalf("status %d over %s", resp.StatusCode, resp.Proto)
			}
			want := "peer certificates: 0"
			if tc.client != nil && tc.validation != nil {
				want = "peer certificates: 1"
			}
			if string(body) != want {
				t.Errorf("got %q, want %q", body, want)
			}
		})
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// TestClientValidationPerServerName: only the hosts Certificates names ask
// for a client certificate, exact and one-label wildcard names matched as
// certificates are, and their configuration never fails the handshake nor
// resumes a session.
func TestClientValidationPerServerName(t *testing.T) {
	exact := &ClientValidation{Mode: VerifyPerRequest}
	wild := &ClientValidation{Mode: VerifyPerRequest}
	certs := NewCertificates(nil, nil)
	certs.SetClientValidation([]string{"mtls.example.test", "*.w.example.test", "mtls.example.test", "bad..name"},
		[]*ClientValidation{exact, wild, wild, exact})
	for name, want := range map[string]*ClientValidation{
		"mtls.example.test": exact, "MTLS.example.test.": exact, "a.w.example.test": wild,
		"w.example.test": nil, "a.b.w.example.test": nil, "open.example.test": nil, "": nil,
	} {
		if got := certs.ClientValidation(name); got != want {
			t.Errorf("%q: %p, want %p", name, got, want)
		}
	}
	if (*Certificates)(nil).ClientValidation("mtls.example.test") != nil || NewCertificates(nil, nil).ClientValidation("mtls.example.test") != nil {
		t.Error("Certificates without client validation asked for a certificate")
	}
	base := serverTLSConfig(func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) { return nil, nil }, false)
	get := ConfigForServerName(base, certs.ClientValidation)
	if cfg, err := get(&stdtls.ClientHelloInfo{ServerName: "open.example.test"}); cfg != nil || err != nil {
		t.Errorf("open host: %v, %v; want the base configuration", cfg, err)
	}
	cfg, err := get(&stdtls.ClientHelloInfo{ServerName: "mtls.example.test"})
	if err != nil || cfg == nil || cfg.ClientAuth != stdtls.RequestClientCert || !cfg.SessionTicketsDisabled || cfg.GetConfigForClient != nil {
		t.Fatalf("mtls host: %+v, %v; want RequestClientCert without session tickets", cfg, err)
	}
}
