package http1

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/sys/unix"
)

// HTTP/2 on the event loops.
//
// net/http's HTTP/2 server runs a goroutine per connection reading frames,
// another per stream, hands every frame and write between them over
// channels and writes a response's HEADERS and DATA as separate frames:
// measured in make bench, the smallest proxy on it spends about 1.25x the
// two nginx tiers' CPU per request however little it does
// (bench/profile-notes.md), so no proxy built on it meets the h2 targets.
// The same exchange on a loop, frames read and written with x/net/http2's
// Framer and hpack, costs a quarter of that. So, as for HTTP/1.1, a loop
// serves the connection's frames itself: it reads and answers the
// connection-level frames, decodes each request's header block, and sends
// a bodiless request the FastPath plans to a backend connection of its
// own, answering with HEADERS and DATA in one TLS record. Every other
// stream (a body, a route with filters, a response the loop does not
// finish) runs the ordinary Handler on a goroutine, whose response the
// loop frames (h2Writer), so routing and the backend client stay written
// once.
//
// Unlike an HTTP/1.1 connection, an HTTP/2 connection cannot leave the
// loop (its header compression state lives here), so the loop enforces
// what net/http's server does against abuse:
//   - header blocks (HEADERS and CONTINUATION frames) are assembled only
//     up to MaxHeaderBytes, and their decoded list is bounded the same way
//     (CONTINUATION floods, CVE-2024-27316);
//   - at most HTTP2MaxConcurrentStreams streams are open and at most that
//     many handler goroutines run; a client that resets streams faster
//     than they finish (rapid reset, CVE-2023-44487) or keeps more handlers
//     running than it has streams is sent GOAWAY and closed;
//   - a client that does not read what it makes the server write (PING and
//     SETTINGS floods) is closed once h2MaxBacklog bytes wait for it, and
//     one that stops reading responses after WriteByteTimeout;
//   - receive windows bound what a request body may buffer;
//   - empty DATA frames and other frames that cost work without progress
//     are counted and bounded.

const (
	// h2MaxBacklog is the most output a connection queues for a client
	// that does not read it; beyond it the loop stops reading the
	// client's frames, and beyond twice it closes the connection.
	h2MaxBacklog = 256 << 10
	// h2MaxEmptyFrames bounds the frames that carry nothing a client may
	// send (empty DATA without END_STREAM, WINDOW_UPDATE and PRIORITY
	// for streams that are closed) per stream it opens, plus a margin.
	h2MaxEmptyFrames = 100
	// h2HandlerChunk is what a handler's writes gather before they are
	// posted to the loop as one DATA frame.
	h2HandlerChunk = 16 << 10
)

// h2conn is an HTTP/2 connection served by a loop. Everything but its
// streams' handler goroutines runs on the loop's thread.
type h2conn struct {
	c     *conn
	l     *loop
	lc    *loopConn
	tc    *tls.Conn
	fp    FastPath
	state any
	cfg   H2Config

	// in holds decrypted bytes not yet parsed into frames.
	in  []byte
	src frameSource
	fr  *http2.Framer
	// wout collects frames to send; flush encrypts them at once.
	wout appendWriter
	enc  *hpack.Encoder
	hbuf appendWriter
	// fw answers fast streams (reused: Complete writes synchronously).
	fw h2FastWriter
	// head is the buffer a fast stream's request head is planned into.
	head []byte

	preface, settings bool
	streams           map[uint32]*h2stream
	lastID            uint32
	handlers          int
	goaway            bool
	closing           bool
	closed            bool
	dirty             bool
	readOff, wantOut  bool
	// blocked says a stream stopped for the backlog, not a window.
	blocked bool

	sendWin      int64
	peerInitWin  int64
	peerMaxFrame uint32
	// recvWin is the connection window the client may still fill;
	// recvCredit is what was consumed and not given back yet.
	recvWin    int64
	recvCredit int64

	empty, served int
	deadline      time.Time
	idleSince     time.Time
	lastProgress  time.Time
	// lastRead is when the client last sent bytes; pingSent when a PING
	// went out to see whether it is still there.
	lastRead, pingSent time.Time
	lower              map[string]string
	canon              map[string]string
}

// h2stream is one request on an h2conn.
type h2stream struct {
	h   *h2conn
	id  uint32
	req *http.Request
	// cancel ends the request's context.
	cancel context.CancelFunc

	// The fast exchange in flight, if any.
	be       *loopBackend
	endpoint string
	token    any
	start    time.Time

	// A handler goroutine's stream: its body and writer.
	body   *h2body
	gw     *h2Writer
	inGoro bool

	sendWin int64
	recvWin int64
	// recvCredit is body the handler read whose window is not given back
	// yet.
	recvCredit int64
	// pend is response DATA waiting for window; pendEnd ends the stream
	// after it, with trailers when set.
	pend     []byte
	pendEnd  bool
	trailers http.Header
	// waiter is told when pend is written out (or the stream is gone).
	waiter chan error

	remoteDone, localDone bool
	gone                  bool
	declaredLen           int64
	received              int64
}

// frameSource hands the Framer the frames the loop cut from h2conn.in.
type frameSource struct{ b []byte }

func (f *frameSource) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

// toLoopH2 moves a handshaken h2 connection to an event loop, or reports
// false, changing nothing, when it cannot.
func (s *Server) toLoopH2(c *conn, lc *loopConn, tc *tls.Conn) bool {
	l := s.adoptSocket(c, lc, tc)
	if l == nil {
		return false
	}
	// What ConnContext keeps may close the connection from a handler's
	// goroutine (the reset guard does): only the loop may close it.
	c.initContextWith(loopClosedConn{Conn: tc, c: c})
	h := &h2conn{
		c: c, l: l, lc: lc, tc: tc, fp: s.FastPath, cfg: s.H2.withDefaults(),
		streams:      map[uint32]*h2stream{},
		peerInitWin:  65535,
		sendWin:      65535,
		peerMaxFrame: 16 << 10,
	}
	h.recvWin = int64(h.cfg.ConnWindow)
	h.fr = http2.NewFramer(&h.wout, &h.src)
	h.fr.SetMaxReadFrameSize(h.cfg.MaxReadFrameSize)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.fr.MaxHeaderListSize = uint32(s.maxHeaderBytes())
	h.fr.SetReuseFrames()
	h.enc = hpack.NewEncoder(&h.hbuf)
	s.mu.Lock()
	c.h2 = h
	s.mu.Unlock()
	l.post(loopOp{c: c})
	return true
}

func (l *loop) h2Adopt(h *h2conn) {
	fd := h.lc.fd
	h.state = l.stateFor(h.fp)
	l.setSlot(fd, loopSlot{h: h})
	l.h2conns[h] = struct{}{}
	if err := l.addFD(fd); err != nil {
		l.h2Close(h)
		return
	}
	now := time.Now()
	h.c.srv.setState(h.c, http.StateIdle)
	h.deadline = now.Add(h.c.srv.readHeaderTimeout())
	h.lastProgress, h.lastRead = now, now
	_ = h.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h.cfg.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: h.cfg.MaxReadFrameSize},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(h.cfg.StreamWindow)},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(h.c.srv.maxHeaderBytes())},
	)
	if h.cfg.ConnWindow > 65535 {
		_ = h.fr.WriteWindowUpdate(0, uint32(h.cfg.ConnWindow-65535))
		h.recvWin = int64(h.cfg.ConnWindow)
	} else {
		h.recvWin = 65535
	}
	l.h2MarkDirty(h)
	l.h2Read(h)
}

func (l *loop) h2MarkDirty(h *h2conn) {
	if !h.dirty {
		h.dirty = true
		l.dirty = append(l.dirty, h)
	}
}

// h2FlushDirty sends what the batch's events queued, per connection in
// one write.
func (l *loop) h2FlushDirty() {
	for i, h := range l.dirty {
		l.dirty[i] = nil
		h.dirty = false
		if !h.closed {
			l.h2Flush(h)
		}
	}
	l.dirty = l.dirty[:0]
}

func (l *loop) h2Flush(h *h2conn) {
	if len(h.wout.b) > 0 {
		if _, err := h.tc.Write(h.wout.b); err != nil {
			l.h2Close(h)
			return
		}
		h.wout.b = h.wout.b[:0]
		if cap(h.wout.b) > 64<<10 {
			h.wout.b = nil
		}
	}
	if len(h.lc.pending) > 0 {
		l.h2SetOut(h, true)
	} else {
		h.lastProgress = time.Now()
		if h.blocked {
			// All went out: the streams held back for the backlog go on,
			// at the next batch's end.
			h.blocked = false
			for _, s := range h.streams {
				if len(s.pend) > 0 {
					l.h2Pump(s)
				}
			}
		}
	}
	if h.closing && len(h.lc.pending) == 0 {
		l.h2Close(h)
	}
}

func (h *h2conn) backlog() int { return len(h.lc.pending) + len(h.wout.b) }

func (l *loop) h2SetOut(h *h2conn, on bool) {
	if h.wantOut == on {
		return
	}
	h.wantOut = on
	l.h2Mod(h)
}

func (l *loop) h2SetRead(h *h2conn, on bool) {
	if h.readOff == !on {
		return
	}
	h.readOff = !on
	l.h2Mod(h)
}

func (l *loop) h2Mod(h *h2conn) {
	l.modFD(h.lc.fd, !h.readOff, h.wantOut)
}

func (l *loop) h2Event(h *h2conn, events uint32) {
	if events&epollOut != 0 {
		done, err := h.lc.flush()
		if err != nil {
			l.h2Close(h)
			return
		}
		h.lastProgress = time.Now()
		if done {
			l.h2SetOut(h, false)
			if h.closing {
				l.h2Close(h)
				return
			}
			// Streams waiting for the backlog to drain go on.
			for _, s := range h.streams {
				if len(s.pend) > 0 || s.pendEnd {
					l.h2Pump(s)
				}
			}
			if h.readOff && !h.closing {
				l.h2SetRead(h, true)
				l.h2Frames(h)
			}
			l.h2MarkDirty(h)
		}
	}
	if events&(epollIn|epollHup) == 0 || h.readOff && events&epollHup == 0 {
		return
	}
	n, err := rawRead(h.lc.fd, l.rbuf)
	if err != nil && (isAgain(err)) {
		return
	}
	if n <= 0 {
		l.h2Close(h)
		return
	}
	h.lc.in = l.rbuf[:n]
	h.lastRead, h.pingSent = time.Now(), time.Time{}
	l.h2Read(h)
}

// h2Read decrypts what was read and handles the whole frames it holds.
func (l *loop) h2Read(h *h2conn) {
	for !h.closed {
		if cap(h.in)-len(h.in) < 16<<10 {
			h.in = append(h.in, make([]byte, 16<<10)...)[:len(h.in)]
		}
		n, err := h.tc.Read(h.in[len(h.in):cap(h.in)])
		h.in = h.in[:len(h.in)+n]
		if err != nil {
			if err != errWouldBlock {
				l.h2Frames(h)
				l.h2Close(h)
				return
			}
			break
		}
	}
	if len(h.lc.in) > 0 {
		h.lc.rest = append(h.lc.rest, h.lc.in...)
		h.lc.in = nil
	}
	l.h2Frames(h)
}

// h2Frames handles every whole frame in h.in.
func (l *loop) h2Frames(h *h2conn) {
	off := 0
	defer func() {
		if h.closed {
			return
		}
		h.in = h.in[:copy(h.in, h.in[off:])]
		if cap(h.in) > 64<<10 && len(h.in) < 16<<10 {
			h.in = append([]byte(nil), h.in...)
		}
		l.h2MarkDirty(h)
	}()
	if !h.preface {
		if len(h.in) < len(http2.ClientPreface) {
			if !strings.HasPrefix(http2.ClientPreface, string(h.in)) {
				l.h2Close(h)
			}
			return
		}
		if string(h.in[:len(http2.ClientPreface)]) != http2.ClientPreface {
			l.h2Close(h)
			return
		}
		off = len(http2.ClientPreface)
		h.preface = true
	}
	maxBlock := h.c.srv.maxHeaderBytes() + 16<<10
	for !h.closed && !h.closing {
		if h.backlog() > h2MaxBacklog {
			// The client does not read: read no more from it until it
			// does (h2Event turns reading back on).
			l.h2SetRead(h, false)
			return
		}
		rest := h.in[off:]
		if len(rest) < 9 {
			return
		}
		size := 9 + int(uint32(rest[0])<<16|uint32(rest[1])<<8|uint32(rest[2]))
		if size-9 > int(h.cfg.MaxReadFrameSize) {
			l.h2GoAway(h, http2.ErrCodeFrameSize, "frame too large")
			return
		}
		if len(rest) < size {
			return
		}
		// A header block is handed to the Framer whole, HEADERS and
		// CONTINUATION frames together, and only up to maxBlock bytes.
		if http2.FrameType(rest[3]) == http2.FrameHeaders && rest[4]&byte(http2.FlagHeadersEndHeaders) == 0 {
			end := size
			for {
				if end > maxBlock {
					l.h2GoAway(h, http2.ErrCodeEnhanceYourCalm, "header block too large")
					return
				}
				if len(rest) < end+9 {
					return
				}
				next := 9 + int(uint32(rest[end])<<16|uint32(rest[end+1])<<8|uint32(rest[end+2]))
				if len(rest) < end+next {
					return
				}
				ends := http2.FrameType(rest[end+3]) != http2.FrameContinuation || rest[end+4]&byte(http2.FlagContinuationEndHeaders) != 0
				end += next
				if ends {
					break
				}
			}
			size = end
		}
		h.src.b = rest[:size]
		off += size
		f, err := h.fr.ReadFrame()
		stopped := len(h.src.b) > 0
		// An empty slice of h.in would keep its array alive once the
		// sweep lets the buffer go.
		h.src.b = nil
		if err != nil {
			l.h2ReadError(h, err)
			if stopped {
				// The Framer stopped inside a block it refused.
				l.h2GoAway(h, http2.ErrCodeProtocol, "malformed header block")
			}
			continue
		}
		if !h.settings {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				l.h2GoAway(h, http2.ErrCodeProtocol, "first frame is not SETTINGS")
				return
			}
			h.settings = true
		}
		l.h2Frame(h, f)
	}
}

func (l *loop) h2ReadError(h *h2conn, err error) {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &se):
		l.h2Reset(h, se.StreamID, se.Code)
	case errors.As(err, &ce):
		l.h2GoAway(h, http2.ErrCode(ce), "")
	default:
		l.h2GoAway(h, http2.ErrCodeProtocol, err.Error())
	}
}

func (l *loop) h2Frame(h *h2conn, f http2.Frame) {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		l.h2Headers(h, f)
	case *http2.DataFrame:
		l.h2Data(h, f)
	case *http2.SettingsFrame:
		if f.IsAck() {
			return
		}
		if err := f.ForeachSetting(func(s http2.Setting) error { return l.h2Setting(h, s) }); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				l.h2GoAway(h, http2.ErrCode(ce), "")
			} else {
				l.h2GoAway(h, http2.ErrCodeProtocol, err.Error())
			}
			return
		}
		_ = h.fr.WriteSettingsAck()
	case *http2.PingFrame:
		if !f.IsAck() {
			_ = h.fr.WritePing(true, f.Data)
		}
	case *http2.WindowUpdateFrame:
		l.h2WindowUpdate(h, f)
	case *http2.RSTStreamFrame:
		if f.StreamID > h.lastID {
			l.h2GoAway(h, http2.ErrCodeProtocol, "RST_STREAM on an idle stream")
			return
		}
		s := h.streams[f.StreamID]
		if s == nil {
			l.h2Empty(h)
			return
		}
		// A stream the client cancels counts against its connection's
		// reset limit (rapid reset), through FastPath.Abandon or the
		// handler's outcome, as on net/http's server.
		l.h2EndStream(s, errors.New("http2: stream reset by the client"))
	case *http2.PriorityFrame:
		if f.StreamID == f.StreamDep {
			l.h2Reset(h, f.StreamID, http2.ErrCodeProtocol)
			return
		}
		if h.streams[f.StreamID] == nil {
			l.h2Empty(h)
		}
	case *http2.GoAwayFrame:
		h.goaway = true
		if len(h.streams) == 0 {
			l.h2Close(h)
		}
	case *http2.PushPromiseFrame:
		l.h2GoAway(h, http2.ErrCodeProtocol, "PUSH_PROMISE from a client")
	case *http2.ContinuationFrame:
		l.h2GoAway(h, http2.ErrCodeProtocol, "unexpected CONTINUATION")
	default:
		// Unknown frame types are ignored (RFC 9113 section 4.1).
	}
}

// h2Empty counts a frame that does no work; a client sending many is
// closed.
func (l *loop) h2Empty(h *h2conn) {
	h.empty++
	if h.empty > h2MaxEmptyFrames+h.served {
		l.h2GoAway(h, http2.ErrCodeEnhanceYourCalm, "too many frames without effect")
	}
}

func (l *loop) h2Setting(h *h2conn, s http2.Setting) error {
	if err := s.Valid(); err != nil {
		return err
	}
	switch s.ID {
	case http2.SettingHeaderTableSize:
		h.enc.SetMaxDynamicTableSize(min(s.Val, 4096))
	case http2.SettingInitialWindowSize:
		delta := int64(s.Val) - h.peerInitWin
		h.peerInitWin = int64(s.Val)
		for _, st := range h.streams {
			st.sendWin += delta
			if st.sendWin > 1<<31-1 {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
		}
		if delta > 0 {
			for _, st := range h.streams {
				l.h2Pump(st)
			}
		}
	case http2.SettingMaxFrameSize:
		h.peerMaxFrame = s.Val
	}
	return nil
}

func (l *loop) h2WindowUpdate(h *h2conn, f *http2.WindowUpdateFrame) {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		h.sendWin += inc
		if h.sendWin > 1<<31-1 {
			l.h2GoAway(h, http2.ErrCodeFlowControl, "window overflow")
			return
		}
		for _, s := range h.streams {
			if len(s.pend) > 0 {
				l.h2Pump(s)
			}
		}
		return
	}
	if f.StreamID > h.lastID {
		l.h2GoAway(h, http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream")
		return
	}
	s := h.streams[f.StreamID]
	if s == nil {
		l.h2Empty(h)
		return
	}
	s.sendWin += inc
	if s.sendWin > 1<<31-1 {
		l.h2Reset(h, s.id, http2.ErrCodeFlowControl)
		return
	}
	l.h2Pump(s)
}

// h2GoAway ends the connection with an error: GOAWAY, then close once it
// is sent.
func (l *loop) h2GoAway(h *h2conn, code http2.ErrCode, why string) {
	if h.closing || h.closed {
		return
	}
	if code != http2.ErrCodeNo {
		h.c.srv.logger().Debug("http2: closing a connection", "remote", h.c.remoteAddr, "code", code, "reason", why)
	}
	_ = h.fr.WriteGoAway(h.lastID, code, nil)
	h.closing = true
	for _, s := range h.streams {
		l.h2EndStream(s, errors.New("http2: connection closed"))
	}
	l.h2SetRead(h, false)
	l.h2MarkDirty(h)
}

// h2Reset ends one stream with RST_STREAM.
func (l *loop) h2Reset(h *h2conn, id uint32, code http2.ErrCode) {
	_ = h.fr.WriteRSTStream(id, code)
	if s := h.streams[id]; s != nil {
		s.localDone = true
		l.h2EndStream(s, fmt.Errorf("http2: stream reset (%v)", code))
	}
	l.h2MarkDirty(h)
}

// h2Headers opens a stream (or ends one's body with trailers).
func (l *loop) h2Headers(h *h2conn, f *http2.MetaHeadersFrame) {
	id := f.StreamID
	if id%2 == 0 {
		l.h2GoAway(h, http2.ErrCodeProtocol, "even stream id")
		return
	}
	if s := h.streams[id]; s != nil {
		l.h2Trailers(s, f)
		return
	}
	if id <= h.lastID {
		l.h2GoAway(h, http2.ErrCodeStreamClosed, "HEADERS on a closed stream")
		return
	}
	h.lastID = id
	if h.goaway || h.c.srv.inShutdown.Load() {
		if !h.goaway {
			h.goaway = true
			_ = h.fr.WriteGoAway(id-2, http2.ErrCodeNo, nil)
		}
		l.h2Reset(h, id, http2.ErrCodeRefusedStream)
		return
	}
	if uint32(len(h.streams)) >= h.cfg.MaxConcurrentStreams {
		l.h2Reset(h, id, http2.ErrCodeRefusedStream)
		return
	}
	if h.handlers >= 2*int(h.cfg.MaxConcurrentStreams) {
		// Handlers of reset streams still running: the client resets
		// faster than they end.
		l.h2GoAway(h, http2.ErrCodeEnhanceYourCalm, "too many handlers")
		return
	}
	s := &h2stream{h: h, id: id, sendWin: h.peerInitWin, recvWin: int64(h.cfg.StreamWindow), start: time.Now()}
	h.streams[id] = s
	h.idleSince = time.Time{}
	if len(h.streams) == 1 {
		h.c.srv.setState(h.c, http.StateActive)
	}
	s.remoteDone = f.StreamEnded()
	if f.Truncated {
		l.h2Answer(s, http.StatusRequestHeaderFieldsTooLarge)
		return
	}
	r, err := h.newRequest(s, f)
	if err != nil {
		l.h2Reset(h, id, http2.ErrCodeProtocol)
		return
	}
	s.req = r
	if s.remoteDone && h.fp != nil && l.h2Plan(s) {
		return
	}
	l.h2Go(s, nil)
}

// h2Plan starts a fast exchange for s on one of the loop's backend
// connections, or reports false.
func (l *loop) h2Plan(s *h2stream) bool {
	h := s.h
	out, endpoint, token, ok := h.fp.Plan(h.state, h.head[:0], s.req)
	if !ok {
		return false
	}
	be := l.idleBackend(endpoint)
	if be == nil {
		// A client that cancels streams as fast as it opens them would
		// make the loop dial for each: new connections come from its dial
		// budget, and without one the handler waits for a token.
		if !h.fp.TakeDial(s.req) {
			h.fp.Retract(token)
			return false
		}
		if be = l.dial(endpoint); be == nil {
			h.fp.RefundDial(s.req)
			h.fp.Retract(token)
			return false
		}
		be.budgeted = true
	}
	s.token, s.endpoint = token, endpoint
	s.be, be.s = be, s
	be.out = out
	be.buf = l.takeBuf()
	// The head's buffer serves the next stream unless this one still
	// has it to send.
	h.head = nil
	if !be.connecting {
		l.sendBackend(be)
		if len(be.out) == 0 {
			h.head = out
		}
	}
	return true
}

// h2BackendEvent reads a fast exchange's response.
func (l *loop) h2BackendEvent(be *loopBackend, events uint32) {
	s := be.s
	switch l.backendIO(be, events) {
	case backendNothing:
		return
	case backendCut:
		l.h2Continue(s)
		return
	}
	h := s.h
	h.fw.reset(h)
	switch h.fp.Complete(h.state, &h.fw, s.req, s.token, be.buf, s.start) {
	case FastNeedMore:
		return
	case FastContinue:
		l.h2Continue(s)
		return
	case FastDone:
		l.h2Refund(s, be)
		s.be, be.s = nil, nil
		l.release(be)
	case FastDoneClose:
		l.h2Refund(s, be)
		s.be, be.s = nil, nil
		l.closeBackend(be)
	}
	l.served.Add(1)
	h.served++
	l.h2Respond(s, h.fw.status, h.fw.hdr, h.fw.body, true)
	s.token = nil
}

// h2Refund gives back the dial token be was opened with, its exchange
// having ended without the client going away.
func (l *loop) h2Refund(s *h2stream, be *loopBackend) {
	if be.budgeted {
		be.budgeted = false
		s.h.fp.RefundDial(s.req)
	}
}

// h2Continue hands a fast exchange to a goroutine, which finishes it under
// the backend client's bounds; the stream stays on the loop.
func (l *loop) h2Continue(s *h2stream) {
	be := s.be
	l.h2Refund(s, be)
	delete(l.backends, be)
	l.unregister(be.fd)
	backend, berr := fileConn(be.fd)
	buffered := append([]byte(nil), be.buf...)
	l.putBuf(be.buf)
	be.buf, be.s, s.be = nil, nil, nil
	h := s.h
	fp, token, endpoint, start := h.fp, s.token, s.endpoint, s.start
	s.token = nil
	l.continued.Add(1)
	l.h2Go(s, func(w http.ResponseWriter, r *http.Request) {
		if berr != nil {
			fp.Abandon(r, token, start)
			return
		}
		fp.Continue(w, r, token, endpoint, backend, buffered, start)
	})
}

// h2BackendFailed sends a fast stream whose backend connection failed
// before any of the response came to the handler, which forwards it again.
func (l *loop) h2BackendFailed(s *h2stream, budgeted bool) {
	if budgeted {
		// A failed dial is not the client's waste.
		s.h.fp.RefundDial(s.req)
	}
	s.h.fp.Retract(s.token)
	s.token = nil
	l.h2Go(s, nil)
}

// h2Go runs the stream's handler (or serve, when set) on a goroutine.
func (l *loop) h2Go(s *h2stream, serve http.HandlerFunc) {
	h := s.h
	if serve == nil {
		serve = h.c.srv.Handler.ServeHTTP
		l.handedOff.Add(1)
	}
	s.inGoro = true
	h.handlers++
	s.gw = &h2Writer{s: s, l: l, hdr: http.Header{}, done: make(chan error, 1), head: s.req.Method == http.MethodHead}
	r := s.req
	gw := s.gw
	srv := h.c.srv
	go func() {
		defer func() {
			if err := recover(); err != nil {
				if err != http.ErrAbortHandler {
					srv.logger().Error("http: panic serving", "remote", r.RemoteAddr, "panic", err, "stack", string(debug.Stack()))
				}
				gw.abort()
				return
			}
			gw.finish()
		}()
		serve(gw, r)
	}()
}

// h2Respond queues a response: HEADERS, then body as DATA as the windows
// allow; end ends the stream after it.
func (l *loop) h2Respond(s *h2stream, status int, hdr http.Header, body []byte, end bool) {
	h := s.h
	if s.gone || h.closing {
		return
	}
	endHeaders := end && len(body) == 0 && s.trailers == nil
	l.h2WriteHeaders(s, status, hdr, endHeaders)
	if endHeaders {
		l.h2LocalDone(s)
		return
	}
	s.pend = body
	s.pendEnd = end
	l.h2Pump(s)
	if len(s.pend) > 0 {
		// Held back by the windows or the backlog: body is reused.
		s.pend = append([]byte(nil), s.pend...)
	}
}

// h2WriteHeaders encodes and queues a HEADERS frame (and CONTINUATIONs).
func (l *loop) h2WriteHeaders(s *h2stream, status int, hdr http.Header, end bool) {
	h := s.h
	h.hbuf.b = h.hbuf.b[:0]
	if status != 0 {
		_ = h.enc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(status)})
	}
	for k, vv := range hdr {
		name, ok := h.lowerName(k)
		if !ok {
			continue
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			_ = h.enc.WriteField(hpack.HeaderField{Name: name, Value: v})
		}
	}
	block := h.hbuf.b
	first := true
	for first || len(block) > 0 {
		chunk := block
		if len(chunk) > int(h.peerMaxFrame) {
			chunk = chunk[:h.peerMaxFrame]
		}
		block = block[len(chunk):]
		if first {
			_ = h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: chunk, EndStream: end, EndHeaders: len(block) == 0})
			first = false
		} else {
			_ = h.fr.WriteContinuation(s.id, len(block) == 0, chunk)
		}
	}
	l.h2MarkDirty(h)
}

// h2Pump writes as much of s.pend as the windows and the backlog allow.
func (l *loop) h2Pump(s *h2stream) {
	h := s.h
	if s.gone || h.closing {
		return
	}
	for len(s.pend) > 0 {
		n := int64(len(s.pend))
		n = min(n, s.sendWin, h.sendWin, int64(h.peerMaxFrame))
		if n <= 0 {
			return
		}
		if h.backlog() > h2MaxBacklog {
			h.blocked = true
			return
		}
		last := int(n) == len(s.pend) && s.pendEnd && s.trailers == nil
		_ = h.fr.WriteData(s.id, last, s.pend[:n])
		s.pend = s.pend[n:]
		s.sendWin -= n
		h.sendWin -= n
		l.h2MarkDirty(h)
		if last {
			s.pend = nil
			l.h2LocalDone(s)
			return
		}
	}
	s.pend = nil
	if s.pendEnd && !s.localDone {
		if s.trailers != nil {
			l.h2WriteHeaders(s, 0, s.trailers, true)
		} else {
			_ = h.fr.WriteData(s.id, true, nil)
			l.h2MarkDirty(h)
		}
		l.h2LocalDone(s)
		return
	}
	l.h2Wake(s, nil)
}

// h2Wake tells a handler goroutine waiting for its writes to go out.
func (l *loop) h2Wake(s *h2stream, err error) {
	if w := s.waiter; w != nil {
		s.waiter = nil
		w <- err
	}
}

// h2LocalDone marks the response sent in full.
func (l *loop) h2LocalDone(s *h2stream) {
	s.localDone = true
	l.h2Wake(s, nil)
	if s.remoteDone || !s.inGoro {
		if !s.remoteDone {
			// The response ended before the request's body: the rest is
			// not wanted (RFC 9113 section 8.1).
			_ = s.h.fr.WriteRSTStream(s.id, http2.ErrCodeNo)
		}
		l.h2Forget(s)
	}
}

// h2EndStream ends a stream that will not complete: the client reset it or
// the connection is going.
func (l *loop) h2EndStream(s *h2stream, err error) {
	h := s.h
	if s.gone {
		return
	}
	s.gone = true
	if be := s.be; be != nil {
		s.be, be.s = nil, nil
		h.fp.Abandon(s.req, s.token, s.start)
		l.closeBackend(be)
	}
	if s.body != nil {
		s.body.fail(err)
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.pend = nil
	l.h2Wake(s, err)
	l.h2Forget(s)
}

// h2Forget removes a stream from its connection.
func (l *loop) h2Forget(s *h2stream) {
	h := s.h
	if h.streams[s.id] != s {
		return
	}
	delete(h.streams, s.id)
	if !s.inGoro && s.cancel != nil {
		s.cancel()
	}
	if len(h.streams) == 0 {
		h.idleSince = time.Now()
		h.deadline = h.idleSince.Add(h.c.srv.idleTimeout())
		h.c.srv.setState(h.c, http.StateIdle)
		if h.goaway && h.handlers == 0 {
			l.h2GoAway(h, http2.ErrCodeNo, "")
		}
	}
}

// h2Answer answers a stream with an empty response of its own.
func (l *loop) h2Answer(s *h2stream, status int) {
	l.h2Respond(s, status, http.Header{"Content-Length": {"0"}}, nil, true)
}

func (l *loop) h2Data(h *h2conn, f *http2.DataFrame) {
	n := int64(f.Length)
	h.recvWin -= n
	if h.recvWin < 0 {
		l.h2GoAway(h, http2.ErrCodeFlowControl, "connection window exceeded")
		return
	}
	data := f.Data()
	s := h.streams[f.StreamID]
	if s == nil {
		if f.StreamID > h.lastID {
			l.h2GoAway(h, http2.ErrCodeProtocol, "DATA on an idle stream")
			return
		}
		l.h2Credit(h, nil, n)
		l.h2Reset(h, f.StreamID, http2.ErrCodeStreamClosed)
		return
	}
	if s.remoteDone {
		l.h2Credit(h, nil, n)
		l.h2Reset(h, s.id, http2.ErrCodeStreamClosed)
		return
	}
	s.recvWin -= n
	if s.recvWin < 0 {
		l.h2Credit(h, nil, n)
		l.h2Reset(h, s.id, http2.ErrCodeFlowControl)
		return
	}
	if len(data) == 0 && !f.StreamEnded() {
		l.h2Empty(h)
	}
	// Padding is returned at once; the data when the handler reads it.
	if pad := n - int64(len(data)); pad > 0 {
		l.h2Credit(h, s, pad)
	}
	s.received += int64(len(data))
	if s.declaredLen >= 0 && s.received > s.declaredLen {
		l.h2Credit(h, nil, int64(len(data)))
		l.h2Reset(h, s.id, http2.ErrCodeProtocol)
		return
	}
	if s.body == nil || s.gone {
		l.h2Credit(h, nil, int64(len(data)))
	} else if !s.body.put(data) {
		// The handler closed the body: what comes is not wanted.
		l.h2Credit(h, s, int64(len(data)))
	}
	if f.StreamEnded() {
		l.h2RemoteDone(s, nil)
	}
}

// h2RemoteDone ends a request's body.
func (l *loop) h2RemoteDone(s *h2stream, trailers http.Header) {
	s.remoteDone = true
	if s.declaredLen >= 0 && s.received != s.declaredLen {
		l.h2Reset(s.h, s.id, http2.ErrCodeProtocol)
		return
	}
	if s.body != nil {
		s.body.end(trailers)
	}
	if s.localDone {
		l.h2Forget(s)
	}
}

func (l *loop) h2Trailers(s *h2stream, f *http2.MetaHeadersFrame) {
	if s.remoteDone || !f.StreamEnded() || len(f.PseudoFields()) > 0 {
		l.h2Reset(s.h, s.id, http2.ErrCodeProtocol)
		return
	}
	var t http.Header
	if s.req.Trailer != nil {
		t = http.Header{}
		for _, hf := range f.RegularFields() {
			k := s.h.canonicalName(hf.Name)
			if _, declared := s.req.Trailer[k]; declared {
				t[k] = append(t[k], hf.Value)
			}
		}
	}
	l.h2RemoteDone(s, t)
}

// h2Credit returns n bytes of receive window: to the connection always,
// to s when it still reads.
func (l *loop) h2Credit(h *h2conn, s *h2stream, n int64) {
	if n <= 0 || h.closing {
		return
	}
	// Windows are given back in steps, not a WINDOW_UPDATE per read, and
	// what the client may send grows only when it is told.
	h.recvCredit += n
	if h.recvCredit >= min(int64(h.cfg.ConnWindow)/4, 64<<10) {
		h.recvWin += h.recvCredit
		_ = h.fr.WriteWindowUpdate(0, uint32(h.recvCredit))
		h.recvCredit = 0
		l.h2MarkDirty(h)
	}
	if s != nil && !s.remoteDone && !s.gone {
		s.recvCredit += n
		if s.recvCredit >= min(int64(h.cfg.StreamWindow)/4, 16<<10) {
			s.recvWin += s.recvCredit
			_ = h.fr.WriteWindowUpdate(s.id, uint32(s.recvCredit))
			s.recvCredit = 0
			l.h2MarkDirty(h)
		}
	}
}

// h2Close closes the connection now.
func (l *loop) h2Close(h *h2conn) {
	if h.closed {
		return
	}
	for _, s := range h.streams {
		l.h2EndStream(s, errors.New("http2: connection closed"))
	}
	h.closed = true
	delete(l.h2conns, h)
	l.forget(h.lc.fd)
	h.c.srv.finish(h.c)
}

// h2Op runs what a handler goroutine posted.
func (l *loop) h2Op(op *h2op) {
	s := op.s
	h := s.h
	if op.kind == h2opCredit {
		if !h.closed && !s.gone {
			l.h2Credit(h, s, int64(op.n))
		} else if !h.closed {
			l.h2Credit(h, nil, int64(op.n))
		}
		return
	}
	if op.kind == h2opReset {
		if !h.closed && !s.gone {
			l.h2Reset(h, s.id, http2.ErrCodeCancel)
		}
		l.h2Wake(s, errStreamGone)
		return
	}
	if op.kind == h2opDone {
		h.handlers--
		if s.cancel != nil {
			s.cancel()
		}
		if !h.closed && !s.gone {
			// The handler returned without ending its response (it
			// panicked): the stream is reset.
			if !s.localDone {
				l.h2Reset(h, s.id, http2.ErrCodeInternal)
			}
		}
		if !h.closed && h.goaway && len(h.streams) == 0 && h.handlers == 0 {
			l.h2GoAway(h, http2.ErrCodeNo, "")
		}
		return
	}
	if h.closed || s.gone || h.closing {
		op.done <- errStreamGone
		return
	}
	s.waiter = op.done
	if op.kind == h2opInfo {
		l.h2WriteHeaders(s, op.status, op.hdr, false)
		l.h2Wake(s, nil)
		return
	}
	if op.headers {
		end := op.end && len(op.data) == 0 && op.trailers == nil
		l.h2WriteHeaders(s, op.status, op.hdr, end)
		if end {
			l.h2LocalDone(s)
			return
		}
	}
	s.trailers = op.trailers
	// The handler waits until its data is written out: it is not copied.
	s.pend = op.data
	s.pendEnd = op.end
	l.h2Pump(s)
}

var errStreamGone = errors.New("http2: stream closed")

type h2opKind uint8

const (
	h2opWrite h2opKind = iota
	h2opInfo
	h2opCredit
	h2opDone
	h2opReset
)

// h2op is what a handler goroutine asks its loop to do.
type h2op struct {
	s        *h2stream
	kind     h2opKind
	headers  bool
	status   int
	hdr      http.Header
	data     []byte
	end      bool
	trailers http.Header
	n        int
	done     chan error
}

// newRequest makes the request of a stream's header block, checked as RFC
// 9113 section 8.2 and 8.3 ask.
func (h *h2conn) newRequest(s *h2stream, f *http2.MetaHeadersFrame) (*http.Request, error) {
	method := f.PseudoValue("method")
	path := f.PseudoValue("path")
	scheme := f.PseudoValue("scheme")
	authority := f.PseudoValue("authority")
	if f.PseudoValue("status") != "" || f.PseudoValue("protocol") != "" {
		return nil, errBadH2Request
	}
	connect := method == http.MethodConnect
	if connect {
		if path != "" || scheme != "" || authority == "" {
			return nil, errBadH2Request
		}
	} else if method == "" || path == "" || scheme == "" || (path[0] != '/' && !(method == http.MethodOptions && path == "*")) {
		return nil, errBadH2Request
	}
	if !validMethod(method) {
		return nil, errBadH2Request
	}
	hdr := make(http.Header, len(f.Fields))
	// One array holds every field's value: a slice per field would cost
	// an allocation each; a repeated name appends (and copies) as usual.
	vals := make([]string, len(f.Fields))
	var cookies []string
	for _, hf := range f.RegularFields() {
		switch hf.Name {
		case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
			return nil, errBadH2Request
		case "te":
			if hf.Value != "trailers" {
				return nil, errBadH2Request
			}
		case "cookie":
			cookies = append(cookies, hf.Value)
			continue
		case "host":
			if authority == "" {
				authority = hf.Value
			}
		}
		k := h.canonicalName(hf.Name)
		if vv, ok := hdr[k]; ok {
			hdr[k] = append(vv, hf.Value)
			continue
		}
		vals[0] = hf.Value
		hdr[k], vals = vals[:1:1], vals[1:]
	}
	if len(cookies) > 0 {
		hdr["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	delete(hdr, "Host")
	s.declaredLen = -1
	contentLength := int64(-1)
	if s.remoteDone {
		contentLength = 0
	}
	if vv := hdr["Content-Length"]; len(vv) > 0 {
		if len(vv) > 1 {
			return nil, errBadH2Request
		}
		n, err := strconv.ParseUint(vv[0], 10, 63)
		if err != nil {
			return nil, errBadH2Request
		}
		s.declaredLen = int64(n)
		if s.remoteDone && n != 0 {
			return nil, errBadH2Request
		}
		contentLength = int64(n)
	}
	target := path
	if connect {
		target = authority
	}
	u := new(url.URL)
	if target == "*" {
		u.Path = "*"
	} else if err := parseTarget(method, target, u); err != nil {
		return nil, errBadH2Request
	}
	var trailer http.Header
	if vv := hdr["Trailer"]; len(vv) > 0 {
		trailer = http.Header{}
		for _, v := range vv {
			for k := range strings.SplitSeq(v, ",") {
				k = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k))
				switch k {
				case "", "Transfer-Encoding", "Trailer", "Content-Length":
				default:
					trailer[k] = nil
				}
			}
		}
	}
	ctx, cancel := context.WithCancel(h.c.ctx)
	s.cancel = cancel
	r := &http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        hdr,
		Host:          authority,
		RemoteAddr:    h.c.remoteAddr,
		RequestURI:    target,
		TLS:           h.c.tlsState,
		ContentLength: contentLength,
		Trailer:       trailer,
		Body:          http.NoBody,
	}
	if !s.remoteDone {
		s.body = &h2body{s: s, l: h.l, wait: make(chan struct{}, 1)}
		r.Body = s.body
	}
	return r.WithContext(ctx), nil
}

var errBadH2Request = errors.New("http2: malformed request")

// validMethod reports a method that is a token.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := range len(m) {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

// lowerName returns a response field's name as HTTP/2 sends it, and false
// for one it does not send (connection-specific, or not a token).
func (h *h2conn) lowerName(k string) (string, bool) {
	if v, ok := h.lower[k]; ok {
		return v, v != ""
	}
	v := strings.ToLower(k)
	switch v {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
		v = ""
	default:
		if !httpguts.ValidHeaderFieldName(k) {
			v = ""
		}
	}
	if h.lower == nil {
		h.lower = map[string]string{}
	}
	if len(h.lower) < 256 {
		h.lower[k] = v
	}
	return v, v != ""
}

// canonicalName returns the canonical form of a request field's name,
// remembered per connection for the names it meets often.
func (h *h2conn) canonicalName(name string) string {
	if v, ok := h.canon[name]; ok {
		return v
	}
	v := textproto.CanonicalMIMEHeaderKey(name)
	if h.canon == nil {
		h.canon = map[string]string{}
	}
	if len(h.canon) < 256 {
		h.canon[name] = v
	}
	return v
}

// h2Sweep ends the waits that are over on the loop's HTTP/2 connections.
func (l *loop) h2Sweep(now time.Time) {
	for h := range l.h2conns {
		for _, s := range h.streams {
			if s.be != nil && now.Sub(s.start) >= loopExchangeMax {
				if s.be.connecting {
					l.backendFailed(s.be)
				} else {
					l.h2Continue(s)
				}
			}
		}
		if len(h.streams) == 0 && len(h.in) == 0 && h.backlog() == 0 && !h.idleSince.IsZero() && now.Sub(h.idleSince) >= loopSweepEvery {
			// An idle connection keeps no buffers.
			h.in, h.wout.b, h.hbuf.b = nil, nil, nil
		}
		switch {
		case h.backlog() > 0 && now.Sub(h.lastProgress) >= h.cfg.WriteByteTimeout:
			l.h2Close(h)
		case len(h.streams) == 0 && h.handlers == 0 && now.After(h.deadline):
			l.h2GoAway(h, http2.ErrCodeNo, "idle")
		case h.closing && now.Sub(h.lastProgress) >= time.Second:
			l.h2Close(h)
		case !h.pingSent.IsZero() && now.Sub(h.pingSent) >= h.cfg.PingTimeout:
			// A peer that answers nothing is gone.
			l.h2Close(h)
		case h.pingSent.IsZero() && now.Sub(h.lastRead) >= h.cfg.PingTimeout:
			h.pingSent = now
			_ = h.fr.WritePing(false, [8]byte{'p', 'o', 'r', 't', 'i', 'c', 'o'})
			l.h2MarkDirty(h)
		}
	}
}

// h2FastWriter is the http.ResponseWriter FastPath.Complete answers a fast
// stream with, on the loop: it only collects the response.
type h2FastWriter struct {
	hdr    http.Header
	status int
	body   []byte
	values []string
}

// HeaderValues lends the backend leg value slices for the response's
// fields (see upstream's valueLender), which live until the loop has
// encoded them, right after Complete.
func (w *h2FastWriter) HeaderValues(n int) []string {
	if cap(w.values)-len(w.values) < n {
		w.values = make([]string, 0, max(2*cap(w.values), n, 32))
	}
	i := len(w.values)
	w.values = w.values[:i+n]
	return w.values[i : i+n : i+n]
}

func (w *h2FastWriter) reset(h *h2conn) {
	if w.hdr == nil {
		w.hdr = http.Header{}
	}
	clear(w.hdr)
	w.status = 0
	w.body = w.body[:0]
	clear(w.values)
	w.values = w.values[:0]
}

func (w *h2FastWriter) Header() http.Header { return w.hdr }

func (w *h2FastWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *h2FastWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// h2Writer is the http.ResponseWriter of a stream whose handler runs on a
// goroutine: it gathers the response and posts it to the loop, which
// frames it, and waits until the loop wrote it out (so the flow-control
// windows and the connection's backlog hold the handler back).
type h2Writer struct {
	s      *h2stream
	l      *loop
	hdr    http.Header
	status int
	// sentHeader says the HEADERS were posted.
	sentHeader bool
	buf        []byte
	done       chan error
	err        error
	head       bool
	finished   bool
	deadline   time.Time
	timer      *time.Timer
}

func (w *h2Writer) Header() http.Header { return w.hdr }

func (w *h2Writer) WriteHeader(code int) {
	if w.status != 0 || w.err != nil {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 {
		if code == http.StatusSwitchingProtocols {
			return
		}
		w.post(&h2op{s: w.s, kind: h2opInfo, status: code, hdr: w.hdr.Clone(), done: w.done})
		return
	}
	w.status = code
}

func (w *h2Writer) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.head {
		// As net/http's HTTP/2 server: a HEAD response's body is dropped.
		return len(p), nil
	}
	n := len(p)
	for len(p) > 0 {
		room := h2HandlerChunk - len(w.buf)
		if room <= 0 {
			w.send(false)
			if w.err != nil {
				return n - len(p), w.err
			}
			continue
		}
		k := min(room, len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
	}
	return n, nil
}

func (w *h2Writer) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.send(false)
}

// FlushError is Flush with the error, for http.ResponseController.
func (w *h2Writer) FlushError() error {
	w.Flush()
	return w.err
}

// send posts the headers (the first time) and what is buffered.
func (w *h2Writer) send(end bool) {
	if w.err != nil {
		return
	}
	if w.sentHeader && len(w.buf) == 0 && !end {
		return
	}
	op := &h2op{s: w.s, kind: h2opWrite, data: w.buf, end: end, done: w.done}
	if !w.sentHeader {
		w.sentHeader = true
		op.headers = true
		op.status = w.status
		op.hdr = w.responseHeader()
	}
	if end {
		op.trailers = w.trailers()
	}
	w.post(op)
	w.buf = w.buf[:0]
}

func (w *h2Writer) post(op *h2op) {
	w.l.post(loopOp{h2: op})
	var err error
	if w.deadline.IsZero() {
		err = <-w.done
	} else {
		// A client that does not take the response within the write
		// deadline gets its stream reset; the loop still holds op's data
		// until it answers the reset.
		wait := time.Until(w.deadline)
		if w.timer == nil {
			w.timer = time.NewTimer(wait)
		} else {
			w.timer.Reset(wait)
		}
		select {
		case err = <-w.done:
			w.timer.Stop()
		case <-w.timer.C:
			w.l.post(loopOp{h2: &h2op{s: w.s, kind: h2opReset}})
			<-w.done
			err = os.ErrDeadlineExceeded
		}
	}
	if err != nil {
		w.err = err
	}
}

// SetWriteDeadline bounds the writes of the response that follow, for
// http.ResponseController.
func (w *h2Writer) SetWriteDeadline(t time.Time) error {
	w.deadline = t
	return nil
}

// SetReadDeadline bounds the reads of the request body that follow, for
// http.ResponseController.
func (w *h2Writer) SetReadDeadline(t time.Time) error {
	if b := w.s.body; b != nil {
		b.mu.Lock()
		b.deadline = t
		b.mu.Unlock()
	}
	return nil
}

// responseHeader copies the header to send, with Content-Length set when
// the whole body is known, as net/http's servers do.
func (w *h2Writer) responseHeader() http.Header {
	hdr := make(http.Header, len(w.hdr)+1)
	for k, vv := range w.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) || k == "Trailer" {
			continue
		}
		hdr[k] = vv
	}
	if _, ok := hdr["Content-Length"]; !ok && w.finished && bodyAllowedForStatus(w.status) && !w.head {
		hdr["Content-Length"] = []string{strconv.Itoa(len(w.buf))}
	}
	if _, ok := hdr["Content-Type"]; !ok && len(w.buf) > 0 {
		hdr["Content-Type"] = []string{http.DetectContentType(w.buf)}
	}
	if _, ok := hdr["Date"]; !ok {
		hdr["Date"] = []string{time.Now().UTC().Format(http.TimeFormat)}
	}
	return hdr
}

// trailers collects the trailer fields: those the Trailer field declared
// and those set with http.TrailerPrefix.
func (w *h2Writer) trailers() http.Header {
	var t http.Header
	add := func(k string, vv []string) {
		if len(vv) == 0 {
			return
		}
		if t == nil {
			t = http.Header{}
		}
		t[k] = vv
	}
	for _, v := range w.hdr["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			k = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k))
			add(k, w.hdr[k])
		}
	}
	for k, vv := range w.hdr {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			add(textproto.CanonicalMIMEHeaderKey(name), vv)
		}
	}
	return t
}

// finish ends the response when the handler returns.
func (w *h2Writer) finish() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.finished = true
	w.send(true)
	w.l.post(loopOp{h2: &h2op{s: w.s, kind: h2opDone}})
	if b := w.s.body; b != nil {
		_ = b.Close()
	}
}

// abort resets the stream of a handler that panicked.
func (w *h2Writer) abort() {
	w.l.post(loopOp{h2: &h2op{s: w.s, kind: h2opDone}})
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == http.StatusNoContent, status == http.StatusNotModified:
		return false
	}
	return true
}

// h2body is a request body the loop fills with DATA frames and a handler
// goroutine reads; reading returns the window to the client.
type h2body struct {
	s    *h2stream
	l    *loop
	mu   sync.Mutex
	buf  []byte
	err  error
	tr   http.Header
	shut bool
	wait chan struct{}
	// deadline bounds each wait for data (SetReadDeadline).
	deadline time.Time
	timer    *time.Timer
}

// put appends data; false when the handler closed the body.
func (b *h2body) put(p []byte) bool {
	b.mu.Lock()
	if b.shut {
		b.mu.Unlock()
		return false
	}
	b.buf = append(b.buf, p...)
	b.mu.Unlock()
	b.signal()
	return true
}

func (b *h2body) end(trailers http.Header) {
	b.mu.Lock()
	if b.err == nil {
		b.err = io.EOF
		b.tr = trailers
	}
	b.mu.Unlock()
	b.signal()
}

func (b *h2body) fail(err error) {
	b.mu.Lock()
	if b.err == nil || b.err == io.EOF && len(b.buf) > 0 {
		b.err = err
	}
	b.mu.Unlock()
	b.signal()
}

func (b *h2body) signal() {
	select {
	case b.wait <- struct{}{}:
	default:
	}
}

func (b *h2body) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		if b.shut {
			b.mu.Unlock()
			return 0, errors.New("http2: request body closed")
		}
		if len(b.buf) > 0 {
			n := copy(p, b.buf)
			b.buf = b.buf[n:]
			if len(b.buf) == 0 {
				b.buf = nil
			}
			b.mu.Unlock()
			b.l.post(loopOp{h2: &h2op{s: b.s, kind: h2opCredit, n: n}})
			return n, nil
		}
		if b.err != nil {
			err := b.err
			if err == io.EOF && b.tr != nil {
				for k, vv := range b.tr {
					b.s.req.Trailer[k] = vv
				}
				b.tr = nil
			}
			b.mu.Unlock()
			return 0, err
		}
		deadline := b.deadline
		b.mu.Unlock()
		if deadline.IsZero() {
			<-b.wait
			continue
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		if b.timer == nil {
			b.timer = time.NewTimer(wait)
		} else {
			b.timer.Reset(wait)
		}
		select {
		case <-b.wait:
			b.timer.Stop()
		case <-b.timer.C:
		}
	}
}

func (b *h2body) Close() error {
	b.mu.Lock()
	left := len(b.buf)
	b.shut = true
	b.buf = nil
	b.mu.Unlock()
	if left > 0 {
		b.l.post(loopOp{h2: &h2op{s: b.s, kind: h2opCredit, n: left}})
	}
	return nil
}

// h2Do runs a connection operation posted from another goroutine: adopt,
// or close for Shutdown (once idle; GOAWAY tells the client) or Close.
func (l *loop) h2Do(h *h2conn, op loopOp) {
	if !op.close {
		l.h2Adopt(h)
		return
	}
	if _, mine := l.h2conns[h]; !mine {
		return
	}
	if op.force {
		l.h2Close(h)
		return
	}
	h.goaway = true
	if len(h.streams) == 0 && h.handlers == 0 {
		l.h2GoAway(h, http2.ErrCodeNo, "")
	}
}

const (
	epollIn  = unix.EPOLLIN
	epollOut = unix.EPOLLOUT
	epollHup = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
)

func isAgain(err error) bool { return err == unix.EAGAIN || err == unix.EINTR }

// connected reports whether a non-blocking connect succeeded.
func connected(fd int) bool {
	soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	return err == nil && soErr == 0
}

// loopClosedConn is an HTTP/2 loop connection as seen from outside the
// loop: closing it asks the loop to.
type loopClosedConn struct {
	net.Conn
	c *conn
}

func (lc loopClosedConn) Close() error {
	lc.c.srv.mu.Lock()
	defer lc.c.srv.mu.Unlock()
	lc.c.closeFromOutside(true)
	return nil
}

// statusText is a status code as :status carries it, without allocating
// for the common ones.
func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 206:
		return "206"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 400:
		return "400"
	case 404:
		return "404"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

// appendWriter collects what is written to it.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}
