package snapshot_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/internal/testkit"
	"portico.dev/portico/internal/testkit/fixture"
	"portico.dev/portico/snapshot"
)

// TestGatewayACMEListenersGolden builds testdata/gateway-acme with ACME
// enabled and compares the ACME hosts and the snapshot with
// acme-enabled.golden; TestBuildGolden pins the same objects with ACME off.
func TestGatewayACMEListenersGolden(t *testing.T) {
	dir := filepath.Join("testdata", "gateway-acme")
	cfg := gatewayConfig
	// shop.example.com's ACME certificate is close to expiry: a warning on
	// the Gateway whose listener asks for it.
	cfg.ACME = snapshot.ACMEConfig{Enabled: true, Expiring: map[string]time.Time{
		"shop.example.com": time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	}}
	s := snapshot.Build(fixture.Dir(t, dir), cfg, nil)
	var out strings.Builder
	fmt.Fprintf(&out, "acme hosts: %s\n", strings.Join(s.ACMEHosts, " "))
	out.Write(describe(s))
	got := out.String()

	testkit.Golden(t, filepath.Join(dir, "acme-enabled.golden"), []byte(got))
}

// TestGatewayACMEListenerConditions pins the listener conditions and the
// ACME hosts for each way a listener can ask for an ACME certificate.
func TestGatewayACMEListenerConditions(t *testing.T) {
	type want struct {
		accepted, programmed, resolved string // "True" or "False/<Reason>"
		acmeHosts                      string
		message                        string // substring of the Accepted message
	}
	for _, tc := range []struct {
		name     string
		enabled  bool
		hostname string
		options  map[gatewayv1.AnnotationKey]gatewayv1.AnnotationValue
		certRefs bool
		want     want
	}{
		{name: "exact hostname", enabled: true, hostname: "a.example.com", options: acmeOption("true"),
			want: want{accepted: "True", programmed: "True", resolved: "True", acmeHosts: "a.example.com"}},
		{name: "ACME disabled", hostname: "a.example.com", options: acmeOption("true"),
			want: want{accepted: "False/Invalid", programmed: "False/Invalid", resolved: "True", message: "without --acme-directory"}},
		{name: "wildcard hostname", enabled: true, hostname: "*.example.com", options: acmeOption("true"),
			want: want{accepted: "False/Invalid", programmed: "False/Invalid", resolved: "True", message: "wildcard"}},
		{name: "no hostname", enabled: true, options: acmeOption("true"),
			want: want{accepted: "False/Invalid", programmed: "False/Invalid", resolved: "True", message: "exact listener hostname"}},
		{name: "option not true", enabled: true, hostname: "a.example.com", options: acmeOption("yes"),
			want: want{accepted: "False/Invalid", programmed: "False/Invalid", resolved: "True", message: `is "yes"`}},
		{name: "neither option nor certificateRefs", enabled: true, hostname: "a.example.com",
			want: want{accepted: "False/Invalid", programmed: "False/Invalid", resolved: "True", message: "needs tls.certificateRefs"}},
		{name: "certificateRefs win over the option", enabled: true, hostname: "a.example.com", options: acmeOption("true"), certRefs: true,
			want: want{accepted: "True", programmed: "False/Invalid", resolved: "False/InvalidCertificateRef"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listener := gatewayv1.Listener{Name: "https", Port: 443, Protocol: gatewayv1.HTTPSProtocolType,
				TLS: &gatewayv1.ListenerTLSConfig{Options: tc.options}}
			if tc.hostname != "" {
				listener.Hostname = ptrTo(gatewayv1.Hostname(tc.hostname))
			}
			if tc.certRefs {
				listener.TLS.CertificateRefs = []gatewayv1.SecretObjectReference{{Name: "missing-tls"}}
			}
			objs := snapshot.Objects{
				GatewayClasses: []*gatewayv1.GatewayClass{gatewayClass()},
				Gateways:       []*gatewayv1.Gateway{acmeGateway(listener)},
			}
			cfg := gatewayConfig
			cfg.ACME.Enabled = tc.enabled
			s := snapshot.Build(objs, cfg, nil)
			st := s.GatewayAPI.Gateways[types.NamespacedName{Namespace: "infra", Name: "edge"}]
			if len(st.Listeners) != 1 {
				t.Fatalf("listener status %+v", st.Listeners)
			}
			got := want{acmeHosts: strings.Join(s.ACMEHosts, " "), message: tc.want.message}
			for _, c := range st.Listeners[0].Conditions {
				v := string(c.Status)
				if c.Status != "True" {
					v += "/" + c.Reason
				}
				switch gatewayv1.ListenerConditionType(c.Type) {
				case gatewayv1.ListenerConditionAccepted:
					got.accepted = v
					if tc.want.message != "" && !strings.Contains(c.Message, tc.want.message) {
						t.Errorf("Accepted message %q lacks %q", c.Message, tc.want.message)
					}
				case gatewayv1.ListenerConditionProgrammed:
					got.programmed = v
				case gatewayv1.ListenerConditionResolvedRefs:
					got.resolved = v
				}
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if tc.want.accepted != "True" && len(s.Problems) == 0 {
				t.Error("a rejected listener left no problem")
			}
			served := len(s.Listeners) == 1
			if served != (tc.want.programmed == "True") {
				t.Errorf("%d sockets, want one only for a programmed listener", len(s.Listeners))
			}
		})
	}
}

func acmeGateway(listener gatewayv1.Listener) *gatewayv1.Gateway {
	return &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: "edge"},
		Spec:       gatewayv1.GatewaySpec{GatewayClassName: "portico", Listeners: []gatewayv1.Listener{listener}},
	}
}

func acmeOption(v string) map[gatewayv1.AnnotationKey]gatewayv1.AnnotationValue {
	return map[gatewayv1.AnnotationKey]gatewayv1.AnnotationValue{"portico.dev/acme": gatewayv1.AnnotationValue(v)}
}
