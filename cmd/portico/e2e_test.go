package main

import (
	"context"
	"crypto"
	stdtls "crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"portico.dev/portico/internal/testkit"
)

// These tests run the whole gateway in-process on real loopback sockets:
// manifests in a temporary folder, two backends, Go's TLS, HTTP/1.1,
// HTTP/2 and WebSocket clients.

// testCA signs the certificates the gateway serves, so clients verify them
// as they would in production.
type testCA struct {
	kit  *testkit.CA
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	ca := testkit.NewCA(t, "portico test CA")
	return &testCA{kit: ca, cert: ca.Cert, key: ca.Key, pool: ca.Pool}
}

// issue returns PEM certificate and key for hosts, with a chosen serial so a
// test can tell which certificate a handshake got.
func (ca *testCA) issue(t testing.TB, serial int64, hosts ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	c := ca.kit.Issue(t, testkit.Leaf{DNSNames: hosts, Serial: serial})
	return c.CertPEM, c.KeyPEM
}

// defaultCertificateFiles writes the gateway's default certificate, for
// hosts no Secret covers, signed by the test CA too so that clients verify
// every handshake.
func (ca *testCA) defaultCertificateFiles(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, 0xdef, "unknown.example.test", "apps.example.test", "a.b.apps.example.test", "classless.example.test")
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "default.crt"), filepath.Join(dir, "default.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// backend is a loopback server that names itself in every answer.
type backend struct {
	name string
	srv  *httptest.Server
	// paths receives the request URI of every request.
	paths chan string
}

func newBackend(t testing.TB, name string) *backend {
	t.Helper()
	b := &backend{name: name, paths: make(chan string, 1000)}
	b.srv = httptest.NewServer(b.handler())
	t.Cleanup(b.srv.Close)
	return b
}

// handler answers with the backend's name, the request and the forwarding
// headers it got, and echoes WebSocket messages on /ws.
func (b *backend) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/ws", websocket.Handler(func(c *websocket.Conn) {
		_, _ = io.Copy(c, c)
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		select {
		case b.paths <- r.RequestURI:
		default:
		}
		w.Header().Set("X-Backend", b.name)
		fmt.Fprintf(w, "%s %s %s xff=%s proto=%s", b.name, r.Method, r.RequestURI,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
	})
	return mux
}

func (b *backend) port() string {
	_, port, _ := net.SplitHostPort(b.srv.Listener.Addr().String())
	return port
}

// env is one running gateway with its manifests folder and backends.
type env struct {
	t       testing.TB
	dir     string
	ca      *testCA
	app     *backend
	legacy  *backend
	proc    *process
	https   string
	http    string
	admin   string
	stopped chan struct{}
	// cancel stops the gateway before the test ends.
	cancel context.CancelFunc
}

func manifestService(name, port string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: default}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: %[1]s, namespace: default}
subsets:
- addresses: [{ip: 127.0.0.1}]
  ports: [{name: http, port: %[2]s}]
`, name, port)
}

func manifestSecret(name string, certPEM, keyPEM []byte) string {
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: %s, namespace: default}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s
  tls.key: |
%s
`, name, indent(certPEM), indent(keyPEM))
}

const appIngress = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: portico}
spec: {controller: portico.dev/controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  namespace: default
  annotations:
    portico.dev/ssl-redirect: "true"
spec:
  ingressClassName: portico
  tls:
  - hosts: [app.example.test, "*.apps.example.test"]
    secretName: app-tls
  - hosts: [other.example.test]
    secretName: other-tls
  rules:
  - host: app.example.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: app, port: {name: http}}}}
      - {path: /ws, pathType: Exact, backend: {service: {name: app, port: {name: http}}}}
      - {path: /login, pathType: Exact, backend: {service: {name: app, port: {number: 80}}}}
  - host: "*.apps.example.test"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
  - host: other.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
`

func startEnv(t *testing.T, extraArgs ...string) *env {
	t.Helper()
	return startEnvLogging(t, slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug})), extraArgs...)
}

// startEnvLogging is startEnv with the gateway's logger given.
func startEnvLogging(t testing.TB, logger *slog.Logger, extraArgs ...string) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), ca: newTestCA(t), app: newBackend(t, "app"), legacy: newBackend(t, "legacy")}
	appCert, appKey := e.ca.issue(t, 1, "app.example.test", "*.apps.example.test")
	otherCert, otherKey := e.ca.issue(t, 100, "other.example.test")
	e.write("ingress.yaml", appIngress)
	e.write("services.yaml", manifestService("app", e.app.port())+"---\n"+manifestService("legacy-fallback", e.legacy.port()))
	e.write("app-tls.yaml", manifestSecret("app-tls", appCert, appKey))
	e.write("other-tls.yaml", manifestSecret("other-tls", otherCert, otherKey))

	certFile, keyFile := e.ca.defaultCertificateFiles(t)
	args := append([]string{"--manifests", e.dir, "--default-cert-file", certFile, "--default-key-file", keyFile, "--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--log-level", "debug"}, extraArgs...)
	if engine := os.Getenv("PORTICO_TEST_HTTP1_ENGINE"); engine != "" {
		args = append(args, "--http1-engine", engine)
	}
	if loops := os.Getenv("PORTICO_TEST_HTTP2_EVENT_LOOPS"); loops != "" {
		args = append(args, "--http2-event-loops="+loops)
	}
	cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e.run(cfg, logger, 10*time.Second)
	return e
}

// run starts a gateway for the test and waits, up to within, for its first
// configuration; it stops when the test ends, or earlier with e.cancel.
func (e *env) run(cfg *config, logger *slog.Logger, within time.Duration) {
	t := e.t
	t.Helper()
	var err error
	e.proc, err = newProcess(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	e.https, e.http, e.admin = e.proc.server.HTTPSAddr().String(), e.proc.server.HTTPAddr().String(), e.proc.adminLn.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.stopped = make(chan struct{})
	go func() {
		defer close(e.stopped)
		if err := e.proc.run(ctx); err != nil {
			t.Errorf("gateway: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-e.stopped
	})
	select {
	case <-e.proc.firstPublished:
	case <-time.After(within):
		t.Fatalf("the gateway published no configuration within %s", within)
	}
}

// testWriter sends log lines to the test log, shown for failing tests.
// Lines that come after the test's cleanup (a request a stopping gateway
// still serves) are dropped: testing forbids logging then, and the race
// detector reports it.
type testWriter struct{ s *testLogSink }

type testLogSink struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func newTestWriter(t testing.TB) testWriter {
	s := &testLogSink{t: t}
	t.Cleanup(func() {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
	})
	return testWriter{s}
}

func (w testWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if !w.s.done {
		w.s.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (e *env) write(name, content string) {
	e.t.Helper()
	// Write then rename, as editors and ConfigMap mounts do, so the
	// watcher never reads half a file.
	tmp := filepath.Join(e.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.dir, name)); err != nil {
		e.t.Fatal(err)
	}
}

// dialGateway connects every client to the gateway, whatever host the URL
// names, as curl --resolve does.
func (e *env) dialGateway(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

func (e *env) tlsConfig(serverName string) *stdtls.Config {
	return &stdtls.Config{RootCAs: e.ca.pool, ServerName: serverName}
}

// http1Client speaks HTTP/1.1 over TLS (and plain HTTP) to the gateway.
func (e *env) http1Client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				target := e.http
				if strings.HasSuffix(addr, ":443") {
					target = e.https
				}
				return e.dialGateway(target)(ctx, network, addr)
			},
			TLSClientConfig: &stdtls.Config{RootCAs: e.ca.pool},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

// http2Client speaks HTTP/2 over TLS to the gateway.
func (e *env) http2Client() *http.Client {
	var h2 http.Protocols
	h2.SetHTTP2(true)
	return &http.Client{
		Transport: &http.Transport{
			Protocols:       &h2,
			DialContext:     e.dialGateway(e.https),
			TLSClientConfig: &stdtls.Config{RootCAs: e.ca.pool},
		},
		Timeout: 10 * time.Second,
	}
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, string(body)
}

func TestRoutingOverHTTP1AndHTTP2(t *testing.T) {
	e := startEnv(t)
	cases := []struct {
		url      string
		wantBody string // prefix of the answer
	}{
		{"https://app.example.test/api", "app GET /api"},
		{"https://app.example.test/api/orders?id=7", "app GET /api/orders?id=7"},
		{"https://app.example.test/api/", "app GET /api/"},
		{"https://APP.example.test/api/x", "app GET /api/x"},
		{"https://app.example.test/apis", "legacy GET /apis"},
		{"https://app.example.test/", "legacy GET /"},
		{"https://app.example.test/login", "app GET /login"},
		{"https://app.example.test/login/", "legacy GET /login/"},
		{"https://shop.apps.example.test/anything", "app GET /anything"},
		{"https://apps.example.test/", "legacy GET /"},
		{"https://a.b.apps.example.test/", "legacy GET /"},
		{"https://unknown.example.test/page", "legacy GET /page"},
		// Dot segments are resolved before matching, and the backend gets
		// the path that was matched.
		{"https://app.example.test/api/../admin", "legacy GET /admin"},
		{"https://app.example.test/static/..%2F..%2Fapi/x", "app GET /api/x"},
	}
	clients := map[string]*http.Client{"HTTP/1.1": e.http1Client(), "HTTP/2.0": e.http2Client()}
	for proto, c := range clients {
		for _, tc := range cases {
			t.Run(proto+" "+tc.url, func(t *testing.T) {
				// Go's client sends the path as written, dot segments
				// and escapes included.
				req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.Proto != proto {
					t.Errorf("protocol %s, want %s", resp.Proto, proto)
				}
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), tc.wantBody) {
					t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, tc.wantBody)
				}
				if !strings.Contains(string(body), "xff=127.0.0.1 proto=https") {
					t.Errorf("forwarding headers missing: %q", body)
				}
			})
		}
	}
}

func TestPlainHTTPRedirectAndFallback(t *testing.T) {
	e := startEnv(t)
	c := e.http1Client()
	resp, _ := get(t, c, "http://app.example.test/api/x?y=1")
	wantLoc := "https://app.example.test:" + portOf(e.https) + "/api/x?y=1"
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != wantLoc {
		t.Errorf("plain HTTP to a redirecting route: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), wantLoc)
	}
	// The fallback serves plain HTTP as it is: it has no redirect.
	resp, body := get(t, c, "http://unknown.example.test/old-page")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "legacy GET /old-page xff=127.0.0.1 proto=http") {
		t.Errorf("plain HTTP fallback: %d %q", resp.StatusCode, body)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func TestNoFallbackAnswers404(t *testing.T) {
	e := startEnv(t, "--fallback-service", "")
	resp, body := get(t, e.http1Client(), "https://unknown.example.test/")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no route matches") {
		t.Errorf("got %d %q, want 404 saying no route matches", resp.StatusCode, body)
	}
	resp, body = get(t, e.http1Client(), "https://app.example.test/api")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "app ") {
		t.Errorf("routed request: %d %q", resp.StatusCode, body)
	}
}

// handshakeSerial opens a new TLS connection with SNI serverName and
// returns the serial of the certificate the gateway chose.
func (e *env) handshakeSerial(serverName string) (string, error) {
	conn, err := stdtls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.https, e.tlsConfig(serverName))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16), nil
}

func (e *env) waitSerial(serverName, want string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got string
	var err error
	for time.Now().Before(deadline) {
		if got, err = e.handshakeSerial(serverName); err == nil && got == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("%s: serial %q (err %v), want %q", serverName, got, err, want)
}

func TestCertificateSwapKeepsOpenConnections(t *testing.T) {
	e := startEnv(t)
	e.waitSerial("app.example.test", "1")
	e.waitSerial("x.apps.example.test", "1")

	// An HTTP/2 connection opened before the swap.
	h2 := e.http2Client()
	if resp, body := get(t, h2, "https://app.example.test/api/before"); resp.StatusCode != 200 || !strings.HasPrefix(body, "app ") {
		t.Fatalf("before swap: %d %q", resp.StatusCode, body)
	}

	cert, key := e.ca.issue(t, 2, "app.example.test", "*.apps.example.test")
	e.write("app-tls.yaml", manifestSecret("app-tls", cert, key))
	e.waitSerial("app.example.test", "2")
	e.waitSerial("x.apps.example.test", "2")

	// The open connection keeps working, on its original certificate.
	resp, body := get(t, h2, "https://app.example.test/api/after")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "app GET /api/after") {
		t.Fatalf("after swap on the old connection: %d %q", resp.StatusCode, body)
	}
	if serial := resp.TLS.PeerCertificates[0].SerialNumber.Text(16); serial != "1" {
		t.Errorf("the open connection's certificate changed to serial %s", serial)
	}
}

func TestBadSecretBreaksNothingElse(t *testing.T) {
	e := startEnv(t)
	e.waitSerial("other.example.test", "64") // serial 100

	// A broken edit of other-tls: its host keeps the last good certificate,
	// and app.example.test is untouched.
	e.write("other-tls.yaml", manifestSecret("other-tls", []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----"), []byte("nope")))
	// A later valid edit of app-tls proves the broken one was processed.
	cert, key := e.ca.issue(t, 3, "app.example.test", "*.apps.example.test")
	e.write("app-tls.yaml", manifestSecret("app-tls", cert, key))
	e.waitSerial("app.example.test", "3")

	if serial, err := e.handshakeSerial("other.example.test"); err != nil || serial != "64" {
		t.Errorf("other.example.test after a broken edit: serial %q, err %v; want the last good serial 64", serial, err)
	}
	resp, body := get(t, e.http1Client(), "https://app.example.test/api/still-fine")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "app ") {
		t.Errorf("app.example.test: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, e.http1Client(), "https://other.example.test/")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "app ") {
		t.Errorf("other.example.test: %d %q", resp.StatusCode, body)
	}
}

func TestWebSocketThroughGateway(t *testing.T) {
	e := startEnv(t)
	cfg, err := websocket.NewConfig("wss://app.example.test/ws", "https://app.example.test/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TlsConfig = e.tlsConfig("app.example.test")
	cfg.Dialer = &net.Dialer{Timeout: 5 * time.Second}
	raw, err := stdtls.DialWithDialer(cfg.Dialer, "tcp", e.https, cfg.TlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ws, err := websocket.NewClient(cfg, raw)
	if err != nil {
		t.Fatalf("WebSocket handshake through the gateway: %v", err)
	}
	defer ws.Close()
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("hello %d", i)
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := websocket.Message.Receive(ws, &got); err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
}

func TestAdminEndpointsAndRouteMetrics(t *testing.T) {
	e := startEnv(t)
	c := e.http1Client()
	get(t, c, "https://app.example.test/api/x")
	get(t, c, "https://unknown.example.test/")

	admin := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, body := get(t, admin, "http://"+e.admin+path)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	_, metricsText := get(t, admin, "http://"+e.admin+"/metrics")
	for _, want := range []string{
		`portico_request_duration_seconds_bucket{code="2xx",kind="Ingress",method="GET",name="app",namespace="default",rule="0/0"`,
		`portico_request_duration_seconds_bucket{code="2xx",kind="Fallback",method="GET",name="legacy-fallback",namespace="default",rule=""`,
		"portico_requests_in_flight 0",
		"portico_snapshot_generation 1",
		`portico_certificate_expiry_timestamp_seconds{secret="default/app-tls"}`,
		`portico_snapshot_builds_total{result="ok"} 1`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestStartupErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--manifests", "/does/not/exist"}, "--manifests"},
		{[]string{"--manifests", t.TempDir(), "--default-cert-file", "/nope.pem", "--default-key-file", "/nope.key"}, "--default-cert-file"},
	}
	for _, tc := range cases {
		cfg, err := parseConfig(append(tc.args, "--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", ""),
			func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		_, err = newProcess(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}
