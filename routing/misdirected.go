package routing

import "net/http"

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

// Misdirected reports whether a request for host arriving on a TLS
// connection made with serverName (the SNI) belongs to a different
// listener than the connection. A connection without SNI (a client
// connecting by IP address) is never misdirected.
func (l *listenerHosts) Misdirected(serverName, host string) bool {
	if l == nil || serverName == "" {
		return false
	}
	return l.Listener(serverName) != l.Listener(host)
}

// AnswerMisdirected makes the handler answer 421 to HTTPS requests whose
// Host selects another listener of the table (CompileListeners) than
// their connection's SNI. It must be called before the table is published,
// like CompileListeners itself; it does nothing to other tables.
func (t *Table) AnswerMisdirected() { t.misdirect = t.selector != nil }

// misdirected reports whether r must be answered 421.
func (t *Table) misdirected(r *http.Request) bool {
	return t.misdirect && r.TLS != nil && t.selector.Misdirected(r.TLS.ServerName, r.Host)
}

const misdirectedBody = "421 Misdirected Request: this connection was made for another host; open a new connection for this one\n"
