package tls

import (
	"bufio"
	"bytes"
	"context"
	stdtls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// safetyNet bounds every wait in these tests. It is never the expected
// outcome, only a guard against hanging when something is broken.
const safetyNet = 10 * time.Second

// testServer is a running Server on loopback ports.
type testServer struct {
	*Server
	certs atomic.Pointer[Certificates]
	ca    *testCA
}

type serverOption func(*ServerConfig)

func withLimits(l Limits) serverOption { return func(c *ServerConfig) { c.Limits = l } }

func withHandler(h http.Handler) serverOption {
	return func(c *ServerConfig) { c.HTTPSHandler, c.HTTPHandler = h, h }
}

// startServer listens on 127.0.0.1 with kernel-chosen ports, serves, and
// shuts down at the end of the test, failing it if Serve reports an error.
func startServer(t *testing.T, ca *testCA, certs *Certificates, opts ...serverOption) *testServer {
	t.Helper()
	ts := &testServer{ca: ca}
	ts.certs.Store(certs)
	cfg := ServerConfig{
		HTTPSAddr:      "127.0.0.1:0",
		HTTPAddr:       "127.0.0.1:0",
		GetCertificate: CertificateGetter(func(name string) *KeyPair { return ts.certs.Load().Lookup(name) }),
		HTTPSHandler:   http.HandlerFunc(echoProtocol),
		HTTPHandler:    http.HandlerFunc(echoProtocol),
		Logger:         slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	srv, err := Listen(cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ts.Server = srv
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), safetyNet)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(safetyNet):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return ts
}

// echoProtocol answers with what the server saw of the connection.
func echoProtocol(w http.ResponseWriter, r *http.Request) {
	alpn := "none"
	if r.TLS != nil {
		alpn = r.TLS.NegotiatedProtocol
	}
	fmt.Fprintf(w, "%s alpn=%s", r.Proto, alpn)
}

func (ts *testServer) httpsURL() string { return "https://" + ts.HTTPSAddr().String() + "/" }
func (ts *testServer) httpURL() string  { return "http://" + ts.HTTPAddr().String() + "/" }

func (ts *testServer) clientTLS(serverName string) *stdtls.Config {
	return &stdtls.Config{RootCAs: ts.ca.Pool, ServerName: serverName}
}

func h2Client(cfg *stdtls.Config) *http.Client {
	var h2 http.Protocols
	h2.SetHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &h2, TLSClientConfig: cfg}, Timeout: safetyNet}
}

// h1Client offers only http/1.1 over TLS, as curl --http1.1 does.
func h1Client(cfg *stdtls.Config) *http.Client {
	if cfg != nil {
		cfg.NextProtos = []string{"http/1.1"}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: safetyNet}
}

func closeIdle(c *http.Client) {
	if t, ok := c.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// get performs a GET and returns the body and the serial of the leaf the
// client was shown ("" over plain HTTP).
func get(t *testing.T, c *http.Client, url string) (body, serial string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", url, resp.StatusCode, b)
	}
	if resp.TLS != nil {
		serial = resp.TLS.PeerCertificates[0].SerialNumber.Text(16)
	}
	return string(b), serial
}

func TestServerSelectsCertificateBySNI(t *testing.T) {
	ca := newTestCA(t)
	exact := ca.pair(t, "a.example.com")
	wildcard := ca.pair(t, "*.example.com")
	def := ca.pair(t, "default.invalid")
	ts := startServer(t, ca, NewCertificates([]Binding{
		{Host: "a.example.com", Pair: exact},
		{Host: "*.example.com", Pair: wildcard},
	}, def))

	tests := []struct {
		name       string
		serverName string
		verify     bool // the client can verify the name it asked for
		want       *KeyPair
	}{
		{"exact", "a.example.com", true, exact},
		{"wildcard", "b.example.com", true, wildcard},
		{"uppercase", "A.EXAMPLE.COM", true, exact},
		{"unknown name gets the default", "other.example.net", false, def},
		{"no SNI gets the default", "", false, def},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ts.clientTLS(tt.serverName)
			cfg.InsecureSkipVerify = !tt.verify
			conn, err := stdtls.DialWithDialer(&net.Dialer{Timeout: safetyNet}, "tcp", ts.HTTPSAddr().String(), cfg)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			state := conn.ConnectionState()
			if got := state.PeerCertificates[0].SerialNumber.Text(16); got != tt.want.Serial {
				t.Errorf("serial = %s, want %s", got, tt.want.Serial)
			}
			if state.Version < stdtls.VersionTLS12 {
				t.Errorf("negotiated version %x below TLS 1.2", state.Version)
			}
		})
	}
}

func TestServerNegotiatesProtocols(t *testing.T) {
	ca := newTestCA(t)
	ts := startServer(t, ca, NewCertificates(nil, ca.pair(t, "a.example.com")))

	tests := []struct {
		name   string
		client func() *http.Client
		url    func() string
		want   string
	}{
		{"h2 over TLS", func() *http.Client { return h2Client(ts.clientTLS("a.example.com")) }, ts.httpsURL, "HTTP/2.0 alpn=h2"},
		{"HTTP/1.1 over TLS", func() *http.Client { return h1Client(ts.clientTLS("a.example.com")) }, ts.httpsURL, "HTTP/1.1 alpn=http/1.1"},
		{"TLS client without ALPN", func() *http.Client {
			return &http.Client{Transport: &http.Transport{TLSClientConfig: ts.clientTLS("a.example.com")}, Timeout: safetyNet}
		}, ts.httpsURL, "HTTP/1.1 alpn="},
		{"HTTP/1.1 in plain text", func() *http.Client { return h1Client(nil) }, ts.httpURL, "HTTP/1.1 alpn=none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.client()
			defer closeIdle(c)
			if body, _ := get(t, c, tt.url()); body != tt.want {
				t.Errorf("server saw %q, want %q", body, tt.want)
			}
		})
	}
}

func TestServerTLSVersions(t *testing.T) {
	ca := newTestCA(t)
	ts := startServer(t, ca, NewCertificates(nil, ca.pair(t, "a.example.com")))

	tests := []struct {
		name    string
		version uint16
		ok      bool
	}{
		{"TLS 1.0 refused", stdtls.VersionTLS10, false},
		{"TLS 1.1 refused", stdtls.VersionTLS11, false},
		{"TLS 1.2 accepted", stdtls.VersionTLS12, true},
		{"TLS 1.3 accepted", stdtls.VersionTLS13, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ts.clientTLS("a.example.com")
			cfg.MinVersion, cfg.MaxVersion = tt.version, tt.version
			conn, err := stdtls.DialWithDialer(&net.Dialer{Timeout: safetyNet}, "tcp", ts.HTTPSAddr().String(), cfg)
			if err == nil {
				defer conn.Close()
			}
			if tt.ok && err != nil {
				t.Fatalf("handshake failed: %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatalf("handshake succeeded with version %x", conn.ConnectionState().Version)
			}
		})
	}
}

func TestServerCertificateSwapAppliesToNewConnections(t *testing.T) {
	ca := newTestCA(t)
	before := ca.pair(t, "a.example.com")
	after := ca.pair(t, "a.example.com")
	ts := startServer(t, ca, NewCertificates([]Binding{{Host: "a.example.com", Pair: before}}, nil))

	established := h2Client(ts.clientTLS("a.example.com"))
	defer closeIdle(established)
	if _, serial := get(t, established, ts.httpsURL()); serial != before.Serial {
		t.Fatalf("before the swap: serial %s, want %s", serial, before.Serial)
	}

	ts.certs.Store(NewCertificates([]Binding{{Host: "a.example.com", Pair: after}}, nil))

	fresh := h2Client(ts.clientTLS("a.example.com"))
	defer closeIdle(fresh)
	if _, serial := get(t, fresh, ts.httpsURL()); serial != after.Serial {
		t.Errorf("new connection after the swap: serial %s, want %s", serial, after.Serial)
	}
	// The HTTP/2 connection opened before the swap keeps its certificate and
	// keeps carrying requests.
	if body, serial := get(t, established, ts.httpsURL()); serial != before.Serial || body != "HTTP/2.0 alpn=h2" {
		t.Errorf("established connection after the swap: serial %s body %q, want serial %s over h2", serial, body, before.Serial)
	}
}

func TestServerRejectsOversizedHeaders(t *testing.T) {
	ca := newTestCA(t)
	const limit = 4 << 10
	ts := startServer(t, ca, NewCertificates(nil, ca.pair(t, "a.example.com")),
		withLimits(Limits{MaxHeaderBytes: limit}))

	tests := []struct {
		name       string
		client     *http.Client
		url        string
		headerSize int
		want       int
	}{
		{"TLS within limit", h1Client(ts.clientTLS("a.example.com")), ts.httpsURL(), limit / 2, http.StatusOK},
		// net/http tolerates up to 4 KiB over the limit while buffering, so
		// go well past it.
		{"TLS over limit", h1Client(ts.clientTLS("a.example.com")), ts.httpsURL(), 4 * limit, http.StatusRequestHeaderFieldsTooLarge},
		{"plain over limit", h1Client(nil), ts.httpURL(), 4 * limit, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer closeIdle(tt.client)
			req, err := http.NewRequest(http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Padding", strings.Repeat("p", tt.headerSize))
			resp, err := tt.client.Do(req)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// waitClosed reads from conn until the server closes it, and fails if that
// takes longer than the safety net.
func waitClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(safetyNet))
	_, err := io.Copy(io.Discard, conn)
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		t.Fatal("server did not close the connection")
	}
}

func TestServerClosesStalledClients(t *testing.T) {
	ca := newTestCA(t)
	const timeout = 300 * time.Millisecond
	ts := startServer(t, ca, NewCertificates(nil, ca.pair(t, "a.example.com")),
		withLimits(Limits{ReadHeaderTimeout: timeout, IdleTimeout: timeout}))

	tests := []struct {
		name string
		addr func() net.Addr
		send string
	}{
		{"half a request line", ts.HTTPAddr, "GET /slow HT"},
		{"headers never finished", ts.HTTPAddr, "GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Slow: "},
		{"TLS handshake never started", ts.HTTPSAddr, ""},
		{"TLS handshake abandoned", ts.HTTPSAddr, "\x16\x03\x01\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", tt.addr().String(), safetyNet)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tt.send != "" {
				if _, err := io.WriteString(conn, tt.send); err != nil {
					t.Fatal(err)
				}
			}
			waitClosed(t, conn)
		})
	}
}

func TestServerClosesIdleConnections(t *testing.T) {
	ca := newTestCA(t)
	const timeout = 300 * time.Millisecond
	ts := startServer(t, ca, NewCertificates(nil, ca.pair(t, "a.example.com")),
		withLimits(Limits{IdleTimeout: timeout}))

	t.Run("HTTP/1.1 keep-alive", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", ts.HTTPAddr().String(), safetyNet)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(safetyNet))
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			t.Fatal("server did not keep the connection alive")
		}
		waitClosed(t, conn)
	})

	t.Run("HTTP/2", func(t *testing.T) {
		cfg := ts.clientTLS("a.example.com")
		cfg.NextProtos = []string{"h2"}
		conn, err := stdtls.DialWithDialer(&net.Dialer{Timeout: safetyNet}, "tcp", ts.HTTPSAddr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(safetyNet))
		if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(conn, conn)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		sawGoAway := false
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				var netErr net.Error
				if errors.As(err, &netErr) && netErr.Timeout() {
					t.Fatal("server did not close the idle HTTP/2 connection")
				}
				break
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.GoAwayFrame:
				sawGoAway = true
			}
		}
		if !sawGoAway {
			t.Error("idle HTTP/2 connection closed without GOAWAY")
		}
	})
}

func TestServerShutdownFinishesInFlightRequests(t *testing.T) {
	tests := []struct {
		name   string
		client func(*testServer) *http.Client
		url    func(*testServer) string
		addr   func(*testServer) net.Addr
	}{
		{"HTTP/1.1 plain", func(*testServer) *http.Client { return h1Client(nil) },
			(*testServer).httpURL, func(ts *testServer) net.Addr { return ts.HTTPAddr() }},
		{"h2 over TLS", func(ts *testServer) *http.Client { return h2Client(ts.clientTLS("a.example.com")) },
			(*testServer).httpsURL, func(ts *testServer) net.Addr { return ts.HTTPSAddr() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newTestCA(t)
			entered := make(chan struct{})
			release := make(chan struct{})
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				<-release
				io.WriteString(w, "finished")
			})
			ts := startServer(t, ca, NewCertificates(nil, ca.pair(t, "a.example.com")), withHandler(handler))
			client := tt.client(ts)
			defer closeIdle(client)

			type result struct {
				body string
				err  error
			}
			results := make(chan result, 1)
			go func() {
				resp, err := client.Get(tt.url(ts))
				if err != nil {
					results <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				results <- result{string(b), err}
			}()
			select {
			case <-entered:
			case <-time.After(safetyNet):
				t.Fatal("request never reached the handler")
			}

			shutdownDone := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), safetyNet)
				defer cancel()
				shutdownDone <- ts.Shutdown(ctx)
			}()

			// Shutdown stops accepting before it waits: poll, within the
			// safety net, until new connections are refused.
			deadline := time.Now().Add(safetyNet)
			for {
				conn, err := net.DialTimeout("tcp", tt.addr(ts).String(), safetyNet)
				if err != nil {
					break
				}
				conn.Close()
				if time.Now().After(deadline) {
					t.Fatal("listener still accepting after Shutdown")
				}
				time.Sleep(10 * time.Millisecond)
			}
			select {
			case err := <-shutdownDone:
				t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
			default:
			}

			close(release)
			select {
			case r := <-results:
				if r.err != nil || r.body != "finished" {
					t.Fatalf("in-flight request: body %q, err %v", r.body, r.err)
				}
			case <-time.After(safetyNet):
				t.Fatal("in-flight request did not finish")
			}
			select {
			case err := <-shutdownDone:
				if err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			case <-time.After(safetyNet):
				t.Fatal("Shutdown did not return after the request finished")
			}
		})
	}
}

func TestListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	getCert := CertificateGetter(func(string) *KeyPair { return nil })
	h := http.NotFoundHandler()

	tests := []struct {
		name    string
		cfg     ServerConfig
		wantErr string
	}{
		{"no address", ServerConfig{HTTPSHandler: h, HTTPHandler: h}, "no listen address"},
		{"HTTPS without certificates", ServerConfig{HTTPSAddr: "127.0.0.1:0", HTTPSHandler: h}, "needs GetCertificate"},
		{"HTTPS without handler", ServerConfig{HTTPSAddr: "127.0.0.1:0", GetCertificate: getCert}, "needs HTTPSHandler"},
		{"HTTP without handler", ServerConfig{HTTPAddr: "127.0.0.1:0"}, "needs HTTPHandler"},
		{"port in use", ServerConfig{HTTPAddr: busy.Addr().String(), HTTPHandler: h}, "listen for HTTP on"},
		{"HTTPS port in use", ServerConfig{HTTPSAddr: busy.Addr().String(), GetCertificate: getCert, HTTPSHandler: h}, "listen for HTTPS on"},
		{"frame size too small", ServerConfig{HTTPAddr: "127.0.0.1:0", HTTPHandler: h,
			Limits: Limits{HTTP2MaxReadFrameSize: 1024}}, "max read frame size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := Listen(tt.cfg)
			if err == nil {
				srv.Shutdown(context.Background())
				t.Fatalf("Listen succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestServerWithOneListener(t *testing.T) {
	srv, err := Listen(ServerConfig{HTTPAddr: "127.0.0.1:0", HTTPHandler: http.HandlerFunc(echoProtocol)})
	if err != nil {
		t.Fatal(err)
	}
	if srv.HTTPSAddr() != nil {
		t.Errorf("HTTPSAddr = %v without an HTTPS listener", srv.HTTPSAddr())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	c := h1Client(nil)
	if body, _ := get(t, c, "http://"+srv.HTTPAddr().String()+"/"); body != "HTTP/1.1 alpn=none" {
		t.Errorf("body = %q", body)
	}
	closeIdle(c)
	if err := srv.Serve(); err == nil {
		t.Error("second Serve succeeded")
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestShutdownBeforeServeReleasesPorts(t *testing.T) {
	srv, err := Listen(ServerConfig{HTTPAddr: "127.0.0.1:0", HTTPHandler: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.HTTPAddr().String()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still bound after Shutdown: %v", err)
	}
	ln.Close()
}

func TestErrorLogLevels(t *testing.T) {
	tests := []struct {
		line  string
		level string
	}{
		{"http: TLS handshake error from 192.0.2.1:5555: EOF\n", "DEBUG"},
		{"http2: server: error reading preface from client 192.0.2.1:5555: EOF\n", "DEBUG"},
		{"http: Accept error: too many open files; retrying in 5ms\n", "WARN"},
		{"http: panic serving 192.0.2.1:5555: boom\n", "WARN"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var buf bytes.Buffer
			w := errorLogWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			if n, err := w.Write([]byte(tt.line)); err != nil || n != len(tt.line) {
				t.Fatalf("Write = %d, %v", n, err)
			}
			out := buf.String()
			if !strings.Contains(out, "level="+tt.level) {
				t.Errorf("logged %q, want level %s", out, tt.level)
			}
			if strings.Count(out, "\n") != 1 {
				t.Errorf("logged %q, want one line without the trailing newline duplicated", out)
			}
		})
	}
}

func TestHandshakeNoiseIsLoggedAtDebug(t *testing.T) {
	ca := newTestCA(t)
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := startServer(t, ca, NewCertificates(nil, ca.pair(t, "a.example.com")),
		func(c *ServerConfig) { c.Logger = logger })

	conn, err := net.DialTimeout("tcp", ts.HTTPSAddr().String(), safetyNet)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: scanner\r\n\r\n") // plain text to a TLS port
	waitClosed(t, conn)
	conn.Close()

	deadline := time.Now().Add(safetyNet)
	for !strings.Contains(logs.String(), "TLS handshake error") {
		if time.Now().After(deadline) {
			t.Fatalf("no handshake error logged; logs:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, "TLS handshake error") && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("handshake error not at debug: %s", line)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger writing from server
// goroutines while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
