// Package frontdoor assembles Portico's serving sockets, the ones the
// flags name (--https-addr, --http-addr) and the Gateway listeners alike,
// from one description: what the whole process shares (limits, the
// backend transport, metrics, the access log, OCSP, ACME) and what the
// socket serves (a route table and a certificate set, read once per
// request and per handshake from the serving snapshot). Each socket gets
// the same parts, built here once: the routing handler; on plain HTTP the
// ACME HTTP-01 answerer in front of it; and the certificate chain (a
// certificate the socket holds for the name, then ACME for the names it
// may serve, then the socket's default, each stapled). The sockets
// themselves (ALPN split, the HTTP/1.1 engine, PROXY protocol, limits,
// drain) are package tls's Server.
package frontdoor

import (
	"context"
	stdtls "crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"portico.dev/portico/http1"
	"portico.dev/portico/metrics"
	"portico.dev/portico/routing"
	porticotls "portico.dev/portico/tls"
	"portico.dev/portico/tls/acme"
)

// Shared is what every socket of the process shares.
type Shared struct {
	Limits porticotls.Limits
	// ProxyProtocolFrom are the peers whose PROXY protocol headers are read.
	ProxyProtocolFrom []netip.Prefix
	// LegacyCiphers offers CBC suites on TLS 1.2.
	LegacyCiphers bool
	// ConnContext gives each client connection its backend dial budget.
	ConnContext func(context.Context, net.Conn) context.Context

	Forwarder routing.Forwarder
	Metrics   *metrics.Metrics
	// AccessLog gets a record per request; nil for none.
	AccessLog *slog.Logger
	// BodyLimits bound what the routing handler buffers for mirrors and
	// retries.
	BodyLimits routing.BodyLimits
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// for routes with client address ranges.
	TrustedProxies []netip.Prefix
	// ExternalAuthTimeout bounds each subrequest to a route's
	// authentication service.
	ExternalAuthTimeout time.Duration
	// BasicAuthCacheSize bounds the bcrypt and MD5-crypt acceptances a
	// handler remembers.
	BasicAuthCacheSize int
	// OCSP staples OCSP responses to the certificates; nil serves them
	// unstapled.
	OCSP *porticotls.OCSPStapler
	// ACME returns the ACME manager, or nil when there is none (yet: it
	// starts once the flag sockets are bound, as it answers challenges on
	// the plain-HTTP one).
	ACME   func() *acme.Manager
	Logger *slog.Logger
}

// Content is what one socket serves. The functions are called once per
// request or handshake and must be cheap: they read the serving snapshot.
type Content struct {
	// Routes returns the route table; nil answers 503 (not ready).
	Routes func() *routing.Table
	// Certificates returns the socket's certificates; nil has none.
	Certificates func() *porticotls.Certificates
	// Default is served to a handshake no certificate of Certificates
	// matches, when Certificates itself does not pick one; nil fails it.
	Default *porticotls.KeyPair
	// ClientValidation, when set, returns how client certificates are
	// validated on each handshake (Gateway spec.tls.frontend).
	ClientValidation func() *porticotls.ClientValidation
	// HostClientValidation, when set, returns per server name whether a
	// handshake asks for the client's certificate (ingress-nginx's
	// auth-tls-* on an Ingress host); only the flag sockets use it.
	HostClientValidation func(serverName string) *porticotls.ClientValidation
	// HTTPSPort is the port redirects to HTTPS name.
	HTTPSPort int
	// Logger, when set, replaces Shared.Logger for this socket.
	Logger *slog.Logger
}

// parts builds the socket's handler, its plain-HTTP handler and its
// certificate chain.
func (sh *Shared) parts(c Content) (handler *routing.Handler, httpHandler http.Handler, getCertificate func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error)) {
	h := routing.NewHandler(routing.HandlerConfig{
		Table:      c.Routes,
		Forwarder:  sh.Forwarder,
		Metrics:    sh.Metrics,
		HTTPSPort:  c.HTTPSPort,
		Logger:     sh.logger(c),
		AccessLog:  sh.AccessLog,
		BodyLimits: sh.BodyLimits,
		// Gateway and Ingress routes see the same client.
		TrustedProxies:      sh.TrustedProxies,
		ExternalAuthTimeout: sh.ExternalAuthTimeout,
		BasicAuthCacheSize:  sh.BasicAuthCacheSize,
	})
	lookup := func(serverName string) *porticotls.KeyPair {
		if certs := c.Certificates(); certs != nil {
			return certs.Lookup(serverName)
		}
		return c.Default
	}
	stapled := sh.OCSP.Wrap(porticotls.CertificateGetter(lookup))
	hasCertificate := func(serverName string) bool {
		certs := c.Certificates()
		return certs != nil && certs.Has(serverName)
	}
	getCertificate = func(hello *stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
		m := sh.acme()
		if m == nil {
			return stapled(hello)
		}
		return m.Chain(hasCertificate, stapled)(hello)
	}
	httpHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := sh.acme(); m != nil {
			m.HTTPHandler(h).ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
	return h, httpHandler, getCertificate
}

func (sh *Shared) acme() *acme.Manager {
	if sh.ACME == nil {
		return nil
	}
	return sh.ACME()
}

func (sh *Shared) logger(c Content) *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	if sh.Logger != nil {
		return sh.Logger
	}
	return slog.Default()
}

func (sh *Shared) serverConfig(c Content) porticotls.ServerConfig {
	handler, httpHandler, getCertificate := sh.parts(c)
	return porticotls.ServerConfig{
		Limits:            sh.Limits,
		GetCertificate:    getCertificate,
		HTTPSHandler:      handler,
		HTTPSFastPath:     fastPathOf(handler),
		HTTPHandler:       httpHandler,
		Logger:            sh.logger(c),
		ProxyProtocolFrom: sh.ProxyProtocolFrom,
		LegacyCiphers:     sh.LegacyCiphers,
		ConnContext:       sh.ConnContext,
	}
}

// Listen binds the flag sockets, HTTPS on httpsAddr and plain HTTP on
// httpAddr (either may be empty), and returns their server, not yet
// serving. content is called with the bound HTTPS address (nil without
// one), since redirects to HTTPS name its port.
func Listen(httpsAddr, httpAddr string, sh Shared, content func(httpsBound net.Addr) Content) (*porticotls.Server, error) {
	// The handlers need the bound port: bind first, with handlers that
	// reach the real ones, built before anything is served.
	var built struct {
		handler, httpHandler http.Handler
		getCertificate       func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error)
	}
	cfg := porticotls.ServerConfig{
		HTTPSAddr:         httpsAddr,
		HTTPAddr:          httpAddr,
		Limits:            sh.Limits,
		GetCertificate:    func(h *stdtls.ClientHelloInfo) (*stdtls.Certificate, error) { return built.getCertificate(h) },
		HTTPSHandler:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { built.handler.ServeHTTP(w, r) }),
		HTTPHandler:       http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { built.httpHandler.ServeHTTP(w, r) }),
		Logger:            sh.Logger,
		ProxyProtocolFrom: sh.ProxyProtocolFrom,
		LegacyCiphers:     sh.LegacyCiphers,
		ConnContext:       sh.ConnContext,
	}
	// The per-host client validation reads the snapshot through content,
	// which is only known once the sockets are bound.
	var hostValidation func(string) *porticotls.ClientValidation
	cfg.ClientValidation = func(serverName string) *porticotls.ClientValidation {
		if hostValidation == nil {
			return nil
		}
		return hostValidation(serverName)
	}
	srv, err := porticotls.Listen(cfg)
	if err != nil {
		return nil, err
	}
	var handler *routing.Handler
	c := content(srv.HTTPSAddr())
	hostValidation = c.HostClientValidation
	handler, built.httpHandler, built.getCertificate = sh.parts(c)
	built.handler = handler
	srv.SetFastPath(fastPathOf(handler))
	return srv, nil
}

// Serve returns the server of one Gateway socket the caller bound, plain
// HTTP or HTTPS as secure says, not yet serving.
func Serve(ln net.Listener, secure bool, sh Shared, c Content) (*porticotls.Server, error) {
	cfg := sh.serverConfig(c)
	var opts []porticotls.ListenerOption
	if c.ClientValidation != nil {
		opts = append(opts, porticotls.WithClientValidation(c.ClientValidation))
	}
	return porticotls.ServeListener(ln, secure, cfg, opts...)
}

// fastPathOf returns h's fast path, or nil (an interface holding no value)
// when it has none.
func fastPathOf(h *routing.Handler) http1.FastPath {
	if fp := h.FastPath(); fp != nil {
		return fp
	}
	return nil
}
