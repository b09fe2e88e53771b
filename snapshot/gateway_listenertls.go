package snapshot

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/hostname"
	porticotls "portico.dev/portico/tls"
)

// The certificate of an HTTPS listener, or of a TLS listener in mode
// Terminate: a Secret from certificateRefs, or (HTTPS only) a certificate
// from the ACME CA.

// listenerTLS resolves an HTTPS or terminating TLS listener's certificate. The first
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
			l.acceptedMsg = fmt.Sprintf("tls.mode %q is not supported on %s listeners (only Terminate)", mode, l.spec.Protocol)
			return
		}
	}
	if (tlsCfg == nil || len(tlsCfg.CertificateRefs) == 0) && l.terminatesTLS() {
		l.accepted = false
		l.acceptedReason = string(gatewayv1.ListenerReasonInvalid)
		l.acceptedMsg = "a TLS listener in mode Terminate needs tls.certificateRefs (or tls.mode Passthrough)"
		return
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
	if !l.terminatesTLS() {
		// spec.tls.frontend validates the clients of HTTPS listeners only.
		t.listenerFrontendTLS(info, l)
	}
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
