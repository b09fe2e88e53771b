package snapshot

import (
	"crypto/tls"
	"os"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNginxTableComplete holds the table to its promise: every row not
// served exactly says what Portico does instead, and no name repeats.
func TestNginxTableComplete(t *testing.T) {
	seen := make(map[string]bool)
	for _, a := range NginxAnnotations() {
		if seen[a.Name] {
			t.Errorf("%s: listed twice", a.Name)
		}
		seen[a.Name] = true
		if a.Verdict != NginxExact && a.Note == "" {
			t.Errorf("%s: verdict %s without a note", a.Name, a.Verdict)
		}
		if strings.Contains(a.Name, "snippet") && a.Verdict != NginxNeverExecuted {
			t.Errorf("%s: a snippet must be never-executed, not %s", a.Name, a.Verdict)
		}
		for _, peer := range []string{a.Traefik, a.Ingress2Gateway} {
			if peer != "yes" && peer != "partial" && peer != "no" {
				t.Errorf("%s: peer verdict %q is not yes, partial or no", a.Name, peer)
			}
		}
	}
}

// TestNginxGlobalTableComplete holds the ConfigMap table to the same
// promise, and each key that defaults an annotation to a real one.
func TestNginxGlobalTableComplete(t *testing.T) {
	seen := make(map[string]bool)
	for _, g := range NginxGlobals() {
		if seen[g.Name] {
			t.Errorf("%s: listed twice", g.Name)
		}
		seen[g.Name] = true
		if g.Verdict == "" || (g.Verdict != NginxExact && g.Note == "") {
			t.Errorf("%s: verdict %q without a note", g.Name, g.Verdict)
		}
		if g.Annotation != "" && nginxByName[g.Annotation] == nil {
			t.Errorf("%s: defaults %q, which is not an annotation", g.Name, g.Annotation)
		}
		if strings.Contains(g.Name, "snippet") && !strings.HasPrefix(g.Name, "allow-") && g.Verdict != NginxNeverExecuted {
			t.Errorf("%s: a snippet must be never-executed, not %s", g.Name, g.Verdict)
		}
	}
}

func TestNginxFindings(t *testing.T) {
	cases := []struct {
		name, annotation, value string
		verdict                 NginxVerdict
		invalid                 bool
	}{
		{"exact rewrite", "rewrite-target", "/$1", NginxExact, false},
		{"rewrite with a variable", "rewrite-target", "/$uri", NginxExact, true},
		{"snippet", "configuration-snippet", "return 200;", NginxNeverExecuted, false},
		{"unknown", "made-up", "1", NginxUnknown, false},
		{"unsupported", "limit-rate", "1024", NginxUnsupported, false},
		{"rate limit", "limit-rps", "5", NginxExact, false},
		{"rate limit garbage", "limit-rps", "0.5", NginxExact, true},
		{"rate limit exemption garbage", "limit-allowlist", "10.0.0.0/33", NginxExact, true},
		{"backend HTTP is exact", "backend-protocol", "http", NginxExact, false},
		{"backend GRPC is h2c", "backend-protocol", "GRPC", NginxExact, false},
		{"backend HTTPS is approximate", "backend-protocol", "HTTPS", NginxApproximate, false},
		{"backend garbage", "backend-protocol", "SPDY", NginxApproximate, true},
		{"size with unit", "proxy-body-size", "1g", NginxApproximate, false},
		{"size garbage", "proxy-body-size", "1 GB", NginxApproximate, true},
		{"redirect code out of range", "permanent-redirect-code", "200", NginxExact, true},
		{"allow list", "whitelist-source-range", "10.0.0.0/8,::1", NginxExact, false},
		{"allow list garbage", "whitelist-source-range", "10.0.0.0/8,nope", NginxExact, true},
		{"bool garbage", "use-regex", "yes please", NginxExact, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "x", Annotations: map[string]string{NginxPrefix + c.annotation: c.value}}}
			fs := NginxFindings(ing)
			if len(fs) != 1 {
				t.Fatalf("got %d findings, want 1: %+v", len(fs), fs)
			}
			f := fs[0]
			if f.Verdict != c.verdict || (f.Invalid != "") != c.invalid {
				t.Errorf("got verdict %s invalid %q, want %s invalid=%t", f.Verdict, f.Invalid, c.verdict, c.invalid)
			}
			if f.reported() != (c.verdict != NginxExact || c.invalid) {
				t.Errorf("reported() = %t", f.reported())
			}
		})
	}
}

func TestNginxBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "100": 100, "8k": 8 << 10, "8m": 8 << 20, "2G": 2 << 30} {
		if got, ok := nginxBytes(in); !ok || got != want {
			t.Errorf("nginxBytes(%q) = %d, %t; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5m", "1t", "99999999999999999999"} {
		if _, ok := nginxBytes(in); ok {
			t.Errorf("nginxBytes(%q) accepted", in)
		}
	}
}

// TestNginxProxySSLLists reads proxy-ssl-ciphers and proxy-ssl-protocols
// values as ingress-nginx users write them.
func TestNginxProxySSLLists(t *testing.T) {
	for _, tc := range []struct {
		in      string
		suites  []uint16
		skipped []string
		ok      bool
	}{
		{"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, nil, true},
		{"DEFAULT", nil, nil, true},
		{"HIGH:!aNULL:!MD5", nil, nil, true},
		{"ECDHE-RSA-AES256-GCM-SHA384:AES128-SHA:!ECDHE-RSA-AES128-SHA", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}, []string{"AES128-SHA", "!ECDHE-RSA-AES128-SHA"}, true},
		{"RC4-MD5", nil, []string{"RC4-MD5"}, false},
		{"ECDHE RSA", nil, nil, false},
		{"", nil, nil, false},
	} {
		suites, skipped, ok := nginxCiphers(tc.in)
		if ok != tc.ok || !slices.Equal(suites, tc.suites) || !slices.Equal(skipped, tc.skipped) {
			t.Errorf("nginxCiphers(%q) = %v, %q, %t; want %v, %q, %t", tc.in, suites, skipped, ok, tc.suites, tc.skipped, tc.ok)
		}
	}
	for _, tc := range []struct {
		in     string
		lo, hi uint16
		ok     bool
	}{
		{"TLSv1.2 TLSv1.3", tls.VersionTLS12, tls.VersionTLS13, true},
		{"TLSv1.3", tls.VersionTLS13, tls.VersionTLS13, true},
		{"TLSv1 TLSv1.1 TLSv1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLSv1.1", 0, 0, false},
		{"TLSv1.4", 0, 0, false},
	} {
		lo, hi, ok := nginxProtocols(tc.in)
		if lo != tc.lo || hi != tc.hi || ok != tc.ok {
			t.Errorf("nginxProtocols(%q) = %x, %x, %t; want %x, %x, %t", tc.in, lo, hi, ok, tc.lo, tc.hi, tc.ok)
		}
	}
}

// TestAdoptClasses: Ingresses of an adopted class are served although
// their IngressClass names another controller, by spec.ingressClassName
// and by the legacy annotation; other classes stay someone else's.
func TestAdoptClasses(t *testing.T) {
	nginx := "nginx"
	other := "other"
	objs := Objects{
		IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "nginx"}, Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}}},
		Ingresses: []*networkingv1.Ingress{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "by-name"}, Spec: networkingv1.IngressSpec{IngressClassName: &nginx}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "legacy", Annotations: map[string]string{annotationIngressClass: "nginx"}}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "other"}, Spec: networkingv1.IngressSpec{IngressClassName: &other}},
		},
	}
	cfg := Config{ControllerName: "portico.dev/controller", IngressClass: "portico"}
	if got := Build(objs, cfg, nil).Ingresses; len(got) != 0 {
		t.Errorf("without adoption: served %v", got)
	}
	cfg.AdoptClasses = []string{"nginx"}
	got := Build(objs, cfg, nil).Ingresses
	if len(got) != 2 || got[0].Name != "by-name" || got[1].Name != "legacy" {
		t.Errorf("adopting nginx: served %v, want by-name and legacy", got)
	}
}

// TestNginxDocUpToDate fails when docs/ingress-nginx.md no longer matches
// the annotation table; make docs-ingress-nginx rewrites it.
func TestNginxDocUpToDate(t *testing.T) {
	var buf strings.Builder
	if err := WriteNginxDoc(&buf); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/ingress-nginx.md")
	if err != nil {
		t.Fatalf("%v; run make docs-ingress-nginx", err)
	}
	if string(doc) != buf.String() {
		t.Error("docs/ingress-nginx.md is out of date with the annotation table; run make docs-ingress-nginx and commit the result")
	}
}

func TestNginxPerValueVerdicts(t *testing.T) {
	cases := []struct {
		annotation, value string
		verdict           NginxVerdict
		invalid           bool
	}{
		{"proxy-buffering", "off", NginxExact, false},
		{"proxy-buffering", "on", NginxApproximate, false},
		{"proxy-buffering", "sometimes", NginxApproximate, true},
		{"proxy-request-buffering", "off", NginxExact, false},
		{"proxy-http-version", "1.1", NginxExact, false},
		{"proxy-http-version", "1.0", NginxApproximate, false},
	}
	for _, c := range cases {
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "x", Annotations: map[string]string{NginxPrefix + c.annotation: c.value}}}
		f := NginxFindings(ing)[0]
		if f.Verdict != c.verdict || (f.Invalid != "") != c.invalid {
			t.Errorf("%s=%s: verdict %s invalid %q, want %s invalid=%t", c.annotation, c.value, f.Verdict, f.Invalid, c.verdict, c.invalid)
		}
	}
}

// TestSSLRedirectDefault: ingress-nginx's HTTPS redirect for hosts with TLS
// applies to Ingresses written for it (the nginx class, an adopted class,
// or one of its annotations), never to Portico's own.
func TestSSLRedirectDefault(t *testing.T) {
	ing := func(name, class string, annotations map[string]string) *networkingv1.Ingress {
		prefix := networkingv1.PathTypePrefix
		return &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: name, Annotations: annotations},
			Spec: networkingv1.IngressSpec{
				IngressClassName: &class,
				TLS:              []networkingv1.IngressTLS{{Hosts: []string{name + ".example.com"}}},
				Rules: []networkingv1.IngressRule{{Host: name + ".example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}},
				}}}},
			},
		}
	}
	objs := Objects{
		IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: "portico"}, Spec: networkingv1.IngressClassSpec{Controller: "portico.dev/controller"}}},
		Ingresses: []*networkingv1.Ingress{
			ing("own", "portico", nil),
			ing("annotated", "portico", map[string]string{NginxPrefix + "proxy-body-size": "1m"}),
			ing("nginx", "nginx", nil),
			ing("internal", "nginx-internal", nil),
			ing("opted-out", "nginx", map[string]string{NginxPrefix + "ssl-redirect": "false"}),
		},
	}
	cfg := Config{ControllerName: "portico.dev/controller", IngressClass: "portico", AdoptClasses: []string{"nginx", "nginx-internal"}}
	want := map[string]bool{"own": false, "annotated": true, "nginx": true, "internal": true, "opted-out": false}
	routes := Build(objs, cfg, nil).Routes.Routes()
	if len(routes) != len(want) {
		t.Fatalf("%d routes, want %d", len(routes), len(want))
	}
	for _, r := range routes {
		if r.RedirectHTTPS != want[r.Source.Name] {
			t.Errorf("%s: RedirectHTTPS %t, want %t", r.Source.Name, r.RedirectHTTPS, want[r.Source.Name])
		}
	}
}

// TestNginxSSLPassthroughValues: only "true" and "false" are read; every
// other spelling, ParseBool's included, is refused, and "false" is served
// exactly (nothing is passed through).
func TestNginxSSLPassthroughValues(t *testing.T) {
	for value, want := range map[string]struct {
		on      bool
		invalid bool
		verdict NginxVerdict
	}{
		"true":  {on: true, verdict: NginxApproximate},
		"false": {verdict: NginxExact},
		"yes":   {invalid: true, verdict: NginxApproximate},
		"1":     {invalid: true, verdict: NginxApproximate},
		"TRUE":  {invalid: true, verdict: NginxApproximate},
		"":      {invalid: true, verdict: NginxApproximate},
	} {
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "pt", Namespace: "default",
			Annotations: map[string]string{NginxPrefix + "ssl-passthrough": value}}}
		nc, findings := parseNginx(ing, nil, nil)
		if len(findings) != 1 {
			t.Fatalf("%q: findings %v", value, findings)
		}
		f := findings[0]
		if nc.sslPassthrough != want.on || (f.Invalid != "") != want.invalid || f.Verdict != want.verdict {
			t.Errorf("%q: on %t, invalid %q, verdict %s; want on %t, invalid %t, verdict %s", value, nc.sslPassthrough, f.Invalid, f.Verdict, want.on, want.invalid, want.verdict)
		}
	}
}
