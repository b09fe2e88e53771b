package main

import (
	"bytes"
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/frontdoor"
	"portico.dev/portico/passthrough"
	"portico.dev/portico/routing"
	"portico.dev/portico/snapshot"
	porticotls "portico.dev/portico/tls"
	"portico.dev/portico/upstream"

	"portico.dev/portico/internal/testkit"
)

// nameForwarder answers every request with its backend's name, after
// waiting for hold when the backend is named "slow".
type nameForwarder struct {
	hold    chan struct{}
	entered chan struct{}
}

func (f *nameForwarder) ForwardWith(w http.ResponseWriter, r *http.Request, b *upstream.Backend, _ *upstream.ForwardOptions) upstream.Outcome {
	if b.Name == "slow" {
		f.entered <- struct{}{}
		<-f.hold
	}
	_, _ = io.WriteString(w, b.Name)
	return upstream.Outcome{Status: http.StatusOK}
}

// syncBuffer is a log sink safe for the listeners' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

func tableTo(backend string) *routing.Table {
	table, _ := routing.CompileListeners([]routing.ListenerRoutes{{Routes: []*routing.Route{{
		Source:   routing.Source{Kind: "HTTPRoute", Namespace: "shop", Name: backend},
		PathKind: routing.PathPrefix,
		Path:     "/",
		Backend:  &upstream.Backend{Name: backend},
	}}}}, nil)
	return table
}

var loopback = netip.MustParseAddr("127.0.0.1")

func httpListener(port int32, gateway, backend string) *snapshot.Listener {
	return &snapshot.Listener{
		Address: loopback, Port: port, Protocol: gatewayv1.HTTPProtocolType,
		Gateway: types.NamespacedName{Namespace: "shop", Name: gateway},
		Routes:  tableTo(backend),
	}
}

func httpsListener(t *testing.T, port int32, gateway, backend string) *snapshot.Listener {
	pair, err := porticotls.SelfSigned(gateway+".example.test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l := httpListener(port, gateway, backend)
	l.Protocol = gatewayv1.HTTPSProtocolType
	l.Certificates = porticotls.NewCertificates([]porticotls.Binding{{Host: gateway + ".example.test", Pair: pair, Source: "shop/" + gateway}}, nil)
	return l
}

func getBody(t *testing.T, client *http.Client, url string) (string, bool) {
	t.Helper()
	reused := false
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body), reused
}

func refused(port int32) bool {
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err == nil {
		c.Close()
		return false
	}
	return true
}

func TestGatewayListenersFollowSnapshots(t *testing.T) {
	logs := &syncBuffer{}
	fwd := &nameForwarder{hold: make(chan struct{}), entered: make(chan struct{}, 1)}
	g := newGatewayListeners(frontdoor.Shared{Limits: porticotls.DefaultLimits(), Forwarder: fwd}, 443, 10*time.Second, passthrough.Config{},
		slog.New(slog.NewTextHandler(logs, nil)))
	defer g.shutdown(context.Background())

	pHTTP, pHTTPS, pNew, pSlow := freePort(t), freePort(t), freePort(t), freePort(t)
	g.reconcile(&snapshot.Snapshot{Listeners: []*snapshot.Listener{
		httpListener(pHTTP, "edge", "one"),
		httpsListener(t, pHTTPS, "secure", "two"),
		httpListener(pSlow, "slow-gw", "slow"),
	}})

	keepAlive := &http.Client{Transport: &http.Transport{}}
	defer keepAlive.CloseIdleConnections()
	if body, _ := getBody(t, keepAlive, fmt.Sprintf("http://127.0.0.1:%d/", pHTTP)); body != "one" {
		t.Errorf("HTTP listener answered %q", body)
	}
	tlsClient := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &stdtls.Config{InsecureSkipVerify: true, ServerName: "secure.example.test"},
		ForceAttemptHTTP2: true,
	}}
	defer tlsClient.CloseIdleConnections()
	resp, err := tlsClient.Get(fmt.Sprintf("https://127.0.0.1:%d/", pHTTPS))
	if err != nil {
		t.Fatalf("HTTPS listener: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "two" || resp.ProtoMajor != 2 || resp.TLS.PeerCertificates[0].Subject.CommonName != "secure.example.test" {
		t.Errorf("HTTPS listener answered %q over HTTP/%d with certificate %q", body, resp.ProtoMajor, resp.TLS.PeerCertificates[0].Subject.CommonName)
	}

	// A request in flight on a listener that is about to go away.
	slowDone := make(chan string, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", pSlow))
		if err != nil {
			slowDone <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slowDone <- string(b)
	}()
	<-fwd.entered

	// Next snapshot: the HTTP listener stays with new routes, the HTTPS and
	// slow ones go, a new one comes, and one cannot bind (the port is held).
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	pHeld := int32(held.Addr().(*net.TCPAddr).Port)
	g.reconcile(&snapshot.Snapshot{Listeners: []*snapshot.Listener{
		httpListener(pHTTP, "edge", "one-v2"),
		httpListener(pNew, "added", "three"),
		httpListener(pHeld, "clash", "four"),
	}})

	body2, reused := getBody(t, keepAlive, fmt.Sprintf("http://127.0.0.1:%d/", pHTTP))
	if body2 != "one-v2" || !reused {
		t.Errorf("the listener that stayed answered %q (connection reused: %v), want one-v2 on the same connection", body2, reused)
	}
	if body, _ := getBody(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/", pNew)); body != "three" {
		t.Errorf("added listener answered %q", body)
	}
	if !refused(pHTTPS) {
		t.Error("the removed HTTPS listener still accepts connections")
	}
	if !refused(pSlow) {
		t.Error("the removed listener still accepts connections while draining")
	}
	close(fwd.hold)
	if got := <-slowDone; got != "slow" {
		t.Errorf("the request in flight on a removed listener ended with %q, want it to finish", got)
	}
	if !strings.Contains(logs.String(), "cannot bind Gateway listener") || !strings.Contains(logs.String(), "shop/clash") {
		t.Errorf("bind failure not logged with the Gateway's name:\n%s", logs.String())
	}
	wantSockets := []string{fmt.Sprintf("HTTP 127.0.0.1:%d", pHTTP), fmt.Sprintf("HTTP 127.0.0.1:%d", pNew)}
	slices.Sort(wantSockets)
	if got := g.sockets(); !slices.Equal(got, wantSockets) {
		t.Errorf("bound sockets %v, want %v", got, wantSockets)
	}

	// The same port switches from HTTP to HTTPS: the old socket is closed
	// before the new one binds.
	g.reconcile(&snapshot.Snapshot{Listeners: []*snapshot.Listener{httpsListener(t, pHTTP, "edge", "tls-now")}})
	edgeClient := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &stdtls.Config{InsecureSkipVerify: true, ServerName: "edge.example.test"},
	}}
	defer edgeClient.CloseIdleConnections()
	resp, err = edgeClient.Get(fmt.Sprintf("https://127.0.0.1:%d/", pHTTP))
	if err != nil {
		t.Fatalf("after switching to HTTPS: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "tls-now" || resp.TLS.PeerCertificates[0].Subject.CommonName != "edge.example.test" {
		t.Errorf("after switching to HTTPS: %q with certificate %q", body, resp.TLS.PeerCertificates[0].Subject.CommonName)
	}
	// SNI the listener has no certificate for, and no default: the
	// handshake fails rather than serving another Gateway's certificate.
	if _, err := tlsClient.Get(fmt.Sprintf("https://127.0.0.1:%d/", pHTTP)); err == nil {
		t.Error("a handshake for a name without a certificate succeeded")
	}

	g.shutdown(context.Background())
	if !refused(pHTTP) || !refused(pNew) {
		t.Error("sockets still open after shutdown")
	}
	g.reconcile(&snapshot.Snapshot{Listeners: []*snapshot.Listener{httpListener(pNew, "late", "x")}})
	if !refused(pNew) {
		t.Error("a snapshot published during shutdown bound a socket")
	}
}

// BenchmarkReconcileUnchanged measures what the listener manager adds to
// every publish when the Gateways' sockets stay the same (the common case:
// a route or an endpoint changed): 64 sockets, none bound or closed.
func BenchmarkReconcileUnchanged(b *testing.B) {
	g := newGatewayListeners(frontdoor.Shared{Limits: porticotls.DefaultLimits(), Forwarder: &nameForwarder{}}, 443, time.Second, passthrough.Config{},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer g.shutdown(context.Background())
	var listeners []*snapshot.Listener
	for i := range 64 {
		l := httpListener(0, fmt.Sprintf("gw-%d", i), "x")
		l.Address = netip.AddrFrom4([4]byte{127, 0, 3, byte(i + 1)})
		ln, err := net.Listen("tcp", l.Address.String()+":0")
		if err != nil {
			b.Fatal(err)
		}
		l.Port = int32(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		listeners = append(listeners, l)
	}
	g.reconcile(&snapshot.Snapshot{Listeners: listeners})
	if n := len(g.sockets()); n != 64 {
		b.Fatalf("%d sockets bound, want 64", n)
	}
	snaps := [2]*snapshot.Snapshot{{Listeners: listeners}, {Listeners: slices.Clone(listeners)}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		g.reconcile(snaps[i%2])
	}
}

// TestFailedBindIsRetried binds a Gateway socket whose port was taken once
// the port is free, without a new snapshot.
func TestFailedBindIsRetried(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := int32(held.Addr().(*net.TCPAddr).Port)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p := &publisher{store: &snapshot.Store{}, log: log,
		listeners: newGatewayListeners(frontdoor.Shared{Limits: porticotls.DefaultLimits(), Forwarder: &nameForwarder{}}, 443, time.Second, passthrough.Config{}, log)}
	defer p.listeners.shutdown(context.Background())
	snap := &snapshot.Snapshot{Listeners: []*snapshot.Listener{httpListener(port, "edge", "one")}}
	p.store.Publish(snap)
	p.listeners.reconcile(snap)
	if f := p.listeners.bindFailures(); len(f) != 1 || f[0].gateway.Name != "edge" {
		t.Fatalf("failures %+v, want the taken port", f)
	}

	p.retryBindsOnce()
	if len(p.listeners.sockets()) != 0 {
		t.Fatal("bound a port that is still taken")
	}
	held.Close()
	p.retryBindsOnce()
	if got := p.listeners.sockets(); len(got) != 1 || len(p.listeners.bindFailures()) != 0 {
		t.Fatalf("after the port was freed: sockets %v, failures %v", got, p.listeners.bindFailures())
	}
	if body, _ := getBody(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/", port)); body != "one" {
		t.Errorf("retried socket answered %q", body)
	}
}

// testClientCA is a CA for client certificates and one certificate it
// issued.
func testClientCA(t *testing.T) (caPEM []byte, client stdtls.Certificate) {
	t.Helper()
	ca := testkit.NewCA(t, "client CA")
	c := ca.Issue(t, testkit.Leaf{CommonName: "client", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return ca.PEM, c.TLSCertificate()
}

// TestGatewaySocketValidatesClientCertificates: an HTTPS Gateway socket
// applies its Listener's client certificate validation on every
// handshake, and follows a change of it without a new socket.
func TestGatewaySocketValidatesClientCertificates(t *testing.T) {
	g := newGatewayListeners(frontdoor.Shared{Limits: porticotls.DefaultLimits(), Forwarder: &nameForwarder{}}, 443, 10*time.Second, passthrough.Config{}, slog.New(slog.DiscardHandler))
	defer g.shutdown(context.Background())
	caPEM, clientCert := testClientCA(t)
	validOnly, err := porticotls.NewClientValidation(caPEM, porticotls.AllowValidOnly)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	l := httpsListener(t, port, "mtls", "backend")
	l.ClientValidation = validOnly
	g.reconcile(&snapshot.Snapshot{Listeners: []*snapshot.Listener{l}})

	get := func(cert *stdtls.Certificate) (string, error) {
		cfg := &stdtls.Config{InsecureSkipVerify: true, ServerName: "mtls.example.test"}
		if cert != nil {
			cfg.Certificates = []stdtls.Certificate{*cert}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get(&clientCert); err != nil || body != "backend" {
		t.Errorf("with a valid client certificate: %q, %v", body, err)
	}
	if body, err := get(nil); err == nil {
		t.Errorf("without a client certificate: answered %q, want a refused handshake", body)
	}

	// The Gateway stops asking for client certificates: the same socket
	// serves the next handshake without one.
	open := httpsListener(t, port, "mtls", "backend")
	g.reconcile(&snapshot.Snapshot{Listeners: []*snapshot.Listener{open}})
	if body, err := get(nil); err != nil || body != "backend" {
		t.Errorf("after validation was removed, without a client certificate: %q, %v", body, err)
	}
}

// TestGatewayHTTPSocketSpeaksH2C: an HTTP Gateway socket routes requests
// that arrive as HTTP/2 with prior knowledge, as the Gateway API's
// HTTPRouteBackendProtocolH2C conformance test sends them.
func TestGatewayHTTPSocketSpeaksH2C(t *testing.T) {
	g := newGatewayListeners(frontdoor.Shared{Limits: porticotls.DefaultLimits(), Forwarder: &nameForwarder{}}, 443, 10*time.Second, passthrough.Config{}, slog.New(slog.DiscardHandler))
	defer g.shutdown(context.Background())
	port := freePort(t)
	g.reconcile(&snapshot.Snapshot{Listeners: []*snapshot.Listener{httpListener(port, "edge", "h2c-backend")}})

	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &protocols}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || string(body) != "h2c-backend" {
		t.Errorf("%d over %s: %q, want 200 over HTTP/2 from h2c-backend", resp.StatusCode, resp.Proto, body)
	}
}
