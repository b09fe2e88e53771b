package snapshot

import (
	"net"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"portico.dev/portico/routing"
)

// This file reads ingress-nginx's mirror-target, mirror-request-body and
// mirror-host onto the RequestMirror model HTTPRoute filters use. A target
// must name a Service of the Ingress's own namespace: the annotation is
// written by whoever may create Ingresses there, and a copy of every
// request (its credentials included) sent to a URL of their choice would
// make the gateway an open relay into or out of the cluster
// (docs/security.md).

const (
	mirrorTargetNote  = "each request is copied to the Service of the Ingress's namespace the target names (http://<service>[.<namespace>[.svc[.cluster.local]]][:<port>]$request_uri), with the URI as forwarded (after rewrite-target) where nginx's $request_uri is the client's; a request whose body is over --mirror-body-limit is not mirrored (with mirror-request-body off it is, without its body), and mirrors beyond --max-mirrors-in-flight are dropped; any other target (another namespace, an outside host or address, https, a fixed path) is refused and reported"
	mirrorOutsideNote = "refused: a mirror target must be a Service of the Ingress's namespace, http://<service>[.<namespace>[.svc[.cluster.local]]][:<port>]$request_uri; anyone who can write Ingresses here could otherwise have the gateway send copies of requests, credentials included, to any address (ingress-nginx allows any URL); requests are not mirrored"
)

// nginxMirror is what the mirror-* annotations ask for; the builder
// resolves the Service.
type nginxMirror struct {
	service string
	port    int32
	// host is the copies' Host: mirror-host, else the target's host name.
	host   string
	noBody bool
}

// applyMirror reads mirror-target, mirror-request-body and mirror-host.
func (nc *nginxConfig) applyMirror(f NginxFinding, name, raw, v string, get func(string) (string, bool)) (NginxFinding, bool) {
	switch name {
	case "mirror-target":
		if v == "" {
			return f, true
		}
		m, ok, msg := parseMirrorTarget(v, nc.namespace)
		if msg != "" {
			return f.invalidf("%q %s; requests are not mirrored", raw, msg), true
		}
		if !ok {
			f.Verdict, f.Note = NginxUnsupported, mirrorOutsideNote
			return f, true
		}
		if h, set := get("mirror-host"); set && validMirrorHost(h) {
			m.host = h
		}
		if b, set := get("mirror-request-body"); set && b == "off" {
			m.noBody = true
		}
		nc.mirror = m
	case "mirror-request-body":
		if v != "on" && v != "off" {
			return f.invalidf("%q is not on or off; the body is mirrored", raw), true
		}
	case "mirror-host":
		if !validMirrorHost(v) {
			return f.invalidf("%q is not a host name; the copies carry the target's host", raw), true
		}
	default:
		return f, false
	}
	return f, true
}

// parseMirrorTarget reads a mirror-target. ok is false for a well-formed
// target that is not a Service of namespace; msg says why a value is not
// one Portico reads at all.
func parseMirrorTarget(v, namespace string) (m *nginxMirror, ok bool, msg string) {
	if !validFieldValue(v) || strings.ContainsAny(v, " \t") {
		return nil, false, "is not a URL"
	}
	scheme, rest, found := strings.Cut(v, "://")
	if !found || (scheme != "http" && scheme != "https") {
		return nil, false, "is not an http URL"
	}
	hostport, uri, found := strings.Cut(rest, "$")
	if !found || uri != "request_uri" || scheme != "http" || strings.ContainsAny(hostport, "/?#@") {
		return nil, false, ""
	}
	host, port := strings.ToLower(hostport), "80"
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = strings.ToLower(h), p
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return nil, false, "has no valid port"
	}
	labels := strings.Split(host, ".")
	switch {
	case len(labels) == 1:
	case len(labels) == 2 && labels[1] == namespace:
	case len(labels) == 3 && labels[1] == namespace && labels[2] == "svc":
	case len(labels) == 5 && labels[1] == namespace && labels[2] == "svc" && labels[3] == "cluster" && labels[4] == "local":
	default:
		return nil, false, ""
	}
	if len(validation.IsDNS1035Label(labels[0])) > 0 {
		return nil, false, ""
	}
	return &nginxMirror{service: labels[0], port: int32(n), host: host}, true, ""
}

// nginxMirrors gives every route of the Ingress ref its mirror. A Service
// that does not exist or lacks the port is reported and nothing is
// mirrored.
func (b *builder) nginxMirrors(ref ObjectRef, m *nginxMirror, routes []*routing.Route) {
	if m == nil {
		return
	}
	rb := b.backends.resolve(servicePortRef{Service: key(ref.Namespace, m.service), Number: m.port})
	if rb.problem != "" && rb.port == 0 {
		b.problems.add(ref, Error, "InvalidNginxAnnotation", "annotation %smirror-target: %s; requests are not mirrored", NginxPrefix, rb.problem)
		return
	}
	mirror := routing.Mirror{Backend: b.withServiceTLS(rb.backend), Percent: 100, Host: m.host, NoBody: m.noBody}
	for _, r := range routes {
		f := routing.Filters{}
		if r.Filters != nil {
			f = *r.Filters
		}
		f.Mirrors = append(f.Mirrors[:len(f.Mirrors):len(f.Mirrors)], mirror)
		r.Filters = &f
	}
}

// validMirrorHost reports whether a mirror-host can be sent as a Host.
func validMirrorHost(v string) bool {
	return v != "" && !strings.ContainsAny(v, " \t/?#@") && validFieldValue(v)
}
