package upstream

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// BackendTLS makes Portico speak TLS to a backend's endpoints (a Gateway
// API BackendTLSPolicy) and says how their certificates are verified. It
// is immutable once its Backend is published; the crypto/tls configuration
// is built from it once, on first use. HTTP/1.1 is spoken inside the TLS
// connection, also for a Backend whose Protocol is H2C.
type BackendTLS struct {
	// ServerName is sent as SNI. When SubjectAltNames is empty, the
	// backend's certificate must also be valid for it.
	ServerName string
	// CACertificates is a PEM bundle of the CAs the backend's certificate
	// must chain to. Unless SystemRoots is set, a bundle without any
	// certificate makes every connection to the backend fail, so that a
	// policy whose CA reference is broken never falls back to trusting
	// anything.
	CACertificates []byte
	// SystemRoots verifies against the host's well-known CAs instead
	// (WellKnownCACertificates: System).
	SystemRoots bool
	// SubjectAltNames, when set, replace ServerName for authentication:
	// the certificate must carry at least one of them.
	SubjectAltNames []SubjectAltName
	// ClientCertificate, when set, is presented to backends that ask for
	// a client certificate (a Gateway's spec.tls.backend). Its Leaf should
	// be set; pools are told apart by its chain, so connections made with
	// one certificate are never reused for another.
	ClientCertificate *tls.Certificate
	// SkipVerify accepts any certificate the backend sends (ingress-nginx's
	// proxy-ssl-verify off, its default): the connection is encrypted but
	// the backend not authenticated. ServerName, when set, is still sent.
	SkipVerify bool
	// VerifyDepth, when above zero, allows at most that many intermediate
	// CAs between the backend's certificate and a root (nginx's
	// proxy_ssl_verify_depth); zero allows any chain crypto/x509 builds.
	VerifyDepth int
	// CipherSuites, when set, are the TLS 1.2 cipher suites offered
	// instead of Go's defaults (TLS 1.3 suites are not configurable).
	CipherSuites []uint16
	// MinVersion and MaxVersion, when set, bound the TLS versions offered;
	// MinVersion is never below TLS 1.2.
	MinVersion, MaxVersion uint16

	once   sync.Once
	config *tls.Config
	// stream is config without ALPN, for byte streams (StreamConfig).
	stream *tls.Config
	// poolID tells apart connection pools of one endpoint address with
	// different TLS settings; plain connections are pooled by address only.
	poolID string
	err    error
}

// SubjectAltName is one name a backend certificate may be required to
// carry: a DNS name (Hostname, matched as crypto/x509 matches host names)
// or a URI (compared exactly, as for SPIFFE IDs). Exactly one is set.
type SubjectAltName struct {
	Hostname string
	URI      string
}

var errNoCACertificates = errors.New("no valid CA certificate to verify the backend with")

// prepare returns the client TLS configuration and the pool identity,
// building them on first use.
func (bt *BackendTLS) prepare() (*tls.Config, string, error) {
	bt.once.Do(func() {
		bt.config, bt.err = bt.build()
		if bt.err != nil {
			return
		}
		bt.stream = bt.config.Clone()
		bt.stream.NextProtos = nil
		// A session resumed across the two would carry the other's ALPN
		// agreement: each has its own cache.
		bt.stream.ClientSessionCache = tls.NewLRUClientSessionCache(64)
		h := sha256.New()
		fmt.Fprintf(h, "%q %v %q", bt.ServerName, bt.SystemRoots, bt.CACertificates)
		for _, san := range bt.SubjectAltNames {
			fmt.Fprintf(h, " %q %q", san.Hostname, san.URI)
		}
		fmt.Fprintf(h, " skip %v depth %d ciphers %v versions %d-%d", bt.SkipVerify, bt.VerifyDepth, bt.CipherSuites, bt.MinVersion, bt.MaxVersion)
		if cc := bt.ClientCertificate; cc != nil {
			fmt.Fprintf(h, " client %d", len(cc.Certificate))
			for _, der := range cc.Certificate {
				fmt.Fprintf(h, " %x", sha256.Sum256(der))
			}
		}
		bt.poolID = "tls:" + hex.EncodeToString(h.Sum(nil)[:12])
	})
	return bt.config, bt.poolID, bt.err
}

func (bt *BackendTLS) build() (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:         bt.ServerName,
		MinVersion:         max(bt.MinVersion, tls.VersionTLS12),
		MaxVersion:         bt.MaxVersion,
		CipherSuites:       bt.CipherSuites,
		NextProtos:         []string{"http/1.1"},
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
	if bt.ClientCertificate != nil {
		cfg.Certificates = []tls.Certificate{*bt.ClientCertificate}
	}
	if bt.SkipVerify {
		cfg.InsecureSkipVerify = true
		return cfg, nil
	}
	var roots *x509.CertPool
	if bt.SystemRoots {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("loading the system CA certificates: %w", err)
		}
		roots = pool
	} else {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(bt.CACertificates) {
			return nil, errNoCACertificates
		}
	}
	cfg.RootCAs = roots
	if len(bt.SubjectAltNames) > 0 || bt.VerifyDepth > 0 {
		// crypto/tls can only verify against ServerName, with chains of
		// any length: verify the chain here instead, then the names.
		sans, name, depth := bt.SubjectAltNames, bt.ServerName, bt.VerifyDepth
		if len(sans) == 0 {
			sans = []SubjectAltName{{Hostname: name}}
		}
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyWithSANs(cs.PeerCertificates, roots, sans, depth)
		}
	}
	return cfg, nil
}

// verifyWithSANs checks that the backend's chain leads to roots, through
// at most depth intermediates when depth is above zero, and that its leaf
// carries one of sans.
func verifyWithSANs(chain []*x509.Certificate, roots *x509.CertPool, sans []SubjectAltName, depth int) error {
	if len(chain) == 0 {
		return errors.New("backend sent no certificate")
	}
	leaf := chain[0]
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return err
	}
	if depth > 0 && !slices.ContainsFunc(chains, func(c []*x509.Certificate) bool { return len(c)-2 <= depth }) {
		// A chain is the leaf, its intermediates and the root.
		return fmt.Errorf("backend certificate chain has more than %d intermediate CA certificates", depth)
	}
	if matchesSAN(leaf, sans) {
		return nil
	}
	return fmt.Errorf("backend certificate carries none of the required subject alternative names %v", sans)
}

// matchesSAN reports whether cert carries one of sans.
func matchesSAN(cert *x509.Certificate, sans []SubjectAltName) bool {
	for _, san := range sans {
		switch {
		case san.Hostname != "":
			if cert.VerifyHostname(san.Hostname) == nil {
				return true
			}
		case san.URI != "":
			for _, u := range cert.URIs {
				if u.String() == san.URI {
					return true
				}
			}
		}
	}
	return false
}

func (s SubjectAltName) String() string {
	if s.URI != "" {
		return "URI:" + s.URI
	}
	return "DNS:" + s.Hostname
}

// StreamConfig is the client TLS configuration for a byte stream whose
// protocol Portico does not know (a TLSRoute in mode Terminate): the one
// HTTP requests to the backend are sent with, verification included, but
// offering no ALPN protocol. It is built once and shared: callers must not
// modify it.
func (bt *BackendTLS) StreamConfig() (*tls.Config, error) {
	if _, _, err := bt.prepare(); err != nil {
		return nil, err
	}
	return bt.stream, nil
}

// tlsSetupError marks a backend whose TLS settings cannot be used at all.
type tlsSetupError struct{ err error }

func (e *tlsSetupError) Error() string { return "backend TLS settings: " + e.err.Error() }
func (e *tlsSetupError) Unwrap() error { return e.err }

// poolFor returns the connection pool for one endpoint of b: by address
// for plain backends, by address and TLS settings for TLS ones, so TLS and
// plain connections to one address are never mixed up.
func (t *Transport) poolFor(b *Backend, addr string) (*endpointPool, error) {
	if b.TLS == nil {
		return t.pool(addr), nil
	}
	cfg, id, err := b.TLS.prepare()
	if err != nil {
		return nil, &tlsSetupError{err}
	}
	key := addr + "|" + id
	if p, ok := t.pools.Load(key); ok {
		return p.(*endpointPool), nil
	}
	p, _ := t.pools.LoadOrStore(key, &endpointPool{addr: addr, tls: cfg, lastUsed: time.Now()})
	return p.(*endpointPool), nil
}
