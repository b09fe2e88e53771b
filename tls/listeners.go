package tls

import (
	"errors"
	"net"
)

// ServeListener returns a Server for one socket the caller bound: TLS
// (HTTP/2 and HTTP/1.1, cfg.GetCertificate and cfg.HTTPSHandler) when secure,
// plain HTTP (cfg.HTTPHandler) otherwise, with the same limits as Listen.
// The address fields of cfg are ignored.
//
// It exists for sockets that come and go while the process runs (Gateway
// listeners): the caller holds the net.Listener, so it can tell when
// Shutdown has closed it and the port is free to bind again, while
// in-flight requests are still draining.
//
// A plain socket also accepts HTTP/2 with prior knowledge (h2c, RFC 9113
// section 3.3), which the Gateway API expects of HTTP listeners; HTTP/1.1
// clients are told apart by the connection preface and served as before.
// The h2c upgrade from HTTP/1.1 is deprecated and not offered.
//
// With the portico HTTP/1 engine, both kinds of socket use it for HTTP/1.x
// as Listen's do; it hands h2 (by ALPN) and h2c (by preface) connections to
// net/http's HTTP/2 server.
func ServeListener(ln net.Listener, secure bool, cfg ServerConfig, opts ...ListenerOption) (*Server, error) {
	if ln == nil {
		return nil, errors.New("no listener")
	}
	limits, logger, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{log: logger}
	if !secure {
		if cfg.HTTPHandler == nil {
			return nil, errors.New("an HTTP listener needs HTTPHandler")
		}
		s.addHTTP(ln, cfg, limits, logger.With("listener", "http", "addr", ln.Addr().String()), true)
		return s, nil
	}
	if cfg.GetCertificate == nil {
		return nil, errors.New("an HTTPS listener needs GetCertificate")
	}
	if cfg.HTTPSHandler == nil {
		return nil, errors.New("an HTTPS listener needs HTTPSHandler")
	}
	s.addHTTPS(ln, cfg, limits, logger.With("listener", "https", "addr", ln.Addr().String()))
	base := s.httpsServer.TLSConfig
	var o listenerOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.clientValidation != nil {
		base.GetConfigForClient = ConfigForClient(base, o.clientValidation)
	}
	return s, nil
}

// ListenerOption adds to what ServeListener sets up.
type ListenerOption func(*listenerOptions)

type listenerOptions struct {
	clientValidation func() *ClientValidation
}

// WithClientValidation makes a secure socket validate client certificates
// as validation says on each handshake (see ConfigForClient): validation
// must load the serving configuration once and return nil when the socket
// validates no client certificates. Plain sockets ignore it.
func WithClientValidation(validation func() *ClientValidation) ListenerOption {
	return func(o *listenerOptions) { o.clientValidation = validation }
}
