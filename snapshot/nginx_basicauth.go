package snapshot

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"portico.dev/portico/routing"
)

// This file holds ingress-nginx's basic authentication (auth-type: basic,
// auth-secret, auth-secret-type, auth-realm): the annotations are read
// with the others (nginx_annotations.go), and the Secret they name is read
// here, by the builder, which has the Secrets. An Ingress that asks for
// authentication Portico cannot check is answered 503, never served open:
// ingress-nginx denies such a location with 503 too (a Secret without an
// auth key, a type other than basic or digest, a Secret it cannot read).

// nginxBasicAuth is what the basic authentication annotations ask for.
type nginxBasicAuth struct {
	typ    string
	secret types.NamespacedName
	// authMap: auth-secret-type auth-map (each key a user, each value a
	// hash) instead of auth-file (the key auth holds htpasswd lines).
	authMap bool
	realm   string
	// unavailable says why no request can be let in: the routes answer
	// 503. It was reported with the annotation that caused it.
	unavailable bool
}

// nginxAuthKey is the key of an auth-file Secret that holds the htpasswd
// lines, as in ingress-nginx.
const nginxAuthKey = "auth"

func (nc *nginxConfig) basicRules() *nginxBasicAuth {
	if nc.basic == nil {
		nc.basic = &nginxBasicAuth{}
	}
	return nc.basic
}

// applyBasicAuth reads the basic authentication annotations.
func (nc *nginxConfig) applyBasicAuth(f NginxFinding, name, raw, v string, _ func(string) (string, bool)) (NginxFinding, bool) {
	const denied = "every request to this Ingress is answered 503"
	switch name {
	case "auth-type":
		ba := nc.basicRules()
		ba.typ = v
		switch v {
		case "basic":
			f.Verdict, f.Note = NginxExact, ""
		case "digest":
			ba.unavailable = true
			return f.invalidf("digest authentication is not served by Portico; %s (use basic)", denied), true
		default:
			ba.unavailable = true
			return f.invalidf("%q is not basic or digest; %s", raw, denied), true
		}
	case "auth-secret":
		ba := nc.basicRules()
		sk, msg := nginxSecretRef(nc.namespace, v)
		if msg != "" {
			ba.unavailable = true
			return f.invalidf("%s; %s", msg, denied), true
		}
		ba.secret = sk
		// The schemes Portico does not verify are reported line by line
		// when a Secret holds one (basicAuth).
		f.Verdict, f.Note = NginxExact, ""
	case "auth-secret-type":
		switch v {
		case "auth-file", "":
		case "auth-map":
			nc.basicRules().authMap = true
		default:
			nc.basicRules().unavailable = true
			return f.invalidf("%q is not auth-file or auth-map; %s", raw, denied), true
		}
	case "auth-realm":
		if !validFieldValue(v) {
			return f.invalidf("%q holds control characters; the realm is left empty", raw), true
		}
		nc.basicRules().realm = v
	default:
		return f, false
	}
	return f, true
}

// nginxSecretRef reads an auth-secret: "name" or "namespace/name". A
// Secret of another namespace is refused: an Ingress must not let its
// author use (and so probe) the credentials of a namespace they may not
// read, and ingress-nginx refuses it too unless allow-cross-namespace-
// resources is on.
func nginxSecretRef(namespace, v string) (types.NamespacedName, string) {
	return nginxObjectRef("Secret", "which Portico does not read", namespace, v)
}

// nginxObjectRef reads a reference to an object of kind: "name" or
// "namespace/name" of the Ingress's own namespace; why says what another
// namespace would be.
func nginxObjectRef(kind, why, namespace, v string) (types.NamespacedName, string) {
	ns, name, cut := strings.Cut(v, "/")
	if !cut {
		ns, name = namespace, v
	}
	if len(validation.IsDNS1123Subdomain(name)) > 0 || len(validation.IsDNS1123Label(ns)) > 0 {
		return types.NamespacedName{}, fmt.Sprintf("%q is not a %s name or namespace/name", v, kind)
	}
	if ns != namespace {
		return types.NamespacedName{}, fmt.Sprintf("%s %s/%s is in another namespace than the Ingress, %s", kind, ns, name, why)
	}
	return key(ns, name), ""
}

// nginxAnnotationRef returns the object an Ingress's annotation names, read
// by ref, for sources that fetch only the objects they are asked for.
func nginxAnnotationRef(ing *networkingv1.Ingress, annotation string, ref func(namespace, v string) (types.NamespacedName, string)) (types.NamespacedName, bool) {
	v, ok := ing.Annotations[NginxPrefix+annotation]
	if !ok {
		return types.NamespacedName{}, false
	}
	k, msg := ref(ing.Namespace, strings.TrimSpace(v))
	return k, msg == ""
}

// finishBasicAuth drops options given without auth-type, which mean
// nothing alone (ingress-nginx ignores them too), and denies an Ingress
// that asks for authentication without a Secret.
func (nc *nginxConfig) finishBasicAuth(findings []NginxFinding) []NginxFinding {
	ba := nc.basic
	if ba == nil {
		return nil
	}
	if ba.typ == "" {
		nc.basic = nil
		for i, f := range findings {
			if f.Annotation == NginxPrefix+"auth-secret" && f.Invalid == "" {
				// Served open, as ingress-nginx serves it: said aloud,
				// since the author meant something.
				findings[i].Verdict, findings[i].Note = NginxUnsupported, "ignored without auth-type (as in ingress-nginx): requests are served without authentication"
			}
		}
		return nil
	}
	if ba.secret.Name == "" && !ba.unavailable {
		ba.unavailable = true
		return []NginxFinding{{Annotation: NginxPrefix + "auth-type", Verdict: NginxExact,
			Invalid: "no auth-secret names the users' Secret; every request to this Ingress is answered 503"}}
	}
	return nil
}

// NginxAuthSecret returns the Secret an Ingress's auth-secret names, for
// sources that fetch only the Secrets they are asked for.
func NginxAuthSecret(ing *networkingv1.Ingress) (types.NamespacedName, bool) {
	return nginxAnnotationRef(ing, "auth-secret", nginxSecretRef)
}

// isAuthSecret reports whether s can hold basic authentication users:
// ingress-nginx's examples create them with kubectl create secret generic.
func isAuthSecret(s *corev1.Secret) bool {
	return s.Type == corev1.SecretTypeOpaque || s.Type == ""
}

// basicAuth builds the check an Ingress's annotations ask for, reporting
// on the Ingress what is wrong with its Secret.
func (b *builder) basicAuth(ref ObjectRef, spec *nginxBasicAuth) *routing.BasicAuth {
	if spec.unavailable {
		return &routing.BasicAuth{Realm: spec.realm, Unavailable: true}
	}
	annotation := NginxPrefix + "auth-secret"
	fail := func(format string, args ...any) *routing.BasicAuth {
		b.problems.add(ref, Error, "InvalidNginxAnnotation", "annotation %s: %s; every request to this Ingress is answered 503", annotation, fmt.Sprintf(format, args...))
		return &routing.BasicAuth{Realm: spec.realm, Unavailable: true}
	}
	secret := b.authSecrets[spec.secret]
	if secret == nil {
		return fail("Secret %s not found (or not of type Opaque)", spec.secret)
	}
	var users map[string]routing.Credential
	var unsupported []string
	var err error
	if spec.authMap {
		data := make(map[string]string, len(secret.Data))
		for k, v := range secret.Data {
			data[k] = string(v)
		}
		users, unsupported, err = routing.ParseAuthMap(data)
		if err == nil && len(data) == 0 {
			return fail("Secret %s holds no users", spec.secret)
		}
	} else {
		raw, ok := secret.Data[nginxAuthKey]
		if !ok {
			return fail("Secret %s has no key %q with the htpasswd lines", spec.secret, nginxAuthKey)
		}
		users, unsupported, err = routing.ParseHtpasswd(string(raw))
	}
	if err != nil {
		return fail("Secret %s: %v", spec.secret, err)
	}
	slices.Sort(unsupported)
	for _, msg := range unsupported {
		b.problems.add(ref, Warning, "InvalidNginxAnnotation", "annotation %s: Secret %s: %s", annotation, spec.secret, msg)
	}
	return routing.NewBasicAuth(spec.realm, users)
}
