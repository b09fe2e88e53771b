package tls

import (
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"sync/atomic"
)

// This file holds client certificate validation for a listener (a Gateway's
// spec.tls.frontend, default or per port): the per-handshake TLS
// configuration that asks for, and checks, the client's certificate.

// ClientValidationMode says what happens to a client whose certificate is
// missing or does not verify.
type ClientValidationMode uint8

const (
	// AllowValidOnly refuses the handshake unless the client presents a
	// certificate that chains to the listener's CAs.
	AllowValidOnly ClientValidationMode = iota
	// AllowInsecureFallback asks for a certificate but accepts the
	// connection without one or with one that does not verify, leaving
	// authorization to the backend.
	AllowInsecureFallback
	// VerifyPerRequest asks for a certificate, naming the CAs, and accepts
	// the handshake whatever the client sends: the route checks it on each
	// request (ingress-nginx's auth-tls-*), so that a missing or invalid
	// certificate is answered in HTTP (400, as nginx answers it) rather
	// than by a failed handshake the client cannot read.
	VerifyPerRequest
)

func (m ClientValidationMode) String() string {
	switch m {
	case AllowInsecureFallback:
		return "AllowInsecureFallback"
	case VerifyPerRequest:
		return "VerifyPerRequest"
	}
	return "AllowValidOnly"
}

// ClientValidation is one listener's client certificate validation. It is
// immutable once published in a snapshot, apart from the cached handshake
// configuration.
type ClientValidation struct {
	// CAs are the certificate authorities a client certificate must chain
	// to. Nil (no usable CA) refuses every handshake in AllowValidOnly mode.
	CAs  *x509.CertPool
	Mode ClientValidationMode

	// derived caches the configuration built from one base configuration,
	// so a handshake costs one atomic load, not a Clone.
	derived atomic.Pointer[derivedConfig]
}

type derivedConfig struct {
	base, cfg *stdtls.Config
}

// NewClientValidation parses a PEM bundle of CA certificates (the ca.crt
// of the referenced ConfigMaps, concatenated). It fails when the bundle
// holds no certificate; the builder then reports the reference as invalid.
func NewClientValidation(caPEM []byte, mode ClientValidationMode) (*ClientValidation, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errNoClientCA
	}
	return &ClientValidation{CAs: pool, Mode: mode}, nil
}

var (
	errNoClientCA       = errors.New("no PEM-encoded CA certificate for client certificate validation")
	errClientCAsMissing = errors.New("client certificate validation has no usable CA certificate")
)

// ConfigForClient returns a GetConfigForClient callback for one listener's
// TLS configuration base. validation is called on every handshake and
// must read the serving snapshot (one atomic load), so a change of CAs or
// mode applies to the next handshake with no restart; it returns nil when
// the listener validates no client certificates, and the handshake then
// uses base unchanged.
//
// base must be the very configuration the callback is installed on, with
// GetCertificate set; the configuration returned for a validating listener
// is a clone of it, so certificates, ALPN and session tickets are the
// same.
func ConfigForClient(base *stdtls.Config, validation func() *ClientValidation) func(*stdtls.ClientHelloInfo) (*stdtls.Config, error) {
	return func(*stdtls.ClientHelloInfo) (*stdtls.Config, error) {
		v := validation()
		if v == nil {
			return nil, nil
		}
		return v.config(base)
	}
}

// ConfigForServerName returns a GetConfigForClient callback that asks for
// a client certificate only on the handshakes whose server name validation
// returns a ClientValidation for (ingress-nginx's auth-tls-* annotations
// are per host, as nginx's ssl_verify_client is per server): other hosts
// of the socket use base unchanged and are never asked. validation is
// called on every handshake and must read the serving snapshot.
func ConfigForServerName(base *stdtls.Config, validation func(serverName string) *ClientValidation) func(*stdtls.ClientHelloInfo) (*stdtls.Config, error) {
	return func(hello *stdtls.ClientHelloInfo) (*stdtls.Config, error) {
		v := validation(hello.ServerName)
		if v == nil {
			return nil, nil
		}
		return v.config(base)
	}
}

// config returns base with v's client authentication, cached for base.
func (v *ClientValidation) config(base *stdtls.Config) (*stdtls.Config, error) {
	if d := v.derived.Load(); d != nil && d.base == base {
		return d.cfg, nil
	}
	cfg := base.Clone()
	// The clone must not call back into this function on its own
	// handshake.
	cfg.GetConfigForClient = nil
	// The CAs are named in the certificate request in both modes, which
	// helps a client with several certificates pick the right one.
	cfg.ClientCAs = v.CAs
	switch v.Mode {
	case AllowInsecureFallback, VerifyPerRequest:
		// The certificate is asked for and passed on (r.TLS), but not
		// verified: a failed verification must not fail the handshake.
		cfg.ClientAuth = stdtls.RequestClientCert
		if v.Mode == VerifyPerRequest {
			// A resumed session is not asked for a certificate: it
			// carries the one of its first handshake, or none. A client
			// refused for a missing or wrong certificate would resume
			// into the same refusal on every connection, so these hosts
			// neither accept nor issue tickets (a full handshake per
			// connection, on these hosts only).
			cfg.SessionTicketsDisabled = true
		}
	default:
		if v.CAs == nil {
			return nil, errClientCAsMissing
		}
		cfg.ClientAuth = stdtls.RequireAndVerifyClientCert
	}
	v.derived.Store(&derivedConfig{base: base, cfg: cfg})
	return cfg, nil
}
