package snapshot

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"portico.dev/portico/upstream"
)

// This file reads ingress-nginx's backend TLS annotations (proxy-ssl-*)
// onto upstream.BackendTLS, the one model of TLS to backends that
// BackendTLSPolicies also fill. As in ingress-nginx they apply only with
// backend-protocol HTTPS or GRPCS and only when proxy-ssl-secret names a
// usable Secret; without it the others mean nothing, and the backends are
// spoken to over TLS with nginx's defaults: no certificate checked, no
// SNI. A Secret that cannot be used makes the Ingress's backends fail
// (502) rather than be reached unverified: ingress-nginx denies the
// locations (503).

// nginxProxySSL is what the proxy-ssl-* annotations of one Ingress ask for.
type nginxProxySSL struct {
	// secret is proxy-ssl-secret's Secret; broken is set when the
	// annotation was given but refused, which fails the backends.
	secret types.NamespacedName
	broken string
	// verify is proxy-ssl-verify (default off, as nginx); depth its
	// verify-depth (default 1).
	verify bool
	depth  int
	// name is proxy-ssl-name; "" verifies <service>.<namespace>.svc.
	name string
	// sni is proxy-ssl-server-name on: the name is sent as SNI.
	sni                    bool
	ciphers                []uint16
	minVersion, maxVersion uint16
}

func (nc *nginxConfig) proxySSLRules() *nginxProxySSL {
	if nc.proxySSL == nil {
		nc.proxySSL = &nginxProxySSL{depth: nginxProxySSLDepth}
	}
	return nc.proxySSL
}

// nginxProxySSLDepth is ingress-nginx's proxy-ssl-verify-depth default.
const nginxProxySSLDepth = 1

var nginxCiphersValue = regexp.MustCompile(`^[A-Za-z0-9+:_\-!]*$`)

// nginxCipherNames maps the OpenSSL names of the TLS 1.2 cipher suites Go
// offers (forward-secret ones only) to Go's.
var nginxCipherNames = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
}

// nginxCipherKeywords are OpenSSL cipher strings that name a family: Go's
// own secure defaults stand for them.
var nginxCipherKeywords = map[string]bool{"DEFAULT": true, "HIGH": true, "ALL": true, "ECDHE": true, "EECDH": true, "AESGCM": true, "CHACHA20": true}

// applyProxySSL reads the backend TLS annotations.
func (nc *nginxConfig) applyProxySSL(f NginxFinding, name, raw, v string, get func(string) (string, bool)) (NginxFinding, bool) {
	switch name {
	case "proxy-ssl-secret":
		p := nc.proxySSLRules()
		sk, msg := nginxSecretRef(nc.namespace, v)
		if msg != "" || !strings.Contains(v, "/") {
			if msg == "" {
				msg = fmt.Sprintf("%q is not namespace/name", raw)
			}
			p.broken = msg
			return f.invalidf("%s; the Ingress's TLS backends answer 502", msg), true
		}
		p.secret = sk
	case "proxy-ssl-verify":
		switch v {
		case "on":
			nc.proxySSLRules().verify = true
		case "off":
			nc.proxySSLRules().verify = false
		default:
			nc.proxySSLRules().verify = true
			return f.invalidf("%q is not on or off; the backend's certificate is verified (ingress-nginx would not)", raw), true
		}
	case "proxy-ssl-verify-depth":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			return f.invalidf("%q is not a depth from 0 to 100; %d applies", raw, nginxProxySSLDepth), true
		}
		if n == 0 {
			n = nginxProxySSLDepth // as ingress-nginx reads 0
		}
		nc.proxySSLRules().depth = n
	case "proxy-ssl-name":
		h := strings.ToLower(v)
		if h == "" || validateHost(h) != "" || strings.HasPrefix(h, "*") {
			return f.invalidf("%q is not a host name; <service>.<namespace>.svc is verified", raw), true
		}
		nc.proxySSLRules().name = h
	case "proxy-ssl-server-name":
		switch v {
		case "on", "off":
			nc.proxySSLRules().sni = v == "on"
		default:
			return f.invalidf("%q is not on or off; no SNI is sent", raw), true
		}
	case "proxy-ssl-ciphers":
		ciphers, skipped, ok := nginxCiphers(v)
		if !ok {
			return f.invalidf("%q is not an OpenSSL cipher list naming a cipher Go offers; Go's defaults apply", raw), true
		}
		nc.proxySSLRules().ciphers = ciphers
		if len(skipped) > 0 {
			nc.addMore(name, NginxFinding{Annotation: f.Annotation, Verdict: NginxApproximate,
				Note: fmt.Sprintf("not applied: %s (Go offers no such cipher, or the entry is an exclusion or ordering of what Go offers)", strings.Join(skipped, ", "))})
		}
	case "proxy-ssl-protocols":
		lo, hi, ok := nginxProtocols(v)
		if !ok {
			return f.invalidf("%q names neither TLSv1.2 nor TLSv1.3; TLS 1.2 and 1.3 are offered", raw), true
		}
		p := nc.proxySSLRules()
		p.minVersion, p.maxVersion = lo, hi
	default:
		return f, false
	}
	return f, true
}

// nginxCiphers reads an OpenSSL cipher list into the Go suites it names;
// nil suites with ok mean Go's defaults (a family keyword such as
// DEFAULT or HIGH). skipped lists what is not applied.
func nginxCiphers(v string) (suites []uint16, skipped []string, ok bool) {
	if v == "" || !nginxCiphersValue.MatchString(v) {
		return nil, nil, false
	}
	keyword := false
	for _, c := range strings.Split(v, ":") {
		switch {
		case c == "":
		case nginxCipherKeywords[c]:
			keyword = true
		case strings.HasPrefix(c, "!") && nginxCipherNames[c[1:]] == 0 && !nginxCipherKeywords[c[1:]]:
			// Excludes what Go never offers (aNULL, MD5, RC4, ...).
		case nginxCipherNames[c] != 0:
			suites = append(suites, nginxCipherNames[c])
		default:
			skipped = append(skipped, c)
		}
	}
	if keyword {
		return nil, skipped, true
	}
	return suites, skipped, len(suites) > 0
}

// nginxProtocols reads proxy-ssl-protocols into the versions offered.
func nginxProtocols(v string) (lo, hi uint16, ok bool) {
	for _, p := range strings.Fields(v) {
		var ver uint16
		switch p {
		case "TLSv1.2":
			ver = tls.VersionTLS12
		case "TLSv1.3":
			ver = tls.VersionTLS13
		case "TLSv1", "TLSv1.1", "SSLv2", "SSLv3":
			continue // not spoken to backends
		default:
			return 0, 0, false
		}
		if lo == 0 || ver < lo {
			lo = ver
		}
		hi = max(hi, ver)
	}
	return lo, hi, lo != 0
}

// finishProxySSL drops the proxy-ssl-* options where ingress-nginx ignores
// them (without proxy-ssl-secret, or with a backend-protocol other than
// HTTPS and GRPCS), saying so on each. A TLS backend-protocol without
// proxy-ssl-secret keeps TLS with nginx's defaults.
func (nc *nginxConfig) finishProxySSL(findings []NginxFinding) {
	p := nc.proxySSL
	if p == nil {
		if nc.tlsBackend {
			nc.proxySSL = &nginxProxySSL{depth: nginxProxySSLDepth}
		}
		return
	}
	why := ""
	switch {
	case !nc.tlsBackend:
		why = "ignored: backend-protocol is not HTTPS or GRPCS, so the backends are not spoken to over TLS"
	case p.secret.Name == "" && p.broken == "":
		why = "ignored without proxy-ssl-secret (as in ingress-nginx)"
	default:
		return
	}
	nc.proxySSL = nil
	if nc.tlsBackend {
		// TLS with nginx's defaults: proxy_ssl_verify and
		// proxy_ssl_server_name off.
		nc.proxySSL = &nginxProxySSL{depth: nginxProxySSLDepth}
	}
	for i, f := range findings {
		if strings.HasPrefix(f.Annotation, NginxPrefix+"proxy-ssl-") && f.Invalid == "" {
			findings[i].Verdict, findings[i].Note = NginxUnsupported, why
		}
	}
}

// NginxProxySSLSecret returns the Secret an Ingress's proxy-ssl-secret
// names, for sources that fetch only the Secrets they are asked for.
func NginxProxySSLSecret(ing *networkingv1.Ingress) (types.NamespacedName, bool) {
	v, ok := ing.Annotations[NginxPrefix+"proxy-ssl-secret"]
	if !ok || !strings.Contains(v, "/") {
		return types.NamespacedName{}, false
	}
	sk, msg := nginxSecretRef(ing.Namespace, strings.TrimSpace(v))
	return sk, msg == ""
}

// proxySSLSecret is what an Ingress's proxy-ssl-secret gives: the CA
// bundle and the client certificate; failed when the Secret cannot be
// used, which fails every connection (no CA to verify with).
type proxySSLSecret struct {
	failed bool
	ca     []byte
	client *tls.Certificate
}

// proxySSLSecret reads the Secret of p, reporting on the Ingress what is
// wrong with it.
func (b *builder) proxySSLSecret(ref ObjectRef, p *nginxProxySSL) proxySSLSecret {
	annotation := NginxPrefix + "proxy-ssl-secret"
	fail := func(format string, args ...any) proxySSLSecret {
		b.problems.add(ref, Error, "InvalidNginxAnnotation", "annotation %s: %s; the Ingress's TLS backends answer 502", annotation, fmt.Sprintf(format, args...))
		return proxySSLSecret{failed: true}
	}
	if p.broken != "" {
		return proxySSLSecret{failed: true} // reported with the finding
	}
	if p.secret.Name == "" {
		return proxySSLSecret{} // nothing to verify with or present
	}
	secret := b.secrets[p.secret]
	if secret == nil {
		secret = b.authSecrets[p.secret]
	}
	if secret == nil {
		return fail("Secret %s not found", p.secret)
	}
	var out proxySSLSecret
	ca, hasCA := secret.Data[caBundleKey]
	crt, hasCrt := secret.Data[corev1.TLSCertKey]
	key, hasKey := secret.Data[corev1.TLSPrivateKeyKey]
	if !hasCA && (!hasCrt || !hasKey) {
		return fail("Secret %s has neither %s nor %s and %s", p.secret, caBundleKey, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	if hasCA {
		if err := checkPEMCertificates(string(ca)); err != nil {
			return fail("Secret %s: %s %v", p.secret, caBundleKey, err)
		}
		out.ca = ca
	} else if p.verify {
		return fail("Secret %s has no %s to verify the backends with (proxy-ssl-verify is on)", p.secret, caBundleKey)
	}
	if hasCrt && hasKey {
		pair, err := tls.X509KeyPair(crt, key)
		if err != nil {
			return fail("Secret %s: the client certificate (%s, %s) does not load: %v", p.secret, corev1.TLSCertKey, corev1.TLSPrivateKeyKey, err)
		}
		if pair.Leaf == nil {
			if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
				return fail("Secret %s: %s: %v", p.secret, corev1.TLSCertKey, err)
			}
		}
		out.client = &pair
	}
	return out
}

// proxySSLBackend returns the TLS copy of be an Ingress's proxy-ssl-*
// annotations ask for, verified for proxy-ssl-name or else the Service's
// cluster name (nginx verifies the name of its upstream block,
// upstream_balancer, which no certificate carries). One copy per backend
// per Ingress, cached in cache.
func (b *builder) proxySSLBackend(be *upstream.Backend, p *nginxProxySSL, s proxySSLSecret, cache map[*upstream.Backend]*upstream.Backend) *upstream.Backend {
	if c := cache[be]; c != nil {
		return c
	}
	name := p.name
	if name == "" {
		if rb := b.backends.of(be); rb.port != 0 {
			name = rb.service.Name + "." + rb.service.Namespace + ".svc"
		}
	}
	bt := &upstream.BackendTLS{
		CACertificates:    s.ca,
		ClientCertificate: s.client,
		SkipVerify:        !p.verify && !s.failed,
		CipherSuites:      p.ciphers,
		MinVersion:        p.minVersion,
		MaxVersion:        p.maxVersion,
	}
	if !bt.SkipVerify {
		// Verified for the name whether or not it is sent as SNI.
		bt.SubjectAltNames = []upstream.SubjectAltName{{Hostname: name}}
		bt.VerifyDepth = p.depth
	}
	if p.sni {
		bt.ServerName = name
	}
	c := &upstream.Backend{Name: be.Name, Protocol: be.Protocol, Endpoints: be.Endpoints, TLS: bt}
	cache[be] = c
	return c
}
