package upstream

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"portico.dev/portico/internal/testkit"
)

// testCA is a throwaway CA that issues backend certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a serving certificate for dnsNames and uris.
func (ca *testCA) issue(t testing.TB, dnsNames []string, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "backend"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     dnsNames,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startTLSBackend serves over TLS with cert and answers with the SNI it was
// reached with. conns counts the TLS connections it accepted.
func startTLSBackend(t testing.TB, cert tls.Certificate) (srv *httptest.Server, conns *atomic.Int32) {
	conns = new(atomic.Int32)
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "sni="+r.TLS.ServerName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, conns
}

// TestBackendTLS is the BackendTLSPolicy and BackendTLSPolicySANValidation
// conformance cases against a loopback TLS backend.
func TestBackendTLS(t *testing.T) {
	ca := newTestCA(t, "backend CA")
	otherCA := newTestCA(t, "another CA")
	srv, _ := startTLSBackend(t, ca.issue(t, []string{"abc.example.com"}, "spiffe://abc.example.com/test-identity"))
	tr := newTestTransport(t, Config{})

	tests := []struct {
		name   string
		tls    *BackendTLS
		status int
	}{
		{"valid", &BackendTLS{ServerName: "abc.example.com", CACertificates: ca.pem}, 200},
		{"host mismatch", &BackendTLS{ServerName: "abc.example.org", CACertificates: ca.pem}, 502},
		{"cert mismatch", &BackendTLS{ServerName: "abc.example.com", CACertificates: otherCA.pem}, 502},
		{"no CA", &BackendTLS{ServerName: "abc.example.com"}, 502},
		{"bundle with two CAs", &BackendTLS{ServerName: "abc.example.com", CACertificates: append(append([]byte{}, otherCA.pem...), ca.pem...)}, 200},
		{"system roots do not know a private CA", &BackendTLS{ServerName: "abc.example.com", SystemRoots: true}, 502},
		{"SAN hostname", &BackendTLS{ServerName: "abc.example.com", CACertificates: ca.pem,
			SubjectAltNames: []SubjectAltName{{Hostname: "abc.example.com"}}}, 200},
		{"SAN hostname mismatch", &BackendTLS{ServerName: "abc.example.com", CACertificates: ca.pem,
			SubjectAltNames: []SubjectAltName{{Hostname: "dce.example.com"}}}, 502},
		// With SubjectAltNames the SNI is not used for authentication.
		{"SAN replaces the server name", &BackendTLS{ServerName: "unrelated.example.net", CACertificates: ca.pem,
			SubjectAltNames: []SubjectAltName{{Hostname: "abc.example.com"}}}, 200},
		{"SAN URI", &BackendTLS{ServerName: "abc.example.com", CACertificates: ca.pem,
			SubjectAltNames: []SubjectAltName{{URI: "spiffe://abc.example.com/test-identity"}}}, 200},
		{"SAN URI mismatch", &BackendTLS{ServerName: "abc.example.com", CACertificates: ca.pem,
			SubjectAltNames: []SubjectAltName{{URI: "spiffe://def.example.com/test-identity"}}}, 502},
		{"several SANs, one matches", &BackendTLS{ServerName: "abc.example.com", CACertificates: ca.pem,
			SubjectAltNames: []SubjectAltName{{URI: "spiffe://def.example.com/test-identity"}, {Hostname: "abc.example.com"}}}, 200},
		{"several SANs, none matches", &BackendTLS{ServerName: "abc.example.com", CACertificates: ca.pem,
			SubjectAltNames: []SubjectAltName{{URI: "spiffe://def.example.com/test-identity"}, {Hostname: "def.example.com"}}}, 502},
		{"SAN with an untrusted chain", &BackendTLS{ServerName: "abc.example.com", CACertificates: otherCA.pem,
			SubjectAltNames: []SubjectAltName{{Hostname: "abc.example.com"}}}, 502},
		// ingress-nginx's proxy-ssl-server-name off: verified for the
		// name, none sent.
		{"SAN without SNI", &BackendTLS{CACertificates: ca.pem,
			SubjectAltNames: []SubjectAltName{{Hostname: "abc.example.com"}}}, 200},
		// ingress-nginx's proxy-ssl-verify off: encrypted, not verified.
		{"not verified", &BackendTLS{ServerName: "abc.example.org", CACertificates: otherCA.pem, SkipVerify: true}, 200},
		{"not verified without SNI or CA", &BackendTLS{SkipVerify: true}, 200},
		{"TLS 1.3 only", &BackendTLS{ServerName: "abc.example.com", CACertificates: ca.pem, MinVersion: tls.VersionTLS13}, 200},
		{"one cipher suite", &BackendTLS{ServerName: "abc.example.com", CACertificates: ca.pem, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &Backend{Name: "ns/tls-backend:443", Endpoints: []string{srv.Listener.Addr().String()}, TLS: tc.tls}
			p := startProxy(t, tr, b, false)
			resp, err := p.client().Get(p.URL + "/backendtlspolicy")
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 && body != "sni="+tc.tls.ServerName {
				t.Errorf("backend saw %q, want the SNI %q", body, tc.tls.ServerName)
			}
		})
	}
}

// TestBackendTLSVerifyDepth: VerifyDepth (nginx's proxy_ssl_verify_depth)
// bounds the intermediate CAs between the backend's certificate and a
// root; a chain with more is refused.
func TestBackendTLSVerifyDepth(t *testing.T) {
	root := testkit.NewCA(t, "backend root")
	inter1 := root.Intermediate(t, "intermediate 1")
	inter2 := inter1.Intermediate(t, "intermediate 2")
	leaf := inter2.Issue(t, testkit.Leaf{DNSNames: []string{"deep.example.com"}})
	cert := tls.Certificate{Certificate: [][]byte{leaf.DER, inter2.Cert.Raw, inter1.Cert.Raw}, PrivateKey: leaf.Key}
	srv, _ := startTLSBackend(t, cert)
	tr := newTestTransport(t, Config{})
	for _, tc := range []struct {
		depth, status int
	}{{0, 200}, {1, 502}, {2, 200}, {3, 200}} {
		t.Run(fmt.Sprintf("depth %d", tc.depth), func(t *testing.T) {
			bt := &BackendTLS{ServerName: "deep.example.com", CACertificates: root.PEM, VerifyDepth: tc.depth}
			b := &Backend{Name: "ns/deep:443", Endpoints: []string{srv.Listener.Addr().String()}, TLS: bt}
			p := startProxy(t, tr, b, false)
			resp, err := p.client().Get(p.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
		})
	}
}

// TestBackendTLSPools checks that TLS connections are pooled and reused,
// and never handed to a plain backend at the same address (or back).
func TestBackendTLSPools(t *testing.T) {
	ca := newTestCA(t, "backend CA")
	srv, conns := startTLSBackend(t, ca.issue(t, []string{"abc.example.com"}))
	tr := newTestTransport(t, Config{})
	addr := srv.Listener.Addr().String()
	secure := startProxy(t, tr, &Backend{Name: "ns/tls:443", Endpoints: []string{addr},
		TLS: &BackendTLS{ServerName: "abc.example.com", CACertificates: ca.pem}}, false)
	plain := startProxy(t, tr, &Backend{Name: "ns/plain:443", Endpoints: []string{addr}}, false)

	get := func(p *proxy) int {
		t.Helper()
		resp, err := p.client().Get(p.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 3 {
		if s := get(secure); s != 200 {
			t.Fatalf("TLS request %d: status %d", i, s)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("three sequential TLS requests opened %d connections, want 1", n)
	}
	// The TLS server answers plain HTTP with 400: the plain backend did
	// not get the pooled TLS connection.
	if s := get(plain); s != http.StatusBadRequest {
		t.Errorf("plain request to a TLS port: status %d, want 400", s)
	}
	if s := get(secure); s != 200 {
		t.Errorf("TLS request after the plain one: status %d", s)
	}
}

func TestRetryableFailure(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&dialError{err: io.EOF}, true},
		{&noResponseError{err: io.EOF}, true},
		{&backendWriteError{err: io.ErrClosedPipe}, true},
		{errBackendTimeout, true},
		{errRouteTimeout, false},
		{&badResponseError{err: io.ErrUnexpectedEOF}, false},
		{&clientBodyError{err: io.ErrUnexpectedEOF}, false},
		{&tlsSetupError{err: errNoCACertificates}, false},
	}
	for _, tc := range tests {
		if got := RetryableFailure(tc.err); got != tc.want {
			t.Errorf("RetryableFailure(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestBackendTLSClientCertificate is the GatewayBackendClientCertificate
// case: a backend that requires a client certificate from a CA sees the
// configured one, a backend without one is refused, and two client
// certificates to one address never share a pooled connection.
func TestBackendTLSClientCertificate(t *testing.T) {
	ca := newTestCA(t, "backend CA")
	clientCA := newTestCA(t, "client CA")
	clientPool := x509.NewCertPool()
	clientPool.AddCert(clientCA.cert)
	conns := new(atomic.Int32)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "client="+r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, []string{"abc.example.com"})},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientPool}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	tr := newTestTransport(t, Config{})

	// Each issued certificate has its own key, so the two chains differ.
	issueClient := func() *tls.Certificate {
		c := clientCA.issue(t, nil)
		return &c
	}
	first, second := issueClient(), issueClient()
	withCert := func(cc *tls.Certificate) *proxy {
		return startProxy(t, tr, &Backend{Name: "ns/mtls:443", Endpoints: []string{addr},
			TLS: &BackendTLS{ServerName: "abc.example.com", CACertificates: ca.pem, ClientCertificate: cc}}, false)
	}
	get := func(p *proxy) int {
		t.Helper()
		resp, err := p.client().Get(p.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(withCert(nil)); s != http.StatusBadGateway {
		t.Errorf("without a client certificate: status %d, want 502", s)
	}
	conns.Store(0)
	p1, p2 := withCert(first), withCert(second)
	for i := range 2 {
		if s := get(p1); s != 200 {
			t.Fatalf("first certificate, request %d: status %d", i, s)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("two requests with one client certificate opened %d connections, want 1", n)
	}
	if s := get(p2); s != 200 {
		t.Fatalf("second certificate: status %d", s)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("another client certificate reused a pooled connection (%d connections, want 2)", n)
	}
}
