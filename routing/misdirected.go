package routing

import (
	"net/http"
	"sort"
	"strings"
)

// This file detects misdirected requests on HTTPS sockets shared by several
// Gateway listeners (GatewayHTTPSListenerDetectMisdirectedRequests). A
// client that reuses one TLS connection for several hosts (HTTP/2
// connection coalescing, or a Host header that differs from the SNI) could
// otherwise reach a listener other than the one, and the certificate and
// client-certificate rules other than those, its connection was made for.
// Such requests get 421 Misdirected Request, which tells the client to
// open a new connection for that host.
//
// Listeners are told apart by hostname, not by certificate: listeners that
// share one certificate are still different listeners.

// ListenerHosts is the set of hostnames of the Gateway listeners served on
// one HTTPS socket, compiled for lookups. It is immutable.
type ListenerHosts struct {
	exact map[string]int
	// wildcard holds "*.suffix" hostnames as ".suffix", longest first, so
	// the first match is the most specific.
	wildcard []listenerSuffix
	// catchAll is the listener without a hostname, or -1.
	catchAll int
}

type listenerSuffix struct {
	suffix   string
	listener int
}

// NewListenerHosts compiles the hostnames of the listeners sharing a
// socket; hostnames[i] is listener i's hostname, "" for a listener without
// one. When two listeners have the same hostname, the first one counts.
func NewListenerHosts(hostnames []string) *ListenerHosts {
	l := &ListenerHosts{exact: make(map[string]int), catchAll: -1}
	seen := make(map[string]bool)
	for i, h := range hostnames {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		switch {
		case h == "":
			if l.catchAll < 0 {
				l.catchAll = i
			}
		case strings.HasPrefix(h, "*."):
			if !seen[h] {
				seen[h] = true
				l.wildcard = append(l.wildcard, listenerSuffix{suffix: h[1:], listener: i})
			}
		default:
			if _, ok := l.exact[h]; !ok {
				l.exact[h] = i
			}
		}
	}
	sort.SliceStable(l.wildcard, func(a, b int) bool {
		return len(l.wildcard[a].suffix) > len(l.wildcard[b].suffix)
	})
	return l
}

// Listener returns the index of the listener that serves host (a Host
// header or SNI name; a port is ignored): an exact hostname, else the
// longest wildcard suffix ("*.example.com" matches "a.b.example.com" but
// not "example.com"), else the listener without a hostname; -1 when none.
func (l *ListenerHosts) Listener(host string) int {
	var buf [256]byte
	h := normalizeHost(host, buf[:0])
	if i, ok := l.exact[string(h)]; ok {
		return i
	}
	for _, w := range l.wildcard {
		if len(h) > len(w.suffix) && string(h[len(h)-len(w.suffix):]) == w.suffix {
			return w.listener
		}
	}
	return l.catchAll
}

// Misdirected reports whether a request for host arriving on a TLS
// connection made with serverName (the SNI) belongs to a different
// listener than the connection. A connection without SNI (a client
// connecting by IP address) is never misdirected.
func (l *ListenerHosts) Misdirected(serverName, host string) bool {
	if l == nil || serverName == "" {
		return false
	}
	return l.Listener(serverName) != l.Listener(host)
}

// SetListenerHosts makes the handler answer 421 to HTTPS requests whose
// Host belongs to another listener of l than their connection's SNI. It
// must be called before the table is published, like Compile itself.
func (t *Table) SetListenerHosts(l *ListenerHosts) { t.listeners = l }

// misdirected reports whether r must be answered 421.
func (t *Table) misdirected(r *http.Request) bool {
	return t.listeners != nil && r.TLS != nil && t.listeners.Misdirected(r.TLS.ServerName, r.Host)
}

const misdirectedBody = "421 Misdirected Request: this connection was made for another host; open a new connection for this one\n"
