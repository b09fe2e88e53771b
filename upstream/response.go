package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// writeResponse sends the backend's response to the client. complete
// reports whether the backend's body was read to its end, which the caller
// needs to decide whether the connection can be reused. backend bounds each
// read of the body by UpstreamReadTimeout; it is nil when the whole body is
// already buffered and no read can block.
func (t *Transport) writeResponse(w http.ResponseWriter, r *http.Request, resp *http.Response, o *ForwardOptions, backend readArmer) (complete bool, out Outcome) {
	h := w.Header()
	copyResponseHeader(h, resp.Header)
	if o != nil && o.EditResponseHeader != nil {
		o.EditResponseHeader(h)
	}
	if _, ok := h["Content-Type"]; !ok {
		// A present but nil Content-Type stops the inbound server from
		// sniffing one: the client sees what the backend sent.
		h["Content-Type"] = nil
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		h["Trailer"] = []string{trailerNames(resp.Trailer)}
	}
	w.WriteHeader(resp.StatusCode)
	out.Status = resp.StatusCode

	// A response without a length is a stream (server-sent events, long
	// polling, chunked progress output): flush after every read so nothing
	// is held back in the inbound server's buffers.
	var flush func() error
	if resp.ContentLength < 0 {
		if fl, ok := w.(http.Flusher); ok {
			flush = func() error { fl.Flush(); return nil }
		} else {
			flush = http.NewResponseController(w).Flush
		}
	}

	client := clientDeadlines{w: w, h1: r.ProtoMajor == 1}
	// A small body of known length cannot block on the client (see
	// smallResponse): it is written without a deadline.
	bounded := resp.ContentLength < 0 || resp.ContentLength > smallResponse
	clientErr, backendErr := t.copyResponseBody(w, resp.Body, flush, backend, readTimeout(o, t.upstreamReadTimeout), &client, bounded)
	if clientErr == nil && backendErr == nil {
		clientErr = client.doneWriting()
	}
	switch {
	case clientErr == nil && timeoutCause(r.Context()) != nil:
		// A route timeout ended the response midway: cut the client's
		// connection, as for a truncated backend response.
		out.Err = timeoutCause(r.Context())
		if grpcTrailers(w, r, http.StatusGatewayTimeout, out.Err.Error()) {
			return false, out
		}
		abortClient(w)
		return false, out
	case clientErr != nil || r.Context().Err() != nil:
		out.Status = StatusClientClosedRequest
		out.Err = clientErr
		if out.Err == nil {
			out.Err = context.Cause(r.Context())
		}
		return false, out
	case backendErr != nil:
		// Headers are gone already: the only honest signal left is to cut
		// the client's connection so the truncation is not mistaken for a
		// complete response.
		out.Err = &badResponseError{backendErr}
		if grpcTrailers(w, r, http.StatusBadGateway, "the backend's response was cut off") {
			return false, out
		}
		abortClient(w)
		return false, out
	}

	if len(resp.Trailer) > 0 {
		for k, vv := range resp.Trailer {
			if len(resp.Trailer) != announced {
				// Trailers the backend did not declare up front can still be
				// sent under the TrailerPrefix convention.
				k = http.TrailerPrefix + k
			}
			h[k] = vv
		}
	}
	return true, out
}

// grpcTrailers ends the HTTP/2 response to a gRPC call that failed after
// its headers were sent with the status Portico means by code, in the
// trailers where a gRPC client looks for it: otherwise the stream would
// just end, and the client would report a missing status rather than
// why. It reports false, doing nothing, for any other request.
func grpcTrailers(w http.ResponseWriter, r *http.Request, code int, msg string) bool {
	if r.ProtoMajor != 2 || !IsGRPC(r) {
		return false
	}
	h := w.Header()
	h[http.TrailerPrefix+"Grpc-Status"] = []string{strconv.Itoa(GRPCStatusOf(code))}
	h[http.TrailerPrefix+"Grpc-Message"] = []string{grpcMessage(strconv.Itoa(code) + " " + http.StatusText(code) + ": " + msg)}
	return true
}

// trailerNames joins the declared trailer names for the Trailer header.
func trailerNames(trailer http.Header) string {
	var sb strings.Builder
	for k := range trailer {
		if sb.Len() > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(k)
	}
	return sb.String()
}

// copyResponseBody copies the body with a pooled buffer, separating client
// write failures from backend read failures. Each read is bounded by
// read (the route's or UpstreamReadTimeout) through backend (when not nil), and, when bounded,
// each write by SendTimeout.
func (t *Transport) copyResponseBody(w io.Writer, body io.Reader, flush func() error, backend readArmer, read time.Duration, client *clientDeadlines, bounded bool) (clientErr, backendErr error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		if backend != nil {
			if err := backend.armRead(time.Now(), read); err != nil {
				return nil, err
			}
		}
		n, rerr := body.Read(buf)
		if n > 0 {
			if bounded {
				client.armWrite(time.Now(), t.sendTimeout)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return err, nil
			}
			if flush != nil {
				if err := flush(); err != nil {
					return err, nil
				}
			}
		}
		if rerr == io.EOF {
			return nil, nil
		}
		if rerr != nil {
			if errors.Is(rerr, os.ErrDeadlineExceeded) {
				rerr = errors.Join(errUpstreamReadTimeout, rerr)
			}
			return nil, rerr
		}
	}
}

// abortClient closes the client's HTTP/1.x connection after a partial
// response. HTTP/2 responses cannot be hijacked; for them the inbound server
// ends the stream itself, and a declared Content-Length that was not met
// makes it reset the stream.
func abortClient(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
	}
}
