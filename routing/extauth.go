package routing

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ExternalAuth asks an authentication service about each request before
// the route serves it, as nginx's auth_request does for ingress-nginx's
// auth-url annotation: a 2xx answer lets the request through (with the
// listed headers of the answer copied onto it), 401 and 403 are passed to
// the client (401 becomes a redirect to SignIn when set), and anything
// else, an unreachable service included, answers 500.
type ExternalAuth struct {
	// URL is the service's absolute http or https URL. It may hold $host,
	// $scheme, $request_uri and $escaped_request_uri, expanded per request.
	URL string
	// Method of the subrequest; "" is GET.
	Method string
	// ResponseHeaders are copied from a 2xx answer onto the request sent
	// to the backend.
	ResponseHeaders []string
	// SignIn, when set, is where a 401 answer redirects the client (302),
	// with the original URL in the query parameter SignInParam ("rd").
	SignIn      string
	SignInParam string
	// RequestRedirect, when set, is the X-Auth-Request-Redirect value the
	// service is sent (with the variables URL may hold), instead of the
	// request's target.
	RequestRedirect string
	// AlwaysSetCookie passes the service's Set-Cookie to the client
	// whatever the response's status; otherwise only with a status nginx
	// adds headers to (2xx and redirects, see cookieStatus).
	AlwaysSetCookie bool
}

// DefaultExternalAuthTimeout bounds one subrequest to an authentication
// service when HandlerConfig sets none.
const DefaultExternalAuthTimeout = 5 * time.Second

const authFailedBody = "500 Internal Server Error: the authentication service did not answer\n"

// authClient sends the subrequests. Redirects are not followed: an
// answer other than 2xx, 401 or 403 is a failure, as in nginx.
func newAuthClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// externalAuth runs the subrequest for r and returns 0 to go on, or the
// status it answered the client with.
//
// The service's Set-Cookie (an oauth2-proxy session refreshed, say) goes to
// the client as nginx's auth_request_set and add_header send it: on the
// response w receives, which withAuthCookies returns.
func (h *Handler) externalAuth(w http.ResponseWriter, r *http.Request, ea *ExternalAuth) (http.ResponseWriter, int) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	expand := strings.NewReplacer(
		"$escaped_request_uri", url.QueryEscape(r.RequestURI),
		"$request_uri", r.RequestURI,
		"$scheme", scheme,
		"$host", hostOnly(r.Host),
	)
	target := expand.Replace(ea.URL)
	method := ea.Method
	if method == "" {
		method = http.MethodGet
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.authClient.Timeout)
	defer cancel()
	sub, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return w, h.authFailed(w, r, target, err)
	}
	// The service sees the client's headers, as nginx's subrequest does,
	// and where the request was going.
	for k, vv := range r.Header {
		switch k {
		case "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Expect":
			continue
		}
		sub.Header[k] = vv
	}
	original := scheme + "://" + r.Host + r.RequestURI
	sub.Header.Set("X-Original-URL", original)
	sub.Header.Set("X-Original-Method", r.Method)
	redirect := r.RequestURI
	if ea.RequestRedirect != "" {
		redirect = expand.Replace(ea.RequestRedirect)
	}
	sub.Header.Set("X-Auth-Request-Redirect", redirect)
	sub.Header.Set("X-Forwarded-Host", r.Host)
	sub.Header.Set("X-Forwarded-Proto", scheme)
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		sub.Header.Set("X-Real-IP", host)
	}
	resp, err := h.authClient.Do(sub)
	if err != nil {
		return w, h.authFailed(w, r, target, err)
	}
	// The answer's body is not used; a little of it is read so that the
	// connection can be kept.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	cookies := resp.Header.Values("Set-Cookie")
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		for _, name := range ea.ResponseHeaders {
			if v := resp.Header.Values(name); len(v) > 0 {
				r.Header[http.CanonicalHeaderKey(name)] = v
			}
		}
		if len(cookies) > 0 {
			w = &authCookieWriter{ResponseWriter: w, cookies: cookies, always: ea.AlwaysSetCookie}
		}
		return w, 0
	case resp.StatusCode == http.StatusUnauthorized && ea.SignIn != "":
		loc := expand.Replace(ea.SignIn)
		param := ea.SignInParam
		if param == "" {
			param = "rd"
		}
		if u, err := url.Parse(loc); err == nil && !u.Query().Has(param) {
			sep := "?"
			if strings.Contains(loc, "?") {
				sep = "&"
			}
			loc += sep + param + "=" + url.QueryEscape(original)
		}
		w.Header().Set("Location", loc)
		// A redirect is a status nginx adds the cookie to.
		w.Header()["Set-Cookie"] = append(w.Header()["Set-Cookie"], cookies...)
		writeText(w, http.StatusFound, "302 Found: sign in first\n")
		return w, http.StatusFound
	case resp.StatusCode == http.StatusUnauthorized:
		for _, v := range resp.Header.Values("Www-Authenticate") {
			w.Header().Add("Www-Authenticate", v)
		}
		if ea.AlwaysSetCookie {
			w.Header()["Set-Cookie"] = append(w.Header()["Set-Cookie"], cookies...)
		}
		writeText(w, http.StatusUnauthorized, "401 Unauthorized\n")
		return w, http.StatusUnauthorized
	case resp.StatusCode == http.StatusForbidden:
		if ea.AlwaysSetCookie {
			w.Header()["Set-Cookie"] = append(w.Header()["Set-Cookie"], cookies...)
		}
		writeText(w, http.StatusForbidden, "403 Forbidden\n")
		return w, http.StatusForbidden
	}
	h.cfg.Logger.LogAttrs(r.Context(), slog.LevelWarn, "authentication service answered neither 2xx, 401 nor 403",
		slog.String("url", target), slog.Int("status", resp.StatusCode))
	writeText(w, http.StatusInternalServerError, authFailedBody)
	return w, http.StatusInternalServerError
}

func (h *Handler) authFailed(w http.ResponseWriter, r *http.Request, target string, err error) int {
	h.cfg.Logger.LogAttrs(r.Context(), slog.LevelWarn, "authentication service failed",
		slog.String("url", target), slog.String("error", err.Error()))
	writeText(w, http.StatusInternalServerError, authFailedBody)
	return http.StatusInternalServerError
}

func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return strings.Trim(h, "[]")
	}
	return host
}

// authCookieWriter adds an auth-url service's Set-Cookie to the response,
// after the backend's own fields, when the status is one nginx's
// add_header applies to (or always, with auth-always-set-cookie).
type authCookieWriter struct {
	http.ResponseWriter
	cookies []string
	always  bool
	done    bool
}

func (w *authCookieWriter) WriteHeader(code int) {
	if !w.done && code >= 200 {
		w.done = true
		if w.always || cookieStatus(code) {
			h := w.ResponseWriter.Header()
			h["Set-Cookie"] = append(h["Set-Cookie"], w.cookies...)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *authCookieWriter) Write(p []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *authCookieWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *authCookieWriter) Flush() {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// cookieStatus reports a status nginx's add_header adds fields to.
func cookieStatus(code int) bool {
	switch code {
	case 200, 201, 204, 206, 301, 302, 303, 304, 307, 308:
		return true
	}
	return false
}
