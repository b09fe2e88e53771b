package snapshot

// This file translates a Gateway's spec.tls.backend: the client
// certificate Portico presents when it originates TLS to a backend of the
// Gateway's routes (a Service port a BackendTLSPolicy targets).

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	porticotls "portico.dev/portico/tls"
	"portico.dev/portico/upstream"
)

// backendClientCert resolves spec.tls.backend.clientCertificateRef. A
// reference that does not resolve makes the Gateway's ResolvedRefs
// condition False (RefNotPermitted, else InvalidClientCertificateRef) and
// is reported; the Gateway is still accepted and served, and its backends
// are dialled without a client certificate, unless the Secret had a good
// key pair before, which then keeps being presented.
func (t *gatewayTranslator) backendClientCert(info *gatewayInfo) {
	tlsCfg := info.gw.Spec.TLS
	if tlsCfg == nil || tlsCfg.Backend == nil || tlsCfg.Backend.ClientCertificateRef == nil {
		return
	}
	ref := tlsCfg.Backend.ClientCertificateRef
	const where = "spec.tls.backend.clientCertificateRef"
	fail := func(reason gatewayv1.GatewayConditionReason, format string, args ...any) {
		info.clientCertReason = string(reason)
		info.clientCertMsg = fmt.Sprintf(where+": "+format, args...)
		t.b.problems.add(info.ref, Error, info.clientCertReason, "%s; backends are dialled without a client certificate", info.clientCertMsg)
	}
	group := string(deref(ref.Group, ""))
	kind := string(deref(ref.Kind, kindSecret))
	if group != "" || kind != kindSecret {
		fail(gatewayv1.GatewayReasonInvalidClientCertificateRef, "%s is not supported (only core Secrets of type kubernetes.io/tls)", groupKind(group, kind))
		return
	}
	ns := string(deref(ref.Namespace, gatewayv1.Namespace(info.gw.Namespace)))
	sk := key(ns, string(ref.Name))
	if ns != info.gw.Namespace && !t.granted(kindGateway, info.gw.Namespace, "", kindSecret, ns, string(ref.Name)) {
		fail(gatewayv1.GatewayReasonRefNotPermitted, "Secret %s is in another namespace and no ReferenceGrant there allows it", sk)
		return
	}
	pair, err := t.b.gatewayKeyPair(sk)
	if err != nil {
		info.clientCertReason = string(gatewayv1.GatewayReasonInvalidClientCertificateRef)
		info.clientCertMsg = fmt.Sprintf("%s: Secret %s: %v", where, sk, err)
		if pair != nil {
			t.b.problems.add(info.ref, Error, info.clientCertReason, "%s; the last good certificate (serial %s) is still presented to backends", info.clientCertMsg, pair.Serial)
		} else {
			t.b.problems.add(info.ref, Error, info.clientCertReason, "%s; backends are dialled without a client certificate", info.clientCertMsg)
		}
	} else {
		t.b.checkExpiry(info.ref, sk, pair)
	}
	info.clientCert = pair
}

// resolvedRefs is the Gateway's ResolvedRefs condition, set when the
// Gateway has a spec.tls.backend: its client certificate reference first,
// then a summary of the listeners' ResolvedRefs.
func (info *gatewayInfo) resolvedRefs(gen int64) metav1.Condition {
	const typ = string(gatewayv1.GatewayConditionResolvedRefs)
	if info.clientCertReason != "" {
		return condition(typ, false, info.clientCertReason, info.clientCertMsg, gen)
	}
	for _, l := range info.listeners {
		if l.resolvedReason != "" {
			return condition(typ, false, string(gatewayv1.GatewayReasonListenersNotResolved),
				fmt.Sprintf("listener %s: %s", l.spec.Name, l.resolvedMsg), gen)
		}
	}
	return condition(typ, true, string(gatewayv1.GatewayReasonResolvedRefs), "all references are resolved", gen)
}

// withClientCert returns the TLS settings of a policy with the client
// certificate of the Gateway being translated, one copy per (policy, key
// pair), so that every backend sharing them shares one set of pools.
func (t *gatewayTranslator) withClientCert(bp *backendTLSPolicy) *upstream.BackendTLS {
	pair := t.clientCert
	if pair == nil || bp.tls == nil {
		return bp.tls
	}
	if c, ok := bp.withCert[pair]; ok {
		return c
	}
	c := &upstream.BackendTLS{
		ServerName:        bp.tls.ServerName,
		CACertificates:    bp.tls.CACertificates,
		SystemRoots:       bp.tls.SystemRoots,
		SubjectAltNames:   bp.tls.SubjectAltNames,
		ClientCertificate: pair.Certificate,
	}
	if bp.withCert == nil {
		bp.withCert = make(map[*porticotls.KeyPair]*upstream.BackendTLS)
	}
	bp.withCert[pair] = c
	return c
}
