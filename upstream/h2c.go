package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// forwardH2C proxies r to an endpoint speaking HTTP/2 over plain TCP, through
// the Transport's shared HTTP/2 client, which multiplexes requests over
// one connection per endpoint; or, for an H2 backend with TLS, inside TLS
// through the HTTP/2 client of its TLS settings.
func (t *Transport) forwardH2C(w http.ResponseWriter, r *http.Request, b *Backend, o *ForwardOptions) Outcome {
	rt, scheme := t.h2, "http"
	if b.TLS != nil {
		tr, err := t.h2TLS(b.TLS)
		if err != nil {
			return writeError(w, r, http.StatusBadGateway, "backend "+b.Name+" cannot be reached over TLS as configured", err)
		}
		rt, scheme = tr, "https"
	}
	ctx := r.Context()
	host := r.Host
	if o != nil && o.Host != "" {
		host = o.Host
	}
	target := r.RequestURI
	if !strings.HasPrefix(target, "/") {
		target = r.URL.RequestURI()
	}
	// As for HTTP/1.1 (see writeRequest): the routing handler refused such
	// requests already, this guards against handlers that edited r since.
	if !ValidRequestLine(r.Method, target, r.Host) || !ValidAuthority(host) {
		return writeError(w, r, http.StatusBadRequest, "request cannot be forwarded", ErrInvalidRequestLine)
	}
	f := t.forwardingFor(r)
	if o != nil {
		f.prefix = o.ForwardedPrefix
	}

	header := make(http.Header, len(r.Header)+4)
	connection := r.Header["Connection"]
	for k, vv := range r.Header {
		if skipRequestHeader(k, connection) || !t.forwardableName(k) {
			continue
		}
		header[k] = vv
	}
	if hasToken(r.Header["Te"], "trailers") {
		header["Te"] = []string{"trailers"}
	}
	if _, ok := header["User-Agent"]; !ok {
		// A present but empty User-Agent keeps the HTTP/2 client from
		// adding its own.
		header["User-Agent"] = nil
	}
	header["X-Forwarded-For"] = []string{string(appendXFF(nil, &f, r.Header["X-Forwarded-For"]))}
	header["X-Forwarded-Proto"] = []string{keptForwardingValue(&f, r.Header["X-Forwarded-Proto"], f.proto)}
	if host := keptForwardingValue(&f, r.Header["X-Forwarded-Host"], f.host); host != "" {
		header["X-Forwarded-Host"] = []string{host}
	}
	header["Forwarded"] = []string{string(appendForwarded(nil, &f, r.Header["Forwarded"]))}
	header["X-Real-Ip"] = []string{keptForwardingValue(&f, r.Header["X-Real-Ip"], f.clientIP)}
	if f.trusted {
		for _, k := range passedFromTrusted {
			if vv := r.Header[k]; len(vv) > 0 {
				header[k] = vv
			}
		}
	}
	if f.prefix != "" {
		header["X-Forwarded-Prefix"] = []string{f.prefix}
	}

	var body io.ReadCloser = http.NoBody
	var trailer http.Header
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		// The HTTP/2 client closes the body it is given, also when the dial
		// fails; the inbound body must survive for a retry on another
		// endpoint and is closed by the inbound server anyway.
		tb := &trackedBody{boundedBody: boundedBody{r: r.Body, client: clientDeadlines{w: w, h1: r.ProtoMajor == 1, off: inMemory(r.Body, r.ContentLength)}, timeout: t.clientBodyTimeout}}
		if names := t.forwardedTrailers(r); len(names) > 0 {
			// The client announces these names, and sends the values the
			// body's end fills in.
			trailer = make(http.Header, len(names))
			for _, k := range names {
				trailer[k] = nil
			}
			tb.trailerFrom, tb.trailerTo = r, trailer
		}
		body = tb
	}
	n := len(b.Endpoints)
	first := b.next()
	for attempt := 0; ; attempt++ {
		endpoint := b.Endpoints[(first+attempt)%n]
		reqCtx, cancel := context.WithCancelCause(ctx)
		// The HTTP/2 client has no response header timeout of its own, nor
		// a read timeout on the body: cancel the request when the headers
		// are late, then when the body stalls.
		idle := &streamIdle{cancel: cancel}
		idle.timer = time.AfterFunc(readTimeout(o, t.responseHeaderTimeout), idle.fire)
		out := &http.Request{
			Method:        r.Method,
			URL:           targetURL(scheme, endpoint, r),
			Proto:         "HTTP/2.0",
			ProtoMajor:    2,
			Header:        header,
			Body:          body,
			ContentLength: r.ContentLength,
			Host:          host,
			Trailer:       trailer,
		}
		if out.Body == http.NoBody {
			out.ContentLength = 0
		}
		out = out.WithContext(reqCtx)
		resp, err := rt.RoundTrip(out)
		idle.timer.Stop()
		if err != nil {
			cause := context.Cause(reqCtx)
			cancel(nil)
			var de *dialError
			if errors.As(err, &de) {
				if ctx.Err() == nil && t.onConnectError != nil {
					t.onConnectError(b.Name)
				}
				if attempt == 0 && n > 1 && ctx.Err() == nil {
					continue
				}
				return t.connectFailed(w, r, b, err)
			}
			if tb, ok := body.(*trackedBody); ok && errors.Is(tb.readErr(), ErrClientBodyTimeout) && timeoutCause(ctx) == nil {
				// Before the context: net/http cancels an HTTP/1.x request
				// whose body read failed.
				return t.exchangeFailed(w, r, b, &clientBodyError{tb.readErr()})
			}
			if ctx.Err() != nil {
				return interrupted(w, r, err)
			}
			if errors.Is(cause, errHeaderTimeout) {
				return writeError(w, r, http.StatusGatewayTimeout, "backend "+b.Name+" did not answer in time", errHeaderTimeout)
			}
			if tb, ok := body.(*trackedBody); ok {
				if berr := tb.readErr(); berr != nil {
					return t.exchangeFailed(w, r, b, &clientBodyError{berr})
				}
			}
			return writeError(w, r, http.StatusBadGateway, "backend "+b.Name+" failed to answer", err)
		}
		idle.body.Store(true)
		_, outcome := t.writeResponse(w, r, resp, o, idle)
		idle.timer.Stop()
		_ = resp.Body.Close()
		cancel(nil)
		return outcome
	}
}

// h2TLS returns the HTTP/2 client of an H2 backend's TLS settings: one
// per distinct settings (a client certificate included), so connections
// made with one are never reused with another; net/http multiplexes
// requests over one connection per endpoint. The protocol must be h2 by
// ALPN: a backend that offers only HTTP/1.1 fails the exchange.
func (t *Transport) h2TLS(bt *BackendTLS) (*http.Transport, error) {
	cfg, id, err := bt.prepare()
	if err != nil {
		return nil, &tlsSetupError{err}
	}
	if tr, ok := t.h2tls.Load(id); ok {
		return tr.(*http.Transport), nil
	}
	tc := cfg.Clone()
	tc.NextProtos = []string{"h2"}
	var h2 http.Protocols
	h2.SetHTTP2(true)
	tr := t.h2.Clone()
	tr.Protocols = &h2
	tr.TLSClientConfig = tc
	v, _ := t.h2tls.LoadOrStore(id, tr)
	return v.(*http.Transport), nil
}

// trackedBody passes the inbound body to the HTTP/2 client without letting it
// be closed, bounds each read by ClientBodyTimeout (boundedBody), and
// remembers a read failure so it is blamed on the client. The client reads
// it on its own goroutine, hence the lock; the boundedBody is touched by
// that goroutine only.
type trackedBody struct {
	boundedBody
	mu  sync.Mutex
	err error
	// trailerTo, when set, gets the values of its keys from
	// trailerFrom.Trailer once the body ends, which is when the inbound
	// server has read them and before the client sends them.
	trailerFrom *http.Request
	trailerTo   http.Header
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.boundedBody.Read(p)
	if err == io.EOF {
		for k := range b.trailerTo {
			b.trailerTo[k] = b.trailerFrom.Trailer[k]
		}
	} else if err != nil {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

func (b *trackedBody) readErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *trackedBody) Close() error { return nil }

// targetURL is the backend URL for r, carrying the path and query exactly as
// the client sent them: an Opaque path is written to :path verbatim, where a
// parsed Path would be re-escaped. Paths starting with "//" would read as an
// authority in Opaque form and fall back to the parsed path.
func targetURL(scheme, endpoint string, r *http.Request) *url.URL {
	uri := r.RequestURI
	if strings.HasPrefix(uri, "/") && !strings.HasPrefix(uri, "//") {
		path, query, _ := strings.Cut(uri, "?")
		return &url.URL{Scheme: scheme, Host: endpoint, Opaque: path, RawQuery: query}
	}
	return &url.URL{
		Scheme:   scheme,
		Host:     endpoint,
		Path:     r.URL.Path,
		RawPath:  r.URL.RawPath,
		RawQuery: r.URL.RawQuery,
	}
}
