package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
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
}

func (c *conn) close() { _ = c.nc.Close() }

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

// putIdle returns c to the pool, or closes it when the pool is full,
// retired or the Transport is closed.
func (t *Transport) putIdle(c *conn) {
	p := c.pool
	now := time.Now()
	p.mu.Lock()
	if p.retired || len(p.idle) >= t.maxIdlePerEndpoint {
		p.mu.Unlock()
		c.close()
		return
	}
	c.idleSince = now
	c.reused = true
	p.idle = append(p.idle, c)
	p.lastUsed = now
	p.mu.Unlock()
	// Close may have swept the pools between the check above and the
	// append; sweep again so no connection outlives the Transport.
	if t.closed.Load() {
		p.closeAll()
	}
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
	// The stack is ordered by idleSince, oldest first.
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].idleSince) >= maxAge {
		i++
	}
	expired := append([]*conn(nil), p.idle[:i]...)
	if i > 0 {
		n := copy(p.idle, p.idle[i:])
		clear(p.idle[n:])
		p.idle = p.idle[:n]
	}
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

// getConn returns an idle connection to addr or dials a new one.
func (t *Transport) getConn(ctx context.Context, p *endpointPool, backend string) (*conn, error) {
	if c := p.takeIdle(time.Now(), t.idleConnTimeout); c != nil {
		return c, nil
	}
	return t.dial(ctx, p, backend)
}

// dial opens a new connection to the pool's endpoint.
func (t *Transport) dial(ctx context.Context, p *endpointPool, backend string) (*conn, error) {
	nc, err := t.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		if ctx.Err() == nil && t.onConnectError != nil {
			t.onConnectError(backend)
		}
		return nil, &dialError{err: err}
	}
	if p.tls != nil {
		if nc, err = t.handshake(ctx, nc, p.tls); err != nil {
			if ctx.Err() == nil && t.onConnectError != nil {
				t.onConnectError(backend)
			}
			return nil, &dialError{err: err}
		}
	}
	return &conn{
		nc:    nc,
		br:    bufio.NewReaderSize(nc, 4<<10),
		bw:    bufio.NewWriterSize(nc, 4<<10),
		pool:  p,
		abort: func() { _ = nc.SetDeadline(aLongTimeAgo) },
	}, nil
}

// handshake runs the TLS client handshake on a new connection to a backend,
// bounded like the connect itself.
func (t *Transport) handshake(ctx context.Context, nc net.Conn, cfg *tls.Config) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.dialTimeout)
	defer cancel()
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}
