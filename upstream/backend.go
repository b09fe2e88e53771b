// Package upstream owns everything between Portico and the backends it
// proxies to: per-endpoint keep-alive connection pools that outlive
// configuration snapshots, load balancing across a backend's endpoints, and
// forwarding one request (HTTP/1.1, h2c or an Upgrade tunnel such as
// WebSocket) with the forwarding headers set and hop-by-hop headers removed,
// and TLS origination to backends that ask for it (backendtls.go).
package upstream

import "sync/atomic"

// Protocol is the wire protocol spoken to a backend's endpoints.
type Protocol uint8

const (
	// HTTP1 is HTTP/1.1 over plain TCP with keep-alive.
	HTTP1 Protocol = iota
	// H2C is HTTP/2 over plain TCP with prior knowledge, selected by a
	// Service port's appProtocol "kubernetes.io/h2c"; inside TLS
	// (Backend.TLS), HTTP/1.1 is spoken.
	H2C
	// H2 is HTTP/2 whatever the transport: with prior knowledge over
	// plain TCP, negotiated by ALPN inside TLS. gRPC needs it, so it is
	// what GRPCRoute backends speak.
	H2
)

func (p Protocol) String() string {
	switch p {
	case H2C:
		return "h2c"
	case H2:
		return "h2"
	}
	return "http/1.1"
}

// Backend is one Service port resolved to its ready endpoints. A Backend is
// immutable once published in a snapshot except for its round-robin cursor.
type Backend struct {
	// Name identifies the backend in logs, metrics and error bodies:
	// "namespace/service:port".
	Name string
	// Protocol spoken to every endpoint of this backend.
	Protocol Protocol
	// Endpoints are "host:port" addresses of ready endpoints, sorted.
	Endpoints []string
	// TLS, when set, makes Portico connect to the endpoints over TLS
	// (backendtls.go); nil means plain TCP.
	TLS *BackendTLS

	cursor atomic.Uint32
	// pin, when not 0, is 1 + the index of the endpoint every request
	// tries first: the Backend is one of the per-endpoint views of a
	// Backend with affinity (affinity.go).
	pin uint32
	// affinity is set on a Backend made by WithAffinity.
	affinity *affinityState
}

// next returns the endpoint index to try first for a new request.
func (b *Backend) next() int {
	// One comparison, on a field next to the ones read anyway, for the
	// pinned views affinity hands out.
	if b.pin != 0 {
		return int(b.pin - 1)
	}
	n := len(b.Endpoints)
	if n <= 1 {
		return 0
	}
	return int((b.cursor.Add(1) - 1) % uint32(n))
}

// NextEndpoint returns the endpoint a new connection should try first,
// round robin, or "" when the backend has none. TLS passthrough dials it
// itself: the bytes it carries are not HTTP.
func (b *Backend) NextEndpoint() string {
	if len(b.Endpoints) == 0 {
		return ""
	}
	return b.Endpoints[b.next()]
}
