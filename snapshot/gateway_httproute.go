package snapshot

import (
	"fmt"
	"net/textproto"
	"regexp"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/hostname"
	"portico.dev/portico/routing"
	porticotls "portico.dev/portico/tls"
	"portico.dev/portico/upstream"
)

// routeTranslation is what an HTTPRoute's rules compile to, before hosts
// are known: one template per (rule, match).
type routeTranslation struct {
	// kind is the route's kind (HTTPRoute or GRPCRoute): it names the
	// route in problems, metrics and ReferenceGrants.
	kind    string
	matches []*matchTemplate
	// unsupported, when set, keeps the route from attaching at all
	// (Accepted=False UnsupportedValue).
	unsupported string
	// unresolvedRefs lists the references that did not resolve; the first
	// one gives the ResolvedRefs=False reason.
	unresolvedRefs []unresolvedRef
	// policies are the BackendTLSPolicies naming a Service the route
	// refers to; the Gateways the route attaches to are their ancestors.
	policies []*backendTLSPolicy
}

// refusal says what happens to the traffic the route cannot send
// anywhere: requests are answered with status, TLS connections closed.
func (tr *routeTranslation) refusal(status int) string {
	if tr.kind == kindTLS {
		return "the connections it would take are closed"
	}
	return fmt.Sprintf("the requests it would take are answered with %d", status)
}

type unresolvedRef struct {
	reason, message string
}

func (tr *routeTranslation) unresolved(reason gatewayv1.RouteConditionReason, format string, args ...any) {
	tr.unresolvedRefs = append(tr.unresolvedRefs, unresolvedRef{reason: string(reason), message: fmt.Sprintf(format, args...)})
}

// resolvedRefs is the route's ResolvedRefs condition.
func (tr *routeTranslation) resolvedRefs(gen int64) metav1.Condition {
	const typ = string(gatewayv1.RouteConditionResolvedRefs)
	if len(tr.unresolvedRefs) == 0 {
		return condition(typ, true, string(gatewayv1.RouteReasonResolvedRefs), "all references are resolved", gen)
	}
	msgs := make([]string, len(tr.unresolvedRefs))
	for i, u := range tr.unresolvedRefs {
		msgs[i] = u.message
	}
	return condition(typ, false, tr.unresolvedRefs[0].reason, strings.Join(msgs, "; "), gen)
}

// matchTemplate is one rule match: a Route without its host.
type matchTemplate struct {
	rule, match int
	source      routing.Source
	pathKind    routing.PathKind
	path        string
	pathRegexp  *regexp.Regexp
	method      string
	headers     []routing.HeaderMatch
	query       []routing.QueryMatch
	backends    []routing.WeightedBackend
	filters     *routing.Filters
	timeouts    routing.Timeouts
	retry       *routing.Retry
}

func (m *matchTemplate) route(host string) *routing.Route {
	r := &routing.Route{
		Source:      m.source,
		Host:        host,
		PathKind:    m.pathKind,
		Path:        m.path,
		PathRegexp:  m.pathRegexp,
		Method:      m.method,
		Headers:     m.headers,
		QueryParams: m.query,
		Backends:    m.backends,
		Filters:     m.filters,
		Timeouts:    m.timeouts,
		Retry:       m.retry,
	}
	// Backend names the route in logs and metrics; Backends decide where
	// requests go.
	if len(m.backends) > 0 {
		r.Backend = m.backends[0].Backend
	} else {
		r.Backend = &upstream.Backend{Name: "redirect"}
	}
	return r
}

// emission is one route match served under one of the route's hostnames
// on one listener; a route attached to a listener through several
// parentRefs is served there once.
type emission struct {
	listener *listenerInfo
	hostname string
	match    *matchTemplate
}

// httpRoute attaches one HTTPRoute to the listeners of our Gateways it
// names, and records its parent statuses.
func (t *gatewayTranslator) httpRoute(r *gatewayv1.HTTPRoute) {
	if parents := t.route(kindHTTP, r, ""); len(parents) > 0 {
		t.status.HTTPRoutes[key(r.Namespace, r.Name)] = parents
	}
}

// route attaches a route of kind (an HTTPRoute, or a GRPCRoute in its
// HTTPRoute form) to the listeners of our Gateways it names, and returns
// its parent statuses. unsupported, when set, keeps it from attaching.
func (t *gatewayTranslator) route(kind string, r *gatewayv1.HTTPRoute, unsupported string) []gatewayv1.RouteParentStatus {
	ref := ObjectRef{Kind: kind, Namespace: r.Namespace, Name: r.Name}
	var tr *routeTranslation
	// A Gateway's backend client certificate is part of the TLS backends
	// the route compiles to, so the route is translated once per distinct
	// certificate of the Gateways it attaches to.
	translations := make(map[*porticotls.KeyPair]*routeTranslation)
	var parents []gatewayv1.RouteParentStatus
	attached := make(map[*listenerInfo]bool)
	emitted := make(map[emission]bool)
	for _, pr := range r.Spec.ParentRefs {
		parent := t.routeParent(r.Namespace, pr)
		if parent == nil {
			// Not ours, or not there: another controller may own it.
			continue
		}
		info := parent.gateway
		tr = translations[info.clientCert]
		if tr == nil {
			t.clientCert = info.clientCert
			tr = t.translateRoute(kind, r)
			if unsupported != "" {
				tr.unsupported = unsupported
			}
			t.clientCert = nil
			translations[info.clientCert] = tr
		}
		reason, msg := t.attach(r, tr, parent, pr, attached, emitted)
		gen := r.Generation
		acc := condition(string(gatewayv1.RouteConditionAccepted), true, string(gatewayv1.RouteReasonAccepted), "the route is attached to "+parent.ref.String(), gen)
		if reason != "" {
			acc = condition(string(gatewayv1.RouteConditionAccepted), false, reason, msg, gen)
			t.b.problems.add(ref, Warning, reason, "parent %s%s: %s; the route is not served there", parent.ref, parentSection(pr), msg)
		} else {
			for _, bp := range tr.policies {
				bp.addAncestor(info.name)
			}
		}
		res := tr.resolvedRefs(gen)
		parents = append(parents, gatewayv1.RouteParentStatus{
			ParentRef:      pr,
			ControllerName: t.controller,
			Conditions:     []metav1.Condition{acc, res},
		})
	}
	if len(parents) == 0 {
		return nil
	}
	for _, u := range tr.unresolvedRefs {
		t.b.problems.add(ref, Error, u.reason, "%s; %s", u.message, tr.refusal(500))
	}
	return parents
}

func parentSection(pr gatewayv1.ParentReference) string {
	var s string
	if pr.SectionName != nil {
		s += " listener " + string(*pr.SectionName)
	}
	if pr.Port != nil {
		s += fmt.Sprintf(" port %d", *pr.Port)
	}
	return s
}

// routeParent is what a route's parentRef names: one of our Gateways with
// its own listeners, or a ListenerSet of one of them with the set's
// listeners. A Gateway parentRef never reaches a ListenerSet's listeners.
type routeParent struct {
	ref       ObjectRef
	gateway   *gatewayInfo
	set       *listenerSetInfo
	listeners []*listenerInfo
}

// routeParent resolves a parentRef; nil when it names nothing of ours.
func (t *gatewayTranslator) routeParent(routeNamespace string, pr gatewayv1.ParentReference) *routeParent {
	if string(deref(pr.Group, gatewayGroup)) != gatewayGroup {
		return nil
	}
	name := key(string(deref(pr.Namespace, gatewayv1.Namespace(routeNamespace))), string(pr.Name))
	switch string(deref(pr.Kind, kindGateway)) {
	case kindGateway:
		if info := t.byName[name]; info != nil {
			return &routeParent{ref: info.ref, gateway: info, listeners: info.own}
		}
	case kindListenerSet:
		if s := t.listenerSets[name]; s != nil {
			return &routeParent{ref: s.ref, gateway: s.gateway, set: s, listeners: s.listeners}
		}
	}
	return nil
}

// attach binds a route to the listeners of one parentRef. It returns the
// reason the route is not accepted there, or "" when it is.
func (t *gatewayTranslator) attach(r *gatewayv1.HTTPRoute, tr *routeTranslation, parent *routeParent, pr gatewayv1.ParentReference,
	attached map[*listenerInfo]bool, emitted map[emission]bool) (reason, msg string) {
	info := parent.gateway
	if tr.unsupported != "" {
		return string(gatewayv1.RouteReasonUnsupportedValue), tr.unsupported
	}
	if !info.accepted() {
		return string(gatewayv1.RouteReasonNoMatchingParent), "Gateway " + info.name.String() + " is not accepted"
	}
	if s := parent.set; s != nil && !s.accepted() {
		if s.rejectReason != "" {
			return string(gatewayv1.RouteReasonNoMatchingParent), "the ListenerSet is not accepted: " + s.rejectMsg
		}
		return string(gatewayv1.RouteReasonNoMatchingParent), "the ListenerSet is not accepted: none of its listeners can be served"
	}
	var candidates []*listenerInfo
	for _, l := range parent.listeners {
		if pr.SectionName != nil && *pr.SectionName != l.spec.Name {
			continue
		}
		if pr.Port != nil && *pr.Port != l.spec.Port {
			continue
		}
		candidates = append(candidates, l)
	}
	if len(candidates) == 0 {
		return string(gatewayv1.RouteReasonNoMatchingParent), "no listener matches" + parentSection(pr)
	}
	var valid, allowed []*listenerInfo
	for _, l := range candidates {
		if l.accepted {
			valid = append(valid, l)
		}
	}
	if len(valid) == 0 {
		return string(gatewayv1.RouteReasonNoMatchingParent), "the matching listeners are not valid:" + parentSection(pr)
	}
	for _, l := range valid {
		if l.allows(tr.kind) && t.allowsNamespace(info, l, r.Namespace) {
			allowed = append(allowed, l)
		}
	}
	if len(allowed) == 0 {
		return string(gatewayv1.RouteReasonNotAllowedByListeners), fmt.Sprintf("no listener allows %ss from namespace %s", tr.kind, r.Namespace)
	}
	attachedAny := false
	for _, l := range allowed {
		hosts := intersectHostnames(l.hostname, r.Spec.Hostnames)
		if len(hosts) == 0 {
			continue
		}
		attachedAny = true
		if !attached[l] {
			attached[l] = true
			l.attachedRoutes++
		}
		if !l.programmed() {
			continue
		}
		for _, h := range hosts {
			if isolatingListener(info, l, h.effective) != nil {
				// Every request this hostname could take here belongs to
				// a more specific listener of the port, which the table
				// picks instead: leave the route out rather than compile
				// it where it can never match (or conflict).
				continue
			}
			for _, m := range tr.matches {
				k := emission{listener: l, hostname: h.own, match: m}
				if emitted[k] {
					continue
				}
				emitted[k] = true
				l.routes = append(l.routes, m.route(h.own))
			}
		}
	}
	if !attachedAny {
		return string(gatewayv1.RouteReasonNoMatchingListenerHostname), "no hostname of the route matches a listener hostname"
	}
	return "", ""
}

// isolatingListener returns the listener of l's port, other than l, that
// takes every request for host (a hostname or wildcard) away from l: a
// served listener whose hostname covers host and is more specific than
// l's. The socket's table sends a request to the most specific listener
// whose hostname matches it (Gateway API listener isolation), so l never
// sees those requests.
func isolatingListener(info *gatewayInfo, l *listenerInfo, host string) *listenerInfo {
	own := hostname.NewPattern(l.hostname).Specificity()
	target := hostname.NewPattern(host)
	for _, other := range info.listeners {
		if other == l || other.spec.Port != l.spec.Port || !other.programmed() {
			continue
		}
		op := hostname.NewPattern(other.hostname)
		if op.Specificity() > own && op.Covers(target, hostname.AnyLabels) {
			return other
		}
	}
	return nil
}

// routeHostname is one hostname a route serves on a listener: the route's
// own, which ranks it among the listener's routes ("" for a route without
// hostnames), and its intersection with the listener's hostname, the
// hosts it can take there ("" for any).
type routeHostname struct {
	own, effective string
}

// intersectHostnames returns the hostnames of a route that intersect a
// listener's hostname ("" means any host), each once, in spec order. A
// wildcard matches any number of labels, never the bare domain.
func intersectHostnames(listener string, route []gatewayv1.Hostname) []routeHostname {
	if len(route) == 0 {
		return []routeHostname{{own: "", effective: listener}}
	}
	lp := hostname.NewPattern(listener)
	var out []routeHostname
	for _, h := range route {
		rh := hostname.Lower(string(h))
		if slices.ContainsFunc(out, func(o routeHostname) bool { return o.own == rh }) {
			continue
		}
		if eff, ok := hostname.Intersect(lp, hostname.NewPattern(rh)); ok {
			out = append(out, routeHostname{own: rh, effective: eff.String()})
		}
	}
	return out
}

// translateRoute compiles the rules of an HTTPRoute (or of a GRPCRoute in
// its HTTPRoute form) of kind.
func (t *gatewayTranslator) translateRoute(kind string, r *gatewayv1.HTTPRoute) *routeTranslation {
	tr := &routeTranslation{kind: kind}
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		where := fmt.Sprintf("spec.rules[%d]", i)
		filters, invalidFilter := t.filters(r, tr, rule.Filters, where+".filters")
		var backends []routing.WeightedBackend
		for j, br := range rule.BackendRefs {
			bwhere := fmt.Sprintf("%s.backendRefs[%d]", where, j)
			b, ok := t.backendRef(r, tr, br.BackendObjectReference, bwhere)
			wb := routing.WeightedBackend{Backend: b, Weight: deref(br.Weight, 1), Invalid: !ok || invalidFilter}
			if len(br.Filters) > 0 {
				bf, bad := t.filters(r, tr, br.Filters, bwhere+".filters")
				wb.Filters = bf
				wb.Invalid = wb.Invalid || bad
			}
			backends = append(backends, wb)
		}
		if len(backends) == 0 && (filters == nil || filters.Redirect == nil) {
			// Nothing to send requests to: the Gateway API answers 500.
			backends = []routing.WeightedBackend{{
				Backend: &upstream.Backend{Name: fmt.Sprintf("%s/%s:rule%d", r.Namespace, r.Name, i)},
				Weight:  1,
				Invalid: true,
			}}
		}
		if invalidFilter {
			for k := range backends {
				backends[k].Invalid = true
			}
		}
		timeouts := t.timeouts(r, rule.Timeouts, where+".timeouts")
		retry := t.retry(r, rule.Retry, where+".retry")

		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gatewayv1.HTTPRouteMatch{{}}
		}
		for j := range matches {
			m := &matches[j]
			tmpl := &matchTemplate{
				rule: i, match: j,
				source:   routing.Source{Kind: kind, Namespace: r.Namespace, Name: r.Name, Rule: fmt.Sprintf("%d/%d", i, j)},
				backends: backends,
				filters:  filters,
				timeouts: timeouts,
				retry:    retry,
			}
			if msg := matchTemplateFrom(tmpl, m); msg != "" {
				tr.unsupported = fmt.Sprintf("%s.matches[%d]: %s", where, j, msg)
				continue
			}
			tr.matches = append(tr.matches, tmpl)
		}
	}
	return tr
}

// matchTemplateFrom fills the request conditions of a match; it returns
// what is wrong with the match, if anything.
func matchTemplateFrom(tmpl *matchTemplate, m *gatewayv1.HTTPRouteMatch) string {
	kind, value := gatewayv1.PathMatchPathPrefix, "/"
	if m.Path != nil {
		kind = deref(m.Path.Type, gatewayv1.PathMatchPathPrefix)
		value = deref(m.Path.Value, "/")
	}
	switch kind {
	case gatewayv1.PathMatchExact, gatewayv1.PathMatchPathPrefix:
		if !strings.HasPrefix(value, "/") {
			return fmt.Sprintf("path %q must start with \"/\"", value)
		}
		tmpl.pathKind, tmpl.path = routing.PathPrefix, value
		if kind == gatewayv1.PathMatchExact {
			tmpl.pathKind = routing.PathExact
		}
	case gatewayv1.PathMatchRegularExpression:
		// The routing tier anchors the expression to the whole path.
		re, err := regexp.Compile(value)
		if err != nil {
			return fmt.Sprintf("path regular expression %q: %v", value, err)
		}
		tmpl.pathKind, tmpl.path, tmpl.pathRegexp = routing.PathRegex, value, re
	default:
		return fmt.Sprintf("path match type %q is not supported", kind)
	}
	if m.Method != nil {
		tmpl.method = string(*m.Method)
	}
	seen := make(map[string]bool)
	for _, h := range m.Headers {
		name := textproto.CanonicalMIMEHeaderKey(string(h.Name))
		if seen[name] {
			// Only the first match of a header name counts (Gateway API).
			continue
		}
		seen[name] = true
		hm := routing.HeaderMatch{Name: name, Value: h.Value}
		if deref(h.Type, gatewayv1.HeaderMatchExact) == gatewayv1.HeaderMatchRegularExpression {
			re, err := regexp.Compile(h.Value)
			if err != nil {
				return fmt.Sprintf("header %s regular expression %q: %v", h.Name, h.Value, err)
			}
			hm.Regexp = re
		}
		tmpl.headers = append(tmpl.headers, hm)
	}
	seenQuery := make(map[string]bool)
	for _, q := range m.QueryParams {
		name := string(q.Name)
		if seenQuery[name] {
			continue
		}
		seenQuery[name] = true
		qm := routing.QueryMatch{Name: name, Value: q.Value}
		if deref(q.Type, gatewayv1.QueryParamMatchExact) == gatewayv1.QueryParamMatchRegularExpression {
			re, err := regexp.Compile(q.Value)
			if err != nil {
				return fmt.Sprintf("query parameter %s regular expression %q: %v", q.Name, q.Value, err)
			}
			qm.Regexp = re
		}
		tmpl.query = append(tmpl.query, qm)
	}
	return ""
}

// filters compiles a filter list. invalid is set when a filter cannot be
// applied, so the requests it would handle must be answered with 500.
func (t *gatewayTranslator) filters(r *gatewayv1.HTTPRoute, tr *routeTranslation, list []gatewayv1.HTTPRouteFilter, where string) (f *routing.Filters, invalid bool) {
	if len(list) == 0 {
		return nil, false
	}
	f = &routing.Filters{}
	for i, filter := range list {
		fwhere := fmt.Sprintf("%s[%d]", where, i)
		switch filter.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			if filter.RequestHeaderModifier != nil {
				f.RequestHeaders = headerModifier(filter.RequestHeaderModifier)
			}
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			if filter.ResponseHeaderModifier != nil {
				f.ResponseHeaders = headerModifier(filter.ResponseHeaderModifier)
			}
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			if rr := filter.RequestRedirect; rr != nil {
				f.Redirect = &routing.Redirect{
					Scheme:     deref(rr.Scheme, ""),
					Hostname:   string(deref(rr.Hostname, "")),
					Port:       int32(deref(rr.Port, 0)),
					Path:       pathModifier(rr.Path),
					StatusCode: deref(rr.StatusCode, 302),
				}
			}
		case gatewayv1.HTTPRouteFilterURLRewrite:
			if rw := filter.URLRewrite; rw != nil {
				f.Rewrite = &routing.Rewrite{Hostname: string(deref(rw.Hostname, "")), Path: pathModifier(rw.Path)}
			}
		case gatewayv1.HTTPRouteFilterRequestMirror:
			if rm := filter.RequestMirror; rm != nil {
				b, ok := t.backendRef(r, tr, rm.BackendRef, fwhere+".requestMirror.backendRef")
				if !ok {
					// An unresolved mirror is left out; the request itself
					// is still served.
					continue
				}
				percent := 100.0
				switch {
				case rm.Percent != nil:
					percent = float64(*rm.Percent)
				case rm.Fraction != nil:
					den := deref(rm.Fraction.Denominator, 100)
					if den > 0 {
						percent = 100 * float64(rm.Fraction.Numerator) / float64(den)
					}
				}
				f.Mirrors = append(f.Mirrors, routing.Mirror{Backend: b, Percent: percent})
			}
		case gatewayv1.HTTPRouteFilterCORS:
			if c := filter.CORS; c != nil {
				f.CORS = corsFilter(c)
			}
		case gatewayv1.HTTPRouteFilterExtensionRef:
			ext := filter.ExtensionRef
			name := ""
			if ext != nil {
				name = groupKind(string(ext.Group), string(ext.Kind)) + " " + string(ext.Name)
			}
			tr.unresolved(gatewayv1.RouteReasonInvalidKind, "%s: extensionRef %s is not a filter Portico knows", fwhere, name)
			invalid = true
		default:
			tr.unsupported = fmt.Sprintf("%s: filter type %s is not supported", fwhere, filter.Type)
			invalid = true
		}
	}
	return f, invalid
}

// corsFilter copies a CORS filter; the API server has already checked
// the origins, methods and wildcards.
func corsFilter(c *gatewayv1.HTTPCORSFilter) *routing.CORS {
	out := &routing.CORS{MaxAge: c.MaxAge, AllowCredentials: deref(c.AllowCredentials, false)}
	for _, o := range c.AllowOrigins {
		out.AllowOrigins = append(out.AllowOrigins, string(o))
	}
	for _, m := range c.AllowMethods {
		out.AllowMethods = append(out.AllowMethods, string(m))
	}
	for _, h := range c.AllowHeaders {
		out.AllowHeaders = append(out.AllowHeaders, string(h))
	}
	for _, h := range c.ExposeHeaders {
		out.ExposeHeaders = append(out.ExposeHeaders, string(h))
	}
	return out
}

func headerModifier(h *gatewayv1.HTTPHeaderFilter) *routing.HeaderModifier {
	m := &routing.HeaderModifier{}
	for _, s := range h.Set {
		m.Set = append(m.Set, routing.HeaderValue{Name: textproto.CanonicalMIMEHeaderKey(string(s.Name)), Value: s.Value})
	}
	for _, a := range h.Add {
		m.Add = append(m.Add, routing.HeaderValue{Name: textproto.CanonicalMIMEHeaderKey(string(a.Name)), Value: a.Value})
	}
	for _, name := range h.Remove {
		m.Remove = append(m.Remove, textproto.CanonicalMIMEHeaderKey(name))
	}
	return m
}

func pathModifier(p *gatewayv1.HTTPPathModifier) *routing.PathModifier {
	if p == nil {
		return nil
	}
	switch p.Type {
	case gatewayv1.FullPathHTTPPathModifier:
		return &routing.PathModifier{ReplaceFullPath: ptrTo(deref(p.ReplaceFullPath, "/"))}
	case gatewayv1.PrefixMatchHTTPPathModifier:
		return &routing.PathModifier{ReplacePrefixMatch: ptrTo(deref(p.ReplacePrefixMatch, "/"))}
	}
	return nil
}

func (t *gatewayTranslator) timeouts(r *gatewayv1.HTTPRoute, spec *gatewayv1.HTTPRouteTimeouts, where string) routing.Timeouts {
	var out routing.Timeouts
	if spec == nil {
		return out
	}
	parse := func(d *gatewayv1.Duration, field string) time.Duration {
		if d == nil {
			return 0
		}
		v, err := time.ParseDuration(string(*d))
		if err != nil || v < 0 {
			t.b.problems.add(ObjectRef{Kind: kindHTTP, Namespace: r.Namespace, Name: r.Name}, Warning, "InvalidTimeout",
				"%s.%s: %q is not a duration; no timeout is applied", where, field, *d)
			return 0
		}
		return v
	}
	out.Request = parse(spec.Request, "request")
	out.BackendRequest = parse(spec.BackendRequest, "backendRequest")
	return out
}

// retry compiles a rule's retry policy. Attempts defaults to 1, as the API
// server does; an explicit 0 turns retries off. A backoff that does not
// parse is reported and the default backoff used.
func (t *gatewayTranslator) retry(r *gatewayv1.HTTPRoute, spec *gatewayv1.HTTPRouteRetry, where string) *routing.Retry {
	if spec == nil {
		return nil
	}
	out := &routing.Retry{Attempts: deref(spec.Attempts, 1)}
	if out.Attempts <= 0 {
		return nil
	}
	for _, c := range spec.Codes {
		out.Codes = append(out.Codes, int(c))
	}
	if spec.Backoff != nil {
		d, err := time.ParseDuration(string(*spec.Backoff))
		if err != nil || d < 0 {
			t.b.problems.add(ObjectRef{Kind: kindHTTP, Namespace: r.Namespace, Name: r.Name}, Warning, "InvalidRetryBackoff",
				"%s.backoff: %q is not a duration; the default backoff (%s) is used", where, *spec.Backoff, routing.DefaultRetryBackoff)
		} else {
			out.Backoff = d
		}
	}
	return out
}

// backendRef resolves a reference to a Service port. ok is false when the
// reference is invalid; the backend returned then has no endpoints and
// its share of requests is answered with 500.
func (t *gatewayTranslator) backendRef(r *gatewayv1.HTTPRoute, tr *routeTranslation, ref gatewayv1.BackendObjectReference, where string) (b *upstream.Backend, ok bool) {
	group := string(deref(ref.Group, ""))
	kind := string(deref(ref.Kind, kindService))
	ns := string(deref(ref.Namespace, gatewayv1.Namespace(r.Namespace)))
	svc := key(ns, string(ref.Name))
	placeholder := &upstream.Backend{Name: svc.String()}
	if group != "" || kind != kindService {
		tr.unresolved(gatewayv1.RouteReasonInvalidKind, "%s: %s is not a supported backend kind (only core Services)", where, groupKind(group, kind))
		return placeholder, false
	}
	if ns != r.Namespace && !t.granted(tr.kind, r.Namespace, "", kindService, ns, string(ref.Name)) {
		tr.unresolved(gatewayv1.RouteReasonRefNotPermitted, "%s: Service %s is in another namespace and no ReferenceGrant there allows it", where, svc)
		return placeholder, false
	}
	if ref.Port == nil {
		tr.unresolved(gatewayv1.RouteReasonBackendNotFound, "%s: Service %s: port is required", where, svc)
		return placeholder, false
	}
	rb := t.b.backends.resolve(servicePortRef{Service: svc, Number: int32(*ref.Port)})
	switch rb.reason {
	case "":
	case "UnsupportedService":
		tr.unresolved(gatewayv1.RouteReasonUnsupportedProtocol, "%s: %s", where, rb.problem)
		return rb.backend, false
	default:
		tr.unresolved(gatewayv1.RouteReasonBackendNotFound, "%s: %s", where, rb.problem)
		return rb.backend, false
	}
	if len(rb.backend.Endpoints) == 0 {
		outcome := "its requests are answered with 503"
		if tr.kind == kindTLS {
			outcome = "its connections are closed"
		}
		t.b.problems.add(ObjectRef{Kind: tr.kind, Namespace: r.Namespace, Name: r.Name}, Warning, "NoReadyEndpoints",
			"backend %s has no ready endpoints; %s", rb.backend.Name, outcome)
	}
	// A TLSRoute's backend gets its BackendTLSPolicy too: a listener in
	// mode Terminate re-encrypts to it, one in mode Passthrough ignores it
	// (the client's own TLS reaches the backend).
	b = t.withBackendTLS(tr, svc, int32(*ref.Port), rb.backend)
	if tr.kind == kindGRPC {
		b = t.b.grpcBackend(b)
	}
	return b, true
}
