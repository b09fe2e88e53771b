package frontdoor

import (
	stdtls "crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"portico.dev/portico/routing"
	porticotls "portico.dev/portico/tls"
)

// TestPartsBeforeFirstSnapshot: before anything is published a socket
// answers 503 on both handlers and hands out its default certificate, or
// fails the handshake without one (a Gateway socket).
func TestPartsBeforeFirstSnapshot(t *testing.T) {
	def, err := porticotls.SelfSigned("frontdoor-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sh := &Shared{}
	noRoutes := func() *routing.Table { return nil }
	noCerts := func() *porticotls.Certificates { return nil }

	https, plain, getCert := sh.parts(Content{Routes: noRoutes, Certificates: noCerts, Default: def, HTTPSPort: 443})
	for name, h := range map[string]http.Handler{"https": https, "http": plain} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "http://app.example.test/", nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: %d before the first snapshot, want 503", name, rec.Code)
		}
	}
	cert, err := getCert(&stdtls.ClientHelloInfo{ServerName: "app.example.test"})
	if err != nil || cert == nil || cert.Leaf != def.Certificate.Leaf {
		t.Errorf("got %v, %v; want the default certificate", cert, err)
	}

	_, _, getCert = sh.parts(Content{Routes: noRoutes, Certificates: noCerts, HTTPSPort: 443})
	if cert, err := getCert(&stdtls.ClientHelloInfo{ServerName: "app.example.test"}); err == nil && cert != nil {
		t.Error("a socket without a default certificate served one")
	}
}
