package routing

import (
	"net"
	"net/http"
	"sync"
	"time"

	"portico.dev/portico/http1"
	"portico.dev/portico/upstream"
)

// LoopForwarder is a Forwarder whose exchanges the HTTP/1.1 engine's event
// loops can drive (upstream.Transport).
type LoopForwarder interface {
	NewLoopState() *upstream.LoopState
	ContinueHTTP1(w http.ResponseWriter, r *http.Request, b *upstream.Backend, endpoint string, nc net.Conn, buffered []byte, o *upstream.ForwardOptions) upstream.Outcome
}

// FastPath returns the handler's http1.FastPath, or nil when its Forwarder
// cannot be driven by a loop.
func (h *Handler) FastPath() http1.FastPath {
	lf, ok := h.cfg.Forwarder.(LoopForwarder)
	if !ok {
		return nil
	}
	return &fastPath{h: h, fwd: lf}
}

// fastPath serves through the event loops the requests ServeHTTP would
// forward without anything else: a route with no admission rules, no
// external authentication, no filter (but ingress-nginx's HSTS header) or
// other Gateway feature, and no access log to write (which needs
// ServeHTTP's counting writer). Every other request goes to ServeHTTP on a
// goroutine.
type fastPath struct {
	h   *Handler
	fwd LoopForwarder
}

var _ http1.FastPath = (*fastPath)(nil)

func (f *fastPath) NewLoopState() any { return f.fwd.NewLoopState() }

func (f *fastPath) Plan(state any, dst []byte, r *http.Request) ([]byte, string, any, bool) {
	h := f.h
	if h.cfg.AccessLog != nil {
		return dst, "", nil, false
	}
	table, route, refusal := h.match(r)
	if refusal != matched || !route.onlyForwards(r) {
		return dst, "", nil, false
	}
	served := route
	if len(route.Backend.Endpoints) == 0 && route.FallbackOnNoEndpoints && table.Fallback != nil {
		served = table.Fallback
	}
	head, endpoint, ok := state.(*upstream.LoopState).Plan(dst, r, served.Backend)
	if !ok {
		return dst, "", nil, false
	}
	if m := h.cfg.Metrics; m != nil {
		m.InFlight.Inc()
	}
	return head, endpoint, served, true
}

func (f *fastPath) Complete(state any, w http.ResponseWriter, r *http.Request, token any, resp []byte, start time.Time) http1.FastResult {
	res, out := state.(*upstream.LoopState).Complete(w, r, resp, loopOptions(token.(*Route), r))
	switch res {
	case upstream.LoopNeedMore:
		return http1.FastNeedMore
	case upstream.LoopContinue:
		return http1.FastContinue
	}
	f.end(token.(*Route), r, w, out, start)
	if res == upstream.LoopDone {
		return http1.FastDone
	}
	return http1.FastDoneClose
}

func (f *fastPath) Continue(w http.ResponseWriter, r *http.Request, token any, endpoint string, backend net.Conn, buffered []byte, start time.Time) {
	route := token.(*Route)
	out := f.fwd.ContinueHTTP1(w, r, route.Backend, endpoint, backend, buffered, loopOptions(route, r))
	f.end(route, r, w, out, start)
}

func (f *fastPath) Abandon(r *http.Request, token any, start time.Time) {
	route := token.(*Route)
	out := upstream.Outcome{Status: upstream.StatusClientClosedRequest}
	upstream.NoteOutcome(r, out)
	f.end(route, r, nil, out, start)
}

func (f *fastPath) TakeDial(r *http.Request) bool { return upstream.TakeDial(r) }
func (f *fastPath) RefundDial(r *http.Request)    { upstream.RefundDial(r) }

func (f *fastPath) Retract(any) {
	if m := f.h.cfg.Metrics; m != nil {
		m.InFlight.Dec()
	}
}

// end records an exchange as ServeHTTP does.
func (f *fastPath) end(route *Route, r *http.Request, w http.ResponseWriter, out upstream.Outcome, start time.Time) {
	h := f.h
	if out.Err != nil {
		h.logFailure(route, route.Backend, r, out)
	}
	if m := h.cfg.Metrics; m != nil {
		m.InFlight.Dec()
		h.observe(route, r, w, out.Status, start)
	}
}

// loopOptions returns what the loops apply to route's exchange for r,
// nil for nothing: the Strict-Transport-Security header of a route whose
// filter it is, on a request that came over TLS, and the route's per-read
// and per-write backend timeouts (Route.onlyLoopFeatures), which bound the
// exchange once it moves to a goroutine.
func loopOptions(route *Route, r *http.Request) *upstream.ForwardOptions {
	k := loopOptionsKey{read: route.Timeouts.BackendRead, send: route.Timeouts.BackendSend}
	if f := route.Filters; f != nil && f.HSTS != "" && r.TLS != nil {
		k.hsts = f.HSTS
	}
	if k == (loopOptionsKey{}) {
		return nil
	}
	if o, ok := loopOptionsByKey.Load(k); ok {
		return o.(*upstream.ForwardOptions)
	}
	o := &upstream.ForwardOptions{ReadTimeout: k.read, SendTimeout: k.send}
	if k.hsts != "" {
		// Capacity one: a later append to the header's values copies
		// them rather than writing into what every response shares.
		values := []string{k.hsts}[:1:1]
		o.EditResponseHeader = func(h http.Header) { h[hstsHeader] = values }
	}
	shared, _ := loopOptionsByKey.LoadOrStore(k, o)
	return shared.(*upstream.ForwardOptions)
}

// loopOptionsByKey holds one set of options per distinct value (a
// configuration has a few), so that the loops apply them without
// allocating.
var loopOptionsByKey sync.Map // loopOptionsKey -> *upstream.ForwardOptions

type loopOptionsKey struct {
	hsts       string
	read, send time.Duration
}
