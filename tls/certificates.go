package tls

import (
	stdtls "crypto/tls"
	"errors"
	"strings"
)

// Binding attaches a key pair to one host name.
type Binding struct {
	// Host is an exact name ("a.example.com") or a wildcard covering exactly
	// one leading label ("*.example.com").
	Host string
	// Pair is served for Host.
	Pair *KeyPair
	// Source names where Pair came from, "namespace/secret", for logs and
	// per-certificate expiry metrics.
	Source string
}

// Certificates is a compiled, immutable SNI lookup set. Build one per
// snapshot with NewCertificates; Lookup is safe for concurrent use and does
// not allocate, so it can sit on every handshake.
type Certificates struct {
	exact    map[string]*KeyPair
	wildcard map[string]*KeyPair // keyed by the suffix after "*."
	fallback *KeyPair
	bindings []Binding // the bindings that won their host, normalized, in input order
}

// maxHostLen is the longest DNS name (RFC 1035), and so the longest SNI a
// lookup will try to match; longer names get the default certificate.
const maxHostLen = 253

// NewCertificates compiles bindings into a lookup set. The first binding for a
// host wins, so the caller decides precedence by ordering (for example oldest
// Ingress first). Bindings with a nil Pair or a host that is not a valid exact
// or single-label wildcard name are ignored; the builder reports those to the
// user before calling here. defaultPair, which may be nil, is served when no
// binding matches.
func NewCertificates(bindings []Binding, defaultPair *KeyPair) *Certificates {
	c := &Certificates{
		exact:    make(map[string]*KeyPair, len(bindings)),
		wildcard: make(map[string]*KeyPair),
		fallback: defaultPair,
	}
	for _, b := range bindings {
		if b.Pair == nil || b.Pair.Certificate == nil {
			continue
		}
		host, isWildcard, err := normalizeBindingHost(b.Host)
		if err != nil {
			continue
		}
		m := c.exact
		key := host
		if isWildcard {
			m = c.wildcard
			key = host[len("*."):]
		}
		if _, taken := m[key]; taken {
			continue
		}
		m[key] = b.Pair
		b.Host = host
		c.bindings = append(c.bindings, b)
	}
	return c
}

// ValidateHost reports whether host can be bound to a certificate: an exact
// DNS name or "*." followed by one. The snapshot builder uses it to turn a bad
// Ingress TLS host into a reported problem rather than a silent skip.
func ValidateHost(host string) error {
	_, _, err := normalizeBindingHost(host)
	return err
}

func normalizeBindingHost(host string) (normalized string, isWildcard bool, err error) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	name := host
	if strings.HasPrefix(host, "*.") {
		isWildcard = true
		name = host[len("*."):]
	}
	switch {
	case name == "":
		return "", false, errors.New("empty host name")
	case len(host) > maxHostLen:
		return "", false, errors.New("host name longer than 253 characters")
	case strings.Contains(name, "*"):
		return "", false, errors.New("a wildcard may only be the whole first label, as in *.example.com")
	case strings.Contains(name, ".."), strings.HasPrefix(name, "."):
		return "", false, errors.New("host name has an empty label")
	}
	return host, isWildcard, nil
}

// Lookup returns the key pair to present for serverName: an exact match, else
// a wildcard covering exactly the first label ("*.example.com" serves
// "a.example.com" but neither "example.com" nor "a.b.example.com"), else the
// default, which may be nil. Matching ignores case and a trailing dot; an
// empty serverName (clients connecting by IP send no SNI) gets the default.
func (c *Certificates) Lookup(serverName string) *KeyPair {
	if c == nil {
		return nil
	}
	serverName = strings.TrimSuffix(serverName, ".")
	if serverName == "" || len(serverName) > maxHostLen {
		return c.fallback
	}
	var buf [maxHostLen]byte
	name := buf[:len(serverName)]
	for i := 0; i < len(serverName); i++ {
		b := serverName[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		name[i] = b
	}
	// string(name) used directly as a map index does not allocate.
	if p := c.exact[string(name)]; p != nil {
		return p
	}
	if len(c.wildcard) > 0 {
		if dot := indexByte(name, '.'); dot > 0 && dot < len(name)-1 {
			if p := c.wildcard[string(name[dot+1:])]; p != nil {
				return p
			}
		}
	}
	return c.fallback
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// Default returns the key pair served when no binding matches; it may be nil.
func (c *Certificates) Default() *KeyPair { return c.fallback }

// Len returns the number of host names (exact and wildcard) with a
// certificate, not counting the default.
func (c *Certificates) Len() int { return len(c.bindings) }

// Each calls fn for every binding in effect, in the order given to
// NewCertificates, with Host normalized. Several bindings may share a Source;
// expiry metrics should be keyed by Source.
func (c *Certificates) Each(fn func(Binding)) {
	for _, b := range c.bindings {
		fn(b)
	}
}

// CertificateGetter adapts a lookup function, typically one that loads the
// current snapshot and calls its Certificates.Lookup, into a
// crypto/tls GetCertificate callback. Because the lookup runs on every
// handshake, a new snapshot applies to the next connection with no restart,
// while established connections keep the certificate they negotiated.
func CertificateGetter(lookup func(serverName string) *KeyPair) func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
	return func(hello *stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
		if p := lookup(hello.ServerName); p != nil && p.Certificate != nil {
			return p.Certificate, nil
		}
		// Returning an error aborts the handshake with an alert, which is
		// the only honest answer when there is not even a default.
		return nil, errNoCertificate
	}
}

var errNoCertificate = errors.New("no certificate for this server name and no default certificate")
