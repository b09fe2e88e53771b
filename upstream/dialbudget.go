package upstream

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// dialBudget bounds the backend connections one client connection makes
// the gateway open and then waste. An HTTP/2 client that opens streams and
// resets them at once (rapid reset) makes each reset request close the
// backend connection it was using, and the next one dial anew: two client
// connections made a backend accept thousands of connections a second.
// Every dial takes a token; the token is given back when the exchange ends
// without the client going away (the connection was pooled, or closed for
// the backend's reasons), so ordinary traffic, however bursty, only holds
// tokens while its dials are in flight, and only dials wasted by cancelled
// requests drain the bucket. Requests that find it empty wait for a token
// or an idle connection, for as long as their client waits.
type dialBudget struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
	rate   float64 // tokens per second
	burst  float64
}

// clientState is what the gateway keeps per client connection: the
// budget of backend dials its cancelled requests may waste, and of the
// HTTP/2 streams it may cancel before it is cut off.
type clientState struct {
	dials  dialBudget
	resets resetGuard
}

type clientStateKey struct{}

// ClientConnContext gives each client connection its own dial budget and
// reset guard. It is meant as the inbound http.Server's ConnContext;
// requests without one dial unbounded and are never cut off.
func (t *Transport) ClientConnContext(ctx context.Context, nc net.Conn) context.Context {
	now := time.Now()
	return context.WithValue(ctx, clientStateKey{}, &clientState{
		dials: dialBudget{
			tokens: float64(t.dialBurst),
			last:   now,
			rate:   float64(t.dialRate),
			burst:  float64(t.dialBurst),
		},
		resets: resetGuard{
			tokens: float64(t.resetLimit),
			last:   now,
			rate:   float64(t.resetLimit) / resetWindow.Seconds(),
			burst:  float64(t.resetLimit),
			conn:   nc,
			log:    t.log,
		},
	})
}

// clientStateOf returns the client connection's state, or nil for
// requests served without ClientConnContext.
func clientStateOf(ctx context.Context) *clientState {
	s, _ := ctx.Value(clientStateKey{}).(*clientState)
	return s
}

// take takes a token if one is left; otherwise it says how long until the
// next one.
func (b *dialBudget) take(now time.Time) (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// TakeDial takes a token of the dial budget of r's client connection for
// a backend connection opened outside Forward (the event loops); false
// when the budget is spent, and the request should go through Forward,
// which waits for a token or an idle connection.
func TakeDial(r *http.Request) bool {
	cs := clientStateOf(r.Context())
	if cs == nil {
		return true
	}
	ok, _ := cs.dials.take(time.Now())
	return ok
}

// RefundDial gives back a token TakeDial took, once the exchange ended
// without the client going away.
func RefundDial(r *http.Request) {
	if cs := clientStateOf(r.Context()); cs != nil {
		cs.dials.refund()
	}
}

func (b *dialBudget) refund() {
	b.mu.Lock()
	b.tokens = min(b.burst, b.tokens+1)
	b.mu.Unlock()
}

// settle gives back the token c was dialled with, unless the client went
// away during the exchange (a route timeout is not the client's doing).
// Called once a connection's exchange is over, whatever becomes of it.
func (c *conn) settle(ctx context.Context) {
	if c.budget == nil {
		return
	}
	if ctx.Err() == nil || timeoutCause(ctx) != nil {
		c.budget.refund()
	}
	c.budget = nil
}

// discard ends a connection that carried a request: settled, then closed.
func (c *conn) discard(ctx context.Context) {
	c.settle(ctx)
	c.close()
}

// budgetPoll is the longest a request waits for a dial token before it
// looks at the idle pool again, where an exchange that ended meanwhile may
// have left a connection.
const budgetPoll = 10 * time.Millisecond

// dialWithin dials for a request whose client connection has a dial
// budget, first waiting for a token, or for an idle connection, for as
// long as the request lives.
func (t *Transport) dialWithin(ctx context.Context, b *dialBudget, p *endpointPool, backend string) (*conn, error) {
	var timer *time.Timer
	for {
		ok, wait := b.take(time.Now())
		if ok {
			break
		}
		wait = min(wait, budgetPoll)
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return nil, &dialError{err: context.Cause(ctx)}
		case <-timer.C:
		}
		if c := t.takeUsable(p, backend); c != nil {
			return c, nil
		}
	}
	c, err := t.dial(ctx, p, backend)
	if err != nil {
		if ctx.Err() == nil {
			b.refund()
		}
		return nil, err
	}
	c.budget = b
	return c, nil
}
