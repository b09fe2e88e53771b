package snapshot

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"portico.dev/portico/routing"
	porticotls "portico.dev/portico/tls"
)

// This file holds ingress-nginx's client certificate authentication
// (auth-tls-*): the annotations are read with the others, the CA Secret by
// the builder. As nginx's ssl_verify_client is a server's, the check is a
// host's: the handshakes for the Ingress's hosts ask for a certificate
// (porticotls.VerifyPerRequest) and every route of those hosts, other
// Ingresses' included, checks it (routing.ClientCertAuth). An Ingress
// whose CA cannot be read is refused with 403 on its hosts, never served
// without the check.

// nginxAuthTLS is what the auth-tls-* annotations ask for.
type nginxAuthTLS struct {
	secret    types.NamespacedName
	hasSecret bool
	verify    routing.ClientVerify
	depth     int
	errorPage string
	passCert  bool
	matchCN   *regexp.Regexp
	// unavailable: the annotations cannot be honoured (reported with the
	// annotation that caused it); the hosts' routes answer 403.
	unavailable bool
}

// nginxCAKey is the key of the CA Secret holding the PEM CA certificates,
// as in ingress-nginx; nginxCRLKey holds a revocation list.
const (
	nginxCAKey  = "ca.crt"
	nginxCRLKey = "ca.crl"
)

func (nc *nginxConfig) authTLSRules() *nginxAuthTLS {
	if nc.authTLS == nil {
		nc.authTLS = &nginxAuthTLS{depth: 1}
	}
	return nc.authTLS
}

// applyAuthTLS reads the auth-tls-* annotations.
func (nc *nginxConfig) applyAuthTLS(f NginxFinding, name, raw, v string, _ func(string) (string, bool)) (NginxFinding, bool) {
	switch name {
	case "auth-tls-secret":
		at := nc.authTLSRules()
		sk, msg := nginxSecretRef(nc.namespace, v)
		at.hasSecret = true
		if msg != "" {
			at.unavailable = true
			return f.invalidf("%s; %s", msg, authTLSDenied), true
		}
		at.secret = sk
	case "auth-tls-verify-client":
		at := nc.authTLSRules()
		switch v {
		case "on":
			at.verify = routing.VerifyOn
		case "optional":
			at.verify = routing.VerifyOptional
		case "optional_no_ca":
			at.verify = routing.VerifyOptionalNoCA
		case "off":
			at.verify = routing.VerifyOff
		default:
			at.verify = routing.VerifyOn
			return f.invalidf("%q is not on, off, optional or optional_no_ca; on applies, as in ingress-nginx", raw), true
		}
	case "auth-tls-verify-depth":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			return f.invalidf("%q is not a depth from 0 to 100; 1 applies", raw), true
		}
		nc.authTLSRules().depth = n
	case "auth-tls-error-page":
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !validFieldValue(v) {
			return f.invalidf("%q is not an absolute http or https URL; a failed verification is answered 400", raw), true
		}
		nc.authTLSRules().errorPage = v
	case "auth-tls-pass-certificate-to-upstream":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f.invalidf("%q is not a boolean (true or false); the certificate is not passed", raw), true
		}
		nc.authTLSRules().passCert = b
	case "auth-tls-match-cn":
		re, err := regexp.Compile(v)
		if err != nil || v == "" {
			nc.authTLSRules().unavailable = true
			return f.invalidf("%q is not a regular expression; %s", raw, authTLSDenied), true
		}
		nc.authTLSRules().matchCN = re
	default:
		return f, false
	}
	return f, true
}

const authTLSDenied = "every request to the Ingress's hosts is answered 403"

// finishAuthTLS drops options given without auth-tls-secret, which mean
// nothing alone (ingress-nginx ignores them too).
func (nc *nginxConfig) finishAuthTLS(findings []NginxFinding) {
	at := nc.authTLS
	if at == nil || at.hasSecret {
		return
	}
	nc.authTLS = nil
	for i, f := range findings {
		if strings.HasPrefix(f.Annotation, NginxPrefix+"auth-tls-") && f.Invalid == "" {
			findings[i].Verdict, findings[i].Note = NginxUnsupported, "ignored without auth-tls-secret (as in ingress-nginx): no client certificate is asked for"
		}
	}
}

// NginxAuthTLSSecret returns the Secret an Ingress's auth-tls-secret names,
// for sources that fetch only the Secrets they are asked for.
func NginxAuthTLSSecret(ing *networkingv1.Ingress) (types.NamespacedName, bool) {
	return nginxAnnotationRef(ing, "auth-tls-secret", nginxSecretRef)
}

// clientCert builds the check an Ingress's auth-tls annotations ask for,
// reporting on the Ingress what is wrong with its Secret, and the
// handshake's request for a certificate (nil when none is asked for).
func (b *builder) clientCert(ref ObjectRef, spec *nginxAuthTLS) (*routing.ClientCertAuth, *porticotls.ClientValidation) {
	cc := &routing.ClientCertAuth{Verify: spec.verify, Depth: spec.depth, ErrorPage: spec.errorPage,
		PassCertificate: spec.passCert, MatchCN: spec.matchCN}
	if spec.unavailable {
		cc.Unavailable = true
		return cc, nil
	}
	annotation := NginxPrefix + "auth-tls-secret"
	fail := func(format string, args ...any) (*routing.ClientCertAuth, *porticotls.ClientValidation) {
		b.problems.add(ref, Error, "InvalidNginxAnnotation", "annotation %s: %s; %s", annotation, fmt.Sprintf(format, args...), authTLSDenied)
		cc.Unavailable = true
		return cc, nil
	}
	secret := b.caSecret(spec.secret)
	if secret == nil {
		return fail("Secret %s not found", spec.secret)
	}
	raw, ok := secret.Data[nginxCAKey]
	if !ok {
		return fail("Secret %s has no key %q with the CA certificates", spec.secret, nginxCAKey)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return fail("Secret %s: %s holds no PEM certificate", spec.secret, nginxCAKey)
	}
	if crl, ok := secret.Data[nginxCRLKey]; ok {
		// A list that cannot be read must not let revoked certificates
		// in: the hosts are refused instead.
		revoked, err := routing.ParseRevocations(raw, crl)
		if err != nil {
			return fail("Secret %s: %s: %v", spec.secret, nginxCRLKey, err)
		}
		cc.Revoked = revoked
	}
	cc.CAs = pool
	if spec.verify == routing.VerifyOff {
		return cc, nil
	}
	return cc, &porticotls.ClientValidation{CAs: pool, Mode: porticotls.VerifyPerRequest}
}

// caSecret returns the Secret named for CA certificates: ingress-nginx's
// examples create it with kubectl create secret generic, or add ca.crt
// to the kubernetes.io/tls Secret of the host.
func (b *builder) caSecret(k types.NamespacedName) *corev1.Secret {
	if s := b.authSecrets[k]; s != nil {
		return s
	}
	return b.secrets[k]
}

// clientHost is one host whose handshakes ask for a client certificate,
// with the check its routes make.
type clientHost struct {
	check      *routing.ClientCertAuth
	validation *porticotls.ClientValidation
}

// addClientHosts records, for each host of routes, the check the first
// Ingress (the oldest) with auth-tls on it asks for, as nginx keeps one
// server's ssl_verify_client.
func (b *builder) addClientHosts(ref ObjectRef, routes []*routing.Route, cc *routing.ClientCertAuth, v *porticotls.ClientValidation) {
	if b.clientHosts == nil {
		b.clientHosts = make(map[string]clientHost)
	}
	warned := make(map[string]bool)
	for _, r := range routes {
		if r.Host == "" {
			continue
		}
		if prev, taken := b.clientHosts[r.Host]; taken {
			if prev.check != cc && !warned[r.Host] {
				warned[r.Host] = true
				b.problems.add(ref, Warning, "NginxAuthTLSConflict", "annotation %sauth-tls-secret: host %s already has client certificate authentication from an older Ingress, which applies", NginxPrefix, r.Host)
			}
			continue
		}
		b.clientHosts[r.Host] = clientHost{check: cc, validation: v}
	}
}

// applyClientHosts gives every route of a host with client certificate
// authentication its check, whichever Ingress the route comes from.
func (b *builder) applyClientHosts(routes []*routing.Route) {
	for _, r := range routes {
		if ch, ok := b.clientHosts[r.Host]; ok && r.Host != "" {
			r.ClientCert = ch.check
		}
	}
}

// requestClientCerts makes the handshakes of the hosts with client
// certificate authentication ask for the certificate.
func (b *builder) requestClientCerts(certs *porticotls.Certificates) {
	if len(b.clientHosts) == 0 {
		return
	}
	hosts := make([]string, 0, len(b.clientHosts))
	validations := make([]*porticotls.ClientValidation, 0, len(b.clientHosts))
	for h, ch := range b.clientHosts {
		hosts = append(hosts, h)
		validations = append(validations, ch.validation)
	}
	certs.SetClientValidation(hosts, validations)
}
