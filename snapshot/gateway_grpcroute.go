package snapshot

import (
	"fmt"
	"regexp"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// A GRPCRoute is served by the same route model as an HTTPRoute: a gRPC
// call is an HTTP/2 POST to /<service>/<method>, so each method match is a
// path match, and the route is translated, attached and given its status
// through the HTTPRoute code in its HTTPRoute form (grpcAsHTTPRoute). What
// is gRPC's own: the method matches, the HTTP/2 backends (grpcBackend) and
// the gRPC error responses Portico answers with (routing).

// grpcRoute attaches one GRPCRoute to the listeners of our Gateways it
// names, and records its parent statuses.
func (t *gatewayTranslator) grpcRoute(r *gatewayv1.GRPCRoute) {
	hr, unsupported := grpcAsHTTPRoute(r)
	if parents := t.route(kindGRPC, hr, unsupported); len(parents) > 0 {
		t.status.GRPCRoutes[key(r.Namespace, r.Name)] = parents
	}
}

// grpcAsHTTPRoute is the HTTPRoute that routes as r does. unsupported says
// what in r cannot be served, if anything; the route is then rejected as a
// whole (Accepted=False UnsupportedValue), as an HTTPRoute would be.
func grpcAsHTTPRoute(r *gatewayv1.GRPCRoute) (hr *gatewayv1.HTTPRoute, unsupported string) {
	hr = &gatewayv1.HTTPRoute{ObjectMeta: r.ObjectMeta}
	hr.Spec.CommonRouteSpec = r.Spec.CommonRouteSpec
	hr.Spec.Hostnames = r.Spec.Hostnames
	rules := r.Spec.Rules
	if len(rules) == 0 {
		// A route without rules matches every gRPC request and, having no
		// backend, answers it with an error.
		rules = []gatewayv1.GRPCRouteRule{{}}
	}
	for i := range rules {
		rule := &rules[i]
		where := fmt.Sprintf("spec.rules[%d]", i)
		out := gatewayv1.HTTPRouteRule{Name: rule.Name, Filters: grpcFilters(rule.Filters)}
		for _, m := range rule.Matches {
			hm, msg := grpcMatch(m)
			if msg != "" && unsupported == "" {
				unsupported = where + ": " + msg
			}
			out.Matches = append(out.Matches, hm)
		}
		for _, br := range rule.BackendRefs {
			out.BackendRefs = append(out.BackendRefs, gatewayv1.HTTPBackendRef{BackendRef: br.BackendRef, Filters: grpcFilters(br.Filters)})
		}
		hr.Spec.Rules = append(hr.Spec.Rules, out)
	}
	return hr, unsupported
}

// grpcMatch is the HTTPRoute match of a GRPCRoute match. An Exact service
// and method is an Exact path, a service alone a PathPrefix on
// /<service>, anything else a regular expression over the whole path, in
// which an omitted service or method matches any one segment. Headers
// match as HTTP headers: gRPC metadata is sent as such.
func grpcMatch(m gatewayv1.GRPCRouteMatch) (gatewayv1.HTTPRouteMatch, string) {
	var hm gatewayv1.HTTPRouteMatch
	for _, h := range m.Headers {
		typ := gatewayv1.HeaderMatchExact
		if deref(h.Type, gatewayv1.GRPCHeaderMatchExact) == gatewayv1.GRPCHeaderMatchRegularExpression {
			typ = gatewayv1.HeaderMatchRegularExpression
		}
		hm.Headers = append(hm.Headers, gatewayv1.HTTPHeaderMatch{Type: &typ, Name: gatewayv1.HTTPHeaderName(h.Name), Value: h.Value})
	}
	mm := m.Method
	if mm == nil {
		hm.Path = &gatewayv1.HTTPPathMatch{Type: ptrTo(gatewayv1.PathMatchPathPrefix), Value: ptrTo("/")}
		return hm, ""
	}
	service, method := deref(mm.Service, ""), deref(mm.Method, "")
	if service == "" && method == "" {
		return hm, "a method match needs a service or a method"
	}
	switch typ := deref(mm.Type, gatewayv1.GRPCMethodMatchExact); typ {
	case gatewayv1.GRPCMethodMatchExact:
		if strings.Contains(service, "/") || strings.Contains(method, "/") {
			return hm, fmt.Sprintf("method match %q/%q: an Exact service or method cannot contain \"/\"", service, method)
		}
		switch {
		case method == "":
			hm.Path = &gatewayv1.HTTPPathMatch{Type: ptrTo(gatewayv1.PathMatchPathPrefix), Value: ptrTo("/" + service)}
		case service == "":
			hm.Path = &gatewayv1.HTTPPathMatch{Type: ptrTo(gatewayv1.PathMatchRegularExpression), Value: ptrTo(`/[^/]+/` + regexp.QuoteMeta(method))}
		default:
			hm.Path = &gatewayv1.HTTPPathMatch{Type: ptrTo(gatewayv1.PathMatchExact), Value: ptrTo("/" + service + "/" + method)}
		}
	case gatewayv1.GRPCMethodMatchRegularExpression:
		segment := func(expr, what string) (string, string) {
			if expr == "" {
				return `[^/]+`, ""
			}
			if _, err := regexp.Compile(expr); err != nil {
				return "", fmt.Sprintf("%s regular expression %q: %v", what, expr, err)
			}
			return `(?:` + expr + `)`, ""
		}
		s, msg := segment(service, "service")
		if msg != "" {
			return hm, msg
		}
		me, msg := segment(method, "method")
		if msg != "" {
			return hm, msg
		}
		hm.Path = &gatewayv1.HTTPPathMatch{Type: ptrTo(gatewayv1.PathMatchRegularExpression), Value: ptrTo("/" + s + "/" + me)}
	default:
		return hm, fmt.Sprintf("method match type %q is not supported", typ)
	}
	return hm, ""
}

// grpcFilters are the HTTPRoute filters of GRPCRoute filters; the types
// GRPCRoute has are HTTPRoute types of the same name and fields. A type
// the translator does not know is passed on to be reported as such.
func grpcFilters(list []gatewayv1.GRPCRouteFilter) []gatewayv1.HTTPRouteFilter {
	if len(list) == 0 {
		return nil
	}
	out := make([]gatewayv1.HTTPRouteFilter, len(list))
	for i, f := range list {
		out[i] = gatewayv1.HTTPRouteFilter{
			Type:                   gatewayv1.HTTPRouteFilterType(f.Type),
			RequestHeaderModifier:  f.RequestHeaderModifier,
			ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror:          f.RequestMirror,
			ExtensionRef:           f.ExtensionRef,
		}
	}
	return out
}
