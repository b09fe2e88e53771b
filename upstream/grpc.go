package upstream

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// gRPC calls are proxied as any other HTTP/2 request (h2c.go streams both
// bodies and passes the trailers); what this file adds is what a gRPC
// client needs from the proxy itself: the answers Portico generates (no
// route, no endpoints, backend down, timeout) in gRPC form, and the
// call's grpc-timeout as a deadline on the backend exchange.

// gRPC status codes Portico answers with (google.golang.org/grpc/codes).
const (
	GRPCOK                = 0
	GRPCUnknown           = 2
	GRPCDeadlineExceeded  = 4
	GRPCPermissionDenied  = 7
	GRPCResourceExhausted = 8
	GRPCUnimplemented     = 12
	GRPCInternal          = 13
	GRPCUnavailable       = 14
	GRPCUnauthenticated   = 16
)

// IsGRPC reports whether r is a gRPC call: its content type is
// application/grpc, alone or with a +codec suffix or parameters. gRPC-Web
// (application/grpc-web) is not: it has its own framing of errors.
func IsGRPC(r *http.Request) bool {
	ct := r.Header["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	v, ok := strings.CutPrefix(ct[0], "application/grpc")
	if !ok {
		return false
	}
	return v == "" || v[0] == '+' || v[0] == ';'
}

// GRPCStatusOf is the gRPC status of an answer Portico gives with HTTP
// status code: the gRPC HTTP-to-status mapping
// (grpc/doc/http-grpc-status-mapping.md), except that the timeouts Portico
// enforces say so (DEADLINE_EXCEEDED) and its own failures are INTERNAL.
func GRPCStatusOf(code int) int {
	switch code {
	case http.StatusOK:
		return GRPCOK
	case http.StatusBadRequest, http.StatusInternalServerError, http.StatusMethodNotAllowed:
		return GRPCInternal
	case http.StatusUnauthorized:
		return GRPCUnauthenticated
	case http.StatusForbidden:
		return GRPCPermissionDenied
	case http.StatusNotFound:
		return GRPCUnimplemented
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return GRPCDeadlineExceeded
	case http.StatusRequestEntityTooLarge:
		return GRPCResourceExhausted
	case http.StatusMisdirectedRequest, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
		return GRPCUnavailable
	}
	return GRPCUnknown
}

// WriteGRPCError answers a gRPC call with the status Portico means by HTTP
// status code, as gRPC requires: HTTP 200 and a trailers-only response
// (grpc-status and grpc-message in the only HEADERS frame), which a gRPC
// client reads as the call's status instead of failing on an HTML or text
// body it cannot parse. It must only be called before anything of the
// response was written. Headers the front door set before routing (such
// as Connection: close after ambiguous framing) are kept.
func WriteGRPCError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	delete(h, "Content-Length")
	h["Content-Type"] = []string{"application/grpc"}
	h["Grpc-Status"] = []string{strconv.Itoa(GRPCStatusOf(code))}
	h["Grpc-Message"] = []string{grpcMessage(strconv.Itoa(code) + " " + http.StatusText(code) + ": " + msg)}
	w.WriteHeader(http.StatusOK)
}

// grpcMessage percent-encodes a grpc-message value: bytes outside
// printable ASCII, and '%' itself (gRPC over HTTP/2, Responses).
func grpcMessage(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+16)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

// maxGRPCTimeout bounds a grpc-timeout so that the deadline computed from
// it cannot overflow; gRPC allows eight digits of hours.
const maxGRPCTimeout = 100 * 365 * 24 * time.Hour

// grpcTimeout parses a grpc-timeout value: one to eight digits and a unit
// (H, M, S, m, u, n). ok is false for anything else, which is then not
// applied (the backend, which gets the header as is, decides).
func grpcTimeout(v string) (d time.Duration, ok bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v)-1; i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	if n > int64(maxGRPCTimeout/unit) {
		return maxGRPCTimeout, true
	}
	return time.Duration(n) * unit, true
}

// grpcDeadline returns the deadline a gRPC call's grpc-timeout sets from
// now, or the zero time when it sets none. Only HTTP/2 requests carry
// gRPC, so an HTTP/1.x request costs one comparison, and an HTTP/2 one a
// header lookup.
func grpcDeadline(r *http.Request) time.Time {
	if r.ProtoMajor != 2 {
		return time.Time{}
	}
	v := r.Header["Grpc-Timeout"]
	if len(v) == 0 || !IsGRPC(r) {
		return time.Time{}
	}
	d, ok := grpcTimeout(v[0])
	if !ok {
		return time.Time{}
	}
	return time.Now().Add(d)
}
