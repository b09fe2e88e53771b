package snapshot

import (
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// A TLSRoute sends the TLS connections of a TLS listener to its backends
// by the ClientHello's SNI: without terminating them in mode Passthrough,
// decrypted in mode Terminate (and re-encrypted to a backend a
// BackendTLSPolicy targets). It is attached and given its status through the HTTPRoute code in
// its HTTPRoute form (tlsAsHTTPRoute): a rule is one match of every path,
// so the socket's table, matched with the SNI as host and the path "/",
// picks the listener (most specific hostname first) and then the route
// (exact hostname before wildcards), as for HTTP.

// tlsRoute attaches one TLSRoute to the TLS listeners of our Gateways it
// names, and records its parent statuses.
func (t *gatewayTranslator) tlsRoute(r *gatewayv1.TLSRoute) {
	if parents := t.route(kindTLS, tlsAsHTTPRoute(r), ""); len(parents) > 0 {
		t.status.TLSRoutes[key(r.Namespace, r.Name)] = parents
	}
}

// tlsAsHTTPRoute is the HTTPRoute that routes as r does: same parents,
// hostnames and backends, each rule matching every request.
func tlsAsHTTPRoute(r *gatewayv1.TLSRoute) *gatewayv1.HTTPRoute {
	hr := &gatewayv1.HTTPRoute{ObjectMeta: r.ObjectMeta}
	hr.Spec.CommonRouteSpec = r.Spec.CommonRouteSpec
	hr.Spec.Hostnames = r.Spec.Hostnames
	for _, rule := range r.Spec.Rules {
		out := gatewayv1.HTTPRouteRule{Name: rule.Name}
		for _, br := range rule.BackendRefs {
			out.BackendRefs = append(out.BackendRefs, gatewayv1.HTTPBackendRef{BackendRef: br})
		}
		hr.Spec.Rules = append(hr.Spec.Rules, out)
	}
	return hr
}
