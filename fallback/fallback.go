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

	corev1 "k8s.io/api/core/v1"
)

// PortName is the fallback Service port Portico sends traffic to when the
// Service has several; with a single port, that port is used whatever its
// name.
const PortName = "http"

// ServicePort picks the fallback Service's port: the one named "http", or
// else the first. It returns nil for a Service without ports.
func ServicePort(svc *corev1.Service) *corev1.ServicePort {
	ports := svc.Spec.Ports
	for i := range ports {
		if ports[i].Name == PortName {
			return &ports[i]
		}
	}
	if len(ports) > 0 {
		return &ports[0]
	}
	return nil
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
