package manifests

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/snapshot"
)

const (
	gatewayClassYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: portico
spec:
  controllerName: portico.dev/gateway-controller
`
	gatewayYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: edge
  namespace: shop
spec:
  gatewayClassName: portico
  addresses:
  - value: 127.0.0.2
  listeners:
  - name: http
    protocol: HTTP
    port: 8000
  - name: https
    protocol: HTTPS
    port: 8001
    hostname: "*.example.test"
    tls:
      certificateRefs:
      - name: shop-tls
    allowedRoutes:
      namespaces:
        from: Selector
        selector:
          matchLabels: {team: shop}
`
	httpRouteYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: shop
spec:
  parentRefs:
  - name: edge
  hostnames: [shop.example.test]
  rules:
  - matches:
    - headers:
      - name: x-canary
        value: "1"
    backendRefs:
    - name: web
      port: 80
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https}
  - backendRefs:
    - name: api
      port: 80
      weight: 3
`
	referenceGrantYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: from-shop
  namespace: backends
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    namespace: shop
  to:
  - group: ""
    kind: Service
`
	backendTLSPolicyYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: to-api
  namespace: shop
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: api
  validation:
    hostname: api.shop.internal
    caCertificateRefs:
    - group: ""
      kind: ConfigMap
      name: api-ca
`
	caConfigMapYAML = `apiVersion: v1
kind: ConfigMap
metadata:
  name: api-ca
  namespace: shop
data:
  ca.crt: |
    -----BEGIN CERTIFICATE-----
`
	namespaceYAML = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: shop}
`
)

func TestLoadGatewayAPI(t *testing.T) {
	tests := []struct {
		name         string
		files        map[string]string
		want         []string
		wantProblems []string
		check        func(t *testing.T, objs snapshot.Objects)
	}{
		{
			name: "every Gateway API kind and Namespaces",
			files: map[string]string{
				"gateway.yaml": gatewayClassYAML + "---\n" + gatewayYAML + "---\n" + httpRouteYAML,
				"grants.yaml":  referenceGrantYAML + "---\n" + namespaceYAML,
			},
			want: []string{
				"Namespace shop", "GatewayClass portico", "Gateway shop/edge", "HTTPRoute shop/web", "ReferenceGrant backends/from-shop",
			},
			check: func(t *testing.T, objs snapshot.Objects) {
				if got := objs.GatewayClasses[0].Spec.ControllerName; got != "portico.dev/gateway-controller" {
					t.Errorf("controllerName %q", got)
				}
				if got := objs.Namespaces[0].Labels; got["team"] != "shop" || got[corev1.LabelMetadataName] != "shop" {
					t.Errorf("namespace labels %v, want team and the API server's %s", got, corev1.LabelMetadataName)
				}
				if got := objs.ReferenceGrants[0].Spec.From[0].Namespace; got != "shop" {
					t.Errorf("grant from namespace %q", got)
				}
			},
		},
		{
			name:  "BackendTLSPolicy and its CA ConfigMap",
			files: map[string]string{"backend-tls.yaml": backendTLSPolicyYAML + "---\n" + caConfigMapYAML},
			want:  []string{"BackendTLSPolicy shop/to-api", "ConfigMap shop/api-ca"},
			check: func(t *testing.T, objs snapshot.Objects) {
				p := objs.BackendTLSPolicies[0]
				if p.Spec.TargetRefs[0].Name != "api" || p.Spec.Validation.Hostname != "api.shop.internal" ||
					p.Spec.Validation.CACertificateRefs[0].Name != "api-ca" {
					t.Errorf("policy spec %+v", p.Spec)
				}
				if got := objs.ConfigMaps[0].Data["ca.crt"]; !strings.HasPrefix(got, "-----BEGIN CERTIFICATE-----") {
					t.Errorf("ca.crt %q", got)
				}
			},
		},
		{
			name:  "Gateway defaults as the CRD declares them",
			files: map[string]string{"gw.yaml": gatewayYAML},
			want:  []string{"Gateway shop/edge"},
			check: func(t *testing.T, objs snapshot.Objects) {
				gw := objs.Gateways[0]
				if gw.Spec.Addresses[0].Type == nil || *gw.Spec.Addresses[0].Type != gatewayv1.IPAddressType {
					t.Errorf("address type %v, want IPAddress", gw.Spec.Addresses[0].Type)
				}
				http, https := gw.Spec.Listeners[0], gw.Spec.Listeners[1]
				if from := http.AllowedRoutes.Namespaces.From; from == nil || *from != gatewayv1.NamespacesFromSame {
					t.Errorf("http allowedRoutes from %v, want Same", from)
				}
				if from := https.AllowedRoutes.Namespaces.From; *from != gatewayv1.NamespacesFromSelector {
					t.Errorf("an explicit allowedRoutes was replaced: %v", *from)
				}
				if mode := https.TLS.Mode; mode == nil || *mode != gatewayv1.TLSModeTerminate {
					t.Errorf("tls mode %v, want Terminate", mode)
				}
				ref := https.TLS.CertificateRefs[0]
				if ref.Group == nil || *ref.Group != "" || ref.Kind == nil || *ref.Kind != "Secret" {
					t.Errorf("certificateRef group/kind %v/%v, want core Secret", ref.Group, ref.Kind)
				}
			},
		},
		{
			name:  "HTTPRoute defaults as the CRD declares them",
			files: map[string]string{"route.yaml": httpRouteYAML + "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bare}\nspec: {}\n"},
			want:  []string{"HTTPRoute shop/web", "HTTPRoute default/bare"},
			check: func(t *testing.T, objs snapshot.Objects) {
				web, bare := objs.HTTPRoutes[0], objs.HTTPRoutes[1]
				if len(bare.Spec.Rules) != 1 || len(bare.Spec.Rules[0].Matches) != 1 ||
					*bare.Spec.Rules[0].Matches[0].Path.Type != gatewayv1.PathMatchPathPrefix || *bare.Spec.Rules[0].Matches[0].Path.Value != "/" {
					t.Errorf("a route without rules did not get the default rule matching every path: %+v", bare.Spec.Rules)
				}
				p := web.Spec.ParentRefs[0]
				if *p.Group != gatewayv1.GroupName || *p.Kind != "Gateway" {
					t.Errorf("parentRef group/kind %s/%s", *p.Group, *p.Kind)
				}
				m := web.Spec.Rules[0].Matches[0]
				if *m.Path.Type != gatewayv1.PathMatchPathPrefix || *m.Path.Value != "/" || *m.Headers[0].Type != gatewayv1.HeaderMatchExact {
					t.Errorf("match defaults: path %s %s, header %s", *m.Path.Type, *m.Path.Value, *m.Headers[0].Type)
				}
				if code := web.Spec.Rules[0].Filters[0].RequestRedirect.StatusCode; code == nil || *code != 302 {
					t.Errorf("redirect status code %v, want 302", code)
				}
				b := web.Spec.Rules[0].BackendRefs[0]
				if *b.Group != "" || *b.Kind != "Service" || *b.Weight != 1 {
					t.Errorf("backendRef defaults %q %q %d", *b.Group, *b.Kind, *b.Weight)
				}
				if w := *web.Spec.Rules[1].BackendRefs[0].Weight; w != 3 {
					t.Errorf("an explicit weight became %d", w)
				}
				if got := len(web.Spec.Rules[1].Matches); got != 1 {
					t.Errorf("a rule without matches has %d after defaulting, want 1", got)
				}
			},
		},
		{
			name: "ListenerSet defaults as the CRD declares them, and ClusterTrustBundles",
			files: map[string]string{"set.yaml": `apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: team, namespace: shop}
spec:
  parentRef: {name: edge}
  listeners:
  - name: app
    protocol: HTTPS
    port: 443
    tls:
      certificateRefs: [{name: team-tls}]
---
apiVersion: certificates.k8s.io/v1
kind: ClusterTrustBundle
metadata: {name: roots, namespace: stray}
spec:
  trustBundle: "-----BEGIN CERTIFICATE-----"
`},
			want: []string{"ListenerSet shop/team", "ClusterTrustBundle roots"},
			check: func(t *testing.T, objs snapshot.Objects) {
				ls := objs.ListenerSets[0]
				if pr := ls.Spec.ParentRef; pr.Group == nil || *pr.Group != gatewayv1.GroupName || pr.Kind == nil || *pr.Kind != "Gateway" {
					t.Errorf("parentRef %+v, want the Gateway kind defaulted", pr)
				}
				l := ls.Spec.Listeners[0]
				if from := l.AllowedRoutes.Namespaces.From; from == nil || *from != gatewayv1.NamespacesFromSame {
					t.Errorf("allowedRoutes from %v, want Same", from)
				}
				if ref := l.TLS.CertificateRefs[0]; l.TLS.Mode == nil || *l.TLS.Mode != gatewayv1.TLSModeTerminate || ref.Kind == nil || *ref.Kind != "Secret" {
					t.Errorf("tls %+v, want Terminate and a core Secret", l.TLS)
				}
				if ns := objs.ClusterTrustBundles[0].Namespace; ns != "" {
					t.Errorf("ClusterTrustBundle kept namespace %q", ns)
				}
			},
		},
		{
			name: "misspelt Gateway API fields name the file and object",
			files: map[string]string{
				"route.yaml": strings.Replace(httpRouteYAML, "  hostnames:", "  hostname:", 1),
			},
			want:         []string{"HTTPRoute shop/web"},
			wantProblems: []string{`route.yaml: document 1: HTTPRoute shop/web: strict decoding error: unknown field "spec.hostname"`},
		},
		{
			name: "wrong types are errors on the named object",
			files: map[string]string{
				"gw.yaml": strings.Replace(gatewayYAML, "port: 8000", "port: eight-thousand", 1),
			},
			wantProblems: []string{"gw.yaml: document 1: Gateway shop/edge: "},
		},
		{
			name: "cluster-scoped kinds lose a stray namespace",
			files: map[string]string{
				"c.yaml": strings.Replace(gatewayClassYAML, "  name: portico\n", "  name: portico\n  namespace: stray\n", 1),
			},
			want: []string{"GatewayClass portico"},
			check: func(t *testing.T, objs snapshot.Objects) {
				if ns := objs.GatewayClasses[0].Namespace; ns != "" {
					t.Errorf("namespace %q kept on a cluster-scoped object", ns)
				}
			},
		},
		{
			name: "duplicate Gateways: the first wins",
			files: map[string]string{
				"a.yaml": gatewayYAML,
				"b.yaml": gatewayYAML,
			},
			want:         []string{"Gateway shop/edge"},
			wantProblems: []string{"b.yaml: document 1: Gateway shop/edge: duplicate: already defined in "},
		},
		{
			name: "other versions of the Gateway API group are not served",
			files: map[string]string{
				"old.yaml": strings.Replace(httpRouteYAML, "gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1", 1),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			objs, problems, err := Load(dir)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got := problemLines(problems, dir)
			if len(got) != len(tt.wantProblems) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.wantProblems)
			} else {
				for i, want := range tt.wantProblems {
					if !strings.Contains(got[i], want) {
						t.Errorf("problem %d = %q, want it to contain %q", i, got[i], want)
					}
				}
			}
			if got := names(objs); !slices.Equal(got, tt.want) {
				t.Fatalf("objects:\n got %q\nwant %q", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, objs)
			}
		})
	}
}
