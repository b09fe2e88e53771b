package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"
)

// aLongTimeAgo is a deadline in the past: setting it makes every blocked
// read and write on a connection return at once.
var aLongTimeAgo = time.Unix(1, 0)

// Error kinds of one request/response exchange with a backend, which decide
// both the status sent to the client and whether the request may be retried.
type (
	// backendWriteError: writing the request to the backend failed.
	backendWriteError struct{ err error }
	// clientBodyError: reading the inbound request body failed.
	clientBodyError struct{ err error }
	// noResponseError: the backend sent not a single byte of a response.
	noResponseError struct{ err error }
	// badResponseError: the backend's response could not be parsed or
	// arrived only in part.
	badResponseError struct{ err error }
)

func (e *backendWriteError) Error() string { return "writing request to backend: " + e.err.Error() }
func (e *backendWriteError) Unwrap() error { return e.err }
func (e *clientBodyError) Error() string   { return "reading request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error   { return e.err }
func (e *noResponseError) Error() string   { return "awaiting response: " + e.err.Error() }
func (e *noResponseError) Unwrap() error   { return e.err }
func (e *badResponseError) Error() string  { return "reading response: " + e.err.Error() }
func (e *badResponseError) Unwrap() error  { return e.err }

// watch makes the connection's blocked reads and writes fail as soon as the
// client goes away. The returned stop reports false if that has happened,
// in which case the connection must not be reused.
//
// A context with an AfterFunc method of its own (the HTTP/1.1 engine's
// request context) is asked directly: context.AfterFunc would allocate a
// context and a closure to reach the same method. Such a registration must
// be stopped before the handler returns, which every path here does.
func watch(ctx context.Context, c *conn) (stop func() bool) {
	if a, ok := ctx.(afterFuncer); ok {
		return a.AfterFunc(c.abort)
	}
	return context.AfterFunc(ctx, c.abort)
}

// afterFuncer is what context.AfterFunc looks for in a context.
type afterFuncer interface {
	AfterFunc(func()) func() bool
}

// forwardHTTP1 proxies r over a pooled HTTP/1.1 connection.
//
// Retry rule: a failed connect is retried once on the next endpoint, for any
// method, since nothing reached a backend. An idle connection found closed
// by the backend (or carrying bytes nobody asked for) when it is taken from
// the pool is closed and the next one taken, or a new one dialled, for any
// method too: nothing was written to it (see conn.usable). A pooled
// connection that turns out to be dead only once used (the write fails, or
// it reaches EOF or a reset before a single response byte arrives) was
// most likely closed by the backend as the request was written; the
// request is then retried once on a freshly dialed connection to the same
// endpoint, but only when it is idempotent and no byte of its body has
// been consumed, because the backend may in fact have processed it.
func (t *Transport) forwardHTTP1(w http.ResponseWriter, r *http.Request, b *Backend, o *ForwardOptions) Outcome {
	ctx := r.Context()
	upgrade := t.upgradeType(r)
	f := t.forwardingFor(r)
	if o != nil {
		f.prefix = o.ForwardedPrefix
	}

	// A request whose client already went away (an HTTP/2 stream reset
	// right after its HEADERS) must neither dial nor take a pooled
	// connection: the exchange would be aborted at once and the connection
	// closed, so a flood of reset streams would churn backend connections.
	if ctx.Err() != nil {
		return interrupted(w, r, context.Cause(ctx))
	}
	n := len(b.Endpoints)
	first := b.next()
	p, err := t.poolFor(b, b.Endpoints[first])
	if err != nil {
		return writeError(w, r, http.StatusBadGateway, "backend "+b.Name+" cannot be reached over TLS as configured", err)
	}
	c, err := t.getConn(ctx, p, b.Name)
	if err != nil && n > 1 && ctx.Err() == nil {
		p, _ = t.poolFor(b, b.Endpoints[(first+1)%n])
		c, err = t.getConn(ctx, p, b.Name)
	}
	if err != nil {
		return t.connectFailed(w, r, b, err)
	}

	stop := watch(ctx, c)
	resp, bodyRead, err := t.roundTrip(c, w, r, &f, o, upgrade)
	if err != nil && c.reused && !bodyRead && idempotent(r.Method) && ctx.Err() == nil && deadConnection(err) {
		t.log.Debug("pooled connection was dead, retrying on a new one",
			"backend", b.Name, "endpoint", p.addr, "error", err)
		stop()
		c.discard(ctx)
		if c, err = t.dial(ctx, p, b.Name); err != nil {
			return t.connectFailed(w, r, b, err)
		}
		stop = watch(ctx, c)
		resp, _, err = t.roundTrip(c, w, r, &f, o, upgrade)
	}
	if err != nil {
		stop()
		c.discard(ctx)
		return t.exchangeFailed(w, r, b, err)
	}

	if resp.StatusCode == http.StatusSwitchingProtocols {
		if !stop() {
			c.discard(ctx)
			return interrupted(w, r, context.Cause(ctx))
		}
		switch {
		case upgrade == "":
			c.discard(ctx)
			return writeError(w, r, http.StatusBadGateway, "backend "+b.Name+" sent an invalid response", errUnexpected101)
		case !strings.EqualFold(resp.Header.Get("Upgrade"), upgrade):
			c.discard(ctx)
			return writeError(w, r, http.StatusBadGateway, "backend "+b.Name+" sent an invalid response", errUpgradeMismatch)
		}
		c.settle(ctx)
		return t.serveTunnel(w, c, resp, upgrade)
	}

	var backend readArmer
	if !bodyBuffered(resp, c.br) {
		backend = c
	}
	complete, out := t.writeResponse(w, r, resp, o, backend)
	// The connection is reusable only when the response was read to its
	// end, neither side asked to close, the backend sent nothing beyond the
	// response, and the client did not go away meanwhile.
	if stop() && complete && !resp.Close && upgrade == "" && c.br.Buffered() == 0 {
		t.putIdle(c)
	} else {
		c.discard(ctx)
	}
	return out
}

// connectFailed answers a request whose connect failed on every endpoint
// tried.
func (t *Transport) connectFailed(w http.ResponseWriter, r *http.Request, b *Backend, err error) Outcome {
	if r.Context().Err() != nil {
		return interrupted(w, r, err)
	}
	return writeError(w, r, http.StatusBadGateway, "cannot connect to backend "+b.Name, err)
}

// exchangeFailed answers a request whose exchange failed before any of the
// response was sent to the client.
func (t *Transport) exchangeFailed(w http.ResponseWriter, r *http.Request, b *Backend, err error) Outcome {
	// Checked before the context: net/http cancels an HTTP/1.x request
	// whose body read failed, a timeout included.
	if errors.Is(err, ErrClientBodyTimeout) && timeoutCause(r.Context()) == nil {
		return writeError(w, r, http.StatusRequestTimeout, "the request body did not arrive in time", err)
	}
	if r.Context().Err() != nil {
		return interrupted(w, r, err)
	}
	var ire *invalidRequestError
	if errors.As(err, &ire) {
		return writeError(w, r, http.StatusBadRequest, "request cannot be forwarded", err)
	}
	var cbe *clientBodyError
	if errors.As(err, &cbe) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return writeError(w, r, http.StatusRequestEntityTooLarge, "request body too large", err)
		}
		return writeError(w, r, http.StatusBadRequest, "request body could not be read", err)
	}
	var ne net.Error
	if errors.Is(err, errHeaderTimeout) || (errors.As(err, &ne) && ne.Timeout()) {
		return writeError(w, r, http.StatusGatewayTimeout, "backend "+b.Name+" did not answer in time", err)
	}
	var bre *badResponseError
	if errors.As(err, &bre) {
		return writeError(w, r, http.StatusBadGateway, "backend "+b.Name+" sent an invalid response", err)
	}
	return writeError(w, r, http.StatusBadGateway, "backend "+b.Name+" closed the connection without answering", err)
}

// deadConnection reports whether err looks like a connection the backend
// closed while it sat idle: a failed write or nothing at all read back,
// other than by a timeout.
func deadConnection(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	var we *backendWriteError
	var nr *noResponseError
	return errors.As(err, &we) || errors.As(err, &nr)
}

// roundTrip writes r to c and reads the response headers. bodyRead reports
// whether any of r's body was consumed, which makes a retry impossible.
func (t *Transport) roundTrip(c *conn, w http.ResponseWriter, r *http.Request, f *forwarding, o *ForwardOptions, upgrade string) (resp *http.Response, bodyRead bool, err error) {
	bodyRead, err = t.writeRequest(c, w, r, f, o, upgrade)
	if err != nil {
		var we *backendWriteError
		if bodyRead && errors.As(err, &we) {
			// A backend may answer early and stop reading, as with a 413 for
			// an oversized upload. Its answer is better than a 502; the
			// connection is then out of step and must not be reused.
			if resp := t.earlyResponse(c, r, o); resp != nil {
				resp.Close = true
				return resp, bodyRead, nil
			}
		}
		return nil, bodyRead, err
	}
	resp, err = t.readResponseHead(c, w, r, o)
	return resp, bodyRead, err
}

// readResponseHead reads the final (or 101) response head to r on c,
// relaying informational responses to w.
func (t *Transport) readResponseHead(c *conn, w http.ResponseWriter, r *http.Request, o *ForwardOptions) (resp *http.Response, err error) {
	if err := c.armHeaderDeadline(readTimeout(o, t.responseHeaderTimeout)); err != nil {
		return nil, &noResponseError{err}
	}
	c.head.arm(t.maxResponseHeaderBytes)
	defer c.head.disarm()
	if _, err := c.br.Peek(1); err != nil {
		return nil, &noResponseError{err}
	}
	for informational := 0; ; informational++ {
		resp, err = c.readResponse(w, r)
		if err != nil {
			return nil, &badResponseError{err}
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// Each one is relayed to the client: the head budget bounds their
		// bytes, this bounds their count.
		if informational == t.maxInformational {
			return nil, &badResponseError{errTooManyInformational}
		}
		// Informational responses (such as 103 Early Hints) precede the
		// final one. 100 Continue is not relayed: the inbound server has
		// already answered the client's Expect itself.
		if resp.StatusCode != http.StatusContinue && r.ProtoAtLeast(1, 1) {
			relayInformational(w, resp)
		}
	}
	// A body already in the buffer is copied without touching the socket,
	// so the header deadline may stay armed for the next request; any
	// other is read under UpstreamReadTimeout (writeResponse).
	return resp, nil
}

// bodyBuffered reports whether the whole of resp's body is already in br, so
// reading it cannot block on the connection.
func bodyBuffered(resp *http.Response, br *bufio.Reader) bool {
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.ContentLength < 0 {
		return false
	}
	return resp.Body == http.NoBody || resp.ContentLength <= int64(br.Buffered())
}

// earlyResponse returns a final response the backend sent before the
// request body was fully written, or nil.
func (t *Transport) earlyResponse(c *conn, r *http.Request, o *ForwardOptions) *http.Response {
	if r.Context().Err() != nil {
		return nil
	}
	_ = c.armHeaderDeadline(readTimeout(o, t.responseHeaderTimeout))
	c.head.arm(t.maxResponseHeaderBytes)
	resp, err := http.ReadResponse(c.br, r)
	c.head.disarm()
	if err != nil || resp.StatusCode < 200 {
		return nil
	}
	_ = c.clearReadDeadline()
	return resp
}

// relayInformational sends a 1xx response to the client ahead of the final
// one.
func relayInformational(w http.ResponseWriter, resp *http.Response) {
	h := w.Header()
	// WriteHeader does not reset the map after a 1xx response: restore it
	// afterwards so the final response neither inherits the 1xx fields nor
	// loses fields set before Forward was called.
	saved := h.Clone()
	copyResponseHeader(h, resp.Header)
	w.WriteHeader(resp.StatusCode)
	clear(h)
	for k, vv := range saved {
		h[k] = vv
	}
}

// writeRequest writes the request head straight into the connection's
// buffered writer, then the body, framed by Portico itself. The head is sent
// before the body is read, and the body as it arrives.
func (t *Transport) writeRequest(c *conn, w http.ResponseWriter, r *http.Request, f *forwarding, o *ForwardOptions, upgrade string) (bodyRead bool, err error) {
	bw := c.bw
	hasBody, chunked, trailers, err := t.writeRequestHead(bw, r, f, o, upgrade, c.pool.addr)
	if err != nil {
		return false, err
	}
	body := r.Body
	if hasBody {
		// The head goes out before the first read of the body, which may
		// wait on the client: the backend sees the request at once, and an
		// upload as it arrives. A body known to be in memory already (one
		// a retry policy buffered) goes out with the head in one write.
		mem := inMemory(body, r.ContentLength)
		if !mem {
			if err := c.armWrite(time.Now(), sendTimeout(o, t.upstreamSendTimeout)); err != nil {
				return false, &backendWriteError{err}
			}
			if err := bw.Flush(); err != nil {
				return false, &backendWriteError{err}
			}
		}
		var dst io.Writer = bw
		var cw io.WriteCloser
		if chunked {
			cw = httputil.NewChunkedWriter(bw)
			dst = cw
		}
		bodyRead = true
		src := boundedBody{r: body, client: clientDeadlines{w: w, h1: r.ProtoMajor == 1, off: mem}, timeout: t.clientBodyTimeout}
		if err := t.copyRequestBody(c, dst, &src, r.ContentLength, chunked, sendTimeout(o, t.upstreamSendTimeout)); err != nil {
			return bodyRead, err
		}
		if chunked {
			if err := cw.Close(); err != nil {
				return bodyRead, &backendWriteError{err}
			}
			// Only what was declared: fields the client sent without
			// declaring them were merged into r.Trailer while the body
			// was read.
			for _, k := range trailers {
				writeHeaderValues(bw, k, r.Trailer[k])
			}
			bw.WriteString("\r\n")
		}
	}
	if err := c.armWrite(time.Now(), sendTimeout(o, t.upstreamSendTimeout)); err != nil {
		return bodyRead, &backendWriteError{err}
	}
	if err := bw.Flush(); err != nil {
		return bodyRead, &backendWriteError{err}
	}
	return bodyRead, nil
}

// writeRequestHead writes the request line and fields of r, as sent to a
// backend at defaultHost when r names none, and says how the body that
// follows is framed. The event loop (LoopState.Plan) writes bodyless
// requests with it too, so both paths send the same bytes.
func (t *Transport) writeRequestHead(bw *bufio.Writer, r *http.Request, f *forwarding, o *ForwardOptions, upgrade, defaultHost string) (hasBody, chunked bool, trailers []string, err error) {
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") {
		uri = r.URL.RequestURI()
	}
	host := r.Host
	if o != nil && o.Host != "" {
		host = o.Host
	}
	if host == "" {
		host = defaultHost
	}
	// The routing handler has refused such requests already; a handler
	// that edited the request afterwards must not get a split request line
	// or Host onto the wire either.
	if !ValidRequestLine(r.Method, uri, r.Host) || !ValidAuthority(host) {
		return false, false, nil, &invalidRequestError{ErrInvalidRequestLine}
	}
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")

	connection := r.Header["Connection"]
	for k, vv := range r.Header {
		if skipRequestHeader(k, connection) || !t.forwardableName(k) {
			continue
		}
		writeHeaderValues(bw, k, vv)
	}
	if hasToken(r.Header["Te"], "trailers") {
		bw.WriteString("Te: trailers\r\n")
	}
	writeForwardingHeaders(bw, f, r.Header)

	body := r.Body
	hasBody = body != nil && body != http.NoBody && r.ContentLength != 0
	if hasBody {
		trailers = t.forwardedTrailers(r)
	}
	switch {
	case hasBody && (r.ContentLength < 0 || len(trailers) > 0):
		// Trailers need chunked framing, so a request that declares any is
		// sent chunked even when its length is known.
		chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(trailers) > 0 {
			bw.WriteString("Trailer: ")
			bw.WriteString(trailers[0])
			for _, k := range trailers[1:] {
				bw.WriteString(", ")
				bw.WriteString(k)
			}
			bw.WriteString("\r\n")
		}
	case hasBody:
		bw.WriteString("Content-Length: ")
		bw.Write(appendInt(bw.AvailableBuffer(), r.ContentLength))
		bw.WriteString("\r\n")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	if upgrade != "" {
		bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
		bw.WriteString(upgrade)
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")

	return hasBody, chunked, trailers, nil
}

// inMemory reports whether body is held in memory whole, so that reading
// it cannot wait on the client: a reader that tells its remaining length
// (bytes.Reader, strings.Reader, and the routing tier's replay of a
// buffered body) and has all of length left.
func inMemory(body io.Reader, length int64) bool {
	l, ok := body.(interface{ Len() int })
	return ok && length >= 0 && int64(l.Len()) >= length
}

// copyRequestBody copies the inbound body to the backend through dst, which
// writes into c's buffered writer. A fixed-length body must deliver exactly
// the declared length, or the backend would wait for the rest (or read the
// excess as a new request).
//
// Each read from the client is bounded by ClientBodyTimeout and each write
// to the backend by UpstreamSendTimeout. What was read is flushed to the
// backend before the next read, which may wait on the client, so a slow
// upload streams; the last piece is left to the caller's flush, with the
// chunked terminator.
func (t *Transport) copyRequestBody(c *conn, dst io.Writer, body *boundedBody, length int64, chunked bool, send time.Duration) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var written int64
	for {
		if !chunked && written == length {
			body.client.doneReading()
			return nil
		}
		chunk := buf
		if !chunked && int64(len(chunk)) > length-written {
			chunk = chunk[:length-written]
		}
		n, rerr := body.Read(chunk)
		if n > 0 {
			if err := c.armWrite(time.Now(), send); err != nil {
				return &backendWriteError{err}
			}
			if _, err := dst.Write(chunk[:n]); err != nil {
				return &backendWriteError{err}
			}
			written += int64(n)
			if rerr == nil && (chunked || written < length) {
				if err := c.bw.Flush(); err != nil {
					return &backendWriteError{err}
				}
			}
		}
		if rerr == io.EOF {
			if !chunked && written < length {
				return &clientBodyError{io.ErrUnexpectedEOF}
			}
			return nil
		}
		// On failure the deadline stays: net/http drains what is left of
		// the body after the response, and must not wait on a stalled
		// client for it. A timeout, met here or while the routing tier
		// buffered the body (BoundedBody), carries ErrClientBodyTimeout.
		if rerr != nil {
			return &clientBodyError{rerr}
		}
	}
}

// writeForwardingHeaders writes X-Forwarded-For/-Proto/-Host and Forwarded,
// appending in place in the writer's buffer to avoid building strings.
func writeForwardingHeaders(bw *bufio.Writer, f *forwarding, in http.Header) {
	if bw.Available() < 512 {
		_ = bw.Flush() // a failure sticks and is reported by the final Flush
	}
	buf := bw.AvailableBuffer()
	buf = append(buf, "X-Forwarded-For: "...)
	buf = appendXFF(buf, f, in["X-Forwarded-For"])
	buf = append(buf, "\r\nX-Forwarded-Proto: "...)
	buf = append(buf, keptForwardingValue(f, in["X-Forwarded-Proto"], f.proto)...)
	if host := keptForwardingValue(f, in["X-Forwarded-Host"], f.host); host != "" {
		buf = append(buf, "\r\nX-Forwarded-Host: "...)
		buf = append(buf, host...)
	}
	buf = append(buf, "\r\nForwarded: "...)
	buf = appendForwarded(buf, f, in["Forwarded"])
	// X-Real-IP as ingress-nginx sets it, so that a client cannot name
	// itself to backends that read it.
	buf = append(buf, "\r\nX-Real-IP: "...)
	buf = append(buf, keptForwardingValue(f, in["X-Real-Ip"], f.clientIP)...)
	buf = append(buf, "\r\n"...)
	if f.prefix != "" {
		buf = append(buf, "X-Forwarded-Prefix: "...)
		buf = append(buf, f.prefix...)
		buf = append(buf, "\r\n"...)
	}
	bw.Write(buf)
	if f.trusted {
		for _, k := range passedFromTrusted {
			if k == "X-Forwarded-Prefix" && f.prefix != "" {
				continue
			}
			writeHeaderValues(bw, k, in[k])
		}
	}
}
