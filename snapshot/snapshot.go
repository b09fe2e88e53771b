// Package snapshot owns the one-way path from Kubernetes objects to the
// configuration that serves traffic: a pure Build function turns the objects a
// source holds into an immutable Snapshot (TLS certificates, a compiled route
// table with resolved backends, and the problems found on the way), and a
// Store publishes it with one atomic swap that the request path reads.
//
// Build is deterministic: the same objects give the same snapshot, whatever
// order a source listed them in.
package snapshot

import (
	"sync/atomic"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"portico.dev/portico/routing"
	porticotls "portico.dev/portico/tls"
)

// Snapshot is one compiled, immutable configuration.
type Snapshot struct {
	// Generation counts published snapshots; the Store sets it.
	Generation uint64
	Routes     *routing.Table
	// SSLPassthrough routes the TLS connections of the HTTPS socket whose
	// SNI is a host of an ingress-nginx ssl-passthrough Ingress, matched
	// with path "/", to their backends unterminated; nil when no Ingress
	// asks for it, and then no ClientHello is looked at before the
	// handshake.
	SSLPassthrough *routing.Table
	// Certificates selects the certificate for a TLS handshake by SNI.
	Certificates *porticotls.Certificates
	// Bindings lists which certificate serves which TLS host, in the order
	// they were bound; Certificates is compiled from them.
	Bindings []porticotls.Binding
	// CertificateExpiry maps each certificate's source ("namespace/secret",
	// or "default") to its NotAfter, for metrics and expiry warnings.
	CertificateExpiry map[string]time.Time
	// Problems found while building, sorted by object then reason.
	Problems []Problem
	// Ingresses lists the Ingresses this controller owns, sorted.
	Ingresses []types.NamespacedName
	// ACMEHosts lists, sorted, the host names ACME may obtain certificates
	// for (see acme.Manager.Allowed); no other name ever reaches the ACME issuer.
	ACMEHosts []string

	// Listeners are the sockets Gateways ask for, sorted by address and
	// port; Ingresses are served on the flag-configured listeners instead.
	Listeners []*Listener
	// GatewayAPI is the status of the Gateway API objects we own.
	GatewayAPI GatewayAPIStatus

	// lastGood keeps, per object, the last version that translated without
	// error, so that a broken update keeps serving what worked before.
	lastGood lastGood
}

type lastGood struct {
	ingresses map[types.NamespacedName]*networkingv1.Ingress
	keyPairs  map[types.NamespacedName]parsedKeyPair
	gateways  gatewayState
	// rateLimits are the Ingresses' rate limits, whose client counters
	// carry over to the next snapshot while their configuration holds.
	rateLimits map[types.NamespacedName]*routing.RateLimit
	// nginxGlobals are the keys of ingress-nginx's ConfigMap whose values
	// read cleanly, by key: a key edited into garbage keeps its value.
	nginxGlobals map[string]string
}

// Store holds the snapshot that serves traffic.
type Store struct {
	current atomic.Pointer[Snapshot]
}

// Load returns the serving snapshot, or nil before the first Publish.
func (s *Store) Load() *Snapshot { return s.current.Load() }

// Publish makes snap the serving snapshot and gives it the next generation.
// Requests already holding the previous snapshot finish with it.
func (s *Store) Publish(snap *Snapshot) {
	if prev := s.current.Load(); prev != nil {
		snap.Generation = prev.Generation + 1
	} else {
		snap.Generation = 1
	}
	s.current.Store(snap)
}
