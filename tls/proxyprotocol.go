package tls

import (
	"net"
	"net/netip"
	"slices"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// withProxyProtocol makes ln read a PROXY protocol header (v1 or v2, as L4
// load balancers send to pass on the client's address) on connections from
// the trusted prefixes, so that the request's remote address, and with it
// X-Forwarded-For and the access log, is the client's rather than the load
// balancer's. A trusted peer may also connect without a header (health
// checks). Connections from other peers are served as they are, unparsed:
// a header they send is not believed, and fails the TLS handshake or the
// HTTP request like any other garbage. With no trusted prefix, ln is
// returned unwrapped.
func withProxyProtocol(ln net.Listener, trusted []netip.Prefix, headerTimeout time.Duration) net.Listener {
	if len(trusted) == 0 {
		return ln
	}
	return &proxyproto.Listener{
		Listener: ln,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			ap, err := netip.ParseAddrPort(o.Upstream.String())
			if err != nil {
				return proxyproto.SKIP, nil
			}
			peer := ap.Addr().Unmap()
			if slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(peer) }) {
				return proxyproto.USE, nil
			}
			return proxyproto.SKIP, nil
		},
		ReadHeaderTimeout: headerTimeout,
	}
}

// WithProxyProtocol is withProxyProtocol for servers outside this package
// (TLS passthrough sockets), which read the same headers from the same
// peers.
func WithProxyProtocol(ln net.Listener, trusted []netip.Prefix, headerTimeout time.Duration) net.Listener {
	return withProxyProtocol(ln, trusted, headerTimeout)
}
