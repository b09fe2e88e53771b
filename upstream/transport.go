package upstream

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"portico.dev/portico/internal/unset"
)

// Defaults for the zero fields of Config.
const (
	DefaultDialTimeout             = 5 * time.Second
	DefaultResponseHeaderTimeout   = 60 * time.Second
	DefaultIdleConnTimeout         = 15 * time.Second
	DefaultMaxIdleConnsPerEndpoint = 64
	// DefaultMaxResponseHeaderBytes is above Envoy's 60 KiB default and far
	// above nginx's one-page proxy_buffer_size, so real applications with
	// large cookies and Content-Security-Policy headers fit; Go's 10 MiB
	// would let one response make the gateway buffer and relay megabytes.
	DefaultMaxResponseHeaderBytes = 64 << 10
	// DefaultMaxInformationalResponses bounds the 1xx responses before a
	// final one: in practice a 100 Continue and a 103 Early Hints or two.
	DefaultMaxInformationalResponses = 8
	// DefaultClientDialBurst and DefaultClientDialRate bound the backend
	// connections one client connection can make Portico open and waste
	// (see dialBudget). The burst lets a full HTTP/2 connection's worth of
	// streams reach a cold pool at once only in part, the rest follow as
	// connections return; the rate is far above what cancelled page loads
	// waste and far below a reset flood's thousands a second.
	DefaultClientDialBurst = 64
	DefaultClientDialRate  = 16
	// DefaultHTTP2ResetLimit is far above the streams a browser cancels in
	// 10 s (leaving a page, seeking in a video) and far below a rapid-reset
	// flood's thousands a second.
	DefaultHTTP2ResetLimit = 100

	// Idle bounds once a request is under way, after nginx's
	// client_body_timeout, send_timeout, proxy_read_timeout,
	// proxy_send_timeout and its WebSocket practice.
	DefaultClientBodyTimeout   = 60 * time.Second
	DefaultSendTimeout         = 60 * time.Second
	DefaultUpstreamReadTimeout = 60 * time.Second
	DefaultUpstreamSendTimeout = 60 * time.Second
	DefaultTunnelIdleTimeout   = time.Hour
)

// StatusClientClosedRequest is the status recorded (never sent) when the
// client went away before the response was complete, after nginx's 499.
const StatusClientClosedRequest = 499

// Config tunes a Transport. Zero fields take the defaults.
type Config struct {
	// DialTimeout bounds the TCP connect to an endpoint. Default 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout is the time to wait for response headers after
	// the request is written; on a reused connection it may end up to 1/16
	// of itself early (see armHeaderDeadline). Default 60s.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes pooled idle connections older than this.
	// Default 15s: below the keep-alive timeout of most servers (nginx 75s,
	// load balancers 60s, Tomcat 20s), so Portico, not the backend, closes
	// an idle connection, and a backend never closes one just as a request
	// is written on it. Backends that close sooner (Node.js and Apache 5s)
	// are caught by the check every idle connection gets before reuse. The
	// cost of a shorter timeout is a reconnect after a quiet spell.
	IdleConnTimeout time.Duration
	// MaxResponseHeaderBytes bounds a response head, the informational
	// responses before it included; above it the client gets a 502 and the
	// connection is closed. Default 64 KiB.
	MaxResponseHeaderBytes int
	// MaxInformationalResponses bounds the 1xx responses a backend may send
	// before the final one; above it the client gets a 502. Default 8.
	MaxInformationalResponses int
	// ClientDialBurst and ClientDialRate (per second) bound the backend
	// connections one client connection may have Portico dial beyond those
	// its completed requests give back, for servers using
	// ClientConnContext. Defaults 64 and 16.
	ClientDialBurst int
	ClientDialRate  int
	// HTTP2ResetLimit is how many proxied requests one HTTP/2 client
	// connection may cancel (reset) in 10 s, for servers using
	// ClientConnContext; past it the connection is closed. Default 100.
	HTTP2ResetLimit int
	// The idle timeouts below each bound the time between two successive
	// reads or writes that make progress, not a whole transfer, so a long
	// upload or download that keeps moving is never cut. Each may end up to
	// 1/16 of itself early: deadlines are refreshed at most once per 1/16
	// of the timeout rather than per read or write.
	//
	// ClientBodyTimeout bounds each wait for the next bytes of a request
	// body from the client; the client gets 408 if no response has started.
	// Default 60s.
	ClientBodyTimeout time.Duration
	// SendTimeout bounds each wait for a client to accept more of a
	// response; the client's connection (or HTTP/2 stream) is then cut.
	// Default 60s.
	SendTimeout time.Duration
	// UpstreamReadTimeout bounds each wait for the next bytes of a response
	// body from a backend; the response to the client is then cut. Default
	// 60s.
	UpstreamReadTimeout time.Duration
	// UpstreamSendTimeout bounds each wait for a backend to accept more of
	// a request. Default 60s.
	UpstreamSendTimeout time.Duration
	// TunnelIdleTimeout closes an upgraded connection (WebSocket) through
	// which no byte went in either direction for this long. Default 1h.
	TunnelIdleTimeout time.Duration
	// MaxIdleConnsPerEndpoint is the idle pool one endpoint keeps once
	// traffic settles. Default 64. A burst may leave more connections idle;
	// those above the cap are closed after 2s without a request.
	MaxIdleConnsPerEndpoint int
	// TrustedProxies: peers (r.RemoteAddr) whose inbound X-Forwarded-For /
	// Forwarded / X-Forwarded-Proto/-Host / X-Real-IP are kept (and the
	// first two appended to), and whose True-Client-IP, X-Forwarded-Port and
	// X-Forwarded-Prefix are passed on; for every other peer the former are
	// replaced and the latter dropped. Default: none.
	TrustedProxies []netip.Prefix
	// AllowedUpgrades are the protocols (Upgrade tokens) a client may switch
	// to through a tunnel; other Upgrade requests are forwarded as ordinary
	// requests without it. h2c is never allowed. Default: websocket.
	AllowedUpgrades []string
	// AllowUnderscoresInHeaders forwards request header fields whose names
	// contain '_'. By default they are dropped, as nginx does: backends
	// that map '-' and '_' alike (CGI, some frameworks) would read
	// X_Forwarded_For as the X-Forwarded-For Portico sets.
	AllowUnderscoresInHeaders bool
	// OnConnectError, if set, is called once per failed dial with the
	// backend's name.
	OnConnectError func(backend string)
	// Logger receives background events (tunnel and pool errors). Default
	// slog.Default().
	Logger *slog.Logger
}

// Outcome is what Forward did, for access logs and metrics.
type Outcome struct {
	// Status is the status code sent to the client, also for errors Portico
	// generated itself; StatusClientClosedRequest when the client went away.
	Status int
	// Err is nil on success; otherwise why the proxy failed.
	Err error
}

// Transport forwards requests to backends. Its connection pools are keyed by
// endpoint address, so they outlive the configuration snapshots whose
// Backends point at those endpoints. A Transport is safe for concurrent use.
type Transport struct {
	dialTimeout           time.Duration
	responseHeaderTimeout time.Duration
	idleConnTimeout       time.Duration
	clientBodyTimeout     time.Duration
	sendTimeout           time.Duration
	upstreamReadTimeout   time.Duration
	upstreamSendTimeout   time.Duration
	tunnelIdleTimeout     time.Duration
	maxIdlePerEndpoint    int
	trusted               []netip.Prefix
	allowedUpgrades       []string
	allowUnderscores      bool
	onConnectError        func(string)
	log                   *slog.Logger
	dialer                net.Dialer

	// maxResponseHeaderBytes and maxInformational bound a response head.
	maxResponseHeaderBytes int
	maxInformational       int
	// dialBurst and dialRate size each client connection's dialBudget.
	dialBurst, dialRate int
	// resetLimit sizes each client connection's resetGuard.
	resetLimit int

	// pools maps endpoint address to *endpointPool. A sync.Map keeps the
	// per-request lookup lock-free once an endpoint has been seen.
	pools sync.Map

	// h2 speaks HTTP/2 with prior knowledge (h2c) to backends that ask
	// for it; net/http's Transport multiplexes requests over one
	// connection per endpoint.
	h2 *http.Transport
	// h2tls holds, per BackendTLS pool identity, the HTTP/2 client of H2
	// backends reached over TLS (h2TLS).
	h2tls sync.Map

	// closed is read on every pooled connection's return, so it is atomic;
	// mu guards tunnels and orders Close against track.
	closed  atomic.Bool
	mu      sync.Mutex
	tunnels map[*tunnel]struct{}

	stopReaper chan struct{}
	reaperDone chan struct{}
	closeOnce  sync.Once
}

// NewTransport returns a Transport; zero fields of cfg take the defaults.
// Call Close when done to stop its background reaper.
func NewTransport(cfg Config) *Transport {
	t := &Transport{
		dialTimeout:            unset.Or(cfg.DialTimeout, DefaultDialTimeout),
		responseHeaderTimeout:  unset.Or(cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		idleConnTimeout:        unset.Or(cfg.IdleConnTimeout, DefaultIdleConnTimeout),
		clientBodyTimeout:      unset.Or(cfg.ClientBodyTimeout, DefaultClientBodyTimeout),
		sendTimeout:            unset.Or(cfg.SendTimeout, DefaultSendTimeout),
		upstreamReadTimeout:    unset.Or(cfg.UpstreamReadTimeout, DefaultUpstreamReadTimeout),
		upstreamSendTimeout:    unset.Or(cfg.UpstreamSendTimeout, DefaultUpstreamSendTimeout),
		tunnelIdleTimeout:      unset.Or(cfg.TunnelIdleTimeout, DefaultTunnelIdleTimeout),
		maxIdlePerEndpoint:     unset.Or(cfg.MaxIdleConnsPerEndpoint, DefaultMaxIdleConnsPerEndpoint),
		maxResponseHeaderBytes: unset.Or(cfg.MaxResponseHeaderBytes, DefaultMaxResponseHeaderBytes),
		dialBurst:              unset.Or(cfg.ClientDialBurst, DefaultClientDialBurst),
		dialRate:               unset.Or(cfg.ClientDialRate, DefaultClientDialRate),
		resetLimit:             unset.Or(cfg.HTTP2ResetLimit, DefaultHTTP2ResetLimit),
		maxInformational:       unset.Or(cfg.MaxInformationalResponses, DefaultMaxInformationalResponses),
		trusted:                append([]netip.Prefix(nil), cfg.TrustedProxies...),
		allowUnderscores:       cfg.AllowUnderscoresInHeaders,
		onConnectError:         cfg.OnConnectError,
		log:                    cfg.Logger,
		tunnels:                make(map[*tunnel]struct{}),
		stopReaper:             make(chan struct{}),
		reaperDone:             make(chan struct{}),
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.allowedUpgrades = []string{"websocket"}
	for _, p := range cfg.AllowedUpgrades {
		if !strings.EqualFold(p, "h2c") && !strings.EqualFold(p, "websocket") {
			t.allowedUpgrades = append(t.allowedUpgrades, p)
		}
	}
	t.dialer = net.Dialer{Timeout: t.dialTimeout, KeepAlive: 30 * time.Second}
	// Unencrypted HTTP/2 alone: http:// URLs get HTTP/2 with prior
	// knowledge, never an HTTP/1.1 upgrade.
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	t.h2 = &http.Transport{
		Protocols: &h2c,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialer := &t.dialer
			if d := connectTimeoutOf(ctx); d > 0 {
				own := t.dialer
				own.Timeout = d
				dialer = &own
			}
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &dialError{err: err}
			}
			return c, nil
		},
		// No proxy from the environment: backends are dialled directly.
		Proxy: nil,
		// Content codings are end to end: never ask for gzip on the
		// client's behalf and never decode what the backend sends.
		DisableCompression:     true,
		IdleConnTimeout:        t.idleConnTimeout,
		MaxResponseHeaderBytes: int64(t.maxResponseHeaderBytes),
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
			// A backend that stops reading the request (its connection's
			// window open, its socket full) is bounded like an HTTP/1.1 one.
			WriteByteTimeout: t.upstreamSendTimeout,
		},
	}
	go t.reap()
	return t
}

// Close closes every idle pooled connection and every open Upgrade tunnel,
// and stops the background reaper. Requests in flight finish, but their
// connections are closed instead of pooled. Close is idempotent.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed.Store(true)
		tunnels := make([]*tunnel, 0, len(t.tunnels))
		for tn := range t.tunnels {
			tunnels = append(tunnels, tn)
		}
		t.mu.Unlock()

		close(t.stopReaper)
		<-t.reaperDone

		t.pools.Range(func(_, v any) bool {
			v.(*endpointPool).closeAll()
			return true
		})
		for _, tn := range tunnels {
			tn.close()
		}
		t.h2.CloseIdleConnections()
		t.h2tls.Range(func(_, v any) bool {
			v.(*http.Transport).CloseIdleConnections()
			return true
		})
	})
	return nil
}

// ForwardOptions change how one request is forwarded. A nil *ForwardOptions
// (what Forward uses) changes nothing and costs nothing.
type ForwardOptions struct {
	// Host, when set, is sent to the backend as the Host header (or
	// :authority) instead of r.Host; X-Forwarded-Host and Forwarded still
	// name the host the client asked for.
	Host string
	// ReadTimeout, when positive, replaces --upstream-response-header-timeout
	// and --upstream-read-timeout for this request, and SendTimeout
	// replaces --upstream-send-timeout: per-route bounds on each read from
	// and write to the backend, with nginx's proxy_read_timeout and
	// proxy_send_timeout meaning. To an h2c backend only the wait for the
	// response header follows ReadTimeout.
	ReadTimeout, SendTimeout time.Duration
	// ForwardedPrefix, when set, is sent as X-Forwarded-Prefix in place of
	// any inbound one: the path prefix the route serves the backend under
	// (ingress-nginx's x-forwarded-prefix).
	ForwardedPrefix string
	// EditResponseHeader, when set, is called with the response header the
	// client will get, after the backend's header was copied into it and
	// before it is written. It is not called for responses Portico
	// generates itself.
	EditResponseHeader func(http.Header)
	// Deadline, when set, bounds the whole exchange: if it passes before
	// the response has started, the client gets a 504; after that, the
	// response is cut.
	Deadline time.Time
	// BackendTimeout, when positive, bounds the request to the backend,
	// from the connect to the end of the response, like Deadline. Within
	// one call Portico only retries a request that never reached a backend
	// (a failed connect, a pooled connection found closed), so one bound
	// covers the one attempt a backend sees; a route's retry policy calls
	// ForwardWith once per attempt, and each gets the whole bound.
	BackendTimeout time.Duration
	// ConnectTimeout, when positive, replaces --upstream-dial-timeout for
	// the connects (and TLS handshakes) of this request: ingress-nginx's
	// proxy-connect-timeout. A pooled connection is reused whatever it is.
	ConnectTimeout time.Duration
}

// readTimeout is the bound on each read from the backend: the route's, or
// def (a global flag).
func readTimeout(o *ForwardOptions, def time.Duration) time.Duration {
	if o != nil && o.ReadTimeout > 0 {
		return o.ReadTimeout
	}
	return def
}

// sendTimeout is the bound on each write to the backend.
func sendTimeout(o *ForwardOptions, def time.Duration) time.Duration {
	if o != nil && o.SendTimeout > 0 {
		return o.SendTimeout
	}
	return def
}

// Causes of a request context ended by a ForwardOptions bound.
var (
	errRouteTimeout   = errors.New("route request timeout")
	errBackendTimeout = errors.New("backend request timeout")
	errGRPCTimeout    = errors.New("grpc-timeout of the call")
)

// Forward proxies r to one of b's endpoints and writes the whole response,
// or an error response Portico generates itself, to w.
func (t *Transport) Forward(w http.ResponseWriter, r *http.Request, b *Backend) Outcome {
	return t.ForwardWith(w, r, b, nil)
}

// ForwardWith is Forward with options; o may be nil.
func (t *Transport) ForwardWith(w http.ResponseWriter, r *http.Request, b *Backend, o *ForwardOptions) Outcome {
	var deadline time.Time
	var cause error
	if o != nil && (!o.Deadline.IsZero() || o.BackendTimeout > 0) {
		deadline, cause = o.Deadline, errRouteTimeout
		if o.BackendTimeout > 0 {
			if d := time.Now().Add(o.BackendTimeout); deadline.IsZero() || d.Before(deadline) {
				deadline, cause = d, errBackendTimeout
			}
		}
	}
	// A gRPC call's own deadline bounds the exchange too, so a call that
	// has given up does not hold a backend stream; the backend gets the
	// header as well and usually ends the call first.
	if d := grpcDeadline(r); !d.IsZero() && (deadline.IsZero() || d.Before(deadline)) {
		deadline, cause = d, errGRPCTimeout
	}
	if cause != nil {
		ctx, cancel := context.WithDeadlineCause(r.Context(), deadline, cause)
		defer cancel()
		r = r.WithContext(ctx)
	}
	if o != nil && o.ConnectTimeout > 0 {
		// One context (and request copy) per request of a route that sets
		// its own connect timeout: the dial that may follow reads it there,
		// and the routes without one pay nothing.
		r = r.WithContext(context.WithValue(r.Context(), connectTimeoutKey{}, o.ConnectTimeout))
	}
	if b == nil || len(b.Endpoints) == 0 {
		name := "<none>"
		if b != nil {
			name = b.Name
		}
		return writeError(w, r, http.StatusServiceUnavailable, "no ready endpoints for backend "+name, errNoEndpoints)
	}
	if r.URL == nil {
		return writeError(w, r, http.StatusBadRequest, "request has no target", errNoURL)
	}
	if r.Method == http.MethodConnect {
		return writeError(w, r, http.StatusMethodNotAllowed, "CONNECT is not proxied to backend "+b.Name, errConnect)
	}
	var out Outcome
	if (b.Protocol == H2C && b.TLS == nil) || b.Protocol == H2 {
		out = t.forwardH2C(w, r, b, o)
	} else {
		out = t.forwardHTTP1(w, r, b, o)
	}
	noteOutcome(r, out)
	return out
}

// timeoutCause returns the ForwardOptions bound that ended ctx, or nil when
// ctx is live or ended for another reason (the client went away).
func timeoutCause(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	cause := context.Cause(ctx)
	if errors.Is(cause, errRouteTimeout) || errors.Is(cause, errBackendTimeout) || errors.Is(cause, errGRPCTimeout) {
		return cause
	}
	return nil
}

// interrupted answers a request whose context ended before any of the
// response was written: a 504 when a ForwardOptions bound ended it,
// otherwise the client went away and gets nothing.
func interrupted(w http.ResponseWriter, r *http.Request, err error) Outcome {
	if cause := timeoutCause(r.Context()); cause != nil {
		return writeError(w, r, http.StatusGatewayTimeout, "the backend did not answer within the "+cause.Error(), cause)
	}
	return Outcome{Status: StatusClientClosedRequest, Err: err}
}

var (
	errNoEndpoints     = errors.New("no ready endpoints")
	errConnect         = errors.New("CONNECT method not proxied")
	errNoURL           = errors.New("request has no URL")
	errHeaderTimeout   = errors.New("timeout awaiting response headers")
	errUnexpected101   = errors.New("backend switched protocols without an upgrade request")
	errUpgradeMismatch = errors.New("backend switched to a protocol that was not requested")
	errNoHijack        = errors.New("client connection cannot be hijacked for an upgrade")

	errResponseHeaderTooLarge = errors.New("response header above the size limit")
	errTooManyInformational   = errors.New("too many informational (1xx) responses")
)

// dialError marks a failure to connect: nothing reached the backend, so the
// request may be retried on another endpoint whatever its method.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// writeError answers with a short plain-text body naming the failure, or
// for a gRPC call r (nil for none) with the matching gRPC status. It must
// only be called before anything of the response was written.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string, err error) Outcome {
	if r != nil && IsGRPC(r) {
		WriteGRPCError(w, status, msg)
		return Outcome{Status: status, Err: err}
	}
	body := itoa3(status) + " " + http.StatusText(status) + ": " + msg + "\n"
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["Content-Length"] = []string{itoa(int64(len(body)))}
	h["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
	return Outcome{Status: status, Err: err}
}

func itoa3(n int) string {
	if n < 100 || n > 999 {
		return itoa(int64(n))
	}
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}

func itoa(n int64) string {
	var b [20]byte
	return string(appendInt(b[:0], n))
}

func appendInt(dst []byte, n int64) []byte {
	if n == 0 {
		return append(dst, '0')
	}
	if n < 0 {
		dst = append(dst, '-')
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return append(dst, b[i:]...)
}

// bufPool holds copy buffers shared by request bodies, response bodies and
// tunnels.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}
