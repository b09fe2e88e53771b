package tls

import (
	stdtls "crypto/tls"
	"errors"
	"strings"

	"portico.dev/portico/hostname"
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
	wildcard map[string]*KeyPair // keyed by the suffix after "*." (hostname.Pattern.Key)
	fallback *KeyPair
	bindings []Binding // the bindings that won their host, normalized, in input order

	// clientExact and clientWildcard are the hosts whose handshakes ask
	// for a client certificate (SetClientValidation), keyed as exact and
	// wildcard; nil when no host asks.
	clientExact, clientWildcard map[string]*ClientValidation
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
		host, err := normalizeBindingHost(b.Host)
		if err != nil {
			continue
		}
		m := c.exact
		if host.IsWildcard() {
			m = c.wildcard
		}
		key := host.Key()
		if _, taken := m[key]; taken {
			continue
		}
		m[key] = b.Pair
		b.Host = host.String()
		c.bindings = append(c.bindings, b)
	}
	return c
}

// ValidateHost reports whether host can be bound to a certificate: an exact
// DNS name or "*." followed by one. The snapshot builder uses it to turn a bad
// Ingress TLS host into a reported problem rather than a silent skip.
func ValidateHost(host string) error {
	_, err := normalizeBindingHost(host)
	return err
}

func normalizeBindingHost(host string) (hostname.Pattern, error) {
	p := hostname.NewPattern(hostname.Normalize(host))
	name := p.Key()
	switch {
	case name == "":
		return hostname.Pattern{}, errors.New("empty host name")
	case len(p.String()) > maxHostLen:
		return hostname.Pattern{}, errors.New("host name longer than 253 characters")
	case strings.Contains(name, "*"):
		return hostname.Pattern{}, errors.New("a wildcard may only be the whole first label, as in *.example.com")
	case strings.Contains(name, ".."), strings.HasPrefix(name, "."):
		return hostname.Pattern{}, errors.New("host name has an empty label")
	}
	return p, nil
}

// wildcards is the wildcard rule of certificate bindings on every socket,
// a Gateway socket's included: "*.example.com" serves exactly one label in
// place of "*", as an X.509 wildcard name does (RFC 6125, section 6.4.3),
// while a Gateway socket selects its listener by the Host under
// hostname.AnyLabels.
const wildcards = hostname.OneLabel

// Lookup returns the key pair to present for serverName: an exact match, else
// a wildcard covering exactly the first label ("*.example.com" serves
// "a.example.com" but neither "example.com" nor "a.b.example.com"), else the
// default, which may be nil. Matching ignores case and a trailing dot; an
// empty serverName (clients connecting by IP send no SNI) gets the default.
func (c *Certificates) Lookup(serverName string) *KeyPair {
	if c == nil {
		return nil
	}
	var buf [maxHostLen]byte
	// Empty for an empty name or one longer than maxHostLen.
	name := hostname.AppendName(buf[:0], serverName)
	if len(name) == 0 {
		return c.fallback
	}
	// string(name) used directly as a map index does not allocate.
	if p := c.exact[string(name)]; p != nil {
		return p
	}
	if len(c.wildcard) > 0 {
		if i := hostname.FirstKey(name, wildcards); i >= 0 {
			if p := c.wildcard[string(name[i:])]; p != nil {
				return p
			}
		}
	}
	return c.fallback
}

// SetClientValidation makes the handshakes for hosts (exact names or
// "*." wildcards, matched as certificates are) ask for a client
// certificate as their ClientValidation says. It is called by the builder
// before the Certificates are published, never after; invalid hosts are
// skipped, the first entry for a host wins.
func (c *Certificates) SetClientValidation(hosts []string, validations []*ClientValidation) {
	for i, h := range hosts {
		host, err := normalizeBindingHost(h)
		if err != nil || validations[i] == nil {
			continue
		}
		m := &c.clientExact
		if host.IsWildcard() {
			m = &c.clientWildcard
		}
		if *m == nil {
			*m = make(map[string]*ClientValidation)
		}
		if _, taken := (*m)[host.Key()]; !taken {
			(*m)[host.Key()] = validations[i]
		}
	}
}

// ClientValidation returns how a handshake for serverName validates the
// client's certificate: nil (the common case, one nil check) when its host
// asks for none. It matches as Lookup does and does not allocate.
func (c *Certificates) ClientValidation(serverName string) *ClientValidation {
	if c == nil || (c.clientExact == nil && c.clientWildcard == nil) {
		return nil
	}
	var buf [maxHostLen]byte
	name := hostname.AppendName(buf[:0], serverName)
	if len(name) == 0 {
		return nil
	}
	if v := c.clientExact[string(name)]; v != nil {
		return v
	}
	if len(c.clientWildcard) > 0 {
		if i := hostname.FirstKey(name, wildcards); i >= 0 {
			return c.clientWildcard[string(name[i:])]
		}
	}
	return nil
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
