package snapshot

import (
	"fmt"
	"net"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"portico.dev/portico/upstream"
)

// appProtocolH2C marks a Service port whose endpoints speak HTTP/2 over
// cleartext with prior knowledge (KEP-3726 standard application protocol).
const appProtocolH2C = "kubernetes.io/h2c"

// servicePortRef is a Service port as an Ingress or route names it: by
// number or by name.
type servicePortRef struct {
	Service types.NamespacedName
	Number  int32
	Name    string
}

func (r servicePortRef) String() string {
	if r.Name != "" {
		return fmt.Sprintf("%s:%s", r.Service, r.Name)
	}
	return fmt.Sprintf("%s:%d", r.Service, r.Number)
}

// backendResolver turns Service ports into upstream Backends: ready endpoint
// addresses from EndpointSlices, or from the Endpoints object for Services
// that have no slices (a selector-less Service with hand-written Endpoints,
// like the legacy fallback). Each Service port resolves once per build.
type backendResolver struct {
	services  map[types.NamespacedName]*corev1.Service
	slices    map[types.NamespacedName][]*discoveryv1.EndpointSlice
	endpoints map[types.NamespacedName]*corev1.Endpoints
	resolved  map[servicePortRef]resolvedBackend
	byBackend map[*upstream.Backend]resolvedBackend
}

type resolvedBackend struct {
	backend *upstream.Backend
	// service and port name the Service port resolved; port is 0 when it
	// did not resolve.
	service types.NamespacedName
	port    int32
	// problem is why the backend has no endpoints, or "" when it has some
	// or legitimately has none (a Service scaled to zero).
	reason, problem string
}

func newBackendResolver(objs *Objects) *backendResolver {
	r := &backendResolver{
		services:  make(map[types.NamespacedName]*corev1.Service, len(objs.Services)),
		slices:    make(map[types.NamespacedName][]*discoveryv1.EndpointSlice),
		endpoints: make(map[types.NamespacedName]*corev1.Endpoints, len(objs.Endpoints)),
		resolved:  make(map[servicePortRef]resolvedBackend),
		byBackend: make(map[*upstream.Backend]resolvedBackend),
	}
	for _, s := range objs.Services {
		r.services[key(s.Namespace, s.Name)] = s
	}
	for _, s := range objs.EndpointSlices {
		svc := s.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := key(s.Namespace, svc)
		r.slices[k] = append(r.slices[k], s)
	}
	for _, e := range objs.Endpoints {
		r.endpoints[key(e.Namespace, e.Name)] = e
	}
	return r
}

// resolve returns the backend for a Service port. A backend that cannot be
// resolved still exists, with no endpoints, so its route answers 503 (or
// falls back) instead of vanishing; reason and problem say why.
func (r *backendResolver) resolve(ref servicePortRef) resolvedBackend {
	if rb, ok := r.resolved[ref]; ok {
		return rb
	}
	rb := r.resolveUncached(ref)
	r.resolved[ref] = rb
	r.byBackend[rb.backend] = rb
	return rb
}

// of returns how a backend this resolver handed out was resolved.
func (r *backendResolver) of(b *upstream.Backend) resolvedBackend { return r.byBackend[b] }

func (r *backendResolver) resolveUncached(ref servicePortRef) resolvedBackend {
	b := &upstream.Backend{Name: ref.String()}
	fail := func(reason, format string, args ...any) resolvedBackend {
		return resolvedBackend{backend: b, reason: reason, problem: fmt.Sprintf(format, args...)}
	}
	svc := r.services[ref.Service]
	if svc == nil {
		return fail("ServiceNotFound", "Service %s not found", ref.Service)
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return fail("UnsupportedService", "Service %s is of type ExternalName, which Portico does not proxy to", ref.Service)
	}
	var port *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if (ref.Name != "" && p.Name == ref.Name) || (ref.Name == "" && p.Port == ref.Number) {
			port = p
			break
		}
	}
	if port == nil {
		return fail("ServicePortNotFound", "Service %s has no port %s", ref.Service, portLabel(ref))
	}
	// Name the backend by port number so that a route naming the port and
	// one numbering it share metrics and logs.
	b.Name = fmt.Sprintf("%s:%d", ref.Service, port.Port)
	if port.AppProtocol != nil && *port.AppProtocol == appProtocolH2C {
		b.Protocol = upstream.H2C
	}
	if slices, ok := r.slices[ref.Service]; ok {
		b.Endpoints = endpointsFromSlices(slices, port.Name)
	} else if eps := r.endpoints[ref.Service]; eps != nil {
		b.Endpoints = endpointsFromEndpoints(eps, port)
	}
	return resolvedBackend{backend: b, service: ref.Service, port: port.Port}
}

func portLabel(ref servicePortRef) string {
	if ref.Name != "" {
		return strconv.Quote(ref.Name)
	}
	return strconv.Itoa(int(ref.Number))
}

// endpointsFromSlices lists the ready endpoints for the Service port called
// portName. A nil ready condition means ready, as the API documents.
func endpointsFromSlices(slices []*discoveryv1.EndpointSlice, portName string) []string {
	var out []string
	for _, s := range slices {
		if s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		var port int32
		for _, p := range s.Ports {
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if name == portName && p.Port != nil {
				port = *p.Port
				break
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, addr := range e.Addresses {
				out = append(out, net.JoinHostPort(addr, strconv.Itoa(int(port))))
			}
		}
	}
	return sortedUnique(out)
}

// endpointsFromEndpoints lists the ready addresses of a (typically
// hand-written) Endpoints object for a Service port. Its ports are matched by
// name; a Service with a single port also accepts a subset with a single
// port, whatever it is called, as kube-proxy does for unnamed ports.
func endpointsFromEndpoints(eps *corev1.Endpoints, svcPort *corev1.ServicePort) []string {
	var out []string
	for _, subset := range eps.Subsets {
		var port int32
		for _, p := range subset.Ports {
			if p.Name == svcPort.Name {
				port = p.Port
				break
			}
		}
		if port == 0 && len(subset.Ports) == 1 && svcPort.Name == "" {
			port = subset.Ports[0].Port
		}
		if port == 0 {
			continue
		}
		for _, a := range subset.Addresses {
			out = append(out, net.JoinHostPort(a.IP, strconv.Itoa(int(port))))
		}
	}
	return sortedUnique(out)
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func key(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}
