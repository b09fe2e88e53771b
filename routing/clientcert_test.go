package routing

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"portico.dev/portico/internal/testkit"
)

// BenchmarkClientCertCheck is the verdict on a client certificate: the
// chain verified (a connection's first request, or another connection's
// certificate), and kept (the connection's further requests).
func BenchmarkClientCertCheck(b *testing.B) {
	ca := testkit.NewCA(b, "client CA")
	leaf := ca.Issue(b, testkit.Leaf{CommonName: "client", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	cert, err := x509.ParseCertificate(leaf.DER)
	if err != nil {
		b.Fatal(err)
	}
	a := &ClientCertAuth{CAs: ca.Pool, Depth: 1, PassCertificate: true}
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	now := time.Now()
	b.Run("verified", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.last.Store(nil)
			if v := a.check(state, now); v.verify != "SUCCESS" {
				b.Fatal(v.verify)
			}
		}
	})
	b.Run("kept", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v := a.check(state, now); v.verify != "SUCCESS" {
				b.Fatal(v.verify)
			}
		}
	})
}
