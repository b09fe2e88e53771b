package routing

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"portico.dev/portico/upstream"
)

// The listeners of the conformance Gateway same-namespace-with-https-listener,
// all on port 443 with one certificate.
var conformanceHTTPSListeners = []string{"", "second-example.org", "*.wildcard.org", "fourth-example.wildcard.org"}

// misdirectedCases are the httproute-https-listener-detect-misdirected-requests
// conformance cases: 421 when the Host belongs to another listener than the
// SNI, otherwise the route table answers (200, or 404 for no route).
var misdirectedCases = []struct {
	serverName, host string
	status           int
}{
	{"example.org", "example.org", 200},
	{"example.org", "second-example.org", 421},
	{"example.org", "unknown-example.org", 404},
	{"second-example.org", "second-example.org", 200},
	{"second-example.org", "example.org", 421},
	{"second-example.org", "unknown-example.org", 421},
	{"third-example.wildcard.org", "third-example.wildcard.org", 200},
	{"third-example.wildcard.org", "fith-example.wildcard.org", 200},
	{"third-example.wildcard.org", "fourth-example.wildcard.org", 421},
	{"third-example.wildcard.org", "second-example.org", 421},
	{"third-example.wildcard.org", "unknown-example.org", 421},
	{"fourth-example.wildcard.org", "fourth-example.wildcard.org", 200},
	{"fourth-example.wildcard.org", "fith-example.wildcard.org", 421},
	{"unknown-example.org", "example.org", 200},
	{"unknown-example.org", "unknown-example.org", 404},
}

func TestListenerHostsMisdirected(t *testing.T) {
	l := newListenerHosts(conformanceHTTPSListeners)
	for _, tc := range misdirectedCases {
		if got := l.Misdirected(tc.serverName, tc.host); got != (tc.status == 421) {
			t.Errorf("Misdirected(%q, %q) = %v", tc.serverName, tc.host, got)
		}
	}
	more := []struct {
		serverName, host string
		want             bool
	}{
		{"", "second-example.org", false}, // no SNI: a client connecting by address
		{"Second-Example.org.", "second-example.org:443", false},
		{"a.b.wildcard.org", "c.wildcard.org", false},
		{"wildcard.org", "a.wildcard.org", true},
	}
	for _, tc := range more {
		if got := l.Misdirected(tc.serverName, tc.host); got != tc.want {
			t.Errorf("Misdirected(%q, %q) = %v, want %v", tc.serverName, tc.host, got, tc.want)
		}
	}
	if (*listenerHosts)(nil).Misdirected("a", "b") {
		t.Error("a nil set must not report anything misdirected")
	}
	// Without a catch-all listener, names no listener serves share the
	// "no listener" answer.
	noCatchAll := newListenerHosts([]string{"a.example", "a.example", "*.example"})
	for _, tc := range []struct {
		host string
		want int
	}{{"a.example", 0}, {"b.example", 2}, {"other.org", -1}} {
		if got := noCatchAll.Listener(tc.host); got != tc.want {
			t.Errorf("Listener(%q) = %d, want %d", tc.host, got, tc.want)
		}
	}
}

// TestMisdirectedOverHTTPS runs the conformance cases over real HTTP/2
// connections whose SNI differs from the Host they ask for.
func TestMisdirectedOverHTTPS(t *testing.T) {
	v1 := startEcho(t, "v1")
	route := func(host string) *Route {
		r := prefixRoute("/detect-misdirected-requests", v1.backend())
		r.Host = host
		return r
	}
	var listeners []ListenerRoutes
	for _, h := range conformanceHTTPSListeners {
		host := h
		if h == "" {
			host = "example.org"
		}
		listeners = append(listeners, ListenerRoutes{Hostname: h, Routes: []*Route{route(host)}})
	}
	table, _ := CompileListeners(listeners, nil)
	table.AnswerMisdirected()
	logger := slog.New(slog.DiscardHandler)
	tr := upstream.NewTransport(upstream.Config{Logger: logger})
	t.Cleanup(func() { _ = tr.Close() })
	srv := httptest.NewUnstartedServer(NewHandler(HandlerConfig{Table: func() *Table { return table }, Forwarder: tr, Logger: logger}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	for i, tc := range misdirectedCases {
		t.Run(fmt.Sprintf("%d %s %s", i, tc.serverName, tc.host), func(t *testing.T) {
			c := &http.Client{Timeout: safety, Transport: &http.Transport{
				TLSClientConfig:   &tls.Config{ServerName: tc.serverName, InsecureSkipVerify: true},
				ForceAttemptHTTP2: true,
			}}
			defer c.CloseIdleConnections()
			resp, _ := send(t, c, "GET", srv.URL+"/detect-misdirected-requests", http.Header{"Host": {tc.host}}, "")
			if resp.ProtoMajor != 2 {
				t.Errorf("protocol %s, want HTTP/2", resp.Proto)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}

	// Plain HTTP has no SNI to compare with.
	plain := httptest.NewServer(NewHandler(HandlerConfig{Table: func() *Table { return table }, Forwarder: tr, Logger: logger}))
	t.Cleanup(plain.Close)
	resp, _ := send(t, noRedirects(), "GET", plain.URL+"/detect-misdirected-requests", http.Header{"Host": {"second-example.org"}}, "")
	if resp.StatusCode != 200 {
		t.Errorf("plain HTTP: status %d, want 200", resp.StatusCode)
	}
}
