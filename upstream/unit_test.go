package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestUpgradeType(t *testing.T) {
	tests := []struct {
		name       string
		protoMajor int
		header     http.Header
		want       string
	}{
		{"websocket", 1, http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}}, "websocket"},
		{"no connection token", 1, http.Header{"Upgrade": {"websocket"}}, ""},
		{"no upgrade header", 1, http.Header{"Connection": {"upgrade"}}, ""},
		{"http2 cannot upgrade", 2, http.Header{"Connection": {"upgrade"}, "Upgrade": {"websocket"}}, ""},
		{"h2c is never tunnelled", 1, http.Header{"Connection": {"Upgrade, HTTP2-Settings"}, "Upgrade": {"h2c"}}, ""},
		{"protocol not allowed", 1, http.Header{"Connection": {"upgrade"}, "Upgrade": {"TLS/1.2"}}, ""},
		{"allowed by configuration", 1, http.Header{"Connection": {"upgrade"}, "Upgrade": {"Example"}}, "Example"},
		{"several protocols", 1, http.Header{"Connection": {"upgrade"}, "Upgrade": {"websocket, h2c"}}, ""},
		{"two Upgrade fields", 1, http.Header{"Connection": {"upgrade"}, "Upgrade": {"websocket", "h2c"}}, ""},
	}
	tr := NewTransport(Config{AllowedUpgrades: []string{"example", "h2c"}})
	defer tr.Close()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{ProtoMajor: tc.protoMajor, Header: tc.header}
			if got := tr.upgradeType(r); got != tc.want {
				t.Errorf("upgradeType = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNamedInConnection(t *testing.T) {
	tests := []struct {
		connection []string
		name       string
		want       bool
	}{
		{[]string{"X-A, x-b"}, "X-B", true},
		{[]string{"close", " X-Trace "}, "X-Trace", true},
		{[]string{"X-Tracer"}, "X-Trace", false},
		{nil, "X-Trace", false},
		{[]string{",,"}, "X-Trace", false},
	}
	for _, tc := range tests {
		if got := namedInConnection(tc.connection, tc.name); got != tc.want {
			t.Errorf("namedInConnection(%q, %q) = %v, want %v", tc.connection, tc.name, got, tc.want)
		}
	}
}

func TestPoolTakeIdle(t *testing.T) {
	now := time.Now()
	const maxAge = time.Minute
	newConn := func(p *endpointPool, age time.Duration) *conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return &conn{nc: a, pool: p, idleSince: now.Add(-age)}
	}
	t.Run("most recent first", func(t *testing.T) {
		p := &endpointPool{}
		oldest, newest := newConn(p, 30*time.Second), newConn(p, time.Second)
		p.idle = []*conn{oldest, newest}
		if got := p.takeIdle(now, maxAge); got != newest {
			t.Fatal("takeIdle did not return the most recently used connection")
		}
		if got := p.takeIdle(now, maxAge); got != oldest {
			t.Fatal("takeIdle did not return the remaining connection")
		}
		if got := p.takeIdle(now, maxAge); got != nil {
			t.Fatal("takeIdle returned a connection from an empty pool")
		}
	})
	t.Run("expired top closes the stack", func(t *testing.T) {
		p := &endpointPool{}
		p.idle = []*conn{newConn(p, 3*time.Minute), newConn(p, 2*time.Minute)}
		if got := p.takeIdle(now, maxAge); got != nil {
			t.Fatal("takeIdle returned an expired connection")
		}
		if len(p.idle) != 0 {
			t.Fatalf("%d expired connections left in the pool", len(p.idle))
		}
	})
	t.Run("surplus above the cap is trimmed once idle long enough", func(t *testing.T) {
		p := &endpointPool{}
		old1, old2 := newConn(p, 2*surplusIdleTime), newConn(p, surplusIdleTime)
		young, newer, newest := newConn(p, surplusIdleTime/2), newConn(p, time.Millisecond), newConn(p, 0)
		p.idle = []*conn{old1, old2, young, newer, newest}
		next, pending := p.trimSurplus(now, 2)
		want := []*conn{young, newer, newest}
		if len(p.idle) != len(want) {
			t.Fatalf("%d idle connections left, want %d", len(p.idle), len(want))
		}
		for i := range want {
			if p.idle[i] != want[i] {
				t.Fatalf("idle[%d] is not the expected connection", i)
			}
		}
		if !pending || next != surplusIdleTime/2 {
			t.Errorf("trimSurplus = %v, %v; want another trim in %v", next, pending, surplusIdleTime/2)
		}
		_, pending = p.trimSurplus(now.Add(surplusIdleTime), 2)
		if len(p.idle) != 2 || p.idle[0] != newer || p.idle[1] != newest {
			t.Errorf("after the surplus aged: %d idle, want the 2 most recent", len(p.idle))
		}
		if pending || p.trimPending {
			t.Error("a trim is still pending with no surplus left")
		}
	})
	t.Run("reaper keeps fresh connections", func(t *testing.T) {
		p := &endpointPool{lastUsed: now}
		fresh := newConn(p, time.Second)
		p.idle = []*conn{newConn(p, 2*time.Minute), fresh}
		if unused := p.closeExpired(now, maxAge); unused {
			t.Error("a pool with a fresh connection was reported unused")
		}
		if len(p.idle) != 1 || p.idle[0] != fresh {
			t.Errorf("idle = %v, want only the fresh connection", p.idle)
		}
	})
}

func TestExpectContinueNotForwarded(t *testing.T) {
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Got-Expect", r.Header.Get("Expect"))
		_, _ = io.Copy(w, r.Body)
	}))
	tr := newTestTransport(t, Config{})
	p := startProxy(t, tr, &Backend{Name: "ns/expect:80", Endpoints: []string{be.addr()}}, false)
	c := p.client()
	c.Transport.(*http.Transport).ExpectContinueTimeout = safety
	req, _ := http.NewRequest("PUT", p.URL+"/", strings.NewReader("payload"))
	req.Header.Set("Expect", "100-continue")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body := readAll(t, resp.Body); body != "payload" {
		t.Errorf("body = %q", body)
	}
	if g := resp.Header.Get("X-Got-Expect"); g != "" {
		t.Errorf("backend saw Expect: %q", g)
	}
}

// TestClassify: the failure classes proxy-next-upstream retries by.
func TestClassify(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}
	for _, c := range []struct {
		err  error
		want Failure
	}{
		{nil, FailureNone},
		{&dialError{err: syscall.ECONNREFUSED}, FailureConnect},
		{&dialError{err: timeout}, FailureConnectTimeout},
		{&dialError{err: context.DeadlineExceeded}, FailureConnectTimeout},
		{&backendWriteError{err: syscall.EPIPE}, FailureExchange},
		{&noResponseError{err: io.EOF}, FailureExchange},
		{&noResponseError{err: timeout}, FailureTimeout},
		{errHeaderTimeout, FailureTimeout},
		{errBackendTimeout, FailureTimeout},
		{&badResponseError{err: io.ErrUnexpectedEOF}, FailureInvalidResponse},
		{&clientBodyError{err: ErrClientBodyTimeout}, FailureNone},
		{errNoEndpoints, FailureNone},
	} {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
