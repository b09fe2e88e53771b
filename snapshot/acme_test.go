package snapshot_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"portico.dev/portico/internal/testkit"
	"portico.dev/portico/internal/testkit/fixture"
	"portico.dev/portico/snapshot"
)

// TestACMEHostsGolden builds testdata/acme/<case>/objects.yaml once per
// ACME configuration and compares the hosts ACME may serve, and the
// problems, with testdata/acme/<case>/<configuration>.golden.
func TestACMEHostsGolden(t *testing.T) {
	configs := map[string]snapshot.ACMEConfig{
		"enabled":       {Enabled: true},
		"all-ingresses": {Enabled: true, AllIngresses: true},
		"disabled":      {},
		// new.example.org's ACME certificate is close to expiry: a warning
		// on the Ingress that asks for it. a.example.com is served by its
		// Secret, not ACME, so an old ACME certificate for it is not
		// reported.
		"expiring": {Enabled: true, Expiring: map[string]time.Time{
			"new.example.org": time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
			"a.example.com":   time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		}},
	}
	dirs, err := filepath.Glob("testdata/acme/*/objects.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no ACME golden cases found: %v", err)
	}
	for _, in := range dirs {
		dir := filepath.Dir(in)
		objs := fixture.Manifests(t, dir)
		for name, acme := range configs {
			t.Run(filepath.Base(dir)+"/"+name, func(t *testing.T) {
				cfg := goldenConfig
				cfg.ACME = acme
				got := describeACME(snapshot.Build(objs, cfg, nil))
				testkit.Golden(t, filepath.Join(dir, name+".golden"), got)
			})
		}
	}
}

func describeACME(s *snapshot.Snapshot) []byte {
	var out strings.Builder
	out.WriteString("acme hosts:\n")
	if len(s.ACMEHosts) == 0 {
		out.WriteString("  none\n")
	}
	for _, h := range s.ACMEHosts {
		fmt.Fprintf(&out, "  %s\n", h)
	}
	out.WriteString("certificates:\n")
	for _, b := range s.Bindings {
		fmt.Fprintf(&out, "  %s <- %s\n", b.Host, b.Source)
	}
	out.WriteString("problems:\n")
	if len(s.Problems) == 0 {
		out.WriteString("  none\n")
	}
	for _, p := range s.Problems {
		fmt.Fprintf(&out, "  %s\n", p)
	}
	return []byte(out.String())
}

// TestCertificateExpiresSoon checks the warning given 14 days before a
// Secret's certificate expires, and not earlier.
func TestCertificateExpiresSoon(t *testing.T) {
	notAfter := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	c := testkit.SelfSigned(t, testkit.Leaf{DNSNames: []string{"soon.example.org"}, NotAfter: notAfter})
	certPEM, keyPEM := c.CertPEM, c.KeyPEM
	class := "portico"
	objs := snapshot.Objects{
		IngressClasses: []*networkingv1.IngressClass{{
			ObjectMeta: metav1.ObjectMeta{Name: "portico"},
			Spec:       networkingv1.IngressClassSpec{Controller: "portico.dev/controller"},
		}},
		Ingresses: []*networkingv1.Ingress{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "soon"},
			Spec: networkingv1.IngressSpec{
				IngressClassName: &class,
				TLS:              []networkingv1.IngressTLS{{Hosts: []string{"soon.example.org"}, SecretName: "soon-tls"}},
			},
		}},
		Secrets: []*corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "soon-tls"},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
		}},
	}
	for _, tc := range []struct {
		now  time.Time
		want string
	}{
		{notAfter.Add(-15 * 24 * time.Hour), ""},
		{notAfter.Add(-13 * 24 * time.Hour), "CertificateExpiresSoon"},
		{notAfter.Add(time.Hour), "CertificateExpired"},
	} {
		cfg := goldenConfig
		cfg.Now = tc.now
		var reasons []string
		for _, p := range snapshot.Build(objs, cfg, nil).Problems {
			if strings.HasPrefix(p.Reason, "Certificate") {
				reasons = append(reasons, p.Reason)
			}
		}
		if got := strings.Join(reasons, ","); got != tc.want {
			t.Errorf("%s before expiry: certificate problems %q, want %q", notAfter.Sub(tc.now), got, tc.want)
		}
	}
}
