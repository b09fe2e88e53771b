package routing

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"portico.dev/portico/upstream"
)

func TestRetryBackoff(t *testing.T) {
	tests := []struct {
		base     time.Duration
		n        int
		min, max time.Duration
	}{
		{0, 1, DefaultRetryBackoff / 2, DefaultRetryBackoff},
		{100 * time.Millisecond, 1, 50 * time.Millisecond, 100 * time.Millisecond},
		{100 * time.Millisecond, 2, 100 * time.Millisecond, 200 * time.Millisecond},
		{100 * time.Millisecond, 3, 200 * time.Millisecond, 400 * time.Millisecond},
		// Capped at ten times the base.
		{100 * time.Millisecond, 10, 500 * time.Millisecond, time.Second},
		{100 * time.Millisecond, 1000, 500 * time.Millisecond, time.Second},
	}
	for _, tc := range tests {
		for range 20 {
			if d := retryBackoff(tc.base, tc.n); d < tc.min || d > tc.max {
				t.Errorf("retryBackoff(%v, %d) = %v, want within [%v, %v]", tc.base, tc.n, d, tc.min, tc.max)
			}
		}
	}
}

// TestRetryWriter checks what one attempt's writer does with each status:
// pass it on, throw it away for a retry, or hold it until the outcome.
func TestRetryWriter(t *testing.T) {
	tests := []struct {
		status    int
		wantState uint8
	}{
		{200, passing},
		{404, passing},
		{500, discarding},
		{503, holding},
		{502, holding},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		rw := &retryWriter{w: rec, codes: []int{500}}
		rw.Header().Set("X-Attempt", "1")
		rw.WriteHeader(tc.status)
		_, _ = rw.Write([]byte("body"))
		if rw.state != tc.wantState {
			t.Errorf("status %d: state %d, want %d", tc.status, rw.state, tc.wantState)
		}
		sent := rw.state == passing
		if sent != (rec.Code == tc.status && rec.Body.String() == "body" && rec.Header().Get("X-Attempt") == "1") {
			t.Errorf("status %d: recorder got %d %q %v", tc.status, rec.Code, rec.Body.String(), rec.Header())
		}
		rw.finish()
		if tc.wantState == holding && (rec.Code != tc.status || rec.Body.String() != "body") {
			t.Errorf("status %d: a held response finished as %d %q", tc.status, rec.Code, rec.Body.String())
		}
	}
}

// retryBackend answers like the conformance echo backend's retry
// simulation: the first succeedAfter requests with a given uuid get
// responseCode, later ones 200; delay holds every answer, delayRetry every
// answer after the first.
type retryBackend struct {
	srv   *httptest.Server
	mu    sync.Mutex
	seen  map[string]int
	other map[string]string // uuid -> request body of the last attempt
}

func startRetryBackend(t *testing.T) *retryBackend {
	rb := &retryBackend{seen: make(map[string]int), other: make(map[string]string)}
	rb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := r.URL.Query()
		id := q.Get("uuid")
		rb.mu.Lock()
		n := rb.seen[id]
		rb.seen[id] = n + 1
		rb.other[id] = string(body)
		rb.mu.Unlock()
		if d, err := time.ParseDuration(q.Get("delay")); err == nil {
			sleepOrDone(r, d)
		}
		if d, err := time.ParseDuration(q.Get("delayRetry")); err == nil && n > 0 {
			sleepOrDone(r, d)
		}
		succeedAfter, _ := strconv.Atoi(q.Get("succeedAfter"))
		code, _ := strconv.Atoi(q.Get("responseCode"))
		if n < succeedAfter && code != 0 {
			w.Header().Set("X-Failed-Attempt", strconv.Itoa(n+1))
			w.WriteHeader(code)
			fmt.Fprintf(w, "attempt %d failed\n", n+1)
			return
		}
		fmt.Fprintf(w, "attempt %d ok\n", n+1)
	}))
	t.Cleanup(rb.srv.Close)
	return rb
}

func sleepOrDone(r *http.Request, d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

func (rb *retryBackend) attempts(id string) int {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.seen[id]
}

func (rb *retryBackend) lastBody(id string) string {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.other[id]
}

func (rb *retryBackend) backend(extra ...string) *upstream.Backend {
	return &upstream.Backend{Name: "ns/retry:8080", Endpoints: append(extra, rb.srv.Listener.Addr().String())}
}

// TestRetryOverHTTP is the httproute-retry and httproute-retry-with-timeouts
// conformance tests against a loopback backend.
func TestRetryOverHTTP(t *testing.T) {
	rb := startRetryBackend(t)
	route := func(path string, r *Retry, to Timeouts) *Route {
		rt := prefixRoute(path, rb.backend())
		rt.Retry, rt.Timeouts = r, to
		return rt
	}
	all := []int{500, 502, 503, 504}
	gw := startGateway(t,
		route("/retry/code-500-attempts-3", &Retry{Codes: []int{500}, Attempts: 3, Backoff: time.Millisecond}, Timeouts{}),
		route("/retry/code-all-attempts-2", &Retry{Codes: all, Attempts: 2, Backoff: time.Millisecond}, Timeouts{}),
		route("/retry/code-all-attempts-0", &Retry{Codes: all, Attempts: 0}, Timeouts{}),
		route("/retry/request-timeout", &Retry{Codes: []int{500}, Attempts: 5, Backoff: time.Millisecond}, Timeouts{Request: time.Second}),
		route("/retry/backend-timeout", &Retry{Codes: []int{500}, Attempts: 3, Backoff: time.Millisecond}, Timeouts{BackendRequest: 200 * time.Millisecond, Request: safety}),
		route("/retry/long-backoff", &Retry{Codes: []int{500}, Attempts: 3, Backoff: 2 * time.Second}, Timeouts{Request: 200 * time.Millisecond}),
	)
	c := noRedirects()
	tests := []struct {
		path         string
		query        string
		status       int
		wantAttempts int
	}{
		{"/retry/code-500-attempts-3", "responseCode=500&succeedAfter=2", 200, 3},
		{"/retry/code-500-attempts-3", "responseCode=500&succeedAfter=4", 500, 4},
		{"/retry/code-500-attempts-3", "responseCode=503&succeedAfter=2", 503, 1},
		{"/retry/code-all-attempts-2", "responseCode=500&succeedAfter=1", 200, 2},
		{"/retry/code-all-attempts-2", "responseCode=502&succeedAfter=3", 502, 3},
		{"/retry/code-all-attempts-2", "responseCode=503&succeedAfter=1", 200, 2},
		{"/retry/code-all-attempts-2", "responseCode=504&succeedAfter=3", 504, 3},
		{"/retry/code-all-attempts-0", "responseCode=500&succeedAfter=1", 500, 1},
		{"/retry/code-all-attempts-0", "responseCode=504&succeedAfter=1", 504, 1},
		// The request timeout bounds every attempt together: the second
		// slow retry is cut by it.
		{"/retry/request-timeout", "responseCode=500&succeedAfter=1", 200, 2},
		{"/retry/request-timeout", "responseCode=500&succeedAfter=2&delayRetry=600ms", 504, 3},
		// The backend timeout bounds each attempt, and an attempt that
		// times out is retried.
		{"/retry/backend-timeout", "responseCode=500&succeedAfter=2&delay=20ms", 200, 3},
		{"/retry/backend-timeout", "responseCode=500&succeedAfter=1&delay=1s", 504, 4},
		// A backoff that would end after the request timeout is not
		// waited for.
		{"/retry/long-backoff", "responseCode=500&succeedAfter=1", 504, 1},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%d %s?%s", i, tc.path, tc.query), func(t *testing.T) {
			id := strconv.Itoa(i)
			resp, _ := send(t, c, "GET", gw.URL+tc.path+"?uuid="+id+"&"+tc.query, nil, "")
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := rb.attempts(id); got != tc.wantAttempts {
				t.Errorf("backend saw %d attempts, want %d", got, tc.wantAttempts)
			}
			if tc.status >= 500 && tc.status != 504 && resp.Header.Get("X-Failed-Attempt") == "" {
				t.Errorf("the last failed response was not passed on: header %v", resp.Header)
			}
		})
	}
}

// TestRetryReplaysBody checks that a retried POST sends its whole body
// every time, and that a body over the limit is sent once.
func TestRetryReplaysBody(t *testing.T) {
	rb := startRetryBackend(t)
	rt := prefixRoute("/", rb.backend())
	rt.Retry = &Retry{Codes: []int{500}, Attempts: 2, Backoff: time.Millisecond}
	gw := startGateway(t, rt)
	c := noRedirects()

	resp, _ := send(t, c, "POST", gw.URL+"/?uuid=small&responseCode=500&succeedAfter=2", nil, "payload")
	if resp.StatusCode != 200 || rb.attempts("small") != 3 || rb.lastBody("small") != "payload" {
		t.Errorf("small body: status %d after %d attempts, last body %q", resp.StatusCode, rb.attempts("small"), rb.lastBody("small"))
	}
	big := string(make([]byte, DefaultRetryBodyLimit+1))
	resp, _ = send(t, c, "POST", gw.URL+"/?uuid=big&responseCode=500&succeedAfter=2", nil, big)
	if resp.StatusCode != 500 || rb.attempts("big") != 1 || len(rb.lastBody("big")) != len(big) {
		t.Errorf("large body: status %d after %d attempts, body of %d bytes", resp.StatusCode, rb.attempts("big"), len(rb.lastBody("big")))
	}
}

// TestRetryConnectionError is httproute-retry-connection-error: one of the
// backend's endpoints refuses connections; every request still succeeds.
func TestRetryConnectionError(t *testing.T) {
	rb := startRetryBackend(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	b := &upstream.Backend{Name: "ns/conn-error:8080", Endpoints: []string{refused, refused, refused, rb.srv.Listener.Addr().String()}}
	rt := prefixRoute("/", b)
	rt.Retry = &Retry{Attempts: 100, Backoff: time.Millisecond}
	gw := startGateway(t, rt)
	c := noRedirects()
	for i := range 10 {
		resp, _ := send(t, c, "GET", gw.URL+"/?uuid=c"+strconv.Itoa(i), nil, "")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}

	// Without a retry policy, a refused connect is tried on two
	// endpoints only and answered 502.
	rt.Retry = nil
	logger := slog.New(slog.DiscardHandler)
	tr := upstream.NewTransport(upstream.Config{Logger: logger})
	defer tr.Close()
	bad := &upstream.Backend{Name: "ns/refused:8080", Endpoints: []string{refused}}
	out := NewHandler(HandlerConfig{Forwarder: tr, Logger: logger, Table: func() *Table { return nil }}).
		forwardWithRetry(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), &Route{Retry: &Retry{Attempts: 2}}, bad, &upstream.ForwardOptions{})
	if out.Status != 502 || !upstream.RetryableFailure(out.Err) {
		t.Errorf("refused backend after retries: %d %v", out.Status, out.Err)
	}
}

// TestRetryKeepsTrailers checks that a response that was not retried
// keeps its trailers, which the Forwarder sets after the status.
func TestRetryKeepsTrailers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	}))
	t.Cleanup(srv.Close)
	rt := prefixRoute("/", &upstream.Backend{Name: "ns/trailers:80", Endpoints: []string{srv.Listener.Addr().String()}})
	rt.Retry = &Retry{Codes: []int{500}, Attempts: 2}
	gw := startGateway(t, rt)
	resp, err := noRedirects().Get(gw.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("status %d, trailers %v", resp.StatusCode, resp.Trailer)
	}
}

// TestNextUpstreamRetries: nginx's classes, and a POST, LOCK or PATCH
// resent only when its connect failed, unless NonIdempotent.
func TestNextUpstreamRetries(t *testing.T) {
	errTimeout := &NextUpstream{Error: true, Timeout: true}
	for _, c := range []struct {
		n      *NextUpstream
		f      upstream.Failure
		method string
		want   bool
	}{
		{errTimeout, upstream.FailureConnect, "GET", true},
		{errTimeout, upstream.FailureConnect, "POST", true},
		{errTimeout, upstream.FailureConnectTimeout, "PATCH", true},
		{errTimeout, upstream.FailureExchange, "GET", true},
		{errTimeout, upstream.FailureExchange, "POST", false},
		{errTimeout, upstream.FailureExchange, "LOCK", false},
		{errTimeout, upstream.FailureExchange, "PUT", true},
		{errTimeout, upstream.FailureTimeout, "DELETE", true},
		{errTimeout, upstream.FailureInvalidResponse, "GET", false},
		{errTimeout, upstream.FailureNone, "GET", false},
		{&NextUpstream{Error: true}, upstream.FailureConnectTimeout, "GET", false},
		{&NextUpstream{Timeout: true}, upstream.FailureConnect, "GET", false},
		{&NextUpstream{InvalidHeader: true}, upstream.FailureInvalidResponse, "GET", true},
		{&NextUpstream{Error: true, NonIdempotent: true}, upstream.FailureExchange, "POST", true},
	} {
		if got := c.n.retries(c.f, c.method); got != c.want {
			t.Errorf("%+v: class %d %s: retried %t, want %t", *c.n, c.f, c.method, got, c.want)
		}
	}
}
