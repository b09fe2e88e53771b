package http1

import (
	"net"
	"net/http"
	"time"
)

// H2Config holds the HTTP/2 settings of Server.HTTP2EventLoops.
type H2Config struct {
	MaxConcurrentStreams uint32
	MaxReadFrameSize     uint32
	// StreamWindow and ConnWindow are the receive windows advertised for
	// each stream and for the whole connection.
	StreamWindow int32
	ConnWindow   int32
	// WriteByteTimeout closes a connection whose queued output made no
	// progress for this long.
	WriteByteTimeout time.Duration
	// PingTimeout is how long a connection may stay silent before it is
	// sent a PING, and then before it is closed if nothing came back.
	PingTimeout time.Duration
}

func (c H2Config) withDefaults() H2Config {
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = 250
	}
	if c.MaxReadFrameSize < 16<<10 || c.MaxReadFrameSize > 16<<20 {
		c.MaxReadFrameSize = 1 << 20
	}
	if c.StreamWindow <= 0 {
		c.StreamWindow = 1 << 20
	}
	if c.ConnWindow < 65535 {
		c.ConnWindow = 4 << 20
	}
	if c.WriteByteTimeout <= 0 {
		c.WriteByteTimeout = time.Minute
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 30 * time.Second
	}
	return c
}

// FastPath lets the engine's event loops (Server.EventLoops) serve the
// common request without a goroutine: a request with no body that the
// handler would forward to a plain HTTP/1.1 backend. The loop sends what
// Plan returns on a backend connection it owns, reads the answer itself and
// hands it to Complete; every other request, and every exchange the loop
// does not finish, is served by the goroutine engine (Handler, Continue),
// so routing, the backend client's rules, metrics and errors are written
// once. The routing handler implements it (routing.Handler); methods other
// than Continue run on a loop's thread and must not block.
type FastPath interface {
	// NewLoopState returns what one loop reuses across exchanges; the
	// other methods get it back as state.
	NewLoopState() any
	// Plan decides whether the loop forwards r: when ok, it has appended
	// the request head to send to dst and returns it, the backend endpoint
	// ("ip:port") and a token for the calls that end the exchange, one of
	// which the loop makes exactly once.
	Plan(state any, dst []byte, r *http.Request) (head []byte, endpoint string, token any, ok bool)
	// Complete answers r on w from resp, what the backend sent so far,
	// when it holds a whole response the loop can answer with; see
	// FastResult.
	Complete(state any, w http.ResponseWriter, r *http.Request, token any, resp []byte, start time.Time) FastResult
	// Continue finishes the exchange on a goroutine over backend, which
	// carries the request already; buffered is what was read from it.
	Continue(w http.ResponseWriter, r *http.Request, token any, endpoint string, backend net.Conn, buffered []byte, start time.Time)
	// Abandon ends an exchange whose client went away.
	Abandon(r *http.Request, token any, start time.Time)
	// Retract ends a planned exchange that was not sent after all: the
	// request goes to Handler instead.
	Retract(token any)
	// TakeDial asks whether r's client connection may have the loop open
	// a new backend connection for it, from the budget that bounds the
	// dials a client's cancelled requests waste; RefundDial gives the
	// dial back when its exchange ended without the client going away.
	// HTTP/2 streams ask (a client can cancel one and open the next at
	// once); an HTTP/1.1 client must close its connection to cancel.
	TakeDial(r *http.Request) bool
	RefundDial(r *http.Request)
}

// LoopExchangeMax is how long a backend may take to answer on an event
// loop before the exchange moves to a goroutine (FastPath.Continue), which
// bounds it with the backend client's own timeouts: a route's per-read
// backend timeout of at least this holds on the loops too.
const LoopExchangeMax = time.Second

// FastResult is what FastPath.Complete did.
type FastResult uint8

const (
	// FastNeedMore: no whole response yet.
	FastNeedMore FastResult = iota
	// FastDone: answered; the backend connection may be reused.
	FastDone
	// FastDoneClose: answered; the backend connection must be closed.
	FastDoneClose
	// FastContinue: nothing written; Continue must finish the exchange.
	FastContinue
)

// LoopCounts is what event loops did: requests they answered, connections
// they handed to a goroutine before forwarding a request (a request they do
// not serve), and exchanges they handed over after forwarding one (a
// response they do not finish).
type LoopCounts struct {
	Served, HandedOff, Continued uint64
}
