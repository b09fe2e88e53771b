package snapshot

import (
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The API server fills in the defaults that the Gateway API CRDs' schemas
// declare before anyone reads an object; a manifest folder has no API
// server, so its source applies the same ones (through Kind.Default), and
// the builder sees the same objects in both modes. Each function mirrors
// the `default:` entries of the CRD (config/crd/standard in the
// gateway-api module) for the fields Portico reads.

func defaultGateway(gw *gatewayv1.Gateway) {
	for i := range gw.Spec.Addresses {
		a := &gw.Spec.Addresses[i]
		if a.Type == nil {
			a.Type = ptrTo(gatewayv1.IPAddressType)
		}
	}
	if al := gw.Spec.AllowedListeners; al != nil {
		if al.Namespaces == nil {
			al.Namespaces = &gatewayv1.ListenerNamespaces{}
		}
		if al.Namespaces.From == nil {
			al.Namespaces.From = ptrTo(gatewayv1.NamespacesFromNone)
		}
	}
	for i := range gw.Spec.Listeners {
		defaultListener(&gw.Spec.Listeners[i])
	}
}

// defaultListenerSet applies the ListenerSet CRD's defaults, which are the
// Gateway listeners' for each entry.
func defaultListenerSet(ls *gatewayv1.ListenerSet) {
	pr := &ls.Spec.ParentRef
	if pr.Group == nil {
		pr.Group = ptrTo(gatewayv1.Group(gatewayv1.GroupName))
	}
	if pr.Kind == nil {
		pr.Kind = ptrTo(gatewayv1.Kind("Gateway"))
	}
	for i := range ls.Spec.Listeners {
		e := &ls.Spec.Listeners[i]
		l := gatewayv1.Listener{AllowedRoutes: e.AllowedRoutes, TLS: e.TLS}
		defaultListener(&l)
		e.AllowedRoutes, e.TLS = l.AllowedRoutes, l.TLS
	}
}

// defaultListener applies the CRD defaults of one Gateway listener.
func defaultListener(l *gatewayv1.Listener) {
	if l.AllowedRoutes == nil {
		l.AllowedRoutes = &gatewayv1.AllowedRoutes{}
	}
	if l.AllowedRoutes.Namespaces == nil {
		l.AllowedRoutes.Namespaces = &gatewayv1.RouteNamespaces{}
	}
	if l.AllowedRoutes.Namespaces.From == nil {
		l.AllowedRoutes.Namespaces.From = ptrTo(gatewayv1.NamespacesFromSame)
	}
	for j := range l.AllowedRoutes.Kinds {
		if l.AllowedRoutes.Kinds[j].Group == nil {
			l.AllowedRoutes.Kinds[j].Group = ptrTo(gatewayv1.Group(gatewayv1.GroupName))
		}
	}
	if l.TLS != nil {
		if l.TLS.Mode == nil {
			l.TLS.Mode = ptrTo(gatewayv1.TLSModeTerminate)
		}
		for j := range l.TLS.CertificateRefs {
			ref := &l.TLS.CertificateRefs[j]
			if ref.Group == nil {
				ref.Group = ptrTo(gatewayv1.Group(corev1.GroupName))
			}
			if ref.Kind == nil {
				ref.Kind = ptrTo(gatewayv1.Kind("Secret"))
			}
		}
	}
}

func defaultHTTPRoute(r *gatewayv1.HTTPRoute) {
	for i := range r.Spec.ParentRefs {
		defaultParentRef(&r.Spec.ParentRefs[i])
	}
	if r.Spec.Rules == nil {
		r.Spec.Rules = []gatewayv1.HTTPRouteRule{{}}
	}
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		if rule.Matches == nil {
			rule.Matches = []gatewayv1.HTTPRouteMatch{{}}
		}
		for j := range rule.Matches {
			defaultMatch(&rule.Matches[j])
		}
		defaultFilters(rule.Filters)
		if rule.Retry != nil && rule.Retry.Attempts == nil {
			rule.Retry.Attempts = ptrTo(1)
		}
		for j := range rule.BackendRefs {
			ref := &rule.BackendRefs[j]
			defaultWeightedBackendRef(&ref.BackendRef)
			defaultFilters(ref.Filters)
		}
	}
}

func defaultParentRef(ref *gatewayv1.ParentReference) {
	if ref.Group == nil {
		ref.Group = ptrTo(gatewayv1.Group(gatewayv1.GroupName))
	}
	if ref.Kind == nil {
		ref.Kind = ptrTo(gatewayv1.Kind("Gateway"))
	}
}

func defaultMatch(m *gatewayv1.HTTPRouteMatch) {
	if m.Path == nil {
		m.Path = &gatewayv1.HTTPPathMatch{}
	}
	if m.Path.Type == nil {
		m.Path.Type = ptrTo(gatewayv1.PathMatchPathPrefix)
	}
	if m.Path.Value == nil {
		m.Path.Value = ptrTo("/")
	}
	for i := range m.Headers {
		if m.Headers[i].Type == nil {
			m.Headers[i].Type = ptrTo(gatewayv1.HeaderMatchExact)
		}
	}
	for i := range m.QueryParams {
		if m.QueryParams[i].Type == nil {
			m.QueryParams[i].Type = ptrTo(gatewayv1.QueryParamMatchExact)
		}
	}
}

func defaultFilters(filters []gatewayv1.HTTPRouteFilter) {
	for i := range filters {
		f := &filters[i]
		if f.RequestMirror != nil {
			defaultMirror(f.RequestMirror)
		}
		if f.RequestRedirect != nil && f.RequestRedirect.StatusCode == nil {
			f.RequestRedirect.StatusCode = ptrTo(302)
		}
	}
}

func defaultBackendRef(ref *gatewayv1.BackendObjectReference) {
	if ref.Group == nil {
		ref.Group = ptrTo(gatewayv1.Group(corev1.GroupName))
	}
	if ref.Kind == nil {
		ref.Kind = ptrTo(gatewayv1.Kind("Service"))
	}
}

// mergeStringData folds stringData into data as the API server does on
// write: stringData wins over data for the same key.
func mergeStringData(s *corev1.Secret) {
	if len(s.StringData) == 0 {
		return
	}
	if s.Data == nil {
		s.Data = make(map[string][]byte, len(s.StringData))
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

// defaultNamespace adds the label the API server puts on every Namespace,
// which allowedRoutes selectors commonly match on.
func defaultNamespace(ns *corev1.Namespace) {
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = ns.Name
}

func defaultGRPCRoute(r *gatewayv1.GRPCRoute) {
	for i := range r.Spec.ParentRefs {
		defaultParentRef(&r.Spec.ParentRefs[i])
	}
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		for j := range rule.Matches {
			m := &rule.Matches[j]
			if m.Method != nil && m.Method.Type == nil {
				m.Method.Type = ptrTo(gatewayv1.GRPCMethodMatchExact)
			}
			for k := range m.Headers {
				if m.Headers[k].Type == nil {
					m.Headers[k].Type = ptrTo(gatewayv1.GRPCHeaderMatchExact)
				}
			}
		}
		defaultGRPCFilters(rule.Filters)
		for j := range rule.BackendRefs {
			ref := &rule.BackendRefs[j]
			defaultWeightedBackendRef(&ref.BackendRef)
			defaultGRPCFilters(ref.Filters)
		}
	}
}

func defaultGRPCFilters(filters []gatewayv1.GRPCRouteFilter) {
	for i := range filters {
		if m := filters[i].RequestMirror; m != nil {
			defaultMirror(m)
		}
	}
}

// defaultTLSRoute applies the CRD's defaults.
// defaultTLSRoute applies the CRD's defaults.
func defaultTLSRoute(r *gatewayv1.TLSRoute) {
	for i := range r.Spec.ParentRefs {
		defaultParentRef(&r.Spec.ParentRefs[i])
	}
	for i := range r.Spec.Rules {
		for j := range r.Spec.Rules[i].BackendRefs {
			defaultWeightedBackendRef(&r.Spec.Rules[i].BackendRefs[j])
		}
	}
}

// defaultWeightedBackendRef applies the defaults of a route's backendRef,
// its weight included; HTTPRoute, GRPCRoute and TLSRoute share them.
func defaultWeightedBackendRef(ref *gatewayv1.BackendRef) {
	defaultBackendRef(&ref.BackendObjectReference)
	if ref.Weight == nil {
		ref.Weight = ptrTo(int32(1))
	}
}

// defaultMirror applies the defaults of a RequestMirror filter, the same
// on HTTPRoutes and GRPCRoutes.
func defaultMirror(m *gatewayv1.HTTPRequestMirrorFilter) {
	defaultBackendRef(&m.BackendRef)
	if fr := m.Fraction; fr != nil && fr.Denominator == nil {
		fr.Denominator = ptrTo(int32(100))
	}
}
