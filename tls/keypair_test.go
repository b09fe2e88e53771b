package tls

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"portico.dev/portico/internal/testkit"
)

func TestParseKeyPair(t *testing.T) {
	root := newTestCA(t)
	inter := root.Intermediate(t, "Portico Test Intermediate")

	ecdsaLeaf := root.Issue(t, testkit.Leaf{DNSNames: []string{"a.example.com", "b.example.com"}})
	rsaLeaf := root.Issue(t, testkit.Leaf{DNSNames: []string{"rsa.example.com"}, RSA: true})
	chained := inter.Issue(t, testkit.Leaf{DNSNames: []string{"chained.example.com"}})
	other := root.Issue(t, testkit.Leaf{DNSNames: []string{"other.example.com"}})
	expired := root.Issue(t, testkit.Leaf{
		DNSNames:  []string{"old.example.com"},
		NotBefore: time.Now().Add(-48 * time.Hour),
		NotAfter:  time.Now().Add(-24 * time.Hour),
	})

	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	corruptDER := testkit.PEM("CERTIFICATE", []byte("not DER at all"))

	tests := []struct {
		name       string
		certPEM    []byte
		keyPEM     []byte
		wantErr    string // substring; "" means success
		wantSerial string
		wantChain  int
		wantNames  []string
		wantExpire bool
	}{
		{name: "ECDSA with SEC 1 key", certPEM: ecdsaLeaf.CertPEM, keyPEM: ecdsaLeaf.KeyPEM,
			wantSerial: ecdsaLeaf.Serial.Text(16), wantChain: 1, wantNames: []string{"a.example.com", "b.example.com"}},
		{name: "RSA with PKCS#1 key", certPEM: rsaLeaf.CertPEM, keyPEM: rsaLeaf.KeyPEM,
			wantSerial: rsaLeaf.Serial.Text(16), wantChain: 1, wantNames: []string{"rsa.example.com"}},
		{name: "RSA with PKCS#8 key", certPEM: rsaLeaf.CertPEM, keyPEM: testkit.PKCS8PEM(t, rsaLeaf.Key),
			wantSerial: rsaLeaf.Serial.Text(16), wantChain: 1, wantNames: []string{"rsa.example.com"}},
		{name: "chain with intermediate", certPEM: chained.CertPEM, keyPEM: chained.KeyPEM,
			wantSerial: chained.Serial.Text(16), wantChain: 2, wantNames: []string{"chained.example.com"}},
		{name: "expired certificate parses", certPEM: expired.CertPEM, keyPEM: expired.KeyPEM,
			wantSerial: expired.Serial.Text(16), wantChain: 1, wantNames: []string{"old.example.com"}, wantExpire: true},
		{name: "mismatched key", certPEM: ecdsaLeaf.CertPEM, keyPEM: other.KeyPEM,
			wantErr: "tls.key does not match the certificate in tls.crt"},
		{name: "key of another algorithm", certPEM: ecdsaLeaf.CertPEM, keyPEM: testkit.PKCS8PEM(t, edKey),
			wantErr: "tls.key does not match the certificate in tls.crt"},
		{name: "garbage certificate", certPEM: []byte("hello world"), keyPEM: ecdsaLeaf.KeyPEM,
			wantErr: "no certificate in tls.crt"},
		{name: "empty certificate", certPEM: nil, keyPEM: ecdsaLeaf.KeyPEM,
			wantErr: "no certificate in tls.crt"},
		{name: "corrupt certificate DER", certPEM: corruptDER, keyPEM: ecdsaLeaf.KeyPEM,
			wantErr: "tls.crt: x509: "},
		{name: "key only in tls.crt", certPEM: ecdsaLeaf.KeyPEM, keyPEM: ecdsaLeaf.KeyPEM,
			wantErr: "no certificate in tls.crt (it holds a private key"},
		{name: "swapped fields", certPEM: ecdsaLeaf.KeyPEM, keyPEM: ecdsaLeaf.CertPEM,
			wantErr: "are tls.crt and tls.key swapped?"},
		{name: "no key", certPEM: ecdsaLeaf.CertPEM, keyPEM: []byte("garbage"),
			wantErr: "no private key in tls.key"},
		{name: "corrupt key DER", certPEM: ecdsaLeaf.CertPEM, keyPEM: testkit.PEM("PRIVATE KEY", []byte{1, 2, 3}),
			wantErr: "tls.key: not a PKCS#1, PKCS#8 or SEC 1 private key"},
		{name: "encrypted key", certPEM: ecdsaLeaf.CertPEM, keyPEM: testkit.PEM("ENCRYPTED PRIVATE KEY", []byte{1, 2, 3}),
			wantErr: "tls.key: the private key is encrypted"},
		{name: "oversized input", certPEM: bytes.Repeat([]byte{'a'}, maxPEMBytes+1), keyPEM: ecdsaLeaf.KeyPEM,
			wantErr: "tls.crt is larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeyPair(tt.certPEM, tt.keyPEM)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseKeyPair succeeded, want error containing %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %q, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %q spans several lines", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeyPair: %v", err)
			}
			if got.Serial != tt.wantSerial {
				t.Errorf("Serial = %q, want %q", got.Serial, tt.wantSerial)
			}
			if n := len(got.Certificate.Certificate); n != tt.wantChain {
				t.Errorf("chain length = %d, want %d", n, tt.wantChain)
			}
			if got.Certificate.Leaf == nil || got.Certificate.PrivateKey == nil {
				t.Fatal("Leaf or PrivateKey not set")
			}
			if strings.Join(got.DNSNames, ",") != strings.Join(tt.wantNames, ",") {
				t.Errorf("DNSNames = %v, want %v", got.DNSNames, tt.wantNames)
			}
			if !got.NotAfter.Equal(got.Certificate.Leaf.NotAfter) {
				t.Errorf("NotAfter = %v, want the leaf's %v", got.NotAfter, got.Certificate.Leaf.NotAfter)
			}
			if expiredNow := got.NotAfter.Before(time.Now()); expiredNow != tt.wantExpire {
				t.Errorf("NotAfter %v in the past = %v, want %v", got.NotAfter, expiredNow, tt.wantExpire)
			}
		})
	}
}

func TestSelfSigned(t *testing.T) {
	pair, err := SelfSigned("portico.invalid", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Certificate.Leaf
	if leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm = %v, want ECDSA", leaf.PublicKeyAlgorithm)
	}
	if leaf.Subject.CommonName != "portico.invalid" {
		t.Errorf("CommonName = %q", leaf.Subject.CommonName)
	}
	if err := leaf.VerifyHostname("portico.invalid"); err != nil {
		t.Errorf("VerifyHostname: %v", err)
	}
	if d := time.Until(pair.NotAfter); d <= 0 || d > time.Hour {
		t.Errorf("NotAfter is %v from now, want within an hour", d)
	}
	if pair.Serial == "" {
		t.Error("empty Serial")
	}
	other, err := SelfSigned("portico.invalid", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if other.Serial == pair.Serial {
		t.Error("two self-signed certificates share a serial")
	}
	if _, err := SelfSigned("x", 0); err == nil {
		t.Error("SelfSigned with zero validity succeeded")
	}
}
