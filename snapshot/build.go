package snapshot

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"portico.dev/portico/fallback"
	"portico.dev/portico/routing"
	porticotls "portico.dev/portico/tls"
	"portico.dev/portico/upstream"
)

// Config is what the builder needs to know about this Portico instance.
type Config struct {
	// ControllerName selects our IngressClasses (spec.controller).
	ControllerName string
	// IngressClass is the class name answered to in the legacy
	// kubernetes.io/ingress.class annotation.
	IngressClass string
	// RateLimitMaxClients bounds the clients each Ingress's rate limit
	// counts; zero takes routing.DefaultMaxRateLimitClients.
	RateLimitMaxClients int
	// AdoptClasses are Ingress class names served whatever controller
	// their IngressClass names, or without an IngressClass object.
	AdoptClasses []string
	// Fallback is the Service that receives unmatched requests; the zero
	// value means unmatched requests get 404.
	Fallback types.NamespacedName
	// DefaultCertificate serves handshakes no other certificate matches.
	DefaultCertificate *porticotls.KeyPair
	// Gateway configures Gateway API support.
	Gateway GatewayConfig
	// ACME configures which hosts may get certificates from an ACME CA.
	ACME ACMEConfig
	// SessionCookieKey keys the session cookies of ingress-nginx's
	// affinity-mode persistent, which name their endpoint by a keyed hash
	// (upstream.SessionCookie); replicas need the same key to honour each
	// other's cookies.
	SessionCookieKey []byte
	// NginxConfigMap names ingress-nginx's controller ConfigMap, whose
	// global keys are the defaults of every Ingress written for
	// ingress-nginx (nginx_global.go); the zero value reads none.
	NginxConfigMap types.NamespacedName
	// TrustsProxies (--trusted-proxies is set) and
	// AllowUnderscoresInHeaders are the process flags ConfigMap keys map
	// onto, read for those keys' verdicts.
	TrustsProxies             bool
	AllowUnderscoresInHeaders bool
	// Now is the time certificates are checked against; zero means
	// time.Now. Tests set it so golden output does not change with time.
	Now time.Time
}

// Build translates objects into a snapshot. prev, the snapshot serving now
// (nil at start-up), supplies the last good version of objects that no
// longer translate cleanly and the certificates already parsed.
func Build(objs Objects, cfg Config, prev *Snapshot) *Snapshot {
	if prev == nil {
		prev = &Snapshot{}
	}
	now := cfg.Now
	if now.IsZero() {
		now = time.Now()
	}
	b := &builder{
		cfg:      cfg,
		now:      now,
		prev:     prev.lastGood,
		backends: newBackendResolver(&objs),
		secrets:  make(map[types.NamespacedName]*corev1.Secret, len(objs.Secrets)),
		next: lastGood{
			ingresses:  make(map[types.NamespacedName]*networkingv1.Ingress),
			keyPairs:   make(map[types.NamespacedName]parsedKeyPair),
			rateLimits: make(map[types.NamespacedName]*routing.RateLimit),
		},
		certHosts: make(map[string]certBinding),
	}
	for _, s := range objs.Secrets {
		// The two kinds are kept apart, so that an Opaque Secret never
		// stands in for a missing TLS one of the same name.
		switch {
		case s.Type == corev1.SecretTypeTLS:
			b.secrets[key(s.Namespace, s.Name)] = s
		case isAuthSecret(s):
			if b.authSecrets == nil {
				b.authSecrets = make(map[types.NamespacedName]*corev1.Secret)
			}
			b.authSecrets[key(s.Namespace, s.Name)] = s
		}
	}

	snap := &Snapshot{}
	selector := newClassSelector(objs.IngressClasses, cfg)
	b.adopted = selector.adopted
	b.configMaps = objs.ConfigMaps
	b.nginxDefaults = b.nginxGlobals()
	var owned []*networkingv1.Ingress
	for _, ing := range objs.Ingresses {
		if selector.owns(ing) {
			owned = append(owned, ing)
		}
	}
	// Oldest first: the documented rule for conflicts between Ingresses.
	slices.SortFunc(owned, olderFirst)

	// BackendTLSPolicies apply to every route to the Services they target,
	// Ingress routes and the fallback included: they are translated first.
	b.gateway = b.newGatewayTranslator(&objs)

	var routes []*routing.Route
	regexHosts := make(map[string]ObjectRef)
	var canaries []canaryRoutes
	var passthroughs []ingressPassthrough
	var hostsOf []ingressHosts
	for _, ing := range owned {
		snap.Ingresses = append(snap.Ingresses, key(ing.Namespace, ing.Name))
		tr := b.ingress(ing)
		// A canary's routes only join its main Ingress's: its hosts are
		// the main Ingress's to pass through or not.
		if tr.canary == nil && (len(tr.passthrough) > 0 || len(tr.passthroughNotes) > 0) {
			passthroughs = append(passthroughs, ingressPassthrough{owner: ingressRef(ing), hosts: tr.passthrough, notes: tr.passthroughNotes})
		}
		ih := ingressHosts{owner: ingressRef(ing)}
		for _, r := range tr.routes {
			ih.hosts = append(ih.hosts, r.Host)
		}
		hostsOf = append(hostsOf, ih)
		b.carryRateLimit(key(ing.Namespace, ing.Name), tr.routes)
		for _, req := range tr.tls {
			b.bindCertificate(ing, req)
		}
		if tr.canary != nil {
			canaries = append(canaries, canaryRoutes{ref: ingressRef(ing), spec: tr.canary, routes: tr.routes})
			continue
		}
		routes = append(routes, tr.routes...)
		if tr.regex {
			for _, r := range tr.routes {
				if _, seen := regexHosts[r.Host]; !seen {
					regexHosts[r.Host] = ingressRef(ing)
				}
			}
		}
	}
	routes = b.nginxHosts(routes, regexHosts)
	routes = b.applyCanaries(routes, canaries)
	b.applyClientHosts(routes)
	slices.SortFunc(snap.Ingresses, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	snap.ACMEHosts = b.acmeHosts(owned)

	table, shadowed := routing.Compile(routes, b.fallbackRoute())
	b.reportShadowed(table, shadowed)

	snap.Routes = table
	snap.SSLPassthrough = b.sslPassthrough(passthroughs, hostsOf)
	snap.Certificates = porticotls.NewCertificates(b.bindings, cfg.DefaultCertificate)
	b.requestClientCerts(snap.Certificates)
	snap.Bindings = b.bindings
	snap.CertificateExpiry = make(map[string]time.Time, len(b.bindings)+1)
	for _, binding := range b.bindings {
		snap.CertificateExpiry[binding.Source] = binding.Pair.NotAfter
	}
	if cfg.DefaultCertificate != nil {
		snap.CertificateExpiry["default"] = cfg.DefaultCertificate.NotAfter
	}
	snap.Listeners, snap.GatewayAPI = b.gatewayAPI(b.gateway, &objs)
	snap.ACMEHosts = withGatewayACMEHosts(snap.ACMEHosts, b.gatewayACMEHosts)
	snap.Problems = b.problems.sorted()
	snap.lastGood = b.next
	return snap
}

type builder struct {
	cfg      Config
	now      time.Time
	prev     lastGood
	next     lastGood
	backends *backendResolver
	secrets  map[types.NamespacedName]*corev1.Secret
	// authSecrets are the Opaque Secrets, which hold basic authentication
	// users (nginx_basicauth.go).
	authSecrets map[types.NamespacedName]*corev1.Secret
	problems    problems
	// clientHosts are the hosts with client certificate authentication
	// (nginx_authtls.go).
	clientHosts map[string]clientHost

	bindings  []porticotls.Binding
	certHosts map[string]certBinding // host -> who bound it first
	// gatewayACMEHosts are the hostnames of served Gateway listeners that
	// get ACME certificates.
	gatewayACMEHosts []string
	// gateway translates the Gateway API objects; nil when Gateway API
	// support is off.
	gateway *gatewayTranslator
	// grpcBackends holds the HTTP/2 copies of backends that gRPC is sent
	// to (GRPCRoutes, ingress-nginx's backend-protocol GRPC and GRPCS), by
	// the backend they copy (grpcBackend).
	grpcBackends map[*upstream.Backend]*upstream.Backend
	// clusterIP holds the cluster-IP copies of backends (ingress-nginx's
	// service-upstream), by the backend they copy.
	clusterIP map[*upstream.Backend]*upstream.Backend
	// adopted are the class names of Config.AdoptClasses.
	adopted map[string]bool
	// nginxDefaults are the defaults ingress-nginx's ConfigMap gives the
	// Ingresses written for it; nil when none is read.
	nginxDefaults *nginxDefaults
	// configMaps are the ConfigMaps sources handed over, which
	// --nginx-configmap and custom-headers name (configMap).
	configMaps []*corev1.ConfigMap
}

// configMap returns the ConfigMap called name, nil when there is none.
func (b *builder) configMap(name types.NamespacedName) *corev1.ConfigMap {
	for _, c := range b.configMaps {
		if c.Namespace == name.Namespace && c.Name == name.Name {
			return c
		}
	}
	return nil
}

type certBinding struct {
	ingress types.NamespacedName
	secret  types.NamespacedName
}

func ingressRef(ing *networkingv1.Ingress) ObjectRef {
	return ObjectRef{Kind: "Ingress", Namespace: ing.Namespace, Name: ing.Name}
}

// ingress translates one owned Ingress. When the Ingress itself is invalid
// and an earlier version of it translated cleanly, that version keeps
// serving; otherwise the valid parts serve and the rest is reported.
func (b *builder) ingress(ing *networkingv1.Ingress) ingressTranslation {
	k := key(ing.Namespace, ing.Name)
	ref := ingressRef(ing)
	tr := translateIngress(ing, b.backends, b.adopted, b.nginxDefaults)
	if len(tr.invalid) == 0 {
		b.next.ingresses[k] = ing
	} else if last := b.prev.ingresses[k]; last != nil {
		for _, msg := range tr.invalid {
			b.problems.add(ref, Error, "InvalidIngress", "%s; the last valid version of this Ingress keeps serving", msg)
		}
		b.next.ingresses[k] = last
		tr = translateIngress(last, b.backends, b.adopted, b.nginxDefaults)
	} else {
		for _, msg := range tr.invalid {
			b.problems.add(ref, Error, "InvalidIngress", "%s; that part is not served", msg)
		}
	}
	for _, f := range tr.nginx {
		if f.reported() {
			reason, msg := f.problem()
			sev := Warning
			if f.Invalid != "" {
				sev = Error
			}
			b.problems.add(ref, sev, reason, "%s", msg)
		}
	}
	if tr.basic != nil {
		// One check for every route of the Ingress, its defaultBackend
		// included, as ingress-nginx applies it to each location.
		ba := b.basicAuth(ref, tr.basic)
		for _, r := range tr.routes {
			r.BasicAuth = ba
		}
	}
	if tr.authTLS != nil && tr.canary == nil {
		// A host's check, as nginx's is its server's: applyClientHosts
		// gives it to every route of the host.
		cc, v := b.clientCert(ref, tr.authTLS)
		b.addClientHosts(ref, tr.routes, cc, v)
	}
	b.reportBackends(ref, tr.routes)
	// Before the routes' backends become their copies, which the resolver
	// does not know.
	b.customErrors(ref, tr.errorCodes, tr.errorBackend, tr.routes)
	b.nginxMirrors(ref, tr.mirror, tr.routes)
	b.nginxCustomHeaders(ref, tr.customHeaders, tr.routes)
	warnedCookiePath := false
	var proxySSL proxySSLSecret
	var proxySSLCopies map[*upstream.Backend]*upstream.Backend
	if tr.proxySSL != nil {
		proxySSL = b.proxySSLSecret(ref, tr.proxySSL)
		proxySSLCopies = make(map[*upstream.Backend]*upstream.Backend)
	}
	warnedPolicy := false
	for _, r := range tr.routes {
		resolved := r.Backend
		r.Backend = b.withServiceTLS(r.Backend)
		if tr.proxySSL != nil {
			if r.Backend.TLS == nil {
				r.Backend = b.proxySSLBackend(r.Backend, tr.proxySSL, proxySSL, proxySSLCopies)
			} else if !warnedPolicy && tr.proxySSL.secret.Name != "" {
				// The Service's owner said how it is reached: one model,
				// one source of truth per backend.
				warnedPolicy = true
				b.problems.add(ref, Warning, "NginxProxySSLOverridden", "annotation %sproxy-ssl-secret: a BackendTLSPolicy targets backend %s; its settings apply there, not the proxy-ssl-* annotations", NginxPrefix, r.Backend.Name)
			}
		}
		if tr.grpc {
			r.Backend = b.grpcBackend(r.Backend)
		}
		if tr.serviceUpstream {
			r.Backend = b.clusterIPBackend(ref, resolved, r.Backend)
		}
		if tr.affinity != nil {
			aff, regexPath := tr.affinity.affinityFor(r, b.cfg.SessionCookieKey)
			if regexPath && !warnedCookiePath {
				warnedCookiePath = true
				b.problems.add(ref, Warning, "NginxSessionCookiePath", "annotation %saffinity: the Ingress's paths are regular expressions, for which ingress-nginx requires %ssession-cookie-path; the cookie is set with Path=/", NginxPrefix, NginxPrefix)
			}
			r.Backend = r.Backend.WithAffinity(aff)
		}
	}
	return tr
}

// clusterIPBackend returns the copy of be (the backend resolved as
// resolved) whose one endpoint is its Service's cluster IP, as
// ingress-nginx's service-upstream asks; a Service without a cluster IP
// keeps its endpoints, reported.
func (b *builder) clusterIPBackend(ref ObjectRef, resolved, be *upstream.Backend) *upstream.Backend {
	rb := b.backends.of(resolved)
	svc := b.backends.services[rb.service]
	if rb.port == 0 || svc == nil {
		return be
	}
	ip := svc.Spec.ClusterIP
	if ip == "" || ip == "None" {
		b.problems.add(ref, Warning, "NoClusterIP", "annotation %sservice-upstream: Service %s has no cluster IP; its endpoints are used", NginxPrefix, rb.service)
		return be
	}
	if c := b.clusterIP[be]; c != nil {
		return c
	}
	c := &upstream.Backend{Name: be.Name, Protocol: be.Protocol, Endpoints: []string{net.JoinHostPort(ip, strconv.Itoa(int(rb.port)))}, TLS: be.TLS}
	if b.clusterIP == nil {
		b.clusterIP = make(map[*upstream.Backend]*upstream.Backend)
	}
	b.clusterIP[be] = c
	return c
}

// carryRateLimit gives an Ingress's routes the rate limit of the previous
// snapshot, with its clients' counters, when the limit is unchanged: a
// rebuild for any other change must not hand every client a fresh budget.
// The routes of one Ingress share one Admission.
func (b *builder) carryRateLimit(k types.NamespacedName, routes []*routing.Route) {
	for _, r := range routes {
		if a := r.Admission; a != nil && a.Limit != nil {
			if n := b.cfg.RateLimitMaxClients; n > 0 && n != a.Limit.MaxClients {
				cfg := a.Limit.RateLimitConfig
				cfg.MaxClients = n
				a.Limit = routing.NewRateLimit(cfg)
			}
			a.Limit = a.Limit.Carry(b.prev.rateLimits[k])
			b.next.rateLimits[k] = a.Limit
			return
		}
	}
}

// grpcBackend is the backend gRPC calls are sent to: be spoken to over
// HTTP/2 whatever the Service port's appProtocol, since gRPC needs HTTP/2:
// with prior knowledge over plain TCP, by ALPN inside TLS
// (BackendTLSPolicy), where an HTTP route's h2c backend gets HTTP/1.1. One
// copy per backend, so that GRPCRoutes and Ingresses sending gRPC to the
// same Service port share its connections.
func (b *builder) grpcBackend(be *upstream.Backend) *upstream.Backend {
	if c, ok := b.grpcBackends[be]; ok {
		return c
	}
	c := &upstream.Backend{Name: be.Name, Protocol: upstream.H2, Endpoints: be.Endpoints, TLS: be.TLS}
	if b.grpcBackends == nil {
		b.grpcBackends = make(map[*upstream.Backend]*upstream.Backend)
	}
	b.grpcBackends[be] = c
	return c
}

// withServiceTLS returns the backend an Ingress route or the fallback
// uses for a resolved Service port: its TLS copy when a BackendTLSPolicy
// targets the port, the backend itself otherwise. The copy is the one
// Gateway routes to the same port use, so they share its connections.
func (b *builder) withServiceTLS(be *upstream.Backend) *upstream.Backend {
	rb := b.backends.of(be)
	if b.gateway == nil || rb.port == 0 {
		return be
	}
	return b.gateway.withBackendTLS(nil, rb.service, rb.port, be)
}

// reportBackends warns once per Service port an Ingress routes to that
// cannot take traffic.
func (b *builder) reportBackends(ref ObjectRef, routes []*routing.Route) {
	seen := make(map[string]bool)
	for _, r := range routes {
		if seen[r.Backend.Name] {
			continue
		}
		seen[r.Backend.Name] = true
		rb := b.backends.of(r.Backend)
		switch {
		case rb.problem != "":
			b.problems.add(ref, Warning, rb.reason, "%s; its requests are answered with 503%s", rb.problem, fallbackNote(r))
		case len(r.Backend.Endpoints) == 0:
			b.problems.add(ref, Warning, "NoReadyEndpoints", "backend %s has no ready endpoints; its requests are answered with 503%s", r.Backend.Name, fallbackNote(r))
		}
	}
}

func fallbackNote(r *routing.Route) string {
	if r.FallbackOnNoEndpoints {
		return " or sent to the fallback backend"
	}
	return ""
}

// fallbackRoute resolves the legacy-fallback Service, or returns nil when
// none is configured.
func (b *builder) fallbackRoute() *routing.Route {
	fb := b.cfg.Fallback
	if fb.Name == "" {
		return nil
	}
	ref := ObjectRef{Kind: "Service", Namespace: fb.Namespace, Name: fb.Name}
	route := &routing.Route{
		Source:   routing.Source{Kind: "Fallback", Namespace: fb.Namespace, Name: fb.Name},
		PathKind: routing.PathAny,
	}
	svc := b.backends.services[fb]
	if svc == nil {
		b.problems.add(ref, Warning, "FallbackNotFound", "the fallback Service %s does not exist; unmatched requests are answered with 503", fb)
		route.Backend = b.backends.resolve(servicePortRef{Service: fb, Name: fallback.PortName}).backend
		return route
	}
	names := make([]string, len(svc.Spec.Ports))
	for i, p := range svc.Spec.Ports {
		names[i] = p.Name
	}
	i := fallback.Port(names)
	if i < 0 {
		b.problems.add(ref, Warning, "FallbackNoPorts", "the fallback Service %s has no ports; unmatched requests are answered with 503", fb)
		route.Backend = b.backends.resolve(servicePortRef{Service: fb, Name: fallback.PortName}).backend
		return route
	}
	port := svc.Spec.Ports[i]
	rb := b.backends.resolve(servicePortRef{Service: fb, Number: port.Port})
	route.Backend = b.withServiceTLS(rb.backend)
	if len(rb.backend.Endpoints) == 0 {
		b.problems.add(ref, Warning, "NoReadyEndpoints", "the fallback Service %s has no ready endpoints on port %d (check its Endpoints object); unmatched requests are answered with 503", fb, port.Port)
	}
	return route
}

// reportShadowed warns the owner of every route that lost a conflict.
func (b *builder) reportShadowed(table *routing.Table, shadowed []*routing.Route) {
	if len(shadowed) == 0 {
		return
	}
	winners := make(map[string]routing.Source, len(table.Routes()))
	for _, r := range table.Routes() {
		winners[routeKey(r)] = r.Source
	}
	for _, r := range shadowed {
		w := winners[routeKey(r)]
		ref := ObjectRef{Kind: r.Source.Kind, Namespace: r.Source.Namespace, Name: r.Source.Name}
		what := fmt.Sprintf("path %s %q", r.PathKind, r.Path)
		if r.PathKind == routing.PathAny {
			what = "spec.defaultBackend"
		}
		host := r.Host
		if host == "" {
			host = "every host"
		}
		b.problems.add(ref, Warning, "RouteConflict", "%s for %s (rule %s) is also defined by %s %s/%s (rule %s), which is older and wins",
			what, host, r.Source.Rule, w.Kind, w.Namespace, w.Name, w.Rule)
	}
}

func routeKey(r *routing.Route) string {
	p := r.Path
	if r.PathKind == routing.PathPrefix {
		p = strings.TrimSuffix(p, "/")
	}
	return fmt.Sprintf("%s\x00%d\x00%s", r.Host, r.PathKind, p)
}

// olderFirst orders Ingresses by creation time, then namespace and name, so
// that the older of two conflicting objects wins whatever order a source
// listed them in. Objects read from a folder have no creation time and are
// ordered by namespace and name.
func olderFirst(a, b *networkingv1.Ingress) int {
	return cmp.Or(
		a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
		strings.Compare(a.Namespace, b.Namespace),
		strings.Compare(a.Name, b.Name),
	)
}

// parsedKeyPair caches a Secret's parse result by content, so a build
// parses only the Secrets that changed. err is set when the content did not
// parse; pair is then the last good key pair, if there was one.
type parsedKeyPair struct {
	digest [sha256.Size]byte
	pair   *porticotls.KeyPair
	err    error
}

// bindCertificate serves a Secret's certificate for an Ingress's TLS hosts.
func (b *builder) bindCertificate(ing *networkingv1.Ingress, req tlsRequest) {
	ref := ingressRef(ing)
	sk := key(ing.Namespace, req.secret)
	pair := b.keyPair(ref, sk)
	if pair == nil {
		return
	}
	for _, host := range req.hosts {
		if first, taken := b.certHosts[host]; taken {
			if first.secret != sk {
				b.problems.add(ref, Warning, "TLSConflict", "host %s is bound to Secret %s by the older Ingress %s, which wins over Secret %s",
					host, first.secret, first.ingress, sk)
			}
			continue
		}
		b.certHosts[host] = certBinding{ingress: key(ing.Namespace, ing.Name), secret: sk}
		if !covers(pair, host) {
			b.problems.add(ref, Warning, "CertificateHostMismatch", "the certificate in Secret %s does not cover host %s (it covers %s); clients will reject it",
				sk, host, strings.Join(pair.DNSNames, ", "))
		}
		b.bindings = append(b.bindings, porticotls.Binding{Host: host, Pair: pair, Source: sk.String()})
	}
}

// keyPair returns the key pair of a TLS Secret for an Ingress, reporting on
// that Ingress what is wrong with it. A Secret that no longer parses keeps
// its last good key pair; one that never parsed, or is missing, yields nil
// and its hosts get the default certificate.
func (b *builder) keyPair(ref ObjectRef, sk types.NamespacedName) *porticotls.KeyPair {
	secret := b.secrets[sk]
	if secret == nil {
		b.problems.add(ref, Error, "SecretNotFound", "TLS Secret %s not found (or not of type kubernetes.io/tls); its hosts are served with the default certificate until it exists", sk)
		return nil
	}
	parsed, done := b.next.keyPairs[sk]
	if !done {
		parsed = b.parseSecret(sk, secret)
		b.next.keyPairs[sk] = parsed
	}
	switch {
	case parsed.err != nil && parsed.pair != nil:
		b.problems.add(ref, Error, "InvalidSecret", "TLS Secret %s: %v; the last good certificate (serial %s) keeps serving", sk, parsed.err, parsed.pair.Serial)
	case parsed.err != nil:
		b.problems.add(ref, Error, "InvalidSecret", "TLS Secret %s: %v; its hosts are served with the default certificate", sk, parsed.err)
	default:
		b.checkExpiry(ref, sk, parsed.pair)
	}
	return parsed.pair
}

// parseSecret parses a Secret unless its content is the one parsed by the
// previous build.
func (b *builder) parseSecret(sk types.NamespacedName, secret *corev1.Secret) parsedKeyPair {
	digest := secretDigest(secret)
	last, hadLast := b.prev.keyPairs[sk]
	if hadLast && last.digest == digest {
		return last
	}
	pair, err := porticotls.ParseKeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err == nil {
		return parsedKeyPair{digest: digest, pair: pair}
	}
	// Remember the broken content with the last good pair, so the next build
	// neither re-parses it nor forgets the pair that keeps serving.
	var keep *porticotls.KeyPair
	if hadLast {
		keep = last.pair
	}
	return parsedKeyPair{digest: digest, pair: keep, err: err}
}

// expiryWarningWindow is how long before NotAfter a Secret's certificate
// gets a CertificateExpiresSoon warning.
const expiryWarningWindow = 14 * 24 * time.Hour

func (b *builder) checkExpiry(ref ObjectRef, sk types.NamespacedName, pair *porticotls.KeyPair) {
	if b.now.After(pair.NotAfter) {
		b.problems.add(ref, Warning, "CertificateExpired", "the certificate in Secret %s expired at %s; it is still served", sk, pair.NotAfter.UTC().Format(time.RFC3339))
	} else if b.now.Add(expiryWarningWindow).After(pair.NotAfter) {
		b.problems.add(ref, Warning, "CertificateExpiresSoon", "the certificate in Secret %s expires at %s, in less than 14 days; renew it", sk, pair.NotAfter.UTC().Format(time.RFC3339))
	}
}

func secretDigest(s *corev1.Secret) [sha256.Size]byte {
	h := sha256.New()
	h.Write(s.Data[corev1.TLSCertKey])
	h.Write([]byte{0})
	h.Write(s.Data[corev1.TLSPrivateKeyKey])
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// covers reports whether a certificate is valid for a TLS host, which may be
// a wildcard.
func covers(pair *porticotls.KeyPair, host string) bool {
	if strings.HasPrefix(host, "*.") {
		return slices.Contains(pair.DNSNames, host)
	}
	return pair.Certificate.Leaf.VerifyHostname(host) == nil
}
