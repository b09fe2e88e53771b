package routing

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"portico.dev/portico/http1"
	"portico.dev/portico/upstream"
)

// mirrorTimeout bounds one mirror request, so a mirror backend that never
// answers cannot keep a mirror slot forever.
const mirrorTimeout = 30 * time.Second

// usesGatewayFeatures reports whether serving the route takes more than
// the Ingress path: filters, weighted backends, timeouts, retries, or no
// backend.
func (r *Route) usesGatewayFeatures() bool {
	return r.Filters != nil || len(r.Backends) > 0 || r.Timeouts != (Timeouts{}) || r.Retry != nil || r.Backend == nil
}

// onlyLoopFeatures reports whether the route's Gateway features are all
// ones the event loops apply themselves (loopOptions), so that ingress-
// nginx's common settings keep its routes on them: the HSTS header of the
// ConfigMap's defaults, which every Ingress with a TLS host gets once
// --nginx-configmap is set, and proxy-read-timeout and proxy-send-timeout.
// A read timeout must be at least http1.LoopExchangeMax, after which the
// exchange moves to a goroutine that bounds each read with it (the wait
// for the response head may so last up to that much longer); a send
// timeout has no write to bound, the loops sending only a request head.
func (r *Route) onlyLoopFeatures() bool {
	if f := r.Filters; f != nil && (f.HSTS == "" || f.RequestHeaders != nil || f.ResponseHeaders != nil || f.Redirect != nil ||
		f.Rewrite != nil || len(f.Mirrors) > 0 || f.CORS != nil || f.LocationRewrite != nil) {
		return false
	}
	t := r.Timeouts
	if t.Request != 0 || t.BackendRequest != 0 || t.Connect != 0 || (t.BackendRead != 0 && t.BackendRead < http1.LoopExchangeMax) {
		return false
	}
	return len(r.Backends) == 0 && r.Retry == nil && r.Backend != nil
}

// serveFiltered serves a route with Gateway API features and returns the
// status sent. Filters apply in the Gateway API order: a redirect answers
// at once; otherwise the request header edits and the rewrite apply, the
// mirrors get a copy, the request is forwarded, and the response header
// edits apply to the backend's response. The picked backend's own filters
// apply after the route's.
func (h *Handler) serveFiltered(w http.ResponseWriter, r *http.Request, route *Route, reqPath string, start time.Time) int {
	cors := route.Filters.cors()
	if cors != nil && isPreflight(r) {
		return cors.preflight(w, r)
	}
	if f := route.Filters; f != nil && f.Redirect != nil {
		return h.redirect(w, r, route, f.Redirect, reqPath)
	}
	backend := route.Backend
	var backendFilters *Filters
	if len(route.Backends) > 0 {
		picked := pickBackend(route.Backends)
		switch {
		case picked == nil:
			return h.internalError(w, r, route, "every backend of the route has weight 0")
		case picked.Invalid:
			return h.internalError(w, r, route, "the route refers to a backend that does not resolve")
		}
		backend, backendFilters = picked.Backend, picked.Filters
		if c := backendFilters.cors(); c != nil && cors == nil {
			cors = c
			if isPreflight(r) {
				return cors.preflight(w, r)
			}
		}
		if backendFilters != nil && backendFilters.Redirect != nil {
			return h.redirect(w, r, route, backendFilters.Redirect, reqPath)
		}
	}
	if backend == nil {
		return h.internalError(w, r, route, "the route has no backend")
	}
	backend, cookie := backend.Sticky(r)

	filters := [2]*Filters{route.Filters, backendFilters}
	path, host, prefix := reqPath, "", ""
	for _, f := range filters {
		if f == nil {
			continue
		}
		f.RequestHeaders.apply(r.Header)
		if rw := f.Rewrite; rw != nil {
			if rw.Hostname != "" {
				host = rw.Hostname
			}
			if rw.ForwardedPrefix != "" {
				prefix = rw.ForwardedPrefix
			}
			path = rw.Path.apply(path, route)
		}
	}
	if path != reqPath {
		u := url.URL{Path: path, RawQuery: r.URL.RawQuery}
		r.URL.Path, r.URL.RawPath = path, ""
		r.RequestURI = u.RequestURI()
	}
	if h.sendMirrors(w, r, filters, host) {
		return h.bodyTimedOut(w, r, route)
	}

	o := &upstream.ForwardOptions{Host: host, ForwardedPrefix: prefix, BackendTimeout: route.Timeouts.BackendRequest,
		ReadTimeout: route.Timeouts.BackendRead, SendTimeout: route.Timeouts.BackendSend, ConnectTimeout: route.Timeouts.Connect}
	if d := route.Timeouts.Request; d > 0 {
		o.Deadline = start.Add(d)
	}
	origin := ""
	if cors != nil {
		origin = r.Header.Get("Origin")
	}
	tls := r.TLS != nil
	if filters[0].editsResponse(tls) || filters[1].editsResponse(tls) || origin != "" || cookie != "" {
		o.EditResponseHeader = func(hdr http.Header) {
			for _, f := range filters {
				if f != nil {
					f.ResponseHeaders.apply(hdr)
					if f.LocationRewrite != nil {
						f.LocationRewrite.apply(hdr)
					}
					if tls && f.HSTS != "" {
						hdr[hstsHeader] = []string{f.HSTS}
					}
				}
			}
			if origin != "" {
				cors.editResponse(hdr, origin)
			}
			if cookie != "" {
				hdr.Add("Set-Cookie", cookie)
			}
		}
	}
	out := h.forwardWithRetry(w, r, route, backend, o)
	if out.Err != nil {
		h.logFailure(route, backend, r, out)
	}
	return out.Status
}

// redirects reports whether the route answers every request with a
// redirect of its own.
func (r *Route) redirects() bool { return r.Filters != nil && r.Filters.Redirect != nil }

// editsResponse reports whether the filters edit the response to a
// request that came over TLS (tls) or plain HTTP: only the routes that ask
// for it pay for the header edit.
func (f *Filters) editsResponse(tls bool) bool {
	return f != nil && (f.ResponseHeaders != nil || f.LocationRewrite != nil || (tls && f.HSTS != ""))
}

// hstsHeader is Strict-Transport-Security in canonical form, set as a map
// entry to skip canonicalising it per response.
const hstsHeader = "Strict-Transport-Security"

func (f *Filters) cors() *CORS {
	if f == nil {
		return nil
	}
	return f.CORS
}

func (f *Filters) hasMirrors() bool { return f != nil && len(f.Mirrors) > 0 }

// redirect answers with the filter's redirect.
func (h *Handler) redirect(w http.ResponseWriter, r *http.Request, route *Route, red *Redirect, reqPath string) int {
	code := red.StatusCode
	if code == 0 {
		code = http.StatusFound
	}
	w.Header().Set("Location", redirectLocation(r, red, reqPath, route, listenerPort(r)))
	writeText(w, code, strconv.Itoa(code)+" "+http.StatusText(code)+"\n")
	return code
}

// internalError answers 500 for a route that cannot be served as
// configured; the builder has reported why on the route's object.
func (h *Handler) internalError(w http.ResponseWriter, r *http.Request, route *Route, why string) int {
	h.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "route answered 500",
		slog.String("route", route.Source.String()), slog.String("reason", why))
	writeError(w, r, http.StatusInternalServerError, why)
	return http.StatusInternalServerError
}

// sendMirrors sends a copy of r to each mirror backend that samples it,
// without waiting for any of them. host is the rewritten Host, if any.
// timedOut reports that the client stalled the body it had to buffer.
func (h *Handler) sendMirrors(w http.ResponseWriter, r *http.Request, filters [2]*Filters, host string) (timedOut bool) {
	if !filters[0].hasMirrors() && !filters[1].hasMirrors() {
		return false
	}
	if isUpgrade(r) {
		// A tunnel cannot be duplicated.
		return false
	}
	var targets []*Mirror
	withBody := false
	for _, f := range filters {
		if f == nil {
			continue
		}
		for i := range f.Mirrors {
			m := &f.Mirrors[i]
			if m.Backend == nil || len(m.Backend.Endpoints) == 0 || !sampled(m.Percent) {
				continue
			}
			if m.NoBody {
				// Sent at once: the body is not waited for.
				h.mirror(r, m.Backend, nil, m.hostFor(host))
				continue
			}
			targets = append(targets, m)
			withBody = true
		}
	}
	if !withBody {
		return false
	}
	if upstream.IsGRPC(r) {
		h.mirrorWhenSent(r, targets, host)
		return false
	}
	body, ok, timedOut := h.bufferBoundedBody(w, r, h.cfg.MirrorBodyLimit)
	if timedOut {
		return true
	}
	if !ok {
		h.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "request not mirrored: body over the mirror limit or unreadable",
			slog.Int64("limit", h.cfg.MirrorBodyLimit))
		return false
	}
	for _, m := range targets {
		h.mirror(r, m.Backend, body, m.hostFor(host))
	}
	return false
}

// hostFor is the Host a mirror's copy carries: its own, or the request's
// (rewritten) one.
func (m *Mirror) hostFor(host string) string {
	if m.Host != "" {
		return m.Host
	}
	return host
}

// mirrorWhenSent mirrors a gRPC call once its request body has been sent
// to the backend. Its body is a stream the client may keep open until it
// has the backend's answers (bidirectional streaming), so it is never
// read ahead as other mirrored bodies are: a copy of what the call sends
// is kept up to MirrorBodyLimit, and the mirrors get it when the call's
// body ends within the limit. A longer stream is not mirrored.
func (h *Handler) mirrorWhenSent(r *http.Request, targets []*Mirror, host string) {
	// The copy is taken now, before the request is forwarded: the mirrors
	// start on the goroutine that reads the body, while r is in use.
	base := r.Clone(context.WithoutCancel(r.Context()))
	if r.Body == nil || r.Body == http.NoBody {
		for _, m := range targets {
			h.mirror(base, m.Backend, nil, m.hostFor(host))
		}
		return
	}
	r.Body = &teeBody{orig: r.Body, limit: h.cfg.MirrorBodyLimit, done: func(body []byte) {
		for _, m := range targets {
			h.mirror(base, m.Backend, body, m.hostFor(host))
		}
	}}
}

// teeBody keeps a copy of what is read through it, up to limit, and hands
// it to done once the body ends within the limit.
type teeBody struct {
	orig  io.ReadCloser
	buf   []byte
	limit int64
	over  bool
	done  func([]byte)
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.orig.Read(p)
	if !t.over {
		if int64(len(t.buf)+n) > t.limit {
			t.over, t.buf = true, nil
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	if err == io.EOF && !t.over && t.done != nil {
		done := t.done
		t.done = nil
		done(t.buf)
	}
	return n, err
}

func (t *teeBody) Close() error { return t.orig.Close() }

// bufferBody reads r's body, up to limit, so that it can be sent more
// than once, and puts back a body that replays it for the main request.
// It reports false when the body is too large or could not be read: the
// main request then still gets the whole body (or the read error), and no
// copy or retry is made.
func bufferBody(r *http.Request, limit int64) ([]byte, bool) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, true
	}
	if r.ContentLength > limit {
		return nil, false
	}
	orig := r.Body
	buf, err := io.ReadAll(io.LimitReader(orig, limit+1))
	switch {
	case err != nil:
		r.Body = replayBody{io.MultiReader(bytes.NewReader(buf), errReader{err}), orig}
		return nil, false
	case int64(len(buf)) > limit:
		r.Body = replayBody{io.MultiReader(bytes.NewReader(buf), orig), orig}
		return nil, false
	}
	r.Body = replayBody{bytes.NewReader(buf), orig}
	r.ContentLength = int64(len(buf))
	return buf, true
}

// bodyBounder is a Forwarder that bounds the reads of a request body read
// before it is forwarded, as its own reads are (upstream.Transport, by its
// client body timeout).
type bodyBounder interface {
	BoundedBody(w http.ResponseWriter, r *http.Request) io.Reader
}

// bufferBoundedBody is bufferBody reading through the Forwarder's bound, so
// a client that stalls a body buffered for retries or mirrors is not waited
// for forever; timedOut reports that it passed. The caller then answers
// 408 itself: net/http has already cancelled an HTTP/1.x request whose
// body read failed, so the Forwarder would answer nothing.
func (h *Handler) bufferBoundedBody(w http.ResponseWriter, r *http.Request, limit int64) (buf []byte, ok, timedOut bool) {
	bb, bounds := h.cfg.Forwarder.(bodyBounder)
	if !bounds || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.ContentLength > limit {
		buf, ok = bufferBody(r, limit)
		return buf, ok, false
	}
	b := &boundedBody{Reader: bb.BoundedBody(w, r), orig: r.Body}
	r.Body = b
	buf, ok = bufferBody(r, limit)
	return buf, ok, errors.Is(b.err, upstream.ErrClientBodyTimeout)
}

// boundedBody reads through a bound, remembers the read error, and closes
// the inbound body.
type boundedBody struct {
	io.Reader
	orig io.Closer
	err  error
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *boundedBody) Close() error { return b.orig.Close() }

// bodyTimedOut answers a request whose client stalled its body.
func (h *Handler) bodyTimedOut(w http.ResponseWriter, r *http.Request, route *Route) int {
	h.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "request body timed out",
		slog.String("route", route.Source.String()))
	writeError(w, r, http.StatusRequestTimeout, "the request body did not arrive in time")
	return http.StatusRequestTimeout
}

// newReplayBody is a request body that reads buf again and closes the
// inbound body orig.
func newReplayBody(buf []byte, orig io.Closer) io.ReadCloser {
	return replayBody{bytes.NewReader(buf), orig}
}

// replayBody reads from a replacement reader and closes the inbound body.
type replayBody struct {
	io.Reader
	orig io.Closer
}

func (b replayBody) Close() error { return b.orig.Close() }

// Len tells the upstream Transport how much of a buffered body is left, so
// a body held whole in memory is sent with its request head in one write;
// -1 when the body still reads from the client.
func (b replayBody) Len() int {
	if l, ok := b.Reader.(interface{ Len() int }); ok {
		return l.Len()
	}
	return -1
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// mirror sends one copy of r to b in the background. Mirrors beyond
// MaxMirrorsInFlight are dropped rather than queued.
func (h *Handler) mirror(r *http.Request, b *upstream.Backend, body []byte, host string) {
	select {
	case h.mirrorSlots <- struct{}{}:
	default:
		h.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "mirror dropped: too many mirror requests in flight",
			slog.String("backend", b.Name))
		return
	}
	// The copy outlives the client's request, so it must not be cancelled
	// with it, but it is still bounded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), mirrorTimeout)
	mr := r.Clone(ctx)
	mr.Body, mr.ContentLength = http.NoBody, 0
	if len(body) > 0 {
		mr.Body, mr.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	mr.TransferEncoding, mr.Trailer = nil, nil
	mr.Header.Del("Expect")
	go func() {
		defer func() {
			cancel()
			<-h.mirrorSlots
		}()
		out := h.cfg.Forwarder.ForwardWith(newDiscardResponse(), mr, b, &upstream.ForwardOptions{Host: host})
		if out.Err != nil {
			h.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "mirror request failed",
				slog.String("backend", b.Name), slog.String("error", out.Err.Error()))
		}
	}()
}

// discardResponse is the ResponseWriter of a mirror request: the mirror's
// answer goes nowhere.
type discardResponse struct{ h http.Header }

func newDiscardResponse() *discardResponse { return &discardResponse{h: make(http.Header)} }

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) WriteHeader(int)             {}
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }

// isUpgrade reports whether r asks to switch protocols.
func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// LocationRewrite rewrites the Location and Refresh headers of a backend's
// responses, as nginx's proxy_redirect with a prefix and its replacement
// (ingress-nginx's proxy-redirect-from and proxy-redirect-to): a URL that
// starts with From, compared ignoring case, has that start replaced by To.
type LocationRewrite struct {
	From, To string
}

// apply rewrites hdr's Location and the URL of its Refresh.
func (lr *LocationRewrite) apply(hdr http.Header) {
	if vv := hdr["Location"]; len(vv) > 0 {
		if v, ok := lr.rewrite(vv[0]); ok {
			hdr["Location"] = []string{v}
		}
	}
	if vv := hdr["Refresh"]; len(vv) > 0 {
		// "5; url=https://...": only the URL after url= is rewritten.
		v := vv[0]
		for i := 0; i+4 <= len(v); i++ {
			if strings.EqualFold(v[i:i+4], "url=") {
				if u, ok := lr.rewrite(v[i+4:]); ok {
					hdr["Refresh"] = []string{v[:i+4] + u}
				}
				break
			}
		}
	}
}

func (lr *LocationRewrite) rewrite(v string) (string, bool) {
	if len(v) < len(lr.From) || !strings.EqualFold(v[:len(lr.From)], lr.From) {
		return v, false
	}
	return lr.To + v[len(lr.From):], true
}
