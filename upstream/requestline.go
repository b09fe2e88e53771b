package upstream

import (
	"errors"
	"net/http"
	"strings"
)

// ErrInvalidRequestLine is returned by ValidRequestLine, and by the writer
// when it is handed a request that would not pass it.
var ErrInvalidRequestLine = errors.New("request method, target or authority is not valid HTTP/1.1 syntax")

// invalidRequestError: the request cannot be written as HTTP/1.1 without
// changing its meaning; nothing of it was written.
type invalidRequestError struct{ err error }

func (e *invalidRequestError) Error() string { return e.err.Error() }
func (e *invalidRequestError) Unwrap() error { return e.err }

// ValidRequestLine reports whether method, target and authority can be
// written into an HTTP/1.1 request line and Host header exactly as they
// are, with the meaning they had when the request was routed. HTTP/2
// carries them as separate fields (:method, :path, :authority), so SP, TAB
// or a stray '/' in one of them would otherwise let a client route on one
// target and reach the backend with another.
//
// method must be an RFC 9110 token. target must be origin-form
// ("/path?query"), "*" for OPTIONS, absolute-form ("http://..." or
// "https://...", which RFC 9112 section 3.2.2 obliges a server to accept)
// or, for CONNECT, an authority; every byte of it a visible ASCII
// character but '#': SP, TAB, controls and raw non-ASCII bytes must be
// percent-encoded, and a fragment is not sent. authority is empty (HTTP/1.0 and HTTP/2 may omit it) or
// host[:port], host being a reg-name, an IPv4 address or a bracketed IPv6
// address: no userinfo, path, backslash, whitespace or controls.
//
// It runs on every request before routing: a few byte loops over strings
// already in hand, no allocation.
func ValidRequestLine(method, target, authority string) bool {
	if method == "" || !validToken(method) {
		return false
	}
	if !ValidAuthority(authority) {
		return false
	}
	switch {
	case target == "":
		return false
	case method == http.MethodConnect:
		return target == authority && authority != ""
	case target[0] == '/':
		return validTargetChars(target)
	case target == "*":
		return method == http.MethodOptions
	case hasPrefixFold(target, "http://") || hasPrefixFold(target, "https://"):
		return validTargetChars(target)
	}
	return false
}

// ValidAuthority reports whether a is empty or host[:port] as
// ValidRequestLine describes.
func ValidAuthority(a string) bool {
	if a == "" {
		return true
	}
	var port string
	if a[0] == '[' {
		end := strings.IndexByte(a, ']')
		if end < 0 || !validIPv6Literal(a[1:end]) {
			return false
		}
		if port = a[end+1:]; port != "" {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
		}
	} else {
		// One pass: a reg-name or IPv4 address holds no ':', so the first
		// one starts the port.
		i := 0
		for i < len(a) && charClass[a[i]]&classRegName != 0 {
			i++
		}
		switch {
		case i == 0:
			return false
		case i == len(a):
			return true
		case a[i] != ':':
			return false
		}
		port = a[i+1:]
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return len(port) <= 5
}

// validIPv6Literal accepts the characters of an IPv6 address (hex digits,
// ':' and '.' for an embedded IPv4 part) and a zone ("%25" and unreserved
// characters, RFC 6874); the backend parses the value, this only keeps it
// from carrying anything but an address.
func validIPv6Literal(s string) bool {
	if s == "" || strings.IndexByte(s, ':') < 0 {
		return false
	}
	addr, zone, _ := strings.Cut(s, "%")
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
			return false
		}
	}
	for i := 0; i < len(zone); i++ {
		if !isRegNameChar(zone[i]) {
			return false
		}
	}
	return true
}

// Character classes, one table lookup per byte: these loops run on every
// request.
const (
	classToken   = 1 << iota // RFC 9110 tchar
	classRegName             // RFC 3986 unreserved, sub-delims and '%'
)

var charClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alnum := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
		if alnum || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0 {
			t[c] |= classToken
		}
		if alnum || strings.IndexByte("-._~!$&'()*+,;=%", b) >= 0 {
			t[c] |= classRegName
		}
	}
	return t
}()

// isRegNameChar reports whether c may appear in an RFC 3986 reg-name:
// unreserved, sub-delims and '%' of a pct-encoding.
func isRegNameChar(c byte) bool { return charClass[c]&classRegName != 0 }

// validTargetChars reports whether a request target holds only VCHARs and
// no '#': a fragment is not part of a request target (RFC 9112 section
// 3.2), and backends differ on whether "/api#x" means "/api", so the route
// chosen for it and the resource served could differ.
func validTargetChars(s string) bool {
	return visibleASCII(s) && strings.IndexByte(s, '#') < 0
}

// visibleASCII reports whether s holds only VCHARs (0x21 to 0x7e).
func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if charClass[s[i]]&classToken == 0 {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
