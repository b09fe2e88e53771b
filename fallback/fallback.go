// Package fallback owns what happens to a request that no route claims: it
// goes to the legacy-fallback backend, typically a selector-less Service whose
// hand-written Endpoints point at the site outside the cluster that has not
// been migrated yet. With no fallback configured, such a request gets a short
// 404.
//
// The fallback also answers for a matched route whose backend has no ready
// endpoints when the route opts in (the Ingress annotation
// portico.dev/fallback-on-no-endpoints: "true"), so a component can be
// scaled to zero during a migration without breaking its URLs.
package fallback

import (
	"net/http"
	"slices"
)

// PortName is the fallback Service port Portico sends traffic to when the
// Service has several; with a single port, that port is used whatever its
// name.
const PortName = "http"

// Port picks the fallback Service's port from the names of its ports, in
// spec order: the one named PortName, or else the first. It returns -1 for
// a Service without ports. It takes names rather than the Service so that
// this package, which the routing tier imports, knows nothing of the
// Kubernetes API; the builder reads the Service.
func Port(names []string) int {
	if i := slices.Index(names, PortName); i >= 0 {
		return i
	}
	if len(names) > 0 {
		return 0
	}
	return -1
}

// notFoundBody is short and says why, so a user debugging with curl can tell
// Portico's 404 from a backend's.
const notFoundBody = "404 Not Found: no route matches this host and path, and no fallback backend is configured\n"

// NotFound answers a request that no route matched when there is no fallback
// backend. It returns the status written.
func NotFound(w http.ResponseWriter) int {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(notFoundBody))
	return http.StatusNotFound
}
