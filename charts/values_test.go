package charts

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"portico.dev/portico/hack/controlplane"
)

const (
	gatewayAPI     = "gateway.networking.k8s.io/v1/GatewayClass"
	serviceMonitor = "monitoring.coreos.com/v1/ServiceMonitor"
)

// TestChartDefaults renders the default values and checks what a user gets
// without setting any: every built-in object decodes strictly with the
// Kubernetes types, the Pod runs as non-root on a read-only root
// filesystem with no capability, and nothing that needs an optional API is
// rendered when the cluster does not serve it.
func TestChartDefaults(t *testing.T) {
	objs := mustRender(t, nil)
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	for _, o := range objs {
		raw, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := decoder.Decode(raw, nil, nil); err != nil {
			t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	slices.Sort(kinds)
	want := []string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "IngressClass", "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount"}
	if !slices.Equal(kinds, want) {
		t.Errorf("default render has %v, want %v", kinds, want)
	}

	d := deployment(t, objs)
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example.com/portico:latest" {
		t.Errorf("image %q", c.Image)
	}
	psc := d.Spec.Template.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Errorf("pod securityContext %+v, want runAsNonRoot as 65532 (the image's user)", psc)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v, want read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("probes are not /readyz and /healthz")
	}
	for name, want := range map[string]string{
		"publish-service":         "portico/portico",
		"ingress-class":           "portico",
		"controller-name":         "portico.dev/controller",
		"gateway-controller-name": "portico.dev/gateway-controller",
		"fallback-service":        "",
		"https-addr":              ":8443",
		"http-addr":               ":8080",
		"admin-addr":              ":9090",
	} {
		if got, ok := arg(d, name); !ok || got != want {
			t.Errorf("--%s=%q (given: %v), want %q", name, got, ok, want)
		}
	}
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Error("the rolling update may take a serving Pod away before its replacement is Ready")
	}
	svc := find(objs, "Service", "portico")
	if typ, _, _ := unstructured.NestedString(svc.Object, "spec", "type"); typ != "LoadBalancer" {
		t.Errorf("Service type %q", typ)
	}
	if p, _, _ := unstructured.NestedString(svc.Object, "spec", "externalTrafficPolicy"); p != "Local" {
		t.Errorf("externalTrafficPolicy %q", p)
	}
	if ic := find(objs, "IngressClass", "portico"); ic.GetAnnotations()["ingressclass.kubernetes.io/is-default-class"] != "" {
		t.Error("the IngressClass is the cluster's default without being asked")
	}
}

// TestChartSchemaRejects: values.schema.json turns a typo or a wrong type
// into an install error instead of a silently ignored value.
func TestChartSchemaRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals string
		want string
	}{
		{"unknown top-level key", "replicaCont: 3", "replicaCont"},
		{"unknown nested key", "service: {tpye: NodePort}", "tpye"},
		{"wrong type", "replicaCount: two", "replicaCount"},
		{"bad enum", "service: {externalTrafficPolicy: local}", "externalTrafficPolicy"},
		{"port out of range", "containerPorts: {http: 70000}", "http"},
		{"bad duration", "drainDelay: 5 seconds", "drainDelay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, values(t, tc.vals))
			if err == nil {
				t.Fatalf("values %q rendered", tc.vals)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// number reads a field that the YAML decoder may have made an int64 or a
// float64.
func number(o *unstructured.Unstructured, path ...string) float64 {
	v, _, _ := unstructured.NestedFieldNoCopy(o.Object, path...)
	switch n := v.(type) {
	case int64:
		return float64(n)
	case float64:
		return n
	}
	return -1
}

func values(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestChartValues sets each value and checks it changes what it should.
func TestChartValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		vals  string
		apis  []string
		check func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{"replicaCount", "replicaCount: 3", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if r := *deployment(t, objs).Spec.Replicas; r != 3 {
				t.Errorf("replicas %d", r)
			}
		}},
		{"image", "image: {repository: ghcr.io/acme/portico, tag: v1.2.3}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if img := deployment(t, objs).Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/acme/portico:v1.2.3" {
				t.Errorf("image %q", img)
			}
		}},
		{"image digest", "image: {digest: 'sha256:" + strings.Repeat("ab", 32) + "'}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if img := deployment(t, objs).Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/portico@sha256:"+strings.Repeat("ab", 32) {
				t.Errorf("image %q", img)
			}
		}},
		{"ingressClass", "ingressClass: {name: edge, default: true, controllerName: example.com/edge}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			ic := find(objs, "IngressClass", "edge")
			if ic == nil {
				t.Fatal("no IngressClass edge")
			}
			if ic.GetAnnotations()["ingressclass.kubernetes.io/is-default-class"] != "true" {
				t.Error("not the default class")
			}
			if c, _, _ := unstructured.NestedString(ic.Object, "spec", "controller"); c != "example.com/edge" {
				t.Errorf("controller %q", c)
			}
			d := deployment(t, objs)
			if v, _ := arg(d, "ingress-class"); v != "edge" {
				t.Errorf("--ingress-class=%q", v)
			}
			if v, _ := arg(d, "controller-name"); v != "example.com/edge" {
				t.Errorf("--controller-name=%q", v)
			}
		}},
		{"ingressClass.create off", "ingressClass: {create: false}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if count(objs, "IngressClass") != 0 {
				t.Error("IngressClass rendered")
			}
		}},
		{"gatewayClass on a cluster serving the Gateway API", "gatewayClass: {name: edge, controllerName: example.com/gw}", []string{gatewayAPI}, func(t *testing.T, objs []*unstructured.Unstructured) {
			gc := find(objs, "GatewayClass", "edge")
			if gc == nil {
				t.Fatal("no GatewayClass edge")
			}
			if c, _, _ := unstructured.NestedString(gc.Object, "spec", "controllerName"); c != "example.com/gw" {
				t.Errorf("controllerName %q", c)
			}
			if v, _ := arg(deployment(t, objs), "gateway-controller-name"); v != "example.com/gw" {
				t.Errorf("--gateway-controller-name=%q", v)
			}
		}},
		{"gatewayClass off", "gatewayClass: {controllerName: ''}", []string{gatewayAPI}, func(t *testing.T, objs []*unstructured.Unstructured) {
			if count(objs, "GatewayClass") != 0 {
				t.Error("GatewayClass rendered with Gateway API support off")
			}
			if v, ok := arg(deployment(t, objs), "gateway-controller-name"); !ok || v != "" {
				t.Errorf("--gateway-controller-name=%q, want empty (off)", v)
			}
		}},
		{"gatewayAPI.installCRDs", "gatewayAPI: {installCRDs: true}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			var names []string
			for _, o := range objs {
				if o.GetKind() == "CustomResourceDefinition" {
					names = append(names, o.GetName())
				}
			}
			for _, want := range []string{"gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io", "referencegrants.gateway.networking.k8s.io"} {
				if !slices.Contains(names, want) {
					t.Errorf("CRD %s not rendered (have %v)", want, names)
				}
			}
		}},
		{"fallback", "fallback: {enabled: true, addresses: [192.0.2.10, 192.0.2.11], port: 8081}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if find(objs, "Service", "legacy-fallback") == nil {
				t.Fatal("no fallback Service")
			}
			ep := find(objs, "Endpoints", "legacy-fallback")
			if ep == nil {
				t.Fatal("no fallback Endpoints")
			}
			subsets, _, _ := unstructured.NestedSlice(ep.Object, "subsets")
			raw, _ := yaml.Marshal(subsets)
			if !bytes.Contains(raw, []byte("192.0.2.10")) || !bytes.Contains(raw, []byte("192.0.2.11")) || !bytes.Contains(raw, []byte("8081")) {
				t.Errorf("Endpoints subsets:\n%s", raw)
			}
			if v, _ := arg(deployment(t, objs), "fallback-service"); v != "portico/legacy-fallback" {
				t.Errorf("--fallback-service=%q", v)
			}
		}},
		{"fallback in another namespace", "fallback: {enabled: true, namespace: legacy, addresses: [192.0.2.10]}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			for _, k := range []string{"Service", "Endpoints"} {
				if o := find(objs, k, "legacy-fallback"); o == nil || o.GetNamespace() != "legacy" {
					t.Errorf("%s legacy-fallback not in namespace legacy", k)
				}
			}
			if v, _ := arg(deployment(t, objs), "fallback-service"); v != "legacy/legacy-fallback" {
				t.Errorf("--fallback-service=%q", v)
			}
		}},
		{"fallback to a Service managed elsewhere", "fallback: {enabled: true, name: old-site, namespace: legacy}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if count(objs, "Endpoints") != 0 {
				t.Error("Endpoints rendered without addresses")
			}
			if v, _ := arg(deployment(t, objs), "fallback-service"); v != "legacy/old-site" {
				t.Errorf("--fallback-service=%q", v)
			}
		}},
		{"service", "service: {type: NodePort, externalTrafficPolicy: Cluster, annotations: {lb.example.com/internal: 'true'}, ports: {https: 8443}}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			svc := find(objs, "Service", "portico")
			if svc.GetAnnotations()["lb.example.com/internal"] != "true" {
				t.Error("annotation missing")
			}
			if typ, _, _ := unstructured.NestedString(svc.Object, "spec", "type"); typ != "NodePort" {
				t.Errorf("type %q", typ)
			}
			if p, _, _ := unstructured.NestedString(svc.Object, "spec", "externalTrafficPolicy"); p != "Cluster" {
				t.Errorf("externalTrafficPolicy %q", p)
			}
			if v, _ := arg(deployment(t, objs), "redirect-https-port"); v != "8443" {
				t.Errorf("--redirect-https-port=%q", v)
			}
		}},
		{"service.proxyProtocol", "service: {proxyProtocol: {enabled: true, from: [10.0.0.0/16, 10.1.0.0/16]}}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if v, _ := arg(deployment(t, objs), "proxy-protocol-from"); v != "10.0.0.0/16,10.1.0.0/16" {
				t.Errorf("--proxy-protocol-from=%q", v)
			}
		}},
		{"acme", "acme: {directory: 'https://acme.example.test/dir', email: ops@example.test, onDemand: true, allIngresses: true}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			d := deployment(t, objs)
			for name, want := range map[string]string{"acme-directory": "https://acme.example.test/dir", "acme-email": "ops@example.test", "acme-on-demand": "true", "acme-all-ingresses": "true"} {
				if v, _ := arg(d, name); v != want {
					t.Errorf("--%s=%q, want %q", name, v, want)
				}
			}
		}},
		{"acme off by default", "", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if _, ok := arg(deployment(t, objs), "acme-directory"); ok {
				t.Error("--acme-directory set")
			}
		}},
		{"resources", "resources: {requests: {cpu: 2}, limits: {memory: 1Gi}}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			r := deployment(t, objs).Spec.Template.Spec.Containers[0].Resources
			if r.Requests.Cpu().String() != "2" || r.Limits.Memory().String() != "1Gi" {
				t.Errorf("resources %+v", r)
			}
		}},
		{"podDisruptionBudget off", "podDisruptionBudget: {enabled: false}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if count(objs, "PodDisruptionBudget") != 0 {
				t.Error("PDB rendered")
			}
		}},
		{"podDisruptionBudget minAvailable", "podDisruptionBudget: {minAvailable: 2}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			pdb := find(objs, "PodDisruptionBudget", "portico")
			if v := number(pdb, "spec", "minAvailable"); v != 2 {
				t.Errorf("minAvailable %v", v)
			}
		}},
		{"autoscaling", "autoscaling: {enabled: true, minReplicas: 3, maxReplicas: 7}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			hpa := find(objs, "HorizontalPodAutoscaler", "portico")
			if hpa == nil {
				t.Fatal("no HPA")
			}
			if v := number(hpa, "spec", "maxReplicas"); v != 7 {
				t.Errorf("maxReplicas %v", v)
			}
			if deployment(t, objs).Spec.Replicas != nil {
				t.Error("the Deployment sets replicas, which would fight the HPA")
			}
		}},
		{"topologySpread", "", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if n := len(deployment(t, objs).Spec.Template.Spec.TopologySpreadConstraints); n != 2 {
				t.Errorf("%d topology spread constraints, want hostname and zone", n)
			}
		}},
		{"topologySpread off", "topologySpread: {enabled: false}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if n := len(deployment(t, objs).Spec.Template.Spec.TopologySpreadConstraints); n != 0 {
				t.Errorf("%d topology spread constraints", n)
			}
		}},
		{"privileged ports add NET_BIND_SERVICE", "containerPorts: {http: 80, https: 443}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			c := deployment(t, objs).Spec.Template.Spec.Containers[0]
			if caps := c.SecurityContext.Capabilities; !slices.Equal(caps.Add, []corev1.Capability{"NET_BIND_SERVICE"}) || !slices.Equal(caps.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("capabilities %+v, want ALL dropped and NET_BIND_SERVICE added", caps)
			}
			if v, _ := arg(deployment(t, objs), "http-addr"); v != ":80" {
				t.Errorf("--http-addr=%q", v)
			}
		}},
		{"securityContext", "securityContext: {readOnlyRootFilesystem: false}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if sc := deployment(t, objs).Spec.Template.Spec.Containers[0].SecurityContext; sc.ReadOnlyRootFilesystem == nil || *sc.ReadOnlyRootFilesystem {
				t.Error("readOnlyRootFilesystem not overridden")
			}
		}},
		{"serviceMonitor when the Prometheus Operator is there", "metrics: {serviceMonitor: {labels: {release: kps}}}", []string{serviceMonitor}, func(t *testing.T, objs []*unstructured.Unstructured) {
			sm := find(objs, "ServiceMonitor", "portico")
			if sm == nil {
				t.Fatal("no ServiceMonitor")
			}
			if sm.GetLabels()["release"] != "kps" {
				t.Error("ServiceMonitor label missing")
			}
			if find(objs, "Service", "portico-metrics") == nil {
				t.Error("no metrics Service")
			}
		}},
		{"serviceMonitor off", "metrics: {serviceMonitor: {enabled: false}}", []string{serviceMonitor}, func(t *testing.T, objs []*unstructured.Unstructured) {
			if count(objs, "ServiceMonitor") != 0 {
				t.Error("ServiceMonitor rendered")
			}
		}},
		{"dashboard", "", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			cm := find(objs, "ConfigMap", "portico-dashboard")
			if cm == nil {
				t.Fatal("no dashboard ConfigMap")
			}
			if cm.GetLabels()["grafana_dashboard"] != "1" {
				t.Errorf("labels %v, want grafana_dashboard: \"1\" for Grafana's sidecar", cm.GetLabels())
			}
			want, err := os.ReadFile("../examples/dashboards/portico.json")
			if err != nil {
				t.Fatal(err)
			}
			if got, _, _ := unstructured.NestedString(cm.Object, "data", "portico.json"); strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
				t.Error("the ConfigMap's dashboard is not examples/dashboards/portico.json")
			}
		}},
		{"dashboard off", "dashboard: {enabled: false}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if count(objs, "ConfigMap") != 0 {
				t.Error("ConfigMap rendered")
			}
		}},
		{"rbac off", "{rbac: {create: false}, serviceAccount: {create: false, name: existing}}", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			for _, k := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"} {
				if count(objs, k) != 0 {
					t.Errorf("%s rendered", k)
				}
			}
			if sa := deployment(t, objs).Spec.Template.Spec.ServiceAccountName; sa != "existing" {
				t.Errorf("serviceAccountName %q", sa)
			}
		}},
		{"extraArgs", "extraArgs: ['--idle-timeout=120s']", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if v, _ := arg(deployment(t, objs), "idle-timeout"); v != "120s" {
				t.Errorf("--idle-timeout=%q", v)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustRender(t, values(t, tc.vals), tc.apis...))
		})
	}

	if _, err := render(t, values(t, "service: {proxyProtocol: {enabled: true}}")); err == nil || !strings.Contains(err.Error(), "proxyProtocol.from") {
		t.Errorf("PROXY protocol without the load balancers' CIDRs: %v, want an error naming proxyProtocol.from", err)
	}
}

// TestChartFilesMatchSources: the chart can only read files inside itself,
// so it carries copies of the dashboard and of the Gateway API CRDs; they
// must equal their sources (make chart-generate rewrites them).
func TestChartFilesMatchSources(t *testing.T) {
	dash, err := os.ReadFile("../examples/dashboards/portico.json")
	if err != nil {
		t.Fatal(err)
	}
	compareOrUpdate(t, filepath.Join(chartDir, "files", "dashboard.json"), dash, "make chart-generate")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := controlplane.GatewayAPIDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "config", "crd", controlplane.ChannelStandard, "gateway.networking.k8s.io_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s: %v", dir, err)
	}
	var crds bytes.Buffer
	crds.WriteString("# Generated from " + controlplane.GatewayAPIModule + " " + filepath.Base(dir) + " config/crd/standard (make chart-generate).\n")
	for _, f := range files {
		// The safe-upgrades ValidatingAdmissionPolicy is not a CRD; it is
		// left to whoever manages the Gateway API installation.
		if strings.Contains(f, "_vap_") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crds.WriteString("---\n")
		crds.Write(bytes.TrimSpace(raw))
		crds.WriteString("\n")
	}
	compareOrUpdate(t, filepath.Join(chartDir, "files", "gateway-api-crds.yaml"), crds.Bytes(), "make chart-generate")
}

// TestExamplesDeployIsTheChart: examples/deploy/portico.yaml is the chart's
// default render plus its Namespace, so a user applying it with kubectl
// gets what helm install gives.
func TestExamplesDeployIsTheChart(t *testing.T) {
	manifest, err := render(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.WriteString(`# Generated from charts/portico with its default values (make chart-generate);
# edit the chart, not this file. The same as:
#
#   helm install portico charts/portico --namespace portico --create-namespace
#
# Apply with kubectl apply -f examples/deploy/portico.yaml, after setting the
# image to where you publish Portico's image (make image, make image-push).
apiVersion: v1
kind: Namespace
metadata:
  name: portico
`)
	out.WriteString(manifest)
	compareOrUpdate(t, "../examples/deploy/portico.yaml", out.Bytes(), "make chart-generate")
}
