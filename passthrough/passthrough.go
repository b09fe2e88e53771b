// Package passthrough serves the TLS listeners of Gateways (TLSRoutes).
// In Passthrough mode it reads a connection's ClientHello without
// terminating TLS, picks a TLSRoute by the SNI, dials one of the route's
// backend endpoints, replays the bytes it read and splices the connection
// both ways. Portico never holds the certificate keys of these hosts: the
// backend terminates TLS.
//
// In Terminate mode (Config.GetCertificate set) it completes the
// handshake with the listener's certificate for the SNI, picks the
// TLSRoute by the same SNI and splices the decrypted bytes to the backend:
// as plain TCP, or inside a new TLS connection when a BackendTLSPolicy
// targets the backend (upstream.BackendTLS: the SNI, CAs and names the
// HTTP path dials the same backend with). In Passthrough mode a backend's
// TLS settings are ignored: the client's own TLS reaches it.
//
// One socket may serve listeners of both modes (TLSRouteModeMixed): the
// ClientHello is always read first without answering it, and the
// listener its SNI picks decides (routing.Table.Passthrough): Passthrough
// replays the bytes read to the backend, Terminate runs the handshake over
// them and the rest of the connection.
//
// A connection whose SNI no route takes (or that sends no SNI) is closed:
// a passthrough socket has no certificate to answer with, and the
// fallback Service is not offered raw TLS meant for another host. HTTPS
// and TLS listeners cannot share a port (the snapshot reports a
// ProtocolConflict), so no connection has to be handed to the HTTP path.
package passthrough

import (
	"bytes"
	"context"
	stdtls "crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"portico.dev/portico/internal/unset"
	"portico.dev/portico/metrics"
	"portico.dev/portico/routing"
	"portico.dev/portico/upstream"
)

// Defaults of Config's bounds.
const (
	DefaultHelloTimeout  = 10 * time.Second
	DefaultMaxHelloBytes = 16 << 10
	DefaultIdleTimeout   = 10 * time.Minute
	DefaultDialTimeout   = 10 * time.Second
)

// Config is what one passthrough socket serves.
type Config struct {
	// Routes is the socket's table of TLSRoutes, read once per
	// connection; a route is matched with the SNI as host and path "/".
	Routes func() *routing.Table
	// HelloTimeout bounds reading the ClientHello (and a PROXY header).
	HelloTimeout time.Duration
	// MaxHelloBytes bounds the bytes read before the ClientHello is
	// complete: a larger one closes the connection.
	MaxHelloBytes int
	// IdleTimeout closes a spliced connection on which neither side sent
	// a byte for this long.
	IdleTimeout time.Duration
	// DialTimeout bounds connecting to the backend endpoint.
	DialTimeout time.Duration
	// GetCertificate, when set, makes the listener terminate TLS (mode
	// Terminate): it answers the ClientHello with the listener's
	// certificate for the SNI, and HelloTimeout bounds the whole
	// handshake. Nil is Passthrough. When set, a connection whose SNI
	// picks a listener marked Passthrough in Routes (TLSRouteModeMixed)
	// is still passed through.
	GetCertificate func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error)
	Metrics        *metrics.Metrics
	// AccessLog, when set, gets one record per connection as it ends.
	AccessLog *slog.Logger
	Logger    *slog.Logger
}

func (c Config) withDefaults() Config {
	unset.Default(&c.HelloTimeout, DefaultHelloTimeout)
	unset.Default(&c.MaxHelloBytes, DefaultMaxHelloBytes)
	unset.Default(&c.IdleTimeout, DefaultIdleTimeout)
	unset.Default(&c.DialTimeout, DefaultDialTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Server splices the connections of one listener.
type Server struct {
	ln  net.Listener
	cfg Config

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closing  bool
	finished chan struct{} // closed when the last connection ends after Shutdown
}

// NewServer returns the server of ln, not yet serving.
func NewServer(ln net.Listener, cfg Config) *Server {
	return &Server{ln: ln, cfg: cfg.withDefaults(), conns: make(map[net.Conn]struct{}), finished: make(chan struct{})}
}

// Serve accepts connections until Shutdown; it then returns nil.
func (s *Server) Serve() error {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if !s.track(c, true) {
			c.Close()
			continue
		}
		go s.serve(c)
	}
}

// track adds or removes a client connection; false when the server is
// shutting down and takes no new one.
func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing {
			return false
		}
		s.conns[c] = struct{}{}
		return true
	}
	delete(s.conns, c)
	if s.closing && len(s.conns) == 0 {
		select {
		case <-s.finished:
		default:
			close(s.finished)
		}
	}
	return true
}

// Shutdown closes the listener and lets spliced connections finish until
// ctx is done, then closes them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	if len(s.conns) == 0 {
		select {
		case <-s.finished:
		default:
			close(s.finished)
		}
	}
	s.mu.Unlock()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	select {
	case <-s.finished:
		return err
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	return ctx.Err()
}

// serve handles one client connection to its end. The ClientHello is read
// first, without answering it; its SNI picks the listener and the route.
// A socket that can terminate (GetCertificate set) terminates unless the
// listener the SNI picks is in mode Passthrough (TLSRouteModeMixed): the
// handshake then runs over the recorded ClientHello and the rest of the
// socket. Otherwise the recorded bytes are replayed to the backend. A
// terminated connection thus parses its ClientHello twice and reads
// through a replay wrapper: a cost per connection, not per byte or
// request, needed because the mode is known only from the SNI.
func (s *Server) serve(c net.Conn) {
	defer s.track(c, false)
	defer c.Close()
	rec := record{start: time.Now(), remote: c.RemoteAddr().String(), mode: metrics.ModePassthrough}
	if s.cfg.GetCertificate != nil {
		rec.mode = metrics.ModeTerminate
	}
	defer s.observe(&rec)
	// HelloTimeout bounds the ClientHello and, when terminating, the
	// whole handshake.
	if err := c.SetDeadline(time.Now().Add(s.cfg.HelloTimeout)); err != nil {
		rec.result = metrics.PassthroughBadHello
		return
	}
	hello, sni, err := parseClientHello(c, s.cfg.MaxHelloBytes)
	// The table is read once: the mode and the route come from one
	// snapshot.
	table := s.cfg.Routes()
	if err == nil && s.cfg.GetCertificate != nil && table.Passthrough(sni) {
		rec.mode = metrics.ModePassthrough
	}
	if err == nil && rec.mode == metrics.ModeTerminate {
		var tc *stdtls.Conn
		if tc, err = s.handshake(replay(c, hello), sni); err == nil {
			// The client side spliced is the TLS connection: closing it
			// sends close_notify before the socket closes.
			c, hello = tc, nil
			defer tc.Close()
		}
	}
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	if err != nil {
		s.cfg.Logger.Debug("TLS listener: no ClientHello or handshake", "mode", rec.mode, "remote", rec.remote, "error", err)
		rec.result = metrics.PassthroughBadHello
		return
	}
	rec.sni = sni
	var route *routing.Route
	if table != nil {
		route = table.Match(sni, "/")
	}
	if route == nil {
		rec.result = metrics.PassthroughNoRoute
		return
	}
	s.forward(c, &rec, route, hello)
}

// forward sends c, whose first bytes hello were read from it already, to
// an endpoint of route's backend and splices the two to their end.
func (s *Server) forward(c net.Conn, rec *record, route *routing.Route, hello []byte) {
	sni := rec.sni
	rec.route = route
	wb := route.PickBackend()
	if wb != nil && !wb.Invalid && wb.Backend != nil {
		rec.backend = wb.Backend.Name
		rec.endpoint = wb.Backend.NextEndpoint()
	}
	if rec.endpoint == "" {
		s.cfg.Logger.Warn("TLS passthrough: the backend has no endpoint; connection closed", "sni", sni,
			"route", route.Source.String(), "backend", rec.backend, "remote", rec.remote)
		rec.result = metrics.PassthroughNoBackend
		return
	}
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	b, err := d.Dial("tcp", rec.endpoint)
	if err != nil {
		s.cfg.Logger.Warn("TLS passthrough: cannot reach the backend", "sni", sni, "route", route.Source.String(),
			"backend", rec.backend, "endpoint", rec.endpoint, "error", err)
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.ConnectError(rec.backend)
		}
		rec.result = metrics.PassthroughDialError
		return
	}
	defer b.Close()
	if rec.mode == metrics.ModeTerminate && wb.Backend.TLS != nil {
		tb, err := s.backendHandshake(b, wb.Backend.TLS)
		if err != nil {
			s.cfg.Logger.Warn("TLS listener: TLS handshake with the backend failed", "sni", sni, "route", route.Source.String(),
				"backend", rec.backend, "endpoint", rec.endpoint, "error", err)
			if s.cfg.Metrics != nil {
				s.cfg.Metrics.ConnectError(rec.backend)
			}
			rec.result = metrics.PassthroughBackendTLSError
			return
		}
		b = tb
	}
	// Shutdown closes tracked connections; the backend one ends with them.
	rec.in, rec.out = splice(c, b, hello, s.cfg.IdleTimeout)
	rec.result = metrics.PassthroughSpliced
}

// handshake terminates TLS on c, whose reads begin with the ClientHello
// that named sni, with the listener's certificate for the SNI, within the
// deadline c has.
func (s *Server) handshake(c net.Conn, sni string) (*stdtls.Conn, error) {
	// No ALPN: the bytes after the handshake are the TLSRoute backend's
	// protocol, which Portico does not know.
	tc := stdtls.Server(c, &stdtls.Config{GetCertificate: s.cfg.GetCertificate, MinVersion: stdtls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	// The hello parsed twice is the same bytes; a different name would be
	// a bug in the replay.
	if got := tc.ConnectionState().ServerName; got != sni {
		return nil, errors.New("passthrough: the handshake's SNI differs from the ClientHello read")
	}
	return tc, nil
}

// backendHandshake opens TLS to a backend on b as its BackendTLS says,
// within DialTimeout, as the HTTP path does for the same backend.
func (s *Server) backendHandshake(b net.Conn, bt *upstream.BackendTLS) (net.Conn, error) {
	cfg, err := bt.StreamConfig()
	if err != nil {
		return nil, err
	}
	if err := b.SetDeadline(time.Now().Add(s.cfg.DialTimeout)); err != nil {
		return nil, err
	}
	tc := stdtls.Client(b, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	if err := b.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return backendTLSConn{tc}, nil
}

// backendTLSConn is a re-encrypted backend connection, told apart from
// the terminated client one when half-closing.
type backendTLSConn struct{ *stdtls.Conn }

// record is what is known of one connection when it ends.
type record struct {
	start                     time.Time
	remote, sni, mode, result string
	route                     *routing.Route
	backend, endpoint         string
	in, out                   int64
}

// observe counts an ended connection and writes its access log record.
func (s *Server) observe(r *record) {
	seconds := time.Since(r.start).Seconds()
	var labels metrics.RouteLabels
	routeName := ""
	if r.route != nil {
		labels = r.route.MetricLabels()
		routeName = r.route.Source.String()
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Passthrough(labels, r.mode, r.result, r.in, r.out, seconds)
	}
	if s.cfg.AccessLog != nil {
		s.cfg.AccessLog.LogAttrs(context.Background(), slog.LevelInfo, "passthrough",
			slog.String("remote", r.remote),
			slog.String("sni", r.sni),
			slog.String("mode", r.mode),
			slog.String("result", r.result),
			slog.String("route", routeName),
			slog.String("backend", r.backend),
			slog.String("endpoint", r.endpoint),
			slog.Int64("bytes_in", r.in),
			slog.Int64("bytes_out", r.out),
			slog.Float64("duration", seconds),
		)
	}
}

// errHelloRead stops crypto/tls once it has parsed the ClientHello.
var errHelloRead = errors.New("passthrough: ClientHello read")

// parseClientHello reads c, within whatever deadline it has, until its
// bytes hold a whole ClientHello, and returns every byte it read (also on
// error, for a caller that must replay them) with the SNI. crypto/tls
// parses it (records, fragmentation, extensions) through a connection
// that only records what it reads and never writes: the handshake stops
// in GetConfigForClient, before any byte is sent to the client. This is
// the one ClientHello reader of both passthrough paths: the TLS listeners'
// and the shared HTTPS socket's (claim.go).
func parseClientHello(c net.Conn, maxBytes int) (read []byte, sni string, err error) {
	rc := &recordingConn{Conn: c, max: maxBytes}
	seen := false
	srv := stdtls.Server(rc, &stdtls.Config{
		GetConfigForClient: func(h *stdtls.ClientHelloInfo) (*stdtls.Config, error) {
			seen, sni = true, h.ServerName
			return nil, errHelloRead
		},
	})
	err = srv.Handshake()
	if !seen {
		if err == nil {
			err = errors.New("handshake ended without a ClientHello")
		}
		return rc.buf.Bytes(), "", err
	}
	return rc.buf.Bytes(), sni, nil
}

// recordingConn keeps every byte read from Conn, up to max, and drops
// writes (the alert crypto/tls sends when the handshake is stopped).
type recordingConn struct {
	net.Conn
	buf bytes.Buffer
	max int
}

var errHelloTooLarge = errors.New("passthrough: ClientHello larger than the limit")

func (r *recordingConn) Read(p []byte) (int, error) {
	room := r.max - r.buf.Len()
	if room <= 0 {
		return 0, errHelloTooLarge
	}
	if len(p) > room {
		p = p[:room]
	}
	n, err := r.Conn.Read(p)
	r.buf.Write(p[:n])
	return n, err
}

func (r *recordingConn) Write(p []byte) (int, error) { return len(p), nil }

// splice writes hello to the backend, then copies both ways until both
// directions have ended: a side's EOF is passed on as a half-close
// (CloseWrite), so a client that finishes sending still gets the whole
// response. It returns the bytes carried from the client (hello
// included) and to the client.
func splice(client, backend net.Conn, hello []byte, idle time.Duration) (in, out int64) {
	// last is the time of the last byte either way: one direction may be
	// quiet for long while the other streams, so each read's deadline
	// only ends the connection when both have been idle.
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	if len(hello) > 0 {
		if _, err := backend.Write(hello); err != nil {
			return 0, 0
		}
	}
	in = int64(len(hello))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		out = copyIdle(client, backend, idle, &last)
	}()
	in += copyIdle(backend, client, idle, &last)
	wg.Wait()
	return in, out
}

// copyIdle copies src to dst until src ends, then half-closes dst. An
// error other than EOF, or idleness of both directions, closes both so
// that the other direction ends too.
func copyIdle(dst, src net.Conn, idle time.Duration, last *atomic.Int64) int64 {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		// One deadline per read, not per byte: the cost of splicing is a
		// timer reset per 32 KiB at most.
		if err := src.SetReadDeadline(time.Now().Add(idle)); err != nil {
			break
		}
		nr, err := src.Read(buf)
		if nr > 0 {
			last.Store(time.Now().UnixNano())
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				src.Close()
				dst.Close()
				return n
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < idle {
			continue // the other direction is busy
		}
		if errors.Is(err, io.EOF) {
			closeWrite(dst)
			return n
		}
		break
	}
	src.Close()
	dst.Close()
	return n
}

// closeWrite half-closes c when it can, else closes it. A terminated
// client connection (*tls.Conn) sends close_notify and keeps reading. A
// re-encrypted backend connection also gets the TCP FIN after its
// close_notify, as a plain backend would: a backend may wait for either.
func closeWrite(c net.Conn) {
	if bc, ok := c.(backendTLSConn); ok {
		if bc.CloseWrite() == nil {
			if cw, ok := bc.NetConn().(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return
			}
		}
		c.Close()
		return
	}
	// A PROXY protocol connection half-closes through its socket.
	if r, ok := c.(interface{ Raw() net.Conn }); ok {
		c = r.Raw()
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.Close()
}
