// Package http1 is Portico's HTTP/1.x server engine: it serves accepted
// connections, plain or TLS, with an ordinary http.Handler, so that the
// routing core (routing, filters, fallback, metrics, access log, upstream)
// is the same whichever engine runs the front door.
//
// # Why it exists
//
// net/http's server spends per request a background read goroutine, read
// deadline changes, goroutine handoffs and twenty-odd allocations. This
// engine runs each connection to completion on one goroutine: it reads a
// head, calls the handler inline (the backend exchange happens on that
// goroutine), writes a small response's status line, fields and body in one
// write, and reads the next head. The request, its context, header map,
// URL, value slices, response writer and buffers are reused for every
// request of a connection; a keep-alive request without a body costs one
// allocation in the engine, the head's string (TestServeAllocs).
//
// github.com/valyala/fasthttp (v1.79.0 was read) would give the same
// one-goroutine loop, but its handler type is func(*fasthttp.RequestCtx):
// using it would mean a second routing core beside the http.Handler one
// that HTTP/2 needs. Its adaptor for http.Handler (fasthttpadaptor) runs
// the handler on another goroutine per request and, as its documentation
// says, buffers the whole request body before calling it, so uploads do
// not stream and http.ResponseController.SetReadDeadline cannot bound them.
// Beyond that, for this use: RequestCtx.Done is closed only when the server
// shuts down, so a client that goes away does not cancel its request; and
// the only informational response it can send is EarlyHints, a 103
// carrying only Link fields, so a backend's other 1xx responses cannot be
// relayed.
//
// # Protocol
//
// Parsing is strict (RFC 9112): anything outside the grammar is refused
// with 400 (431 for a head over MaxHeaderBytes, 501 for a transfer coding
// other than chunked, 505 for a version other than 1.0 and 1.1, 417 for an
// expectation other than 100-continue) and the connection closed. Nothing
// is repaired: no bare LF or CR, no obs-fold, no whitespace before a
// colon, no Content-Length that is not all digits or that differs from
// another, no Transfer-Encoding on HTTP/1.0, never both framings.
//
// # Handler contract
//
// The *http.Request, its Header, URL and Trailer, and the ResponseWriter
// are reused for the connection's next request: a handler may keep
// references to them only until ServeHTTP returns (copies made with
// r.WithContext or r.Clone are fine to keep, subject to the same rule for
// the maps they share; Clone copies them). The body may be read after
// ServeHTTP returns only to get an error, as with net/http. The request
// context is cancelled when ServeHTTP returns, when the client goes away
// (see conn.armWatch) and when Close is called; Shutdown lets requests in
// flight finish. The context is re-armed for the next request when nothing
// can still be watching it (see requestContext): a handler that calls its
// AfterFunc method directly must call the stop function it returns before
// ServeHTTP returns; context.AfterFunc, Done and derived contexts need no
// care. ResponseWriter.HeaderValues lends value slices for Header that live
// as long as the request.
//
// # HTTP/2
//
// HTTP/2 is not served here. ServeTLS hands connections that negotiated
// "h2" to a callback, and a plain connection that opens with the HTTP/2
// preface goes to Server.H2C when set, so that net/http's HTTP/2 server,
// with its flood defences, serves both.
//
// The ResponseWriter implements http.Flusher, http.Hijacker, io.StringWriter
// and, for http.NewResponseController, FlushError, SetReadDeadline,
// SetWriteDeadline and EnableFullDuplex. WriteHeader with a 1xx status
// other than 101 sends it at once; as with net/http the header map is kept
// for the final response. Expect: 100-continue is answered with 100 when
// the handler first reads the body.
package http1
