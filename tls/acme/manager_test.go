package acme_test

import (
	"bytes"
	stdtls "crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	porticotls "portico.dev/portico/tls"
	"portico.dev/portico/tls/acme"
)

// newOfflineManager returns a manager whose CA is never reached: these
// tests cover what is decided before any order.
func newOfflineManager(t testing.TB, hosts []string, logs *bytes.Buffer) *acme.Manager {
	t.Helper()
	m, err := acme.New(acme.Config{
		DirectoryURL: "https://127.0.0.1:1/dir",
		Storage:      &certmagic.FileStorage{Path: t.TempDir()},
		HTTPAddr:     "127.0.0.1:1",
		Hosts:        func() []string { return hosts },
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug - 4})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

func TestAllowed(t *testing.T) {
	var logs bytes.Buffer
	m := newOfflineManager(t, []string{"a.example.org", "b.example.org", "new.example.org"}, &logs)
	for _, tc := range []struct {
		sni  string
		want bool
	}{
		{"a.example.org", true},
		{"New.Example.Org.", true},
		{"c.example.org", false},
		{"example.org", false},
		{"x.a.example.org", false},
		{"", false},
	} {
		if got := m.Allowed(tc.sni); got != tc.want {
			t.Errorf("Allowed(%q) = %v, want %v", tc.sni, got, tc.want)
		}
	}
}

// BenchmarkAllowed is the cost of the ACME name check on a handshake, with
// a thousand ACME hosts.
func BenchmarkAllowed(b *testing.B) {
	var hosts []string
	for i := range 1000 {
		hosts = append(hosts, fmt.Sprintf("h%04d.example.org", i))
	}
	var logs bytes.Buffer
	m := newOfflineManager(b, hosts, &logs)
	b.ReportAllocs()
	for b.Loop() {
		if !m.Allowed("h0500.example.org") || m.Allowed("stranger.example.org") {
			b.Fatal("wrong answer")
		}
	}
}

func TestChainPrecedence(t *testing.T) {
	var logs bytes.Buffer
	m := newOfflineManager(t, []string{"acme.example.test", "secret.example.test"}, &logs)
	def, err := porticotls.SelfSigned("portico-default", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fallbackCalls := 0
	fallback := func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
		fallbackCalls++
		return def.Certificate, nil
	}
	hasSecret := func(name string) bool { return name == "secret.example.test" }
	// certmagic logs the client's address, as a real handshake has one.
	conn, peer := net.Pipe()
	defer conn.Close()
	defer peer.Close()
	chain := m.Chain(hasSecret, fallback)

	for _, sni := range []string{
		"",                      // no SNI: the default
		"secret.example.test",   // a Secret wins even for an ACME name
		"stranger.example.test", // not routed: never asks the issuer
		"acme.example.test",     // ACME name, nothing issued yet: the default meanwhile
	} {
		before := fallbackCalls
		cert, err := chain(&stdtls.ClientHelloInfo{ServerName: sni, Conn: conn})
		if err != nil || cert != def.Certificate {
			t.Errorf("SNI %q: %v, %v; want the fallback certificate", sni, cert, err)
		}
		if fallbackCalls != before+1 {
			t.Errorf("SNI %q: fallback not consulted", sni)
		}
	}
	if _, err := m.GetCertificate(&stdtls.ClientHelloInfo{ServerName: "stranger.example.test", Conn: conn}); !errors.Is(err, acme.ErrNotAllowed) {
		t.Errorf("GetCertificate for an unrouted name: %v, want ErrNotAllowed", err)
	}
}

func TestHTTPHandlerPassesOtherRequests(t *testing.T) {
	var logs bytes.Buffer
	m := newOfflineManager(t, []string{"acme.example.test"}, &logs)
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Routed", "yes")
		w.WriteHeader(http.StatusTeapot)
	})
	h := m.HTTPHandler(next)
	for _, tc := range []struct{ host, path string }{
		{"acme.example.test", "/"},
		{"acme.example.test", "/.well-known/acme-challenge/unknown-token"},
		{"stranger.example.test", "/.well-known/acme-challenge/some-token"},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://"+tc.host+tc.path, nil)
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusTeapot || rec.Header().Get("X-Routed") != "yes" {
			t.Errorf("%s%s: %d, not passed to routing", tc.host, tc.path, rec.Code)
		}
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	hosts := func() []string { return nil }
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	for _, tc := range []struct {
		cfg  acme.Config
		want string
	}{
		{acme.Config{Storage: storage, HTTPAddr: ":80", Hosts: hosts}, "directory"},
		{acme.Config{DirectoryURL: "https://ca/dir", HTTPAddr: ":80", Hosts: hosts}, "storage"},
		{acme.Config{DirectoryURL: "https://ca/dir", Storage: storage, HTTPAddr: ":80"}, "hosts"},
		{acme.Config{DirectoryURL: "https://ca/dir", Storage: storage, Hosts: hosts}, "plain-HTTP"},
	} {
		if _, err := acme.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
}
