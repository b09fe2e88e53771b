package http1

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// requestContext is the context of the requests of one connection. A
// context.WithCancel per request, the http.Request copy WithContext makes
// for it, and the context.AfterFunc with which the backend leg watches it
// cost seven allocations per request between them; this context avoids
// them all in the common case by being re-armed for the connection's next
// request instead of made anew:
//
//   - AfterFunc is a method, which context.AfterFunc and propagateCancel
//     use instead of starting a goroutine. Called directly (the backend
//     leg does), it takes one of a few slots with a stop function built
//     once, so it allocates nothing.
//   - The Done channel is made only when asked for.
//
// Re-arming is safe only if nothing can still be watching the old request,
// so a context is reused only when, at the end of its request, Done was
// never called (whoever called it may hold the channel; propagateCancel,
// under every context derived from this one, calls it first) and every
// direct AfterFunc was stopped or has run. Otherwise the next request gets
// a new context. Direct AfterFunc callers must call stop before ServeHTTP
// returns, as the backend leg does.
type requestContext struct {
	// values answers Value: the connection's context without its
	// cancellation, so that context.Cause finds no cancelCtx of the
	// connection's and falls back to Err.
	values context.Context
	// stopConn ends the registration that cancels this context when the
	// connection's context ends.
	stopConn func() bool

	mu    sync.Mutex
	done  chan struct{}
	err   error
	funcs [afterSlots]func()
	stops [afterSlots]func() bool
	// overflow holds registrations beyond the slots; a context that had
	// any is not reused.
	overflow map[*int]func()
}

const afterSlots = 2

func newRequestContext(conn context.Context) *requestContext {
	rc := &requestContext{values: context.WithoutCancel(conn)}
	for i := range rc.stops {
		rc.stops[i] = func() bool { return rc.stopSlot(i) }
	}
	rc.stopConn = context.AfterFunc(conn, func() { rc.cancel(context.Canceled) })
	return rc
}

func (rc *requestContext) Deadline() (time.Time, bool) { return rc.values.Deadline() }
func (rc *requestContext) Value(key any) any           { return rc.values.Value(key) }

func (rc *requestContext) Done() <-chan struct{} {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.done == nil {
		rc.done = make(chan struct{})
		if rc.err != nil {
			close(rc.done)
		}
	}
	return rc.done
}

func (rc *requestContext) Err() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.err
}

// AfterFunc arranges for f to run on its own goroutine once the context is
// cancelled, as context.AfterFunc does.
func (rc *requestContext) AfterFunc(f func()) (stop func() bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.err != nil {
		go f()
		return stopNothing
	}
	for i, g := range rc.funcs {
		if g == nil {
			rc.funcs[i] = f
			return rc.stops[i]
		}
	}
	key := new(int)
	if rc.overflow == nil {
		rc.overflow = map[*int]func(){}
	}
	rc.overflow[key] = f
	return func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		_, ok := rc.overflow[key]
		delete(rc.overflow, key)
		return ok
	}
}

func stopNothing() bool { return false }

func (rc *requestContext) stopSlot(i int) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	stopped := rc.funcs[i] != nil
	rc.funcs[i] = nil
	return stopped
}

// cancel ends the request: Err reports err, Done is closed and the
// registered functions start.
func (rc *requestContext) cancel(err error) {
	rc.mu.Lock()
	if rc.err != nil {
		rc.mu.Unlock()
		return
	}
	rc.err = err
	if rc.done != nil {
		close(rc.done)
	}
	var run [afterSlots]func()
	n := 0
	for i, f := range rc.funcs {
		if f != nil {
			run[n] = f
			n++
			rc.funcs[i] = nil
		}
	}
	overflow := rc.overflow
	rc.mu.Unlock()
	for _, f := range run[:n] {
		go f()
	}
	for _, f := range overflow {
		go f()
	}
}

// end cancels the context at the end of its request and reports whether
// it may be re-armed for the next one.
func (rc *requestContext) end() (reusable bool) {
	rc.mu.Lock()
	pending := false
	for _, f := range rc.funcs {
		pending = pending || f != nil
	}
	reusable = rc.done == nil && rc.overflow == nil && !pending
	rc.mu.Unlock()
	rc.cancel(context.Canceled)
	if !reusable {
		rc.stopConn()
	}
	return reusable
}

// rearm makes an ended, reusable context live again for the next request.
func (rc *requestContext) rearm() {
	rc.mu.Lock()
	rc.err = nil
	rc.mu.Unlock()
}

// setRequest fills r, bound to a request context, for a new request. Every
// exported field is set, since r may be the previous request's; the
// unexported ones besides the context are only set by http.ServeMux (see
// reusableRequest).
func setRequest(r *http.Request, fields *http.Request) {
	r.Method = fields.Method
	r.URL = fields.URL
	r.Proto = fields.Proto
	r.ProtoMajor = fields.ProtoMajor
	r.ProtoMinor = fields.ProtoMinor
	r.Header = fields.Header
	r.Body = fields.Body
	r.GetBody = nil
	r.ContentLength = fields.ContentLength
	r.TransferEncoding = fields.TransferEncoding
	r.Close = fields.Close
	r.Host = fields.Host
	r.Form = nil
	r.PostForm = nil
	r.MultipartForm = nil
	r.Trailer = fields.Trailer
	r.RemoteAddr = fields.RemoteAddr
	r.RequestURI = fields.RequestURI
	r.TLS = fields.TLS
	//lint:ignore SA1019 cleared, not used: a handler may have set it
	r.Cancel = nil
	r.Response = nil
	r.Pattern = ""
}

// reusableRequest reports whether r can be filled again by setRequest: not
// if an http.ServeMux matched it, which leaves unexported pattern state
// (Pattern tells).
func reusableRequest(r *http.Request) bool { return r.Pattern == "" }
