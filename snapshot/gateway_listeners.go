package snapshot

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/hostname"
	"portico.dev/portico/routing"
	porticotls "portico.dev/portico/tls"
)

// Validating a Gateway and its listeners: what is accepted, what conflicts,
// which routes may attach.

// gatewayInfo is one Gateway of ours while it is being translated.
type gatewayInfo struct {
	gw   *gatewayv1.Gateway
	name types.NamespacedName
	ref  ObjectRef

	// unsupportedAddress is set when spec.addresses holds something we
	// cannot serve at all (Accepted=False UnsupportedAddress).
	unsupportedAddress string
	// invalidParameters is set when spec.infrastructure.parametersRef is
	// set: Portico takes no Gateway parameters (Accepted=False
	// InvalidParameters).
	invalidParameters string
	// static are the spec.addresses values; poolWanted counts the
	// addresses to take from the pool (entries without a value, or one when
	// spec.addresses is empty and a pool is configured).
	static     []netip.Addr
	poolWanted int
	// addresses are the addresses the Gateway is served on; the
	// unspecified address when there is neither a pool nor spec.addresses.
	addresses []netip.Addr
	// addressReason and addressMessage, when set, say why the Gateway is
	// not programmed (AddressNotUsable, AddressNotAssigned).
	addressReason, addressMessage string

	// own are the Gateway's own listeners, in spec order; listeners are
	// the ones served on its sockets: its own, then those of the
	// ListenerSets attached to it (sets), in precedence order.
	own       []*listenerInfo
	listeners []*listenerInfo
	sets      []*listenerSetInfo
	// validation is the client certificate validation of each HTTPS port.
	validation map[gatewayv1.PortNumber]*portValidation
	// clientCert is presented to TLS backends (spec.tls.backend); nil for
	// none. clientCertReason is "" when its reference resolved.
	clientCert                      *porticotls.KeyPair
	clientCertReason, clientCertMsg string
}

// listenerInfo is one listener of a Gateway, its own or one a ListenerSet
// adds.
type listenerInfo struct {
	spec     *gatewayv1.Listener
	hostname string // lower case, "" for any host
	// owner is the object that declares the listener: the Gateway, or
	// the ListenerSet set. Its namespace is the one allowedRoutes "Same"
	// and certificateRefs without a namespace refer to, and its kind is
	// the one ReferenceGrants must name.
	owner ObjectRef
	set   *listenerSetInfo

	// accepted: the listener is valid and routes may attach to it.
	accepted                    bool
	acceptedReason, acceptedMsg string
	conflictReason, conflictMsg string
	resolvedReason, resolvedMsg string
	supportedKinds              []gatewayv1.RouteGroupKind
	// allowsHTTP, allowsGRPC and allowsTLS: allowedRoutes.kinds lets
	// HTTPRoutes, GRPCRoutes, TLSRoutes attach.
	allowsHTTP, allowsGRPC, allowsTLS bool
	pair                              *porticotls.KeyPair
	certSource                        string
	// acme: the listener has no certificateRefs and its certificate comes
	// from the ACME CA (tls.options portico.dev/acme: "true").
	acme           bool
	attachedRoutes int32
	// routes are the route matches attached to the listener, once per
	// route hostname, in precedence order (oldest route first); only a
	// programmed listener has any.
	routes []*routing.Route
}

// programmed reports whether the listener is served.
func (l *listenerInfo) programmed() bool {
	passthrough := l.spec.Protocol == gatewayv1.TLSProtocolType && !l.terminatesTLS()
	return l.accepted && (l.spec.Protocol == gatewayv1.HTTPProtocolType || passthrough || l.pair != nil || l.acme)
}

func (t *gatewayTranslator) gateway(gw *gatewayv1.Gateway) *gatewayInfo {
	info := &gatewayInfo{
		gw:   gw,
		name: key(gw.Namespace, gw.Name),
		ref:  ObjectRef{Kind: kindGateway, Namespace: gw.Namespace, Name: gw.Name},
	}
	t.gatewaySpecAddresses(info)
	if inf := gw.Spec.Infrastructure; inf != nil && inf.ParametersRef != nil {
		pr := inf.ParametersRef
		info.invalidParameters = fmt.Sprintf("spec.infrastructure.parametersRef names %s %s, but Portico takes no Gateway parameters; remove it",
			groupKind(string(pr.Group), string(pr.Kind)), pr.Name)
	}
	for i := range gw.Spec.Listeners {
		info.own = append(info.own, t.listener(info, &gw.Spec.Listeners[i], nil))
	}
	detectConflicts(info.own)
	info.listeners = slices.Clone(info.own)
	t.attachListenerSets(info)
	t.gatewayTLSNotes(info)
	t.backendClientCert(info)
	for _, l := range info.listeners {
		switch {
		case !l.accepted:
			t.b.problems.add(l.owner, Error, l.acceptedReason, "listener %s: %s; it is not served", l.spec.Name, l.acceptedMsg)
		case l.resolvedReason != "":
			t.b.problems.add(l.owner, Error, l.resolvedReason, "listener %s: %s", l.spec.Name, l.resolvedMsg)
		}
	}
	if info.unsupportedAddress != "" {
		t.b.problems.add(info.ref, Error, string(gatewayv1.GatewayReasonUnsupportedAddress), "%s; the Gateway is not served", info.unsupportedAddress)
	}
	if info.invalidParameters != "" {
		t.b.problems.add(info.ref, Error, string(gatewayv1.GatewayReasonInvalidParameters), "%s; the Gateway is not served", info.invalidParameters)
	}
	return info
}

// accepted reports whether the Gateway is served at all: its spec is
// usable and one of its own listeners is valid.
func (info *gatewayInfo) accepted() bool {
	return info.unsupportedAddress == "" && info.invalidParameters == "" && info.anyListenerAccepted()
}

// anyListenerAccepted reports whether one of the Gateway's own listeners is
// valid: without one the Gateway is not accepted, whatever ListenerSets
// add.
func (info *gatewayInfo) anyListenerAccepted() bool {
	return slices.ContainsFunc(info.own, func(l *listenerInfo) bool { return l.accepted })
}

// listener validates one listener on its own; conflicts between listeners
// are found afterwards. set is the ListenerSet that declares it, nil for
// the Gateway's own.
func (t *gatewayTranslator) listener(info *gatewayInfo, spec *gatewayv1.Listener, set *listenerSetInfo) *listenerInfo {
	l := &listenerInfo{spec: spec, accepted: true, owner: info.ref, set: set}
	if set != nil {
		l.owner = set.ref
	}
	if spec.Hostname != nil {
		l.hostname = hostname.Lower(string(*spec.Hostname))
	}
	switch spec.Protocol {
	case gatewayv1.HTTPProtocolType, gatewayv1.HTTPSProtocolType:
	case gatewayv1.TLSProtocolType:
		// Passthrough, or Terminate (extended, TLSRouteModeTerminate): the
		// listener terminates TLS with its certificateRefs and splices the
		// decrypted bytes to the TLSRoute's backends.
	default:
		l.accepted = false
		l.acceptedReason = string(gatewayv1.ListenerReasonUnsupportedProtocol)
		l.acceptedMsg = fmt.Sprintf("protocol %q is not supported (only HTTP, HTTPS and TLS)", spec.Protocol)
		l.supportedKinds = []gatewayv1.RouteGroupKind{}
		return l
	}
	if spec.Port < 1 || spec.Port > 65535 {
		l.accepted = false
		l.acceptedReason = string(gatewayv1.ListenerReasonUnsupportedValue)
		l.acceptedMsg = fmt.Sprintf("port %d is out of range", spec.Port)
		l.supportedKinds = []gatewayv1.RouteGroupKind{}
		return l
	}
	t.routeKinds(l)
	if ar := spec.AllowedRoutes; ar != nil && ar.Namespaces != nil && deref(ar.Namespaces.From, "") == gatewayv1.NamespacesFromSelector {
		msg := "allowedRoutes.namespaces.selector must be set with from: Selector"
		if sel := ar.Namespaces.Selector; sel != nil {
			if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
				msg = "allowedRoutes.namespaces.selector: " + err.Error()
			} else {
				msg = ""
			}
		}
		if msg != "" {
			l.accepted = false
			l.acceptedReason = string(gatewayv1.ListenerReasonUnsupportedValue)
			l.acceptedMsg = msg
			return l
		}
	}
	if spec.Protocol == gatewayv1.HTTPSProtocolType || l.terminatesTLS() {
		t.listenerTLS(info, l)
	}
	return l
}

// terminatesTLS reports whether l is a TLS listener in mode Terminate
// (the mode's default).
func (l *listenerInfo) terminatesTLS() bool {
	return l.spec.Protocol == gatewayv1.TLSProtocolType &&
		(l.spec.TLS == nil || deref(l.spec.TLS.Mode, gatewayv1.TLSModeTerminate) == gatewayv1.TLSModeTerminate)
}

// routeKinds resolves allowedRoutes.kinds: HTTP and HTTPS listeners
// serve HTTPRoutes and GRPCRoutes (gRPC over h2c on HTTP listeners, over
// h2 on HTTPS ones), TLS listeners (Passthrough or Terminate) serve
// TLSRoutes.
func (t *gatewayTranslator) routeKinds(l *listenerInfo) {
	kind := func(name string) gatewayv1.RouteGroupKind {
		return gatewayv1.RouteGroupKind{Group: ptrTo(gatewayv1.Group(gatewayGroup)), Kind: gatewayv1.Kind(name)}
	}
	tls := l.spec.Protocol == gatewayv1.TLSProtocolType
	l.supportedKinds = []gatewayv1.RouteGroupKind{}
	if l.spec.AllowedRoutes == nil || len(l.spec.AllowedRoutes.Kinds) == 0 {
		if tls {
			l.supportedKinds = append(l.supportedKinds, kind(kindTLS))
			l.allowsTLS = true
			return
		}
		l.supportedKinds = append(l.supportedKinds, kind(kindHTTP), kind(kindGRPC))
		l.allowsHTTP, l.allowsGRPC = true, true
		return
	}
	var invalid []string
	for _, k := range l.spec.AllowedRoutes.Kinds {
		group := string(deref(k.Group, gatewayv1.Group(gatewayGroup)))
		var allows *bool
		switch {
		case group == gatewayGroup && k.Kind == kindHTTP && !tls:
			allows = &l.allowsHTTP
		case group == gatewayGroup && k.Kind == kindGRPC && !tls:
			allows = &l.allowsGRPC
		case group == gatewayGroup && k.Kind == kindTLS && tls:
			allows = &l.allowsTLS
		default:
			invalid = append(invalid, groupKind(group, string(k.Kind)))
			continue
		}
		if !*allows {
			l.supportedKinds = append(l.supportedKinds, kind(string(k.Kind)))
		}
		*allows = true
	}
	if len(invalid) > 0 {
		l.resolvedReason = string(gatewayv1.ListenerReasonInvalidRouteKinds)
		supported := "HTTPRoute and GRPCRoute"
		if tls {
			supported = "TLSRoute"
		}
		l.resolvedMsg = fmt.Sprintf("route kinds %s are not supported on %s listeners (only %s)", strings.Join(invalid, ", "), l.spec.Protocol, supported)
	}
}

// allows reports whether routes of kind may attach to the listener.
func (l *listenerInfo) allows(kind string) bool {
	switch kind {
	case kindGRPC:
		return l.allowsGRPC
	case kindTLS:
		return l.allowsTLS
	}
	return l.allowsHTTP
}

// detectConflicts marks listeners of one object that cannot share their
// port: listeners of different protocols on one port (HTTPS and TLS
// included: the spec lets an implementation call them incompatible), or
// two listeners with the same hostname on one port. TLS listeners of both
// modes share a port (the extended TLSRouteModeMixed): the socket picks
// the mode of each connection by its SNI. Every conflicted listener is
// left unserved: within one object the spec lets none of them win.
func detectConflicts(listeners []*listenerInfo) {
	byPort := make(map[gatewayv1.PortNumber][]*listenerInfo)
	for _, l := range listeners {
		if l.accepted {
			byPort[l.spec.Port] = append(byPort[l.spec.Port], l)
		}
	}
	for port, ls := range byPort {
		protocols := make(map[gatewayv1.ProtocolType]bool)
		for _, l := range ls {
			protocols[l.spec.Protocol] = true
		}
		if len(protocols) > 1 {
			for _, l := range ls {
				l.conflict(gatewayv1.ListenerReasonProtocolConflict, fmt.Sprintf("port %d is used by listeners of different protocols", port))
			}
			continue
		}
		byHost := make(map[string][]*listenerInfo)
		for _, l := range ls {
			byHost[l.hostname] = append(byHost[l.hostname], l)
		}
		for host, same := range byHost {
			if len(same) < 2 {
				continue
			}
			what := "no hostname"
			if host != "" {
				what = "hostname " + host
			}
			for _, l := range same {
				l.conflict(gatewayv1.ListenerReasonHostnameConflict, fmt.Sprintf("%d listeners on port %d have %s", len(same), port, what))
			}
		}
	}
}

func (l *listenerInfo) conflict(reason gatewayv1.ListenerConditionReason, msg string) {
	l.accepted = false
	l.conflictReason, l.conflictMsg = string(reason), msg
	l.acceptedReason, l.acceptedMsg = string(reason), msg
}

// allowsNamespace applies allowedRoutes.namespaces to a route's namespace.
func (t *gatewayTranslator) allowsNamespace(info *gatewayInfo, l *listenerInfo, namespace string) bool {
	from := gatewayv1.NamespacesFromSame
	var selector *metav1.LabelSelector
	if ar := l.spec.AllowedRoutes; ar != nil && ar.Namespaces != nil {
		from = deref(ar.Namespaces.From, gatewayv1.NamespacesFromSame)
		selector = ar.Namespaces.Selector
	}
	switch from {
	case gatewayv1.NamespacesFromAll:
		return true
	case gatewayv1.NamespacesFromSame:
		return namespace == l.owner.Namespace
	case gatewayv1.NamespacesFromSelector:
		if selector == nil {
			return false
		}
		sel, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			return false
		}
		return sel.Matches(labels.Set(t.labelsOf(namespace)))
	default:
		return false
	}
}

// groupKind names a kind as kubectl does: "Secret" for the core group,
// "TCPRoute.gateway.networking.k8s.io" otherwise.
func groupKind(group, kind string) string {
	if group == "" {
		return kind
	}
	return kind + "." + group
}

func ptrTo[T any](v T) *T { return &v }
