package snapshot

import (
	"strconv"

	"k8s.io/apimachinery/pkg/util/validation"

	"portico.dev/portico/routing"
)

// This file resolves ingress-nginx's custom-http-errors and
// default-backend annotations onto routing.CustomErrors: the routes of an
// Ingress with listed codes get their error pages from the Service
// default-backend names (its first port, as ingress-nginx documents), or
// without one from the controller's default backend, Portico's
// --fallback-service.

// validateServiceName returns why name cannot name a Service, or "".
func validateServiceName(name string) string {
	if len(validation.IsDNS1035Label(name)) > 0 {
		return "a Service of the Ingress's namespace is named by a DNS label"
	}
	return ""
}

// customErrors gives every route of the Ingress ref its CustomErrors. A
// default-backend Service that does not exist, or has no ports, is
// reported and left out: the fallback Service serves the error pages.
func (b *builder) customErrors(ref ObjectRef, codes []int, service string, routes []*routing.Route) {
	if len(codes) == 0 {
		return
	}
	var proto routing.CustomErrors
	proto.Codes, proto.Namespace, proto.Ingress = codes, ref.Namespace, ref.Name
	if service != "" {
		k := key(ref.Namespace, service)
		switch svc := b.backends.services[k]; {
		case svc == nil:
			b.problems.add(ref, Error, "InvalidNginxAnnotation", "annotation %sdefault-backend: Service %s not found; the annotation is ignored and %s", NginxPrefix, k, b.errorPagesNote())
		case len(svc.Spec.Ports) == 0:
			b.problems.add(ref, Error, "InvalidNginxAnnotation", "annotation %sdefault-backend: Service %s has no ports; the annotation is ignored and %s", NginxPrefix, k, b.errorPagesNote())
		default:
			rb := b.backends.resolve(servicePortRef{Service: k, Number: svc.Spec.Ports[0].Port})
			proto.Backend = b.withServiceTLS(rb.backend)
			if rb.problem != "" {
				b.problems.add(ref, Warning, rb.reason, "annotation %sdefault-backend: %s; error pages are answered with the original status and a short body", NginxPrefix, rb.problem)
			}
		}
	}
	if proto.Backend == nil && b.cfg.Fallback.Name == "" {
		b.problems.add(ref, Warning, "NginxNoDefaultBackend", "annotation %scustom-http-errors: no default-backend and no --fallback-service to serve the error pages; responses are passed unchanged", NginxPrefix)
		return
	}
	for _, r := range routes {
		ce := proto
		if rb := b.backends.of(r.Backend); rb.port != 0 {
			ce.Service, ce.Port = rb.service.Name, strconv.Itoa(int(rb.port))
		}
		r.CustomErrors = &ce
	}
}

func (b *builder) errorPagesNote() string {
	if b.cfg.Fallback.Name == "" {
		return "responses are passed unchanged (no --fallback-service)"
	}
	return "the fallback Service " + b.cfg.Fallback.String() + " serves the error pages"
}
