package routing

import "portico.dev/portico/hostname"

// This file holds the table of a socket shared by several Gateway
// listeners. The Gateway API isolates listeners: a request belongs to the
// single most specific listener whose hostname matches its host, and only
// that listener's routes may serve it, even when none of them matches and
// a less specific listener has a route that would.

// ListenerRoutes is one Gateway listener of a socket: its hostname ("" for
// none, "*.example.com", or an exact name) and the routes attached to it,
// in precedence order as for Compile. Route.Host is the route's own
// hostname (one of HTTPRoute spec.hostnames that intersects the listener's,
// or "" for a route without hostnames): it ranks the route within the
// listener.
//
// Passthrough marks a TLS listener in mode Passthrough on a socket that
// may also have listeners in mode Terminate (TLSRouteModeMixed): the
// socket terminates TLS only for the hosts its other listeners pick
// (Table.Passthrough). Matching ignores it.
type ListenerRoutes struct {
	Hostname    string
	Routes      []*Route
	Passthrough bool
}

// CompileListeners builds the table of a Gateway socket. A request is
// matched in two steps: the listener is picked by host (the exact listener
// hostname, else the longest matching wildcard, which covers any number of
// labels, else the listener without hostname; none means no match), then
// the request is matched against that listener's routes only, with the
// gatewayHosts rules. A listener without routes answers every request it
// is picked for with no match.
//
// shadowed[i] lists listener i's routes that an earlier route of the same
// listener shadows (see Compile). When two listeners have the same
// hostname, the first one serves it.
func CompileListeners(listeners []ListenerRoutes, fallback *Route) (t *Table, shadowed [][]*Route) {
	t = newTable(fallback)
	t.hostRules = gatewayHosts
	hostnames := make([]string, len(listeners))
	for i, l := range listeners {
		hostnames[i] = l.Hostname
	}
	t.selector = newListenerHosts(hostnames)
	t.scopes = make([]*Table, len(listeners))
	t.passthrough = make([]bool, len(listeners))
	shadowed = make([][]*Route, len(listeners))
	for i, l := range listeners {
		t.passthrough[i] = l.Passthrough
		scope, sh := compileHosts(gatewayHosts, l.Routes, nil)
		t.scopes[i], shadowed[i] = scope, sh
		t.routes = append(t.routes, scope.routes...)
	}
	return t, shadowed
}

// Listeners lists the listeners of a Gateway socket's table with their
// compiled routes (shadowed ones left out), in CompileListeners order; nil
// for other tables.
func (t *Table) Listeners() []ListenerRoutes {
	if t.scopes == nil {
		return nil
	}
	out := make([]ListenerRoutes, len(t.scopes))
	for i, s := range t.scopes {
		out[i] = ListenerRoutes{Hostname: t.selector.hostnames[i], Routes: s.routes, Passthrough: t.passthrough[i]}
	}
	return out
}

// Passthrough reports whether the listener that serves host (an SNI name)
// is marked Passthrough: a TLS socket with listeners of both modes reads
// the ClientHello, then passes the connection's TLS through to the
// backend for such a host and terminates it for any other. False when no
// listener serves host, and on tables not built by CompileListeners.
func (t *Table) Passthrough(host string) bool {
	if t == nil || t.selector == nil {
		return false
	}
	i := t.selector.Listener(host)
	return i >= 0 && t.passthrough[i]
}

// listenerHosts picks, among the listeners sharing a socket, the one that
// serves a host. It is immutable.
type listenerHosts struct {
	hostnames []string
	exact     map[string]int // by lower-case hostname
	// wildcard is keyed by the suffix after "*.", as in Table.
	wildcard map[string]int
	// catchAll is the listener without a hostname, or -1.
	catchAll int
}

// newListenerHosts compiles the hostnames of the listeners sharing a
// socket; hostnames[i] is listener i's hostname, "" for a listener without
// one. When two listeners have the same hostname, the first one counts.
func newListenerHosts(hostnames []string) *listenerHosts {
	l := &listenerHosts{
		hostnames: hostnames,
		exact:     make(map[string]int),
		wildcard:  make(map[string]int),
		catchAll:  -1,
	}
	for i, h := range hostnames {
		p := hostname.NewPattern(hostname.Normalize(h))
		m := l.exact
		switch {
		case p.IsAny():
			if l.catchAll < 0 {
				l.catchAll = i
			}
			continue
		case p.IsWildcard():
			m = l.wildcard
		}
		if _, ok := m[p.Key()]; !ok {
			m[p.Key()] = i
		}
	}
	return l
}

// Listener returns the index of the listener that serves host (a Host
// header or SNI name; a port is ignored): an exact hostname, else the
// longest wildcard suffix ("*.example.com" matches "a.b.example.com" but
// not "example.com"), else the listener without a hostname; -1 when none.
func (l *listenerHosts) Listener(host string) int {
	var buf [256]byte
	return l.listenerOf(hostname.AppendHost(buf[:0], host))
}

// listenerOf is Listener for a normalized host.
func (l *listenerHosts) listenerOf(h []byte) int {
	if len(h) > 0 {
		if i, ok := l.exact[string(h)]; ok {
			return i
		}
		if len(l.wildcard) > 0 {
			// The Gateway API rule: the longest wildcard suffix first.
			for i := hostname.FirstKey(h, hostname.AnyLabels); i >= 0; i = hostname.NextKey(h, i, hostname.AnyLabels) {
				if li, ok := l.wildcard[string(h[i:])]; ok {
					return li
				}
			}
		}
	}
	return l.catchAll
}
