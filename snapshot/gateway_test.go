package snapshot_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"portico.dev/portico/internal/testkit/fixture"
	"portico.dev/portico/routing"
	"portico.dev/portico/snapshot"
	porticotls "portico.dev/portico/tls"
	"portico.dev/portico/upstream"
)

// gatewayConfig is the golden configuration of the testdata/gateway-*
// cases: goldenConfig plus Gateway API support with a small address pool,
// so that exhaustion is easy to show.
var gatewayConfig = func() snapshot.Config {
	cfg := goldenConfig
	cfg.Gateway = snapshot.GatewayConfig{
		ControllerName: "portico.dev/gateway-controller",
		AddressPool:    []netip.Prefix{netip.MustParsePrefix("10.250.1.0/30")},
	}
	return cfg
}()

func isGatewayCase(dir string) bool {
	return strings.HasPrefix(filepath.Base(dir), "gateway-")
}

// describeGateway appends the Gateway API sections of a snapshot, each
// only when it has content, so that Ingress-only golden files do not
// change.
func describeGateway(s *snapshot.Snapshot, section func(string, []string)) {
	if len(s.Listeners) > 0 {
		var lines []string
		for _, l := range s.Listeners {
			proto := string(l.Protocol)
			if l.Terminate {
				proto += " Terminate"
			}
			lines = append(lines, fmt.Sprintf("%s %s port %d for Gateway %s", proto, l.Address, l.Port, l.Gateway))
			if cv := l.ClientValidation; cv != nil {
				lines = append(lines, fmt.Sprintf("  client certificates: %s, CAs set %t", cv.Mode, cv.CAs != nil))
			}
			if l.Certificates != nil {
				if def := l.Certificates.Default(); def != nil {
					lines = append(lines, fmt.Sprintf("  default certificate serial %s", def.Serial))
				}
				l.Certificates.Each(func(b porticotls.Binding) {
					lines = append(lines, fmt.Sprintf("  certificate %s <- %s (serial %s)", b.Host, b.Source, b.Pair.Serial))
				})
			}
			for _, lr := range l.Routes.Listeners() {
				host := lr.Hostname
				if host == "" {
					host = "*"
				}
				mode := ""
				if l.Terminate && lr.Passthrough {
					mode = " (Passthrough)"
				}
				lines = append(lines, fmt.Sprintf("  listener hostname %s%s: %d routes", host, mode, len(lr.Routes)))
				for _, r := range lr.Routes {
					lines = append(lines, "    "+describeGatewayRoute(r))
				}
			}
		}
		section("listeners", lines)
	}
	st := s.GatewayAPI
	if len(st.GatewayClasses)+len(st.Gateways)+len(st.HTTPRoutes)+len(st.GRPCRoutes)+len(st.TLSRoutes)+len(st.BackendTLSPolicies)+len(st.ListenerSets)+len(st.GatewayServices) == 0 {
		return
	}
	var lines []string
	for _, name := range sortedKeys(st.GatewayClasses, func(s string) string { return s }) {
		c := st.GatewayClasses[name]
		lines = append(lines, "GatewayClass "+name)
		lines = append(lines, describeConditions("  ", c.Conditions)...)
		var feats []string
		for _, f := range c.SupportedFeatures {
			feats = append(feats, string(f.Name))
		}
		lines = append(lines, "  supportedFeatures: "+strings.Join(feats, " "))
	}
	for _, name := range sortedKeys(st.Gateways, types.NamespacedName.String) {
		g := st.Gateways[name]
		lines = append(lines, "Gateway "+name.String())
		var addrs []string
		for _, a := range g.Addresses {
			addrs = append(addrs, string(*a.Type)+" "+a.Value)
		}
		if len(addrs) == 0 {
			addrs = []string{"none"}
		}
		lines = append(lines, "  addresses: "+strings.Join(addrs, ", "))
		if n := g.AttachedListenerSets; n != nil && *n > 0 {
			lines = append(lines, fmt.Sprintf("  attachedListenerSets: %d", *n))
		}
		lines = append(lines, describeConditions("  ", g.Conditions)...)
		for _, l := range g.Listeners {
			lines = append(lines, describeListenerStatus(l.Name, l.SupportedKinds, l.AttachedRoutes, l.Conditions)...)
		}
	}
	for _, name := range sortedKeys(st.ListenerSets, types.NamespacedName.String) {
		ls := st.ListenerSets[name]
		lines = append(lines, "ListenerSet "+name.String())
		lines = append(lines, describeConditions("  ", ls.Conditions)...)
		for _, l := range ls.Listeners {
			lines = append(lines, describeListenerStatus(l.Name, l.SupportedKinds, l.AttachedRoutes, l.Conditions)...)
		}
	}
	lines = append(lines, describeRouteStatus("HTTPRoute", st.HTTPRoutes)...)
	lines = append(lines, describeRouteStatus("GRPCRoute", st.GRPCRoutes)...)
	lines = append(lines, describeRouteStatus("TLSRoute", st.TLSRoutes)...)
	for _, name := range sortedKeys(st.BackendTLSPolicies, types.NamespacedName.String) {
		lines = append(lines, "BackendTLSPolicy "+name.String())
		for _, a := range st.BackendTLSPolicies[name].Ancestors {
			lines = append(lines, fmt.Sprintf("  ancestor %s %s/%s by %s", *a.AncestorRef.Kind, *a.AncestorRef.Namespace, a.AncestorRef.Name, a.ControllerName))
			lines = append(lines, describeConditions("    ", a.Conditions)...)
		}
	}
	section("gateway api status", lines)
	describeGatewayServices(st.GatewayServices, section)
}

// describeRouteStatus lists the parent statuses of routes of one kind.
func describeRouteStatus(kind string, routes map[types.NamespacedName][]gatewayv1.RouteParentStatus) []string {
	var lines []string
	for _, name := range sortedKeys(routes, types.NamespacedName.String) {
		lines = append(lines, kind+" "+name.String())
		for _, p := range routes[name] {
			ns := "-"
			if p.ParentRef.Namespace != nil {
				ns = string(*p.ParentRef.Namespace)
			}
			where := ""
			if p.ParentRef.SectionName != nil {
				where += " sectionName " + string(*p.ParentRef.SectionName)
			}
			if p.ParentRef.Port != nil {
				where += fmt.Sprintf(" port %d", *p.ParentRef.Port)
			}
			kind := ""
			if p.ParentRef.Kind != nil && *p.ParentRef.Kind != "Gateway" {
				kind = string(*p.ParentRef.Kind) + " "
			}
			lines = append(lines, fmt.Sprintf("  parent %s%s/%s%s by %s", kind, ns, p.ParentRef.Name, where, p.ControllerName))
			lines = append(lines, describeConditions("    ", p.Conditions)...)
		}
	}
	return lines
}

// describeGatewayServices lists the Services kept for Gateways; a case
// whose Gateways have no infrastructure of note still gets one line each.
func describeGatewayServices(services map[types.NamespacedName]snapshot.GatewayService, section func(string, []string)) {
	if len(services) == 0 {
		return
	}
	var lines []string
	for _, name := range sortedKeys(services, types.NamespacedName.String) {
		svc := services[name]
		var ports, addrs []string
		for _, p := range svc.Ports {
			ports = append(ports, fmt.Sprintf("%s:%d", p.Name, p.Port))
		}
		for _, a := range svc.Addresses {
			addrs = append(addrs, a.String())
		}
		lines = append(lines, fmt.Sprintf("Service %s for Gateway %s: ports [%s], addresses [%s]", name, svc.Gateway, strings.Join(ports, " "), strings.Join(addrs, " ")))
		for _, k := range sortedKeys(svc.Labels, func(s string) string { return s }) {
			lines = append(lines, fmt.Sprintf("  label %s=%s", k, svc.Labels[k]))
		}
		for _, k := range sortedKeys(svc.Annotations, func(s string) string { return s }) {
			lines = append(lines, fmt.Sprintf("  annotation %s=%s", k, svc.Annotations[k]))
		}
	}
	section("gateway services", lines)
}

func describeListenerStatus(name gatewayv1.SectionName, kinds []gatewayv1.RouteGroupKind, attached int32, conds []metav1.Condition) []string {
	var ks []string
	for _, k := range kinds {
		ks = append(ks, string(*k.Group)+"/"+string(k.Kind))
	}
	out := []string{fmt.Sprintf("  listener %s: attachedRoutes %d, supportedKinds [%s]", name, attached, strings.Join(ks, " "))}
	return append(out, describeConditions("    ", conds)...)
}

func describeConditions(indent string, conds []metav1.Condition) []string {
	var out []string
	for _, c := range conds {
		out = append(out, fmt.Sprintf("%s%s=%s %s (generation %d): %s", indent, c.Type, c.Status, c.Reason, c.ObservedGeneration, c.Message))
	}
	return out
}

func sortedKeys[K comparable, V any](m map[K]V, str func(K) string) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b K) int { return strings.Compare(str(a), str(b)) })
	return keys
}

// describeGatewayRoute prints every field a Gateway API route can set.
func describeGatewayRoute(r *routing.Route) string {
	host := r.Host
	if host == "" {
		host = "*"
	}
	var b strings.Builder
	if r.PathKind == routing.PathRegex {
		fmt.Fprintf(&b, "%s RegularExpression %s", host, r.PathRegexp)
	} else {
		fmt.Fprintf(&b, "%s %s %s", host, r.PathKind, r.Path)
	}
	if r.Method != "" {
		fmt.Fprintf(&b, " method %s", r.Method)
	}
	for _, h := range r.Headers {
		if h.Regexp != nil {
			fmt.Fprintf(&b, " header %s~%s", h.Name, h.Regexp)
		} else {
			fmt.Fprintf(&b, " header %s=%s", h.Name, h.Value)
		}
	}
	for _, q := range r.QueryParams {
		if q.Regexp != nil {
			fmt.Fprintf(&b, " query %s~%s", q.Name, q.Regexp)
		} else {
			fmt.Fprintf(&b, " query %s=%s", q.Name, q.Value)
		}
	}
	b.WriteString(" ->")
	if len(r.Backends) == 0 {
		b.WriteString(" no backends")
	}
	for _, wb := range r.Backends {
		fmt.Fprintf(&b, " %s", describeWeighted(wb))
	}
	fmt.Fprintf(&b, " from %s", r.Source)
	if f := describeFilters(r.Filters); f != "" {
		b.WriteString(" filters{" + f + "}")
	}
	if r.Timeouts.Request != 0 || r.Timeouts.BackendRequest != 0 {
		fmt.Fprintf(&b, " timeouts{request %s, backendRequest %s}", r.Timeouts.Request, r.Timeouts.BackendRequest)
	}
	if rt := r.Retry; rt != nil {
		fmt.Fprintf(&b, " retry{codes %v, attempts %d, backoff %s}", rt.Codes, rt.Attempts, rt.Backoff)
	}
	return b.String()
}

func describeWeighted(wb routing.WeightedBackend) string {
	eps := "no endpoints"
	if len(wb.Backend.Endpoints) > 0 {
		eps = strings.Join(wb.Backend.Endpoints, " ")
	}
	s := fmt.Sprintf("%s %s%s (%s) weight %d", wb.Backend.Name, wb.Backend.Protocol, describeBackendTLS(wb.Backend.TLS), eps, wb.Weight)
	if wb.Invalid {
		s += " INVALID"
	}
	if f := describeFilters(wb.Filters); f != "" {
		s += " filters{" + f + "}"
	}
	return "[" + s + "]"
}

func describeFilters(f *routing.Filters) string {
	if f == nil {
		return ""
	}
	var parts []string
	if f.RequestHeaders != nil {
		parts = append(parts, "request headers "+describeHeaderModifier(f.RequestHeaders))
	}
	if f.ResponseHeaders != nil {
		parts = append(parts, "response headers "+describeHeaderModifier(f.ResponseHeaders))
	}
	if rd := f.Redirect; rd != nil && rd.Location != "" {
		parts = append(parts, fmt.Sprintf("redirect location=%q status=%d", rd.Location, rd.StatusCode))
	} else if rd != nil {
		line := fmt.Sprintf("redirect scheme=%q host=%q port=%d path=%s status=%d", rd.Scheme, rd.Hostname, rd.Port, describePath(rd.Path), rd.StatusCode)
		if rd.DropQuery {
			line += " drop-query"
		}
		parts = append(parts, line)
	}
	if rw := f.Rewrite; rw != nil {
		line := fmt.Sprintf("rewrite host=%q path=%s", rw.Hostname, describePath(rw.Path))
		if rw.ForwardedPrefix != "" {
			line += " x-forwarded-prefix=" + rw.ForwardedPrefix
		}
		parts = append(parts, line)
	}
	for _, m := range f.Mirrors {
		line := fmt.Sprintf("mirror %s%s %g%%", m.Backend.Name, describeBackendTLS(m.Backend.TLS), m.Percent)
		if m.Host != "" {
			line += " host=" + m.Host
		}
		if m.NoBody {
			line += " no-body"
		}
		parts = append(parts, line)
	}
	if c := f.CORS; c != nil {
		parts = append(parts, fmt.Sprintf("cors origins=%q methods=%q headers=%q expose=%q maxAge=%d credentials=%t",
			c.AllowOrigins, c.AllowMethods, c.AllowHeaders, c.ExposeHeaders, c.MaxAge, c.AllowCredentials))
	}
	if lr := f.LocationRewrite; lr != nil {
		parts = append(parts, fmt.Sprintf("location rewrite %q -> %q", lr.From, lr.To))
	}
	if f.HSTS != "" {
		parts = append(parts, "hsts "+f.HSTS)
	}
	return strings.Join(parts, "; ")
}

// describeBackendTLS is "" for a plain backend.
func describeBackendTLS(bt *upstream.BackendTLS) string {
	if bt == nil {
		return ""
	}
	roots := "system roots"
	if !bt.SystemRoots {
		roots = fmt.Sprintf("%d CA certificates", strings.Count(string(bt.CACertificates), "BEGIN CERTIFICATE"))
	}
	sni := "sni " + bt.ServerName
	if bt.ServerName == "" {
		sni = "no sni"
	}
	if bt.SkipVerify {
		roots = "not verified"
	}
	s := fmt.Sprintf(" over TLS{%s, %s", sni, roots)
	for _, san := range bt.SubjectAltNames {
		s += ", san " + san.String()
	}
	if bt.VerifyDepth > 0 {
		s += fmt.Sprintf(", depth %d", bt.VerifyDepth)
	}
	for _, c := range bt.CipherSuites {
		s += ", cipher " + tls.CipherSuiteName(c)
	}
	if bt.MinVersion != 0 || bt.MaxVersion != 0 {
		s += fmt.Sprintf(", versions %s-%s", tls.VersionName(bt.MinVersion), tls.VersionName(bt.MaxVersion))
	}
	if cc := bt.ClientCertificate; cc != nil && cc.Leaf != nil {
		s += fmt.Sprintf(", client certificate %s serial %x", cc.Leaf.Subject.CommonName, cc.Leaf.SerialNumber)
	}
	return s + "}"
}

func describeHeaderModifier(m *routing.HeaderModifier) string {
	var parts []string
	for _, h := range m.Set {
		parts = append(parts, "set "+h.Name+"="+h.Value)
	}
	for _, h := range m.Add {
		parts = append(parts, "add "+h.Name+"="+h.Value)
	}
	for _, n := range m.Remove {
		parts = append(parts, "remove "+n)
	}
	return strings.Join(parts, ", ")
}

func describePath(p *routing.PathModifier) string {
	switch {
	case p == nil:
		return "keep"
	case p.ReplaceFullPath != nil:
		return "full:" + *p.ReplaceFullPath
	case p.ReplacePrefixMatch != nil:
		return "prefix:" + *p.ReplacePrefixMatch
	case p.RegexTemplate != nil:
		return "regex:" + *p.RegexTemplate
	}
	return "keep"
}

func gatewayClass() *gatewayv1.GatewayClass {
	return &gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "portico"},
		Spec:       gatewayv1.GatewayClassSpec{ControllerName: "portico.dev/gateway-controller"},
	}
}

// httpGateway is a Gateway with one HTTP listener on port, created at the
// given day of January 2026 so that tests control which one is older.
func httpGateway(name string, day int, port gatewayv1.PortNumber, status ...string) *gatewayv1.Gateway {
	gw := &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:         "infra",
			Name:              name,
			CreationTimestamp: metav1.Date(2026, 1, day, 0, 0, 0, 0, time.UTC),
		},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: "portico",
			Listeners:        []gatewayv1.Listener{{Name: "http", Port: port, Protocol: gatewayv1.HTTPProtocolType}},
		},
	}
	for _, a := range status {
		gw.Status.Addresses = append(gw.Status.Addresses, gatewayv1.GatewayStatusAddress{Value: a})
	}
	return gw
}

// gatewaySummary is "name=address programmed-reason" per Gateway, sorted.
func gatewaySummary(s *snapshot.Snapshot) []string {
	var out []string
	for _, name := range sortedKeys(s.GatewayAPI.Gateways, types.NamespacedName.String) {
		g := s.GatewayAPI.Gateways[name]
		var addrs []string
		for _, a := range g.Addresses {
			addrs = append(addrs, a.Value)
		}
		prog := ""
		for _, c := range g.Conditions {
			if c.Type == string(gatewayv1.GatewayConditionProgrammed) {
				prog = c.Reason
			}
		}
		out = append(out, fmt.Sprintf("%s=%s %s", name.Name, strings.Join(addrs, ","), prog))
	}
	return out
}

// TestGatewayAddressStickiness rebuilds in steps, each from the previous
// snapshot, and checks which address every Gateway ends up with.
func TestGatewayAddressStickiness(t *testing.T) {
	pool := []netip.Prefix{netip.MustParsePrefix("10.250.2.0/29")} // .1 to .6
	cfg := gatewayConfig
	cfg.Gateway.AddressPool = pool
	type step struct {
		gateways []*gatewayv1.Gateway
		want     []string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "a Gateway keeps its address when an older one goes away",
			steps: []step{
				{[]*gatewayv1.Gateway{httpGateway("a", 1, 80), httpGateway("b", 2, 80)},
					[]string{"a=10.250.2.1 Programmed", "b=10.250.2.2 Programmed"}},
				{[]*gatewayv1.Gateway{httpGateway("b", 2, 80)},
					[]string{"b=10.250.2.2 Programmed"}},
				{[]*gatewayv1.Gateway{httpGateway("b", 2, 80), httpGateway("c", 3, 80)},
					[]string{"b=10.250.2.2 Programmed", "c=10.250.2.1 Programmed"}},
			},
		},
		{
			name: "a new older Gateway does not take a younger one's address",
			steps: []step{
				{[]*gatewayv1.Gateway{httpGateway("young", 5, 80)},
					[]string{"young=10.250.2.1 Programmed"}},
				{[]*gatewayv1.Gateway{httpGateway("old", 1, 80), httpGateway("young", 5, 80)},
					[]string{"old=10.250.2.2 Programmed", "young=10.250.2.1 Programmed"}},
			},
		},
		{
			name: "after a restart the address in status is kept when free",
			steps: []step{
				{[]*gatewayv1.Gateway{httpGateway("a", 1, 80), httpGateway("b", 2, 80, "10.250.2.5"), httpGateway("c", 3, 80, "192.0.2.1")},
					[]string{"a=10.250.2.1 Programmed", "b=10.250.2.5 Programmed", "c=10.250.2.2 Programmed"}},
			},
		},
		{
			name: "the previous snapshot wins over status",
			steps: []step{
				{[]*gatewayv1.Gateway{httpGateway("a", 1, 80)},
					[]string{"a=10.250.2.1 Programmed"}},
				{[]*gatewayv1.Gateway{httpGateway("a", 1, 80, "10.250.2.4")},
					[]string{"a=10.250.2.1 Programmed"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prev *snapshot.Snapshot
			for i, st := range tt.steps {
				objs := snapshot.Objects{GatewayClasses: []*gatewayv1.GatewayClass{gatewayClass()}, Gateways: st.gateways}
				prev = snapshot.Build(objs, cfg, prev)
				if got := gatewaySummary(prev); !slices.Equal(got, st.want) {
					t.Errorf("step %d: got %q, want %q", i, got, st.want)
				}
			}
		})
	}
}

// TestGatewayWithoutPool: with no pool and no spec.addresses, Gateways bind
// the unspecified address and each port goes to the oldest Gateway; static
// addresses are taken as given, one socket per address.
func TestGatewayWithoutPool(t *testing.T) {
	cfg := gatewayConfig
	cfg.Gateway.AddressPool = nil
	static := httpGateway("static", 4, 80)
	static.Spec.Addresses = []gatewayv1.GatewaySpecAddress{{Value: "::1"}, {Value: "127.0.0.2"}, {Value: "127.0.0.2"}}
	objs := snapshot.Objects{
		GatewayClasses: []*gatewayv1.GatewayClass{gatewayClass()},
		Gateways:       []*gatewayv1.Gateway{httpGateway("second", 2, 80), httpGateway("first", 1, 80), httpGateway("other-port", 3, 8080), static},
	}
	s := snapshot.Build(objs, cfg, nil)
	want := []string{"first= Programmed", "other-port= Programmed", "second= AddressNotAssigned", "static=::1,127.0.0.2 Programmed"}
	if got := gatewaySummary(s); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	var sockets []string
	for _, l := range s.Listeners {
		sockets = append(sockets, fmt.Sprintf("%s:%d %s", l.Address, l.Port, l.Gateway))
	}
	wantSockets := []string{"0.0.0.0:80 infra/first", "0.0.0.0:8080 infra/other-port", "127.0.0.2:80 infra/static", "::1:80 infra/static"}
	if !slices.Equal(sockets, wantSockets) {
		t.Errorf("sockets %q, want %q", sockets, wantSockets)
	}
}

// TestGatewayCertificateLastGood: a listener's Secret that disappears or
// stops parsing keeps serving the last good certificate, while the status
// says the reference is not resolved.
func TestGatewayCertificateLastGood(t *testing.T) {
	base := fixture.Dir(t, "testdata/gateway-basic")
	var a *corev1.Secret
	for _, s := range base.Secrets {
		if s.Name == "a-tls" {
			a = s
		}
	}
	without := func(objs snapshot.Objects, replace *corev1.Secret) snapshot.Objects {
		out := objs
		out.Secrets = nil
		for _, s := range objs.Secrets {
			if s.Name != "a-tls" {
				out.Secrets = append(out.Secrets, s)
			}
		}
		if replace != nil {
			out.Secrets = append(out.Secrets, replace)
		}
		return out
	}
	broken := a.DeepCopy()
	broken.Data = map[string][]byte{"tls.crt": []byte("garbage"), "tls.key": []byte("garbage")}

	tests := []struct {
		name string
		objs snapshot.Objects
		prev bool
		// want is the serial served for a.example.com and the listener's
		// ResolvedRefs reason.
		wantSerial, wantReason string
	}{
		{"present", base, false, "a1", "ResolvedRefs"},
		{"missing, never parsed", without(base, nil), false, "b2", "InvalidCertificateRef"},
		{"missing after a good parse", without(base, nil), true, "a1", "InvalidCertificateRef"},
		{"broken after a good parse", without(base, broken), true, "a1", "InvalidCertificateRef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prev *snapshot.Snapshot
			if tt.prev {
				prev = snapshot.Build(base, gatewayConfig, nil)
			}
			s := snapshot.Build(tt.objs, gatewayConfig, prev)
			var https *snapshot.Listener
			for _, l := range s.Listeners {
				if l.Port == 443 {
					https = l
				}
			}
			if https == nil {
				t.Fatal("no HTTPS listener")
			}
			if got := https.Certificates.Lookup("a.example.com"); got == nil || got.Serial != tt.wantSerial {
				t.Errorf("a.example.com served %v, want serial %s", got, tt.wantSerial)
			}
			gw := s.GatewayAPI.Gateways[types.NamespacedName{Namespace: "shop", Name: "web"}]
			for _, l := range gw.Listeners {
				if l.Name != "https-a" {
					continue
				}
				for _, c := range l.Conditions {
					if c.Type == string(gatewayv1.ListenerConditionResolvedRefs) && c.Reason != tt.wantReason {
						t.Errorf("ResolvedRefs reason %s, want %s (%s)", c.Reason, tt.wantReason, c.Message)
					}
				}
			}
		})
	}
}

// TestGatewayListenerIsolation sends the requests of the conformance
// suite's listener isolation case to the compiled table: each is served
// only by the routes of the most specific listener matching its host.
func TestGatewayListenerIsolation(t *testing.T) {
	s := snapshot.Build(fixture.Dir(t, "testdata/gateway-isolation"), gatewayConfig, nil)
	var table *routing.Table
	for _, l := range s.Listeners {
		if l.Gateway.Name == "isolation" {
			table = l.Routes
		}
	}
	if table == nil {
		t.Fatal("Gateway infra/isolation has no listener")
	}
	tests := []struct {
		host, path string
		want       string // route name, or "404"
	}{
		{"bar.com", "/empty-hostname", "attaches-to-empty-hostname"},
		{"bar.com", "/wildcard-example-com", "404"},
		{"bar.com", "/wildcard-foo-example-com", "404"},
		{"bar.com", "/abc-foo-example-com", "404"},
		{"bar.example.com", "/empty-hostname", "404"},
		{"bar.example.com", "/wildcard-example-com", "attaches-to-wildcard-example-com"},
		{"bar.example.com", "/wildcard-foo-example-com", "404"},
		{"bar.example.com", "/abc-foo-example-com", "404"},
		{"bar.foo.example.com", "/empty-hostname", "404"},
		{"bar.foo.example.com", "/wildcard-example-com", "404"},
		{"bar.foo.example.com", "/wildcard-foo-example-com", "attaches-to-wildcard-foo-example-com"},
		{"bar.foo.example.com", "/abc-foo-example-com", "404"},
		{"abc.foo.example.com", "/empty-hostname", "404"},
		{"abc.foo.example.com", "/wildcard-example-com", "404"},
		{"abc.foo.example.com", "/wildcard-foo-example-com", "404"},
		{"abc.foo.example.com", "/abc-foo-example-com", "attaches-to-abc-foo-example-com"},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.path, func(t *testing.T) {
			got := "404"
			if r := table.Match(tt.host, tt.path); r != nil {
				got = r.Source.Name
			}
			if got != tt.want {
				t.Errorf("%s%s served by %s, want %s", tt.host, tt.path, got, tt.want)
			}
		})
	}
}

// TestGatewayHostnameConformance translates the manifests of the
// conformance tests about hostnames and replays their requests, with their
// headers, against each Gateway's compiled table: HTTPRouteHostnameIntersection,
// HTTPRouteMultipleRoutesAttachmentSameHostnameIntersection (all of its
// subtests: the feature GatewayRouteHostnameIntersectionPrecedence rests on
// them) and GatewayHTTPListenerIsolation with intersecting hostnames.
func TestGatewayHostnameConformance(t *testing.T) {
	cfg := gatewayConfig
	cfg.Gateway.AddressPool = []netip.Prefix{netip.MustParsePrefix("10.250.3.0/24")}
	s := snapshot.Build(fixture.File(t, "testdata/conformance-hostnames/gateways.yaml"), cfg, nil)
	const ns = "gateway-conformance-infra"
	tables := make(map[string]*routing.Table)
	for _, l := range s.Listeners {
		tables[l.Gateway.Name] = l.Routes
	}

	// Route status and attachment counts the tests check first.
	for _, name := range []string{"no-intersecting-hosts"} {
		parents := s.GatewayAPI.HTTPRoutes[types.NamespacedName{Namespace: ns, Name: name}]
		if len(parents) != 1 || parents[0].Conditions[0].Reason != string(gatewayv1.RouteReasonNoMatchingListenerHostname) {
			t.Errorf("HTTPRoute %s: parents %+v, want Accepted=False NoMatchingListenerHostname", name, parents)
		}
	}
	for name, parents := range s.GatewayAPI.HTTPRoutes {
		if name.Name == "no-intersecting-hosts" {
			continue
		}
		for _, p := range parents {
			for _, c := range p.Conditions {
				if c.Status != metav1.ConditionTrue {
					t.Errorf("HTTPRoute %s: %s=%s %s: %s", name.Name, c.Type, c.Status, c.Reason, c.Message)
				}
			}
		}
	}
	attached := map[string]int32{}
	for _, l := range s.GatewayAPI.Gateways[types.NamespacedName{Namespace: ns, Name: "httproute-hostname-intersection"}].Listeners {
		attached[string(l.Name)] = l.AttachedRoutes
	}
	if want := map[string]int32{"listener-1": 2, "listener-2": 1, "listener-3": 1}; !maps.Equal(attached, want) {
		t.Errorf("attachedRoutes %v, want %v", attached, want)
	}

	type request struct {
		host, path string
		headers    []string // "Name: value"
		want       string   // infra-backend-<want>, or "404"
	}
	isolation := []request{
		{"bar.com", "/empty-hostname", nil, "v1"},
		{"bar.com", "/wildcard-example-com", nil, "404"},
		{"bar.com", "/wildcard-foo-example-com", nil, "404"},
		{"bar.com", "/abc-foo-example-com", nil, "404"},
		{"bar.example.com", "/empty-hostname", nil, "404"},
		{"bar.example.com", "/wildcard-example-com", nil, "v1"},
		{"bar.example.com", "/wildcard-foo-example-com", nil, "404"},
		{"bar.example.com", "/abc-foo-example-com", nil, "404"},
		{"bar.foo.example.com", "/empty-hostname", nil, "404"},
		{"bar.foo.example.com", "/wildcard-example-com", nil, "404"},
		{"bar.foo.example.com", "/wildcard-foo-example-com", nil, "v1"},
		{"bar.foo.example.com", "/abc-foo-example-com", nil, "404"},
		{"abc.foo.example.com", "/empty-hostname", nil, "404"},
		{"abc.foo.example.com", "/wildcard-example-com", nil, "404"},
		{"abc.foo.example.com", "/wildcard-foo-example-com", nil, "404"},
		{"abc.foo.example.com", "/abc-foo-example-com", nil, "v1"},
	}
	withHeaders := []request{
		{"abc.example.com", "/path/prefix/longer", []string{"Header-A: A", "Header-B: B"}, "v2"},
		{"abc.example.com", "/path/prefix/longer", []string{"Header-B: B"}, "v1"},
	}
	tests := map[string][]request{
		"httproute-hostname-intersection": {
			{"very.specific.com", "/s1", nil, "v1"},
			{"very.specific.com:1234", "/s1", nil, "v1"},
			{"non.matching.com", "/s1", nil, "404"},
			{"foo.nonmatchingwildcard.io", "/s1", nil, "404"},
			{"foo.wildcard.io", "/s1", nil, "404"},
			{"very.specific.com", "/non-matching-prefix", nil, "404"},
			{"foo.wildcard.io", "/s2", nil, "v2"},
			{"bar.wildcard.io", "/s2", nil, "v2"},
			{"foo.bar.wildcard.io", "/s2", nil, "v2"},
			{"non.matching.com", "/s2", nil, "404"},
			{"wildcard.io", "/s2", nil, "404"},
			{"very.specific.com", "/s2", nil, "404"},
			{"foo.wildcard.io", "/non-matching-prefix", nil, "404"},
			{"very.specific.com", "/s3", nil, "v3"},
			{"non.matching.com", "/s3", nil, "404"},
			{"foo.specific.com", "/s3", nil, "404"},
			{"foo.wildcard.io", "/s3", nil, "404"},
			{"foo.anotherwildcard.io", "/s4", nil, "v1"},
			{"bar.anotherwildcard.io", "/s4", nil, "v1"},
			{"foo.bar.anotherwildcard.io", "/s4", nil, "v1"},
			{"anotherwildcard.io", "/s4", nil, "404"},
			{"foo.wildcard.io", "/s4", nil, "404"},
			{"very.specific.com", "/s4", nil, "404"},
			{"foo.anotherwildcard.io", "/non-matching-prefix", nil, "404"},
			{"specific.but.wrong.com", "/s5", nil, "404"},
			{"wildcard.io", "/s5", nil, "404"},
		},
		"httproute-hostname-intersection-all": {
			{"first.com", "/", nil, "v2"},
			{"sub.first.com", "/", nil, "v2"},
			{"second.com", "/", nil, "v2"},
			{"sub.second.com", "/", nil, "v2"},
			{"third.com", "/", nil, "404"},
			{"sub.third.com", "/", nil, "404"},
		},
		"gw-httproute-exact-hostname-x":                      {{"abc.example.com", "/", nil, "v2"}},
		"gw-httproute-exact-hostname-x-path":                 {{"abc.example.com", "/path/prefix/longer", nil, "v2"}},
		"gw-httproute-exact-hostname-x-path-header":          withHeaders,
		"gw-httproute-wc-hostname-x":                         {{"abc.example.com", "/", nil, "v2"}},
		"gw-httproute-wc-hostname-x-path":                    {{"abc.example.com", "/path/prefix/longer", nil, "v2"}},
		"gw-httproute-wc-hostname-x-path-header":             withHeaders,
		"http-listener-isolation-with-hostname-intersection": isolation,
	}
	for gateway, requests := range tests {
		table := tables[gateway]
		if table == nil {
			t.Errorf("Gateway %s has no socket", gateway)
			continue
		}
		for _, rq := range requests {
			t.Run(gateway+"/"+rq.host+rq.path+strings.Join(rq.headers, ","), func(t *testing.T) {
				req := httptest.NewRequest(http.MethodGet, "http://"+rq.host+rq.path, nil)
				for _, h := range rq.headers {
					name, value, _ := strings.Cut(h, ": ")
					req.Header.Set(name, value)
				}
				got := "404"
				if r := table.MatchRequest(req, req.URL.Path); r != nil {
					got = strings.TrimSuffix(strings.TrimPrefix(r.Backends[0].Backend.Name, ns+"/infra-backend-"), ":8080")
				}
				if got != rq.want {
					t.Errorf("served by %s, want %s", got, rq.want)
				}
			})
		}
	}
}

// backendRecorder is a routing.Forwarder that answers 200 and names the
// backend it was asked to forward to.
type backendRecorder struct{}

func (backendRecorder) ForwardWith(w http.ResponseWriter, _ *http.Request, b *upstream.Backend, _ *upstream.ForwardOptions) upstream.Outcome {
	w.Header().Set("X-Backend", b.Name)
	w.WriteHeader(http.StatusOK)
	return upstream.Outcome{Status: http.StatusOK}
}

// TestGatewayMisdirectedRequests sends the conformance suite's misdirected
// request cases through the handler with the translated table: a request
// whose Host belongs to another listener of the socket than its SNI gets
// 421.
func TestGatewayMisdirectedRequests(t *testing.T) {
	s := snapshot.Build(fixture.Dir(t, "testdata/gateway-misdirected"), gatewayConfig, nil)
	if len(s.Listeners) != 1 {
		t.Fatalf("%d sockets, want 1", len(s.Listeners))
	}
	table := s.Listeners[0].Routes
	h := routing.NewHandler(routing.HandlerConfig{Table: func() *routing.Table { return table }, Forwarder: backendRecorder{}})
	tests := []struct {
		sni, host string
		status    int
		backend   string
	}{
		{"example.org", "example.org", 200, "infra/v1:80"},
		{"example.org", "second-example.org", 421, ""},
		{"example.org", "unknown-example.org", 404, ""},
		{"second-example.org", "second-example.org", 200, "infra/v2:80"},
		{"second-example.org", "example.org", 421, ""},
		{"second-example.org", "unknown-example.org", 421, ""},
		{"third-example.wildcard.org", "third-example.wildcard.org", 200, "infra/v3:80"},
		{"third-example.wildcard.org", "fith-example.wildcard.org", 200, "infra/v3:80"},
		{"third-example.wildcard.org", "fourth-example.wildcard.org", 421, ""},
		{"third-example.wildcard.org", "second-example.org", 421, ""},
		{"third-example.wildcard.org", "unknown-example.org", 421, ""},
		{"fourth-example.wildcard.org", "fourth-example.wildcard.org", 200, "infra/v1:80"},
		{"fourth-example.wildcard.org", "fith-example.wildcard.org", 421, ""},
		{"unknown-example.org", "example.org", 200, "infra/v1:80"},
		{"unknown-example.org", "unknown-example.org", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.sni+"->"+tt.host, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "https://"+tt.host+"/detect-misdirected-requests", nil)
			req.TLS.ServerName = tt.sni
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status || rec.Header().Get("X-Backend") != tt.backend {
				t.Errorf("got %d from %q, want %d from %q", rec.Code, rec.Header().Get("X-Backend"), tt.status, tt.backend)
			}
		})
	}
}

// TestGatewayDeterminism builds every Gateway fixture with its objects in
// reverse order and checks the output does not change.
func TestGatewayDeterminism(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/gateway-*")
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := fixture.Dir(t, dir)
			want := describe(snapshot.Build(objs, gatewayConfig, nil))
			slices.Reverse(objs.Gateways)
			slices.Reverse(objs.HTTPRoutes)
			slices.Reverse(objs.GatewayClasses)
			slices.Reverse(objs.ReferenceGrants)
			slices.Reverse(objs.Namespaces)
			slices.Reverse(objs.Services)
			slices.Reverse(objs.Secrets)
			slices.Reverse(objs.BackendTLSPolicies)
			slices.Reverse(objs.ConfigMaps)
			if got := describe(snapshot.Build(objs, gatewayConfig, nil)); !bytes.Equal(got, want) {
				t.Errorf("output depends on object order:\n--- in order\n%s\n--- reversed\n%s", want, got)
			}
		})
	}
}

// BenchmarkBuildGateway is the cost of one build with one Gateway of two
// listeners and 1000 HTTPRoutes of two rules each, rebuilt from the
// previous snapshot as a source does on every change.
func BenchmarkBuildGateway(b *testing.B) {
	gw := httpGateway("web", 1, 80)
	gw.Spec.Listeners = append(gw.Spec.Listeners, gatewayv1.Listener{
		Name: "wildcard", Port: 80, Protocol: gatewayv1.HTTPProtocolType, Hostname: ptrTo(gatewayv1.Hostname("*.example.com")),
	})
	objs := snapshot.Objects{GatewayClasses: []*gatewayv1.GatewayClass{gatewayClass()}, Gateways: []*gatewayv1.Gateway{gw}}
	for i := range 1000 {
		name := fmt.Sprintf("app-%04d", i)
		objs.Services = append(objs.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		})
		objs.HTTPRoutes = append(objs.HTTPRoutes, &gatewayv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Namespace: "infra", Name: name},
			Spec: gatewayv1.HTTPRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "web"}}},
				Hostnames:       []gatewayv1.Hostname{gatewayv1.Hostname(name + ".example.com")},
				Rules: []gatewayv1.HTTPRouteRule{
					{
						Matches: []gatewayv1.HTTPRouteMatch{{
							Path:    &gatewayv1.HTTPPathMatch{Type: ptrTo(gatewayv1.PathMatchPathPrefix), Value: ptrTo("/api")},
							Headers: []gatewayv1.HTTPHeaderMatch{{Name: "x-version", Value: "2"}},
						}},
						BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptrTo(gatewayv1.PortNumber(80))}}}},
					},
					{
						BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptrTo(gatewayv1.PortNumber(80))}}}},
					},
				},
			},
		})
	}
	prev := snapshot.Build(objs, gatewayConfig, nil)
	if n := len(prev.Listeners[0].Routes.Routes()); n != 2000 {
		b.Fatalf("%d routes compiled, want 2000", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		prev = snapshot.Build(objs, gatewayConfig, prev)
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestBackendClientCertificateBackends checks that the TLS backends of one
// route share a Backend between Gateways with the same client certificate
// and get their own between Gateways with different ones (or none), so
// connection pools are never shared across client certificates.
func TestBackendClientCertificateBackends(t *testing.T) {
	objs := fixture.Dir(t, "testdata/gateway-backend-clientcert")
	cfg := gatewayConfig
	cfg.Gateway.AddressPool = []netip.Prefix{netip.MustParsePrefix("10.250.1.0/28")}
	s := snapshot.Build(objs, cfg, nil)
	secure := make(map[string]*upstream.Backend)
	for _, l := range s.Listeners {
		for _, lr := range l.Routes.Listeners() {
			for _, r := range lr.Routes {
				if r.Path == "/secure" {
					secure[l.Gateway.Name] = r.Backends[0].Backend
				}
			}
		}
	}
	for _, gw := range []string{"with-cert", "same-cert", "granted", "no-cert", "missing"} {
		if secure[gw] == nil {
			t.Fatalf("Gateway %s: no /secure route is served (got %v)", gw, slices.Collect(maps.Keys(secure)))
		}
	}
	if secure["with-cert"] != secure["same-cert"] {
		t.Error("two Gateways presenting the same Secret got different backends")
	}
	if secure["with-cert"] == secure["granted"] || secure["with-cert"] == secure["no-cert"] || secure["granted"] == secure["no-cert"] {
		t.Error("Gateways with different client certificates share a backend")
	}
	if secure["no-cert"] != secure["missing"] {
		t.Error("a Gateway whose client certificate does not resolve should dial like one without")
	}
	for gw, wantCN := range map[string]string{"with-cert": "a.example.com", "granted": "*.example.com", "no-cert": ""} {
		cc := secure[gw].TLS.ClientCertificate
		got := ""
		if cc != nil {
			got = cc.Leaf.Subject.CommonName
		}
		if got != wantCN {
			t.Errorf("Gateway %s presents %q, want %q", gw, got, wantCN)
		}
	}
}

// TestBackendClientCertificateLastGood checks that a client certificate
// Secret that disappears keeps its last good key pair presented while the
// Gateway says the reference is broken.
func TestBackendClientCertificateLastGood(t *testing.T) {
	objs := fixture.Dir(t, "testdata/gateway-backend-clientcert")
	first := snapshot.Build(objs, gatewayConfig, nil)
	objs.Secrets = slices.DeleteFunc(slices.Clone(objs.Secrets), func(s *corev1.Secret) bool {
		return s.Namespace == "infra" && s.Name == "client"
	})
	second := snapshot.Build(objs, gatewayConfig, first)
	var presented *upstream.Backend
	for _, l := range second.Listeners {
		if l.Gateway.Name != "with-cert" {
			continue
		}
		for _, lr := range l.Routes.Listeners() {
			for _, r := range lr.Routes {
				if r.Path == "/secure" {
					presented = r.Backends[0].Backend
				}
			}
		}
	}
	if presented == nil || presented.TLS == nil || presented.TLS.ClientCertificate == nil {
		t.Fatalf("with-cert no longer presents its last good client certificate: %+v", presented)
	}
	st := second.GatewayAPI.Gateways[types.NamespacedName{Namespace: "infra", Name: "with-cert"}]
	c := meta.FindStatusCondition(st.Conditions, string(gatewayv1.GatewayConditionResolvedRefs))
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != string(gatewayv1.GatewayReasonInvalidClientCertificateRef) {
		t.Errorf("ResolvedRefs %+v, want False InvalidClientCertificateRef", c)
	}
}

// TestIngressAndGatewayShareTLSBackend: an Ingress route and an HTTPRoute to
// a Service port a BackendTLSPolicy targets dial with the same TLS
// settings, so their requests share connection pools (keyed by endpoint
// and TLS settings).
func TestIngressAndGatewayShareTLSBackend(t *testing.T) {
	s := snapshot.Build(fixture.Dir(t, "testdata/gateway-ingress-backendtls"), gatewayConfig, nil)
	var fromIngress, fromGateway *upstream.Backend
	for _, r := range s.Routes.Routes() {
		if r.Path == "/secure" {
			fromIngress = r.Backend
		}
	}
	for _, l := range s.Listeners {
		for _, lr := range l.Routes.Listeners() {
			for _, r := range lr.Routes {
				fromGateway = r.Backends[0].Backend
			}
		}
	}
	if fromIngress == nil || fromIngress.TLS == nil {
		t.Fatalf("the Ingress route's backend %+v does not speak TLS", fromIngress)
	}
	if fromGateway == nil || fromIngress.TLS != fromGateway.TLS {
		t.Error("the Ingress route and the HTTPRoute to one TLS Service port got different TLS settings")
	}
}

// TestGRPCRouteMatching sends gRPC calls (POST /<service>/<method>) to the
// table the gateway-grpcroute case compiles: each is served by the rule
// and match the GRPCRoute method and header matches give it, and the
// HTTPRoute on the same listener keeps its own paths.
func TestGRPCRouteMatching(t *testing.T) {
	s := snapshot.Build(fixture.Dir(t, "testdata/gateway-grpcroute"), gatewayConfig, nil)
	var table *routing.Table
	for _, l := range s.Listeners {
		if l.Port == 80 {
			table = l.Routes
		}
	}
	if table == nil {
		t.Fatal("no listener on port 80")
	}
	tests := []struct {
		host, path string
		headers    map[string]string
		want       string // "<kind> <name> rule <rule>/<match>", or "404"
	}{
		{"grpc.example.com", "/echo.Echo/Unary", nil, "GRPCRoute infra/methods rule 0/0"},
		{"grpc.example.com", "/echo.Echo/Other", map[string]string{"Version": "2", "X-Tenant": "t42"}, "GRPCRoute infra/methods rule 0/1"},
		{"grpc.example.com", "/echo.Echo/Other", map[string]string{"Version": "2", "X-Tenant": "nobody"}, "GRPCRoute infra/methods rule 2/0"},
		{"grpc.example.com", "/any.Service/Health", nil, "GRPCRoute infra/methods rule 1/0"},
		{"grpc.example.com", "/echo.v2.Echo/StreamBoth", nil, "GRPCRoute infra/methods rule 1/1"},
		{"grpc.example.com", "/echo.vx.Echo/StreamBoth", nil, "GRPCRoute infra/methods rule 2/0"},
		{"grpc.example.com", "/echo.EchoX/Unary", nil, "GRPCRoute infra/methods rule 2/0"},
		{"grpc.example.com", "/web/page", nil, "HTTPRoute infra/web rule 0/0"},
		{"a.grpc.example.com", "/x.Y/Z", nil, "GRPCRoute infra/wildcard rule 0/0"},
		{"b.grpc.example.com", "/x.Y/Z", nil, "404"},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.path, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://"+tt.host+tt.path, nil)
			r.Header.Set("Content-Type", "application/grpc")
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			got := "404"
			if route := table.MatchRequest(r, tt.path); route != nil {
				got = route.Source.String()
			}
			if got != tt.want {
				t.Errorf("%s%s served by %s, want %s", tt.host, tt.path, got, tt.want)
			}
		})
	}
}

// TestTLSRouteMatching looks SNI names up in the passthrough table of the
// gateway-tlsroute case's port 443: the most specific listener whose
// hostname matches takes the name, then its exact route before its
// wildcard one; a name no listener route takes has no route (the
// connection is closed).
func TestTLSRouteMatching(t *testing.T) {
	s := snapshot.Build(fixture.Dir(t, "testdata/gateway-tlsroute"), gatewayConfig, nil)
	var table *routing.Table
	for _, l := range s.Listeners {
		if l.Port == 443 {
			if l.Protocol != gatewayv1.TLSProtocolType || l.Certificates != nil {
				t.Fatalf("port 443: protocol %s with certificates %v, want TLS without", l.Protocol, l.Certificates != nil)
			}
			table = l.Routes
		}
	}
	if table == nil {
		t.Fatal("no listener on port 443")
	}
	tests := []struct{ sni, want string }{
		{"app.example.com", "TLSRoute infra/exact rule 0/0"},
		{"APP.example.com", "TLSRoute infra/exact rule 0/0"},
		{"x.example.com", "TLSRoute infra/wildcard rule 0/0"},
		{"a.b.example.com", "TLSRoute infra/wildcard rule 0/0"},
		{"db.internal.test", "TLSRoute infra/other-domain rule 0/0"},
		{"example.com", "none"},
		{"unknown.test", "none"},
		{"", "none"},
	}
	for _, tt := range tests {
		got := "none"
		if r := table.Match(tt.sni, "/"); r != nil {
			got = r.Source.String()
		}
		if got != tt.want {
			t.Errorf("SNI %q: served by %s, want %s", tt.sni, got, tt.want)
		}
	}
}
