package snapshot

// This file translates a Gateway's spec.tls: client certificate
// validation for its HTTPS listeners (spec.tls.frontend, a default and
// per-port overrides).

import (
	"fmt"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	porticotls "portico.dev/portico/tls"
)

// portValidation is the client certificate validation of one port of a
// Gateway, shared by every HTTPS listener on it.
type portValidation struct {
	// where names the spec.tls.frontend entry it comes from.
	where string
	// validation is nil when the port validates no client certificates,
	// or when no CA reference resolves (then noValidCA is set).
	validation *porticotls.ClientValidation
	noValidCA  bool
	// resolvedReason is "" when every CA reference resolved.
	resolvedReason, resolvedMsg string
}

// frontendConfig returns the spec.tls.frontend entry for a port: its
// perPort entry, else the default. where names it for messages.
func frontendConfig(gw *gatewayv1.Gateway, port gatewayv1.PortNumber) (cfg *gatewayv1.TLSConfig, where string) {
	if gw.Spec.TLS == nil || gw.Spec.TLS.Frontend == nil {
		return nil, ""
	}
	f := gw.Spec.TLS.Frontend
	for i := range f.PerPort {
		if f.PerPort[i].Port == port {
			return &f.PerPort[i].TLS, fmt.Sprintf("spec.tls.frontend.perPort[%d]", i)
		}
	}
	return &f.Default, "spec.tls.frontend.default"
}

// insecureFrontendValidation names the first spec.tls.frontend entry that
// lets clients without a valid certificate through, or "" when none does.
// The Gateway API asks for a Gateway condition saying so, because that
// mode weakens what the Gateway's owner may believe is enforced.
func insecureFrontendValidation(gw *gatewayv1.Gateway) string {
	if gw.Spec.TLS == nil || gw.Spec.TLS.Frontend == nil {
		return ""
	}
	f := gw.Spec.TLS.Frontend
	if v := f.Default.Validation; v != nil && v.Mode == gatewayv1.AllowInsecureFallback {
		return "spec.tls.frontend.default"
	}
	for i, pp := range f.PerPort {
		if v := pp.TLS.Validation; v != nil && v.Mode == gatewayv1.AllowInsecureFallback {
			return fmt.Sprintf("spec.tls.frontend.perPort[%d]", i)
		}
	}
	return ""
}

// frontendValidation resolves the client certificate validation of an
// HTTPS port once per Gateway and port.
func (t *gatewayTranslator) frontendValidation(info *gatewayInfo, port gatewayv1.PortNumber) *portValidation {
	if pv, ok := info.validation[port]; ok {
		return pv
	}
	pv := &portValidation{}
	if info.validation == nil {
		info.validation = make(map[gatewayv1.PortNumber]*portValidation)
	}
	info.validation[port] = pv
	cfg, where := frontendConfig(info.gw, port)
	if cfg == nil || cfg.Validation == nil {
		return pv
	}
	pv.where = where
	v := cfg.Validation
	fail := func(reason gatewayv1.ListenerConditionReason, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if pv.resolvedReason == "" {
			pv.resolvedReason, pv.resolvedMsg = string(reason), msg
		} else {
			pv.resolvedMsg += "; " + msg
		}
	}
	var bundle []byte
	for i, ref := range v.CACertificateRefs {
		rwhere := fmt.Sprintf("%s.validation.caCertificateRefs[%d]", where, i)
		group, kind := string(ref.Group), string(ref.Kind)
		if isClusterTrustBundle(group, kind) {
			ca, err := t.clusterTrustBundle(string(ref.Name))
			if err != nil {
				fail(gatewayv1.ListenerReasonInvalidCACertificateRef, "%s: %v", rwhere, err)
				continue
			}
			bundle = append(bundle, ca...)
			continue
		}
		if group != "" || kind != kindConfigMap {
			fail(gatewayv1.ListenerReasonInvalidCACertificateKind, "%s: %s is not supported (only ConfigMaps and ClusterTrustBundles)", rwhere, groupKind(group, kind))
			continue
		}
		ns := string(deref(ref.Namespace, gatewayv1.Namespace(info.gw.Namespace)))
		name := key(ns, string(ref.Name))
		if ns != info.gw.Namespace && !t.granted(kindGateway, info.gw.Namespace, "", kindConfigMap, ns, string(ref.Name)) {
			fail(gatewayv1.ListenerReasonRefNotPermitted, "%s: ConfigMap %s is in another namespace and no ReferenceGrant there allows it", rwhere, name)
			continue
		}
		ca, err := caBundle(t.configMaps, name)
		if err != nil {
			fail(gatewayv1.ListenerReasonInvalidCACertificateRef, "%s: %v", rwhere, err)
			continue
		}
		bundle = append(bundle, ca...)
	}
	mode := porticotls.AllowValidOnly
	if v.Mode == gatewayv1.AllowInsecureFallback {
		mode = porticotls.AllowInsecureFallback
	}
	if len(bundle) == 0 {
		pv.noValidCA = true
		return pv
	}
	cv, err := porticotls.NewClientValidation(bundle, mode)
	if err != nil {
		// caBundle already checked every certificate parses.
		fail(gatewayv1.ListenerReasonInvalidCACertificateRef, "%s.validation: %v", where, err)
		pv.noValidCA = true
		return pv
	}
	pv.validation = cv
	return pv
}

// listenerFrontendTLS applies the port's client certificate validation to
// an HTTPS listener's conditions: an unresolved CA reference makes
// ResolvedRefs False (the CAs that resolve are used); when none resolves,
// the listener is not accepted (NoValidCACertificate) and not served, so
// that no client reaches it without the validation it asks for.
func (t *gatewayTranslator) listenerFrontendTLS(info *gatewayInfo, l *listenerInfo) {
	pv := t.frontendValidation(info, l.spec.Port)
	if pv.resolvedReason != "" && (l.resolvedReason == "" || l.resolvedReason == string(gatewayv1.ListenerReasonInvalidRouteKinds)) {
		l.resolvedReason, l.resolvedMsg = pv.resolvedReason, pv.resolvedMsg
	}
	if pv.noValidCA {
		l.accepted = false
		l.acceptedReason = string(gatewayv1.ListenerReasonNoValidCACertificate)
		l.acceptedMsg = fmt.Sprintf("no CA certificate of %s resolves (%s), so client certificates cannot be validated", pv.where, pv.resolvedMsg)
	}
}

// gatewayTLSNotes reports the parts of spec.tls.frontend that are not
// applied (spec.tls.backend is in gateway_backendclientcert.go).
func (t *gatewayTranslator) gatewayTLSNotes(info *gatewayInfo) {
	tlsCfg := info.gw.Spec.TLS
	if tlsCfg == nil {
		return
	}
	if f := tlsCfg.Frontend; f != nil {
		var plain []string
		for _, pp := range f.PerPort {
			https := false
			for _, l := range info.listeners {
				if l.spec.Port == pp.Port && l.spec.Protocol == gatewayv1.HTTPSProtocolType {
					https = true
				}
			}
			if !https {
				plain = append(plain, fmt.Sprint(pp.Port))
			}
		}
		if len(plain) > 0 {
			t.b.problems.add(info.ref, Warning, "FrontendTLSIgnored",
				"spec.tls.frontend.perPort: port %s has no HTTPS listener; its client certificate validation is ignored", strings.Join(plain, ", "))
		}
	}
}
