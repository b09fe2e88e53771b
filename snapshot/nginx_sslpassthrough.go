package snapshot

import (
	"fmt"

	"portico.dev/portico/hostname"
	"portico.dev/portico/routing"
)

// ingress-nginx's ssl-passthrough: the TLS connections whose SNI is a host
// of the Ingress are not terminated but spliced, as they are, to the
// backend of the host's root location (passthrough.Server.Claim on the
// HTTPS socket). Everything else about the Ingress (plain HTTP, HTTPS
// clients that name another host) is served from its rules as before.

// applySSLPassthrough reads ssl-passthrough. Only "true" and "false" are
// taken: the annotation takes a host away from every HTTP feature, so a
// value that might mean either is refused rather than guessed.
func (nc *nginxConfig) applySSLPassthrough(f NginxFinding, name, raw, v string, _ func(string) (string, bool)) (NginxFinding, bool) {
	if name != "ssl-passthrough" {
		return f, false
	}
	switch v {
	case "true":
		nc.sslPassthrough = true
	case "false":
		// Nothing to approximate: TLS is terminated, as in ingress-nginx.
		f.Verdict, f.Note = NginxExact, ""
	default:
		return f.invalidf("%q is neither true nor false; the annotation is ignored and TLS to the Ingress's hosts is terminated", raw), true
	}
	return f, true
}

// passthroughRule is one rule of an ssl-passthrough Ingress: its host, and
// its routes for the path "/" and its first path (nil when it has none).
type passthroughRule struct {
	where       string
	host        string
	first, root *routing.Route
}

// passthroughHost is a host passed through, with the route whose backend
// takes its connections.
type passthroughHost struct {
	host  string
	route *routing.Route
}

// passthroughHosts picks each rule host's backend as ingress-nginx does:
// that of the location "/", which is the rule's path "/", else the
// Ingress's spec.defaultBackend. ingress-nginx would then take its own
// default backend; Portico takes the rule's first path, and says so. A
// rule without a host cannot be chosen by SNI and is not passed through.
func passthroughHosts(rules []passthroughRule, defaults map[string]*routing.Route) (hosts []passthroughHost, notes []string) {
	seen := make(map[string]bool)
	for _, r := range rules {
		if r.host == "" {
			notes = append(notes, fmt.Sprintf("%s has no host, which SNI could name; its connections are terminated", r.where))
			continue
		}
		if seen[r.host] {
			continue
		}
		route := r.root
		if route == nil {
			route = defaults[r.host]
		}
		if route == nil && r.first != nil {
			route = r.first
			notes = append(notes, fmt.Sprintf("%s has no path \"/\" and the Ingress no spec.defaultBackend: host %s is passed through to the backend of its first path, %s (ingress-nginx would take its default backend)", r.where, r.host, route.Backend.Name))
		}
		if route == nil {
			notes = append(notes, fmt.Sprintf("%s has no path and the Ingress no spec.defaultBackend: host %s has no backend to pass its connections to; they are terminated", r.where, r.host))
			continue
		}
		seen[r.host] = true
		hosts = append(hosts, passthroughHost{host: r.host, route: route})
	}
	return hosts, notes
}

// passthroughClaim is the Ingress that passes a host through.
type passthroughClaim struct {
	owner ObjectRef
	route *routing.Route
}

// sslPassthrough compiles the passthrough table from the Ingresses' hosts,
// oldest Ingress first, and reports the conflicts: a host another Ingress
// passes through already, and the rules of Ingresses that terminate a host
// passed through (its HTTPS connections never reach them). hostsOf lists
// each owned Ingress's routed hosts. Nil when no Ingress asks for
// passthrough, which is what keeps the HTTPS socket from looking at
// ClientHellos at all.
func (b *builder) sslPassthrough(claims []ingressPassthrough, hostsOf []ingressHosts) *routing.Table {
	if len(claims) == 0 {
		return nil
	}
	byHost := make(map[string]passthroughClaim)
	var routes []*routing.Route
	var patterns []string
	asked := make(map[ObjectRef]map[string]bool)
	for _, c := range claims {
		asked[c.owner] = make(map[string]bool)
		for _, h := range c.hosts {
			asked[c.owner][h.host] = true
		}
		for _, note := range c.notes {
			b.problems.add(c.owner, Warning, "NginxSSLPassthrough", "annotation %sssl-passthrough: %s", NginxPrefix, note)
		}
		for _, h := range c.hosts {
			if first, taken := byHost[h.host]; taken {
				b.problems.add(c.owner, Warning, "SSLPassthroughConflict", "annotation %sssl-passthrough: host %s is passed through to %s by the older %s; this Ingress's backend %s does not get its connections",
					NginxPrefix, h.host, first.route.Backend.Name, first.owner, h.route.Backend.Name)
				continue
			}
			byHost[h.host] = passthroughClaim{owner: c.owner, route: h.route}
			patterns = append(patterns, h.host)
			// Backends as a TLSRoute's: the passthrough server picks from them.
			routes = append(routes, &routing.Route{Source: h.route.Source, Host: h.host, PathKind: routing.PathPrefix, Path: "/",
				Backend: h.route.Backend, Backends: []routing.WeightedBackend{{Backend: h.route.Backend, Weight: 1}}})
		}
	}
	for _, ih := range hostsOf {
		reported := make(map[string]bool)
		for _, host := range ih.hosts {
			// An Ingress passing the host through itself was told above.
			if host == "" || reported[host] || asked[ih.owner][host] {
				continue
			}
			for _, p := range patterns {
				claim := byHost[p]
				if claim.owner == ih.owner || p != host && !hostname.NewPattern(p).Matches(host, hostname.OneLabel) {
					continue
				}
				reported[host] = true
				b.problems.add(ih.owner, Warning, "SSLPassthroughConflict", "host %s is passed through by %s (annotation %sssl-passthrough): its TLS connections reach %s unterminated, so this Ingress's rules for it serve plain HTTP only (and HTTPS clients whose SNI names another host)",
					host, claim.owner, NginxPrefix, claim.route.Backend.Name)
				break
			}
		}
	}
	if len(routes) == 0 {
		return nil
	}
	table, _ := routing.Compile(routes, nil)
	return table
}

// ingressPassthrough is what one ssl-passthrough Ingress asks for.
type ingressPassthrough struct {
	owner ObjectRef
	hosts []passthroughHost
	notes []string
}

// ingressHosts are the hosts one Ingress routes.
type ingressHosts struct {
	owner ObjectRef
	hosts []string
}
