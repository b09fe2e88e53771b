package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// conn is one HTTP/1.1 connection to an endpoint. It owns its buffered
// reader and writer so a reused connection costs no allocation.
type conn struct {
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	pool *endpointPool
	// idleSince is when the connection was last put back into the pool.
	idleSince time.Time
	// reused is true once the connection has carried a request: only such a
	// connection can have been closed by the backend while idle.
	reused bool
	// abort unblocks every read and write in progress; built once per
	// connection so watching a request's context costs no closure.
	abort func()
	// readDeadline and writeDeadline are the deadlines currently set on
	// nc; zero for none.
	readDeadline  time.Time
	writeDeadline time.Time
	// head bounds the bytes read from nc while a response head is read;
	// br reads through it.
	head *headLimiter
	// raw is the TCP socket under nc, peeked by usable; nil when
	// unavailable, and the connection is then trusted until used.
	raw syscall.RawConn
	// peek runs the peek on raw; built once so the check allocates nothing.
	peek    func(fd uintptr) bool
	peekBuf [1]byte
	peeked  idleState
	// fast holds what readResponse reuses from one response to the next;
	// nil until the first response it parses itself.
	fast *fastResponse
	// budget is the client connection's dial budget this connection took
	// a token from, until its first exchange is over.
	budget *dialBudget
}

// idleState is what an idle connection's socket holds.
type idleState uint8

const (
	idleQuiet   idleState = iota // nothing: the connection can carry a request
	idlePending                  // bytes nobody asked for
	idleClosed                   // the backend's FIN or a reset
)

// usable reports whether an idle connection can carry a request: the
// backend has neither closed it nor sent anything on it since the last
// response.
//
// Go's net/http Transport learns this with a read loop per connection (a
// goroutine blocked in Read, and a channel handoff to it per request);
// nginx keeps idle upstream connections registered in its event loop and
// closes one on any event. Portico checks at take time instead, with one
// non-blocking recvfrom(MSG_PEEK): no goroutine and no poller registration
// per connection, one syscall per reused connection, and for plain
// connections no deadline change.
// It detects stray bytes (a late or unsolicited response, the body of a
// HEAD answer) that would otherwise become the next client's response, and
// a backend that closed the connection while it was idle (a restart, a
// keep-alive timeout shorter than ours), so a request of any method is
// sent on another connection instead of failing. Bytes that arrive after
// the check, while the request is written, are not caught; neither are
// they by a read loop.
func (c *conn) usable() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil || c.peek == nil {
		return true
	}
	if err := c.raw.Read(c.peek); err != nil {
		return false
	}
	tc, isTLS := c.nc.(*tls.Conn)
	switch {
	case c.peeked == idleClosed:
		return false
	case !isTLS:
		return c.peeked == idleQuiet
	case c.peeked == idlePending:
		// Bytes on the socket: let crypto/tls read them, briefly.
		return c.tlsQuiet(tc, time.Now().Add(time.Millisecond))
	default:
		// Nothing on the socket, but crypto/tls may hold records it read
		// along with the last response, which the peek cannot see: an
		// expired deadline lets it process those and return without
		// waiting on the socket.
		return c.tlsQuiet(tc, aLongTimeAgo)
	}
}

// tlsQuiet reads what a TLS backend sent on an idle connection, until
// deadline. A TLS 1.3 server may send post-handshake messages at any time
// (a NewSessionTicket, a KeyUpdate): crypto/tls consumes those inside Read,
// which then waits for application data. A timeout means only such
// messages came and the connection is fine; application data, a
// close_notify or EOF make it unusable. For a TLS connection this costs two
// deadline changes per reuse (runtime timer updates, no syscall), and the
// header deadline is then armed afresh; the cost of TLS itself dwarfs it.
// With bytes pending on the socket it may wait up to the 1ms deadline for
// a record's end, which happens when the backend sent something unasked.
func (c *conn) tlsQuiet(tc *tls.Conn, deadline time.Time) bool {
	c.readDeadline = time.Time{}
	if err := tc.SetReadDeadline(deadline); err != nil {
		return false
	}
	n, err := tc.Read(c.peekBuf[:])
	if n > 0 || err == nil {
		return false
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return false
	}
	return tc.SetReadDeadline(time.Time{}) == nil
}

func (c *conn) close() { _ = c.nc.Close() }

// armHeaderDeadline bounds the wait for a response head by timeout. A
// deadline armed by an earlier request is kept while at least 15/16 of
// timeout is left, so the bound may end up to 1/16 short; in exchange a
// busy connection updates its deadline timer once every timeout/16 instead
// of twice per request.
func (c *conn) armHeaderDeadline(timeout time.Duration) error {
	return c.armRead(time.Now(), timeout)
}

// clearReadDeadline removes the read deadline before a body is streamed:
// bodies may take any time.
func (c *conn) clearReadDeadline() error {
	if c.readDeadline.IsZero() {
		return nil
	}
	if err := c.nc.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	c.readDeadline = time.Time{}
	return nil
}

// surplusIdleTime is how long a connection beyond MaxIdleConnsPerEndpoint
// may sit idle before it is closed. Closing the surplus the moment it is
// returned made every burst above the cap dial and close a connection per
// request: under 160 concurrent HTTP/2 streams with a cap of 64, one
// request in six paid a connect (measured in bench/profile-notes.md).
// Connections that stay unused this long are no longer part of the working
// set, and the LIFO stack keeps them at its bottom.
const surplusIdleTime = 2 * time.Second

// endpointPool is the keep-alive pool of one endpoint address. Idle
// connections form a LIFO stack: the most recently used connection is the
// one most likely to still be open and warm, and the ones at the bottom age
// out first.
type endpointPool struct {
	addr string
	// tls, when set, is the client configuration every connection of the
	// pool is made with.
	tls *tls.Config

	mu   sync.Mutex
	idle []*conn
	// lastUsed lets the reaper drop pools of endpoints that went away.
	lastUsed time.Time
	// retired is set when the reaper removed the pool from the Transport;
	// connections returned to it afterwards are closed, not kept.
	retired bool
	// trimPending is set while a trim of the surplus above the idle cap is
	// scheduled, so a burst schedules one timer, not one per connection.
	trimPending bool
}

// pool returns the endpoint's pool, creating it on first use.
func (t *Transport) pool(addr string) *endpointPool {
	if p, ok := t.pools.Load(addr); ok {
		return p.(*endpointPool)
	}
	p, _ := t.pools.LoadOrStore(addr, &endpointPool{addr: addr, lastUsed: time.Now()})
	return p.(*endpointPool)
}

// takeIdle pops the most recent idle connection that has not expired. When
// the top of the stack has expired, everything below it is older still, so
// the whole stack is closed.
func (p *endpointPool) takeIdle(now time.Time, maxAge time.Duration) *conn {
	p.mu.Lock()
	p.lastUsed = now
	n := len(p.idle)
	if n == 0 {
		p.mu.Unlock()
		return nil
	}
	c := p.idle[n-1]
	if now.Sub(c.idleSince) < maxAge {
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c
	}
	expired := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
	return nil
}

// putIdle returns c to the pool, or closes it when the pool is retired or
// the Transport is closed. Connections above the idle cap are kept for
// surplusIdleTime, then closed unless they were used again.
func (t *Transport) putIdle(c *conn) {
	// The exchange ended with the client still there: its dial token goes
	// back whatever becomes of the connection.
	if c.budget != nil {
		c.budget.refund()
		c.budget = nil
	}
	p := c.pool
	now := time.Now()
	p.mu.Lock()
	if p.retired {
		p.mu.Unlock()
		c.close()
		return
	}
	c.idleSince = now
	c.reused = true
	p.idle = append(p.idle, c)
	p.lastUsed = now
	if len(p.idle) > t.maxIdlePerEndpoint && !p.trimPending {
		p.trimPending = true
		t.trimSurplusLater(p, surplusIdleTime)
	}
	p.mu.Unlock()
	// Close may have swept the pools between the check above and the
	// append; sweep again so no connection outlives the Transport.
	if t.closed.Load() {
		p.closeAll()
	}
}

// trimSurplusLater runs trimSurplus on p after wait, and again for as long
// as a surplus remains.
func (t *Transport) trimSurplusLater(p *endpointPool, wait time.Duration) {
	time.AfterFunc(wait, func() {
		if next, pending := p.trimSurplus(time.Now(), t.maxIdlePerEndpoint); pending {
			t.trimSurplusLater(p, next)
		}
	})
}

// trimSurplus closes the connections above maxIdle that have been idle for
// surplusIdleTime. While younger ones keep the pool above maxIdle, it
// reports pending and how long until the oldest of them is due.
func (p *endpointPool) trimSurplus(now time.Time, maxIdle int) (next time.Duration, pending bool) {
	p.mu.Lock()
	expired := p.popOldest(len(p.idle)-maxIdle, now, surplusIdleTime)
	p.trimPending = len(p.idle) > maxIdle
	if p.trimPending {
		next = max(surplusIdleTime-now.Sub(p.idle[0].idleSince), 10*time.Millisecond)
	}
	pending = p.trimPending
	p.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
	return next, pending
}

// popOldest removes from the bottom of the idle stack, which is ordered by
// idleSince (oldest first), up to limit connections idle for at least
// minIdle, and returns them for the caller to close outside the lock. The
// caller holds p.mu.
func (p *endpointPool) popOldest(limit int, now time.Time, minIdle time.Duration) []*conn {
	i := 0
	for i < limit && now.Sub(p.idle[i].idleSince) >= minIdle {
		i++
	}
	if i == 0 {
		return nil
	}
	expired := append([]*conn(nil), p.idle[:i]...)
	n := copy(p.idle, p.idle[i:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	return expired
}

// popStale moves to dst the plain idle connections the backend closed or
// sent bytes on, so that a restarted backend does not leave sockets in
// CLOSE_WAIT until they are taken or expire. It costs one non-blocking
// syscall per idle connection per reaper tick, under p.mu, which the
// caller holds. TLS connections are left to the check at take time, which
// may have to read through crypto/tls.
func (p *endpointPool) popStale(dst []*conn) []*conn {
	kept := p.idle[:0]
	for _, c := range p.idle {
		if _, isTLS := c.nc.(*tls.Conn); !isTLS && c.raw != nil && c.peek != nil {
			if err := c.raw.Read(c.peek); err != nil || c.peeked != idleQuiet {
				dst = append(dst, c)
				continue
			}
		}
		kept = append(kept, c)
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	return dst
}

// closeAll closes every idle connection of the pool.
func (p *endpointPool) closeAll() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// closeExpired closes idle connections older than maxAge and reports
// whether the pool is empty and unused for maxAge, so it can be dropped.
func (p *endpointPool) closeExpired(now time.Time, maxAge time.Duration) (unused bool) {
	p.mu.Lock()
	expired := p.popOldest(len(p.idle), now, maxAge)
	expired = p.popStale(expired)
	unused = len(p.idle) == 0 && now.Sub(p.lastUsed) >= maxAge
	if unused {
		p.retired = true
	}
	p.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
	return unused
}

// reap closes expired idle connections in the background, so a quiet
// endpoint does not keep sockets open forever, and forgets endpoints that
// have not been used for IdleConnTimeout.
func (t *Transport) reap() {
	defer close(t.reaperDone)
	interval := t.idleConnTimeout / 2
	if interval < 100*time.Millisecond {
		interval = 100 * time.Millisecond
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-t.stopReaper:
			return
		case now := <-tick.C:
			t.pools.Range(func(k, v any) bool {
				if v.(*endpointPool).closeExpired(now, t.idleConnTimeout) {
					t.pools.CompareAndDelete(k, v)
				}
				return true
			})
		}
	}
}

// getConn returns an idle connection to addr or dials a new one. Idle
// connections the backend closed or sent stray bytes on are closed and
// skipped: nothing of the request has been written to them yet, so any
// method may go to the next one.
func (t *Transport) getConn(ctx context.Context, p *endpointPool, backend string) (*conn, error) {
	if c := t.takeUsable(p, backend); c != nil {
		return c, nil
	}
	// The budget is looked up only when a dial is due, so reusing a pooled
	// connection costs no context walk.
	if cs := clientStateOf(ctx); cs != nil {
		return t.dialWithin(ctx, &cs.dials, p, backend)
	}
	return t.dial(ctx, p, backend)
}

// takeUsable pops idle connections until one is usable, closing the others.
func (t *Transport) takeUsable(p *endpointPool, backend string) *conn {
	now := time.Now()
	for {
		c := p.takeIdle(now, t.idleConnTimeout)
		if c == nil || c.usable() {
			return c
		}
		t.log.Debug("closing an idle backend connection that was closed or sent unrequested bytes",
			"backend", backend, "endpoint", p.addr)
		c.close()
	}
}

// dial opens a new connection to the pool's endpoint.
func (t *Transport) dial(ctx context.Context, p *endpointPool, backend string) (*conn, error) {
	timeout := t.dialTimeout
	dialer := &t.dialer
	if d := connectTimeoutOf(ctx); d > 0 {
		// A route's own connect timeout replaces the global one, longer or
		// shorter; the copy is made only for such a route's dials.
		timeout = d
		own := t.dialer
		own.Timeout = d
		dialer = &own
	}
	nc, err := dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		if ctx.Err() == nil && t.onConnectError != nil {
			t.onConnectError(backend)
		}
		return nil, &dialError{err: err}
	}
	var raw syscall.RawConn
	if tcp, ok := nc.(*net.TCPConn); ok {
		raw, _ = tcp.SyscallConn()
	}
	if p.tls != nil {
		if nc, err = t.handshake(ctx, nc, p.tls, timeout); err != nil {
			if ctx.Err() == nil && t.onConnectError != nil {
				t.onConnectError(backend)
			}
			return nil, &dialError{err: err}
		}
	}
	head := &headLimiter{r: nc}
	c := &conn{
		nc:    nc,
		br:    bufio.NewReaderSize(head, 4<<10),
		bw:    bufio.NewWriterSize(nc, 4<<10),
		pool:  p,
		abort: func() { _ = nc.SetDeadline(aLongTimeAgo) },
		head:  head,
		raw:   raw,
	}
	c.peek = peekFunc(c)
	return c, nil
}

// handshake runs the TLS client handshake on a new connection to a backend,
// bounded like the connect itself.
func (t *Transport) handshake(ctx context.Context, nc net.Conn, cfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// connectTimeoutKey carries ForwardOptions.ConnectTimeout to the dials of
// one exchange, which may happen deep in the HTTP/1.1 pool, the dial
// budget or net/http's HTTP/2 transport.
type connectTimeoutKey struct{}

// connectTimeoutOf returns the route's connect timeout ctx carries, or 0.
// It is looked up only when a dial is due, never for a pooled connection.
func connectTimeoutOf(ctx context.Context) time.Duration {
	d, _ := ctx.Value(connectTimeoutKey{}).(time.Duration)
	return d
}
