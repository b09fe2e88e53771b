package snapshot

import "slices"

// This file is the ingress-nginx annotation table: one row per annotation
// with Portico's verdict and the peers', which nginx_annotations.go
// applies, docs/ingress-nginx.md lists (nginx_doc.go) and portico check
// prints.

// NginxPrefix starts every ingress-nginx annotation.
const NginxPrefix = "nginx.ingress.kubernetes.io/"

// NginxVerdict says how Portico serves an ingress-nginx annotation.
type NginxVerdict string

const (
	// NginxExact: served as ingress-nginx serves it.
	NginxExact NginxVerdict = "exact"
	// NginxApproximate: served, with the difference the note describes.
	NginxApproximate NginxVerdict = "approximate"
	// NginxUnsupported: ignored; the note says what Portico does instead.
	NginxUnsupported NginxVerdict = "unsupported"
	// NginxNeverExecuted: raw nginx configuration, which Portico never
	// runs (the class of CVE-2025-1974).
	NginxNeverExecuted NginxVerdict = "never-executed"
	// NginxUnknown: not an ingress-nginx annotation Portico knows of.
	NginxUnknown NginxVerdict = "unknown"
)

// NginxAnnotation is one row of the annotation table.
type NginxAnnotation struct {
	// Name is the annotation without NginxPrefix.
	Name    string
	Verdict NginxVerdict
	// Note says, for an approximate annotation, how Portico differs; for
	// an unsupported or never-executed one, what Portico does instead.
	Note string
	// Traefik and Ingress2Gateway are the peers' verdicts, for the
	// comparison in docs/ingress-nginx.md: "yes", "partial" or "no".
	Traefik, Ingress2Gateway string
}

const (
	snippetNote         = "Portico runs no nginx configuration; the Ingress is served without it"
	h2cTimeoutNote      = "bounds each read (the wait for the response header included) or write as nginx does, to HTTP/1.1 backends; to HTTP/2 (GRPC, GRPCS) backends the read timeout bounds the wait for the response header only and writes keep --upstream-send-timeout"
	noSubsetNote        = "ignored: upstream-hash-by hashes each key onto one endpoint of all the ready ones, not onto a subset"
	affinityNote        = "the cookie's value is Portico's own, opaque (a random key hashed onto the endpoints, or in persistent mode a keyed hash of the endpoint, --session-cookie-key-file), so sessions ingress-nginx pinned are pinned anew once; when its endpoint has left the Service the session moves and, in persistent mode, the cookie is re-issued"
	changeOnFailureNote = "the cookie is re-issued when its endpoint has left the Service's ready endpoints; a request whose connect fails is sent to the next endpoint, and the cookie keeps naming the failed one, as with false"
	hashByNote          = "hashed by rendezvous over the ready endpoints (adding one moves about 1/n of the keys); the nginx variables read are $request_uri, $uri, $args, $query_string, $host, $remote_addr, $scheme, $request_method, $http_*, $cookie_* and $arg_*, another is refused (reported) and requests are spread round-robin"
	noRateLimitNote     = "ignored: requests are not rate limited"
	noMetricsNote       = "ignored: Portico's own metrics and access log serve every route"
	noBufferNote        = "ignored: Portico streams request and response bodies"
	authTLSNote         = "a CA Secret that is missing, lacks ca.crt, holds no PEM certificate or has an unreadable ca.crl refuses the Ingress's hosts with 403 where ingress-nginx serves them unverified; a plain-HTTP request to a host with verify-client on gets 400 where nginx serves it"
	bodySizeNote        = "a declared Content-Length over the limit gets 413 as in nginx; a chunked body gets 413 when it passes the limit, but the backend has seen its start, where nginx buffers it first"
)

// nginxTable is every ingress-nginx annotation of the final releases
// (controller v1.13 to v1.15), in the order of its annotations guide.
var nginxTable = []NginxAnnotation{
	// Paths and rewrites.
	{Name: "app-root", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "rewrite-target", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "use-regex", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "x-forwarded-prefix", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "enable-rewrite-log", Verdict: NginxUnsupported, Note: "ignored: Portico logs no rewrites; the access log shows the request as received", Traefik: "no", Ingress2Gateway: "no"},
	// Redirects.
	{Name: "ssl-redirect", Verdict: NginxExact, Traefik: "partial", Ingress2Gateway: "yes"},
	{Name: "force-ssl-redirect", Verdict: NginxExact, Traefik: "partial", Ingress2Gateway: "yes"},
	{Name: "preserve-trailing-slash", Verdict: NginxApproximate, Note: "Portico's HTTPS redirects always keep the request URI as sent, trailing slash included", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "permanent-redirect", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "partial"},
	{Name: "permanent-redirect-code", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "temporal-redirect", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "partial"},
	{Name: "temporal-redirect-code", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "from-to-www-redirect", Verdict: NginxApproximate, Note: "the other host (with or without www.) answers 308 to the Ingress's host only when no Ingress routes it; wildcard hosts get none", Traefik: "partial", Ingress2Gateway: "no"},
	// Backend.
	{Name: "upstream-vhost", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "backend-protocol", Verdict: NginxApproximate, Note: "HTTP and GRPC (HTTP/2 over cleartext, as GRPCRoutes) are served exactly; HTTPS and GRPCS (HTTP/2 by ALPN) are spoken over TLS: with proxy-ssl-secret (and its proxy-ssl-* options) or a BackendTLSPolicy on the Service as they say, else as ingress-nginx does by default, the backend's certificate not checked and no SNI sent; AUTO_HTTP speaks HTTP/1.1; FCGI is not spoken", Traefik: "partial", Ingress2Gateway: "yes"},
	{Name: "service-upstream", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "load-balance", Verdict: NginxApproximate, Note: "round_robin is what Portico does; ewma and the others are served round-robin too", Traefik: "partial", Ingress2Gateway: "no"},
	{Name: "upstream-hash-by", Verdict: NginxApproximate, Note: hashByNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "upstream-hash-by-subset", Verdict: NginxUnsupported, Note: noSubsetNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "upstream-hash-by-subset-size", Verdict: NginxUnsupported, Note: noSubsetNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-http-version", Verdict: NginxApproximate, Note: "Portico speaks HTTP/1.1 to backends (HTTP/2 for backend-protocol GRPC and GRPCS), as ingress-nginx's default 1.1; 1.0 is not spoken", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "connection-proxy-header", Verdict: NginxUnsupported, Note: "ignored: Portico manages backend connections itself and keeps them alive", Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "custom-headers", Verdict: NginxApproximate, Note: customHeadersNote, Traefik: "partial", Ingress2Gateway: "yes"},
	{Name: "default-backend", Verdict: NginxApproximate, Note: "serves custom-http-errors' error pages (from the Service's first port); a backend without ready endpoints still answers 503 (or goes to --fallback-service with portico.dev/fallback-on-no-endpoints) where ingress-nginx sends its requests to this Service", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "custom-http-errors", Verdict: NginxApproximate, Note: "the client gets the error page of default-backend with that service's own status, as nginx passes it; without default-backend, the page of --fallback-service (the legacy site, not an error service) with the listed status, so an error never reaches the client as a 200 (with neither, the response passes unchanged); the error backend gets GET / with ingress-nginx's X-Code, X-Format, X-Original-URI, X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port and X-Request-ID, none of the client's other headers; the original body is not read (its backend connection is closed)", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "disable-proxy-intercept-errors", Verdict: NginxUnsupported, Note: "ignored: Portico intercepts backend errors only for custom-http-errors, which it always applies", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-redirect-from", Verdict: NginxApproximate, Note: proxyRedirectNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-redirect-to", Verdict: NginxApproximate, Note: proxyRedirectNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-cookie-domain", Verdict: NginxUnsupported, Note: "ignored: Set-Cookie headers from the backend are passed unchanged", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-cookie-path", Verdict: NginxUnsupported, Note: "ignored: Set-Cookie headers from the backend are passed unchanged", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "server-alias", Verdict: NginxApproximate, Note: "an Ingress with several rule hosts gets the aliases on its first one only; an alias another Ingress routes as a host is left out (reported); nginx regex names (~...) are refused", Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "mirror-target", Verdict: NginxApproximate, Note: mirrorTargetNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "mirror-request-body", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "mirror-host", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	// CORS.
	{Name: "enable-cors", Verdict: NginxApproximate, Note: "Portico echoes an allowed Origin instead of answering *, sends the CORS headers only to allowed origins, and answers preflights (OPTIONS with Access-Control-Request-Method) itself", Traefik: "partial", Ingress2Gateway: "yes"},
	{Name: "cors-allow-origin", Verdict: NginxApproximate, Note: "origins must name their scheme; an allowed Origin is echoed", Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "cors-allow-methods", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "cors-allow-headers", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "cors-expose-headers", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "cors-allow-credentials", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "cors-max-age", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	// Limits.
	{Name: "proxy-body-size", Verdict: NginxApproximate, Note: bodySizeNote + "; without the annotation the --nginx-configmap ConfigMap's proxy-body-size applies (ingress-nginx's default 1m when it has none), and without that flag Portico sets no limit", Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "client-body-buffer-size", Verdict: NginxUnsupported, Note: noBufferNote, Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "proxy-connect-timeout", Verdict: NginxApproximate, Note: "bounds each connect (and TLS handshake) to the Ingress's backends in place of --upstream-dial-timeout; a connect that times out is answered 502, as every failed connect in Portico, where nginx answers 504", Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "proxy-read-timeout", Verdict: NginxApproximate, Note: h2cTimeoutNote, Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "proxy-send-timeout", Verdict: NginxApproximate, Note: h2cTimeoutNote, Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "proxy-next-upstream", Verdict: NginxApproximate, Note: nextUpstreamNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-next-upstream-timeout", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-next-upstream-tries", Verdict: NginxApproximate, Note: nextTriesNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-request-buffering", Verdict: NginxApproximate, Note: "Portico streams request bodies to the backend, as nginx with off; on (ingress-nginx's default) is not honoured", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-buffering", Verdict: NginxApproximate, Note: "Portico streams responses to the client, as nginx with off (ingress-nginx's default); on is not honoured", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-buffers-number", Verdict: NginxUnsupported, Note: noBufferNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-buffer-size", Verdict: NginxUnsupported, Note: noBufferNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-max-temp-file-size", Verdict: NginxUnsupported, Note: noBufferNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "limit-connections", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "limit-rps", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "limit-rpm", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "limit-burst-multiplier", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "limit-rate", Verdict: NginxUnsupported, Note: "ignored: responses are sent at full speed", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "limit-rate-after", Verdict: NginxUnsupported, Note: "ignored: responses are sent at full speed", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "limit-whitelist", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "limit-allowlist", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "global-rate-limit", Verdict: NginxUnsupported, Note: noRateLimitNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "global-rate-limit-window", Verdict: NginxUnsupported, Note: noRateLimitNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "global-rate-limit-key", Verdict: NginxUnsupported, Note: noRateLimitNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "global-rate-limit-ignored-cidrs", Verdict: NginxUnsupported, Note: noRateLimitNote, Traefik: "no", Ingress2Gateway: "no"},
	// Client address ranges.
	{Name: "whitelist-source-range", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "allowlist-source-range", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "denylist-source-range", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	// Authentication.
	{Name: "auth-type", Verdict: NginxApproximate, Note: "basic is served as in ingress-nginx, the Authorization header cleared before the backend as its template does; digest is not, and an Ingress asking for it is answered 503 (never served open)", Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "auth-secret", Verdict: NginxApproximate, Note: "htpasswd hashes bcrypt ($2y$, $2a$, $2b$), MD5-crypt ($apr1$, $1$), {SHA}, {SSHA} and {PLAIN} are verified; a DES crypt or SHA-crypt ($5$, $6$) line is reported and its user refused; a Secret in another namespace is refused; a missing Secret, a missing auth key or a line that is not user:hash answers 503, as ingress-nginx denies the location", Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "auth-secret-type", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "auth-realm", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "auth-url", Verdict: NginxApproximate, Note: "the subrequest carries the client's headers with X-Original-URL, X-Original-Method, X-Auth-Request-Redirect, X-Forwarded-Host, X-Forwarded-Proto and X-Real-IP, but no body; of nginx variables only $host, $scheme, $request_uri and $escaped_request_uri are expanded; answers are not cached; --external-auth-timeout bounds it", Traefik: "partial", Ingress2Gateway: "yes"},
	{Name: "auth-signin", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "auth-signin-redirect-param", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-method", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "auth-response-headers", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "auth-request-redirect", Verdict: NginxApproximate, Note: "sent as X-Auth-Request-Redirect to the auth-url service; of nginx's variables only $host, $scheme, $request_uri and $escaped_request_uri are expanded, as in auth-url, and a value with another is refused (reported)", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-cache-key", Verdict: NginxUnsupported, Note: "ignored: every request asks the auth-url service; no answer is cached", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-cache-duration", Verdict: NginxUnsupported, Note: "ignored: every request asks the auth-url service; no answer is cached", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-keepalive", Verdict: NginxUnsupported, Note: "ignored: the auth-url subrequests use Portico's own keep-alive pool (64 idle connections per service, 90 s)", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-keepalive-share-vars", Verdict: NginxUnsupported, Note: "ignored: the auth-url subrequests use Portico's own keep-alive pool (64 idle connections per service, 90 s)", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-keepalive-requests", Verdict: NginxUnsupported, Note: "ignored: the auth-url subrequests use Portico's own keep-alive pool (64 idle connections per service, 90 s)", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-keepalive-timeout", Verdict: NginxUnsupported, Note: "ignored: the auth-url subrequests use Portico's own keep-alive pool (64 idle connections per service, 90 s)", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-proxy-set-headers", Verdict: NginxUnsupported, Note: "ignored: the auth-url service gets the client's headers and X-Original-URL, X-Original-Method, X-Auth-Request-Redirect, X-Forwarded-Host, X-Forwarded-Proto and X-Real-IP, not headers from a ConfigMap", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-always-set-cookie", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "enable-global-auth", Verdict: NginxUnsupported, Note: "ignored: Portico has no global auth-url; an Ingress's own auth-url applies", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "satisfy", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-snippet", Verdict: NginxNeverExecuted, Note: snippetNote, Traefik: "no", Ingress2Gateway: "no"},
	// Client and backend certificates.
	{Name: "auth-tls-secret", Verdict: NginxApproximate, Note: authTLSNote, Traefik: "partial", Ingress2Gateway: "no"},
	{Name: "auth-tls-verify-client", Verdict: NginxApproximate, Note: "the FAILED: reasons in ssl-client-verify are OpenSSL's words for the common failures, \"certificate verify failed\" for the rest", Traefik: "partial", Ingress2Gateway: "no"},
	{Name: "auth-tls-verify-depth", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-tls-error-page", Verdict: NginxApproximate, Note: "an absolute http or https URL is answered 302 as nginx's error_page does; a local path (an nginx internal redirect) is refused and 400 answered", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "auth-tls-pass-certificate-to-upstream", Verdict: NginxApproximate, Note: "the certificate is sent URL-escaped in ssl-client-cert as nginx sends it; without the annotation a client's own ssl-client-cert header is removed, where nginx passes it on", Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "auth-tls-match-cn", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-ssl-secret", Verdict: NginxApproximate, Note: "with backend-protocol HTTPS or GRPCS, the Secret (namespace/name, in the Ingress's namespace, type kubernetes.io/tls or Opaque) gives ca.crt to verify the backends with and tls.crt/tls.key as the client certificate presented to them; the other proxy-ssl-* annotations apply only with it, as in ingress-nginx; a Secret that is missing or unusable makes the backends answer 502 (ingress-nginx denies the locations with 503); a BackendTLSPolicy targeting the Service takes precedence", Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "proxy-ssl-verify", Verdict: NginxApproximate, Note: "off (the default, as ingress-nginx) encrypts without verifying; on verifies the chain against the Secret's ca.crt and the name (proxy-ssl-name, else <service>.<namespace>.svc where nginx checks the name upstream_balancer, which no certificate carries); on with a Secret without ca.crt fails the backends (502) where nginx silently does not verify", Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "proxy-ssl-verify-depth", Verdict: NginxApproximate, Note: "at most that many intermediate CAs between the backend's certificate and a ca.crt root (default 1, 0 read as 1 as ingress-nginx does), checked on the chains crypto/x509 builds rather than OpenSSL's", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-ssl-name", Verdict: NginxApproximate, Note: "the name the backend's certificate is verified for and, with proxy-ssl-server-name on, sent as SNI; unset, <service>.<namespace>.svc is used where nginx uses upstream_balancer", Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "proxy-ssl-server-name", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "proxy-ssl-ciphers", Verdict: NginxApproximate, Note: "the OpenSSL names of the forward-secret TLS 1.2 suites Go offers (ECDHE-{ECDSA,RSA}-{AES128-GCM-SHA256,AES256-GCM-SHA384,CHACHA20-POLY1305,AES128-SHA,AES256-SHA}) are offered in Go's order; a family (DEFAULT, HIGH, ALL, ECDHE, AESGCM, CHACHA20) means Go's defaults; exclusions (!x), other names and TLS 1.3 suites are not applied and are reported", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "proxy-ssl-protocols", Verdict: NginxApproximate, Note: "TLSv1.2 and TLSv1.3 bound the versions offered; TLSv1, TLSv1.1 and SSL are never spoken to backends; unset, TLS 1.2 and 1.3 are offered where ingress-nginx offers TLS 1.2 only", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "ssl-passthrough", Verdict: NginxApproximate, Note: "TLS connections on the HTTPS port whose SNI names a host of the Ingress reach the backend of the rule's path / (else spec.defaultBackend) unterminated, without --enable-ssl-passthrough, which Portico does not need; its endpoints are dialled where ingress-nginx dials the Service's cluster IP; a rule without / takes its first path's backend where ingress-nginx takes its default backend; a wildcard host passes one label through where ingress-nginx matches names exactly; only true and false are read; no other annotation applies to these connections, and plain HTTP and other SNIs are served by the rules as before", Traefik: "partial", Ingress2Gateway: "yes"},
	{Name: "ssl-ciphers", Verdict: NginxUnsupported, Note: "ignored: Portico's TLS settings (--tls-legacy-ciphers) apply to every host", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "ssl-prefer-server-ciphers", Verdict: NginxUnsupported, Note: "ignored: Portico's TLS settings apply to every host", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "http2-push-preload", Verdict: NginxUnsupported, Note: "ignored: HTTP/2 server push is not sent (browsers dropped it)", Traefik: "no", Ingress2Gateway: "no"},
	// Canary.
	{Name: "canary", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "canary-by-header", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "canary-by-header-value", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "canary-by-header-pattern", Verdict: NginxApproximate, Note: "the pattern is RE2, not PCRE: look-arounds and back-references are refused (and reported)", Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "canary-by-cookie", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "canary-weight", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "canary-weight-total", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "yes"},
	// Session affinity.
	{Name: "affinity", Verdict: NginxApproximate, Note: affinityNote, Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "affinity-mode", Verdict: NginxExact, Traefik: "partial", Ingress2Gateway: "no"},
	{Name: "affinity-canary-behavior", Verdict: NginxUnsupported, Note: "ignored: the canary is chosen for each request (by header, cookie or weight) before the session cookie picks an endpoint of the chosen Service, so a session is not held on the canary", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "session-cookie-name", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "yes"},
	{Name: "session-cookie-path", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "session-cookie-domain", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "session-cookie-secure", Verdict: NginxApproximate, Note: "true marks every cookie Secure; false or unset marks those issued over HTTPS, as ingress-nginx does when unset", Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "session-cookie-samesite", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "session-cookie-conditional-samesite-none", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "session-cookie-max-age", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "session-cookie-expires", Verdict: NginxExact, Traefik: "yes", Ingress2Gateway: "no"},
	{Name: "session-cookie-change-on-failure", Verdict: NginxApproximate, Note: changeOnFailureNote, Traefik: "no", Ingress2Gateway: "no"},
	// Observability and modules.
	{Name: "enable-access-log", Verdict: NginxExact, Traefik: "no", Ingress2Gateway: "yes"},
	{Name: "enable-opentelemetry", Verdict: NginxUnsupported, Note: noMetricsNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "opentelemetry-trust-incoming-span", Verdict: NginxUnsupported, Note: noMetricsNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "enable-opentracing", Verdict: NginxUnsupported, Note: noMetricsNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "opentracing-trust-incoming-span", Verdict: NginxUnsupported, Note: noMetricsNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "enable-influxdb", Verdict: NginxUnsupported, Note: noMetricsNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "influxdb-measurement", Verdict: NginxUnsupported, Note: noMetricsNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "influxdb-port", Verdict: NginxUnsupported, Note: noMetricsNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "influxdb-host", Verdict: NginxUnsupported, Note: noMetricsNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "influxdb-server-name", Verdict: NginxUnsupported, Note: noMetricsNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "enable-modsecurity", Verdict: NginxUnsupported, Note: "ignored: Portico has no web application firewall; requests are not inspected", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "enable-owasp-core-rules", Verdict: NginxUnsupported, Note: "ignored: Portico has no web application firewall; requests are not inspected", Traefik: "no", Ingress2Gateway: "no"},
	{Name: "modsecurity-transaction-id", Verdict: NginxUnsupported, Note: "ignored: Portico has no web application firewall", Traefik: "no", Ingress2Gateway: "no"},
	// Snippets: raw nginx configuration.
	{Name: "configuration-snippet", Verdict: NginxNeverExecuted, Note: snippetNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "server-snippet", Verdict: NginxNeverExecuted, Note: snippetNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "stream-snippet", Verdict: NginxNeverExecuted, Note: snippetNote, Traefik: "no", Ingress2Gateway: "no"},
	{Name: "modsecurity-snippet", Verdict: NginxNeverExecuted, Note: snippetNote, Traefik: "no", Ingress2Gateway: "no"},
}

var nginxByName = func() map[string]*NginxAnnotation {
	m := make(map[string]*NginxAnnotation, len(nginxTable))
	for i := range nginxTable {
		m[nginxTable[i].Name] = &nginxTable[i]
	}
	return m
}()

// NginxAnnotations returns a copy of the annotation table.
func NginxAnnotations() []NginxAnnotation { return slices.Clone(nginxTable) }
