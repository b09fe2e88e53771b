package routing

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"portico.dev/portico/upstream"
)

// CustomErrors replaces the backend's responses with listed status codes
// by the response of an error backend, as ingress-nginx's
// custom-http-errors does with its default backend: the client keeps the
// status code and gets the error backend's headers and body, never the
// original's. The error backend is asked with GET / (HEAD for HEAD) and
// the headers ingress-nginx sends it (X-Code, X-Format, X-Original-URI,
// X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port,
// X-Request-ID).
type CustomErrors struct {
	// Codes are the intercepted status codes (300 to 599), shared by the
	// routes of one Ingress.
	Codes []int
	// Backend is the error backend; nil means the table's Fallback (the
	// controller's default backend). With neither, nothing is intercepted.
	Backend *upstream.Backend
	// Namespace, Ingress, Service and Port name what the route serves,
	// for the X-Namespace, X-Ingress-Name, X-Service-Name and
	// X-Service-Port headers.
	Namespace, Ingress, Service, Port string
}

// errIntercepted stops the Forwarder copying an intercepted response's
// body: the backend connection is then closed rather than drained, so an
// error body of any size or speed never holds the request up, at the cost
// of one connection per intercepted response that had a body.
var errIntercepted = errors.New("response replaced by the custom error backend")

// errorInterceptor passes a response through unless its status is one of
// the route's listed codes; such a response's headers are cleared and its
// body is refused, and serveCustomErrors then fetches the error page.
type errorInterceptor struct {
	http.ResponseWriter
	codes []int
	// status is the intercepted code, 0 while passing through.
	status      int
	wroteHeader bool
}

func (e *errorInterceptor) WriteHeader(code int) {
	if e.wroteHeader || e.status != 0 {
		return
	}
	// 1xx (101 Switching Protocols included) are never intercepted: they
	// precede the final response, which is judged on its own.
	if code >= 200 && slices.Contains(e.codes, code) {
		e.status = code
		clear(e.ResponseWriter.Header())
		return
	}
	if code >= 200 {
		e.wroteHeader = true
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *errorInterceptor) Write(p []byte) (int, error) {
	if !e.wroteHeader && e.status == 0 {
		e.WriteHeader(http.StatusOK)
	}
	if e.status != 0 {
		return 0, errIntercepted
	}
	return e.ResponseWriter.Write(p)
}

// Flush passes flushes on unless the response is being replaced.
func (e *errorInterceptor) Flush() {
	if e.status == 0 {
		_ = http.NewResponseController(e.ResponseWriter).Flush()
	}
}

// Hijack refuses once the response is replaced, so a Forwarder cutting a
// truncated intercepted response does not cut the client's connection.
func (e *errorInterceptor) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if e.status != 0 {
		return nil, nil, http.ErrNotSupported
	}
	return http.NewResponseController(e.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the client's writer.
func (e *errorInterceptor) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// serveCustomErrors forwards r through forward with the route's listed
// codes intercepted, and answers an intercepted one with the error
// backend's response. It returns the status sent.
func (h *Handler) serveCustomErrors(w http.ResponseWriter, r *http.Request, table *Table, ce *CustomErrors, forward func(http.ResponseWriter) int) int {
	eb := ce.Backend
	if eb == nil && table.Fallback != nil {
		eb = table.Fallback.Backend
	}
	if eb == nil {
		return forward(w)
	}
	iw := &errorInterceptor{ResponseWriter: w, codes: ce.Codes}
	code := forward(iw)
	if iw.status == 0 {
		return code
	}
	return h.fetchErrorPage(w, r, ce, eb, iw.status)
}

// fetchErrorPage asks eb for the page of status and writes it; the
// existing upstream bounds (connect, response header and read timeouts)
// bound the exchange. An error backend the Ingress names (default-backend)
// answers with its own status, as nginx passes it: such a service exists
// to answer errors, and ingress-nginx's own returns X-Code. The fallback
// Service is the legacy site, not an error service: its page goes out
// with the intercepted status, so that a backend's error never reaches the
// client as the legacy site's 200. An error backend that does not answer
// gets the intercepted status with a short body of Portico's own.
func (h *Handler) fetchErrorPage(w http.ResponseWriter, r *http.Request, ce *CustomErrors, eb *upstream.Backend, status int) int {
	method := http.MethodGet
	if r.Method == http.MethodHead {
		method = http.MethodHead
	}
	hdr := http.Header{
		"X-Code":         {strconv.Itoa(status)},
		"X-Original-Uri": {r.RequestURI},
		"X-Namespace":    {ce.Namespace},
		"X-Ingress-Name": {ce.Ingress},
		"X-Service-Name": {ce.Service},
		"X-Service-Port": {ce.Port},
	}
	// Empty values are left out, as nginx leaves out an empty header.
	if accept := r.Header.Get("Accept"); accept != "" {
		hdr["X-Format"] = []string{accept}
	}
	if id := r.Header.Get("X-Request-Id"); id != "" {
		hdr["X-Request-Id"] = []string{id}
	}
	er := (&http.Request{
		Method:     method,
		URL:        &url.URL{Path: "/"},
		RequestURI: "/",
		Proto:      r.Proto,
		ProtoMajor: r.ProtoMajor,
		ProtoMinor: r.ProtoMinor,
		Header:     hdr,
		Body:       http.NoBody,
		Host:       r.Host,
		RemoteAddr: r.RemoteAddr,
		TLS:        r.TLS,
	}).WithContext(r.Context())
	pw := &statusWriter{ResponseWriter: w, status: status, own: ce.Backend != nil}
	out := h.cfg.Forwarder.ForwardWith(pw, er, eb, &upstream.ForwardOptions{
		// Called only for the backend's own responses: a response the
		// Forwarder generates is its failure to get one.
		EditResponseHeader: func(http.Header) { pw.answered = true },
	})
	if pw.answered {
		return status
	}
	if out.Err != nil {
		h.cfg.Logger.LogAttrs(r.Context(), slog.LevelWarn, "custom error backend failed",
			slog.String("backend", backendName(eb)), slog.Int("status", status), slog.String("error", out.Err.Error()))
	}
	clear(w.Header())
	writeText(w, status, strconv.Itoa(status)+" "+http.StatusText(status)+": the error page service did not answer\n")
	return status
}

// statusWriter writes the error backend's response, with its own status
// (own) or the intercepted one, and swallows a response the Forwarder
// generates itself.
type statusWriter struct {
	http.ResponseWriter
	status   int
	own      bool
	answered bool
	wrote    bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.answered || s.wrote || code < 200 {
		return
	}
	s.wrote = true
	if !s.own {
		code = s.status
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if !s.answered {
		return len(p), nil
	}
	s.WriteHeader(s.status)
	return s.ResponseWriter.Write(p)
}

func (s *statusWriter) Flush() {
	if s.answered {
		_ = http.NewResponseController(s.ResponseWriter).Flush()
	}
}

// Hijack is refused: an error page never switches protocols, and a
// truncated one is cut by the server when the handler returns.
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}

// Unwrap lets http.ResponseController reach the client's writer for
// deadlines.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
