package http1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// smallBody is how much body a response buffers before committing to
	// a framing: a response that ends within it goes out with a
	// Content-Length, head and body in one write.
	smallBody = 4 << 10
	// flushAt is how much committed output is gathered before a write.
	flushAt = 8 << 10
)

var errHijacked = http.ErrHijacked

// response is the http.ResponseWriter of one request. It is reused across
// the requests of a connection: like net/http's, it must not be used after
// ServeHTTP returns.
type response struct {
	c             *conn
	req           *http.Request
	body          *bodyReader
	header        http.Header
	isHEAD        bool
	proto11       bool
	reqWantsClose bool

	status      int
	wroteHeader bool
	committed   bool // the head is (being) written
	contentLen  int64
	written     int64
	chunked     bool
	noBody      bool
	closeAfter  bool
	aborted     bool
	trailers    []string // declared in the Trailer field at commit

	// pending is body written before commit, at most smallBody.
	pending []byte
	werr    error

	// contMu orders a 100 Continue against the response head: one written
	// by the body reader on the handler's behalf must not follow or
	// interleave with the final head.
	contMu    sync.Mutex
	contOwed  bool // the client waits for 100 Continue before its body
	headGoing bool
}

// continueOwed reports whether the client still waits for a 100 Continue
// that was never sent, and so may never send its body.
func (w *response) continueOwed() bool {
	w.contMu.Lock()
	defer w.contMu.Unlock()
	return w.contOwed
}

func (w *response) reset(c *conn, r *http.Request, rh *requestHead, body *bodyReader) {
	clear(c.respHdr)
	clear(c.values) // drop the previous request's strings
	c.values = c.values[:0]
	*w = response{
		c:             c,
		req:           r,
		body:          body,
		header:        c.respHdr,
		isHEAD:        rh.method == http.MethodHead,
		proto11:       rh.minor == 1,
		reqWantsClose: rh.close,
		contentLen:    -1,
		pending:       c.resp.pending[:0],
		contOwed:      rh.expectCont && body != nil,
	}
	if w.pending == nil {
		w.pending = make([]byte, 0, smallBody)
	}
}

func (w *response) Header() http.Header { return w.header }

// HeaderValues returns n empty strings, with no room to append, that the
// handler may use as value slices of Header until the request ends, like
// Header itself. The backend leg takes them for the fields of a response
// it copies, which then costs no slice per field; they are reused by the
// connection's next request.
func (w *response) HeaderValues(n int) []string {
	c := w.c
	if cap(c.values)-len(c.values) < n {
		// The full array stays with the fields that use it.
		c.values = make([]string, 0, max(2*cap(c.values), n, 32))
	}
	i := len(c.values)
	c.values = c.values[:i+n]
	return c.values[i : i+n : i+n]
}

func (w *response) WriteHeader(code int) {
	if w.c.hijacked {
		w.c.srv.logger().Warn("http: response.WriteHeader on hijacked connection")
		return
	}
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.contentLen = n
		} else {
			w.header.Del("Content-Length")
		}
	}
}

// writeInformational sends a 1xx response at once (to HTTP/1.1 clients
// only). As net/http does, the header map is not reset: fields set for a 103 are also sent with the
// final response unless the handler removes them.
func (w *response) writeInformational(code int) {
	w.contMu.Lock()
	defer w.contMu.Unlock()
	if code == http.StatusContinue {
		if !w.contOwed {
			return
		}
		w.contOwed = false
	}
	if !w.proto11 {
		// RFC 9110 section 15.2: no 1xx to an HTTP/1.0 client.
		return
	}
	out := w.c.out[:0]
	out = appendStatusLine(out, w.proto11, code)
	for k, vv := range w.header {
		if k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		out = appendField(out, k, vv)
	}
	out = append(out, "\r\n"...)
	w.c.out = out
	w.rawWrite(out)
}

// writeContinue sends 100 Continue when the handler first reads a body the
// client is holding back, unless the final response has started.
func (w *response) writeContinue() {
	w.contMu.Lock()
	defer w.contMu.Unlock()
	if !w.contOwed || w.headGoing {
		return
	}
	w.contOwed = false
	if w.proto11 {
		w.rawWrite([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	}
}

func (w *response) bodyAllowed() bool {
	return !(w.status == http.StatusNoContent || w.status == http.StatusNotModified || w.status < 200)
}

func (w *response) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, errHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	if w.contentLen >= 0 && w.written+int64(len(p)) > w.contentLen {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.isHEAD {
		return len(p), nil
	}
	if !w.committed {
		if len(w.pending)+len(p) <= smallBody {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	if w.werr != nil {
		return 0, w.werr
	}
	w.appendBody(p)
	if w.werr != nil {
		return 0, w.werr
	}
	return len(p), nil
}

func (w *response) WriteString(s string) (int, error) {
	// io.WriteString's conversion would allocate for every call.
	if !w.committed && w.wroteHeader && w.bodyAllowed() && !w.isHEAD && len(w.pending)+len(s) <= smallBody &&
		(w.contentLen < 0 || w.written+int64(len(s)) <= w.contentLen) {
		w.written += int64(len(s))
		w.pending = append(w.pending, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// appendBody frames p as the committed framing says and queues it,
// writing out when enough is queued.
func (w *response) appendBody(p []byte) {
	c := w.c
	if w.chunked {
		c.out = strconv.AppendInt(c.out, int64(len(p)), 16)
		c.out = append(c.out, "\r\n"...)
	}
	if len(c.out)+len(p) > flushAt {
		w.flushOut()
		if w.werr == nil {
			w.rawWrite(p)
		}
	} else {
		c.out = append(c.out, p...)
	}
	if w.chunked {
		c.out = append(c.out, "\r\n"...)
	}
}

// commit writes the head into c.out (not yet to the connection), followed
// by the pending body. final says the handler is done, so a body that was
// not given a length has the length of what is pending.
func (w *response) commit(final bool) {
	w.contMu.Lock()
	w.headGoing = true
	contOwed := w.contOwed
	w.contMu.Unlock()
	w.committed = true
	c := w.c
	h := w.header
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}

	// The client may still be sending a body we never asked for.
	if contOwed {
		w.closeAfter = true
	}
	if w.reqWantsClose || w.c.srv.inShutdown.Load() {
		w.closeAfter = true
	}
	for _, v := range h["Connection"] {
		if hasToken(v, "close") {
			w.closeAfter = true
		}
	}
	if w.status == http.StatusSwitchingProtocols {
		w.closeAfter = true
	}

	allowed := w.bodyAllowed()
	w.trailers = w.trailers[:0]
	for _, v := range h["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = trimOWS(name); name != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(name))
			}
		}
	}
	hasTrailerPrefix := false
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			hasTrailerPrefix = true
			break
		}
	}

	_, haveType := h["Content-Type"]
	te := h.Get("Transfer-Encoding")
	switch {
	case !allowed:
		w.noBody = true
		if w.status == http.StatusNotModified || w.status == http.StatusNoContent || w.status < 200 {
			// no framing fields: 204 and 1xx forbid them; 304 keeps a
			// Content-Length the handler set.
			if w.status != http.StatusNotModified {
				w.contentLen = -1
			}
		}
	case w.isHEAD:
		w.noBody = true
		if w.contentLen < 0 && final && w.written > 0 {
			w.contentLen = w.written
		}
	case w.contentLen >= 0:
	case final && len(w.trailers) == 0 && !hasTrailerPrefix && te == "":
		w.contentLen = int64(len(w.pending))
	case w.proto11:
		w.chunked = true
	default:
		w.closeAfter = true
	}
	// As net/http: sniff a missing type, unless the body is encoded.
	if allowed && !haveType && te == "" && h.Get("Content-Encoding") == "" && len(w.pending) > 0 {
		h.Set("Content-Type", http.DetectContentType(w.pending))
	}

	out := c.out[:0]
	out = appendStatusLine(out, w.proto11, w.status)
	keys := c.keys[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	c.keys = keys
	for _, k := range keys {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection", "Trailer":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		out = appendField(out, k, h[k])
	}
	if _, ok := h["Date"]; !ok {
		out = append(out, "Date: "...)
		out = appendDate(out)
		out = append(out, "\r\n"...)
	}
	switch {
	case w.chunked:
		if len(w.trailers) > 0 {
			out = appendField(out, "Trailer", h["Trailer"])
		}
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	case w.contentLen >= 0 && w.status != http.StatusNoContent && w.status >= 200:
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, w.contentLen, 10)
		out = append(out, "\r\n"...)
	}
	switch {
	case w.status == http.StatusSwitchingProtocols:
		out = appendField(out, "Connection", h["Connection"])
	case w.closeAfter:
		out = append(out, "Connection: close\r\n"...)
	case !w.proto11:
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	out = append(out, "\r\n"...)
	c.out = out
	if len(w.pending) > 0 && !w.noBody {
		p := w.pending
		w.pending = w.pending[:0]
		w.appendBody(p)
	}
}

func (w *response) rawWrite(p []byte) {
	if w.werr != nil {
		return
	}
	if _, err := w.c.nc.Write(p); err != nil {
		w.werr = err
	}
}

// flushOut writes what c.out holds.
func (w *response) flushOut() {
	if len(w.c.out) > 0 {
		w.rawWrite(w.c.out)
		w.c.out = w.c.out[:0]
	}
}

// Flush sends the head and whatever body is queued.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting a write error, for http.ResponseController.
func (w *response) FlushError() error {
	if w.c.hijacked {
		return errHijacked
	}
	if !w.committed {
		w.commit(false)
	}
	w.flushOut()
	return w.werr
}

// finish completes the response after the handler returned.
func (w *response) finish() {
	if w.aborted {
		if w.committed {
			w.flushOut()
		}
		return
	}
	if !w.committed {
		w.commit(true)
	}
	if w.chunked {
		w.c.out = append(w.c.out, "0\r\n"...)
		for _, k := range w.trailers {
			if vv := w.header[k]; len(vv) > 0 {
				w.c.out = appendField(w.c.out, k, vv)
			}
		}
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && len(vv) > 0 {
				w.c.out = appendField(w.c.out, name, vv)
			}
		}
		w.c.out = append(w.c.out, "\r\n"...)
	}
	w.flushOut()
	if w.contentLen >= 0 && w.written < w.contentLen && !w.noBody {
		// The client waits for bytes that will not come.
		w.closeAfter = true
	}
	if len(w.pending) > smallBody {
		w.pending = nil
	}
	w.c.resp.pending = w.pending
}

// Hijack hands the connection to the handler, with bytes the client sent
// after the request in the returned reader.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, errHijacked
	}
	if w.committed {
		w.flushOut()
	}
	c.stopWatch()
	c.hijacked = true
	c.srv.setState(c, http.StateHijacked)
	c.srv.untrack(c)
	_ = c.nc.SetReadDeadline(time.Time{})
	left := append([]byte(nil), c.buf[c.r:c.w]...)
	c.r, c.w = 0, 0
	br := bufio.NewReaderSize(&prefixReader{p: left, r: c.nc}, max(4096, len(left)))
	if len(left) > 0 {
		_, _ = br.Peek(len(left))
	}
	bw := bufio.NewWriter(c.nc)
	return c.nc, bufio.NewReadWriter(br, bw), nil
}

// prefixReader returns p, then reads from r.
type prefixReader struct {
	p []byte
	r io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.p) > 0 {
		n := copy(b, p.p)
		p.p = p.p[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// SetReadDeadline is for http.ResponseController: it sets the client
// connection's read deadline, which then stays the handler's to manage.
func (w *response) SetReadDeadline(t time.Time) error {
	if w.c.hijacked {
		return errHijacked
	}
	w.c.userDeadline.Store(true)
	return w.c.nc.SetReadDeadline(t)
}

// SetWriteDeadline is for http.ResponseController.
func (w *response) SetWriteDeadline(t time.Time) error {
	if w.c.hijacked {
		return errHijacked
	}
	return w.c.nc.SetWriteDeadline(t)
}

// EnableFullDuplex is for http.ResponseController. Reading the request body
// while writing the response always works here: nothing stops it.
func (w *response) EnableFullDuplex() error { return nil }

func appendStatusLine(out []byte, proto11 bool, code int) []byte {
	if proto11 {
		out = append(out, "HTTP/1.1 "...)
	} else {
		out = append(out, "HTTP/1.0 "...)
	}
	if code == http.StatusOK {
		return append(out, "200 OK\r\n"...)
	}
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, ' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	out = append(out, text...)
	return append(out, "\r\n"...)
}

// appendField writes a field as net/http does: names that are not tokens
// are skipped, CR and LF in values become spaces, and leading and trailing
// whitespace is trimmed.
func appendField(out []byte, k string, vv []string) []byte {
	if !isToken(k) {
		return out
	}
	for _, v := range vv {
		v = strings.TrimSpace(v)
		out = append(out, k...)
		out = append(out, ": "...)
		for i := 0; i < len(v); i++ {
			b := v[i]
			if b == '\r' || b == '\n' {
				b = ' '
			}
			out = append(out, b)
		}
		out = append(out, "\r\n"...)
	}
	return out
}

func hasToken(v, token string) bool {
	for t := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(trimOWS(t), token) {
			return true
		}
	}
	return false
}

// dateCache holds the Date field value for the current second.
type dateCache struct {
	sec int64
	b   []byte
}

var cachedDate atomic.Pointer[dateCache]

func appendDate(out []byte) []byte {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return append(out, d.b...)
	}
	d := &dateCache{sec: sec, b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	cachedDate.Store(d)
	return append(out, d.b...)
}

var _ interface {
	http.ResponseWriter
	http.Flusher
	http.Hijacker
	io.StringWriter
} = (*response)(nil)

var _ = errors.New
