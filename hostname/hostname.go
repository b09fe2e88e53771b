// Package hostname owns how Portico reads and compares host names: the
// normal form of a Host header, an SNI name or a spec hostname (lower
// case, no trailing dot, no port), host patterns (any host, an exact name,
// or a "*." wildcard), and the two wildcard rules the specs define:
//
//   - OneLabel, the Ingress v1 rule: "*.example.com" matches
//     "a.example.com" but neither "a.b.example.com" nor "example.com". TLS
//     certificate bindings use it too, as a certificate's own wildcard does
//     (RFC 6125, section 6.4.3).
//   - AnyLabels, the Gateway API rule: "*.example.com" matches
//     "a.example.com" and "a.b.example.com", never "example.com"; a more
//     specific wildcard ("*.b.example.com") ranks above a less specific one.
//
// Listener and route hostnames of the Gateway API also intersect
// (Intersect) and cover one another (Covers) under the AnyLabels rule.
//
// The route table (routing), the listener selection of a Gateway socket
// (routing), the SNI certificate lookup (tls) and the snapshot builder all
// match through this package. The lookup helpers work on byte slices a
// caller fills on its stack, so the request and handshake paths stay free
// of allocations: a table keys its wildcard patterns by Pattern.Key and
// walks FirstKey/NextKey of the normalised host, most specific first.
//
// It does not own CORS origin patterns (routing) nor whether a
// certificate's own names cover a host (crypto/x509).
package hostname

import "strings"

// Mode is a wildcard rule: how many leading labels "*." stands for.
type Mode uint8

const (
	// OneLabel: "*.example.com" matches exactly one label in place of "*".
	//
	// Ingress v1, IngressRule.host: "The wildcard character '*' must appear
	// by itself as the first DNS label and matches only a single label."
	OneLabel Mode = iota
	// AnyLabels: "*.example.com" matches one or more labels in place of
	// "*", and never the bare "example.com".
	//
	// Gateway API v1, Listener.hostname (and HTTPRoute spec.hostnames):
	// "Hostnames that are prefixed with a wildcard label (`*.`) are
	// interpreted as a suffix match. That means that a match for
	// `*.example.com` would match both `test.example.com`, and
	// `foo.test.example.com`, but not `example.com`."
	AnyLabels
)

func (m Mode) String() string {
	if m == AnyLabels {
		return "AnyLabels"
	}
	return "OneLabel"
}

// Normalize returns name lower-cased and without one trailing dot, the
// form in which SNI names, Host headers without port and certificate
// binding hosts are compared.
func Normalize(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// Lower returns a spec hostname (Ingress rule or TLS host, Gateway
// listener or route hostname) lower-cased. The API server already rejects
// a trailing dot there, so none is removed: a name that bypassed
// validation keeps it, and matches no request.
func Lower(name string) string { return strings.ToLower(name) }

// AppendHost appends to dst a Host header value (or :authority)
// normalised: without its port (an IPv6 literal keeps its brackets),
// without a trailing dot, lower-cased. It returns an empty slice for an
// empty host or one longer than cap(dst), which then matches only patterns
// for any host. It does not allocate when dst has room.
func AppendHost(dst []byte, host string) []byte {
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		if strings.HasPrefix(host, "[") {
			// IPv6 literal: "[::1]:8443" or "[::1]".
			if end := strings.IndexByte(host, ']'); end > 0 {
				host = host[:end+1]
			}
		} else {
			host = host[:i]
		}
	}
	return AppendName(dst, host)
}

// AppendName is AppendHost for a name that carries no port, such as a TLS
// server name (SNI). It is small enough to be inlined into the handshake's
// certificate lookup.
func AppendName(dst []byte, name string) []byte {
	if name != "" && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	n := len(dst) + len(name)
	if n > cap(dst) {
		return dst[:0]
	}
	lowerInto(dst[len(dst):n], name)
	return dst[:n]
}

// lowerInto copies name into dst, which has its length, lower-casing ASCII
// letters.
func lowerInto(dst []byte, name string) {
	for i := range dst {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
}

// FirstKey returns where in the normalised host h the key of the most
// specific wildcard pattern that may match h starts (see Pattern.Key): just
// after the first dot, or -1 when h has no dot past its first byte. Under
// OneLabel a host whose first byte is a dot has no key.
//
//	for i := FirstKey(h, mode); i >= 0; i = NextKey(h, i, mode) {
//		if v, ok := wildcards[string(h[i:])]; ok { ... }
//	}
//
// visits the candidate keys from the longest (most specific) to the
// shortest; under OneLabel there is only the first.
func FirstKey[S ~string | ~[]byte](h S, mode Mode) int {
	if mode == OneLabel {
		if len(h) > 0 && h[0] == '.' {
			return -1
		}
	}
	for i := 1; i < len(h); i++ {
		if h[i] == '.' {
			return i + 1
		}
	}
	return -1
}

// NextKey returns the start of the key after the one starting at i (see
// FirstKey), or -1 when there is none; under OneLabel there never is.
func NextKey[S ~string | ~[]byte](h S, i int, mode Mode) int {
	if mode == OneLabel {
		return -1
	}
	for ; i < len(h); i++ {
		if h[i] == '.' {
			return i + 1
		}
	}
	return -1
}

// IsWildcard reports whether a hostname is a wildcard pattern ("*." and
// a suffix).
func IsWildcard(name string) bool { return strings.HasPrefix(name, "*.") }

// Pattern is a compiled host pattern: any host (""), an exact name, or a
// wildcard "*.suffix". It holds the text it was made from, which callers
// normalise first (Normalize or Lower).
type Pattern struct {
	text     string
	wildcard bool
}

// NewPattern compiles a normalised hostname.
func NewPattern(name string) Pattern {
	return Pattern{text: name, wildcard: IsWildcard(name)}
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.text }

// IsAny reports whether p matches any host (no hostname).
func (p Pattern) IsAny() bool { return p.text == "" }

// IsWildcard reports whether p is a "*." wildcard.
func (p Pattern) IsWildcard() bool { return p.wildcard }

// Key is what a table files p under: the suffix after "*." for a wildcard,
// the name itself for an exact pattern ("" for any host). FirstKey and
// NextKey find a host's candidate wildcard keys.
func (p Pattern) Key() string {
	if p.wildcard {
		return p.text[len("*."):]
	}
	return p.text
}

// Matches reports whether p matches host, a normalised concrete name,
// under mode.
func (p Pattern) Matches(host string, mode Mode) bool {
	switch {
	case p.text == "":
		return true
	case !p.wildcard:
		return p.text == host
	}
	key := p.Key()
	for i := FirstKey(host, mode); i >= 0; i = NextKey(host, i, mode) {
		if host[i:] == key {
			return true
		}
	}
	return false
}

// Covers reports whether every host q matches, p matches too, under mode;
// q may itself be a pattern (a more specific wildcard, for AnyLabels). Any
// host covers every pattern; a pattern covers itself.
func (p Pattern) Covers(q Pattern, mode Mode) bool {
	return p.text == "" || p.text == q.text || p.wildcardCovers(q, mode)
}

// wildcardCovers reports whether p is a wildcard that covers q other than
// by equality: an exact name it matches, or (AnyLabels) a wildcard with a
// longer suffix.
func (p Pattern) wildcardCovers(q Pattern, mode Mode) bool {
	if !p.wildcard || q.text == "" {
		return false
	}
	if !q.wildcard {
		return p.Matches(q.text, mode)
	}
	// "*.a.example.com" is covered by "*.example.com" only when "*" stands
	// for any number of labels: under OneLabel, "x.a.example.com" is not
	// matched by "*.example.com".
	return mode == AnyLabels && p.Matches(q.Key(), mode)
}

// Intersect returns the hosts a Gateway API route hostname can take on a
// listener (AnyLabels): the route's hostname when the listener's covers it,
// the listener's when the route's covers it, ok false when they share no
// host. A listener without hostname intersects every route hostname.
//
// Gateway API v1, HTTPRoute spec.hostnames: "A Listener with
// `test.example.com` as the hostname matches HTTPRoutes that have either
// not specified any hostnames, or have specified at least one of
// `test.example.com` or `*.example.com`. A Listener with `*.example.com` as
// the hostname matches HTTPRoutes that have either not specified any
// hostnames or have specified at least one hostname that matches the
// Listener hostname. For example, `*.example.com`, `test.example.com`, and
// `foo.test.example.com` would all match. On the other hand, `example.com`
// and `test.example.net` would not match."
//
// A route without hostnames is not passed here: it takes the listener's
// hostname as it is.
func Intersect(listener, route Pattern) (effective Pattern, ok bool) {
	switch {
	case listener.Covers(route, AnyLabels):
		return route, true
	case route.wildcardCovers(listener, AnyLabels):
		return listener, true
	}
	return Pattern{}, false
}

// Specificity ranks Gateway listener hostnames for selection: an exact
// name above any wildcard, a wildcard with a longer suffix above a shorter
// one, and any host last.
//
// Gateway API v1, Listener: "Exact matches MUST be processed before
// wildcard matches, and wildcard matches MUST be processed before fallback
// (empty Hostname value) matches. [...] if there are multiple wildcard
// entries, more specific wildcard entries must be processed before less
// specific wildcard entries."
func (p Pattern) Specificity() int {
	switch {
	case p.text == "":
		return -1
	case p.wildcard:
		return len(p.text)
	default:
		return 1 << 16
	}
}
