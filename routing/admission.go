package routing

import (
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Admission holds the checks a request must pass before its route serves
// it: a bound on the request body, per-client rate limits and client
// address ranges. The ingress-nginx proxy-body-size, limit-*,
// whitelist-source-range and denylist-source-range annotations translate
// to it.
type Admission struct {
	// MaxBodyBytes, when positive, answers 413 to a request whose declared
	// Content-Length exceeds it, before anything is forwarded; a body of
	// unknown length is cut when it passes the bound.
	MaxBodyBytes int64
	// Allow, when not empty, answers 403 to a client whose address is in
	// none of the prefixes; Deny answers 403 to one whose address is in
	// any. Deny is checked first.
	Allow, Deny []netip.Prefix
	// Limit, when set, bounds each client's requests (ratelimit.go).
	Limit *RateLimit
}

const (
	bodyTooLargeBody = "413 Request Entity Too Large: the request body exceeds this route's limit\n"
	forbiddenBody    = "403 Forbidden: this route does not accept requests from your address\n"
)

// onlyBoundsBody reports whether the admission's one rule is a body limit
// and r has no body for it to bound, so that it admits r whatever it is:
// ingress-nginx's proxy-body-size, which every Ingress gets once
// --nginx-configmap is set (1m by default), then keeps no bodiless
// request off the event loops.
func (a *Admission) onlyBoundsBody(r *http.Request) bool {
	return len(a.Allow) == 0 && len(a.Deny) == 0 && a.Limit == nil && r.ContentLength == 0 && (r.Body == nil || r.Body == http.NoBody)
}

// checkBody answers 413 when r declares a body over the bound and
// returns the status sent, or 0 to go on; a body of unknown length is
// wrapped so that reading past the bound fails.
func (a *Admission) checkBody(w http.ResponseWriter, r *http.Request) int {
	if a.MaxBodyBytes <= 0 {
		return 0
	}
	if r.ContentLength > a.MaxBodyBytes {
		// The client may still be sending: the body is not read, and the
		// connection is closed after the answer.
		w.Header().Set("Connection", "close")
		writeText(w, http.StatusRequestEntityTooLarge, bodyTooLargeBody)
		return http.StatusRequestEntityTooLarge
	}
	if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		// Only chunked bodies pay for this wrapper.
		r.Body = &limitedBody{ReadCloser: r.Body, limit: a.MaxBodyBytes, left: a.MaxBodyBytes}
	}
	return 0
}

// limitedBody fails a read that passes the bound with the error the
// Forwarder answers 413 for, when no response has started.
type limitedBody struct {
	io.ReadCloser
	limit, left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, &http.MaxBytesError{Limit: b.limit}
	}
	return n, err
}

// admitsSource reports whether the client of r may use the route. The
// client is the peer (already the PROXY protocol's source address when the
// front door read one); when the peer is a trusted proxy, the client is the
// rightmost X-Forwarded-For address that is not itself a trusted proxy, as
// nginx's real_ip module finds it with real_ip_recursive on.
// grantsSource reports whether the allow list names r's client and the
// deny list does not: what grants access under satisfy any, where a route
// without an allow list grants nothing by address.
func (a *Admission) grantsSource(r *http.Request, trusted []netip.Prefix) bool {
	return a != nil && len(a.Allow) > 0 && a.admitsSource(r, trusted)
}

func (a *Admission) admitsSource(r *http.Request, trusted []netip.Prefix) bool {
	if len(a.Allow) == 0 && len(a.Deny) == 0 {
		return true
	}
	client, ok := clientAddr(r, trusted)
	if !ok {
		// An address that cannot be read is in no range: it passes a deny
		// list and fails an allow list.
		return len(a.Allow) == 0
	}
	for _, p := range a.Deny {
		if p.Contains(client) {
			return false
		}
	}
	if len(a.Allow) == 0 {
		return true
	}
	for _, p := range a.Allow {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

func clientAddr(r *http.Request, trusted []netip.Prefix) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	addr := ap.Addr().Unmap()
	if !inPrefixes(addr, trusted) {
		return addr, true
	}
	xff := r.Header["X-Forwarded-For"]
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			var item string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				item, list = list[j+1:], list[:j]
			} else {
				item, list = list, ""
			}
			hop, err := netip.ParseAddr(strings.TrimSpace(item))
			if err != nil {
				// A hop that is not an address ends the walk: what the
				// trusted chain vouches for stops here.
				return addr, true
			}
			addr = hop.Unmap()
			if !inPrefixes(addr, trusted) {
				return addr, true
			}
		}
	}
	return addr, true
}

func inPrefixes(addr netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func (a *Admission) String() string {
	var parts []string
	if a.MaxBodyBytes > 0 {
		parts = append(parts, "max-body "+strconv.FormatInt(a.MaxBodyBytes, 10))
	}
	if len(a.Allow) > 0 {
		parts = append(parts, "allow "+joinPrefixes(a.Allow))
	}
	if len(a.Deny) > 0 {
		parts = append(parts, "deny "+joinPrefixes(a.Deny))
	}
	if a.Limit != nil {
		parts = append(parts, a.Limit.String())
	}
	return strings.Join(parts, ", ")
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}
