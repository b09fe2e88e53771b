package tls

import (
	"testing"

	"portico.dev/portico/internal/testkit"
)

// testCA is the test kit's CA, with the key pairs of this package on top.
type testCA struct{ *testkit.CA }

func newTestCA(t testing.TB) *testCA {
	return &testCA{testkit.NewCA(t, "Portico Test Root")}
}

// pair issues a leaf and parses it, failing the test on error.
func (ca *testCA) pair(t testing.TB, dnsNames ...string) *KeyPair {
	t.Helper()
	c := ca.Issue(t, testkit.Leaf{DNSNames: dnsNames})
	p, err := ParseKeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
