package snapshot

// This file translates BackendTLSPolicies: which Service ports Gateway
// routes reach over TLS, how their certificates are verified, and the
// policies' status for every Gateway whose routes use a targeted Service.

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	porticotls "portico.dev/portico/tls"
	"portico.dev/portico/upstream"
)

const (
	kindBackendTLSPolicy = "BackendTLSPolicy"
	kindConfigMap        = "ConfigMap"
	// caBundleKey is the ConfigMap key that holds a PEM CA bundle, for
	// BackendTLSPolicies and Gateway frontend validation alike.
	caBundleKey = "ca.crt"
)

// policyTarget is a Service, or one port of it by name, that a
// BackendTLSPolicy targets.
type policyTarget struct {
	service types.NamespacedName
	section string // a Service port name; "" for every port
}

// backendTLSPolicy is one BackendTLSPolicy while it is being translated.
type backendTLSPolicy struct {
	p   *gatewayv1.BackendTLSPolicy
	ref ObjectRef

	// tls is what the targeted backends are dialled with; nil when the
	// policy is not usable at all (Accepted=False Invalid), in which case
	// the targets are reached in plain text as if there were no policy.
	tls *upstream.BackendTLS
	// acceptedReason is "" when the policy is accepted.
	acceptedReason, acceptedMsg string
	// resolvedReason is "" when every CA reference resolved.
	resolvedReason, resolvedMsg string
	// named are the Services (or ports) the policy names; it holds
	// targets, and lost those an older policy holds.
	named, targets, lost []policyTarget

	// backends maps a resolved Service port and a Gateway's backend client
	// certificate to its TLS copy, so that every route using the port
	// through Gateways with that certificate shares one Backend (and one
	// round-robin cursor).
	backends map[tlsBackendKey]*upstream.Backend
	// withCert are the TLS settings with each Gateway's client certificate.
	withCert map[*porticotls.KeyPair]*upstream.BackendTLS
	// ancestors are our Gateways whose routes refer to a targeted Service.
	ancestors []types.NamespacedName
}

// backendTLSPolicies indexes the build's policies by target.
type backendTLSPolicies struct {
	all []*backendTLSPolicy // oldest first
	// winner is the policy that serves each target: the oldest one (then
	// by namespace/name), as GEP-713 resolves conflicts.
	winner map[policyTarget]*backendTLSPolicy
	// byService lists every policy naming a Service, winners or not, for
	// their status.
	byService map[types.NamespacedName][]*backendTLSPolicy
}

// translateBackendTLSPolicies validates every policy and picks the winner
// of each target.
func (t *gatewayTranslator) translateBackendTLSPolicies(objs *Objects) {
	t.policies = backendTLSPolicies{
		winner:    make(map[policyTarget]*backendTLSPolicy),
		byService: make(map[types.NamespacedName][]*backendTLSPolicy),
	}
	sorted := slices.Clone(objs.BackendTLSPolicies)
	slices.SortFunc(sorted, func(a, b *gatewayv1.BackendTLSPolicy) int { return olderObject(&a.ObjectMeta, &b.ObjectMeta) })
	for _, p := range sorted {
		bp := &backendTLSPolicy{
			p:        p,
			ref:      ObjectRef{Kind: kindBackendTLSPolicy, Namespace: p.Namespace, Name: p.Name},
			backends: make(map[tlsBackendKey]*upstream.Backend),
		}
		t.validateBackendTLS(bp)
		t.policies.all = append(t.policies.all, bp)
		seen := make(map[policyTarget]bool)
		for i, tr := range p.Spec.TargetRefs {
			if tr.Group != "" || tr.Kind != kindService {
				t.b.problems.add(bp.ref, Warning, string(gatewayv1.PolicyReasonInvalid),
					"spec.targetRefs[%d]: %s is not supported (only core Services); the reference is ignored", i, groupKind(string(tr.Group), string(tr.Kind)))
				continue
			}
			target := policyTarget{service: key(p.Namespace, string(tr.Name)), section: string(deref(tr.SectionName, ""))}
			if seen[target] {
				continue
			}
			seen[target] = true
			bp.named = append(bp.named, target)
			if !slices.Contains(t.policies.byService[target.service], bp) {
				t.policies.byService[target.service] = append(t.policies.byService[target.service], bp)
			}
			if bp.tls == nil {
				continue
			}
			if owner := t.policies.winner[target]; owner != nil {
				bp.lost = append(bp.lost, target)
				t.b.problems.add(bp.ref, Warning, string(gatewayv1.PolicyReasonConflicted),
					"%s is also targeted by BackendTLSPolicy %s/%s, which is older and applies", target, owner.p.Namespace, owner.p.Name)
				continue
			}
			t.policies.winner[target] = bp
			bp.targets = append(bp.targets, target)
		}
		if bp.acceptedReason == "" && len(bp.targets) == 0 && len(bp.lost) > 0 {
			bp.acceptedReason = string(gatewayv1.PolicyReasonConflicted)
			bp.acceptedMsg = "every target is held by an older BackendTLSPolicy"
		}
	}
}

func (pt policyTarget) String() string {
	if pt.section == "" {
		return "Service " + pt.service.String()
	}
	return fmt.Sprintf("port %q of Service %s", pt.section, pt.service)
}

// validateBackendTLS resolves a policy's validation settings into the
// upstream TLS configuration and its conditions. A policy whose CA
// references all fail still gets a configuration, with no CA, so that
// connections to its targets fail (answered 502) rather than fall back to
// plain text or to trusting anything.
func (t *gatewayTranslator) validateBackendTLS(bp *backendTLSPolicy) {
	v := bp.p.Spec.Validation
	invalid := func(format string, args ...any) {
		bp.acceptedReason = string(gatewayv1.PolicyReasonInvalid)
		bp.acceptedMsg = fmt.Sprintf(format, args...)
		t.b.problems.add(bp.ref, Error, bp.acceptedReason, "%s; the policy is not applied", bp.acceptedMsg)
	}
	if len(bp.p.Spec.Options) > 0 {
		t.b.problems.add(bp.ref, Warning, "OptionsIgnored", "spec.options are ignored: Portico knows none")
	}
	wellKnown := deref(v.WellKnownCACertificates, "")
	switch {
	case len(v.CACertificateRefs) > 0 && wellKnown != "":
		invalid("spec.validation: caCertificateRefs and wellKnownCACertificates are mutually exclusive")
		return
	case wellKnown != "" && wellKnown != gatewayv1.WellKnownCACertificatesSystem:
		invalid("spec.validation.wellKnownCACertificates: %q is not supported (only System)", wellKnown)
		return
	case len(v.CACertificateRefs) == 0 && wellKnown == "":
		invalid("spec.validation needs caCertificateRefs or wellKnownCACertificates")
		return
	case v.Hostname == "":
		invalid("spec.validation.hostname is required")
		return
	}

	bt := &upstream.BackendTLS{ServerName: strings.ToLower(string(v.Hostname)), SystemRoots: wellKnown == gatewayv1.WellKnownCACertificatesSystem}
	for _, san := range v.SubjectAltNames {
		switch san.Type {
		case gatewayv1.HostnameSubjectAltNameType:
			bt.SubjectAltNames = append(bt.SubjectAltNames, upstream.SubjectAltName{Hostname: string(san.Hostname)})
		case gatewayv1.URISubjectAltNameType:
			bt.SubjectAltNames = append(bt.SubjectAltNames, upstream.SubjectAltName{URI: string(san.URI)})
		default:
			invalid("spec.validation.subjectAltNames: type %q is not supported", san.Type)
			return
		}
	}

	valid := 0
	fail := func(reason gatewayv1.PolicyConditionReason, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		t.b.problems.add(bp.ref, Error, string(reason), "%s", msg)
		if bp.resolvedReason == "" {
			bp.resolvedReason, bp.resolvedMsg = string(reason), msg
		} else {
			bp.resolvedMsg += "; " + msg
		}
	}
	for i, ref := range v.CACertificateRefs {
		where := fmt.Sprintf("spec.validation.caCertificateRefs[%d]", i)
		var bundle []byte
		var err error
		switch {
		case ref.Group == "" && ref.Kind == kindConfigMap:
			bundle, err = caBundle(t.configMaps, key(bp.p.Namespace, string(ref.Name)))
		case isClusterTrustBundle(string(ref.Group), string(ref.Kind)):
			bundle, err = t.clusterTrustBundle(string(ref.Name))
		default:
			fail(gatewayv1.BackendTLSPolicyReasonInvalidKind, "%s: %s is not supported (only ConfigMaps and ClusterTrustBundles)", where, groupKind(string(ref.Group), string(ref.Kind)))
			continue
		}
		if err != nil {
			fail(gatewayv1.BackendTLSPolicyReasonInvalidCACertificateRef, "%s: %v", where, err)
			continue
		}
		bt.CACertificates = append(bt.CACertificates, bundle...)
		valid++
	}
	if len(v.CACertificateRefs) > 0 && valid == 0 {
		bp.acceptedReason = string(gatewayv1.BackendTLSPolicyReasonNoValidCACertificate)
		bp.acceptedMsg = "no CA certificate reference resolves; connections to the targeted backends fail"
	}
	bp.tls = bt
}

// caBundle reads the PEM CA bundle of a ConfigMap: key ca.crt, holding at
// least one certificate that parses.
func caBundle(configMaps map[types.NamespacedName]*corev1.ConfigMap, name types.NamespacedName) ([]byte, error) {
	cm := configMaps[name]
	if cm == nil {
		return nil, fmt.Errorf("ConfigMap %s not found", name)
	}
	data, ok := cm.Data[caBundleKey]
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s has no key %s", name, caBundleKey)
	}
	if err := checkPEMCertificates(data); err != nil {
		return nil, fmt.Errorf("ConfigMap %s: %s %v", name, caBundleKey, err)
	}
	return []byte(data), nil
}

// checkPEMCertificates checks that a CA bundle holds at least one PEM
// certificate and that every certificate in it parses.
func checkPEMCertificates(data string) error {
	rest := []byte(data)
	found := false
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("holds a certificate that does not parse: %v", err)
		}
		found = true
	}
	if !found {
		return fmt.Errorf("holds no PEM certificate")
	}
	return nil
}

// withBackendTLS returns the backend a route uses for a Service port: the
// resolved one, or its TLS copy when a BackendTLSPolicy targets the port
// (by name) or the whole Service. It also notes, in tr, every policy that
// names the port or the whole Service, winner or not, for their status.
func (t *gatewayTranslator) withBackendTLS(tr *routeTranslation, svc types.NamespacedName, port int32, b *upstream.Backend) *upstream.Backend {
	named := t.policies.byService[svc]
	if len(named) == 0 {
		return b
	}
	portName := ""
	if s := t.b.backends.services[svc]; s != nil {
		for _, p := range s.Spec.Ports {
			if p.Port == port {
				portName = p.Name
			}
		}
	}
	for _, bp := range named {
		applies := slices.ContainsFunc(bp.named, func(pt policyTarget) bool {
			return pt.service == svc && (pt.section == "" || pt.section == portName)
		})
		if applies && tr != nil && !slices.Contains(tr.policies, bp) {
			tr.policies = append(tr.policies, bp)
		}
	}
	bp := t.policies.winner[policyTarget{service: svc, section: portName}]
	if bp == nil || portName == "" {
		bp = t.policies.winner[policyTarget{service: svc}]
	}
	if bp == nil {
		return b
	}
	k := tlsBackendKey{backend: b, clientCert: t.clientCert}
	if c, ok := bp.backends[k]; ok {
		return c
	}
	c := &upstream.Backend{Name: b.Name, Protocol: b.Protocol, Endpoints: b.Endpoints, TLS: t.withClientCert(bp)}
	bp.backends[k] = c
	return c
}

// tlsBackendKey names one TLS copy of a resolved Service port.
type tlsBackendKey struct {
	backend    *upstream.Backend
	clientCert *porticotls.KeyPair
}

// addAncestor records that a Gateway's routes use the policy's targets.
func (bp *backendTLSPolicy) addAncestor(gw types.NamespacedName) {
	if !slices.Contains(bp.ancestors, gw) {
		bp.ancestors = append(bp.ancestors, gw)
	}
}

// backendTLSStatus is the status of every policy that one of our Gateways
// uses, one ancestor entry per such Gateway.
func (t *gatewayTranslator) backendTLSStatus() map[types.NamespacedName]gatewayv1.PolicyStatus {
	out := make(map[types.NamespacedName]gatewayv1.PolicyStatus)
	for _, bp := range t.policies.all {
		if len(bp.ancestors) == 0 {
			continue
		}
		gen := bp.p.Generation
		acc := condition(string(gatewayv1.PolicyConditionAccepted), true, string(gatewayv1.PolicyReasonAccepted), "the policy applies", gen)
		if bp.acceptedReason != "" {
			acc = condition(string(gatewayv1.PolicyConditionAccepted), false, bp.acceptedReason, bp.acceptedMsg, gen)
		}
		res := condition(string(gatewayv1.BackendTLSPolicyConditionResolvedRefs), true, string(gatewayv1.BackendTLSPolicyReasonResolvedRefs), "all references are resolved", gen)
		if bp.resolvedReason != "" {
			res = condition(string(gatewayv1.BackendTLSPolicyConditionResolvedRefs), false, bp.resolvedReason, bp.resolvedMsg, gen)
		}
		slices.SortFunc(bp.ancestors, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
		var st gatewayv1.PolicyStatus
		for _, gw := range bp.ancestors {
			st.Ancestors = append(st.Ancestors, gatewayv1.PolicyAncestorStatus{
				AncestorRef: gatewayv1.ParentReference{
					Group:     ptrTo(gatewayv1.Group(gatewayGroup)),
					Kind:      ptrTo(gatewayv1.Kind(kindGateway)),
					Namespace: ptrTo(gatewayv1.Namespace(gw.Namespace)),
					Name:      gatewayv1.ObjectName(gw.Name),
				},
				ControllerName: t.controller,
				Conditions:     []metav1.Condition{acc, res},
			})
		}
		out[key(bp.p.Namespace, bp.p.Name)] = st
	}
	return out
}
