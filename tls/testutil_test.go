package tls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"
)

// testCA issues certificates for tests so nothing is read from disk and
// clients can verify the chain properly instead of skipping verification.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
	pool *x509.CertPool
	// chainPEM is appended after leaves this CA issues: empty for a root,
	// the intermediate's own certificate for an intermediate.
	chainPEM []byte
}

type keyKind int

const (
	ecdsaKey keyKind = iota
	rsaKey
)

// leafSpec describes a certificate to issue.
type leafSpec struct {
	dnsNames  []string
	key       keyKind
	serial    int64 // 0 picks a fresh one
	notBefore time.Time
	notAfter  time.Time
}

type issued struct {
	certPEM []byte // leaf, then any intermediates
	keyPEM  []byte
	serial  string // lower-case hex
}

var (
	rsaKeyOnce sync.Once
	rsaKeyVal  *rsa.PrivateKey
	serialMu   sync.Mutex
	lastSerial int64 = 1000
)

// sharedRSAKey avoids generating several 2048-bit keys, which is slow under
// the race detector.
func sharedRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKeyVal = k
	})
	return rsaKeyVal
}

func nextSerial() int64 {
	serialMu.Lock()
	defer serialMu.Unlock()
	lastSerial++
	return lastSerial
}

func newTestKey(t testing.TB, kind keyKind) crypto.Signer {
	t.Helper()
	if kind == rsaKey {
		return sharedRSAKey(t)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key := newTestKey(t, ecdsaKey)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(nextSerial()),
		Subject:               pkix.Name{CommonName: "Portico Test Root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pem: pemBlock("CERTIFICATE", der), pool: pool}
}

// intermediate returns a CA signed by ca whose certificates chain up to ca.
func (ca *testCA) intermediate(t testing.TB) *testCA {
	t.Helper()
	key := newTestKey(t, ecdsaKey)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(nextSerial()),
		Subject:               pkix.Name{CommonName: "Portico Test Intermediate"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pemBlock("CERTIFICATE", der)
	return &testCA{cert: cert, key: key, pem: certPEM, pool: ca.pool, chainPEM: certPEM}
}

// issue signs a leaf. When ca is an intermediate, its certificate is appended
// to the chain, as a Secret's tls.crt would carry it.
func (ca *testCA) issue(t testing.TB, spec leafSpec) issued {
	t.Helper()
	key := newTestKey(t, spec.key)
	serial := spec.serial
	if serial == 0 {
		serial = nextSerial()
	}
	notBefore, notAfter := spec.notBefore, spec.notAfter
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour)
	}
	if notAfter.IsZero() {
		notAfter = time.Now().Add(24 * time.Hour)
	}
	var cn string
	if len(spec.dnsNames) > 0 {
		cn = spec.dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     spec.dnsNames,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := append(pemBlock("CERTIFICATE", der), ca.chainPEM...)
	return issued{
		certPEM: certPEM,
		keyPEM:  keyPEM(t, key),
		serial:  big.NewInt(serial).Text(16),
	}
}

// pair issues a leaf and parses it, failing the test on error.
func (ca *testCA) pair(t testing.TB, dnsNames ...string) *KeyPair {
	t.Helper()
	c := ca.issue(t, leafSpec{dnsNames: dnsNames})
	p, err := ParseKeyPair(c.certPEM, c.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func keyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	switch k := key.(type) {
	case *rsa.PrivateKey:
		// PKCS#1, as "openssl genrsa" writes it.
		return pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k))
	case *ecdsa.PrivateKey:
		// SEC 1, as "openssl ecparam -genkey" writes it.
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pemBlock("EC PRIVATE KEY", der)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("PRIVATE KEY", der)
}

func pkcs8PEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("PRIVATE KEY", der)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
