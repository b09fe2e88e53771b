package http1

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown or Close; it is
// net/http's, so callers test one error for both servers.
var ErrServerClosed = http.ErrServerClosed

// Server serves HTTP/1.x on connections it accepts (Serve, ServeTLS) or is
// given (ServeConn). The zero value is not usable: set Handler.
type Server struct {
	// Handler serves every request.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request head once its first byte
	// has arrived (and, for the first request, from the start). Zero means
	// 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. Zero means ReadHeaderTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and header fields together,
	// and separately a request's trailer section; larger heads get 431.
	// Zero means 64 KiB.
	MaxHeaderBytes int
	// ConnContext, when set, derives a connection's context, which every
	// request context on it derives from, as http.Server.ConnContext.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// ConnState, when set, is told of state changes as http.Server's is:
	// StateNew, StateActive, StateIdle, StateHijacked, StateClosed.
	ConnState func(net.Conn, http.ConnState)
	// Logger receives refused requests (debug) and internal errors; nil
	// means slog.Default().
	Logger *slog.Logger
	// H2C, when set, receives the plain connections whose first bytes are
	// the HTTP/2 connection preface (prior knowledge, RFC 9113 section
	// 3.3), with those bytes still to be read, so that an HTTP/2 server
	// serves them; without it such a connection gets 505 like any other
	// version but 1.0 and 1.1.
	H2C func(net.Conn)
	// EventLoops, with FastPath set, serves ServeTLS's HTTP/1.1
	// connections on the process's event loops (one per GOMAXPROCS, see
	// loop_linux.go) after their handshake, where the platform has them
	// (Linux); a connection whose requests the loops do not serve is
	// handed back to a goroutine. Connections that arrive through a
	// wrapper of the TCP socket (the PROXY protocol's) are served the
	// goroutine way throughout.
	EventLoops bool
	FastPath   FastPath
	// HTTP2EventLoops, with FastPath set, serves ServeTLS's connections
	// that negotiated h2 on the event loops too (looph2_linux.go), with
	// the settings of H2, instead of handing them to ServeTLS's h2.
	HTTP2EventLoops bool
	H2              H2Config
	// Claim, when set, is given each ServeTLS connection before its TLS
	// handshake, within the handshake's deadline: true means it took the
	// connection (TLS passthrough), false gives back the connection to
	// handshake, nc itself or a wrapper replaying what Claim read.
	Claim func(nc net.Conn) (net.Conn, bool)

	inShutdown atomic.Bool
	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
	onShutdown []func()
	// connsDone is signalled (non-blocking) when a tracked connection ends.
	connsDone chan struct{}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) readHeaderTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return 10 * time.Second
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return s.readHeaderTimeout()
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return 64 << 10
}

// RegisterOnShutdown registers fn to run, in its own goroutine, when
// Shutdown starts: connections a handler hijacked (WebSocket tunnels) are
// not the server's any more, and whoever tracks them closes them here.
func (s *Server) RegisterOnShutdown(fn func()) {
	s.mu.Lock()
	s.onShutdown = append(s.onShutdown, fn)
	s.mu.Unlock()
}

func (s *Server) trackListener(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.inShutdown.Load() {
			return false
		}
		if s.listeners == nil {
			s.listeners = map[*net.Listener]struct{}{}
		}
		s.listeners[ln] = struct{}{}
	} else {
		delete(s.listeners, ln)
	}
	return true
}

// Serve accepts plain connections on ln and serves each on its own
// goroutine until Shutdown or Close, when it returns ErrServerClosed, or
// until Accept fails permanently.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(ln, func(nc net.Conn) { s.ServeConn(nc) })
}

// handshakes counts the TLS handshakes in progress in the process: while
// there are some, event loops leave their P to the scheduler when they
// wait (see loop.collect).
var handshakes atomic.Int32

// ServeTLS accepts connections on ln and completes the TLS handshake with
// config on each connection's own goroutine, within handshakeTimeout.
// Connections that negotiated "h2" are handed to h2 (nil closes them);
// every other one is served here as HTTP/1.x.
func (s *Server) ServeTLS(ln net.Listener, config *tls.Config, handshakeTimeout time.Duration, h2 func(*tls.Conn)) error {
	return s.serve(ln, func(nc net.Conn) {
		// One deadline for Claim and the handshake together.
		deadline := time.Now().Add(handshakeTimeout)
		if s.Claim != nil {
			_ = nc.SetDeadline(deadline)
			var claimed bool
			if nc, claimed = s.Claim(nc); claimed {
				return
			}
		}
		lc := s.loopConnFor(nc)
		var tc *tls.Conn
		if lc != nil {
			tc = tls.Server(lc, config)
		} else {
			tc = tls.Server(nc, config)
		}
		// Until the handshake is done the connection is new: Shutdown
		// closes it like an idle one.
		c := s.newConn(tc)
		if !s.track(c) {
			tc.Close()
			return
		}
		s.setState(c, http.StateNew)
		_ = nc.SetDeadline(deadline)
		handshakes.Add(1)
		err := tc.HandshakeContext(context.Background())
		handshakes.Add(-1)
		if err == nil {
			err = nc.SetDeadline(time.Time{})
		}
		if err != nil {
			s.logger().Debug("http: TLS handshake error", "remote", nc.RemoteAddr().String(), "error", err)
			s.finish(c)
			return
		}
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			if lc != nil && s.HTTP2EventLoops && s.toLoopH2(c, lc, tc) {
				return
			}
			s.untrack(c)
			if h2 == nil {
				tc.Close()
				return
			}
			h2(tc)
			return
		}
		if lc != nil && s.EventLoops && s.toLoop(c, lc, tc) {
			return
		}
		c.serve()
	})
}

func (s *Server) serve(ln net.Listener, handle func(net.Conn)) error {
	if !s.trackListener(&ln, true) {
		return ErrServerClosed
	}
	defer s.trackListener(&ln, false)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTemporaryAccept) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("http: accept error; retrying", "error", err, "delay", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		go handle(nc)
	}
}

// errTemporaryAccept stands for accept errors worth retrying that are not
// timeouts; none are recognised besides net.Error timeouts today.
var errTemporaryAccept = errors.New("temporary accept error")

// ServeConn serves HTTP/1.x on nc, a plain connection or a *tls.Conn whose
// handshake is done, until the client or the server closes it or a handler
// hijacks it. It blocks for the connection's lifetime. The connection is
// tracked for Shutdown.
func (s *Server) ServeConn(nc net.Conn) {
	c := s.newConn(nc)
	if !s.track(c) {
		nc.Close()
		return
	}
	s.setState(c, http.StateNew)
	c.serve()
}

// track adds c to the connections Shutdown waits for, unless shutting down.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	done := s.connsDone
	s.mu.Unlock()
	if done != nil {
		select {
		case done <- struct{}{}:
		default:
		}
	}
}

func (s *Server) setState(c *conn, st http.ConnState) {
	c.state.Store(int32(st))
	if s.ConnState != nil {
		s.ConnState(c.nc, st)
	}
}

// finish closes and forgets a connection the server still owns.
func (s *Server) finish(c *conn) {
	c.nc.Close()
	c.abort()
	if c.cancelConn != nil {
		c.cancelConn()
	}
	s.setState(c, http.StateClosed)
	s.untrack(c)
}

// Shutdown stops accepting, closes idle connections (and those still in
// their TLS handshake) and waits for the active ones to finish their
// request, closing each as it goes idle. It returns nil when none are left,
// or ctx's error if ctx ends first, leaving the rest to Close. Request
// contexts are not cancelled by Shutdown: in-flight requests may finish.
// Hijacked connections are not waited for; RegisterOnShutdown functions,
// started here, are expected to close them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.inShutdown.Store(true)
	for ln := range s.listeners {
		(*ln).Close()
	}
	for _, fn := range s.onShutdown {
		go fn()
	}
	if s.connsDone == nil {
		s.connsDone = make(chan struct{}, 1)
	}
	done := s.connsDone
	s.mu.Unlock()

	// A connection between its last byte and the idle state is closed at
	// the next poll; the interval grows like net/http's, so shutting down
	// many slow connections does not spin.
	interval := time.Millisecond
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
		case <-timer.C:
			interval = min(2*interval, 500*time.Millisecond)
			timer.Reset(interval)
		}
	}
}

// closeIdle closes idle and new connections and reports whether none are
// left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		switch http.ConnState(c.state.Load()) {
		case http.StateIdle, http.StateNew:
			c.closeFromOutside(false)
		}
	}
	return len(s.conns) == 0
}

// Close closes the listeners and every connection the server still owns at
// once, cancelling their requests' contexts.
func (s *Server) Close() error {
	s.mu.Lock()
	s.inShutdown.Store(true)
	for ln := range s.listeners {
		(*ln).Close()
	}
	for c := range s.conns {
		c.closeFromOutside(true)
		c.abort()
	}
	s.mu.Unlock()
	return nil
}
