package snapshot

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/routing"
	porticotls "portico.dev/portico/tls"
)

// Gateway sockets: one Listener per (address, port) of a served Gateway,
// with the route table and certificate set of the listeners sharing it.

// listeners builds one Listener per (address, port) of every served
// Gateway, sorted by address and port.
func (t *gatewayTranslator) listeners() []*Listener {
	var out []*Listener
	for _, info := range t.gateways {
		if !info.served() {
			continue
		}
		byPort := make(map[gatewayv1.PortNumber][]*listenerInfo)
		var ports []gatewayv1.PortNumber
		for _, l := range info.listeners {
			if !l.programmed() {
				continue
			}
			if _, seen := byPort[l.spec.Port]; !seen {
				ports = append(ports, l.spec.Port)
			}
			byPort[l.spec.Port] = append(byPort[l.spec.Port], l)
		}
		slices.Sort(ports)
		for _, port := range ports {
			ls := byPort[port]
			// Tables and certificate sets are immutable, so the sockets of
			// every address of the Gateway share them.
			table := t.socketTable(info, ls)
			var certs *porticotls.Certificates
			var validation *porticotls.ClientValidation
			// A TLS socket terminates when any of its listeners does
			// (TLSRouteModeMixed): it then reads each ClientHello and
			// terminates or passes through by the listener its SNI picks
			// (routing.Table.Passthrough).
			terminate := slices.ContainsFunc(ls, (*listenerInfo).terminatesTLS)
			if terminate {
				certs = socketCertificates(ls)
			}
			if ls[0].spec.Protocol == gatewayv1.HTTPSProtocolType {
				certs = socketCertificates(ls)
				t.socketACMEHosts(ls, certs)
				validation = t.frontendValidation(info, port).validation
				// A request whose Host belongs to another listener than
				// its connection's SNI is answered 421, so that a
				// coalesced HTTP/2 connection cannot cross listeners.
				table.AnswerMisdirected()
			}
			for _, addr := range info.addresses {
				sock := &Listener{
					Address:          addr,
					Port:             int32(port),
					Protocol:         ls[0].spec.Protocol,
					Gateway:          info.name,
					Routes:           table,
					Terminate:        terminate,
					Certificates:     certs,
					ClientValidation: validation,
				}
				out = append(out, sock)
			}
		}
	}
	slices.SortFunc(out, func(a, b *Listener) int {
		if c := a.Address.Compare(b.Address); c != 0 {
			return c
		}
		return int(a.Port - b.Port)
	})
	return out
}

// socketTable compiles the routes of the listeners sharing a socket: the
// table picks a request's listener by host, then matches that listener's
// routes only.
func (t *gatewayTranslator) socketTable(info *gatewayInfo, ls []*listenerInfo) *routing.Table {
	in := make([]routing.ListenerRoutes, len(ls))
	for i, l := range ls {
		in[i] = routing.ListenerRoutes{Hostname: l.hostname, Routes: l.routes,
			Passthrough: l.spec.Protocol == gatewayv1.TLSProtocolType && !l.terminatesTLS()}
	}
	table, shadowed := routing.CompileListeners(in, nil)
	compiled := table.Listeners()
	for i, l := range ls {
		for _, r := range shadowed[i] {
			t.reportShadowedRoute(info, l, r, compiled[i].Routes)
		}
	}
	return table
}

// reportShadowedRoute warns the owner of a route that an older route of
// the same listener, with the same hostname, path and conditions, hides.
func (t *gatewayTranslator) reportShadowedRoute(info *gatewayInfo, l *listenerInfo, r *routing.Route, kept []*routing.Route) {
	what := fmt.Sprintf("path %s %q", r.PathKind, r.Path)
	if r.PathKind == routing.PathRegex {
		what = fmt.Sprintf("path RegularExpression %q", r.Path)
	}
	host := "hostname " + r.Host
	if r.Host == "" {
		host = "no hostname"
	}
	winner := "an older route"
	if i := slices.IndexFunc(kept, func(k *routing.Route) bool { return sameRouteMatch(k, r) }); i >= 0 {
		w := kept[i].Source
		winner = fmt.Sprintf("%s %s/%s (rule %s), which is older and wins", w.Kind, w.Namespace, w.Name, w.Rule)
	}
	t.b.problems.add(ObjectRef{Kind: r.Source.Kind, Namespace: r.Source.Namespace, Name: r.Source.Name}, Warning, "RouteConflict",
		"%s with %s (rule %s) on listener %s of Gateway %s is also defined by %s",
		what, host, r.Source.Rule, l.spec.Name, info.name, winner)
}

// sameRouteMatch reports whether two routes of one listener take the same
// requests: same hostname, path and conditions (in any order).
func sameRouteMatch(a, b *routing.Route) bool {
	if a.Host != b.Host || a.PathKind != b.PathKind || a.Method != b.Method {
		return false
	}
	pa, pb := a.Path, b.Path
	if a.PathKind == routing.PathPrefix {
		pa, pb = strings.TrimSuffix(pa, "/"), strings.TrimSuffix(pb, "/")
	}
	if pa != pb {
		return false
	}
	return slices.Equal(conditionKeys(a), conditionKeys(b))
}

// conditionKeys lists a route's header and query conditions as sorted
// strings.
func conditionKeys(r *routing.Route) []string {
	var keys []string
	for _, h := range r.Headers {
		keys = append(keys, matchKey("h", h.Name, h.Value, h.Regexp))
	}
	for _, q := range r.QueryParams {
		keys = append(keys, matchKey("q", q.Name, q.Value, q.Regexp))
	}
	slices.Sort(keys)
	return keys
}

func matchKey(kind, name, value string, re *regexp.Regexp) string {
	if re != nil {
		return kind + "\x00" + name + "\x00~" + re.String()
	}
	return kind + "\x00" + name + "\x00=" + value
}

// socketACMEHosts adds the hostnames of a socket's ACME listeners to the
// names ACME may serve, unless a certificate of the socket covers the name
// (a wildcard listener's Secret): the socket looks its certificates up
// first, so the ACME certificate would never be presented.
func (t *gatewayTranslator) socketACMEHosts(ls []*listenerInfo, certs *porticotls.Certificates) {
	for _, l := range ls {
		if !l.acme {
			continue
		}
		if certs.Has(l.hostname) {
			t.b.problems.add(l.owner, Warning, "ACMEHostHasCertificate", "listener %s: hostname %s is covered by the certificate of another listener on port %d, which is served instead of an ACME certificate",
				l.spec.Name, l.hostname, l.spec.Port)
			continue
		}
		t.b.gatewayACMEHosts = append(t.b.gatewayACMEHosts, l.hostname)
		t.b.reportACMEExpiring(l.owner, l.hostname)
	}
}

// socketCertificates serves each HTTPS listener's certificate for its
// hostname; the listener without hostname provides the socket's default.
// ACME listeners have no key pair here: their certificate comes from the
// ACME manager at the handshake.
func socketCertificates(ls []*listenerInfo) *porticotls.Certificates {
	var bindings []porticotls.Binding
	var def *porticotls.KeyPair
	for _, l := range ls {
		if l.acme {
			continue
		}
		if l.hostname == "" {
			def = l.pair
			continue
		}
		bindings = append(bindings, porticotls.Binding{Host: l.hostname, Pair: l.pair, Source: l.certSource})
	}
	return porticotls.NewCertificates(bindings, def)
}
