package tls

import (
	stdtls "crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
)

// Every HTTPS socket, the flag-configured one and the Gateway ones, offers
// only AEAD suites on TLS 1.2 unless legacy ciphers are asked for.
func TestServerTLSConfigOffersOnlyAEADOnTLS12(t *testing.T) {
	names := map[uint16]string{}
	for _, s := range append(stdtls.CipherSuites(), stdtls.InsecureCipherSuites()...) {
		names[s.ID] = s.Name
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	get := func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) { return nil, nil }
	srv, err := ServeListener(ln, true, ServerConfig{GetCertificate: get, HTTPSHandler: nil404{}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())
	for name, cfg := range map[string]*stdtls.Config{
		"flag listener":    serverTLSConfig(get, false),
		"Gateway listener": srv.httpsServer.TLSConfig,
	} {
		if len(cfg.CipherSuites) == 0 {
			t.Errorf("%s: no cipher suites configured, Go's defaults (with CBC) apply", name)
		}
		for _, id := range cfg.CipherSuites {
			if n := names[id]; !strings.HasPrefix(n, "TLS_ECDHE_") || !(strings.Contains(n, "_GCM_") || strings.Contains(n, "CHACHA20_POLY1305")) {
				t.Errorf("%s offers %s", name, n)
			}
		}
	}
	if cfg := serverTLSConfig(get, true); cfg.CipherSuites != nil {
		t.Errorf("legacy ciphers: CipherSuites = %v, want Go's defaults", cfg.CipherSuites)
	}
}

type nil404 struct{}

func (nil404) ServeHTTP(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }
