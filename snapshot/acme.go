package snapshot

import (
	"slices"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"portico.dev/portico/hostname"
)

// annotationACME, "true" on an Ingress, lets Portico obtain certificates
// from the ACME CA for the Ingress's hosts that no TLS Secret serves;
// "false" keeps them on the default certificate even when ACME is on for
// the whole class. The same key in tls.options of a Gateway HTTPS listener
// without certificateRefs asks for an ACME certificate for its hostname.
const annotationACME = "portico.dev/acme"

// ACMEConfig is what the builder needs to know about ACME.
type ACMEConfig struct {
	// Enabled is set when an ACME directory is configured; without it an
	// Ingress asking for ACME gets a warning, and a Gateway listener asking
	// for it (tls.options portico.dev/acme) is not accepted.
	Enabled bool
	// AllIngresses opts every owned Ingress in, except those annotated
	// portico.dev/acme: "false".
	AllIngresses bool
	// Expiring maps the hosts whose ACME certificate expires within 14
	// days (renewal, which starts far earlier, keeps failing) to its
	// NotAfter. The ACME manager knows it; the builder reports it on the
	// object that asked for the host, so it becomes a warning Event there.
	Expiring map[string]time.Time
}

// reportACMEExpiring warns ref, the object that asked for host, when the
// host's ACME certificate is about to expire.
func (b *builder) reportACMEExpiring(ref ObjectRef, host string) {
	notAfter, ok := b.cfg.ACME.Expiring[host]
	if !ok {
		return
	}
	b.problems.add(ref, Warning, "ACMECertificateExpiresSoon", "the ACME certificate for %s expires at %s, in less than 14 days, and has not been renewed; check Portico's log for the renewal errors of this host",
		host, notAfter.UTC().Format(time.RFC3339))
}

// acmeHosts lists, sorted, the host names ACME may serve: exact hosts of
// owned Ingresses that opted in, minus every name a TLS Secret serves or is
// asked to serve. Secrets always win: a host named in any spec.tls entry
// with a secretName is left to that Secret even while the Secret is missing
// (it is reported as such), and so is a host a wildcard Secret covers.
// Handshakes for other names never reach the ACME issuer, which is what
// keeps on-demand issuance from ordering for whatever SNI a client sends.
//
// owned must be the Ingresses in build order; b.next.ingresses holds the
// version of each that serves (the last good one for a broken edit).
func (b *builder) acmeHosts(owned []*networkingv1.Ingress) []string {
	secretHosts := make(map[string]bool)
	for _, ing := range owned {
		ing = b.servingVersion(ing)
		for _, t := range ing.Spec.TLS {
			if t.SecretName == "" {
				continue
			}
			hosts := t.Hosts
			if len(hosts) == 0 {
				for _, r := range ing.Spec.Rules {
					hosts = append(hosts, r.Host)
				}
			}
			for _, h := range hosts {
				secretHosts[hostname.Lower(h)] = true
			}
		}
	}
	for _, binding := range b.bindings {
		secretHosts[binding.Host] = true
	}
	// Certificate bindings follow the one-label rule (tls.Certificates).
	coveredByWildcard := func(host string) bool {
		i := hostname.FirstKey(host, hostname.OneLabel)
		return i >= 0 && secretHosts["*."+host[i:]]
	}

	seen := make(map[string]bool)
	var out []string
	for _, ing := range owned {
		ing = b.servingVersion(ing)
		value, annotated := ing.Annotations[annotationACME]
		optIn := b.cfg.ACME.AllIngresses
		switch {
		case !annotated:
		case value == "true":
			optIn = true
		case value == "false":
			optIn = false
		default:
			b.problems.add(ingressRef(ing), Warning, "InvalidAnnotation", "annotation %s is %q, not \"true\" or \"false\"; it is ignored", annotationACME, value)
		}
		if !optIn {
			continue
		}
		if !b.cfg.ACME.Enabled {
			if annotated {
				b.problems.add(ingressRef(ing), Warning, "ACMEDisabled", "annotation %s asks for ACME certificates but Portico runs without --acme-directory; hosts without a TLS Secret are served with the default certificate", annotationACME)
			}
			continue
		}
		for _, host := range acmeCandidates(ing) {
			switch {
			case secretHosts[host] || coveredByWildcard(host) || seen[host]:
			case hostname.IsWildcard(host):
				b.problems.add(ingressRef(ing), Warning, "ACMEWildcardHost", "host %s is a wildcard, which ACME HTTP-01 challenges cannot validate; give it a TLS Secret, or it is served with the default certificate", host)
			default:
				seen[host] = true
				out = append(out, host)
				b.reportACMEExpiring(ingressRef(ing), host)
			}
		}
	}
	slices.Sort(out)
	return out
}

// withGatewayACMEHosts merges the exact hostnames of served Gateway
// listeners that ask for ACME certificates into the Ingress hosts, sorted
// and without duplicates. A TLS Secret of an Ingress does not remove a
// Gateway listener's name: the Gateway socket does not serve Ingress
// certificates, and every socket asks its own certificates first anyway.
func withGatewayACMEHosts(ingressHosts, gatewayHosts []string) []string {
	if len(gatewayHosts) == 0 {
		return ingressHosts
	}
	out := slices.Concat(ingressHosts, gatewayHosts)
	slices.Sort(out)
	return slices.Compact(out)
}

// servingVersion returns the version of an owned Ingress that serves: the
// last good one when its current version is broken.
func (b *builder) servingVersion(ing *networkingv1.Ingress) *networkingv1.Ingress {
	if v := b.next.ingresses[key(ing.Namespace, ing.Name)]; v != nil {
		return v
	}
	return ing
}

// acmeCandidates returns the valid hosts an Ingress routes or asks TLS for.
func acmeCandidates(ing *networkingv1.Ingress) []string {
	var hosts []string
	for _, r := range ing.Spec.Rules {
		hosts = append(hosts, r.Host)
	}
	for _, t := range ing.Spec.TLS {
		hosts = append(hosts, t.Hosts...)
	}
	var out []string
	for _, h := range hosts {
		h = hostname.Lower(h)
		if h != "" && validateHost(h) == "" {
			out = append(out, h)
		}
	}
	return out
}
