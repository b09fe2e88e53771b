package http1

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// readBufferSize is a connection's initial read buffer; it grows up to
	// MaxHeaderBytes for a large head and stays that size for the
	// connection.
	readBufferSize = 4 << 10
	// watchDelay is how long a handler runs before the connection is
	// watched for the client going away; see conn.armWatch.
	watchDelay = 5 * time.Millisecond
	// maxDrain is how much of a request body the handler left unread is
	// read and discarded to keep the connection; past it, it is closed.
	maxDrain = 256 << 10
)

// Watch states.
const (
	watchOff     = iota // no request, or the request is over
	watchArmed          // the timer is running
	watchPending        // the timer fired while the body was still unread
	watchRunning        // a goroutine is reading from the client
)

// aLongTimeAgo is a read deadline in the past, to interrupt a read.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one client connection and everything reused across its requests.
type conn struct {
	srv        *Server
	nc         net.Conn
	tlsState   *tls.ConnectionState
	tlsStateV  tls.ConnectionState
	remoteAddr string
	state      atomic.Int32 // http.ConnState

	ctx        context.Context // the connection's context
	cancelConn context.CancelFunc
	// abort cancels ctx from any goroutine (Close); it never changes.
	abortCtx context.Context
	abort    context.CancelFunc

	// The read buffer: unread bytes are buf[r:w].
	buf     []byte
	oneByte [1]byte // idleRead's
	r, w    int
	// rerr is a read error that ends the connection after the current
	// response (the client went away, or sent garbage).
	rerr error

	// Reused per request.
	head    requestHead
	sink    headerSink
	url     url.URL
	req     http.Request
	resp    response
	reqHdr  http.Header
	respHdr http.Header
	// scratch holds the request working set while a request is served.
	scratch *scratch
	// values backs response.HeaderValues.
	values []string
	keys   []string
	out    []byte // output assembled for one write

	// rctx is the request context, and rreq the request bound to it,
	// re-armed for each request while that is safe; see requestContext.
	rctx *requestContext
	rreq *http.Request

	// Disconnect watch; see armWatch.
	watchMu      sync.Mutex
	watchState   int
	bodyDone     bool
	watchTimer   *time.Timer
	watchDone    chan struct{}
	interrupting atomic.Bool
	userDeadline atomic.Bool

	hijacked bool
	// lp is set while an event loop serves the connection, and after.
	lp *loopState
	// h2 is set while an event loop serves the connection as HTTP/2.
	h2 *h2conn
	// lingering says the server ends a connection the client may still be
	// writing to; see linger.
	lingering bool
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc, remoteAddr: nc.RemoteAddr().String()}
	c.abortCtx, c.abort = context.WithCancel(context.Background())
	return c
}

// initContext derives the connection's context through ConnContext, once
// the connection is known to be served here (not handed on as h2).
func (c *conn) initContext() { c.initContextWith(c.nc) }

// initContextWith is initContext with nc as the connection ConnContext
// sees.
func (c *conn) initContextWith(nc net.Conn) {
	ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, c.nc.LocalAddr())
	if c.srv.ConnContext != nil {
		ctx = c.srv.ConnContext(ctx, nc)
		if ctx == nil {
			panic("http1: ConnContext returned nil")
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.abortCtx, cancel)
	c.ctx = ctx
	c.cancelConn = func() {
		stop()
		cancel()
	}
}

var chunkedTE = []string{"chunked"}

// scratch is what a connection needs only while it serves a request: the
// header maps, the response's small-body buffer, the output buffer and the
// value slices it lends. An idle keep-alive connection gives them back to
// scratchPool, which cuts its heap by about 9 KiB (most of what the engine
// itself holds per idle connection, measured with 2,000 idle TLS
// connections); taking and returning them costs two pool operations per
// request and no allocation once the pool is warm.
type scratch struct {
	reqHdr, respHdr http.Header
	pending, out    []byte
	values          []string
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{
		reqHdr:  make(http.Header, 16),
		respHdr: make(http.Header, 16),
		pending: make([]byte, 0, smallBody),
	}
}}

// takeScratch gives the connection a request's working set.
func (c *conn) takeScratch() {
	if c.scratch != nil {
		return
	}
	sc := scratchPool.Get().(*scratch)
	c.scratch = sc
	c.reqHdr, c.respHdr, c.resp.pending, c.out, c.values = sc.reqHdr, sc.respHdr, sc.pending, sc.out, sc.values
}

// releaseScratch returns the working set while the connection is idle.
// Nothing of the previous request may refer to it any more (see the
// handler contract in the package documentation).
func (c *conn) releaseScratch() {
	sc := c.scratch
	if sc == nil {
		return
	}
	clear(c.reqHdr)
	clear(c.respHdr)
	clear(c.values)
	sc.pending, sc.out, sc.values = c.resp.pending[:0], c.out[:0], c.values[:0]
	c.scratch = nil
	c.reqHdr, c.respHdr, c.resp.pending, c.out, c.values = nil, nil, nil, nil, nil
	scratchPool.Put(sc)
}

// h2cPrefaceHead is the part of the HTTP/2 connection preface that parses
// as an HTTP/1 head ("SM\r\n\r\n" follows it).
const h2cPrefaceHead = "PRI * HTTP/2.0\r\n\r\n"

// handOffH2C gives the connection, with the preface and whatever followed
// it unread again, to Server.H2C.
func (c *conn) handOffH2C() {
	c.hijacked = true // the deferred close is the HTTP/2 server's now
	c.srv.untrack(c)
	c.abort()
	c.cancelConn()
	_ = c.nc.SetReadDeadline(time.Time{})
	left := make([]byte, 0, len(h2cPrefaceHead)+c.w-c.r)
	left = append(append(left, h2cPrefaceHead...), c.buf[c.r:c.w]...)
	c.r, c.w = 0, 0
	c.srv.H2C(&replayConn{Conn: c.nc, r: prefixReader{p: left, r: c.nc}})
}

// replayConn is a connection whose reads return what was read ahead first.
type replayConn struct {
	net.Conn
	r prefixReader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// serve runs the keep-alive loop: read a head, serve the request inline,
// write the response, repeat.
func (c *conn) serve() {
	if tc, ok := c.nc.(*tls.Conn); ok {
		c.tlsStateV = tc.ConnectionState()
		c.tlsState = &c.tlsStateV
	}
	c.initContext()
	c.buf = readBufferPool.Get().(*[readBufferSize]byte)[:]
	c.serveLoop(true, nil)
}

// serveLoop is the keep-alive loop of serve. A connection an event loop
// hands over enters it with first false and its buffer as the loop left
// it; resume, when set, first finishes the request the loop started and
// reports whether the connection may carry another.
func (c *conn) serveLoop(first bool, resume func() bool) {
	s := c.srv
	defer func() {
		if err := recover(); err != nil && err != http.ErrAbortHandler {
			s.logger().Error("http: panic serving", "remote", c.remoteAddr, "panic", err)
		}
		if c.watchTimer != nil {
			c.watchTimer.Stop()
		}
		if !c.hijacked {
			if c.lingering {
				c.linger()
			}
			s.finish(c)
			c.releaseScratch()
		}
	}()
	if resume != nil && !resume() {
		return
	}
	for {
		if !first {
			c.releaseScratch()
			if s.inShutdown.Load() {
				return
			}
			s.setState(c, http.StateIdle)
			if s.inShutdown.Load() { // Shutdown may have missed the idle state
				return
			}
		}
		head, herr, err := c.readHead(first)
		if err != nil {
			return
		}
		if first && head == h2cPrefaceHead && s.H2C != nil && c.tlsState == nil {
			c.handOffH2C()
			return
		}
		first = false
		if herr != nil {
			c.refuse(herr)
			return
		}
		s.setState(c, http.StateActive)
		c.takeScratch()
		if !c.serveRequest(head) {
			return
		}
		if c.hijacked {
			return
		}
	}
}

// readHead reads the next request head and returns it as one string. The
// read deadline is the idle timeout until a first byte arrives, then the
// header timeout; it is left armed (the body reader clears it before its
// first read, the watcher when it starts), which saves two deadline
// changes per request.
func (c *conn) readHead(first bool) (string, *headError, error) {
	s := c.srv
	max := s.maxHeaderBytes()
	if c.r == c.w {
		c.r, c.w = 0, 0
		if c.rerr != nil {
			return "", nil, c.rerr
		}
		d := s.idleTimeout()
		if first {
			d = s.readHeaderTimeout()
		}
		if err := c.nc.SetReadDeadline(time.Now().Add(d)); err != nil {
			return "", nil, err
		}
		var n int
		var err error
		if !first && c.tlsState != nil && len(c.buf) == readBufferSize {
			n, err = c.idleRead()
		} else {
			n, err = c.nc.Read(c.buf)
		}
		c.w = n
		if n == 0 {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return "", nil, err
		}
		if end, herr := headEnd(c.buf[:n], 0); herr != nil || end > 0 {
			return c.takeHead(end, herr)
		}
		if !first {
			if err := c.nc.SetReadDeadline(time.Now().Add(s.readHeaderTimeout())); err != nil {
				return "", nil, err
			}
		}
	} else if err := c.nc.SetReadDeadline(time.Now().Add(s.readHeaderTimeout())); err != nil {
		return "", nil, err
	}
	scan := 0
	for {
		if end, herr := headEnd(c.buf[c.r:c.w], scan); herr != nil || end > 0 {
			if end > max {
				return "", errHeadTooLarge, nil
			}
			return c.takeHead(end, herr)
		}
		if c.w-c.r > max {
			return "", errHeadTooLarge, nil
		}
		scan = resumeScan(c.w - c.r)
		if c.rerr != nil {
			return "", nil, c.rerr
		}
		if err := c.fill(max + 4); err != nil {
			c.rerr = err
			if c.w == c.r {
				return "", nil, err
			}
			// A partial head then EOF: nothing to answer.
			return "", nil, err
		}
	}
}

// idleRead waits for the first byte of an idle TLS connection's next
// request without holding a read buffer: the buffer goes back to
// readBufferPool meanwhile, which saves 4 KiB per idle connection. Reading
// one byte decrypts the client's whole TLS record, so the next read (fill,
// under the header timeout) takes the rest of it from crypto/tls without a
// system call. Plain connections keep their buffer: there the second read
// would be a system call per request.
func (c *conn) idleRead() (int, error) {
	readBufferPool.Put((*[readBufferSize]byte)(c.buf))
	c.buf = nil
	n, err := c.nc.Read(c.oneByte[:])
	c.buf = readBufferPool.Get().(*[readBufferSize]byte)[:]
	if n == 0 {
		return 0, err
	}
	c.buf[0] = c.oneByte[0]
	return 1, nil
}

var readBufferPool = sync.Pool{New: func() any { return new([readBufferSize]byte) }}

func (c *conn) takeHead(end int, herr *headError) (string, *headError, error) {
	if herr != nil {
		return "", herr, nil
	}
	head := string(c.buf[c.r : c.r+end])
	c.r += end
	return head, nil, nil
}

// fill reads more bytes into the buffer, making room first by moving
// unread bytes to the front and then by growing it up to limit.
func (c *conn) fill(limit int) error {
	if c.w == len(c.buf) && c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	if c.w == len(c.buf) {
		if len(c.buf) >= limit {
			return errBufferFull
		}
		nb := make([]byte, min(2*len(c.buf), limit))
		c.w = copy(nb, c.buf[c.r:c.w])
		c.r = 0
		c.buf = nb
	}
	n, err := c.nc.Read(c.buf[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

var errBufferFull = errors.New("http1: read buffer full")

// refuse answers a head the parser rejected and ends the connection.
func (c *conn) refuse(e *headError) {
	c.srv.logger().Debug("http: refused request", "remote", c.remoteAddr, "status", e.status, "reason", e.reason)
	text := strconv.Itoa(e.status) + " " + http.StatusText(e.status)
	c.out = append(c.out[:0], "HTTP/1.1 "...)
	c.out = append(c.out, text...)
	c.out = append(c.out, "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	c.out = strconv.AppendInt(c.out, int64(len(text)), 10)
	c.out = append(c.out, "\r\n\r\n"...)
	c.out = append(c.out, text...)
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.readHeaderTimeout()))
	_, _ = c.nc.Write(c.out)
	c.lingering = true
}

// lingerTime is how long a connection the server closes keeps reading and
// discarding what the client still sends, as net/http does: closing a
// socket with unread bytes sends a reset, which can make the client drop
// the response it has not read yet.
const lingerTime = 500 * time.Millisecond

// linger half-closes the connection and reads until the client closes its
// side, lingerTime passes or a bounded number of reads is done. A
// connection that cannot be half-closed (a PROXY protocol wrapper) is
// closed at once: a client reading to the end would wait out lingerTime.
func (c *conn) linger() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	if c.nc.SetReadDeadline(time.Now().Add(lingerTime)) != nil {
		return
	}
	for range 64 {
		if _, err := c.nc.Read(c.buf); err != nil {
			return
		}
	}
}

// serveRequest serves one request whose head is head and reports whether
// the connection may carry another.
func (c *conn) serveRequest(head string) (keep bool) {
	s := c.srv
	rh := &c.head
	c.sink.reset(c.reqHdr)
	if herr := parseRequestHead(head, rh, &c.sink); herr != nil {
		c.refuse(herr)
		return false
	}
	if err := parseTarget(rh.method, rh.target, &c.url); err != nil {
		c.refuse(errTarget)
		return false
	}
	if rh.method == http.MethodConnect && c.url.Host == "" && c.url.Path == "" {
		c.refuse(errTarget)
		return false
	}
	if rh.method != http.MethodConnect && rh.target[0] != '/' && rh.target != "*" && c.url.Host == "" {
		// authority-form with another method
		c.refuse(errTarget)
		return false
	}
	host := rh.host
	if c.url.Host != "" {
		host = c.url.Host
	}
	delete(c.reqHdr, "Host")

	var trailer http.Header
	if rh.hasTrailer && rh.chunked {
		var herr *headError
		if trailer, herr = declaredTrailers(rh.trailerNames); herr != nil {
			c.refuse(herr)
			return false
		}
	}
	if rh.expectCont {
		delete(c.reqHdr, "Expect")
	}

	rc, r := c.requestContext()
	defer c.endRequestContext(rc, r)

	req := &c.req
	*req = http.Request{
		Method:     rh.method,
		URL:        &c.url,
		Proto:      rh.proto,
		ProtoMajor: rh.major,
		ProtoMinor: rh.minor,
		Header:     c.reqHdr,
		Host:       host,
		Close:      rh.close,
		Trailer:    trailer,
		RemoteAddr: c.remoteAddr,
		RequestURI: rh.target,
		TLS:        c.tlsState,
	}
	var body *bodyReader
	switch {
	case rh.chunked:
		req.ContentLength = -1
		req.TransferEncoding = chunkedTE
		body = &bodyReader{c: c, chunked: true, trailer: trailer}
	case rh.contentLength > 0:
		req.ContentLength = rh.contentLength
		body = &bodyReader{c: c, remaining: rh.contentLength}
	}
	if body != nil {
		req.Body = body
	} else {
		req.Body = http.NoBody
	}
	setRequest(r, req)

	w := &c.resp
	w.reset(c, r, rh, body)
	return c.runHandler(w, r, body, s.Handler)
}

// runHandler serves r with h and ends the response, reporting whether the
// connection may carry another request.
func (c *conn) runHandler(w *response, r *http.Request, body *bodyReader, h http.Handler) (keep bool) {
	s := c.srv
	c.armWatch(body == nil)
	c.callHandler(w, r, h)
	c.stopWatch()
	if c.hijacked {
		return false
	}
	w.finish()
	keep = !w.closeAfter && c.rerr == nil && w.werr == nil
	if body != nil && !body.close(keep) {
		keep = false
	}
	keep = keep && !s.inShutdown.Load()
	c.lingering = !keep && c.rerr == nil && w.werr == nil
	return keep
}

// endRequestContext ends a request's context, keeping it and the request
// bound to it for the next request when nothing can still be watching
// them (see requestContext).
func (c *conn) endRequestContext(rc *requestContext, r *http.Request) {
	reuse := rc.end()
	if !reusableRequest(r) {
		if reuse {
			rc.stopConn()
		}
		reuse = false
	}
	if !reuse {
		c.rctx, c.rreq = nil, nil
	}
}

// requestContext returns the context for the next request and the request
// bound to it: the previous request's when they could be kept (see
// requestContext), otherwise new ones.
func (c *conn) requestContext() (*requestContext, *http.Request) {
	if c.rctx != nil {
		c.rctx.rearm()
		return c.rctx, c.rreq
	}
	c.rctx = newRequestContext(c.ctx)
	c.rreq = c.req.WithContext(c.rctx)
	return c.rctx, c.rreq
}

func (c *conn) callHandler(w *response, r *http.Request, h http.Handler) {
	defer func() {
		if err := recover(); err != nil {
			if err != http.ErrAbortHandler {
				c.srv.logger().Error("http: panic serving", "remote", c.remoteAddr, "panic", err)
			}
			// Like net/http: no response can be trusted now.
			w.closeAfter = true
			w.aborted = true
		}
	}()
	h.ServeHTTP(w, r)
}

// declaredTrailers builds Request.Trailer from the Trailer field: the
// declared names with nil values, filled when the body ends. Fields that
// frame or route a message may not be trailers.
func declaredTrailers(v string) (http.Header, *headError) {
	t := http.Header{}
	start := 0
	for i := 0; i <= len(v); i++ {
		if i < len(v) && v[i] != ',' {
			continue
		}
		name := trimOWS(v[start:i])
		start = i + 1
		if name == "" {
			continue
		}
		if !isToken(name) {
			return nil, badRequest("invalid Trailer field")
		}
		key := http.CanonicalHeaderKey(name)
		switch key {
		case "Transfer-Encoding", "Trailer", "Content-Length":
			return nil, badRequest("forbidden trailer name " + key)
		}
		t[key] = nil
	}
	return t, nil
}

// armWatch starts the disconnect watch of a request.
//
// net/http learns that a client went away through a read it starts on a
// background goroutine for every request, and stops before the next: a
// goroutine, a channel handoff and deadline changes per request, whether
// or not the handler is quick. Here a per-connection timer is re-armed
// instead, and only a handler still running after watchDelay (a slow
// backend, a long poll, a stream) gets a reader, on the timer's own
// goroutine, and only once the request body has been read to its end, as
// until then the handler's own reads see a disconnect. BenchmarkWatch
// measures both on the 2-core machine: arming and stopping the timer
// takes about 0.12 µs and no allocation; starting a reader and
// interrupting it takes about 0.7-0.8 µs and three allocations. So every
// request pays the first, and the second is paid once, only by requests
// that last at least watchDelay, for which it is under 0.02% of their
// time; a disconnect is noticed at most watchDelay late. Bytes the reader
// receives (a pipelined request) are kept for the next request, and the
// reader stops at the first of them, as a client still sending is not
// gone.
func (c *conn) armWatch(bodyDone bool) {
	c.userDeadline.Store(false)
	c.watchMu.Lock()
	c.bodyDone = bodyDone
	c.watchState = watchArmed
	c.watchMu.Unlock()
	if c.watchTimer == nil {
		c.watchTimer = time.AfterFunc(watchDelay, c.watchFired)
	} else {
		c.watchTimer.Reset(watchDelay)
	}
}

func (c *conn) watchFired() {
	c.watchMu.Lock()
	if c.watchState != watchArmed {
		c.watchMu.Unlock()
		return
	}
	if !c.bodyDone {
		c.watchState = watchPending
		c.watchMu.Unlock()
		return
	}
	c.watchState = watchRunning
	c.watchDone = make(chan struct{})
	c.watchMu.Unlock()
	c.watch()
}

// bodyEOF is called when the request body has been read to its end.
func (c *conn) bodyEOF() {
	c.watchMu.Lock()
	c.bodyDone = true
	start := c.watchState == watchPending
	if start {
		c.watchState = watchRunning
		c.watchDone = make(chan struct{})
	}
	c.watchMu.Unlock()
	if start {
		go c.watch()
	}
}

// testHookWatch, when set by a test, is called as a watch starts.
var testHookWatch func()

// watch reads from the client while the handler runs; see armWatch.
func (c *conn) watch() {
	defer close(c.watchDone)
	if testHookWatch != nil {
		testHookWatch()
	}
	for range 2 {
		if c.w == len(c.buf) {
			if c.r == 0 {
				return
			}
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		if n > 0 {
			return
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if c.interrupting.Load() || c.userDeadline.Load() {
				return
			}
			// The deadline left from reading the head: the body is read,
			// so nothing else bounds this request's reads any more.
			if c.nc.SetReadDeadline(time.Time{}) != nil {
				return
			}
			continue
		}
		c.rerr = err
		c.rctx.cancel(context.Canceled)
		return
	}
}

// stopWatch ends the watch when the handler returns (or hijacks) and waits
// for a running reader to give the connection back.
func (c *conn) stopWatch() {
	c.watchTimer.Stop()
	c.watchMu.Lock()
	st := c.watchState
	c.watchState = watchOff
	c.watchMu.Unlock()
	if st == watchRunning {
		c.interrupting.Store(true)
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
		<-c.watchDone
		c.interrupting.Store(false)
	}
}

// clearHeadDeadline removes the deadline readHead left armed, before the
// handler reads the body, unless the handler set one itself.
func (c *conn) clearHeadDeadline() error {
	if c.userDeadline.Load() {
		return nil
	}
	return c.nc.SetReadDeadline(time.Time{})
}
