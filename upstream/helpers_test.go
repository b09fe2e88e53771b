package upstream

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// safety is the generous upper bound for anything a test waits on; it only
// keeps a broken test from hanging, it asserts nothing about speed.
const safety = 10 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestTransport(t testing.TB, cfg Config) *Transport {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	tr := NewTransport(cfg)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// proxy is an inbound server whose handler forwards every request to a
// backend and records the outcomes.
type proxy struct {
	*httptest.Server
	tr       *Transport
	backend  *Backend
	outcomes chan Outcome
}

func startProxy(t testing.TB, tr *Transport, b *Backend, useTLS bool) *proxy {
	t.Helper()
	p := &proxy{tr: tr, backend: b, outcomes: make(chan Outcome, 1024)}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := tr.Forward(w, r, p.backend)
		select {
		case p.outcomes <- out:
		default:
		}
	}))
	p.Config.ErrorLog = nil
	if useTLS {
		p.StartTLS()
	} else {
		p.Start()
	}
	t.Cleanup(p.Close)
	return p
}

func (p *proxy) client() *http.Client {
	c := p.Server.Client()
	c.Timeout = safety
	return c
}

func (p *proxy) lastOutcome(t testing.TB) Outcome {
	t.Helper()
	select {
	case o := <-p.outcomes:
		return o
	case <-time.After(safety):
		t.Fatal("no outcome recorded")
		return Outcome{}
	}
}

// backendServer is a loopback net/http backend that counts the connections
// it accepted.
type backendServer struct {
	*httptest.Server
	conns atomic.Int64
}

func startBackend(t testing.TB, h http.Handler) *backendServer {
	t.Helper()
	return startBackendWith(t, h, false)
}

// startH2CBackend is startBackend for a backend that also speaks HTTP/2
// with prior knowledge (h2c) on its plain socket.
func startH2CBackend(t testing.TB, h http.Handler) *backendServer {
	t.Helper()
	return startBackendWith(t, h, true)
}

func startBackendWith(t testing.TB, h http.Handler, h2c bool) *backendServer {
	t.Helper()
	b := &backendServer{}
	b.Server = httptest.NewUnstartedServer(h)
	if h2c {
		b.Config.Protocols = plainAndH2C()
	}
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func (b *backendServer) addr() string { return b.Listener.Addr().String() }

// plainAndH2C serves HTTP/1.1 and HTTP/2 with prior knowledge on one plain
// socket.
func plainAndH2C() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// rawBackend accepts connections and hands each to serve on its own
// goroutine, for backends that misbehave in ways net/http will not.
type rawBackend struct {
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	count atomic.Int64
}

func startRawBackend(t testing.TB, serve func(net.Conn)) *rawBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rb := &rawBackend{l: l}
	rb.wg.Add(1)
	go func() {
		defer rb.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			rb.count.Add(1)
			rb.mu.Lock()
			rb.conns = append(rb.conns, c)
			rb.mu.Unlock()
			rb.wg.Add(1)
			go func() {
				defer rb.wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		rb.mu.Lock()
		for _, c := range rb.conns {
			_ = c.Close()
		}
		rb.mu.Unlock()
		rb.wg.Wait()
	})
	return rb
}

func (rb *rawBackend) addr() string { return rb.l.Addr().String() }

func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

func tlsClientConfig(s *httptest.Server) *tls.Config {
	return s.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
}
