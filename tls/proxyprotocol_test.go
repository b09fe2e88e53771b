package tls

import (
	"bufio"
	stdtls "crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestProxyProtocol serves HTTPS and plain sockets with PROXY protocol
// from trusted peers: a v1 header from a trusted peer gives the request
// the client's address, over TLS and over plain HTTP; a trusted peer may
// skip the header; an untrusted peer's header is never believed. The
// addresses in the headers are data only; all traffic stays on loopback.
func TestProxyProtocol(t *testing.T) {
	ca := newTestCA(t)
	pair := ca.pair(t, "example.org")
	remote := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.RemoteAddr) })
	serve := func(secure bool, trusted string) string {
		return serveListener(t, secure, ServerConfig{
			GetCertificate:    CertificateGetter(func(string) *KeyPair { return pair }),
			HTTPSHandler:      remote,
			HTTPHandler:       remote,
			ProxyProtocolFrom: []netip.Prefix{netip.MustParsePrefix(trusted)},
		})
	}
	trustedTLS, trustedPlain := serve(true, "127.0.0.0/8"), serve(false, "127.0.0.0/8")
	untrustedPlain := serve(false, "10.0.0.0/8")

	// ask sends one request on a fresh connection, after header (if any).
	ask := func(addr, header string, secure bool) (string, error) {
		raw, err := net.DialTimeout("tcp", addr, safetyNet)
		if err != nil {
			return "", err
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(safetyNet))
		if _, err := io.WriteString(raw, header); err != nil {
			return "", err
		}
		var conn net.Conn = raw
		if secure {
			tc := stdtls.Client(raw, &stdtls.Config{RootCAs: ca.Pool, ServerName: "example.org", NextProtos: []string{"http/1.1"}})
			if err := tc.Handshake(); err != nil {
				return "", err
			}
			conn = tc
		}
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n"); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.Status + " " + string(body), err
	}

	const v1 = "PROXY TCP4 203.0.113.7 198.51.100.1 5555 443\r\n"
	tests := []struct {
		name, addr, header string
		secure             bool
		want               string // prefix of "status body"; "" for a failed exchange
	}{
		{"trusted, TLS, header", trustedTLS, v1, true, "200 OK 203.0.113.7:5555"},
		{"trusted, TLS, no header", trustedTLS, "", true, "200 OK 127.0.0.1:"},
		{"trusted, plain, header", trustedPlain, v1, false, "200 OK 203.0.113.7:5555"},
		{"trusted, plain, no header", trustedPlain, "", false, "200 OK 127.0.0.1:"},
		{"untrusted, plain, header is not believed", untrustedPlain, v1, false, "400 Bad Request"},
		{"untrusted, plain, no header", untrustedPlain, "", false, "200 OK 127.0.0.1:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ask(tc.addr, tc.header, tc.secure)
			if err != nil || !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q (%v), want %q...", got, err, tc.want)
			}
		})
	}
}
