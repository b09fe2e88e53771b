package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// Idle timeouts once a request is under way (Config.ClientBodyTimeout,
// SendTimeout, UpstreamReadTimeout, UpstreamSendTimeout) bound the gap
// between two successive reads or writes, as nginx's do, not a transfer.
//
// They are enforced with connection deadlines. Moving a deadline is a
// runtime timer update: no syscall, but on a fast stream one per read or
// write would show in a CPU profile (the response header deadline did, at
// 1% of CPU, before it was kept armed across requests). So a deadline is
// moved only once at least 1/16 of its timeout has passed since it was set,
// as armHeaderDeadline does: a fast transfer moves it once per timeout/16,
// and a bound may end up to 1/16 of itself early.

// ErrClientBodyTimeout is the error (found with errors.Is) of a read of a
// request body that passed ClientBodyTimeout without a byte.
var ErrClientBodyTimeout = errors.New("client body timeout: no byte of the request body within the timeout")

// errUpstreamReadTimeout: the backend sent no byte of its response body
// within UpstreamReadTimeout.
var errUpstreamReadTimeout = errors.New("upstream read timeout: no byte of the response body within the timeout")

// fresh reports whether deadline d, armed for timeout, can be kept at now:
// at least 15/16 of timeout is left, and not more than timeout (a deadline
// armed for a longer timeout must be brought in).
func fresh(d, now time.Time, timeout time.Duration) bool {
	left := d.Sub(now)
	return !d.IsZero() && left >= timeout-timeout/16 && left <= timeout
}

// armRead bounds the next read from the backend by timeout.
func (c *conn) armRead(now time.Time, timeout time.Duration) error {
	if fresh(c.readDeadline, now, timeout) {
		return nil
	}
	d := now.Add(timeout)
	if err := c.nc.SetReadDeadline(d); err != nil {
		return err
	}
	c.readDeadline = d
	return nil
}

// armWrite bounds the next write to the backend by timeout. The deadline
// stays armed while the connection sits in the pool; the next request
// refreshes it before writing if it has aged.
func (c *conn) armWrite(now time.Time, timeout time.Duration) error {
	if fresh(c.writeDeadline, now, timeout) {
		return nil
	}
	d := now.Add(timeout)
	if err := c.nc.SetWriteDeadline(d); err != nil {
		return err
	}
	c.writeDeadline = d
	return nil
}

// clientDeadlines arms the read and write deadlines of the connection (or
// HTTP/2 stream) one request came in on. Its zero value plus w is ready.
type clientDeadlines struct {
	w http.ResponseWriter
	// rc is held by value, made on first use: a request that arms nothing
	// costs nothing, and one that does allocates nothing.
	rc    http.ResponseController
	rcSet bool
	// h1: an HTTP/1.x connection, whose deadlines outlive the request.
	h1 bool
	// off: no deadline is set, because the writer cannot set them (a test
	// recorder), or because nothing can wait (a body held in memory).
	off         bool
	read, write time.Time
}

func (d *clientDeadlines) controller() *http.ResponseController {
	if !d.rcSet {
		d.rc, d.rcSet = *http.NewResponseController(d.w), true
	}
	return &d.rc
}

// armRead bounds the next read of the request body by timeout.
func (d *clientDeadlines) armRead(now time.Time, timeout time.Duration) {
	if d.off || fresh(d.read, now, timeout) {
		return
	}
	t := now.Add(timeout)
	if d.controller().SetReadDeadline(t) != nil {
		d.off = true
		return
	}
	d.read = t
}

// doneReading removes the read deadline once the body has been read. On
// HTTP/1.x it must: net/http then reads the connection in the background to
// notice a client that goes away, and a deadline passing there would cancel
// the request while its response is still being sent. An HTTP/2 stream's
// deadline ends with the stream.
func (d *clientDeadlines) doneReading() {
	if d.read.IsZero() || !d.h1 {
		return
	}
	_ = d.controller().SetReadDeadline(time.Time{})
	d.read = time.Time{}
}

// timedOut reports whether a failed read of the request body is the
// deadline this armed passing.
func (d *clientDeadlines) timedOut(err error) bool {
	return !d.read.IsZero() && errors.Is(err, os.ErrDeadlineExceeded)
}

// armWrite bounds the next write of the response by timeout.
func (d *clientDeadlines) armWrite(now time.Time, timeout time.Duration) {
	if d.off || fresh(d.write, now, timeout) {
		return
	}
	t := now.Add(timeout)
	if d.controller().SetWriteDeadline(t) != nil {
		d.off = true
		return
	}
	d.write = t
}

// doneWriting pushes out what the inbound server still buffers while the
// write deadline holds, then removes the deadline. On HTTP/1.x it must:
// net/http resets no write deadline between requests, so one left armed
// would fail a later response on the same keep-alive connection. An
// HTTP/2 stream's deadline ends with the stream.
func (d *clientDeadlines) doneWriting() error {
	if d.write.IsZero() || !d.h1 {
		return nil
	}
	err := d.controller().Flush()
	_ = d.controller().SetWriteDeadline(time.Time{})
	d.write = time.Time{}
	return err
}

// smallResponse is the largest body whose writes to the client are not
// bounded by SendTimeout: it fits the inbound server's own buffers (net/http
// buffers 2 KiB of body per response and 4 KiB per connection, its HTTP/2
// server 4 KiB per stream) on top of the kernel's socket send buffer, so
// writing it cannot block on a client that does not read, and the common
// small response touches no deadline.
const smallResponse = 4 << 10

// readArmer bounds the next read of a response body from a backend.
type readArmer interface {
	armRead(now time.Time, timeout time.Duration) error
}

// streamIdle is the readArmer of a response read through the HTTP/2 client,
// which exposes no connection. It owns the request's timer: first the
// response header timeout, then, once the head came, the idle bound on the
// body, moved on at most once per timeout/16 for the reason above. When it
// fires, the request is cancelled with the bound that passed.
type streamIdle struct {
	cancel context.CancelCauseFunc
	timer  *time.Timer
	// body is set once the response head came.
	body atomic.Bool
	// next is when the timer is next moved on; only the goroutine copying
	// the body touches it.
	next time.Time
}

func (s *streamIdle) fire() {
	if s.body.Load() {
		s.cancel(errUpstreamReadTimeout)
	} else {
		s.cancel(errHeaderTimeout)
	}
}

func (s *streamIdle) armRead(now time.Time, timeout time.Duration) error {
	if now.Before(s.next) {
		return nil
	}
	s.timer.Reset(timeout)
	s.next = now.Add(timeout / 16)
	return nil
}

// BoundedBody returns r's body with each read bounded by ClientBodyTimeout,
// for a caller that reads the body before forwarding it: the routing tier,
// which buffers it for retries and mirrors. A read that times out fails
// with an error Forward answers with 408 when it replays it.
func (t *Transport) BoundedBody(w http.ResponseWriter, r *http.Request) io.Reader {
	return &boundedBody{r: r.Body, client: clientDeadlines{w: w, h1: r.ProtoMajor == 1}, timeout: t.clientBodyTimeout}
}

type boundedBody struct {
	r       io.Reader
	client  clientDeadlines
	timeout time.Duration
}

func (b *boundedBody) Read(p []byte) (int, error) {
	b.client.armRead(time.Now(), b.timeout)
	n, err := b.r.Read(p)
	switch {
	case err == io.EOF:
		b.client.doneReading()
	case err != nil && b.client.timedOut(err):
		err = errors.Join(ErrClientBodyTimeout, err)
	}
	return n, err
}
