package testkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CA issues certificates for tests, so that nothing is read from disk and
// clients verify chains as they would in production instead of skipping
// verification.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is this CA's own certificate.
	PEM []byte
	// Pool holds the root this CA chains up to.
	Pool *x509.CertPool
	// chainPEM is appended after the leaves this CA issues: empty for a
	// root, the intermediate's own certificate for an intermediate.
	chainPEM []byte
}

// NewCA returns a root CA named name, valid from an hour ago for a day.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t, false)
	der := create(t, caTemplate(name), nil, key, key)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, PEM: PEM("CERTIFICATE", der), Pool: pool}
}

// Intermediate returns a CA signed by ca whose leaves chain up to ca's
// root, carrying the intermediate in their CertPEM.
func (ca *CA) Intermediate(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t, false)
	der := create(t, caTemplate(name), ca.Cert, key, ca.Key)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := PEM("CERTIFICATE", der)
	return &CA{Cert: cert, Key: key, PEM: certPEM, Pool: ca.Pool, chainPEM: append(certPEM, ca.chainPEM...)}
}

func caTemplate(name string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(NextSerial()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// Leaf describes a certificate to issue. The zero value of each field
// picks a default.
type Leaf struct {
	DNSNames []string
	URIs     []string
	// CommonName defaults to the first DNS name.
	CommonName string
	// Serial defaults to a fresh one; tests set it to tell which
	// certificate a handshake got.
	Serial int64
	// NotBefore and NotAfter default to an hour ago and a day from now.
	NotBefore, NotAfter time.Time
	// RSA asks for a 2048-bit RSA key (one shared by every test, as
	// generating them is slow under the race detector) instead of a fresh
	// ECDSA P-256 key.
	RSA bool
	// ExtKeyUsage defaults to server authentication.
	ExtKeyUsage []x509.ExtKeyUsage
	// OCSPServer names the responders a stapler asks.
	OCSPServer []string
}

// Issued is a certificate and its key.
type Issued struct {
	// DER is the leaf alone; CertPEM is the leaf, then any intermediates,
	// as a Secret's tls.crt carries them.
	DER     []byte
	CertPEM []byte
	Key     crypto.Signer
	// KeyPEM is SEC 1 for ECDSA keys and PKCS #1 for RSA keys, as openssl
	// writes them.
	KeyPEM []byte
	Serial *big.Int
}

// TLSCertificate is the certificate and key as crypto/tls serves them.
func (i Issued) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{i.DER}, PrivateKey: i.Key}
}

// Issue signs a leaf with ca.
func (ca *CA) Issue(t testing.TB, leaf Leaf) Issued {
	t.Helper()
	key := newKey(t, leaf.RSA)
	tmpl := leafTemplate(t, leaf, key)
	der := create(t, tmpl, ca.Cert, key, ca.Key)
	return Issued{
		DER:     der,
		CertPEM: append(PEM("CERTIFICATE", der), ca.chainPEM...),
		Key:     key,
		KeyPEM:  KeyPEM(t, key),
		Serial:  tmpl.SerialNumber,
	}
}

// SelfSigned issues a leaf signed by its own key.
func SelfSigned(t testing.TB, leaf Leaf) Issued {
	t.Helper()
	key := newKey(t, leaf.RSA)
	tmpl := leafTemplate(t, leaf, key)
	der := create(t, tmpl, nil, key, key)
	return Issued{DER: der, CertPEM: PEM("CERTIFICATE", der), Key: key, KeyPEM: KeyPEM(t, key), Serial: tmpl.SerialNumber}
}

func leafTemplate(t testing.TB, leaf Leaf, key crypto.Signer) *x509.Certificate {
	t.Helper()
	serial := leaf.Serial
	if serial == 0 {
		serial = NextSerial()
	}
	cn := leaf.CommonName
	if cn == "" && len(leaf.DNSNames) > 0 {
		cn = leaf.DNSNames[0]
	}
	notBefore, notAfter := leaf.NotBefore, leaf.NotAfter
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour)
	}
	if notAfter.IsZero() {
		notAfter = time.Now().Add(24 * time.Hour)
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		usage |= x509.KeyUsageKeyEncipherment
	}
	ext := leaf.ExtKeyUsage
	if ext == nil {
		ext = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     leaf.DNSNames,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     usage,
		ExtKeyUsage:  ext,
		OCSPServer:   leaf.OCSPServer,
	}
	for _, u := range leaf.URIs {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	return tmpl
}

// create signs tmpl with signer, as parent (nil: self-signed).
func create(t testing.TB, tmpl, parent *x509.Certificate, key, signer crypto.Signer) []byte {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

var lastSerial atomic.Int64

func init() { lastSerial.Store(1000) }

// NextSerial returns a serial number no other certificate of this test
// binary has.
func NextSerial() int64 { return lastSerial.Add(1) }

var sharedRSA = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func newKey(t testing.TB, useRSA bool) crypto.Signer {
	t.Helper()
	if useRSA {
		k, err := sharedRSA()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// KeyPEM encodes key as openssl writes it: SEC 1 for ECDSA, PKCS #1 for
// RSA, PKCS #8 for anything else.
func KeyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return PEM("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k))
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return PEM("EC PRIVATE KEY", der)
	}
	return PKCS8PEM(t, key)
}

// PKCS8PEM encodes key as PKCS #8.
func PKCS8PEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return PEM("PRIVATE KEY", der)
}

// PEM encodes one block.
func PEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
