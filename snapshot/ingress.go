package snapshot

import (
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"portico.dev/portico/hostname"
	"portico.dev/portico/routing"
)

const (
	// annotationIngressClass is the legacy way to pick a controller, from
	// before spec.ingressClassName.
	annotationIngressClass = "kubernetes.io/ingress.class"
	// annotationSSLRedirect, "true" on an Ingress, answers its plain-HTTP
	// requests with a permanent redirect to HTTPS.
	annotationSSLRedirect = "portico.dev/ssl-redirect"
	// annotationFallbackOnNoEndpoints, "true" on an Ingress, sends its
	// requests to the fallback backend while its Service has no ready
	// endpoints, instead of answering 503.
	annotationFallbackOnNoEndpoints = "portico.dev/fallback-on-no-endpoints"
)

// classSelector decides which Ingresses this controller owns.
type classSelector struct {
	ours       map[string]bool // IngressClass names whose controller is ours
	hasDefault bool            // one of ours is the cluster's default class
	legacyName string          // value of the legacy annotation we answer to
	adopted    map[string]bool // class names served whoever their controller is
}

func newClassSelector(classes []*networkingv1.IngressClass, cfg Config) classSelector {
	s := classSelector{ours: make(map[string]bool), legacyName: cfg.IngressClass, adopted: make(map[string]bool)}
	for _, name := range cfg.AdoptClasses {
		s.ours[name], s.adopted[name] = true, true
	}
	for _, c := range classes {
		if c.Spec.Controller != cfg.ControllerName && !s.adopted[c.Name] {
			continue
		}
		s.ours[c.Name] = true
		if c.Annotations[networkingv1.AnnotationIsDefaultIngressClass] == "true" {
			s.hasDefault = true
		}
	}
	return s
}

// owns reports whether an Ingress is ours: its class's IngressClass names
// our controller; or it has no class at all and one of our classes is the
// default; or it carries the legacy annotation with our class name.
func (s classSelector) owns(ing *networkingv1.Ingress) bool {
	if name := ing.Spec.IngressClassName; name != nil {
		return s.ours[*name]
	}
	if legacy, ok := ing.Annotations[annotationIngressClass]; ok {
		return legacy == s.legacyName || s.adopted[legacy]
	}
	return s.hasDefault
}

// ingressTranslation is what one Ingress contributes to a snapshot.
type ingressTranslation struct {
	routes []*routing.Route
	tls    []tlsRequest
	// invalid collects what the object itself gets wrong (not what it
	// refers to): a reason to keep its last good version instead.
	invalid []string
	// nginx lists its ingress-nginx annotations and what Portico does
	// with them; an invalid value leaves its annotation out but keeps the
	// rest of the Ingress serving, as ingress-nginx does.
	nginx []NginxFinding
	// regex: ingress-nginx's use-regex (or rewrite-target) is on, which
	// makes every path of its hosts a regular expression, across Ingresses.
	regex bool
	// grpc: its backends are sent gRPC (backend-protocol GRPC or GRPCS),
	// over HTTP/2.
	grpc bool
	// proxySSL is what the proxy-ssl-* annotations ask for, nil when
	// they do not apply (nginx_proxyssl.go).
	proxySSL *nginxProxySSL
	// canary is set for an ingress-nginx canary Ingress: its routes only
	// join the main Ingress's (nginx_canary.go).
	canary *canarySpec
	// serviceUpstream: its backends are their Services' cluster IPs
	// (service-upstream).
	serviceUpstream bool
	// affinity is its session affinity (affinity, upstream-hash-by).
	affinity *nginxAffinity
	// basic is what its basic authentication annotations ask for; the
	// builder reads the Secret.
	basic *nginxBasicAuth
	// authTLS is what its auth-tls-* annotations ask for; the builder
	// reads the CA Secret.
	authTLS *nginxAuthTLS
	// errorCodes and errorBackend are custom-http-errors' and
	// default-backend's values; the builder resolves the Service.
	errorCodes   []int
	errorBackend string
	// passthrough are the hosts its ssl-passthrough sends unterminated
	// to a backend, with the route whose backend takes them; the notes
	// say what of the Ingress could not be passed through.
	passthrough      []passthroughHost
	passthroughNotes []string
	// mirror is what mirror-target asks for; the builder resolves the
	// Service.
	mirror *nginxMirror
	// customHeaders is the ConfigMap custom-headers names; the builder
	// reads it.
	customHeaders *types.NamespacedName
}

// tlsRequest is one spec.tls entry: the hosts that must be served with the
// certificate of a Secret in the Ingress's namespace.
type tlsRequest struct {
	hosts  []string
	secret string
}

// translateIngress turns an Ingress into routes. It validates what the API
// server would (paths, path types, hosts, backends) so that manifests read
// from a folder get the same checks as objects read from a cluster.
func translateIngress(ing *networkingv1.Ingress, backends *backendResolver, adopted map[string]bool, defaults *nginxDefaults) ingressTranslation {
	var tr ingressTranslation
	source := func(rule string) routing.Source {
		return routing.Source{Kind: "Ingress", Namespace: ing.Namespace, Name: ing.Name, Rule: rule}
	}
	redirect := ing.Annotations[annotationSSLRedirect] == "true"
	fallbackOnNoEndpoints := ing.Annotations[annotationFallbackOnNoEndpoints] == "true"
	nc, findings := parseNginx(ing, adopted, defaults)
	tr.nginx, tr.regex, tr.grpc, tr.canary, tr.serviceUpstream, tr.affinity, tr.basic = findings, nc.regex, nc.grpc, nc.canary, nc.serviceUpstream, nc.affinity, nc.basic
	tr.authTLS = nc.authTLS
	tr.errorCodes, tr.errorBackend = nc.errorCodes, nc.errorBackend
	tr.proxySSL = nc.proxySSL
	tr.mirror, tr.customHeaders = nc.mirror, nc.customHeaders
	tlsCovers := ingressTLSHosts(ing)
	newRoute := func(src routing.Source, host string, kind routing.PathKind, path string, b *networkingv1.IngressBackend, where string) *routing.Route {
		ref, err := serviceRef(ing.Namespace, b)
		if err != nil {
			tr.invalid = append(tr.invalid, where+": "+err.Error())
			return nil
		}
		r := &routing.Route{
			Source:                src,
			Host:                  host,
			PathKind:              kind,
			Path:                  path,
			Backend:               backends.resolve(ref).backend,
			RedirectHTTPS:         redirect,
			FallbackOnNoEndpoints: fallbackOnNoEndpoints,
		}
		if kind == routing.PathPrefix && nc.regex && src.Rule != "default" {
			re, err := nginxPathRegexp(path)
			if err != nil {
				tr.nginx = append(tr.nginx, NginxFinding{Annotation: NginxPrefix + "use-regex", Verdict: NginxExact,
					Invalid: fmt.Sprintf("%s: path %q is not a regular expression (%v); that path is not served", strings.TrimSuffix(where, ".backend"), path, err)})
				return nil
			}
			r.PathKind, r.PathRegexp = routing.PathRegex, re
		}
		nc.decorate(r, tlsCovers(host))
		tr.routes = append(tr.routes, r)
		return r
	}

	var hosts []string
	var ptRules []passthroughRule
	for i, rule := range ing.Spec.Rules {
		where := fmt.Sprintf("spec.rules[%d]", i)
		host := hostname.Lower(rule.Host)
		if msg := validateHost(host); msg != "" {
			tr.invalid = append(tr.invalid, where+".host: "+msg)
			continue
		}
		hosts = append(hosts, host)
		if rule.HTTP == nil {
			if nc.sslPassthrough {
				ptRules = append(ptRules, passthroughRule{where: where, host: host})
			}
			continue
		}
		var first, root *routing.Route
		for j, p := range rule.HTTP.Paths {
			where := fmt.Sprintf("%s.http.paths[%d]", where, j)
			kind, path, msg := pathMatch(p)
			if msg != "" {
				tr.invalid = append(tr.invalid, where+": "+msg)
				continue
			}
			r := newRoute(source(fmt.Sprintf("%d/%d", i, j)), host, kind, path, &p.Backend, where+".backend")
			if first == nil {
				first = r
			}
			if root == nil && path == "/" {
				root = r
			}
		}
		if nc.sslPassthrough {
			ptRules = append(ptRules, passthroughRule{where: where, host: host, first: first, root: root})
		}
		if first != nil {
			tr.routes = append(tr.routes, nc.extraRoutes(func(rule string) routing.Source { return source(rule) }, host, first)...)
		}
	}
	tr.routes = append(tr.routes, nc.aliasRoutes(tr.routes, hosts)...)

	// spec.defaultBackend catches what this Ingress's hosts do not route;
	// an Ingress with no host rules catches it for every host. Either way
	// it ranks below every path route of the same host.
	hostDefaults := make(map[string]*routing.Route)
	if db := ing.Spec.DefaultBackend; db != nil {
		scopes := uniqueHosts(hosts)
		if len(scopes) == 0 {
			scopes = []string{""}
		}
		for _, host := range scopes {
			hostDefaults[host] = newRoute(source("default"), host, routing.PathAny, "", db, "spec.defaultBackend")
		}
	}
	if nc.sslPassthrough {
		tr.passthrough, tr.passthroughNotes = passthroughHosts(ptRules, hostDefaults)
	}

	for i, t := range ing.Spec.TLS {
		if t.SecretName == "" {
			// Allowed by the API: it asks for TLS on these hosts with a
			// certificate from elsewhere; the default certificate serves.
			continue
		}
		tlsHosts := t.Hosts
		if len(tlsHosts) == 0 {
			tlsHosts = uniqueHosts(hosts)
		}
		var valid []string
		for j, h := range tlsHosts {
			h = hostname.Lower(h)
			if msg := validateHost(h); msg != "" || h == "" {
				if msg == "" {
					msg = "must not be empty"
				}
				tr.invalid = append(tr.invalid, fmt.Sprintf("spec.tls[%d].hosts[%d]: %s", i, j, msg))
				continue
			}
			valid = append(valid, h)
		}
		tr.tls = append(tr.tls, tlsRequest{hosts: valid, secret: t.SecretName})
	}
	return tr
}

// ingressTLSHosts returns whether the Ingress's spec.tls names a host,
// with or without a Secret; an entry without hosts covers the rule hosts.
func ingressTLSHosts(ing *networkingv1.Ingress) func(string) bool {
	var patterns []hostname.Pattern
	for _, t := range ing.Spec.TLS {
		if len(t.Hosts) == 0 {
			return func(string) bool { return true }
		}
		for _, h := range t.Hosts {
			if h != "" { // invalid, and reported by translateIngress
				patterns = append(patterns, hostname.NewPattern(hostname.Lower(h)))
			}
		}
	}
	return func(host string) bool {
		for _, p := range patterns {
			if p.Matches(host, hostname.OneLabel) {
				return true
			}
		}
		return false
	}
}

func uniqueHosts(hosts []string) []string {
	var out []string
	seen := make(map[string]bool)
	for _, h := range hosts {
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// validateHost checks an Ingress host as the API server does: a DNS name,
// optionally with a wildcard first label, never an IP address.
func validateHost(host string) string {
	if host == "" {
		return ""
	}
	if strings.HasPrefix(host, "*") {
		if errs := validation.IsWildcardDNS1123Subdomain(host); len(errs) > 0 {
			return fmt.Sprintf("%q: %s", host, errs[0])
		}
		return ""
	}
	if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 {
		return fmt.Sprintf("%q: %s", host, errs[0])
	}
	if len(validation.IsValidIP(nil, host)) == 0 {
		return fmt.Sprintf("%q: must be a DNS name, not an IP address", host)
	}
	return ""
}

// pathMatch validates one HTTPIngressPath and returns how to match it.
// ImplementationSpecific is matched as Prefix, which is what users of
// other controllers most often mean by it.
func pathMatch(p networkingv1.HTTPIngressPath) (routing.PathKind, string, string) {
	if p.PathType == nil {
		return 0, "", "pathType must be set (Exact, Prefix or ImplementationSpecific)"
	}
	path := p.Path
	switch *p.PathType {
	case networkingv1.PathTypeExact, networkingv1.PathTypePrefix:
		if !strings.HasPrefix(path, "/") {
			return 0, "", fmt.Sprintf("path %q must be an absolute path starting with \"/\"", path)
		}
		if strings.ContainsAny(path, "?#") || strings.Contains(path, "//") {
			return 0, "", fmt.Sprintf("path %q must not contain \"?\", \"#\" or \"//\"", path)
		}
		if *p.PathType == networkingv1.PathTypeExact {
			return routing.PathExact, path, ""
		}
		return routing.PathPrefix, path, ""
	case networkingv1.PathTypeImplementationSpecific:
		if path == "" {
			path = "/"
		}
		if !strings.HasPrefix(path, "/") {
			return 0, "", fmt.Sprintf("path %q must start with \"/\"", path)
		}
		return routing.PathPrefix, path, ""
	default:
		return 0, "", fmt.Sprintf("unknown pathType %q (want Exact, Prefix or ImplementationSpecific)", *p.PathType)
	}
}

// serviceRef validates an IngressBackend and names the Service port it
// points at.
func serviceRef(namespace string, b *networkingv1.IngressBackend) (servicePortRef, error) {
	if b.Resource != nil {
		return servicePortRef{}, fmt.Errorf("resource backends (%s %s) are not supported; use a service backend", b.Resource.Kind, b.Resource.Name)
	}
	if b.Service == nil || b.Service.Name == "" {
		return servicePortRef{}, fmt.Errorf("service.name must be set")
	}
	ref := servicePortRef{Service: key(namespace, b.Service.Name), Number: b.Service.Port.Number, Name: b.Service.Port.Name}
	if (ref.Number == 0) == (ref.Name == "") {
		return servicePortRef{}, fmt.Errorf("service.port must have exactly one of number or name")
	}
	return ref, nil
}
