package snapshot

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"portico.dev/portico/routing"
)

// This file reads ingress-nginx's custom-headers annotation: it names a
// ConfigMap of the Ingress's namespace whose keys and values are headers
// set on the responses of the Ingress's routes, as a ResponseHeaderModifier
// does. With --nginx-configmap, only the headers its
// global-allowed-response-headers key lists are set, as ingress-nginx
// (1.10 and later) allows; without it, Portico allows any header but
// those that frame or route the response.

const customHeadersNote = "the ConfigMap's headers are set on the backend's responses; the answers Portico makes itself (redirects, 403, 413, 503) carry none, where nginx sets them on every response; a header ingress-nginx would refuse (a missing ConfigMap, a name or value it does not take, one global-allowed-response-headers does not list) leaves that header out and is reported, where ingress-nginx answers the Ingress's requests 503; without --nginx-configmap any header but the framing and hop-by-hop ones is allowed"

// customHeadersForbidden are the response headers a ConfigMap never sets:
// they frame the message or belong to one connection, and the Set-Cookie
// of another Ingress's session would be set here too.
var customHeadersForbidden = []string{"Connection", "Content-Length", "Keep-Alive", "Proxy-Connection", "Set-Cookie", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// NginxCustomHeadersConfigMap returns the ConfigMap an Ingress's
// custom-headers names, for sources that fetch the ConfigMaps Ingresses
// name; false when it names none Portico reads.
func NginxCustomHeadersConfigMap(ing *networkingv1.Ingress) (types.NamespacedName, bool) {
	return nginxAnnotationRef(ing, "custom-headers", nginxConfigMapRef)
}

// nginxConfigMapRef reads a ConfigMap name, or namespace/name of the
// Ingress's own namespace.
func nginxConfigMapRef(namespace, v string) (types.NamespacedName, string) {
	return nginxObjectRef("ConfigMap", "which ingress-nginx does not allow either", namespace, v)
}

// applyCustomHeaders reads custom-headers; the builder reads the ConfigMap.
func (nc *nginxConfig) applyCustomHeaders(f NginxFinding, name, raw, v string, get func(string) (string, bool)) (NginxFinding, bool) {
	if name != "custom-headers" {
		return f, false
	}
	k, msg := nginxConfigMapRef(nc.namespace, v)
	if msg != "" {
		return f.invalidf("%s; no header is added", msg), true
	}
	nc.customHeaders = &k
	return f, true
}

// nginxCustomHeaders sets the headers of the ConfigMap cm names on the
// responses of the Ingress ref's routes, reporting each header left out.
func (b *builder) nginxCustomHeaders(ref ObjectRef, cm *types.NamespacedName, routes []*routing.Route) {
	if cm == nil {
		return
	}
	annotation := NginxPrefix + "custom-headers"
	found := b.configMap(*cm)
	if found == nil {
		b.problems.add(ref, Error, "InvalidNginxAnnotation", "annotation %s: ConfigMap %s not found; no header is added", annotation, cm)
		return
	}
	var allowed []string
	if d := b.nginxDefaults; d != nil {
		allowed = d.allowedResponseHeaders
	}
	var set []routing.HeaderValue
	for _, name := range slices.Sorted(maps.Keys(found.Data)) {
		value := strings.TrimSpace(found.Data[name])
		canonical := http.CanonicalHeaderKey(name)
		var why string
		switch {
		case !validHeaderName(name):
			why = "is not a header name"
		case !validFieldValue(value) || value == "":
			why = "has a value that is not a header value"
		case slices.Contains(customHeadersForbidden, canonical):
			why = "frames or routes the response, which a ConfigMap never sets"
		case b.nginxDefaults != nil && !slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, name) }):
			why = "is not listed in global-allowed-response-headers of the --nginx-configmap ConfigMap"
		}
		if why != "" {
			b.problems.add(ref, Error, "InvalidNginxAnnotation", "annotation %s: header %q of ConfigMap %s %s; it is not added", annotation, name, cm, why)
			continue
		}
		set = append(set, routing.HeaderValue{Name: canonical, Value: value})
	}
	if len(set) == 0 {
		return
	}
	for _, r := range routes {
		f := routing.Filters{}
		if r.Filters != nil {
			f = *r.Filters
		}
		rh := routing.HeaderModifier{}
		if f.ResponseHeaders != nil {
			rh = *f.ResponseHeaders
		}
		rh.Set = append(rh.Set[:len(rh.Set):len(rh.Set)], set...)
		f.ResponseHeaders = &rh
		r.Filters = &f
	}
}
