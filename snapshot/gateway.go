package snapshot

// This file translates Gateway API objects (GatewayClass, Gateway, HTTPRoute,
// ReferenceGrant, BackendTLSPolicy) into Listeners with compiled route
// tables and certificates, and computes the status of every object we own.
// The listener side is split by job: validation in gateway_listeners.go,
// listener certificates in gateway_listenertls.go, addresses in
// gateway_addresses.go, sockets in gateway_sockets.go and Gateway status
// in gateway_status.go. The routes are in gateway_httproute.go, backend
// TLS in gateway_backendtls.go.

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"

	porticotls "portico.dev/portico/tls"
)

// gatewayAPIVersion is the Gateway API bundle version the translation
// implements; it is reported in the GatewayClass SupportedVersion condition.
const gatewayAPIVersion = "v1.7.0"

// SupportedFeatures lists the Gateway API features Portico implements,
// sorted. It is published in the status of our GatewayClasses, and the
// conformance runner passes the same list to the upstream suite.
var SupportedFeatures = sortedFeatures(
	// Core.
	features.SupportGateway,
	features.SupportHTTPRoute,
	features.SupportGRPCRoute,
	features.SupportTLSRoute,
	features.SupportReferenceGrant,
	// Gateway extended.
	features.SupportGatewayPort8080,
	features.SupportGatewayStaticAddresses,
	features.SupportGatewayAddressEmpty,
	features.SupportGatewayHTTPListenerIsolation,
	features.SupportGatewayRouteHostnameIntersectionPrecedence,
	features.SupportGatewayHTTPSListenerDetectMisdirectedRequests,
	features.SupportGatewayFrontendClientCertificateValidation,
	features.SupportGatewayFrontendClientCertificateValidationInsecureFallback,
	features.SupportGatewayBackendClientCertificate,
	features.SupportListenerSet,
	features.SupportClusterTrustBundle,
	features.SupportGatewayInfrastructure,
	// GRPCRoute extended.
	features.SupportGRPCRouteNamedRouteRule,
	features.SupportGRPCRouteRequestHeaderModifier,
	// HTTPRoute extended.
	features.SupportHTTPRouteQueryParamMatching,
	features.SupportHTTPRouteMethodMatching,
	features.SupportHTTPRouteResponseHeaderModification,
	features.SupportHTTPRouteBackendRequestHeaderModification,
	features.SupportHTTPRoutePortRedirect,
	features.SupportHTTPRouteSchemeRedirect,
	features.SupportHTTPRoutePathRedirect,
	features.SupportHTTPRoute303RedirectStatusCode,
	features.SupportHTTPRoute307RedirectStatusCode,
	features.SupportHTTPRoute308RedirectStatusCode,
	features.SupportHTTPRouteHostRewrite,
	features.SupportHTTPRoutePathRewrite,
	features.SupportHTTPRouteRequestMirror,
	features.SupportHTTPRouteRequestMultipleMirrors,
	features.SupportHTTPRouteRequestPercentageMirror,
	features.SupportHTTPRouteRequestTimeout,
	features.SupportHTTPRouteBackendTimeout,
	features.SupportHTTPRouteParentRefPort,
	features.SupportHTTPRouteBackendProtocolH2C,
	features.SupportHTTPRouteBackendProtocolWebSocket,
	features.SupportHTTPRouteNamedRouteRule,
	features.SupportHTTPRouteDestinationPortMatching,
	features.SupportHTTPRouteCORS,
	features.SupportHTTPRouteRetryCodes,
	features.SupportHTTPRouteRetryConnectionError,
	features.SupportHTTPRouteBackendURLRewrite,
	// BackendTLSPolicy.
	features.SupportBackendTLSPolicy,
	features.SupportBackendTLSPolicySANValidation,
	// TLSRoute extended: TLS listeners in mode Terminate, and listeners of
	// both modes on one port (the mode chosen per connection by SNI).
	features.SupportTLSRouteModeTerminate,
	features.SupportTLSRouteModeMixed,
)

func sortedFeatures(names ...features.FeatureName) []features.FeatureName {
	slices.Sort(names)
	return slices.Compact(names)
}

// gatewayState carries what the builder keeps between snapshots for
// Gateways: the addresses handed out from the pool, so that a Gateway keeps
// its address across rebuilds.
type gatewayState struct {
	addresses map[types.NamespacedName][]netip.Addr
}

const (
	gatewayGroup = gatewayv1.GroupName
	kindGateway  = "Gateway"
	kindHTTP     = "HTTPRoute"
	kindGRPC     = "GRPCRoute"
	kindTLS      = "TLSRoute"
	kindService  = "Service"
	kindSecret   = "Secret"
)

// gatewayTranslator holds the indexes of one build's Gateway API objects.
type gatewayTranslator struct {
	b          *builder
	controller gatewayv1.GatewayController
	// namespaceLabels are the labels of each Namespace, for allowedRoutes
	// selectors; a Namespace we have no object for still carries the
	// kubernetes.io/metadata.name label the API server always sets.
	namespaceLabels map[string]labels.Set
	grants          map[string][]*gatewayv1.ReferenceGrant // by namespace
	configMaps      map[types.NamespacedName]*corev1.ConfigMap
	trustBundles    map[string]*certificatesv1.ClusterTrustBundle
	gateways        []*gatewayInfo // ours, oldest first
	byName          map[types.NamespacedName]*gatewayInfo
	// listenerSets are the ListenerSets naming one of our Gateways;
	// setsByGateway lists them per Gateway in precedence order.
	listenerSets  map[types.NamespacedName]*listenerSetInfo
	setsByGateway map[types.NamespacedName][]*listenerSetInfo
	policies      backendTLSPolicies
	status        GatewayAPIStatus
	// clientCert is the backend client certificate of the Gateway whose
	// routes are being translated: routes are translated once per
	// distinct certificate, so their TLS backends carry it.
	clientCert *porticotls.KeyPair
}

// newGatewayTranslator indexes the Gateway API objects and translates the
// BackendTLSPolicies, which Ingress routes and the fallback use too, so it
// runs before the Ingress routes are built. It returns nil when Gateway
// API support is off.
func (b *builder) newGatewayTranslator(objs *Objects) *gatewayTranslator {
	controller := b.cfg.Gateway.ControllerName
	if controller == "" {
		return nil
	}
	t := &gatewayTranslator{
		b:               b,
		controller:      controller,
		namespaceLabels: make(map[string]labels.Set, len(objs.Namespaces)),
		grants:          make(map[string][]*gatewayv1.ReferenceGrant),
		byName:          make(map[types.NamespacedName]*gatewayInfo),
		listenerSets:    make(map[types.NamespacedName]*listenerSetInfo),
		status: GatewayAPIStatus{
			GatewayClasses: make(map[string]gatewayv1.GatewayClassStatus),
			Gateways:       make(map[types.NamespacedName]gatewayv1.GatewayStatus),
			HTTPRoutes:     make(map[types.NamespacedName][]gatewayv1.RouteParentStatus),
			GRPCRoutes:     make(map[types.NamespacedName][]gatewayv1.RouteParentStatus),
			TLSRoutes:      make(map[types.NamespacedName][]gatewayv1.RouteParentStatus),
			ListenerSets:   make(map[types.NamespacedName]gatewayv1.ListenerSetStatus),
		},
	}
	for _, ns := range objs.Namespaces {
		t.namespaceLabels[ns.Name] = namespaceLabels(ns)
	}
	for _, g := range objs.ReferenceGrants {
		t.grants[g.Namespace] = append(t.grants[g.Namespace], g)
	}
	t.trustBundles = make(map[string]*certificatesv1.ClusterTrustBundle, len(objs.ClusterTrustBundles))
	for _, b := range objs.ClusterTrustBundles {
		t.trustBundles[b.Name] = b
	}
	t.configMaps = make(map[types.NamespacedName]*corev1.ConfigMap, len(objs.ConfigMaps))
	for _, cm := range objs.ConfigMaps {
		t.configMaps[key(cm.Namespace, cm.Name)] = cm
	}
	t.translateBackendTLSPolicies(objs)
	return t
}

// gatewayAPI translates the Gateway API objects with t (nil when Gateway
// API support is off): it returns the sockets our Gateways ask for and the
// status of every object we own, and records every rejection as a
// problem.
func (b *builder) gatewayAPI(t *gatewayTranslator, objs *Objects) ([]*Listener, GatewayAPIStatus) {
	b.next.gateways = gatewayState{addresses: make(map[types.NamespacedName][]netip.Addr)}
	if t == nil {
		return nil, GatewayAPIStatus{}
	}
	controller := t.controller
	ours := make(map[string]bool)
	for _, c := range objs.GatewayClasses {
		if c.Spec.ControllerName != controller {
			continue
		}
		ours[c.Name] = true
		t.status.GatewayClasses[c.Name] = t.gatewayClassStatus(c)
	}

	var gateways []*gatewayv1.Gateway
	for _, gw := range objs.Gateways {
		if ours[string(gw.Spec.GatewayClassName)] {
			gateways = append(gateways, gw)
		}
	}
	slices.SortFunc(gateways, func(a, b *gatewayv1.Gateway) int { return olderObject(&a.ObjectMeta, &b.ObjectMeta) })
	ourGateways := make(map[types.NamespacedName]bool, len(gateways))
	for _, gw := range gateways {
		ourGateways[key(gw.Namespace, gw.Name)] = true
	}
	t.setsByGateway = t.indexListenerSets(objs, ourGateways)
	for _, gw := range gateways {
		info := t.gateway(gw)
		t.gateways = append(t.gateways, info)
		t.byName[key(gw.Namespace, gw.Name)] = info
	}
	t.assignAddresses()

	// HTTPRoutes and GRPCRoutes share the listeners' tables, where the
	// older route wins a tie: every kind is attached oldest first
	// (TLSRoutes attach to TLS listeners only, so oldest first among
	// themselves).
	type anyRoute struct {
		meta   *metav1.ObjectMeta
		attach func()
	}
	routes := make([]anyRoute, 0, len(objs.HTTPRoutes)+len(objs.GRPCRoutes)+len(objs.TLSRoutes))
	for _, r := range objs.HTTPRoutes {
		routes = append(routes, anyRoute{&r.ObjectMeta, func() { t.httpRoute(r) }})
	}
	for _, r := range objs.GRPCRoutes {
		routes = append(routes, anyRoute{&r.ObjectMeta, func() { t.grpcRoute(r) }})
	}
	for _, r := range objs.TLSRoutes {
		routes = append(routes, anyRoute{&r.ObjectMeta, func() { t.tlsRoute(r) }})
	}
	slices.SortFunc(routes, func(a, b anyRoute) int { return olderObject(a.meta, b.meta) })
	for _, r := range routes {
		r.attach()
	}

	listeners := t.listeners()
	for _, info := range t.gateways {
		t.status.Gateways[info.name] = info.statusOf()
	}
	for name, s := range t.listenerSets {
		t.status.ListenerSets[name] = s.statusOf()
	}
	t.status.GatewayServices = t.gatewayServices(objs.Services)
	t.status.BackendTLSPolicies = t.backendTLSStatus()
	return listeners, t.status
}

func namespaceLabels(ns *corev1.Namespace) labels.Set {
	set := make(labels.Set, len(ns.Labels)+1)
	for k, v := range ns.Labels {
		set[k] = v
	}
	set[corev1.LabelMetadataName] = ns.Name
	return set
}

func (t *gatewayTranslator) labelsOf(namespace string) labels.Set {
	if set, ok := t.namespaceLabels[namespace]; ok {
		return set
	}
	return labels.Set{corev1.LabelMetadataName: namespace}
}

func (t *gatewayTranslator) gatewayClassStatus(c *gatewayv1.GatewayClass) gatewayv1.GatewayClassStatus {
	gen := c.Generation
	st := gatewayv1.GatewayClassStatus{
		Conditions: []metav1.Condition{
			condition(string(gatewayv1.GatewayClassConditionStatusAccepted), true, string(gatewayv1.GatewayClassReasonAccepted),
				"Portico serves Gateways of this class", gen),
			condition(string(gatewayv1.GatewayClassConditionStatusSupportedVersion), true, string(gatewayv1.GatewayClassReasonSupportedVersion),
				"Portico implements Gateway API "+gatewayAPIVersion, gen),
		},
	}
	for _, f := range SupportedFeatures {
		st.SupportedFeatures = append(st.SupportedFeatures, gatewayv1.SupportedFeature{Name: gatewayv1.FeatureName(f)})
	}
	if c.Spec.ParametersRef != nil {
		t.b.problems.add(ObjectRef{Kind: "GatewayClass", Name: c.Name}, Warning, "ParametersIgnored",
			"spec.parametersRef (%s %s) is ignored: Portico takes no GatewayClass parameters", c.Spec.ParametersRef.Kind, c.Spec.ParametersRef.Name)
	}
	return st
}

// granted reports whether a ReferenceGrant in the target's namespace lets
// objects of fromKind in fromNamespace refer to the named target.
func (t *gatewayTranslator) granted(fromKind, fromNamespace, toGroup, toKind, toNamespace, toName string) bool {
	for _, g := range t.grants[toNamespace] {
		from := slices.ContainsFunc(g.Spec.From, func(f gatewayv1.ReferenceGrantFrom) bool {
			return string(f.Group) == gatewayGroup && string(f.Kind) == fromKind && string(f.Namespace) == fromNamespace
		})
		if !from {
			continue
		}
		to := slices.ContainsFunc(g.Spec.To, func(to gatewayv1.ReferenceGrantTo) bool {
			return string(to.Group) == toGroup && string(to.Kind) == toKind && (to.Name == nil || string(*to.Name) == toName)
		})
		if to {
			return true
		}
	}
	return false
}

// condition builds a status condition. LastTransitionTime stays zero: the
// status writer keeps the time of unchanged conditions and stamps new ones.
func condition(typ string, ok bool, reason, message string, generation int64) metav1.Condition {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: generation}
}

// olderObject orders objects by creation time, then namespace and name:
// the Gateway API's tie-break between conflicting objects.
func olderObject(a, b *metav1.ObjectMeta) int {
	return cmp.Or(
		a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
		strings.Compare(a.Namespace, b.Namespace),
		strings.Compare(a.Name, b.Name),
	)
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
