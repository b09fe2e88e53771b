package routing

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"portico.dev/portico/fallback"
	"portico.dev/portico/internal/unset"
	"portico.dev/portico/metrics"
	"portico.dev/portico/upstream"
)

// Forwarder proxies one request to a backend and writes the response; the
// upstream Transport is the production one. o is nil for Ingress routes.
type Forwarder interface {
	ForwardWith(w http.ResponseWriter, r *http.Request, b *upstream.Backend, o *upstream.ForwardOptions) upstream.Outcome
}

// HandlerConfig wires the routing tier to the rest of the process.
type HandlerConfig struct {
	// Table returns the route table of the serving snapshot. It is called
	// once per request, so one request sees one consistent table even while
	// a new snapshot is being published.
	Table func() *Table
	// Forwarder sends matched requests to their backend.
	Forwarder Forwarder
	// Metrics records per-route latency; nil disables it.
	Metrics *metrics.Metrics
	// HTTPSPort is the port plain-HTTP requests are redirected to when their
	// route asks for HTTPS; 443 is left out of the redirect URL.
	HTTPSPort int
	Logger    *slog.Logger
	// AccessLog, when set, gets one record per request (see accesslog.go);
	// nil turns access logging off at the cost of one nil check.
	AccessLog *slog.Logger
	// BodyLimits bound what the routing tier buffers for mirrors and
	// retries; zero fields take the defaults.
	BodyLimits
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// a route's Admission address ranges are checked against.
	TrustedProxies []netip.Prefix
	// ExternalAuthTimeout bounds each subrequest to a route's
	// authentication service (ExternalAuth); zero means
	// DefaultExternalAuthTimeout.
	ExternalAuthTimeout time.Duration
	// BasicAuthCacheSize bounds the bcrypt and MD5-crypt acceptances
	// BasicAuth checks remember (basicauth.go); zero means
	// DefaultBasicAuthCacheSize.
	BasicAuthCacheSize int
}

// BodyLimits bound the request bodies the routing tier holds in memory.
type BodyLimits struct {
	// MirrorBodyLimit is the largest request body copied to RequestMirror
	// backends; a request with a larger body is not mirrored. Default
	// DefaultMirrorBodyLimit.
	MirrorBodyLimit int64
	// MaxMirrorsInFlight caps the mirror requests in progress; mirrors
	// beyond it are dropped, so a slow mirror backend never holds up
	// anything. Default DefaultMaxMirrorsInFlight.
	MaxMirrorsInFlight int
	// RetryBodyLimit is the largest request body buffered so that a route
	// with a Retry policy can send it again; a request with a larger body
	// is sent once. Default DefaultRetryBodyLimit.
	RetryBodyLimit int64
}

// Defaults for the zero mirror fields of HandlerConfig.
const (
	DefaultMirrorBodyLimit    = 64 << 10
	DefaultMaxMirrorsInFlight = 256
)

// Handler serves every request, plain or TLS, HTTP/1.1 or HTTP/2, from the
// route table of the serving snapshot.
type Handler struct {
	cfg HandlerConfig
	// authClient sends ExternalAuth subrequests.
	authClient *http.Client
	// mirrorSlots holds one token per mirror request in progress.
	mirrorSlots chan struct{}
	// verified remembers the credentials bcrypt or MD5-crypt accepted.
	verified *verifiedCache
}

// NewHandler returns the routing tier's http.Handler.
func NewHandler(cfg HandlerConfig) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	unset.Default(&cfg.HTTPSPort, 443)
	unset.Default(&cfg.MirrorBodyLimit, DefaultMirrorBodyLimit)
	unset.Default(&cfg.RetryBodyLimit, DefaultRetryBodyLimit)
	unset.Default(&cfg.MaxMirrorsInFlight, DefaultMaxMirrorsInFlight)
	unset.Default(&cfg.ExternalAuthTimeout, DefaultExternalAuthTimeout)
	unset.Default(&cfg.BasicAuthCacheSize, DefaultBasicAuthCacheSize)
	return &Handler{cfg: cfg, mirrorSlots: make(chan struct{}, cfg.MaxMirrorsInFlight), authClient: newAuthClient(cfg.ExternalAuthTimeout),
		verified: newVerifiedCache(cfg.BasicAuthCacheSize)}
}

const badRequestLineMsg = "invalid request method, target or authority"

const notReadyMsg = "Portico has not loaded its configuration yet"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if m := h.cfg.Metrics; m != nil {
		m.InFlight.Inc()
		defer m.InFlight.Dec()
	}
	if h.cfg.AccessLog == nil {
		if route, code := h.serve(w, r, start); route != nil {
			h.observe(route, r, w, code, start)
		}
		return
	}
	uri := r.RequestURI // before the path is cleaned: what the client sent
	cw := &countingWriter{ResponseWriter: w}
	route, code := h.serve(cw, r, start)
	if route != nil {
		h.observe(route, r, w, code, start)
		if route.NoAccessLog {
			return
		}
	}
	h.logAccess(r, uri, route, w, code, cw.bytes, start)
}

// grpcStatus returns the grpc-status a gRPC call was answered with ("" for
// none), and whether r is a gRPC call at all. Only HTTP/2 carries gRPC, so
// an HTTP/1.x request costs one comparison. The status is in the headers
// of a trailers-only answer, else in the trailers, which the upstream
// Transport sets under http.TrailerPrefix when the backend did not
// declare them.
func grpcStatus(r *http.Request, w http.ResponseWriter) (status string, ok bool) {
	if r.ProtoMajor != 2 || !upstream.IsGRPC(r) {
		return "", false
	}
	h := w.Header()
	if v := h["Grpc-Status"]; len(v) > 0 {
		return v[0], true
	}
	if v := h[http.TrailerPrefix+"Grpc-Status"]; len(v) > 0 {
		return v[0], true
	}
	return "", true
}

// Why match found no route to serve a request with.
const (
	matched = iota
	refuseNotReady
	refuseRequestLine
	refuseMisdirected
	refuseNoRoute
)

// match finds the route that serves r in the serving table, cleaning r's
// path first when it has dot or empty segments, or says why there is
// none. Both ServeHTTP and the event loops' Plan start here.
func (h *Handler) match(r *http.Request) (table *Table, route *Route, refusal int) {
	table = h.cfg.Table()
	if table == nil {
		return nil, nil, refuseNotReady
	}
	// Before anything reads the request: a method, target or authority
	// that is not valid HTTP/1.1 syntax (only HTTP/2 can deliver one) would
	// be routed on one meaning and reach the backend with another.
	if !upstream.ValidRequestLine(r.Method, r.RequestURI, r.Host) {
		return table, nil, refuseRequestLine
	}
	if table.misdirected(r) {
		return table, nil, refuseMisdirected
	}
	reqPath := r.URL.Path
	if !isClean(reqPath) {
		reqPath = cleanPath(reqPath)
		// Forward the path that was matched, so that "/public/../admin"
		// cannot reach a backend's /admin through the route for /public.
		u := url.URL{Path: reqPath, RawQuery: r.URL.RawQuery}
		r.URL.Path, r.URL.RawPath = reqPath, ""
		r.RequestURI = u.RequestURI()
	}
	route = table.MatchRequest(r, reqPath)
	if route == nil {
		route = table.Fallback
	}
	if route == nil {
		return table, nil, refuseNoRoute
	}
	return table, route, matched
}

// onlyForwards reports whether serve, having matched route for r, does
// nothing but forward it: the event loops serve only such requests
// (fastPath). Every check serve makes before forwarding belongs here too.
// A route with a retry policy or a timeout of its own is not served by the
// loops (Timeouts.Connect included): they connect without a bound of their
// own and hand an exchange to a goroutine only after a second, so a
// per-route bound below that would not hold there. Per-read bounds of a
// second or more and per-write bounds are the exception
// (onlyLoopFeatures), the goroutine applying them.
func (route *Route) onlyForwards(r *http.Request) bool {
	return (route.Admission == nil || route.Admission.onlyBoundsBody(r)) && route.BasicAuth == nil && route.ClientCert == nil && route.ExternalAuth == nil && route.CustomErrors == nil &&
		!(route.RedirectHTTPS && r.TLS == nil) && (!route.usesGatewayFeatures() || route.onlyLoopFeatures())
}

// serve answers r and returns the route whose series records it (nil
// before the first configuration) and the status sent.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, start time.Time) (*Route, int) {
	table, route, refusal := h.match(r)
	switch refusal {
	case refuseNotReady:
		writeError(w, r, http.StatusServiceUnavailable, notReadyMsg)
		return nil, http.StatusServiceUnavailable
	case refuseRequestLine:
		writeError(w, r, http.StatusBadRequest, badRequestLineMsg)
		return table.notFound(), http.StatusBadRequest
	case refuseMisdirected:
		writeText(w, http.StatusMisdirectedRequest, misdirectedBody)
		return table.notFound(), http.StatusMisdirectedRequest
	case refuseNoRoute:
		if upstream.IsGRPC(r) {
			upstream.WriteGRPCError(w, http.StatusNotFound, "no route serves this call")
			return table.notFound(), http.StatusNotFound
		}
		return table.notFound(), fallback.NotFound(w)
	}
	reqPath := r.URL.Path
	// One nil check for routes without admission rules. The order is
	// nginx's: the body size is checked when the route is found, the HTTPS
	// and other redirects next, the client address last.
	adm := route.Admission
	// nginx checks the client certificate as soon as it has read the
	// request's header, before finding its location: before the body
	// size and any redirect. A plain-HTTP request sent to HTTPS is not
	// checked, as it carries no certificate to check.
	if cc := route.ClientCert; cc != nil && !(route.RedirectHTTPS && r.TLS == nil) {
		if code := h.clientCert(w, r, cc, start); code != 0 {
			return route, code
		}
	}
	if adm != nil {
		if code := adm.checkBody(w, r); code != 0 {
			return route, code
		}
	}
	if route.RedirectHTTPS && r.TLS == nil {
		h.redirectHTTPS(w, r)
		return route, http.StatusPermanentRedirect
	}
	// nginx's preaccess phase (limit_req, limit_conn) runs before its
	// access phase (allow, deny), and after its rewrites.
	if adm != nil && adm.Limit != nil && !route.redirects() {
		client, _ := clientAddr(r, h.cfg.TrustedProxies)
		budget, ok := adm.Limit.admit(client, start)
		if !ok {
			writeText(w, http.StatusServiceUnavailable, tooManyRequestsBody)
			return route, http.StatusServiceUnavailable
		}
		defer adm.Limit.done(budget)
	}
	authenticate := true
	if route.SatisfyAny && (route.BasicAuth != nil || route.ExternalAuth != nil) && !route.redirects() {
		// nginx's satisfy any: an address the allow list grants skips the
		// authentication; any other goes to it, a denied one included.
		authenticate = !adm.grantsSource(r, h.cfg.TrustedProxies)
	} else if adm != nil && !route.redirects() && !adm.admitsSource(r, h.cfg.TrustedProxies) {
		writeText(w, http.StatusForbidden, forbiddenBody)
		return route, http.StatusForbidden
	}
	// Both checks are what the route asked for: only its requests pay.
	if ba := route.BasicAuth; ba != nil && !route.redirects() && (authenticate || ba.Unavailable) {
		if code := h.basicAuth(w, r, ba); code != 0 {
			return route, code
		}
	}
	if ea := route.ExternalAuth; ea != nil && !route.redirects() && authenticate {
		var code int
		if w, code = h.externalAuth(w, r, ea); code != 0 {
			return route, code
		}
	}
	if route.BasicAuth != nil {
		// ingress-nginx's locations with basic authentication clear the
		// credentials before the backend (proxy_set_header Authorization
		// ""), the authentication service of auth-url still seeing them.
		r.Header.Del("Authorization")
	}

	if ce := route.CustomErrors; ce != nil {
		var served *Route
		code := h.serveCustomErrors(w, r, table, ce, func(w http.ResponseWriter) (code int) {
			served, code = h.forward(w, r, table, route, reqPath, start)
			return code
		})
		return served, code
	}
	return h.forward(w, r, table, route, reqPath, start)
}

// forward sends r to route's backend, through its Gateway API features
// when it has some, and returns the route whose series records it and the
// status sent.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, table *Table, route *Route, reqPath string, start time.Time) (*Route, int) {
	if route.usesGatewayFeatures() {
		return route, h.serveFiltered(w, r, route, reqPath, start)
	}

	served := route
	if len(route.Backend.Endpoints) == 0 && route.FallbackOnNoEndpoints && table.Fallback != nil {
		// The component is scaled to zero or not deployed yet: the legacy
		// site still answers for it, and the fallback's metrics show it.
		served = table.Fallback
	}
	// Affinity costs a route without it a nil check (upstream/affinity.go).
	b, cookie := served.Backend, ""
	if b != nil {
		b, cookie = b.Sticky(r)
	}
	out := h.cfg.Forwarder.ForwardWith(w, r, b, setCookie(cookie))
	if out.Err != nil {
		h.logFailure(served, b, r, out)
	}
	return served, out.Status
}

func (h *Handler) observe(route *Route, r *http.Request, w http.ResponseWriter, code int, start time.Time) {
	m := h.cfg.Metrics
	if m == nil {
		return
	}
	s := route.series.Load()
	if s == nil {
		s = m.Route(route.MetricLabels())
		route.series.Store(s)
	}
	s.Observe(r.Method, code, time.Since(start).Seconds())
	if status, ok := grpcStatus(r, w); ok {
		s.ObserveGRPC(status)
	}
}

// MetricLabels are the labels of the route's request-duration series.
func (r *Route) MetricLabels() metrics.RouteLabels {
	s := r.Source
	return metrics.RouteLabels{Kind: s.Kind, Namespace: s.Namespace, Name: s.Name, Rule: s.Rule}
}

func (h *Handler) logFailure(route *Route, b *upstream.Backend, r *http.Request, out upstream.Outcome) {
	if errors.Is(out.Err, errIntercepted) {
		// The response was replaced by its error page, not lost.
		return
	}
	level := slog.LevelWarn
	if out.Status == 499 {
		// The client gave up; nothing is wrong on our side.
		level = slog.LevelDebug
	}
	h.cfg.Logger.LogAttrs(r.Context(), level, "proxy failed",
		slog.String("route", route.Source.String()),
		slog.String("backend", backendName(b)),
		slog.Int("status", out.Status),
		slog.String("error", out.Err.Error()))
}

// redirectHTTPS answers with a permanent redirect to the same URL over
// HTTPS. 308 keeps the method and body, unlike 301.
func (h *Handler) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if hst, _, err := net.SplitHostPort(host); err == nil {
		host = hst
	}
	if h.cfg.HTTPSPort != 443 {
		host = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(h.cfg.HTTPSPort))
	}
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") {
		uri = r.URL.RequestURI()
	}
	w.Header().Set("Location", "https://"+host+uri)
	writeText(w, http.StatusPermanentRedirect, "308 Permanent Redirect: this route is served over HTTPS\n")
}

func backendName(b *upstream.Backend) string {
	if b == nil {
		return "<none>"
	}
	return b.Name
}

func (s Source) String() string {
	if s.Rule == "" {
		return s.Kind + " " + s.Namespace + "/" + s.Name
	}
	return s.Kind + " " + s.Namespace + "/" + s.Name + " rule " + s.Rule
}

// writeError answers with an error of Portico's own: the text body
// "<code> <reason>: <msg>", or for a gRPC call the gRPC status the code
// means (upstream.WriteGRPCError), which a gRPC client can read.
func writeError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if upstream.IsGRPC(r) {
		upstream.WriteGRPCError(w, code, msg)
		return
	}
	writeText(w, code, strconv.Itoa(code)+" "+http.StatusText(code)+": "+msg+"\n")
}

func writeText(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// isClean reports whether a request path has no dot segments and no empty
// segments, which is true of almost every request; only the others pay for
// cleaning.
func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return p == "*" // OPTIONS * has no path to clean
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' || i+1 == len(p) {
			continue
		}
		switch p[i+1] {
		case '/':
			return false
		case '.':
			rest := p[i+2:]
			if rest == "" || rest[0] == '/' || (rest[0] == '.' && (len(rest) == 1 || rest[1] == '/')) {
				return false
			}
		}
	}
	return true
}

// cleanPath removes dot segments and repeated slashes as RFC 3986 section
// 5.2.4 describes, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	cleaned := path.Clean(p)
	if strings.HasSuffix(p, "/") && cleaned != "/" {
		cleaned += "/"
	}
	return cleaned
}
