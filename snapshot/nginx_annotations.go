package snapshot

import (
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"portico.dev/portico/hostname"
	"portico.dev/portico/routing"
)

// This file holds Portico's reading of the ingress-nginx annotations
// (nginx.ingress.kubernetes.io/*): the translation of those it implements
// onto the route model HTTPRoute filters use, by the verdicts of the
// annotation table (nginx_table.go). Every annotation on an owned Ingress
// that is not served exactly is reported on the Ingress, unknown ones
// included; snippets are never executed.

// NginxFinding is what Portico does with one ingress-nginx annotation on
// one Ingress.
type NginxFinding struct {
	// Annotation is the full key, prefix included.
	Annotation string
	Verdict    NginxVerdict
	// Note says how Portico differs, or what it does instead.
	Note string
	// Invalid, when set, says why the value was refused; the annotation
	// is then not applied, and the rest of the Ingress is served.
	Invalid string
}

// reported reports whether the finding is worth a problem on the Ingress.
func (f NginxFinding) reported() bool { return f.Verdict != NginxExact || f.Invalid != "" }

// problem words the finding as a problem on its object: an Ingress's
// annotation, or a key of ingress-nginx's ConfigMap (no prefix).
func (f NginxFinding) problem() (reason, message string) {
	what, kind := "annotation", "Annotation"
	if !strings.HasPrefix(f.Annotation, NginxPrefix) {
		what, kind = "ConfigMap key", "ConfigMapKey"
	}
	switch {
	case f.Invalid != "":
		return "InvalidNginx" + kind, fmt.Sprintf("%s %s: %s", what, f.Annotation, f.Invalid)
	case f.Verdict == NginxNeverExecuted:
		return "NginxSnippetNotExecuted", fmt.Sprintf("%s %s: %s", what, f.Annotation, f.Note)
	case f.Verdict == NginxUnknown:
		return "UnknownNginx" + kind, fmt.Sprintf("%s %s: %s", what, f.Annotation, f.Note)
	case f.Verdict == NginxApproximate:
		return "ApproximateNginx" + kind, fmt.Sprintf("%s %s: served approximately: %s", what, f.Annotation, f.Note)
	}
	return "UnsupportedNginx" + kind, fmt.Sprintf("%s %s: %s", what, f.Annotation, f.Note)
}

// NginxFindings lists, in key order, every ingress-nginx annotation on ing
// with what Portico does with it. It is what the builder reports and what
// portico check prints.
func NginxFindings(ing *networkingv1.Ingress) []NginxFinding {
	_, findings := parseNginx(ing, nil, nil)
	return findings
}

// nginxConfig is what the implemented annotations of one Ingress ask for.
type nginxConfig struct {
	// flavoured: the Ingress was written for ingress-nginx (it carries one
	// of its annotations or names the nginx class), so ingress-nginx's
	// defaults apply to it, ssl-redirect's above all.
	flavoured        bool
	sslRedirect      bool
	forceSSLRedirect bool
	redirect         *routing.Redirect
	appRoot          string
	fromToWWW        bool
	regex            bool
	rewrite          *string
	forwardedPrefix  string
	upstreamVhost    string
	cors             *routing.CORS
	admission        *routing.Admission
	// limit is what the limit-* annotations ask for; it becomes the
	// admission's RateLimit once every annotation is read.
	limit *routing.RateLimitConfig
	// grpc: backend-protocol GRPC or GRPCS, spoken as HTTP/2 (grpcBackend).
	grpc bool
	// tlsBackend: backend-protocol HTTPS or GRPCS, for which the
	// proxy-ssl-* annotations apply (proxySSL, nginx_proxyssl.go).
	tlsBackend bool
	proxySSL   *nginxProxySSL
	// readTimeout and sendTimeout: proxy-read-timeout, proxy-send-timeout.
	readTimeout, sendTimeout time.Duration
	// connectTimeout is proxy-connect-timeout (nginx_upstream.go).
	connectTimeout time.Duration
	// nextUpstream is what the proxy-next-upstream annotations ask for,
	// and retry the policy finishRetry makes of it (nginx_upstream.go).
	nextUpstream *nginxNext
	retry        *routing.Retry
	// mirror is what the mirror-* annotations ask for (nginx_mirror.go).
	mirror *nginxMirror
	// customHeaders is the ConfigMap custom-headers names
	// (nginx_customheaders.go).
	customHeaders *types.NamespacedName
	// locationRewrite is proxy-redirect-from and -to; noAccessLog is
	// enable-access-log false; satisfyAny is satisfy any, and failedClosed
	// says an allow list or auth-url did not parse, which denies everyone
	// whatever satisfy says (nginx_access.go).
	locationRewrite *routing.LocationRewrite
	noAccessLog     bool
	satisfyAny      bool
	failedClosed    bool
	// canary is set on a canary Ingress (nginx_canary.go).
	canary *canarySpec
	// auth is auth-url's external authentication, with its options.
	auth *routing.ExternalAuth
	// basic is auth-type basic's authentication (nginx_basicauth.go).
	basic *nginxBasicAuth
	// authTLS is the auth-tls-* client certificate authentication
	// (nginx_authtls.go).
	authTLS *nginxAuthTLS
	// namespace is the Ingress's, which names a Secret without one.
	namespace string
	// serviceUpstream sends requests to the Service's cluster IP.
	serviceUpstream bool
	// aliases are server-alias's host names.
	aliases []string
	// hosts counts the Ingress's distinct rule hosts, for server-alias.
	hosts int
	// affinity is what affinity and upstream-hash-by ask for
	// (nginx_affinity.go).
	affinity *nginxAffinity
	// hsts is the Strict-Transport-Security value of ingress-nginx's
	// ConfigMap, sent on HTTPS responses of hosts under spec.tls.
	hsts string
	// errorCodes are custom-http-errors' status codes; errorBackend is
	// default-backend's Service name, which the builder resolves.
	errorCodes   []int
	errorBackend string
	// sslPassthrough: ssl-passthrough "true" (nginx_sslpassthrough.go).
	sslPassthrough bool
	// more are findings beyond the one of their annotation (a list with
	// several invalid entries), reported when the annotation is the
	// Ingress's own.
	more map[string][]NginxFinding
}

// nginxClass is the class name ingress-nginx installs answer to.
const nginxClass = "nginx"

// parseNginx reads the ingress-nginx annotations of ing. A value that does
// not parse leaves its annotation out and is reported; the rest applies.
// An Ingress of the nginx class or of an adopted one is written for
// ingress-nginx even without annotations. defaults, from ingress-nginx's
// ConfigMap (nil when none is read), are read as the annotations such an
// Ingress does not set; only its own annotations get findings.
func parseNginx(ing *networkingv1.Ingress, adopted map[string]bool, defaults *nginxDefaults) (nginxConfig, []NginxFinding) {
	nc := nginxConfig{sslRedirect: true, namespace: ing.Namespace}
	hosts := make(map[string]bool)
	for _, r := range ing.Spec.Rules {
		hosts[hostname.Lower(r.Host)] = true
	}
	nc.hosts = len(hosts)
	class, ok := ing.Annotations[annotationIngressClass]
	if c := ing.Spec.IngressClassName; c != nil {
		class, ok = *c, true
	}
	nc.flavoured = ok && (class == nginxClass || adopted[class])
	var keys []string
	for k := range ing.Annotations {
		if strings.HasPrefix(k, NginxPrefix) {
			keys = append(keys, k)
		}
	}
	nc.flavoured = nc.flavoured || len(keys) > 0
	own := len(keys)
	annotations := ing.Annotations
	if nc.flavoured && defaults != nil {
		nc.hsts = defaults.hsts
		if len(defaults.annotations) > 0 {
			annotations = make(map[string]string, len(ing.Annotations)+len(defaults.annotations))
			maps.Copy(annotations, ing.Annotations)
			for name, v := range defaults.annotations {
				if !nginxSetsAny(ing.Annotations, name) {
					annotations[NginxPrefix+name] = v
					keys = append(keys, NginxPrefix+name)
				}
			}
		}
	}
	if len(keys) == 0 {
		return nc, nil
	}
	isOwn := func(k string) bool { _, ok := ing.Annotations[k]; return ok }
	slices.Sort(keys)
	get := func(name string) (string, bool) {
		v, ok := annotations[NginxPrefix+name]
		return strings.TrimSpace(v), ok
	}
	findings := make([]NginxFinding, 0, own)
	for _, k := range keys {
		name := strings.TrimPrefix(k, NginxPrefix)
		row := nginxByName[name]
		if row == nil {
			findings = append(findings, NginxFinding{Annotation: k, Verdict: NginxUnknown,
				Note: "not an ingress-nginx annotation Portico knows of; ignored"})
			continue
		}
		f := NginxFinding{Annotation: k, Verdict: row.Verdict, Note: row.Note}
		if row.Verdict == NginxExact || row.Verdict == NginxApproximate {
			f = nc.apply(f, name, annotations[k], get)
		}
		if isOwn(k) {
			// A default's finding is the ConfigMap's, reported there.
			findings = append(findings, f)
			findings = append(findings, nc.more[name]...)
		}
	}
	if nc.cors != nil {
		nginxCORS(nc.cors, annotations)
	}
	if l := nc.limit; l != nil && (l.PerSecond > 0 || l.PerMinute > 0 || l.Connections > 0) {
		if l.BurstMultiplier == 0 {
			l.BurstMultiplier = nginxBurstMultiplier
		}
		nc.admissionRules().Limit = routing.NewRateLimit(*l)
	}
	if nc.auth != nil && nc.auth.URL == "" {
		// The auth-* options mean nothing without auth-url.
		nc.auth = nil
	}
	nc.finishAffinity(findings)
	nc.finishRetry()
	nc.finishProxySSL(findings)
	findings = append(findings, nc.finishBasicAuth(findings)...)
	nc.finishAuthTLS(findings)
	findings = append(findings, nc.finishSatisfy()...)
	if nc.canary != nil && !nc.canary.on {
		// The canary-* options mean nothing without canary: "true".
		nc.canary = nil
	}
	return nc, findings
}

var (
	nginxSize     = regexp.MustCompile(`^([0-9]+)([kKmMgG]?)$`)
	redirectCodes = []int{300, 301, 302, 303, 304, 305, 307, 308}
	// defaultCORS are ingress-nginx's defaults for the cors-* annotations.
	defaultCORSMethods = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
	defaultCORSHeaders = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization"
)

// apply reads one implemented annotation into nc and returns its finding,
// with Invalid set when the value does not parse. Each family of
// annotations has its own function, which reports whether the name is
// one of its own.
func (nc *nginxConfig) apply(f NginxFinding, name, raw string, get func(string) (string, bool)) NginxFinding {
	v := strings.TrimSpace(raw)
	for _, family := range []func(NginxFinding, string, string, string, func(string) (string, bool)) (NginxFinding, bool){
		nc.applyPaths, nc.applyBackend, nc.applyRouting, nc.applyAuth, nc.applyBasicAuth, nc.applyAuthTLS, nc.applyAdmission, nc.applyAffinity, nc.applyProxySSL, nc.applySSLPassthrough, nc.applyUpstream, nc.applyMirror, nc.applyCustomHeaders, nc.applyAccess,
	} {
		if g, ok := family(f, name, raw, v, get); ok {
			return g
		}
	}
	return f
}

// addMore keeps a further finding of the annotation name.
func (nc *nginxConfig) addMore(name string, f NginxFinding) {
	if nc.more == nil {
		nc.more = make(map[string][]NginxFinding)
	}
	nc.more[name] = append(nc.more[name], f)
}

// invalidf returns f reporting that its value does not parse.
func (f NginxFinding) invalidf(format string, args ...any) NginxFinding {
	f.Invalid = fmt.Sprintf(format, args...)
	return f
}

// applyPaths reads the path, redirect and rewrite annotations.
func (nc *nginxConfig) applyPaths(f NginxFinding, name, raw, v string, get func(string) (string, bool)) (NginxFinding, bool) {
	switch name {
	case "ssl-redirect", "force-ssl-redirect", "use-regex", "from-to-www-redirect", "enable-cors", "cors-allow-credentials", "preserve-trailing-slash":
		b, err := strconv.ParseBool(v)
		ok := err == nil
		if !ok {
			return f.invalidf("%q is not a boolean (true or false); the annotation is ignored", raw), true
		}
		switch name {
		case "ssl-redirect":
			nc.sslRedirect = b
		case "force-ssl-redirect":
			nc.forceSSLRedirect = b
		case "use-regex":
			nc.regex = nc.regex || b
		case "from-to-www-redirect":
			nc.fromToWWW = b
		case "enable-cors":
			if b {
				nc.cors = &routing.CORS{}
			}
		}
	case "permanent-redirect", "temporal-redirect":
		if v == "" {
			return f, true
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !validFieldValue(v) {
			return f.invalidf("%q is not an absolute http or https URL; the annotation is ignored", raw), true
		}
		code := http301
		if name == "temporal-redirect" {
			code = http302
		}
		if c, ok := get(name + "-code"); ok {
			n, err := strconv.Atoi(c)
			if err != nil || !slices.Contains(redirectCodes, n) {
				return f.invalidf("%s-code %q is not a redirect status (300 to 308); the annotation is ignored", name, c), true
			}
			code = n
		}
		// temporal-redirect wins over permanent-redirect, as in ingress-nginx.
		if name == "temporal-redirect" || nc.redirect == nil {
			nc.redirect = &routing.Redirect{Location: v, StatusCode: code}
		}
	case "permanent-redirect-code", "temporal-redirect-code":
		n, err := strconv.Atoi(v)
		if err != nil || !slices.Contains(redirectCodes, n) {
			return f.invalidf("%q is not a redirect status (300 to 308)", raw), true
		}
	case "app-root":
		if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, " \t\r\n?#") {
			return f.invalidf("%q is not an absolute path; the annotation is ignored", raw), true
		}
		nc.appRoot = v
	case "rewrite-target":
		tmpl, msg := nginxRewriteTemplate(v)
		if msg != "" {
			return f.invalidf("%s; the annotation is ignored", msg), true
		}
		nc.rewrite = &tmpl
		// rewrite-target turns regex matching on, as in ingress-nginx.
		nc.regex = true
	case "x-forwarded-prefix":
		if v == "" {
			return f, true
		}
		if !validFieldValue(v) {
			return f.invalidf("%q is not a valid header value; the annotation is ignored", raw), true
		}
		nc.forwardedPrefix = v
	default:
		return f, false
	}
	return f, true
}

// applyBackend reads the annotations of the backend leg: its protocol, host, addresses, timeouts and buffering.
func (nc *nginxConfig) applyBackend(f NginxFinding, name, raw, v string, get func(string) (string, bool)) (NginxFinding, bool) {
	switch name {
	case "custom-http-errors":
		for _, c := range splitList(v) {
			code, err := strconv.Atoi(c)
			if err != nil || code < 300 || code > 599 {
				g := f.invalidf("%q is not a status code from 300 to 599; that code is not intercepted", c)
				if f.Invalid == "" {
					f = g
				} else {
					nc.addMore(name, g)
				}
				continue
			}
			if !slices.Contains(nc.errorCodes, code) {
				nc.errorCodes = append(nc.errorCodes, code)
			}
		}
		return f, true
	case "default-backend":
		if msg := validateServiceName(v); msg != "" {
			return f.invalidf("%q is not a Service name (%s); the controller's default backend serves the error pages", raw, msg), true
		}
		nc.errorBackend = v
	case "upstream-vhost":
		if v == "" || strings.ContainsAny(v, " \t/?#@") || !validFieldValue(v) {
			return f.invalidf("%q is not a host name; the annotation is ignored", raw), true
		}
		nc.upstreamVhost = v
	case "backend-protocol":
		switch strings.ToUpper(v) {
		case "HTTP":
			f.Verdict, f.Note = NginxExact, ""
		case "GRPC":
			f.Verdict, f.Note = NginxExact, ""
			nc.grpc = true
		case "GRPCS":
			// HTTP/2 by ALPN inside the TLS a BackendTLSPolicy or the
			// proxy-ssl-* annotations add; the row's note says one is
			// needed.
			nc.grpc, nc.tlsBackend = true, true
		case "HTTPS":
			nc.tlsBackend = true
		case "AUTO_HTTP", "FCGI":
		default:
			return f.invalidf("%q is not one of HTTP, HTTPS, GRPC, GRPCS, AUTO_HTTP, FCGI; HTTP is spoken", raw), true
		}
	case "service-upstream":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f.invalidf("%q is not a boolean (true or false); the endpoints are used", raw), true
		}
		nc.serviceUpstream = b
	case "load-balance":
		switch v {
		case "round_robin":
			f.Verdict, f.Note = NginxExact, ""
		case "ewma", "chash", "chashsubset", "sticky", "ip_hash", "least_conn":
		default:
			return f.invalidf("%q is not a load-balancing algorithm; round-robin is used", raw), true
		}
	case "proxy-buffering", "proxy-request-buffering":
		switch strings.ToLower(v) {
		case "off":
			f.Verdict, f.Note = NginxExact, ""
		case "on":
		default:
			return f.invalidf("%q is not on or off; Portico streams", raw), true
		}
	case "proxy-http-version":
		switch v {
		case "1.1":
			f.Verdict, f.Note = NginxExact, ""
		case "1.0":
		default:
			return f.invalidf("%q is not 1.0 or 1.1; Portico speaks HTTP/1.1", raw), true
		}
	case "proxy-read-timeout", "proxy-send-timeout":
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 24*3600 {
			return f.invalidf("%q is not a number of seconds from 1 to 86400; the global timeout applies", raw), true
		}
		if !nc.grpc {
			// backend-protocol sorts first: the HTTP/2 difference is known.
			f.Verdict, f.Note = NginxExact, ""
		}
		if name == "proxy-read-timeout" {
			nc.readTimeout = time.Duration(n) * time.Second
		} else {
			nc.sendTimeout = time.Duration(n) * time.Second
		}
	default:
		return f, false
	}
	return f, true
}

// applyRouting reads CORS, canaries and server aliases.
func (nc *nginxConfig) applyRouting(f NginxFinding, name, raw, v string, get func(string) (string, bool)) (NginxFinding, bool) {
	switch name {
	case "cors-allow-origin", "cors-allow-methods", "cors-allow-headers", "cors-expose-headers", "cors-max-age":
		// Read in finish, with enable-cors; only the syntax is checked here.
		if name == "cors-max-age" {
			if n, err := strconv.ParseInt(v, 10, 32); err != nil || n < 0 {
				return f.invalidf("%q is not a number of seconds; the default 1728000 applies", raw), true
			}
		}
		if name == "cors-allow-origin" {
			if _, bad := nginxOrigins(v); len(bad) > 0 {
				return f.invalidf("origins %q are not <scheme>://<host>[:<port>] or *; they are left out", bad), true
			}
		}
	case "canary", "canary-by-header", "canary-by-header-value", "canary-by-header-pattern", "canary-by-cookie", "canary-weight", "canary-weight-total":
		if msg := nc.readCanary(name, v); msg != "" {
			return f.invalidf("%s", msg), true
		}
	case "server-alias":
		var bad []string
		for _, h := range splitList(v) {
			h = strings.ToLower(h)
			if h == "" || validateHost(h) != "" || strings.HasPrefix(h, "~") {
				bad = append(bad, h)
				continue
			}
			nc.aliases = append(nc.aliases, h)
		}
		if nc.hosts <= 1 {
			f.Verdict, f.Note = NginxExact, ""
		}
		if len(bad) > 0 {
			return f.invalidf("%q are not host names; they are left out", bad), true
		}
	default:
		return f, false
	}
	return f, true
}

// applyAuth reads external authentication (auth-url and its options).
func (nc *nginxConfig) applyAuth(f NginxFinding, name, raw, v string, get func(string) (string, bool)) (NginxFinding, bool) {
	switch name {
	case "auth-url":
		if msg := nginxAuthURL(v); msg != "" {
			// Fail closed, as ingress-nginx does: a check that cannot be
			// run lets nobody through.
			nc.admissionRules().Deny = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
			nc.failedClosed = true
			return f.invalidf("%s; every request to this Ingress is answered 403", msg), true
		}
		nc.authRules().URL = v
	case "auth-signin":
		if msg := nginxAuthURL(v); msg != "" {
			return f.invalidf("%s; a 401 is passed to the client", msg), true
		}
		nc.authRules().SignIn = v
	case "auth-signin-redirect-param":
		if v == "" || url.QueryEscape(v) != v {
			return f.invalidf("%q is not a query parameter name; rd is used", raw), true
		}
		nc.authRules().SignInParam = v
	case "auth-always-set-cookie":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f.invalidf("%q is not true or false; false is used", raw), true
		}
		nc.authRules().AlwaysSetCookie = b
	case "auth-request-redirect":
		if !validFieldValue(v) || v == "" || strings.Contains(nginxAuthVariables.Replace(v), "$") {
			return f.invalidf("%q is not a header value with at most the variables $host, $scheme, $request_uri and $escaped_request_uri; the request's target is sent", raw), true
		}
		nc.authRules().RequestRedirect = v
	case "auth-method":
		if !validHeaderName(v) || strings.ToUpper(v) != v {
			return f.invalidf("%q is not an HTTP method; GET is used", raw), true
		}
		nc.authRules().Method = v
	case "auth-response-headers":
		for _, h := range splitList(v) {
			if !validHeaderName(h) {
				return f.invalidf("%q is not a list of header names; no header is copied", raw), true
			}
			nc.authRules().ResponseHeaders = append(nc.authRules().ResponseHeaders, h)
		}
	default:
		return f, false
	}
	return f, true
}

// applyAdmission reads the body size, rate limits and address ranges.
func (nc *nginxConfig) applyAdmission(f NginxFinding, name, raw, v string, get func(string) (string, bool)) (NginxFinding, bool) {
	switch name {
	case "proxy-body-size":
		n, ok := nginxBytes(v)
		if !ok {
			return f.invalidf("%q is not a size (a number with an optional k, m or g); no limit applies", raw), true
		}
		if n > 0 {
			nc.admissionRules().MaxBodyBytes = n
		}
	case "limit-rps", "limit-rpm", "limit-connections", "limit-burst-multiplier":
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 1_000_000 {
			return f.invalidf("%q is not a whole number from 1 to 1000000; the annotation is ignored", raw), true
		}
		l := nc.limits()
		switch name {
		case "limit-rps":
			l.PerSecond = n
		case "limit-rpm":
			l.PerMinute = n
		case "limit-connections":
			l.Connections = n
		case "limit-burst-multiplier":
			l.BurstMultiplier = n
		}
	case "limit-whitelist", "limit-allowlist":
		if g, shadowed := nginxAliasShadowed(f, name, get); shadowed {
			return g, true
		}
		prefixes, bad := nginxPrefixes(v)
		if len(bad) > 0 {
			return f.invalidf("%q are not IP addresses or CIDR ranges; the limits apply to every client", bad), true
		}
		nc.limits().Exempt = append(nc.limits().Exempt, prefixes...)
	case "whitelist-source-range", "allowlist-source-range", "denylist-source-range":
		if g, shadowed := nginxAliasShadowed(f, name, get); shadowed {
			return g, true
		}
		prefixes, bad := nginxPrefixes(v)
		deny := name == "denylist-source-range"
		if len(bad) > 0 {
			if deny {
				return f.invalidf("%q are not IP addresses or CIDR ranges; the deny list is not applied", bad), true
			}
			// Fail closed, as ingress-nginx does: an allow list that
			// cannot be read admits nobody.
			nc.admissionRules().Deny = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
			nc.failedClosed = true
			return f.invalidf("%q are not IP addresses or CIDR ranges; every request to this Ingress is answered 403", bad), true
		}
		if len(prefixes) == 0 {
			return f, true
		}
		a := nc.admissionRules()
		if deny {
			a.Deny = append(a.Deny, prefixes...)
		} else {
			a.Allow = append(a.Allow, prefixes...)
		}
	default:
		return f, false
	}
	return f, true
}

const (
	http301 = 301
	http302 = 302
)

func (nc *nginxConfig) authRules() *routing.ExternalAuth {
	if nc.auth == nil {
		nc.auth = &routing.ExternalAuth{}
	}
	return nc.auth
}

// nginxAuthURL checks an auth-url or auth-signin: an absolute http or https
// URL whose nginx variables Portico can expand.
// nginxAuthVariables stands in for the nginx variables the auth
// annotations may hold, as routing expands them.
var nginxAuthVariables = strings.NewReplacer("$escaped_request_uri", "x", "$request_uri", "/x", "$scheme", "http", "$host", "example.com")

func nginxAuthURL(v string) string {
	expanded := nginxAuthVariables.Replace(v)
	if strings.Contains(expanded, "$") {
		return fmt.Sprintf("%q uses an nginx variable other than $host, $scheme, $request_uri and $escaped_request_uri", v)
	}
	u, err := url.Parse(expanded)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !validFieldValue(v) || strings.ContainsAny(v, " \t") {
		return fmt.Sprintf("%q is not an absolute http or https URL", v)
	}
	return ""
}

// nginxSetsAny reports whether annotations set the annotation name, or one
// of the aliases that override the same ConfigMap key.
func nginxSetsAny(annotations map[string]string, name string) bool {
	if _, ok := annotations[NginxPrefix+name]; ok {
		return true
	}
	for _, alias := range nginxOverrides[name] {
		if _, ok := annotations[NginxPrefix+alias]; ok {
			return true
		}
	}
	return false
}

// nginxAliases maps the older names ingress-nginx still reads to the
// annotations they stand for.
var nginxAliases = map[string]string{
	"limit-whitelist":        "limit-allowlist",
	"whitelist-source-range": "allowlist-source-range",
}

// nginxAliasShadowed reports whether name is an older name whose
// annotation is also set: ingress-nginx reads an alias only when the
// annotation itself is absent or empty, so the two lists are not joined.
func nginxAliasShadowed(f NginxFinding, name string, get func(string) (string, bool)) (NginxFinding, bool) {
	current, ok := nginxAliases[name]
	if !ok {
		return f, false
	}
	if v, _ := get(current); v == "" {
		return f, false
	}
	return f.invalidf("%s%s is set and takes precedence (as in ingress-nginx); the annotation is ignored", NginxPrefix, current), true
}

// nginxBurstMultiplier is ingress-nginx's default limit-burst-multiplier.
const nginxBurstMultiplier = 5

func (nc *nginxConfig) limits() *routing.RateLimitConfig {
	if nc.limit == nil {
		nc.limit = &routing.RateLimitConfig{}
	}
	return nc.limit
}

func (nc *nginxConfig) admissionRules() *routing.Admission {
	if nc.admission == nil {
		nc.admission = &routing.Admission{}
	}
	return nc.admission
}

// nginxCORS reads the cors-* annotations into c, with ingress-nginx's
// defaults for those not set.
func nginxCORS(c *routing.CORS, annotations map[string]string) {
	get := func(name, def string) string {
		if v, ok := annotations[NginxPrefix+name]; ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	c.AllowOrigins, _ = nginxOrigins(get("cors-allow-origin", "*"))
	c.AllowMethods = splitList(get("cors-allow-methods", defaultCORSMethods))
	c.AllowHeaders = splitList(get("cors-allow-headers", defaultCORSHeaders))
	c.ExposeHeaders = splitList(get("cors-expose-headers", ""))
	c.AllowCredentials = true
	if b, err := strconv.ParseBool(get("cors-allow-credentials", "true")); err == nil {
		c.AllowCredentials = b
	}
	c.MaxAge = 1728000
	if n, err := strconv.ParseInt(get("cors-max-age", "1728000"), 10, 32); err == nil && n >= 0 {
		c.MaxAge = int32(n)
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// nginxOrigins splits a cors-allow-origin list into the origins Portico
// can match and those it cannot read.
func nginxOrigins(v string) (ok, bad []string) {
	for _, o := range splitList(v) {
		if o == "*" {
			ok = append(ok, o)
			continue
		}
		scheme, rest, found := strings.Cut(o, "://")
		if !found || (scheme != "http" && scheme != "https") || rest == "" || strings.ContainsAny(rest, "/?#@ ") {
			bad = append(bad, o)
			continue
		}
		ok = append(ok, o)
	}
	return ok, bad
}

// nginxBytes reads an nginx size: bytes, or k, m, g units of 1024.
func nginxBytes(v string) (int64, bool) {
	m := nginxSize.FindStringSubmatch(v)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, false
	}
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30}[strings.ToLower(m[2])]
	if n > (1<<62)>>shift {
		return 0, false
	}
	return n << shift, true
}

// nginxPrefixes reads a comma-separated list of addresses and CIDR ranges.
func nginxPrefixes(v string) (ok []netip.Prefix, bad []string) {
	for _, s := range splitList(v) {
		if p, err := netip.ParsePrefix(s); err == nil {
			ok = append(ok, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			ok = append(ok, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		bad = append(bad, s)
	}
	return ok, bad
}

// nginxRewriteTemplate turns a rewrite-target into a routing template:
// nginx's $1..$9 become ${1}..${9}, so that "$1abc" keeps meaning capture
// 1 followed by "abc". Other nginx variables cannot be expanded.
func nginxRewriteTemplate(v string) (string, string) {
	if v == "" {
		return "", "an empty rewrite-target is not a path"
	}
	if !validFieldValue(v) || strings.ContainsAny(v, " \t") {
		return "", fmt.Sprintf("%q is not a path", v)
	}
	if strings.Contains(v, "?") {
		return "", fmt.Sprintf("%q sets a query string, which Portico does not rewrite", v)
	}
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '$' {
			sb.WriteByte(c)
			continue
		}
		if i+1 < len(v) && v[i+1] >= '0' && v[i+1] <= '9' {
			sb.WriteString("${" + string(v[i+1]) + "}")
			i++
			continue
		}
		return "", fmt.Sprintf("%q uses an nginx variable other than $1 to $9, which Portico cannot expand", v)
	}
	return sb.String(), ""
}

// nginxPathRegexp compiles an Ingress path as ingress-nginx matches it in
// regex mode: a case-insensitive match anchored at the start of the path
// only, so "/foo" also matches "/FOO" and "/foobar". The table anchors the
// expression at both ends, hence the trailing ".*".
func nginxPathRegexp(path string) (*regexp.Regexp, error) {
	return regexp.Compile(`(?i)^(?:` + path + `).*`)
}

func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// Source rules of the routes annotations add besides an Ingress's paths.
const (
	ruleAppRoot   = "app-root"
	ruleFromToWWW = "from-to-www"
	// ruleAlias prefixes the rule of a server-alias copy of a route.
	ruleAlias = "alias:"
)

// aliasRoutes copies the routes of the Ingress's first rule host (the path
// routes and those annotations added) to each server-alias host.
func (nc *nginxConfig) aliasRoutes(routes []*routing.Route, hosts []string) []*routing.Route {
	if len(nc.aliases) == 0 || len(hosts) == 0 || hosts[0] == "" {
		return nil
	}
	var out []*routing.Route
	for _, alias := range nc.aliases {
		for _, r := range routes {
			if r.Host != hosts[0] || r.Source.Rule == ruleFromToWWW || alias == hosts[0] {
				continue
			}
			c := cloneRoute(r)
			c.Host = alias
			c.Source.Rule = ruleAlias + r.Source.Rule
			out = append(out, c)
		}
	}
	return out
}

// decorate applies the annotations to one path route of the Ingress; tls
// says whether the Ingress's spec.tls covers the route's host.
func (nc *nginxConfig) decorate(r *routing.Route, tls bool) {
	if !nc.flavoured {
		return
	}
	// ingress-nginx redirects to HTTPS by default when the host has TLS.
	r.RedirectHTTPS = r.RedirectHTTPS || nc.forceSSLRedirect || (nc.sslRedirect && tls)
	r.Admission = nc.admission
	r.ExternalAuth = nc.auth
	r.Timeouts.BackendRead, r.Timeouts.BackendSend = nc.readTimeout, nc.sendTimeout
	// Either takes the route off the event loops (Route.onlyForwards),
	// which dial without a bound of their own and retry nothing.
	r.Timeouts.Connect, r.Retry = nc.connectTimeout, nc.retry
	r.SatisfyAny, r.NoAccessLog = nc.satisfyAny, nc.noAccessLog
	var f routing.Filters
	if nc.redirect != nil {
		// nginx's return runs before the HTTPS redirect.
		f.Redirect = nc.redirect
		r.RedirectHTTPS = false
	}
	if nc.upstreamVhost != "" || nc.forwardedPrefix != "" || (nc.rewrite != nil && r.PathKind == routing.PathRegex) {
		f.Rewrite = &routing.Rewrite{Hostname: nc.upstreamVhost, ForwardedPrefix: nc.forwardedPrefix}
		if nc.rewrite != nil && r.PathKind == routing.PathRegex {
			f.Rewrite.Path = &routing.PathModifier{RegexTemplate: nc.rewrite}
		}
	}
	f.CORS = nc.cors
	if tls {
		// The header costs its routes the filtered path (a response edit
		// per HTTPS request, routing.Filters.HSTS): what ingress-nginx sends
		// by default, so the routes that had it keep it.
		f.HSTS = nc.hsts
	}
	f.LocationRewrite = nc.locationRewrite
	if f.Redirect != nil || f.Rewrite != nil || f.CORS != nil || f.HSTS != "" || f.LocationRewrite != nil {
		r.Filters = &f
	}
}

// extraRoutes are the routes app-root and from-to-www-redirect add for a
// rule host that the Ingress routes.
func (nc *nginxConfig) extraRoutes(src func(string) routing.Source, host string, backend *routing.Route) []*routing.Route {
	var out []*routing.Route
	if nc.appRoot != "" {
		root := nc.appRoot
		// nginx answers "/" with the redirect before anything else,
		// over plain HTTP too.
		out = append(out, &routing.Route{Source: src(ruleAppRoot), Host: host, PathKind: routing.PathExact, Path: "/",
			Backend: backend.Backend, Admission: nc.admission,
			Filters: &routing.Filters{Redirect: &routing.Redirect{Path: &routing.PathModifier{ReplaceFullPath: &root}, StatusCode: http302, DropQuery: true}}})
	}
	if nc.fromToWWW && host != "" && !strings.HasPrefix(host, "*") {
		other := "www." + host
		if rest, ok := strings.CutPrefix(host, "www."); ok {
			other = rest
		}
		out = append(out, &routing.Route{Source: src(ruleFromToWWW), Host: other, PathKind: routing.PathPrefix, Path: "/",
			Backend: backend.Backend,
			Filters: &routing.Filters{Redirect: &routing.Redirect{Hostname: host, StatusCode: 308}}})
	}
	return out
}

// nginxHosts applies ingress-nginx's host-wide rules to the routes of all
// owned Ingresses: on a host where one Ingress turns regex matching on,
// every Prefix path of every Ingress is matched as a regular expression
// (reported on the Ingresses that did not ask for it), and regex paths are
// tried longest first; the hosts from-to-www-redirect adds are left out
// where an Ingress routes them.
func (b *builder) nginxHosts(routes []*routing.Route, regexHosts map[string]ObjectRef) []*routing.Route {
	routed := make(map[string]bool)
	for _, r := range routes {
		if r.Source.Rule != ruleFromToWWW && !strings.HasPrefix(r.Source.Rule, ruleAlias) {
			routed[r.Host] = true
		}
	}
	out := routes[:0]
	var regex []int
	reported := make(map[string]bool)
	for _, r := range routes {
		if r.Source.Rule == ruleFromToWWW && routed[r.Host] {
			continue
		}
		if strings.HasPrefix(r.Source.Rule, ruleAlias) && routed[r.Host] {
			ref := ObjectRef{Kind: "Ingress", Namespace: r.Source.Namespace, Name: r.Source.Name}
			if k := ref.String() + "\x00" + r.Host; !reported[k] {
				reported[k] = true
				b.problems.add(ref, Warning, "NginxAliasConflict",
					"server-alias %q is a host another Ingress routes; the alias is left out (as ingress-nginx does)", r.Host)
			}
			continue
		}
		if by, ok := regexHosts[r.Host]; ok && r.PathKind == routing.PathPrefix && r.Source.Kind == "Ingress" &&
			r.Source.Rule != "default" && r.Source.Rule != ruleFromToWWW {
			ref := ObjectRef{Kind: "Ingress", Namespace: r.Source.Namespace, Name: r.Source.Name}
			if re, err := nginxPathRegexp(r.Path); err == nil {
				r.PathKind, r.PathRegexp = routing.PathRegex, re
				b.problems.add(ref, Warning, "NginxRegexHost",
					"path %q of host %q is matched as a case-insensitive regular expression prefix, because %s turns on regex matching for that host (as ingress-nginx does)", r.Path, r.Host, by)
			} else {
				b.problems.add(ref, Error, "NginxRegexHost",
					"path %q of host %q is not a regular expression, which %s makes every path of that host (%v); that path is not served", r.Path, r.Host, by, err)
				continue
			}
		}
		if r.PathKind == routing.PathRegex && r.Source.Kind == "Ingress" {
			regex = append(regex, len(out))
		}
		out = append(out, r)
	}
	// nginx tries regex locations in order; ingress-nginx writes them
	// longest path first.
	sorted := make([]*routing.Route, len(regex))
	for i, at := range regex {
		sorted[i] = out[at]
	}
	slices.SortStableFunc(sorted, func(a, b *routing.Route) int { return len(b.Path) - len(a.Path) })
	for i, at := range regex {
		out[at] = sorted[i]
	}
	return out
}
