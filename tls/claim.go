package tls

import "net"

// SetClaim gives the HTTPS socket's connections to claim before their TLS
// handshake (http1.Server.Claim): ingress-nginx's ssl-passthrough hosts
// are spliced from there. It reports false, changing nothing, when the
// socket is served by net/http (--http1-engine net/http), which has no
// such hook. Call it before Serve.
func (s *Server) SetClaim(claim func(net.Conn) (net.Conn, bool)) bool {
	if s.httpsEngine == nil {
		return false
	}
	s.httpsEngine.Claim = claim
	return true
}
