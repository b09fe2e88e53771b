package upstream

import (
	"bufio"
	"net/http"
	"net/netip"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// isHopByHop reports whether the canonical header name k is a hop-by-hop
// header (RFC 9110 section 7.6.1) that a proxy must not forward. Framing
// headers are included: Portico always frames messages itself.
func isHopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		// Belongs to an h2c upgrade (RFC 7540 section 3.2.1), which is
		// never forwarded; a client may leave it out of Connection.
		"Http2-Settings":
		return true
	}
	return false
}

// namedInConnection reports whether name is listed as a token in any of the
// Connection header values, which makes it hop-by-hop for this message.
func namedInConnection(connection []string, name string) bool {
	for _, v := range connection {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
}

// hasToken reports whether the comma-separated header values contain token,
// case-insensitively.
func hasToken(values []string, token string) bool {
	return namedInConnection(values, token)
}

// isForwardingHeader reports whether k is one of the headers that describe
// the client or the path to it: Portico (re)writes them, keeping the
// inbound ones only from trusted proxies (see writeForwardingHeaders).
func isForwardingHeader(k string) bool {
	switch k {
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded",
		"X-Real-Ip", "True-Client-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix":
		return true
	}
	return false
}

// passedFromTrusted are the forwarding headers Portico has no value of its
// own for: a trusted proxy's are forwarded as they are, anyone else's are
// dropped.
var passedFromTrusted = [...]string{"True-Client-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix"}

// forwardableName reports whether a request header (or trailer) name may
// be sent on: a token, without '_' unless allowed. One pass over the name,
// which the header loop walks anyway.
func (t *Transport) forwardableName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !isTokenChar(c) || c == '_' && !t.allowUnderscores {
			return false
		}
	}
	return true
}

// forwardedTrailers returns the trailer fields of r to send on: those the
// client declared in its Trailer header (the keys the inbound server put in
// r.Trailer before the body was read) that are neither framing, routing
// nor forwarding fields, nor any field RFC 9110 section 6.5.1 rules out of
// trailers. Only requests that declare trailers pay for the slice.
//
// Called before the body is read, as the writers do. A body buffered
// earlier (a route's retry or mirror) has already merged undeclared
// trailers into r.Trailer; those then pass as declared, still filtered.
func (t *Transport) forwardedTrailers(r *http.Request) []string {
	if len(r.Trailer) == 0 {
		return nil
	}
	var names []string
	for k := range r.Trailer {
		if !skipRequestHeader(k, nil) && t.forwardableName(k) && httpguts.ValidTrailerHeader(k) {
			names = append(names, k)
		}
	}
	return names
}

// skipRequestHeader reports whether an inbound request header must not be
// copied verbatim to the backend: hop-by-hop, framing, Expect (the inbound
// server already answered 100-continue), Host (sent separately) and the
// forwarding headers (rewritten).
func skipRequestHeader(k string, connection []string) bool {
	switch k {
	case "Content-Length", "Expect", "Host":
		return true
	}
	if isHopByHop(k) || isForwardingHeader(k) {
		return true
	}
	return len(connection) > 0 && namedInConnection(connection, k)
}

// validHeaderValue rejects values that would break HTTP/1.1 framing. The
// inbound servers already refuse them; this guards against handlers that
// modified r.Header before calling Forward.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if !isFieldValueByte(v[i]) {
			return false
		}
	}
	return true
}

// isFieldValueByte reports whether c may stand in a field value (RFC 9110
// section 5.5): visible characters, obs-text, SP and HTAB. Other controls
// are refused by strict parsers (and read as line ends by lax ones), so a
// value holding one is neither written nor taken by the fast response
// parser.
func isFieldValueByte(c byte) bool { return c >= ' ' && c != 0x7f || c == '\t' }

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenChar(k[i]) {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c is an RFC 9110 tchar. A table lookup: it
// runs for every byte of every forwarded header name.
func isTokenChar(c byte) bool { return charClass[c]&classToken != 0 }

// forwarding describes the client of one request for the X-Forwarded-* and
// Forwarded headers.
type forwarding struct {
	// clientIP is the peer address without port, brackets or zone mapping.
	clientIP string
	ipv6     bool
	// trusted means the peer is a trusted proxy whose own forwarding headers
	// are kept and appended to.
	trusted bool
	proto   string
	host    string
	// prefix, when set, is the route's X-Forwarded-Prefix: sent in place
	// of any inbound one (ForwardOptions.ForwardedPrefix).
	prefix string
}

func (t *Transport) forwardingFor(r *http.Request) forwarding {
	f := forwarding{proto: "http"}
	if validHeaderValue(r.Host) {
		// The front door refuses an invalid Host before routing; this
		// keeps the writer safe for any caller.
		f.host = r.Host
	}
	if r.TLS != nil {
		f.proto = "https"
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		// Not an IP peer (for example a unix socket or a test harness):
		// describe it as unknown and trust nothing it says.
		f.clientIP = "unknown"
		return f
	}
	addr := ap.Addr()
	if addr.Is4In6() {
		addr = addr.Unmap()
		f.clientIP = addr.String()
	} else {
		// Slice the textual address out of RemoteAddr to avoid formatting.
		host := r.RemoteAddr[:strings.LastIndexByte(r.RemoteAddr, ':')]
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		f.clientIP = host
	}
	f.ipv6 = addr.Is6()
	for _, p := range t.trusted {
		if p.Contains(addr) {
			f.trusted = true
			break
		}
	}
	return f
}

// appendXFF appends the X-Forwarded-For value: the inbound chain when the
// peer is trusted, then the client address.
func appendXFF(dst []byte, f *forwarding, inbound []string) []byte {
	if f.trusted {
		for _, v := range inbound {
			// A trusted peer's values are kept, but only when they can be
			// written as one field line.
			if v = strings.TrimSpace(v); v != "" && validHeaderValue(v) {
				dst = append(dst, v...)
				dst = append(dst, ", "...)
			}
		}
	}
	return append(dst, f.clientIP...)
}

// appendForwarded appends the RFC 7239 Forwarded value: the inbound elements
// when the peer is trusted, then this hop's element.
func appendForwarded(dst []byte, f *forwarding, inbound []string) []byte {
	if f.trusted {
		for _, v := range inbound {
			// A trusted peer's values are kept, but only when they can be
			// written as one field line.
			if v = strings.TrimSpace(v); v != "" && validHeaderValue(v) {
				dst = append(dst, v...)
				dst = append(dst, ", "...)
			}
		}
	}
	dst = append(dst, "for="...)
	switch {
	case f.ipv6:
		dst = append(dst, `"[`...)
		dst = append(dst, f.clientIP...)
		dst = append(dst, `]"`...)
	case f.clientIP == "unknown":
		dst = append(dst, "unknown"...)
	default:
		dst = append(dst, f.clientIP...)
	}
	if f.host != "" {
		dst = append(dst, ";host="...)
		dst = appendForwardedValue(dst, f.host)
	}
	dst = append(dst, ";proto="...)
	return append(dst, f.proto...)
}

// appendForwardedValue appends v as an RFC 7239 value: a token when it is
// one, otherwise a quoted-string (a host with a port contains ':').
func appendForwardedValue(dst []byte, v string) []byte {
	token := true
	for i := 0; i < len(v); i++ {
		if !isTokenChar(v[i]) {
			token = false
			break
		}
	}
	if token {
		return append(dst, v...)
	}
	dst = append(dst, '"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, v[i])
	}
	return append(dst, '"')
}

// keptForwardingValue returns the value to send for X-Forwarded-Proto or
// X-Forwarded-Host: the inbound one from a trusted peer, else Portico's own.
func keptForwardingValue(f *forwarding, inbound []string, own string) string {
	if f.trusted && len(inbound) > 0 && inbound[0] != "" && validHeaderValue(inbound[0]) {
		return inbound[0]
	}
	return own
}

// copyResponseHeader copies the backend's end-to-end response headers into
// dst, sharing the value slices (the response is not used afterwards).
func copyResponseHeader(dst, src http.Header) {
	connection := src["Connection"]
	for k, vv := range src {
		if isHopByHop(k) || (len(connection) > 0 && namedInConnection(connection, k)) {
			continue
		}
		dst[k] = vv
	}
}

// idempotent reports whether a request with this method may be sent twice
// (RFC 9110 section 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// upgradeType returns the protocol an HTTP/1.1 client asks to switch to, or
// "" when the request is to be proxied as an ordinary one: HTTP/2 has no
// Upgrade, and a protocol not allowed (h2c never is) or more than one
// offered is ignored, as RFC 9110 section 7.8 lets a server do. An h2c
// upgrade a backend accepted would hand the client a raw HTTP/2
// connection to it, on which no later request would be routed.
func (t *Transport) upgradeType(r *http.Request) string {
	if r.ProtoMajor != 1 {
		return ""
	}
	up := r.Header["Upgrade"]
	if len(up) != 1 || up[0] == "" || !hasToken(r.Header["Connection"], "upgrade") {
		return ""
	}
	for _, p := range t.allowedUpgrades {
		if strings.EqualFold(up[0], p) {
			return up[0]
		}
	}
	return ""
}

// writeHeaderValues writes one "Name: value" line per valid value of a
// header whose name was checked by the caller. Values a backend or client
// could use to split the header block (CR, LF, NUL) are dropped.
func writeHeaderValues(bw *bufio.Writer, name string, values []string) {
	for _, v := range values {
		if !validHeaderValue(v) {
			continue
		}
		bw.WriteString(name)
		bw.WriteString(": ")
		bw.WriteString(v)
		bw.WriteString("\r\n")
	}
}
