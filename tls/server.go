package tls

import (
	"context"
	stdtls "crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"portico.dev/portico/http1"
	"portico.dev/portico/internal/unset"
)

// Limits bounds what a single client can make the front door hold. Zero
// fields take the documented default.
//
// There is deliberately no whole-request ReadTimeout or WriteTimeout: an
// ingress carries long uploads, streaming responses, gRPC streams and
// WebSocket tunnels, which such timeouts would cut. Slow clients are bounded
// instead by ReadHeaderTimeout (before a request is accepted), IdleTimeout
// (between requests) and the HTTP/2 flow-control windows (while streaming).
//
// HTTP/2 rapid-reset floods (CVE-2023-44487) need no setting here: the HTTP/2
// server runs at most MaxConcurrentStreams handlers per connection, queues at
// most four times that many, and closes a connection that exceeds the queue.
// It likewise closes connections that queue too many control frames
// (SETTINGS/PING floods) and bounds CONTINUATION frames by MaxHeaderBytes.
// The event loops (HTTP2EventLoops) do the same with the same limits; see
// http1/looph2_linux.go.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's line and headers, and
	// also the TLS handshake, so a client that connects and trickles
	// (slowloris) is dropped. Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections, HTTP/1.1 and HTTP/2 alike,
	// that carry no request for this long. Default 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers (for HTTP/2, the
	// decoded header list). Larger requests get 431. Default 64 KiB.
	MaxHeaderBytes int
	// HTTP2MaxConcurrentStreams is the number of requests one HTTP/2
	// connection may have in flight. Default 250.
	HTTP2MaxConcurrentStreams uint32
	// HTTP2MaxReadFrameSize is the largest HTTP/2 frame accepted, between
	// 16 KiB and 16 MiB. Default 1 MiB, which keeps per-frame buffering
	// modest while letting large uploads move in few frames.
	HTTP2MaxReadFrameSize uint32
	// HTTP2MaxReceiveBufferPerStream is the flow-control window for one
	// request body, the most a client can make Portico buffer for a stream
	// the backend has not yet read. Default 1 MiB.
	HTTP2MaxReceiveBufferPerStream int
	// HTTP2MaxReceiveBufferPerConnection is the flow-control window shared by
	// all streams of a connection. Default 4 MiB, the most the HTTP/2 server
	// accepts.
	HTTP2MaxReceiveBufferPerConnection int
	// HTTP2PingTimeout detects dead HTTP/2 peers: after this long without a
	// frame the server sends a PING and closes the connection if the PING
	// goes unanswered for another HTTP2PingTimeout. Default 30s.
	HTTP2PingTimeout time.Duration
	// WriteByteTimeout closes an HTTP/2 connection on which no byte could
	// be written for this long, such as a client that stopped reading while
	// the server has data queued. Default 60s.
	WriteByteTimeout time.Duration
	// ClientTCPKeepAlive is the idle time before TCP keep-alive probes on
	// client connections; zero sends none. Every client connection has an
	// idle timeout of its own, so probes only find dead peers sooner, and
	// setting them up is four system calls per connection. Default zero.
	ClientTCPKeepAlive time.Duration

	// HTTP1Engine selects what serves HTTP/1.x: HTTP1EnginePortico (""
	// too) or HTTP1EngineNetHTTP; see newEngine. It sits with the limits
	// because it reaches every listener the same way they do.
	HTTP1Engine string
	// EventLoops serves HTTPS connections' HTTP/1.1 requests on event
	// loops where it can (the portico engine on Linux, with a FastPath;
	// see http1.Server.EventLoops).
	EventLoops bool
	// HTTP2EventLoops serves HTTPS connections that negotiate h2 on the
	// event loops too, with the HTTP2* limits above, instead of net/http's
	// HTTP/2 server (see http1.Server.HTTP2EventLoops).
	HTTP2EventLoops bool
}

// The values of Limits.HTTP1Engine.
const (
	HTTP1EngineNetHTTP = "net/http"
	HTTP1EnginePortico = "portico"
)

// DefaultLimits returns the limits applied to zero fields.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout:                  10 * time.Second,
		IdleTimeout:                        120 * time.Second,
		MaxHeaderBytes:                     64 << 10,
		HTTP2MaxConcurrentStreams:          250,
		HTTP2MaxReadFrameSize:              1 << 20,
		HTTP2MaxReceiveBufferPerStream:     1 << 20,
		HTTP2MaxReceiveBufferPerConnection: 4<<20 - 1,
		HTTP2PingTimeout:                   30 * time.Second,
		WriteByteTimeout:                   60 * time.Second,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	unset.Default(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	unset.Default(&l.IdleTimeout, d.IdleTimeout)
	unset.Default(&l.MaxHeaderBytes, d.MaxHeaderBytes)
	unset.Default(&l.HTTP2MaxConcurrentStreams, d.HTTP2MaxConcurrentStreams)
	unset.Default(&l.HTTP2MaxReadFrameSize, d.HTTP2MaxReadFrameSize)
	unset.Default(&l.HTTP2MaxReceiveBufferPerStream, d.HTTP2MaxReceiveBufferPerStream)
	unset.Default(&l.HTTP2MaxReceiveBufferPerConnection, d.HTTP2MaxReceiveBufferPerConnection)
	unset.Default(&l.HTTP2PingTimeout, d.HTTP2PingTimeout)
	unset.Default(&l.WriteByteTimeout, d.WriteByteTimeout)
	return l
}

func (l Limits) validate() error {
	switch l.HTTP1Engine {
	case "", HTTP1EngineNetHTTP, HTTP1EnginePortico:
	default:
		return fmt.Errorf("HTTP/1 engine %q is neither %q nor %q", l.HTTP1Engine, HTTP1EngineNetHTTP, HTTP1EnginePortico)
	}
	if l.HTTP2MaxReadFrameSize < 16<<10 || l.HTTP2MaxReadFrameSize > 16<<20 {
		return fmt.Errorf("HTTP/2 max read frame size %d is outside 16 KiB to 16 MiB", l.HTTP2MaxReadFrameSize)
	}
	if l.HTTP2MaxReceiveBufferPerConnection < 64<<10 || l.HTTP2MaxReceiveBufferPerConnection >= 4<<20 {
		return fmt.Errorf("HTTP/2 per-connection receive buffer %d is outside 64 KiB to 4 MiB", l.HTTP2MaxReceiveBufferPerConnection)
	}
	if l.HTTP2MaxReceiveBufferPerStream >= 4<<20 {
		return fmt.Errorf("HTTP/2 per-stream receive buffer %d is not below 4 MiB", l.HTTP2MaxReceiveBufferPerStream)
	}
	return nil
}

// ServerConfig configures the front-door listeners.
type ServerConfig struct {
	// HTTPSAddr is the TLS listen address; "" means no HTTPS listener.
	HTTPSAddr string
	// HTTPAddr is the plain HTTP listen address; "" means no HTTP listener.
	HTTPAddr string
	// Limits bounds client resource use; zero fields take defaults.
	Limits Limits
	// GetCertificate is called on every handshake. It must read the current
	// snapshot (one atomic load) so certificate changes apply to the next
	// handshake with no restart; see CertificateGetter.
	GetCertificate func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error)
	// HTTPSHandler serves requests that arrived over TLS, HTTP/1.1 or h2.
	HTTPSHandler http.Handler
	// HTTPSFastPath, when set with Limits.EventLoops, lets event loops
	// serve the HTTPS socket's common HTTP/1.1 requests for HTTPSHandler
	// (see http1.FastPath); SetFastPath sets it later.
	HTTPSFastPath http1.FastPath
	// HTTPHandler serves requests that arrived over plain HTTP.
	HTTPHandler http.Handler
	// Logger receives listener errors; nil means slog.Default().
	Logger *slog.Logger
	// ProxyProtocolFrom lists the peers (L4 load balancers) whose
	// connections may start with a PROXY protocol header naming the
	// client; empty reads no header from anyone.
	ProxyProtocolFrom []netip.Prefix
	// LegacyCiphers also offers Go's CBC suites on TLS 1.2, for clients
	// too old for AEAD ones; by default only TLS12CipherSuites are offered.
	LegacyCiphers bool
	// ConnContext, when set, is the servers' http.Server.ConnContext: the
	// context of a client connection, which its requests' contexts derive
	// from.
	ConnContext func(context.Context, net.Conn) context.Context
	// ClientValidation, when set, is asked on every HTTPS handshake
	// whether the client's certificate is requested for the server name
	// (see ConfigForServerName); nil from it leaves the handshake as it is.
	ClientValidation func(serverName string) *ClientValidation
}

// TLS12CipherSuites are the suites offered on TLS 1.2 by default: ECDHE
// with AES-GCM or ChaCha20-Poly1305, as Mozilla's "intermediate" profile
// (its DHE suites aside, which Go does not implement). The CBC suites Go
// would also offer use SHA-1 MACs and MAC-then-encrypt, the source of
// Lucky13-style padding oracles. TLS 1.3 suites are not configurable and
// are all AEAD.
func TLS12CipherSuites() []uint16 {
	return []uint16{
		stdtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		stdtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		stdtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		stdtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		stdtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		stdtls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// Server is the pair of front-door listeners. Create it with Listen, run it
// with Serve and stop it with Shutdown.
type Server struct {
	log *slog.Logger

	httpsListener net.Listener
	httpListener  net.Listener
	httpsServer   *http.Server
	httpServer    *http.Server

	// With the portico HTTP/1 engine: httpsEngine takes the HTTPS
	// listener's connections, handshakes them and passes those that
	// negotiate h2 on to httpsServer; httpEngine takes the plain
	// listener's. Nil with net/http.
	httpsEngine      *http1.Server
	httpEngine       *http1.Server
	handshakeTimeout time.Duration

	mu       sync.Mutex
	serving  bool
	shutdown bool
}

// Listen validates cfg and binds its addresses now, so that bind errors
// surface at start-up and ports chosen by the kernel (":0") are known before
// Serve. Nothing is accepted until Serve.
func Listen(cfg ServerConfig) (*Server, error) {
	if cfg.HTTPSAddr == "" && cfg.HTTPAddr == "" {
		return nil, errors.New("no listen address: set an HTTPS address, an HTTP address or both")
	}
	if cfg.HTTPSAddr != "" {
		if cfg.GetCertificate == nil {
			return nil, errors.New("an HTTPS listener needs GetCertificate")
		}
		if cfg.HTTPSHandler == nil {
			return nil, errors.New("an HTTPS listener needs HTTPSHandler")
		}
	}
	if cfg.HTTPAddr != "" && cfg.HTTPHandler == nil {
		return nil, errors.New("an HTTP listener needs HTTPHandler")
	}
	limits, logger, err := prepare(cfg)
	if err != nil {
		return nil, err
	}

	s := &Server{log: logger}
	if cfg.HTTPSAddr != "" {
		ln, err := ListenTCP(cfg.HTTPSAddr, limits)
		if err != nil {
			return nil, fmt.Errorf("listen for HTTPS on %s: %w", cfg.HTTPSAddr, err)
		}
		s.addHTTPS(ln, cfg, limits, logger.With("listener", "https"))
	}
	if cfg.HTTPAddr != "" {
		ln, err := ListenTCP(cfg.HTTPAddr, limits)
		if err != nil {
			if s.httpsListener != nil {
				s.httpsListener.Close()
			}
			return nil, fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
		}
		s.addHTTP(ln, cfg, limits, logger.With("listener", "http"), false)
	}
	return s, nil
}

// ListenTCP binds a client socket: the one place every data-plane socket,
// flag or Gateway listener, is opened, so that they accept alike.
func ListenTCP(addr string, limits Limits) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	if limits.ClientTCPKeepAlive > 0 {
		lc.KeepAlive = limits.ClientTCPKeepAlive
	}
	return lc.Listen(context.Background(), "tcp", addr)
}

// prepare checks cfg's limits, with defaults filled in, and picks its
// logger: what every socket of a Server starts from.
func prepare(cfg ServerConfig) (Limits, *slog.Logger, error) {
	limits := cfg.Limits.withDefaults()
	if err := limits.validate(); err != nil {
		return limits, nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return limits, logger, nil
}

// addHTTPS makes ln the server's HTTPS socket: TLS with cfg's
// certificates, HTTP/1.1 through the engine (unless net/http is chosen)
// and h2 through net/http's HTTP/2 server.
func (s *Server) addHTTPS(ln net.Listener, cfg ServerConfig, limits Limits, logger *slog.Logger) {
	s.httpsListener = withProxyProtocol(ln, cfg.ProxyProtocolFrom, limits.ReadHeaderTimeout)
	s.httpsServer = newHTTPServer(cfg.HTTPSHandler, limits, logger)
	s.httpsServer.TLSConfig = serverTLSConfig(cfg.GetCertificate, cfg.LegacyCiphers)
	if cfg.ClientValidation != nil {
		base := s.httpsServer.TLSConfig
		base.GetConfigForClient = ConfigForServerName(base, cfg.ClientValidation)
	}
	s.httpsServer.ConnContext = cfg.ConnContext
	s.httpsEngine = newEngine(cfg.HTTPSHandler, limits, logger, cfg.ConnContext)
	if s.httpsEngine != nil {
		s.httpsEngine.EventLoops = limits.EventLoops
		s.httpsEngine.HTTP2EventLoops = limits.HTTP2EventLoops
		s.httpsEngine.H2 = http1.H2Config{
			MaxConcurrentStreams: limits.HTTP2MaxConcurrentStreams,
			MaxReadFrameSize:     limits.HTTP2MaxReadFrameSize,
			StreamWindow:         int32(min(limits.HTTP2MaxReceiveBufferPerStream, 1<<31-1)),
			ConnWindow:           int32(min(limits.HTTP2MaxReceiveBufferPerConnection, 1<<31-1)),
			WriteByteTimeout:     limits.WriteByteTimeout,
			PingTimeout:          limits.HTTP2PingTimeout,
		}
		s.httpsEngine.FastPath = cfg.HTTPSFastPath
	}
	s.handshakeTimeout = limits.ReadHeaderTimeout
}

// SetFastPath sets the HTTPS socket's HTTPSFastPath before Serve, for
// callers that build the handler after the sockets are bound.
func (s *Server) SetFastPath(fp http1.FastPath) {
	if s.httpsEngine != nil {
		s.httpsEngine.FastPath = fp
	}
}

// addHTTP makes ln the server's plain-HTTP socket; with h2c it also serves
// HTTP/2 with prior knowledge.
func (s *Server) addHTTP(ln net.Listener, cfg ServerConfig, limits Limits, logger *slog.Logger, h2c bool) {
	s.httpListener = withProxyProtocol(ln, cfg.ProxyProtocolFrom, limits.ReadHeaderTimeout)
	s.httpServer = newHTTPServer(cfg.HTTPHandler, limits, logger)
	s.httpServer.Protocols.SetUnencryptedHTTP2(h2c)
	s.httpServer.ConnContext = cfg.ConnContext
	s.httpEngine = newEngine(cfg.HTTPHandler, limits, logger, cfg.ConnContext)
	s.handshakeTimeout = limits.ReadHeaderTimeout
}

// newEngine returns the http1 engine for a listener when the limits select
// it, nil otherwise.
func newEngine(h http.Handler, l Limits, logger *slog.Logger, connContext func(context.Context, net.Conn) context.Context) *http1.Server {
	if l.HTTP1Engine == HTTP1EngineNetHTTP {
		return nil
	}
	return &http1.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ConnContext:       connContext,
		Logger:            logger,
	}
}

// serveHTTPSEngine runs the HTTPS listener with the http1 engine: it
// handshakes every connection and serves HTTP/1.1 itself, while h2
// connections go to httpsServer through a listener of handshaken
// connections, so HTTP/2 is served exactly as with net/http alone.
func (s *Server) serveHTTPSEngine() error {
	h2 := http1.NewConnListener(s.httpsListener.Addr())
	go func() {
		if err := s.httpsServer.Serve(h2); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP/2 server stopped", "error", err)
		}
	}()
	err := s.httpsEngine.ServeTLS(s.httpsListener, s.httpsServer.TLSConfig, s.handshakeTimeout, func(c *stdtls.Conn) { h2.Push(c) })
	h2.Close()
	return err
}

// serveHTTPEngine runs the plain listener with the http1 engine. When the
// socket accepts h2c (Gateway HTTP listeners), the engine hands
// connections that open with the HTTP/2 preface to httpServer, which
// serves them as HTTP/2 with prior knowledge.
func (s *Server) serveHTTPEngine() error {
	if !s.httpServer.Protocols.UnencryptedHTTP2() {
		return s.httpEngine.Serve(s.httpListener)
	}
	h2c := http1.NewConnListener(s.httpListener.Addr())
	s.httpEngine.H2C = func(c net.Conn) { h2c.Push(c) }
	go func() {
		if err := s.httpServer.Serve(h2c); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("h2c server stopped", "error", err)
		}
	}()
	err := s.httpEngine.Serve(s.httpListener)
	h2c.Close()
	return err
}

// engines returns the http1 engines in use.
func (s *Server) engines() []*http1.Server {
	var out []*http1.Server
	for _, e := range []*http1.Server{s.httpsEngine, s.httpEngine} {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// serverTLSConfig is the TLS configuration of every HTTPS socket, the
// flag-configured one and the Gateway ones alike.
func serverTLSConfig(getCertificate func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error), legacyCiphers bool) *stdtls.Config {
	cfg := &stdtls.Config{
		MinVersion:     stdtls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: getCertificate,
		CipherSuites:   TLS12CipherSuites(),
		// Session tickets stay on; crypto/tls rotates their keys itself.
	}
	if legacyCiphers {
		// Go's defaults: the AEAD suites first, then ECDHE with AES-CBC.
		cfg.CipherSuites = nil
	}
	return cfg
}

// newHTTPServer configures HTTP/2 through net/http's own HTTP2 settings. Since
// Go 1.24 these are the supported interface to the same HTTP/2 server that
// golang.org/x/net/http2.ConfigureServer now merely forwards to; that
// function's Server type is deprecated.
func newHTTPServer(h http.Handler, l Limits, logger *slog.Logger) *http.Server {
	if l.HTTP1Engine == HTTP1EngineNetHTTP {
		h = closeAmbiguous(h)
	}
	h = onStreamWorkers(h)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true) // only offered over TLS, via ALPN
	return &http.Server{
		Handler:           h,
		Protocols:         &protocols,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          int(l.HTTP2MaxConcurrentStreams),
			MaxReadFrameSize:              int(l.HTTP2MaxReadFrameSize),
			MaxReceiveBufferPerStream:     l.HTTP2MaxReceiveBufferPerStream,
			MaxReceiveBufferPerConnection: l.HTTP2MaxReceiveBufferPerConnection,
			SendPingTimeout:               l.HTTP2PingTimeout,
			PingTimeout:                   l.HTTP2PingTimeout,
			WriteByteTimeout:              l.WriteByteTimeout,
		},
		ErrorLog: log.New(errorLogWriter{logger}, "", 0),
	}
}

// connectionClose is shared by every response closeAmbiguous marks, so
// that closing costs no allocation; nothing appends to it (cap 1, so an
// append would copy).
var connectionClose = []string{"close"}

// closeAmbiguous closes the connection after HTTP/1.0 and chunked HTTP/1.1
// requests when net/http serves HTTP/1.x. net/http drops what makes these
// requests ambiguous before any handler runs: Transfer-Encoding on
// HTTP/1.0 (ignored), and a Content-Length beside Transfer-Encoding on
// HTTP/1.1 (deleted). A request that carried either cannot be told apart,
// and RFC 9112 section 6.1 says the connection must close after the
// response, or what a proxy in front read as body would be served here as
// a next request. The portico engine refuses both framings with 400, so
// it needs none of this.
func closeAmbiguous(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && (r.ProtoMinor == 0 || r.ContentLength < 0 && len(r.TransferEncoding) > 0) {
			w.Header()["Connection"] = connectionClose
		}
		h.ServeHTTP(w, r)
	})
}

// HTTPSAddr returns the bound HTTPS address, or nil without an HTTPS listener.
func (s *Server) HTTPSAddr() net.Addr {
	if s.httpsListener == nil {
		return nil
	}
	return s.httpsListener.Addr()
}

// HTTPAddr returns the bound HTTP address, or nil without an HTTP listener.
func (s *Server) HTTPAddr() net.Addr {
	if s.httpListener == nil {
		return nil
	}
	return s.httpListener.Addr()
}

// RegisterOnShutdown registers fn to run when Shutdown starts. Shutdown does
// not wait for hijacked connections such as WebSocket tunnels; whoever owns
// them uses this to close them.
func (s *Server) RegisterOnShutdown(fn func()) {
	var once sync.Once
	run := func() { once.Do(fn) }
	for _, srv := range s.servers() {
		srv.RegisterOnShutdown(run)
	}
	for _, e := range s.engines() {
		e.RegisterOnShutdown(run)
	}
}

func (s *Server) servers() []*http.Server {
	var out []*http.Server
	if s.httpsServer != nil {
		out = append(out, s.httpsServer)
	}
	if s.httpServer != nil {
		out = append(out, s.httpServer)
	}
	return out
}

// Serve accepts connections on every listener and blocks until Shutdown,
// returning nil, or until a listener fails, returning that error after
// closing the other listener so the process does not run half a front door.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("server is already serving")
	}
	if s.shutdown {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.serving = true
	s.mu.Unlock()

	type result struct {
		name string
		err  error
	}
	results := make(chan result, 2)
	running := 0
	if s.httpsServer != nil {
		running++
		go func() {
			if s.httpsEngine != nil {
				results <- result{"HTTPS", s.serveHTTPSEngine()}
				return
			}
			// Certificates come from TLSConfig.GetCertificate, hence no files.
			results <- result{"HTTPS", s.httpsServer.ServeTLS(s.httpsListener, "", "")}
		}()
	}
	if s.httpServer != nil {
		running++
		go func() {
			if s.httpEngine != nil {
				results <- result{"HTTP", s.serveHTTPEngine()}
				return
			}
			results <- result{"HTTP", s.httpServer.Serve(s.httpListener)}
		}()
	}

	var first error
	for ; running > 0; running-- {
		r := <-results
		if r.err == nil || errors.Is(r.err, http.ErrServerClosed) || first != nil {
			continue
		}
		first = fmt.Errorf("serve %s on %s: %w", r.name, s.addrOf(r.name), r.err)
		s.log.Error("front-door listener failed; closing the others", "error", first)
		for _, srv := range s.servers() {
			srv.Close()
		}
		for _, e := range s.engines() {
			e.Close()
		}
	}
	return first
}

func (s *Server) addrOf(name string) net.Addr {
	if name == "HTTPS" {
		return s.HTTPSAddr()
	}
	return s.HTTPAddr()
}

// Shutdown stops accepting connections, closes idle ones and waits for
// in-flight requests on both listeners to finish. If ctx ends first, the
// remaining connections are closed and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	s.mu.Unlock()

	servers := s.servers()
	engines := s.engines()
	errs := make(chan error, len(servers)+len(engines))
	for _, srv := range servers {
		go func() { errs <- srv.Shutdown(ctx) }()
	}
	for _, e := range engines {
		go func() { errs <- e.Shutdown(ctx) }()
	}
	var first error
	for range len(servers) + len(engines) {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		for _, srv := range servers {
			srv.Close()
		}
		for _, e := range engines {
			e.Close()
		}
	}
	// http.Server only closes listeners it is serving; when Serve was never
	// called the bound sockets would otherwise leak.
	for _, ln := range []net.Listener{s.httpsListener, s.httpListener} {
		if ln != nil {
			ln.Close()
		}
	}
	return first
}

// errorLogWriter routes net/http's internal log lines to slog. TLS handshake
// failures and malformed client traffic are everyday noise from scanners on
// an internet-facing port, so they go to debug; everything else is a warning.
type errorLogWriter struct{ log *slog.Logger }

// clientNoise are prefixes of net/http log lines caused by what a client sent
// or did, not by Portico.
var clientNoise = []string{
	"http: TLS handshake error",
	"http2: server: error reading preface",
	"http2: received GOAWAY",
	"http2: server connection error",
	"http2: timeout waiting for SETTINGS frames",
	"http: URL query contains semicolon",
}

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	level := slog.LevelWarn
	for _, prefix := range clientNoise {
		if strings.HasPrefix(msg, prefix) {
			level = slog.LevelDebug
			break
		}
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}
