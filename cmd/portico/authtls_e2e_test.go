package main

import (
	"context"
	"crypto/rand"
	stdtls "crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"portico.dev/portico/internal/testkit"
)

// crlSecret is caSecret with a ca.crl revoking serials, signed by ca.
func crlSecret(t *testing.T, name string, ca *testkit.CA, serials ...*big.Int) string {
	t.Helper()
	var revoked []x509.RevocationListEntry
	for _, s := range serials {
		revoked = append(revoked, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
		ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(24 * time.Hour), RevokedCertificateEntries: revoked}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	crl := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	return caSecret(name, ca.PEM) + "  ca.crl: |\n    " + strings.ReplaceAll(strings.TrimSpace(string(crl)), "\n", "\n    ") + "\n"
}

// caSecret is an Opaque Secret whose key ca.crt holds PEM CA certificates,
// as kubectl create secret generic --from-file=ca.crt makes it.
func caSecret(name string, caPEM []byte) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: default}\ntype: Opaque\nstringData:\n  ca.crt: |\n    %s\n",
		name, strings.ReplaceAll(strings.TrimSpace(string(caPEM)), "\n", "\n    "))
}

// TestNginxAuthTLS drives ingress-nginx's client certificate annotations
// through the whole gateway over real TLS, HTTP/1.1 and HTTP/2: a host
// with auth-tls-verify-client on answers 400 without a certificate or with
// one of another CA, and forwards a valid one's request with nginx's
// ssl-client-* headers; a host without auth-tls on the same socket is not
// asked for a certificate; optional lets a request without one through
// as NONE (and one that fails with 400, as nginx does); optional_no_ca lets
// an unknown issuer through as FAILED; a subject that auth-tls-match-cn
// does not match gets 403; another Ingress's path on the host is checked
// too; the error page, revocation (ca.crl) and verify depth apply; a CA
// Secret that cannot be read refuses the host with 403.
func TestNginxAuthTLS(t *testing.T) { testNginxAuthTLS(t) }

// TestNginxAuthTLSNetHTTP2 is TestNginxAuthTLS with HTTP/2 served by
// net/http's server instead of the event loops, which hand the checked
// routes' streams to the handler.
func TestNginxAuthTLSNetHTTP2(t *testing.T) { testNginxAuthTLS(t, "--http2-event-loops=false") }

func testNginxAuthTLS(t *testing.T, flags ...string) {
	e := startEnv(t, flags...)
	port := startEchoHeaders(t, "Ssl-Client-Verify", "Ssl-Client-Subject-Dn", "Ssl-Client-Issuer-Dn", "Ssl-Client-Cert")
	clientCA := testkit.NewCA(t, "client CA")
	good := clientCA.Issue(t, testkit.Leaf{CommonName: "client", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	stranger := clientCA.Issue(t, testkit.Leaf{CommonName: "stranger", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	otherCA := testkit.NewCA(t, "other CA")
	intruder := otherCA.Issue(t, testkit.Leaf{CommonName: "client", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	revoked := clientCA.Issue(t, testkit.Leaf{CommonName: "client", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	inter := clientCA.Intermediate(t, "client intermediate CA")
	viaInter := inter.Issue(t, testkit.Leaf{CommonName: "client", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})

	on := map[string]string{"auth-tls-secret": "default/client-ca", "auth-tls-verify-client": "on", "auth-tls-pass-certificate-to-upstream": "true"}
	e.republish(func() {
		e.write("echo.yaml", manifestService("echo", port))
		e.write("client-ca.yaml", caSecret("client-ca", clientCA.PEM)+"---\n"+crlSecret(t, "client-crl", clientCA, revoked.Serial))
		e.write("nginx.yaml", strings.Join([]string{
			nginxIngress("mtls", "mtls.apps.example.test", "/", "Prefix", "", on),
			// Another Ingress's path on the host is checked too, as
			// nginx's check is its server's.
			nginxIngress("mtls-extra", "mtls.apps.example.test", "/extra", "Prefix", "", nil),
			nginxIngress("errpage", "errpage.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-tls-secret": "default/client-ca", "auth-tls-error-page": "https://errors.example.test/cert.html"}),
			nginxIngress("broken", "broken.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-tls-secret": "default/missing", "auth-tls-verify-client": "optional"}),
			nginxIngress("noca", "noca.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-tls-secret": "default/client-ca", "auth-tls-verify-client": "optional_no_ca"}),
			nginxIngress("crl", "crl.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-tls-secret": "default/client-crl"}),
			nginxIngress("shallow", "shallow.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-tls-secret": "default/client-ca", "auth-tls-verify-depth": "0"}),
			nginxIngress("optional", "optional.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-tls-secret": "default/client-ca", "auth-tls-verify-client": "optional"}),
			nginxIngress("cn", "cn.apps.example.test", "/", "Prefix", "", map[string]string{
				"auth-tls-secret": "default/client-ca", "auth-tls-match-cn": "^CN=client$"}),
			nginxIngress("open", "open.apps.example.test", "/", "Prefix", "", nil),
		}, "---\n"))
	})

	// client sends cert (nil: none) whatever CAs the server names, and
	// records whether the server asked for one.
	client := func(cert *stdtls.Certificate, asked *atomic.Bool, h2 bool) *http.Client {
		var p http.Protocols
		p.SetHTTP1(!h2)
		p.SetHTTP2(h2)
		return &http.Client{
			Transport: &http.Transport{
				Protocols: &p,
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, e.https)
				},
				TLSClientConfig: &stdtls.Config{RootCAs: e.ca.pool,
					GetClientCertificate: func(*stdtls.CertificateRequestInfo) (*stdtls.Certificate, error) {
						if asked != nil {
							asked.Store(true)
						}
						if cert == nil {
							return &stdtls.Certificate{}, nil
						}
						return cert, nil
					}},
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       10 * time.Second,
		}
	}
	goodCert, strangerCert, intruderCert, revokedCert := good.TLSCertificate(), stranger.TLSCertificate(), intruder.TLSCertificate(), revoked.TLSCertificate()
	// The intermediate is sent with the certificate, as clients send it.
	viaInterCert := viaInter.TLSCertificate()
	viaInterCert.Certificate = append(viaInterCert.Certificate, inter.Cert.Raw)
	wantStatus := func(t *testing.T, c *http.Client, url string, status int) string {
		t.Helper()
		resp, body := do(t, c, "GET", url, nil, "")
		if resp.StatusCode != status {
			t.Fatalf("%s: status %d (%q), want %d", url, resp.StatusCode, body, status)
		}
		return body
	}
	leaf, _ := x509.ParseCertificate(good.DER)
	wantPEM := strings.ReplaceAll(url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good.DER}))), "+", "%20")
	if !strings.HasPrefix(wantPEM, "-----BEGIN%20CERTIFICATE-----%0A") {
		t.Fatalf("escaped PEM %q is not nginx's form", wantPEM[:40])
	}

	t.Run("a resumed session is asked again", func(t *testing.T) {
		// A client that first connects without its certificate (and gets
		// 400) must be asked again on its next connection: resuming the
		// session would carry no certificate and be refused for ever.
		var send atomic.Bool
		cache := stdtls.NewLRUClientSessionCache(4)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, e.https)
			},
			TLSClientConfig: &stdtls.Config{RootCAs: e.ca.pool, ClientSessionCache: cache,
				GetClientCertificate: func(*stdtls.CertificateRequestInfo) (*stdtls.Certificate, error) {
					if send.Load() {
						return &goodCert, nil
					}
					return &stdtls.Certificate{}, nil
				}},
		}}
		wantStatus(t, c, "https://mtls.apps.example.test/", http.StatusBadRequest)
		send.Store(true)
		wantStatus(t, c, "https://mtls.apps.example.test/", http.StatusOK)
	})
	t.Run("plain HTTP to a host with verify-client on", func(t *testing.T) {
		// nginx would serve it unchecked; it carries no certificate.
		wantStatus(t, e.http1Client(), "http://mtls.apps.example.test/", http.StatusBadRequest)
		wantStatus(t, e.http1Client(), "http://optional.apps.example.test/", http.StatusOK)
	})
	for _, h2 := range []bool{false, true} {
		proto := "HTTP/1.1"
		if h2 {
			proto = "HTTP/2"
		}
		t.Run(proto, func(t *testing.T) {
			wantProto := func(t *testing.T, resp *http.Response) {
				t.Helper()
				if (resp.ProtoMajor == 2) != h2 {
					t.Fatalf("answered over %s", resp.Proto)
				}
			}
			t.Run("on without a certificate", func(t *testing.T) {
				resp, body := do(t, client(nil, nil, h2), "GET", "https://mtls.apps.example.test/", nil, "")
				wantProto(t, resp)
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "No required SSL certificate was sent") {
					t.Fatalf("status %d (%q), want 400", resp.StatusCode, body)
				}
			})
			t.Run("on with another CA's certificate", func(t *testing.T) {
				resp, body := do(t, client(&intruderCert, nil, h2), "GET", "https://mtls.apps.example.test/", nil, "")
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "The SSL certificate error") {
					t.Fatalf("status %d (%q), want 400", resp.StatusCode, body)
				}
			})
			t.Run("on with a valid certificate", func(t *testing.T) {
				var asked atomic.Bool
				// The client's own claims never reach the backend.
				forged := http.Header{"Ssl-Client-Verify": {"FORGED"}, "Ssl-Client-Subject-Dn": {"CN=admin"}}
				resp, body := do(t, client(&goodCert, &asked, h2), "GET", "https://mtls.apps.example.test/", forged, "")
				wantProto(t, resp)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d (%q), want 200", resp.StatusCode, body)
				}
				if !asked.Load() {
					t.Error("the handshake did not ask for a certificate")
				}
				want := fmt.Sprintf("Ssl-Client-Verify=SUCCESS Ssl-Client-Subject-Dn=%s Ssl-Client-Issuer-Dn=%s Ssl-Client-Cert=%s",
					leaf.Subject.String(), leaf.Issuer.String(), wantPEM)
				if body != want {
					t.Errorf("backend got\n%q\nwant\n%q", body, want)
				}
			})
			t.Run("a host without auth-tls is not asked", func(t *testing.T) {
				var asked atomic.Bool
				resp, body := do(t, client(&goodCert, &asked, h2), "GET", "https://open.apps.example.test/", http.Header{"Ssl-Client-Verify": {"SUCCESS"}}, "")
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d (%q), want 200", resp.StatusCode, body)
				}
				if asked.Load() {
					t.Error("the handshake for a host without auth-tls asked for a certificate")
				}
			})
			t.Run("optional without a certificate", func(t *testing.T) {
				var asked atomic.Bool
				resp, body := do(t, client(nil, &asked, h2), "GET", "https://optional.apps.example.test/", http.Header{"Ssl-Client-Verify": {"SUCCESS"}}, "")
				if resp.StatusCode != http.StatusOK || body != "Ssl-Client-Verify=NONE Ssl-Client-Subject-Dn= Ssl-Client-Issuer-Dn= Ssl-Client-Cert=" {
					t.Fatalf("status %d (%q), want 200 with NONE", resp.StatusCode, body)
				}
				if !asked.Load() {
					t.Error("the handshake did not ask for a certificate")
				}
			})
			t.Run("optional with a valid certificate", func(t *testing.T) {
				resp, body := do(t, client(&goodCert, nil, h2), "GET", "https://optional.apps.example.test/", nil, "")
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "Ssl-Client-Verify=SUCCESS ") || !strings.HasSuffix(body, "Ssl-Client-Cert=") {
					t.Fatalf("status %d (%q), want 200 with SUCCESS and no certificate", resp.StatusCode, body)
				}
			})
			t.Run("a connection made for another host", func(t *testing.T) {
				// As a browser coalescing HTTP/2 connections would reuse
				// the one made for open.apps.example.test, which was not
				// asked for a certificate.
				var p http.Protocols
				p.SetHTTP1(!h2)
				p.SetHTTP2(h2)
				c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &p,
					DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
						d := stdtls.Dialer{Config: &stdtls.Config{RootCAs: e.ca.pool, ServerName: "open.apps.example.test", NextProtos: []string{map[bool]string{true: "h2", false: "http/1.1"}[h2]}}}
						return d.DialContext(ctx, network, e.https)
					}}}
				resp, body := do(t, c, "GET", "https://mtls.apps.example.test/", nil, "")
				wantProto(t, resp)
				if resp.StatusCode != http.StatusMisdirectedRequest {
					t.Fatalf("status %d (%q), want 421", resp.StatusCode, body)
				}
			})
			t.Run("another Ingress's path on the host", func(t *testing.T) {
				wantStatus(t, client(nil, nil, h2), "https://mtls.apps.example.test/extra", http.StatusBadRequest)
				wantStatus(t, client(&goodCert, nil, h2), "https://mtls.apps.example.test/extra", http.StatusOK)
			})
			t.Run("error page", func(t *testing.T) {
				resp, body := do(t, client(&intruderCert, nil, h2), "GET", "https://errpage.apps.example.test/", nil, "")
				if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://errors.example.test/cert.html" {
					t.Fatalf("status %d Location %q (%q), want 302 to the error page", resp.StatusCode, resp.Header.Get("Location"), body)
				}
			})
			t.Run("a CA Secret that cannot be read refuses the host", func(t *testing.T) {
				wantStatus(t, client(nil, nil, h2), "https://broken.apps.example.test/", http.StatusForbidden)
				wantStatus(t, client(&goodCert, nil, h2), "https://broken.apps.example.test/", http.StatusForbidden)
			})
			t.Run("optional with another CA's certificate", func(t *testing.T) {
				wantStatus(t, client(&intruderCert, nil, h2), "https://optional.apps.example.test/", http.StatusBadRequest)
			})
			t.Run("optional_no_ca with another CA's certificate", func(t *testing.T) {
				body := wantStatus(t, client(&intruderCert, nil, h2), "https://noca.apps.example.test/", http.StatusOK)
				if !strings.HasPrefix(body, "Ssl-Client-Verify=FAILED:unable to get local issuer certificate Ssl-Client-Subject-Dn=CN=client ") {
					t.Errorf("backend got %q", body)
				}
			})
			t.Run("revoked", func(t *testing.T) {
				wantStatus(t, client(&revokedCert, nil, h2), "https://crl.apps.example.test/", http.StatusBadRequest)
				wantStatus(t, client(&goodCert, nil, h2), "https://crl.apps.example.test/", http.StatusOK)
			})
			t.Run("verify depth", func(t *testing.T) {
				wantStatus(t, client(&viaInterCert, nil, h2), "https://shallow.apps.example.test/", http.StatusBadRequest)
				wantStatus(t, client(&goodCert, nil, h2), "https://shallow.apps.example.test/", http.StatusOK)
				// The default depth, 1, lets one intermediate in.
				wantStatus(t, client(&viaInterCert, nil, h2), "https://mtls.apps.example.test/", http.StatusOK)
			})
			t.Run("match-cn", func(t *testing.T) {
				resp, body := do(t, client(&strangerCert, nil, h2), "GET", "https://cn.apps.example.test/", nil, "")
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("CN=stranger: status %d (%q), want 403", resp.StatusCode, body)
				}
				resp, body = do(t, client(&goodCert, nil, h2), "GET", "https://cn.apps.example.test/", nil, "")
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("CN=client: status %d (%q), want 200", resp.StatusCode, body)
				}
			})
		})
	}
}
