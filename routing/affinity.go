package routing

import (
	"net/http"

	"portico.dev/portico/upstream"
)

// setCookie returns the forward options that add a session cookie to the
// backend's response, or nil (the options of every other Ingress request)
// when there is none to add. Only the first request of a session pays for
// the options; the cookie is added after the backend's headers are copied,
// so a Set-Cookie of the backend's own does not replace it.
func setCookie(cookie string) *upstream.ForwardOptions {
	if cookie == "" {
		return nil
	}
	return &upstream.ForwardOptions{EditResponseHeader: func(h http.Header) { h.Add("Set-Cookie", cookie) }}
}
