package manifests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"portico.dev/portico/snapshot"
)

const (
	serviceWeb = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  ports:
  - port: 80
`
	ingressWeb = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
spec:
  ingressClassName: portico
  rules:
  - host: shop.example.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
`
	ingressClass = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: portico
spec:
  controller: portico.dev/ingress-controller
`
	endpointsWeb = `apiVersion: v1
kind: Endpoints
metadata:
  name: web
  namespace: shop
subsets:
- addresses:
  - ip: 127.0.0.1
  ports:
  - port: 18081
`
	sliceWebJSON = `{
  "apiVersion": "discovery.k8s.io/v1",
  "kind": "EndpointSlice",
  "metadata": {"name": "web-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
  "addressType": "IPv4",
  "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
  "ports": [{"port": 18081}]
}
`
	secretTLS = `apiVersion: v1
kind: Secret
metadata:
  name: shop-tls
  namespace: shop
type: kubernetes.io/tls
data:
  tls.crt: Y2VydA==
  tls.key: a2V5
`
	deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: example.test/web
`
)

// names lists every object in the order the builder receives them.
func names(objs snapshot.Objects) []string {
	var out []string
	for _, o := range objs.Ingresses {
		out = append(out, "Ingress "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.IngressClasses {
		out = append(out, "IngressClass "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.Services {
		out = append(out, "Service "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.Endpoints {
		out = append(out, "Endpoints "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.EndpointSlices {
		out = append(out, "EndpointSlice "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.Secrets {
		out = append(out, "Secret "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.Namespaces {
		out = append(out, "Namespace "+o.Name)
	}
	for _, o := range objs.GatewayClasses {
		out = append(out, "GatewayClass "+o.Name)
	}
	for _, o := range objs.Gateways {
		out = append(out, "Gateway "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.HTTPRoutes {
		out = append(out, "HTTPRoute "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.ReferenceGrants {
		out = append(out, "ReferenceGrant "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.BackendTLSPolicies {
		out = append(out, "BackendTLSPolicy "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.ConfigMaps {
		out = append(out, "ConfigMap "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.ListenerSets {
		out = append(out, "ListenerSet "+o.Namespace+"/"+o.Name)
	}
	for _, o := range objs.ClusterTrustBundles {
		out = append(out, "ClusterTrustBundle "+o.Name)
	}
	return out
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func problemLines(ps []Problem, dir string) []string {
	var out []string
	for _, p := range ps {
		out = append(out, strings.TrimPrefix(p.String(), dir+string(filepath.Separator)))
	}
	return out
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		// want lists the objects in delivery order (see names).
		want []string
		// wantProblems are substrings, in order, of the problems' String()
		// with the folder prefix removed.
		wantProblems []string
		check        func(t *testing.T, objs snapshot.Objects)
	}{
		{
			name: "several documents per file, empty ones ignored",
			files: map[string]string{
				"shop.yaml": "---\n" + serviceWeb + "---\n# just a comment\n---\n" + ingressWeb + "---\n" + endpointsWeb + "---\n",
			},
			want: []string{"Ingress shop/web", "Service shop/web", "Endpoints shop/web"},
		},
		{
			name: "v1 List items are expanded",
			files: map[string]string{
				"list.yaml": `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: api, namespace: shop}
  spec: {ports: [{port: 80}]}
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata: {name: api, namespace: shop}
`,
			},
			want: []string{"Ingress shop/api", "Service shop/api"},
		},
		{
			name: "typed lists are expanded",
			files: map[string]string{
				"services.yaml": `apiVersion: v1
kind: ServiceList
items:
- metadata: {name: a}
- metadata: {name: b, namespace: shop}
`,
			},
			want: []string{"Service default/a", "Service shop/b"},
		},
		{
			name: "lists of kinds not served, and nested lists, are skipped",
			files: map[string]string{
				"lists.yaml": "apiVersion: apps/v1\nkind: DeploymentList\nitems:\n- metadata: {name: a}\n---\n" +
					"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: v1\n    kind: Service\n    metadata: {name: nested}\n",
			},
		},
		{
			name: "every served kind, YAML and JSON",
			files: map[string]string{
				"a.yaml":     ingressWeb + "---\n" + ingressClass + "---\n" + serviceWeb,
				"b.yml":      endpointsWeb,
				"c.json":     sliceWebJSON,
				"d/tls.yaml": secretTLS,
			},
			want: []string{
				"Ingress shop/web", "IngressClass /portico", "Service shop/web",
				"Endpoints shop/web", "EndpointSlice shop/web-abc", "Secret shop/shop-tls",
			},
			check: func(t *testing.T, objs snapshot.Objects) {
				if got := objs.Ingresses[0].Spec.Rules[0].Host; got != "shop.example.test" {
					t.Errorf("ingress host = %q", got)
				}
				if got := objs.EndpointSlices[0].Endpoints[0].Addresses; !slices.Equal(got, []string{"127.0.0.1"}) {
					t.Errorf("slice addresses = %v", got)
				}
				if got := string(objs.Secrets[0].Data[corev1.TLSCertKey]); got != "cert" {
					t.Errorf("tls.crt = %q", got)
				}
			},
		},
		{
			name: "namespaces defaulted like the API server",
			files: map[string]string{
				"a.yaml": strings.ReplaceAll(serviceWeb, "  namespace: shop\n", "") + "---\n" +
					strings.Replace(ingressClass, "  name: portico\n", "  name: portico\n  namespace: stray\n", 1),
			},
			want: []string{"IngressClass /portico", "Service default/web"},
		},
		{
			name: "stringData merged into data, winning over it",
			files: map[string]string{
				"tls.yaml": secretTLS + "stringData:\n  tls.crt: plain-cert\n  ca.crt: plain-ca\n",
			},
			want: []string{"Secret shop/shop-tls"},
			check: func(t *testing.T, objs snapshot.Objects) {
				s := objs.Secrets[0]
				want := map[string]string{"tls.crt": "plain-cert", "tls.key": "key", "ca.crt": "plain-ca"}
				if len(s.Data) != len(want) {
					t.Errorf("data has %d keys, want %d", len(s.Data), len(want))
				}
				for k, v := range want {
					if got := string(s.Data[k]); got != v {
						t.Errorf("data[%s] = %q, want %q", k, got, v)
					}
				}
				if s.StringData != nil {
					t.Errorf("stringData left behind: %v", s.StringData)
				}
			},
		},
		{
			// Opaque Secrets hold basic authentication users.
			name: "secrets other than TLS and Opaque are skipped quietly",
			files: map[string]string{
				"secrets.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: x}\n---\n" +
					"apiVersion: v1\nkind: Secret\nmetadata: {name: token}\ntype: kubernetes.io/service-account-token\n",
			},
			want: []string{"Secret default/db"},
		},
		{
			name: "kinds Portico does not serve are skipped",
			files: map[string]string{
				"app.yaml": deployment + "---\n" +
					"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: r}\n---\n" +
					"apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: old}\n---\n" + serviceWeb,
			},
			want: []string{"Service shop/web"},
		},
		{
			name: "a bad document is skipped, the rest of the file loads",
			files: map[string]string{
				"shop.yaml": serviceWeb + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: [broken\n---\n" + ingressWeb,
			},
			want:         []string{"Ingress shop/web", "Service shop/web"},
			wantProblems: []string{"shop.yaml: document 2: invalid YAML: yaml: line 13: "},
		},
		{
			name: "documents that are not objects",
			files: map[string]string{
				"a.yaml": "just a string\n---\n- a\n- list\n---\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: shop}\n",
			},
			wantProblems: []string{
				"a.yaml: document 1: not a Kubernetes object",
				"a.yaml: document 2: not a Kubernetes object",
				"a.yaml: document 3: apiVersion and kind are required",
				"a.yaml: document 4: Service: metadata.name is required",
			},
		},
		{
			name: "misspelt fields are reported, the object is kept",
			files: map[string]string{
				"svc.yaml": serviceWeb + "  sevice: typo\n",
			},
			want:         []string{"Service shop/web"},
			wantProblems: []string{`svc.yaml: document 1: Service shop/web: strict decoding error: unknown field "spec.sevice"`},
		},
		{
			name: "duplicate object: the file sorting first wins",
			files: map[string]string{
				"b.yaml": strings.Replace(serviceWeb, "port: 80", "port: 8080", 1),
				"a.yaml": serviceWeb + "---\n" + serviceWeb,
			},
			want: []string{"Service shop/web"},
			wantProblems: []string{
				"a.yaml: document 2: Service shop/web: duplicate: already defined in document 1 of this file",
				"b.yaml: document 1: Service shop/web: duplicate: already defined in ",
			},
			check: func(t *testing.T, objs snapshot.Objects) {
				if got := objs.Services[0].Spec.Ports[0].Port; got != 80 {
					t.Errorf("winning Service has port %d, want 80 from a.yaml", got)
				}
			},
		},
		{
			name: "hidden names, other extensions and subfolders",
			files: map[string]string{
				".hidden.yaml":      serviceWeb,
				".git/config.yaml":  serviceWeb,
				"notes.txt":         serviceWeb,
				"deep/er/svc.YAML":  strings.Replace(serviceWeb, "name: web", "name: deep", 1),
				"deep/.swp/x.yaml":  serviceWeb,
				"top.yaml":          serviceWeb,
				"empty.yaml":        "",
				"comments-only.yml": "# nothing here\n",
			},
			want: []string{"Service shop/deep", "Service shop/web"},
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

func TestLoadYAMLErrorLineCountsFromTopOfFile(t *testing.T) {
	dir := t.TempDir()
	// The unterminated flow sequence is on line 13 of the file, line 5 of
	// its document.
	writeFiles(t, dir, map[string]string{
		"a.yaml": serviceWeb + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: [broken\n",
	})
	_, problems, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 {
		t.Fatalf("problems = %v", problems)
	}
	if msg := problems[0].Err.Error(); !strings.Contains(msg, "line 13:") {
		t.Errorf("error %q does not point at line 13 of the file", msg)
	}
}

func TestLoadConfigMapVolumeLayout(t *testing.T) {
	// A ConfigMap volume: the data lives in a hidden timestamped folder,
	// "..data" points at it, and each key is a top-level symlink through
	// "..data".
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"..2026_01_01/shop.yaml": serviceWeb})
	if err := os.Symlink("..2026_01_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "shop.yaml"), filepath.Join(dir, "shop.yaml")); err != nil {
		t.Fatal(err)
	}
	// A symlink loop must not hang the walk.
	if err := os.Symlink(".", filepath.Join(dir, "loop")); err != nil {
		t.Fatal(err)
	}

	objs, problems, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(objs), []string{"Service shop/web"}; !slices.Equal(got, want) {
		t.Errorf("objects = %q, want %q", got, want)
	}
	if len(problems) != 0 {
		t.Errorf("problems = %v", problems)
	}
}

func TestLoadUnreadableFolder(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file.yaml")
	writeFiles(t, dir, map[string]string{"file.yaml": serviceWeb})

	for _, path := range []string{filepath.Join(dir, "missing"), file} {
		if _, _, err := Load(path); err == nil {
			t.Errorf("Load(%q) succeeded, want an error", path)
		}
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "m/a.yaml", Doc: 2, Object: "Ingress shop/web", Err: errString("bad\n  thing")}, "m/a.yaml: document 2: Ingress shop/web: bad thing"},
		{Problem{File: "m/a.yaml", Err: errString("cannot read file")}, "m/a.yaml: cannot read file"},
		{Problem{File: "m/a.yaml", Doc: 1}, "m/a.yaml: document 1: unknown error"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
