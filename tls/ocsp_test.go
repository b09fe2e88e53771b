package tls

import (
	"bytes"
	"context"
	stdtls "crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"portico.dev/portico/internal/testkit"
)

// ocspResponder is a loopback OCSP responder signing with a test CA.
type ocspResponder struct {
	ca     *testCA
	signer *testCA // signs the responses; ca unless a test forges them
	srv    *httptest.Server

	mu       sync.Mutex
	status   int           // ocsp.Good or ocsp.Revoked
	validity time.Duration // NextUpdate - now
	down     bool          // answer 503
	requests int
	last     []byte // the last response sent
}

func newOCSPResponder(t *testing.T, ca *testCA) *ocspResponder {
	r := &ocspResponder{ca: ca, signer: ca, status: ocsp.Good, validity: time.Hour}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *ocspResponder) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	parsed, err := ocsp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	now := time.Now().Truncate(time.Second)
	tmpl := ocsp.Response{
		Status:       r.status,
		SerialNumber: parsed.SerialNumber,
		ThisUpdate:   now.Add(-time.Second),
		NextUpdate:   now.Add(r.validity),
	}
	if r.status == ocsp.Revoked {
		tmpl.RevokedAt = now.Add(-time.Minute)
		tmpl.RevocationReason = ocsp.KeyCompromise
	}
	der, err := ocsp.CreateResponse(r.ca.Cert, r.signer.Cert, tmpl, r.signer.Key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	r.last = der
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(der)
}

func (r *ocspResponder) set(fn func(r *ocspResponder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r)
}

func (r *ocspResponder) snapshot() (requests int, last []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.last
}

// ocspPair issues a leaf naming responderURL as its OCSP server, with the
// issuer in the chain.
func ocspPair(t testing.TB, ca *testCA, responderURL string) *KeyPair {
	t.Helper()
	c := ca.Issue(t, testkit.Leaf{DNSNames: []string{"ocsp.example.com"}, OCSPServer: []string{responderURL}})
	p, err := ParseKeyPair(append(c.CertPEM, ca.PEM...), c.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// handshakeOCSP runs one TLS handshake over a pipe against getCertificate
// and returns the OCSP response the client saw.
func handshakeOCSP(t *testing.T, ca *testCA, getCertificate func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error)) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	server := stdtls.Server(s, &stdtls.Config{GetCertificate: getCertificate})
	go func() { _ = server.Handshake() }()
	client := stdtls.Client(c, &stdtls.Config{ServerName: "ocsp.example.com", RootCAs: ca.Pool})
	if err := client.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return client.ConnectionState().OCSPResponse
}

// eventually polls cond, for things the stapler does in the background.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, what, func() error {
		if !cond() {
			return errors.New("never happened")
		}
		return nil
	})
}

// syncBuffer collects log output written from the stapler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) Contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Contains(b.b.String(), s)
}

type ocspFixture struct {
	ca        *testCA
	responder *ocspResponder
	pair      *KeyPair
	stapler   *OCSPStapler
	logs      *syncBuffer
	get       func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error)
}

func newOCSPFixture(t *testing.T, cfg OCSPConfig, setup func(r *ocspResponder)) *ocspFixture {
	t.Helper()
	f := &ocspFixture{ca: newTestCA(t), logs: &syncBuffer{}}
	f.responder = newOCSPResponder(t, f.ca)
	if setup != nil {
		f.responder.set(setup)
	}
	f.pair = ocspPair(t, f.ca, f.responder.srv.URL)
	cfg.Logger = slog.New(slog.NewTextHandler(f.logs, nil))
	f.stapler = NewOCSPStapler(cfg)
	certs := NewCertificates([]Binding{{Host: "ocsp.example.com", Pair: f.pair, Source: "web/site-tls"}}, nil)
	f.get = f.stapler.Wrap(CertificateGetter(certs.Lookup))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.stapler.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	f.stapler.Update([]OCSPSubject{{Pair: f.pair, Source: "web/site-tls"}})
	return f
}

func (f *ocspFixture) stapled(t *testing.T) []byte {
	return handshakeOCSP(t, f.ca, f.get)
}

func TestOCSPStaplesVerifiedResponse(t *testing.T) {
	f := newOCSPFixture(t, OCSPConfig{}, nil)
	var got []byte
	eventually(t, "a stapled handshake", func() bool { got = f.stapled(t); return got != nil })
	resp, err := ocsp.ParseResponseForCert(got, f.pair.Certificate.Leaf, f.ca.Cert)
	if err != nil {
		t.Fatalf("stapled response does not verify: %v", err)
	}
	if resp.Status != ocsp.Good {
		t.Fatalf("status = %d, want good", resp.Status)
	}

	// A new snapshot serving the same certificate keeps the staple and
	// fetches nothing.
	before, _ := f.responder.snapshot()
	f.stapler.Update([]OCSPSubject{{Pair: f.pair, Source: "web/site-tls"}, {Pair: f.ca.pair(t, "plain.example.com")}})
	if got := f.stapled(t); got == nil {
		t.Fatal("staple lost on an update that kept the certificate")
	}
	if after, _ := f.responder.snapshot(); after != before {
		t.Fatalf("%d fetches on an update that kept the certificate", after-before)
	}

	// The certificate leaving the snapshot drops its staple at once.
	f.stapler.Update(nil)
	if got := f.stapled(t); got != nil {
		t.Fatal("staple kept after the certificate left the served set")
	}
}

func TestOCSPRefreshesBeforeExpiry(t *testing.T) {
	// The first response is valid for 2s, so a refresh is due after about
	// 1s; later ones are valid for an hour.
	f := newOCSPFixture(t, OCSPConfig{MinRefresh: time.Millisecond}, func(r *ocspResponder) { r.validity = 2 * time.Second })
	eventually(t, "a first response", func() bool { n, _ := f.responder.snapshot(); return n >= 1 })
	f.responder.set(func(r *ocspResponder) { r.validity = time.Hour })
	// A second short-lived response may already have been fetched before
	// the responder changed: wait for a stapled one of the new kind.
	eventually(t, "the refreshed response stapled", func() bool {
		_, last := f.responder.snapshot()
		if !bytes.Equal(f.stapled(t), last) {
			return false
		}
		resp, err := ocsp.ParseResponse(last, f.ca.Cert)
		return err == nil && time.Until(resp.NextUpdate) > 30*time.Minute
	})
}

func TestOCSPResponderDownLeavesHandshakeUnstapled(t *testing.T) {
	f := newOCSPFixture(t, OCSPConfig{RetryInterval: 20 * time.Millisecond}, func(r *ocspResponder) { r.down = true })
	eventually(t, "a failed fetch logged", func() bool { return f.logs.Contains("OCSP response not fetched") })
	if !f.logs.Contains("web/site-tls") {
		t.Error("warning does not name the Secret")
	}
	if got := f.stapled(t); got != nil {
		t.Fatal("stapled while the responder is down")
	}
	// Retried once the responder is back.
	f.responder.set(func(r *ocspResponder) { r.down = false })
	eventually(t, "stapled after the responder came back", func() bool { return f.stapled(t) != nil })
}

func TestOCSPRevokedIsServedUnstapled(t *testing.T) {
	f := newOCSPFixture(t, OCSPConfig{MinRefresh: time.Millisecond}, func(r *ocspResponder) { r.validity = 2 * time.Second })
	eventually(t, "a stapled handshake", func() bool { return f.stapled(t) != nil })
	f.responder.set(func(r *ocspResponder) { r.status = ocsp.Revoked })
	eventually(t, "revocation logged", func() bool { return f.logs.Contains("revoked") })
	if !f.logs.Contains("web/site-tls") {
		t.Error("warning does not name the Secret")
	}
	if got := f.stapled(t); got != nil {
		t.Fatal("a revoked response was stapled")
	}
}

func TestOCSPRejectsResponseNotSignedByIssuer(t *testing.T) {
	other := newTestCA(t)
	f := newOCSPFixture(t, OCSPConfig{}, func(r *ocspResponder) { r.signer = other })
	eventually(t, "the bad response refused", func() bool { return f.logs.Contains("OCSP response not fetched") })
	if got := f.stapled(t); got != nil {
		t.Fatal("stapled a response the issuer did not sign")
	}
}

func TestOCSPSkipsCertificatesWithoutResponderOrIssuer(t *testing.T) {
	ca := newTestCA(t)
	var fetched atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { fetched.Add(1) }))
	defer srv.Close()
	noResponder := ca.pair(t, "plain.example.com")
	withResponder := ocspPair(t, ca, srv.URL)
	// The same leaf without its issuer in the chain.
	leafOnly := *withResponder.Certificate
	leafOnly.Certificate = leafOnly.Certificate[:1]
	s := NewOCSPStapler(OCSPConfig{})
	s.Update([]OCSPSubject{{Pair: noResponder}, {Pair: &KeyPair{Certificate: &leafOnly}}, {Pair: nil}})
	s.mu.Lock()
	n := len(s.entries)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d certificates tracked, want none", n)
	}
}

func TestOCSPNilStaplerWrapsNothing(t *testing.T) {
	var s *OCSPStapler
	called := false
	get := s.Wrap(func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) { called = true; return nil, nil })
	_, _ = get(nil)
	if !called {
		t.Fatal("nil stapler did not pass through")
	}
}

func BenchmarkOCSPWrappedGetCertificate(b *testing.B) {
	ca := newTestCA(b)
	p := ca.pair(b, "a.example.com")
	s := NewOCSPStapler(OCSPConfig{})
	stapled := *p.Certificate
	stapled.OCSPStaple = []byte{1}
	m := map[*stdtls.Certificate]*stdtls.Certificate{p.Certificate: &stapled}
	s.staples.Store(&m)
	certs := NewCertificates([]Binding{{Host: "a.example.com", Pair: p}}, nil)
	get := s.Wrap(CertificateGetter(certs.Lookup))
	hello := &stdtls.ClientHelloInfo{ServerName: "a.example.com"}
	b.ReportAllocs()
	for b.Loop() {
		if c, _ := get(hello); c.OCSPStaple == nil {
			b.Fatal("no staple")
		}
	}
}

// BenchmarkOCSPUpdateUnchanged is the stapler's share of every publish of
// a snapshot with 1000 stapleable certificates, none of them new.
func BenchmarkOCSPUpdateUnchanged(b *testing.B) {
	ca := newTestCA(b)
	subjects := make([]OCSPSubject, 1000)
	for i := range subjects {
		subjects[i] = OCSPSubject{Pair: ocspPair(b, ca, "http://127.0.0.1:1/"), Source: "bench/tls"}
	}
	s := NewOCSPStapler(OCSPConfig{})
	s.Update(subjects)
	b.ReportAllocs()
	for b.Loop() {
		s.Update(subjects)
	}
}
