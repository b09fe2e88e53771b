package tls

import (
	"context"
	stdtls "crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// serveListener binds a loopback socket, serves it with ServeListener and
// shuts it down at the end of the test.
func serveListener(t *testing.T, secure bool, cfg ServerConfig, opts ...ListenerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := ServeListener(ln, secure, cfg, opts...)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), safetyNet)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestServeListenerPlainSpeaksH2C: a plain Gateway socket serves HTTP/2
// with prior knowledge, and HTTP/1.1 on the same socket, whichever engine
// serves HTTP/1.x (the portico engine hands h2c connections on by their
// preface).
func TestServeListenerPlainSpeaksH2C(t *testing.T) {
	for _, engine := range []string{HTTP1EnginePortico, HTTP1EngineNetHTTP} {
		t.Run(engine, func(t *testing.T) {
			addr := serveListener(t, false, ServerConfig{HTTPHandler: http.HandlerFunc(echoProtocol), Limits: Limits{HTTP1Engine: engine}})
			testPlainSpeaksH2C(t, addr)
		})
	}
}

func testPlainSpeaksH2C(t *testing.T, addr string) {
	for _, tc := range []struct {
		name  string
		proto func(*http.Protocols)
		want  string
	}{
		{"prior knowledge", func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }, "HTTP/2.0 alpn=none"},
		{"HTTP/1.1", func(p *http.Protocols) { p.SetHTTP1(true) }, "HTTP/1.1 alpn=none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p http.Protocols
			tc.proto(&p)
			c := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: safetyNet}
			defer c.CloseIdleConnections()
			if body, _ := get(t, c, "http://"+addr+"/"); body != tc.want {
				t.Errorf("got %q, want %q", body, tc.want)
			}
		})
	}
}

// TestServeListenerClientValidation: a secure socket with
// WithClientValidation applies the validation it reads on each handshake.
func TestServeListenerClientValidation(t *testing.T) {
	ca, otherCA := newTestCA(t), newTestCA(t)
	server := ca.pair(t, "example.org")
	good, wrong := clientCert(t, ca), clientCert(t, otherCA)
	validOnly, err := NewClientValidation(ca.PEM, AllowValidOnly)
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[ClientValidation]
	addr := serveListener(t, true, ServerConfig{
		GetCertificate: CertificateGetter(func(string) *KeyPair { return server }),
		HTTPSHandler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Proto+" peer certificates: "+itoa(len(r.TLS.PeerCertificates)))
		}),
	}, WithClientValidation(current.Load))

	tests := []struct {
		name       string
		validation *ClientValidation
		client     *stdtls.Certificate
		want       string // "" for a refused handshake
	}{
		{"valid only, matching certificate", validOnly, &good, "HTTP/2.0 peer certificates: 1"},
		{"valid only, no certificate", validOnly, nil, ""},
		{"valid only, other CA", validOnly, &wrong, ""},
		{"validation removed, no certificate", nil, nil, "HTTP/2.0 peer certificates: 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			current.Store(tc.validation)
			cfg := &stdtls.Config{RootCAs: ca.Pool, ServerName: "example.org"}
			if tc.client != nil {
				cfg.Certificates = []stdtls.Certificate{*tc.client}
			}
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: safetyNet}
			defer c.CloseIdleConnections()
			if tc.want == "" {
				resp, err := c.Get("https://" + addr + "/")
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request succeeded with status %d, want a refused handshake", resp.StatusCode)
				}
				return
			}
			if body, _ := get(t, c, "https://"+addr+"/"); body != tc.want {
				t.Errorf("got %q, want %q", body, tc.want)
			}
		})
	}
}
