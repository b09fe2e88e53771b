package main

import (
	"context"
	stdtls "crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"portico.dev/portico/frontdoor"
	"portico.dev/portico/passthrough"
	"portico.dev/portico/snapshot"
	porticotls "portico.dev/portico/tls"

	"portico.dev/portico/internal/testkit"
)

// startOCSPResponder answers every OCSP request "good", signed by ca.
func startOCSPResponder(t *testing.T, ca *testCA) (url string, requests *atomic.Int32) {
	t.Helper()
	requests = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now()
		der, err := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{
			Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		}, ca.key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(der)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, requests
}

// issueWithOCSP returns a chain (leaf, then ca) whose leaf names responder.
func (ca *testCA) issueWithOCSP(t *testing.T, serial int64, responder string, hosts ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	c := ca.kit.Issue(t, testkit.Leaf{DNSNames: hosts, Serial: serial, OCSPServer: []string{responder}})
	return append(c.CertPEM, ca.kit.PEM...), c.KeyPEM
}

func (e *env) handshakeOCSP(serverName string) ([]byte, error) {
	conn, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.https, e.tlsConfig(serverName))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().OCSPResponse, nil
}

func TestSecretCertificateIsStapled(t *testing.T) {
	e := startEnv(t)
	url, requests := startOCSPResponder(t, e.ca)
	cert, key := e.ca.issueWithOCSP(t, 0x0c5b, url, "app.example.test", "*.apps.example.test")
	e.write("app-tls.yaml", manifestSecret("app-tls", cert, key))
	e.waitSerial("app.example.test", "c5b")

	var staple []byte
	for range 1000 {
		var err error
		if staple, err = e.handshakeOCSP("app.example.test"); err == nil && staple != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if staple == nil {
		t.Fatalf("no OCSP staple on the handshake (%d responder requests)", requests.Load())
	}
	resp, err := ocsp.ParseResponse(staple, e.ca.cert)
	if err != nil || resp.Status != ocsp.Good || resp.SerialNumber.Int64() != 0x0c5b {
		t.Fatalf("staple: %+v, %v", resp, err)
	}
	// A certificate without a responder is served unstapled.
	if staple, err := e.handshakeOCSP("other.example.test"); err != nil || staple != nil {
		t.Errorf("other.example.test: staple %d bytes, err %v", len(staple), err)
	}
}

func TestOCSPStaplingCanBeTurnedOff(t *testing.T) {
	e := startEnv(t, "--ocsp-stapling=false")
	url, requests := startOCSPResponder(t, e.ca)
	cert, key := e.ca.issueWithOCSP(t, 0x0c5c, url, "app.example.test", "*.apps.example.test")
	e.write("app-tls.yaml", manifestSecret("app-tls", cert, key))
	e.waitSerial("app.example.test", "c5c")
	if staple, err := e.handshakeOCSP("app.example.test"); err != nil || staple != nil {
		t.Fatalf("staple %d bytes, err %v; want none", len(staple), err)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d OCSP requests with stapling off", n)
	}
}

func TestGatewaySocketCertificateIsStapled(t *testing.T) {
	ca := newTestCA(t)
	url, _ := startOCSPResponder(t, ca)
	certPEM, keyPEM := ca.issueWithOCSP(t, 0x0c5d, url, "secure.example.test")
	pair, err := porticotls.ParseKeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	stapler := porticotls.NewOCSPStapler(porticotls.OCSPConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); stapler.Run(ctx) }()
	defer func() { cancel(); <-done }()

	g := newGatewayListeners(frontdoor.Shared{Limits: porticotls.DefaultLimits(), Forwarder: &nameForwarder{}}, 443, 10*time.Second, passthrough.Config{}, slog.New(slog.DiscardHandler))
	g.shared.OCSP = stapler
	defer g.shutdown(context.Background())
	port := freePort(t)
	l := httpsListener(t, port, "secure", "two")
	l.Certificates = porticotls.NewCertificates([]porticotls.Binding{{Host: "secure.example.test", Pair: pair, Source: "shop/secure-tls"}}, nil)
	snap := &snapshot.Snapshot{Listeners: []*snapshot.Listener{l}}
	g.reconcile(snap)
	stapler.Update(ocspSubjects(snap))

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for range 1000 {
		conn, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&stdtls.Config{RootCAs: ca.pool, ServerName: "secure.example.test"})
		if err != nil {
			t.Fatal(err)
		}
		staple := conn.ConnectionState().OCSPResponse
		conn.Close()
		if staple != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the Gateway socket never stapled its certificate")
}
