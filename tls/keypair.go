// Package tls owns Portico's TLS tier: parsing and validating certificate
// key pairs, choosing a certificate by SNI from an immutable compiled set, and
// the front-door listeners (HTTPS with HTTP/2, and plain HTTP) with the limits
// an internet-facing proxy needs. It knows nothing of Kubernetes objects; the
// snapshot builder reads Secrets and hands their bytes to ParseKeyPair.
package tls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	stdtls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// KeyPair is a parsed, validated certificate chain and its private key.
// A KeyPair is immutable once returned and safe to share between snapshots.
type KeyPair struct {
	// Certificate is ready for a handshake; its Leaf is set so crypto/tls
	// does not re-parse the leaf on every connection.
	Certificate *stdtls.Certificate
	// NotAfter is the leaf's expiry. ParseKeyPair accepts expired
	// certificates so one lapsed Secret does not take a host offline with a
	// worse error; callers warn and export this as a metric.
	NotAfter time.Time
	// Serial is the leaf's serial number in lower-case hex.
	Serial string
	// DNSNames are the leaf's subject alternative DNS names.
	DNSNames []string
}

// maxPEMBytes bounds the input ParseKeyPair will look at. Real chains are a
// few KiB; Kubernetes caps a Secret at 1 MiB, so anything larger is not a
// certificate and is refused before any parsing work.
const maxPEMBytes = 1 << 20

// ParseKeyPair parses a PEM certificate chain (leaf first, as in a
// kubernetes.io/tls Secret's tls.crt) and a PEM private key (tls.key), and
// checks that the key belongs to the leaf. Errors are single lines naming the
// offending field, suitable for showing to whoever wrote the Secret.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	if len(certPEM) > maxPEMBytes {
		return nil, fmt.Errorf("tls.crt is larger than %d bytes", maxPEMBytes)
	}
	if len(keyPEM) > maxPEMBytes {
		return nil, fmt.Errorf("tls.key is larger than %d bytes", maxPEMBytes)
	}

	chain, certHasKey, err := parseCertificateChain(certPEM)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		if certHasKey {
			return nil, errors.New("no certificate in tls.crt (it holds a private key: are tls.crt and tls.key swapped?)")
		}
		return nil, errors.New("no certificate in tls.crt")
	}
	leaf := chain[0]

	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		return nil, errors.New("tls.key does not match the certificate in tls.crt")
	}

	der := make([][]byte, len(chain))
	for i, c := range chain {
		der[i] = c.Raw
	}
	return newKeyPair(&stdtls.Certificate{
		Certificate: der,
		PrivateKey:  key,
		Leaf:        leaf,
	}), nil
}

func newKeyPair(cert *stdtls.Certificate) *KeyPair {
	leaf := cert.Leaf
	return &KeyPair{
		Certificate: cert,
		NotAfter:    leaf.NotAfter,
		Serial:      leaf.SerialNumber.Text(16),
		DNSNames:    append([]string(nil), leaf.DNSNames...),
	}
}

// parseCertificateChain returns every CERTIFICATE block in data, in order.
// Other block types are skipped, as crypto/tls does, but a private key block
// is remembered so the caller can point out swapped fields.
func parseCertificateChain(data []byte) (chain []*x509.Certificate, sawKey bool, err error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return chain, sawKey, nil
		}
		switch {
		case block.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				if len(chain) == 0 {
					return nil, false, fmt.Errorf("tls.crt: %w", err)
				}
				return nil, false, fmt.Errorf("tls.crt: chain certificate %d: %w", len(chain)+1, err)
			}
			chain = append(chain, c)
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			sawKey = true
		}
	}
}

// parsePrivateKey returns the first private key in data, accepting the PKCS#1,
// PKCS#8 and SEC 1 encodings that cert-manager, openssl and kubectl produce.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	sawCertificate := false
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			sawCertificate = true
			continue
		}
		if block.Type != "PRIVATE KEY" && !strings.HasSuffix(block.Type, " PRIVATE KEY") {
			continue
		}
		if strings.Contains(block.Type, "ENCRYPTED") || block.Headers["Proc-Type"] != "" {
			return nil, errors.New("tls.key: the private key is encrypted; store it unencrypted")
		}
		return decodePrivateKey(block.Bytes)
	}
	if sawCertificate {
		return nil, errors.New("no private key in tls.key (it holds a certificate: are tls.crt and tls.key swapped?)")
	}
	return nil, errors.New("no private key in tls.key")
}

func decodePrivateKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("tls.key: not a PKCS#1, PKCS#8 or SEC 1 private key")
	}
	switch k := k.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return k.(crypto.Signer), nil
	default:
		return nil, fmt.Errorf("tls.key: unsupported private key type %T", k)
	}
}

func publicKeysEqual(certKey, privKeyPublic crypto.PublicKey) bool {
	eq, ok := certKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(privKeyPublic)
}

// SelfSigned returns a fresh ECDSA P-256 certificate for commonName, valid
// from a minute ago (tolerating client clock skew) for validFor. Portico
// serves it when no configured certificate matches the SNI, so clients get a
// handshake and a clear certificate error instead of a reset.
func SelfSigned(commonName string, validFor time.Duration) (*KeyPair, error) {
	if validFor <= 0 {
		return nil, fmt.Errorf("self-signed certificate validity must be positive, got %s", validFor)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate self-signed key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate self-signed serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Portico"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if commonName != "" && !strings.ContainsAny(commonName, " /") {
		tmpl.DNSNames = []string{commonName}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse self-signed certificate: %w", err)
	}
	return newKeyPair(&stdtls.Certificate{
		Certificate: [][]byte{der},
		PrivateKey:  key,
		Leaf:        leaf,
	}), nil
}
