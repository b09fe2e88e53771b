package upstream

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// resetWindow is the period over which a client connection may cancel
// ResetLimit requests.
const resetWindow = 10 * time.Second

// resetGuard cuts off an HTTP/2 client connection that cancels requests
// faster than any browser does. Go's HTTP/2 server bounds the handlers a
// connection runs at once, but counts no resets: a client that sends
// HEADERS and RST_STREAM in a loop (rapid reset, CVE-2023-44487) keeps it
// starting handlers for as long as it likes, each of which may have begun
// a backend exchange. A browser cancels streams when a page is left or a
// video seeks: a handful a second at most, which the burst absorbs.
//
// The connection is closed, not sent GOAWAY: the HTTP/2 server gives
// handlers no way to send one, and a flooding client is owed no graceful
// end. Requests of the connection still in flight fail with it.
type resetGuard struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
	rate   float64 // tokens per second
	burst  float64
	cut    bool
	conn   net.Conn
	log    *slog.Logger
}

// cancelled records one request the client cancelled; past the limit it
// closes the client connection, once.
func (g *resetGuard) cancelled(now time.Time) {
	g.mu.Lock()
	g.tokens = min(g.burst, g.tokens+now.Sub(g.last).Seconds()*g.rate)
	g.last = now
	g.tokens--
	cut := g.tokens < 0 && !g.cut && g.conn != nil
	if cut {
		g.cut = true
	}
	g.mu.Unlock()
	if cut {
		g.log.Warn("closing an HTTP/2 client connection that cancels requests faster than the reset limit",
			"client", g.conn.RemoteAddr().String(), "limit", int(g.burst), "window", resetWindow)
		_ = g.conn.Close()
	}
}

// NoteOutcome is noteOutcome for exchanges the event loops drive.
func NoteOutcome(r *http.Request, out Outcome) { noteOutcome(r, out) }

// noteOutcome counts an HTTP/2 request its client cancelled (a stream
// reset) against the client connection's reset guard. The context is
// looked up only for such requests, so a completed request pays nothing.
func noteOutcome(r *http.Request, out Outcome) {
	if out.Status != StatusClientClosedRequest || r.ProtoMajor != 2 {
		return
	}
	ctx := r.Context()
	if timeoutCause(ctx) != nil {
		return
	}
	if cs := clientStateOf(ctx); cs != nil {
		cs.resets.cancelled(time.Now())
	}
}
