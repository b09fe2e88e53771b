package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Exchanges driven by the HTTP/1.1 engine's event loops (http1.FastPath):
// the loop owns the backend socket, writes the bytes Plan gives it and reads
// the answer itself, without a goroutine; upstream decides what is sent and
// how the bytes read back answer the client. So the loop and Forward share
// one request writer (writeRequestHead), one response parser
// (parseBufferedHead) and one response writer (writeResponse). Anything
// the loop does not finish (a response that is not of the common kind, is
// larger than LoopResponseMax or slow to come) is finished by
// ContinueHTTP1 on a goroutine, as Forward would have.

// LoopResponseMax is the most of one response a loop holds in memory; a
// longer one is finished by ContinueHTTP1, streaming.
const LoopResponseMax = 64 << 10

// LoopResult says what Complete did with the bytes a loop read.
type LoopResult uint8

const (
	// LoopNeedMore: no whole response yet; read more and call again.
	LoopNeedMore LoopResult = iota
	// LoopDone: answered; the backend connection may carry another request.
	LoopDone
	// LoopDoneClose: answered; the backend connection must be closed.
	LoopDoneClose
	// LoopContinue: not a response the loop answers (not of the common
	// kind, or too large); nothing was written: ContinueHTTP1 finishes it.
	LoopContinue
)

// LoopState is what one event loop reuses from one exchange to the next.
// It is not safe for concurrent use: each loop has its own.
type LoopState struct {
	t    *Transport
	sink appendWriter
	bw   *bufio.Writer
	rd   bytes.Reader
	// c parses responses from rd, the bytes the loop read, with the same
	// code that parses them from a socket.
	c conn
}

// appendWriter collects what a bufio.Writer flushes.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// NewLoopState returns the state of one event loop.
func (t *Transport) NewLoopState() *LoopState {
	ls := &LoopState{t: t}
	ls.bw = bufio.NewWriterSize(&ls.sink, 4<<10)
	ls.c.br = bufio.NewReaderSize(&ls.rd, LoopResponseMax)
	return ls
}

// Plan appends to dst the request head to send for r to one of b's
// endpoints, chosen as Forward would, and returns that endpoint. ok is
// false, with nothing chosen, for what the loop does not do: a request
// with a body or an upgrade, HEAD (whose response has a length but no
// body), CONNECT, and backends over TLS or HTTP/2.
func (ls *LoopState) Plan(dst []byte, r *http.Request, b *Backend) (out []byte, endpoint string, ok bool) {
	t := ls.t
	if b == nil || len(b.Endpoints) == 0 || b.Protocol != HTTP1 || b.TLS != nil || b.affinity != nil ||
		r.Body != http.NoBody || r.URL == nil || r.Method == http.MethodHead || r.Method == http.MethodConnect ||
		t.upgradeType(r) != "" {
		return dst, "", false
	}
	endpoint = b.Endpoints[b.next()]
	f := t.forwardingFor(r)
	ls.sink.b = dst
	ls.bw.Reset(&ls.sink)
	_, _, _, err := t.writeRequestHead(ls.bw, r, &f, nil, "", endpoint)
	if err == nil {
		err = ls.bw.Flush()
	}
	out, ls.sink.b = ls.sink.b, nil
	if err != nil {
		// The handler path refuses it, with the error it deserves.
		return dst, "", false
	}
	return out, endpoint, true
}

// Complete answers r on w from resp, the bytes read from the backend so far
// (at most LoopResponseMax), when they hold a whole response of the common
// kind (see parseBufferedHead); otherwise it writes nothing. o, when not
// nil, is the route's: its EditResponseHeader, ReadTimeout and
// SendTimeout apply (the others are not read).
func (ls *LoopState) Complete(w http.ResponseWriter, r *http.Request, resp []byte, o *ForwardOptions) (LoopResult, Outcome) {
	end := bytes.Index(resp, crlfcrlf)
	if end < 0 || end+4 > ls.t.maxResponseHeaderBytes {
		if len(resp) > ls.t.maxResponseHeaderBytes || len(resp) >= LoopResponseMax {
			return LoopContinue, Outcome{} // ContinueHTTP1 refuses it
		}
		return LoopNeedMore, Outcome{}
	}
	// The body's length, looked up without parsing the head, so that a
	// body arriving in several reads is waited for without parsing the
	// head again at each.
	if n, ok := contentLengthOf(resp[:end+2]); ok && int64(end+4)+n > int64(len(resp)) {
		if int64(end+4)+n > LoopResponseMax {
			return LoopContinue, Outcome{}
		}
		return LoopNeedMore, Outcome{}
	}
	ls.rd.Reset(resp)
	ls.c.br.Reset(&ls.rd)
	if _, err := ls.c.br.Peek(len(resp)); err != nil {
		return LoopContinue, Outcome{}
	}
	res := ls.c.parseBufferedHead(r.Method, valueLenderOf(w))
	if res == nil || res.ContentLength > int64(ls.c.br.Buffered()) {
		return LoopContinue, Outcome{}
	}
	complete, out := ls.t.writeResponse(w, r, res, o, nil)
	// Bytes beyond the response were not asked for: the connection is out
	// of step, as Forward decides it.
	if !complete || res.Close || ls.c.br.Buffered() > 0 {
		ls.rd.Reset(nil)
		return LoopDoneClose, out
	}
	ls.rd.Reset(nil)
	return LoopDone, out
}

// contentLengthOf finds the Content-Length of a response head (status line
// and fields, each ending in CRLF) by a plain scan. It is only a hint for
// waiting: the head is parsed strictly before anything is sent.
func contentLengthOf(head []byte) (int64, bool) {
	const name = "\r\ncontent-length:"
	for i := bytes.IndexByte(head, '\r'); i >= 0 && i+len(name) <= len(head); {
		if asciiEqualFold(head[i:i+len(name)], name) {
			v := head[i+len(name):]
			if j := bytes.IndexByte(v, '\r'); j >= 0 {
				v = v[:j]
			}
			return parseContentLength(trimOWS(string(v)))
		}
		j := bytes.IndexByte(head[i+1:], '\r')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return 0, false
}

func asciiEqualFold(b []byte, lower string) bool {
	for i := range len(lower) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// ContinueHTTP1 finishes, on the calling goroutine, an exchange a loop
// started: r was sent to endpoint (one of b's) on nc, and buffered holds
// what the loop read back so far, which ContinueHTTP1 keeps. It reads the response under the usual
// bounds, writes it to w, and pools nc or closes it, exactly as Forward
// does after sending a request. o is as for LoopState.Complete: its
// ReadTimeout bounds the wait for the head and each read of the body.
func (t *Transport) ContinueHTTP1(w http.ResponseWriter, r *http.Request, b *Backend, endpoint string, nc net.Conn, buffered []byte, o *ForwardOptions) Outcome {
	ctx := r.Context()
	var src io.Reader = nc
	if len(buffered) > 0 {
		// The response head budget counts these bytes too.
		src = io.MultiReader(bytes.NewReader(buffered), nc)
	}
	head := &headLimiter{r: src}
	c := &conn{
		nc:     nc,
		br:     bufio.NewReaderSize(head, 4<<10),
		bw:     bufio.NewWriterSize(nc, 4<<10),
		pool:   t.pool(endpoint),
		abort:  func() { _ = nc.SetDeadline(aLongTimeAgo) },
		head:   head,
		reused: true,
	}
	if tcp, ok := nc.(*net.TCPConn); ok {
		c.raw, _ = tcp.SyscallConn()
	}
	c.peek = peekFunc(c)
	stop := watch(ctx, c)
	resp, err := t.readResponseHead(c, w, r, o)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		resp, err = nil, &badResponseError{errUnexpected101}
	}
	if err != nil {
		stop()
		c.discard(ctx)
		out := t.exchangeFailed(w, r, b, err)
		noteOutcome(r, out)
		return out
	}
	var backend readArmer
	if !bodyBuffered(resp, c.br) {
		backend = c
	}
	complete, out := t.writeResponse(w, r, resp, o, backend)
	if stop() && complete && !resp.Close && c.br.Buffered() == 0 {
		t.putIdle(c)
	} else {
		c.discard(ctx)
	}
	noteOutcome(r, out)
	return out
}
