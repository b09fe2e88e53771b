package routing

import (
	"bufio"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"time"

	"portico.dev/portico/upstream"
)

// Retry is an HTTPRoute rule's retry policy: a request whose response has
// one of Codes, or whose exchange failed on the connection (no connect,
// a reset before any response, a BackendRequest timeout), is sent again,
// up to Attempts more times, after a backoff. The Request timeout bounds
// all attempts and backoffs together; BackendRequest bounds each attempt.
//
// Only a request whose body can be replayed is retried: one without a body
// or with a body of at most HandlerConfig.RetryBodyLimit, which is then
// buffered. Upgrade requests are never retried. Each attempt goes to the
// same backend, on the endpoint its load balancing picks next.
type Retry struct {
	// Codes are the response statuses that are retried.
	Codes []int
	// Attempts is the number of retries after the first request; 0
	// disables retries.
	Attempts int
	// Backoff is the base wait before the first retry; each retry doubles
	// it, with jitter, up to ten times the base. Zero means
	// DefaultRetryBackoff.
	Backoff time.Duration
	// Next, when set, retries as ingress-nginx's proxy-next-upstream does
	// instead of as the Gateway API asks: only the failure classes it
	// names, at once (no backoff: the next attempt goes to the next
	// endpoint), within its time budget, and never a request nginx counts
	// as non-idempotent that may have reached a backend.
	Next *NextUpstream
}

// NextUpstream is ingress-nginx's proxy-next-upstream policy on top of a
// Retry's Codes and Attempts.
type NextUpstream struct {
	// Error retries a failed connect, a failed write of the request and a
	// connection closed before any response byte (nginx's error).
	Error bool
	// Timeout retries a connect or a wait for the response header that
	// timed out (nginx's timeout).
	Timeout bool
	// InvalidHeader retries a response header that does not parse
	// (nginx's invalid_header).
	InvalidHeader bool
	// NonIdempotent lets POST, LOCK and PATCH requests be retried after
	// they may have reached a backend (nginx's non_idempotent); without
	// it they are retried only when their connect failed.
	NonIdempotent bool
	// Within, when positive, is the time after the first attempt starts
	// past which no retry starts (proxy-next-upstream-timeout).
	Within time.Duration
}

// retries reports whether the policy retries a failed exchange of class f
// for a request with the given method.
func (n *NextUpstream) retries(f upstream.Failure, method string) bool {
	switch f {
	case upstream.FailureConnect:
		return n.Error
	case upstream.FailureConnectTimeout:
		return n.Timeout
	}
	if !n.mayResend(method) {
		return false
	}
	switch f {
	case upstream.FailureExchange:
		return n.Error
	case upstream.FailureTimeout:
		return n.Timeout
	case upstream.FailureInvalidResponse:
		return n.InvalidHeader
	}
	return false
}

// mayResend reports whether a request that may have reached a backend can
// be sent again: nginx holds POST, LOCK and PATCH back unless told.
func (n *NextUpstream) mayResend(method string) bool {
	return n.NonIdempotent || (method != http.MethodPost && method != http.MethodPatch && method != "LOCK")
}

// Defaults for retries.
const (
	DefaultRetryBackoff   = 25 * time.Millisecond
	DefaultRetryBodyLimit = 64 << 10
)

// retryBackoff is the wait before retry number n (1 for the first): base
// doubled n-1 times, capped at ten times base, then drawn uniformly from
// its upper half so that clients failing together do not retry together.
func retryBackoff(base time.Duration, n int) time.Duration {
	if base <= 0 {
		base = DefaultRetryBackoff
	}
	d, ceiling := base, 10*base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	half := d / 2
	return half + rand.N(half+1)
}

// forwardWithRetry forwards r under route's retry policy. Every attempt
// but the last writes into a retryWriter, which holds back a response that
// may be retried; the first response that is not retried is sent.
func (h *Handler) forwardWithRetry(w http.ResponseWriter, r *http.Request, route *Route, b *upstream.Backend, o *upstream.ForwardOptions) upstream.Outcome {
	rt := route.Retry
	if rt == nil || rt.Attempts <= 0 || isUpgrade(r) {
		return h.cfg.Forwarder.ForwardWith(w, r, b, o)
	}
	orig := r.Body
	body, ok, timedOut := h.bufferBoundedBody(w, r, h.cfg.RetryBodyLimit)
	if timedOut {
		return upstream.Outcome{Status: h.bodyTimedOut(w, r, route), Err: upstream.ErrClientBodyTimeout}
	}
	if !ok {
		h.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "request not retryable: body over the retry limit or unreadable",
			slog.String("route", route.Source.String()), slog.Int64("limit", h.cfg.RetryBodyLimit))
		return h.cfg.Forwarder.ForwardWith(w, r, b, o)
	}
	ctx := r.Context()
	codes := rt.Codes
	var until time.Time
	if next := rt.Next; next != nil {
		if !next.mayResend(r.Method) {
			// A status comes from a backend the request reached.
			codes = nil
		}
		if next.Within > 0 {
			until = time.Now().Add(next.Within)
		}
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 && len(body) > 0 {
			r.Body = newReplayBody(body, orig)
		}
		if attempt == rt.Attempts {
			return h.cfg.Forwarder.ForwardWith(w, r, b, o)
		}
		rw := &retryWriter{w: w, codes: codes, until: until}
		out := h.cfg.Forwarder.ForwardWith(rw, r, b, o)
		failed := false
		if rw.state != passing {
			if rt.Next != nil {
				failed = rt.Next.retries(upstream.Classify(out.Err), r.Method)
			} else {
				failed = upstream.RetryableFailure(out.Err)
			}
		}
		// Past the time budget only a response already thrown away is
		// retried: the decision was made in time.
		retry := rw.state == discarding || (failed && (until.IsZero() || time.Now().Before(until)))
		if !retry || ctx.Err() != nil {
			rw.finish()
			return out
		}
		if rt.Next != nil {
			h.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "trying the next endpoint",
				slog.String("route", route.Source.String()), slog.String("backend", backendName(b)),
				slog.Int("attempt", attempt+1), slog.Int("status", out.Status))
			continue
		}
		wait := retryBackoff(rt.Backoff, attempt+1)
		h.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "retrying request",
			slog.String("route", route.Source.String()), slog.String("backend", backendName(b)),
			slog.Int("attempt", attempt+1), slog.Int("status", out.Status), slog.Duration("backoff", wait))
		if o != nil && !o.Deadline.IsZero() && time.Now().Add(wait).After(o.Deadline) {
			writeError(w, r, http.StatusGatewayTimeout, "the route's request timeout passed while retrying")
			return upstream.Outcome{Status: http.StatusGatewayTimeout, Err: errRetryTimeout}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return upstream.Outcome{Status: upstream.StatusClientClosedRequest, Err: ctx.Err()}
		case <-timer.C:
		}
	}
}

var errRetryTimeout = errors.New("route request timeout passed while retrying")

// retryWriter states.
const (
	// pending: no status yet.
	pending uint8 = iota
	// passing: the response is being sent to the client.
	passing
	// discarding: the status is retried; the body is thrown away.
	discarding
	// holding: a 5xx that is retried if the exchange failed on the
	// connection; its (short) body is kept until that is known.
	holding
)

// maxHeldBody is the largest body a held 5xx response keeps; past it the
// response is sent, as no error Portico generates is that long.
const maxHeldBody = 8 << 10

// retryWriter stands between the Forwarder and the client for one attempt
// that may be retried. It gives the attempt its own header map and
// decides at WriteHeader whether to pass the response on, throw it away,
// or hold it until the Forwarder's outcome tells.
type retryWriter struct {
	w      http.ResponseWriter
	header http.Header
	codes  []int
	// until, when set, is the end of the time budget of proxy-next-upstream-timeout:
	// a status that arrives later is passed on, not retried.
	until  time.Time
	state  uint8
	status int
	held   []byte
}

func (rw *retryWriter) Header() http.Header {
	if rw.state == passing {
		return rw.w.Header()
	}
	if rw.header == nil {
		rw.header = make(http.Header)
	}
	return rw.header
}

func (rw *retryWriter) WriteHeader(code int) {
	switch {
	case rw.state == passing:
		rw.w.WriteHeader(code)
	case rw.state != pending:
	case code >= 100 && code < 200 && code != http.StatusSwitchingProtocols:
		// Informational responses of an attempt that may be thrown away
		// are dropped; they are optional anyway.
	case slices.Contains(rw.codes, code) && (rw.until.IsZero() || time.Now().Before(rw.until)):
		rw.state = discarding
	case code >= 500:
		rw.state, rw.status = holding, code
	default:
		rw.commit(code)
	}
}

// commit sends the attempt's header and status to the client.
func (rw *retryWriter) commit(code int) {
	dst := rw.w.Header()
	for k, vv := range rw.header {
		dst[k] = vv
	}
	rw.state = passing
	rw.w.WriteHeader(code)
}

func (rw *retryWriter) Write(p []byte) (int, error) {
	switch rw.state {
	case pending:
		rw.WriteHeader(http.StatusOK)
		return rw.Write(p)
	case discarding:
		return len(p), nil
	case holding:
		if len(rw.held)+len(p) <= maxHeldBody {
			rw.held = append(rw.held, p...)
			return len(p), nil
		}
		rw.finish()
	}
	return rw.w.Write(p)
}

// finish completes the response of an attempt that turned out final: a
// held response is sent; for one already sent, the trailers the Forwarder
// set in the attempt's header map after the status are passed on.
func (rw *retryWriter) finish() {
	switch rw.state {
	case holding:
		rw.commit(rw.status)
		if len(rw.held) > 0 {
			_, _ = rw.w.Write(rw.held)
		}
		rw.held = nil
	case passing:
		dst := rw.w.Header()
		for k, vv := range rw.header {
			dst[k] = vv
		}
	}
}

// Flush passes flushes on once the response is the client's.
func (rw *retryWriter) Flush() {
	if rw.state == passing {
		_ = http.NewResponseController(rw.w).Flush()
	}
}

// Hijack refuses while the response may still be thrown away, so a
// Forwarder cutting a truncated response cannot cut the client's
// connection for an attempt that is retried.
func (rw *retryWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if rw.state != passing {
		return nil, nil, http.ErrNotSupported
	}
	return http.NewResponseController(rw.w).Hijack()
}

// Unwrap lets http.ResponseController reach the client's writer.
func (rw *retryWriter) Unwrap() http.ResponseWriter { return rw.w }
