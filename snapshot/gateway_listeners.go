package snapshot

import (
	"fmt"
	"net/netip"
	"regexp"
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
	allowsHTTPRoute             bool
	pair                        *porticotls.KeyPair
	certSource                  string
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
	return l.accepted && (l.spec.Protocol == gatewayv1.HTTPProtocolType || l.pair != nil || l.acme)
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

// gatewaySpecAddresses reads spec.addresses. Only IPAddress addresses are
// supported; one without a value asks for an address from the pool.
func (t *gatewayTranslator) gatewaySpecAddresses(info *gatewayInfo) {
	for i, a := range info.gw.Spec.Addresses {
		typ := deref(a.Type, gatewayv1.IPAddressType)
		if typ != gatewayv1.IPAddressType {
			info.unsupportedAddress = fmt.Sprintf("spec.addresses[%d]: address type %q is not supported (only IPAddress)", i, typ)
			return
		}
		if a.Value == "" {
			info.poolWanted++
			continue
		}
		addr, err := netip.ParseAddr(a.Value)
		if err != nil || addr.Zone() != "" {
			info.unsupportedAddress = fmt.Sprintf("spec.addresses[%d]: %q is not an IP address", i, a.Value)
			return
		}
		if addr = addr.Unmap(); !slices.Contains(info.static, addr) {
			info.static = append(info.static, addr)
		}
	}
	if len(info.gw.Spec.Addresses) == 0 && len(t.b.cfg.Gateway.AddressPool) > 0 {
		info.poolWanted = 1
	}
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
	default:
		l.accepted = false
		l.acceptedReason = string(gatewayv1.ListenerReasonUnsupportedProtocol)
		l.acceptedMsg = fmt.Sprintf("protocol %q is not supported (only HTTP and HTTPS)", spec.Protocol)
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
	if spec.Protocol == gatewayv1.HTTPSProtocolType {
		t.listenerTLS(info, l)
	}
	return l
}

// routeKinds resolves allowedRoutes.kinds: only HTTPRoute is served.
func (t *gatewayTranslator) routeKinds(l *listenerInfo) {
	httpRoute := gatewayv1.RouteGroupKind{Group: ptrTo(gatewayv1.Group(gatewayGroup)), Kind: kindHTTP}
	l.supportedKinds = []gatewayv1.RouteGroupKind{}
	if l.spec.AllowedRoutes == nil || len(l.spec.AllowedRoutes.Kinds) == 0 {
		l.supportedKinds = append(l.supportedKinds, httpRoute)
		l.allowsHTTPRoute = true
		return
	}
	var invalid []string
	for _, k := range l.spec.AllowedRoutes.Kinds {
		group := string(deref(k.Group, gatewayv1.Group(gatewayGroup)))
		if group == gatewayGroup && k.Kind == kindHTTP {
			if !l.allowsHTTPRoute {
				l.supportedKinds = append(l.supportedKinds, httpRoute)
			}
			l.allowsHTTPRoute = true
			continue
		}
		invalid = append(invalid, groupKind(group, string(k.Kind)))
	}
	if len(invalid) > 0 {
		l.resolvedReason = string(gatewayv1.ListenerReasonInvalidRouteKinds)
		l.resolvedMsg = fmt.Sprintf("route kinds %s are not supported (only HTTPRoute)", strings.Join(invalid, ", "))
	}
}

// listenerTLS resolves an HTTPS listener's certificate. The first
// certificateRef that resolves is served; a Secret that went missing or
// stopped parsing keeps serving its last good key pair. A listener without
// certificateRefs may ask for an ACME certificate instead (listenerACME);
// with both, the certificateRefs win and the option is ignored.
func (t *gatewayTranslator) listenerTLS(info *gatewayInfo, l *listenerInfo) {
	tlsCfg := l.spec.TLS
	if tlsCfg != nil {
		if mode := deref(tlsCfg.Mode, gatewayv1.TLSModeTerminate); mode != gatewayv1.TLSModeTerminate {
			l.accepted = false
			l.acceptedReason = string(gatewayv1.ListenerReasonUnsupportedValue)
			l.acceptedMsg = fmt.Sprintf("tls.mode %q is not supported on HTTPS listeners (only Terminate)", mode)
			return
		}
	}
	if tlsCfg == nil || len(tlsCfg.CertificateRefs) == 0 {
		t.listenerACME(l)
		if l.accepted {
			t.listenerFrontendTLS(info, l)
		}
		return
	}
	fail := func(reason gatewayv1.ListenerConditionReason, format string, args ...any) {
		if l.resolvedReason == "" || l.resolvedReason == string(gatewayv1.ListenerReasonInvalidRouteKinds) {
			l.resolvedReason = string(reason)
			l.resolvedMsg = fmt.Sprintf(format, args...)
		}
	}
	for i, ref := range tlsCfg.CertificateRefs {
		group := string(deref(ref.Group, ""))
		kind := string(deref(ref.Kind, kindSecret))
		ns := string(deref(ref.Namespace, gatewayv1.Namespace(l.owner.Namespace)))
		where := fmt.Sprintf("tls.certificateRefs[%d]", i)
		if group != "" || kind != kindSecret {
			fail(gatewayv1.ListenerReasonInvalidCertificateRef, "%s: %s is not supported (only core Secrets)", where, groupKind(group, kind))
			continue
		}
		sk := key(ns, string(ref.Name))
		if ns != l.owner.Namespace && !t.granted(l.owner.Kind, l.owner.Namespace, "", kindSecret, ns, string(ref.Name)) {
			fail(gatewayv1.ListenerReasonRefNotPermitted, "%s: Secret %s is in another namespace and no ReferenceGrant there allows it", where, sk)
			continue
		}
		pair, err := t.b.gatewayKeyPair(sk)
		if err != nil {
			note := ""
			if pair != nil {
				note = fmt.Sprintf("; the last good certificate (serial %s) keeps serving", pair.Serial)
			}
			fail(gatewayv1.ListenerReasonInvalidCertificateRef, "%s: Secret %s: %v%s", where, sk, err, note)
		} else {
			t.b.checkExpiry(l.owner, sk, pair)
		}
		if pair != nil && l.pair == nil {
			l.pair = pair
			l.certSource = sk.String()
			if l.hostname != "" && !covers(pair, l.hostname) {
				t.b.problems.add(l.owner, Warning, "CertificateHostMismatch", "listener %s: the certificate in Secret %s does not cover hostname %s (it covers %s); clients will reject it",
					l.spec.Name, sk, l.hostname, strings.Join(pair.DNSNames, ", "))
			}
		}
	}
	t.listenerFrontendTLS(info, l)
}

// listenerACME accepts an HTTPS listener without certificateRefs when its
// tls.options ask for a certificate from the ACME CA, ACME is configured,
// and the listener names one exact host: HTTP-01 cannot validate a
// wildcard, and without a hostname any SNI a client sends would be
// ordered.
func (t *gatewayTranslator) listenerACME(l *listenerInfo) {
	reject := func(format string, args ...any) {
		l.accepted = false
		l.acceptedReason = string(gatewayv1.ListenerReasonInvalid)
		l.acceptedMsg = fmt.Sprintf(format, args...)
	}
	var value gatewayv1.AnnotationValue
	optIn := false
	if l.spec.TLS != nil {
		value, optIn = l.spec.TLS.Options[gatewayv1.AnnotationKey(annotationACME)]
	}
	switch {
	case !optIn:
		reject("an HTTPS listener needs tls.certificateRefs, or tls.options %s: \"true\" for a certificate from the ACME CA", annotationACME)
	case value != "true":
		reject("tls.options %s is %q; without tls.certificateRefs it must be \"true\" (a certificate from the ACME CA)", annotationACME, value)
	case !t.b.cfg.ACME.Enabled:
		reject("tls.options %s asks for a certificate from the ACME CA but Portico runs without --acme-directory; set tls.certificateRefs or enable ACME", annotationACME)
	case l.hostname == "":
		reject("tls.options %s needs an exact listener hostname: ACME certificates are ordered per name", annotationACME)
	case hostname.IsWildcard(l.hostname):
		reject("tls.options %s: hostname %s is a wildcard, which ACME HTTP-01 challenges cannot validate; use tls.certificateRefs", annotationACME, l.hostname)
	default:
		l.acme = true
	}
}

// gatewayKeyPair parses a TLS Secret for a Gateway listener through the
// builder's parse cache. Unlike an Ingress Secret, a Secret that
// disappears keeps its last good key pair, returned with the error.
func (b *builder) gatewayKeyPair(sk types.NamespacedName) (*porticotls.KeyPair, error) {
	secret := b.secrets[sk]
	if secret == nil {
		err := fmt.Errorf("not found (or not of type kubernetes.io/tls)")
		if last, ok := b.next.keyPairs[sk]; ok {
			return last.pair, err
		}
		if last, ok := b.prev.keyPairs[sk]; ok && last.pair != nil {
			b.next.keyPairs[sk] = last
			return last.pair, err
		}
		return nil, err
	}
	parsed, done := b.next.keyPairs[sk]
	if !done {
		parsed = b.parseSecret(sk, secret)
		b.next.keyPairs[sk] = parsed
	}
	return parsed.pair, parsed.err
}

// detectConflicts marks listeners of one object that cannot share their
// port: HTTP and HTTPS on one port, or two listeners with the same hostname
// on one port. Every conflicted listener is left unserved: within one
// object the spec lets none of them win.
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

// assignAddresses gives every accepted Gateway the addresses it is served
// on, oldest Gateway first. Static addresses must lie in the pool when one
// is configured, and belong to one Gateway. Pool addresses are sticky: a
// Gateway keeps the address it had in the previous snapshot, or the one
// in its status (after a restart) when it is still free; others get the
// next free address. Without a pool and without spec.addresses a Gateway
// binds the unspecified address, and one socket (port) goes to the oldest
// Gateway asking for it.
func (t *gatewayTranslator) assignAddresses() {
	pool := t.b.cfg.Gateway.AddressPool
	taken := make(map[netip.Addr]types.NamespacedName)
	inPool := func(a netip.Addr) bool {
		return slices.ContainsFunc(pool, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	var eligible []*gatewayInfo
	for _, info := range t.gateways {
		if info.accepted() {
			eligible = append(eligible, info)
		}
	}

	for _, info := range eligible {
		for _, a := range info.static {
			if len(pool) > 0 && !inPool(a) {
				info.addressNotUsable(fmt.Sprintf("address %s is outside the address pool (%s)", a, prefixList(pool)))
				break
			}
			if owner, ok := taken[a]; ok && owner != info.name {
				info.addressNotUsable(fmt.Sprintf("address %s is already used by Gateway %s", a, owner))
				break
			}
		}
		if info.addressReason != "" {
			t.b.problems.add(info.ref, Error, info.addressReason, "%s; the Gateway is not served", info.addressMessage)
			continue
		}
		for _, a := range info.static {
			taken[a] = info.name
			info.addresses = append(info.addresses, a)
		}
	}

	if len(pool) > 0 {
		// Sticky addresses first, so that a new Gateway never takes the
		// address an existing one had.
		for _, info := range eligible {
			if info.addressReason != "" || info.poolWanted == 0 {
				continue
			}
			var candidates []netip.Addr
			candidates = append(candidates, t.b.prev.gateways.addresses[info.name]...)
			for _, sa := range info.gw.Status.Addresses {
				if deref(sa.Type, gatewayv1.IPAddressType) != gatewayv1.IPAddressType {
					continue
				}
				if a, err := netip.ParseAddr(sa.Value); err == nil {
					candidates = append(candidates, a.Unmap())
				}
			}
			for _, a := range candidates {
				if info.poolWanted == 0 {
					break
				}
				if _, used := taken[a]; used || !inPool(a) {
					continue
				}
				taken[a] = info.name
				info.addresses = append(info.addresses, a)
				info.poolWanted--
			}
		}
		for _, info := range eligible {
			for info.addressReason == "" && info.poolWanted > 0 {
				a, ok := nextFree(pool, taken)
				if !ok {
					info.addressReason = string(gatewayv1.GatewayReasonAddressNotAssigned)
					info.addressMessage = fmt.Sprintf("the address pool (%s) is exhausted", prefixList(pool))
					t.b.problems.add(info.ref, Error, info.addressReason, "%s; the Gateway is not served", info.addressMessage)
					break
				}
				taken[a] = info.name
				info.addresses = append(info.addresses, a)
				info.poolWanted--
			}
		}
	} else {
		for _, info := range eligible {
			if info.poolWanted > 0 && info.addressReason == "" {
				info.addressReason = string(gatewayv1.GatewayReasonAddressNotAssigned)
				info.addressMessage = "spec.addresses asks for an assigned address but no address pool is configured"
				t.b.problems.add(info.ref, Error, info.addressReason, "%s; the Gateway is not served", info.addressMessage)
			}
		}
	}

	// Without any address the Gateway binds every interface; each port
	// goes to the oldest Gateway that asks for it.
	ports := make(map[gatewayv1.PortNumber]types.NamespacedName)
	for _, info := range eligible {
		if info.addressReason != "" || len(info.addresses) > 0 {
			continue
		}
		for _, l := range info.listeners {
			if owner, ok := ports[l.spec.Port]; ok && l.accepted && owner != info.name {
				info.addressReason = string(gatewayv1.GatewayReasonAddressNotAssigned)
				info.addressMessage = fmt.Sprintf("port %d on all addresses is already served by Gateway %s; configure an address pool or set spec.addresses", l.spec.Port, owner)
				t.b.problems.add(info.ref, Error, info.addressReason, "%s; the Gateway is not served", info.addressMessage)
				break
			}
		}
		if info.addressReason != "" {
			continue
		}
		for _, l := range info.listeners {
			if l.accepted {
				ports[l.spec.Port] = info.name
			}
		}
		info.addresses = []netip.Addr{netip.IPv4Unspecified()}
	}

	for _, info := range eligible {
		if info.addressReason == "" {
			var fromPool []netip.Addr
			for _, a := range info.addresses {
				if !slices.Contains(info.static, a) && a.IsValid() && !a.IsUnspecified() {
					fromPool = append(fromPool, a)
				}
			}
			if len(fromPool) > 0 {
				t.b.next.gateways.addresses[info.name] = fromPool
			}
		}
	}
}

func (info *gatewayInfo) addressNotUsable(msg string) {
	info.addressReason = string(gatewayv1.GatewayReasonAddressNotUsable)
	info.addressMessage = msg
}

// anyListenerAccepted reports whether one of the Gateway's own listeners is
// valid: without one the Gateway is not accepted, whatever ListenerSets
// add.
func (info *gatewayInfo) anyListenerAccepted() bool {
	return slices.ContainsFunc(info.own, func(l *listenerInfo) bool { return l.accepted })
}

// nextFree returns the first address of the pool that is not taken. The
// network and broadcast addresses of IPv4 prefixes are never handed out.
// The walk is bounded by the number of taken addresses.
func nextFree(pool []netip.Prefix, taken map[netip.Addr]types.NamespacedName) (netip.Addr, bool) {
	for _, p := range pool {
		p = p.Masked()
		a := p.Addr()
		skipEnds := a.Is4() && p.Bits() <= 30
		if skipEnds {
			a = a.Next()
		}
		for ; a.IsValid() && p.Contains(a); a = a.Next() {
			if skipEnds && !p.Contains(a.Next()) {
				break
			}
			if _, used := taken[a]; !used {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

func prefixList(pool []netip.Prefix) string {
	s := make([]string, len(pool))
	for i, p := range pool {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// served reports whether the Gateway has sockets.
func (info *gatewayInfo) served() bool {
	return info.accepted() && info.addressReason == "" && len(info.addresses) > 0
}

// listeners builds one Listener per (address, port) of every served
// Gateway, sorted by address and port.
func (t *gatewayTranslator) listeners() []*Listener {
	var out []*Listener
	for _, info := range t.gateways {
		if !info.served() {
			continue
		}
		byPort := make(map[gatewayv1.PortNumber][]*listenerInfo)
		var ports []gatewayv1.PortNumber
		for _, l := range info.listeners {
			if !l.programmed() {
				continue
			}
			if _, seen := byPort[l.spec.Port]; !seen {
				ports = append(ports, l.spec.Port)
			}
			byPort[l.spec.Port] = append(byPort[l.spec.Port], l)
		}
		slices.Sort(ports)
		for _, port := range ports {
			ls := byPort[port]
			// Tables and certificate sets are immutable, so the sockets of
			// every address of the Gateway share them.
			table := t.socketTable(info, ls)
			var certs *porticotls.Certificates
			var validation *porticotls.ClientValidation
			if ls[0].spec.Protocol == gatewayv1.HTTPSProtocolType {
				certs = socketCertificates(ls)
				t.socketACMEHosts(ls, certs)
				validation = t.frontendValidation(info, port).validation
				// A request whose Host belongs to another listener than
				// its connection's SNI is answered 421, so that a
				// coalesced HTTP/2 connection cannot cross listeners.
				table.AnswerMisdirected()
			}
			for _, addr := range info.addresses {
				sock := &Listener{
					Address:          addr,
					Port:             int32(port),
					Protocol:         ls[0].spec.Protocol,
					Gateway:          info.name,
					Routes:           table,
					Certificates:     certs,
					ClientValidation: validation,
				}
				out = append(out, sock)
			}
		}
	}
	slices.SortFunc(out, func(a, b *Listener) int {
		if c := a.Address.Compare(b.Address); c != 0 {
			return c
		}
		return int(a.Port - b.Port)
	})
	return out
}

// socketTable compiles the routes of the listeners sharing a socket: the
// table picks a request's listener by host, then matches that listener's
// routes only.
func (t *gatewayTranslator) socketTable(info *gatewayInfo, ls []*listenerInfo) *routing.Table {
	in := make([]routing.ListenerRoutes, len(ls))
	for i, l := range ls {
		in[i] = routing.ListenerRoutes{Hostname: l.hostname, Routes: l.routes}
	}
	table, shadowed := routing.CompileListeners(in, nil)
	compiled := table.Listeners()
	for i, l := range ls {
		for _, r := range shadowed[i] {
			t.reportShadowedRoute(info, l, r, compiled[i].Routes)
		}
	}
	return table
}

// reportShadowedRoute warns the owner of a route that an older route of
// the same listener, with the same hostname, path and conditions, hides.
func (t *gatewayTranslator) reportShadowedRoute(info *gatewayInfo, l *listenerInfo, r *routing.Route, kept []*routing.Route) {
	what := fmt.Sprintf("path %s %q", r.PathKind, r.Path)
	if r.PathKind == routing.PathRegex {
		what = fmt.Sprintf("path RegularExpression %q", r.Path)
	}
	host := "hostname " + r.Host
	if r.Host == "" {
		host = "no hostname"
	}
	winner := "an older route"
	if i := slices.IndexFunc(kept, func(k *routing.Route) bool { return sameRouteMatch(k, r) }); i >= 0 {
		w := kept[i].Source
		winner = fmt.Sprintf("%s %s/%s (rule %s), which is older and wins", w.Kind, w.Namespace, w.Name, w.Rule)
	}
	t.b.problems.add(ObjectRef{Kind: r.Source.Kind, Namespace: r.Source.Namespace, Name: r.Source.Name}, Warning, "RouteConflict",
		"%s with %s (rule %s) on listener %s of Gateway %s is also defined by %s",
		what, host, r.Source.Rule, l.spec.Name, info.name, winner)
}

// sameRouteMatch reports whether two routes of one listener take the same
// requests: same hostname, path and conditions (in any order).
func sameRouteMatch(a, b *routing.Route) bool {
	if a.Host != b.Host || a.PathKind != b.PathKind || a.Method != b.Method {
		return false
	}
	pa, pb := a.Path, b.Path
	if a.PathKind == routing.PathPrefix {
		pa, pb = strings.TrimSuffix(pa, "/"), strings.TrimSuffix(pb, "/")
	}
	if pa != pb {
		return false
	}
	return slices.Equal(conditionKeys(a), conditionKeys(b))
}

// conditionKeys lists a route's header and query conditions as sorted
// strings.
func conditionKeys(r *routing.Route) []string {
	var keys []string
	for _, h := range r.Headers {
		keys = append(keys, matchKey("h", h.Name, h.Value, h.Regexp))
	}
	for _, q := range r.QueryParams {
		keys = append(keys, matchKey("q", q.Name, q.Value, q.Regexp))
	}
	slices.Sort(keys)
	return keys
}

func matchKey(kind, name, value string, re *regexp.Regexp) string {
	if re != nil {
		return kind + "\x00" + name + "\x00~" + re.String()
	}
	return kind + "\x00" + name + "\x00=" + value
}

// socketACMEHosts adds the hostnames of a socket's ACME listeners to the
// names ACME may serve, unless a certificate of the socket covers the name
// (a wildcard listener's Secret): the socket looks its certificates up
// first, so the ACME certificate would never be presented.
func (t *gatewayTranslator) socketACMEHosts(ls []*listenerInfo, certs *porticotls.Certificates) {
	for _, l := range ls {
		if !l.acme {
			continue
		}
		if certs.Has(l.hostname) {
			t.b.problems.add(l.owner, Warning, "ACMEHostHasCertificate", "listener %s: hostname %s is covered by the certificate of another listener on port %d, which is served instead of an ACME certificate",
				l.spec.Name, l.hostname, l.spec.Port)
			continue
		}
		t.b.gatewayACMEHosts = append(t.b.gatewayACMEHosts, l.hostname)
		t.b.reportACMEExpiring(l.owner, l.hostname)
	}
}

// socketCertificates serves each HTTPS listener's certificate for its
// hostname; the listener without hostname provides the socket's default.
// ACME listeners have no key pair here: their certificate comes from the
// ACME manager at the handshake.
func socketCertificates(ls []*listenerInfo) *porticotls.Certificates {
	var bindings []porticotls.Binding
	var def *porticotls.KeyPair
	for _, l := range ls {
		if l.acme {
			continue
		}
		if l.hostname == "" {
			def = l.pair
			continue
		}
		bindings = append(bindings, porticotls.Binding{Host: l.hostname, Pair: l.pair, Source: l.certSource})
	}
	return porticotls.NewCertificates(bindings, def)
}

// statusOf is the Gateway's status once routes have attached.
func (info *gatewayInfo) statusOf() gatewayv1.GatewayStatus {
	gen := info.gw.Generation
	var st gatewayv1.GatewayStatus
	for _, a := range info.addresses {
		if a.IsUnspecified() {
			continue
		}
		st.Addresses = append(st.Addresses, gatewayv1.GatewayStatusAddress{Type: ptrTo(gatewayv1.IPAddressType), Value: a.String()})
	}

	accepted, invalid := 0, 0
	for _, l := range info.own {
		if l.accepted {
			accepted++
		} else {
			invalid++
		}
	}
	var acc metav1.Condition
	const typeAccepted, typeProgrammed = string(gatewayv1.GatewayConditionAccepted), string(gatewayv1.GatewayConditionProgrammed)
	switch {
	case info.unsupportedAddress != "":
		acc = condition(typeAccepted, false, string(gatewayv1.GatewayReasonUnsupportedAddress), info.unsupportedAddress, gen)
	case info.invalidParameters != "":
		acc = condition(typeAccepted, false, string(gatewayv1.GatewayReasonInvalidParameters), info.invalidParameters, gen)
	case accepted == 0:
		acc = condition(typeAccepted, false, string(gatewayv1.GatewayReasonListenersNotValid), "no listener is valid", gen)
	case invalid > 0:
		acc = condition(typeAccepted, true, string(gatewayv1.GatewayReasonListenersNotValid), fmt.Sprintf("%d of %d listeners are not valid and not served", invalid, len(info.own)), gen)
	default:
		acc = condition(typeAccepted, true, string(gatewayv1.GatewayReasonAccepted), "the Gateway is accepted", gen)
	}
	var prog metav1.Condition
	programmed := slices.ContainsFunc(info.listeners, (*listenerInfo).programmed)
	switch {
	case acc.Status == metav1.ConditionFalse:
		prog = condition(typeProgrammed, false, string(gatewayv1.GatewayReasonInvalid), "the Gateway is not accepted", gen)
	case info.addressReason != "":
		prog = condition(typeProgrammed, false, info.addressReason, info.addressMessage, gen)
	case !programmed:
		prog = condition(typeProgrammed, false, string(gatewayv1.GatewayReasonInvalid), "no listener can be served", gen)
	default:
		prog = condition(typeProgrammed, true, string(gatewayv1.GatewayReasonProgrammed), "the Gateway is served", gen)
	}
	st.Conditions = []metav1.Condition{acc, prog}
	if tlsCfg := info.gw.Spec.TLS; tlsCfg != nil && tlsCfg.Backend != nil {
		st.Conditions = append(st.Conditions, info.resolvedRefs(gen))
	}
	if where := insecureFrontendValidation(info.gw); where != "" {
		st.Conditions = append(st.Conditions, condition(string(gatewayv1.GatewayConditionInsecureFrontendValidationMode), true,
			string(gatewayv1.GatewayReasonConfigurationChanged),
			where+" allows clients without a valid certificate (AllowInsecureFallback)", gen))
	}

	served := info.served()
	for _, l := range info.own {
		st.Listeners = append(st.Listeners, l.status(gen, served))
	}
	st.AttachedListenerSets = ptrTo(info.attachedListenerSets())
	return st
}

func (l *listenerInfo) status(gen int64, gatewayServed bool) gatewayv1.ListenerStatus {
	const (
		typeAccepted   = string(gatewayv1.ListenerConditionAccepted)
		typeProgrammed = string(gatewayv1.ListenerConditionProgrammed)
		typeResolved   = string(gatewayv1.ListenerConditionResolvedRefs)
		typeConflicted = string(gatewayv1.ListenerConditionConflicted)
	)
	var conds []metav1.Condition
	if l.accepted {
		conds = append(conds, condition(typeAccepted, true, string(gatewayv1.ListenerReasonAccepted), "the listener is valid", gen))
	} else {
		conds = append(conds, condition(typeAccepted, false, l.acceptedReason, l.acceptedMsg, gen))
	}
	switch {
	case l.conflictReason != "":
		// ListenerSet conformance asks for the conflict as the reason
		// here too; one rule for every listener keeps statuses alike.
		conds = append(conds, condition(typeProgrammed, false, l.conflictReason, l.conflictMsg, gen))
	case !l.programmed():
		msg := "the listener is not valid"
		if l.accepted {
			msg = "the listener has no usable certificate"
		}
		conds = append(conds, condition(typeProgrammed, false, string(gatewayv1.ListenerReasonInvalid), msg, gen))
	case !gatewayServed:
		conds = append(conds, condition(typeProgrammed, false, string(gatewayv1.ListenerReasonPending), "the Gateway has no usable address", gen))
	default:
		conds = append(conds, condition(typeProgrammed, true, string(gatewayv1.ListenerReasonProgrammed), "the listener is served", gen))
	}
	if l.resolvedReason != "" {
		conds = append(conds, condition(typeResolved, false, l.resolvedReason, l.resolvedMsg, gen))
	} else {
		conds = append(conds, condition(typeResolved, true, string(gatewayv1.ListenerReasonResolvedRefs), "all references are resolved", gen))
	}
	if l.conflictReason != "" {
		conds = append(conds, condition(typeConflicted, true, l.conflictReason, l.conflictMsg, gen))
	} else {
		conds = append(conds, condition(typeConflicted, false, string(gatewayv1.ListenerReasonNoConflicts), "no conflicts", gen))
	}
	return gatewayv1.ListenerStatus{
		Name:           l.spec.Name,
		SupportedKinds: l.supportedKinds,
		AttachedRoutes: l.attachedRoutes,
		Conditions:     conds,
	}
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
