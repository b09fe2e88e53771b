package snapshot_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"portico.dev/portico/internal/testkit"
	"portico.dev/portico/internal/testkit/fixture"
	"portico.dev/portico/routing"
	"portico.dev/portico/snapshot"
	"portico.dev/portico/upstream"
)

// goldenConfig is the configuration every golden case is built with. Now is
// fixed so that certificate expiry does not change the output over time.
var goldenConfig = snapshot.Config{
	ControllerName: "portico.dev/controller",
	IngressClass:   "portico",
	Fallback:       types.NamespacedName{Namespace: "default", Name: "legacy-fallback"},
	Now:            time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
}

// nginxConfigMap is the ConfigMap --nginx-configmap names in the
// nginx-configmap* golden cases: ingress-nginx's Helm chart's.
var nginxConfigMap = types.NamespacedName{Namespace: "ingress-nginx", Name: "ingress-nginx-controller"}

// TestBuildGolden builds each testdata/<case>/objects.yaml and compares a
// readable description of the snapshot with testdata/<case>/snapshot.golden.
// Run with -update to rewrite the golden files, then review the diff.
func TestBuildGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/objects.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases found: %v", err)
	}
	for _, in := range dirs {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var got []byte
			if isGatewayCase(dir) {
				got = describe(snapshot.Build(fixture.Dir(t, dir), gatewayConfig, nil))
			} else {
				cfg := goldenConfig
				if strings.HasPrefix(filepath.Base(dir), "nginx-configmap") {
					cfg.NginxConfigMap, cfg.AdoptClasses = nginxConfigMap, []string{"nginx"}
				}
				got = describe(snapshot.Build(fixture.Manifests(t, dir), cfg, nil))
			}
			testkit.Golden(t, filepath.Join(dir, "snapshot.golden"), got)
		})
	}
}

// describe is the golden form of a snapshot: one line per fact, unwrapped,
// so that a review of a golden diff reads like a review of the routing table.
func describe(s *snapshot.Snapshot) []byte {
	var out strings.Builder
	section := func(title string, lines []string) {
		fmt.Fprintf(&out, "%s:\n", title)
		if len(lines) == 0 {
			out.WriteString("  none\n")
		}
		for _, l := range lines {
			fmt.Fprintf(&out, "  %s\n", l)
		}
	}
	var ingresses, routes, certs, problems []string
	for _, n := range s.Ingresses {
		ingresses = append(ingresses, n.String())
	}
	for _, r := range s.Routes.Routes() {
		routes = append(routes, describeRoute(r))
	}
	fallback := "none (404)"
	if fb := s.Routes.Fallback; fb != nil {
		fallback = describeBackend(fb)
	}
	for _, b := range s.Bindings {
		certs = append(certs, fmt.Sprintf("%s <- %s (serial %s)", b.Host, b.Source, b.Pair.Serial))
	}
	asked := make(map[string]bool)
	for _, r := range s.Routes.Routes() {
		if r.Host != "" && !asked[r.Host] && s.Certificates.ClientValidation(strings.Replace(r.Host, "*", "x", 1)) != nil {
			asked[r.Host] = true
			certs = append(certs, r.Host+" asks for a client certificate")
		}
	}
	for _, p := range s.Problems {
		problems = append(problems, p.String())
	}
	section("ingresses", ingresses)
	section("routes", routes)
	section("fallback", []string{fallback})
	section("certificates", certs)
	section("problems", problems)
	if s.SSLPassthrough != nil {
		var pt []string
		for _, r := range s.SSLPassthrough.Routes() {
			pt = append(pt, fmt.Sprintf("%s -> %s from %s", r.Host, describeBackend(r), r.Source))
		}
		section("ssl passthrough", pt)
	}
	describeGateway(s, section)
	return []byte(out.String())
}

func describeRoute(r *routing.Route) string {
	host := r.Host
	if host == "" {
		host = "*"
	}
	match := r.PathKind.String() + " " + r.Path
	if r.PathKind == routing.PathAny {
		match = "any path"
	}
	if r.PathKind == routing.PathRegex {
		match = "Regex " + r.PathRegexp.String()
	}
	var flags []string
	if r.RedirectHTTPS {
		flags = append(flags, "redirect-https")
	}
	if r.FallbackOnNoEndpoints {
		flags = append(flags, "fallback-on-no-endpoints")
	}
	if r.Admission != nil {
		flags = append(flags, "admission "+r.Admission.String())
	}
	if a := r.ExternalAuth; a != nil {
		flags = append(flags, fmt.Sprintf("external auth %s method=%q signin=%q param=%q copy=%q", a.URL, a.Method, a.SignIn, a.SignInParam, a.ResponseHeaders))
	}
	if a := r.BasicAuth; a != nil {
		if a.Unavailable {
			flags = append(flags, "basic auth unavailable (503)")
		} else {
			users := a.Users()
			slices.Sort(users)
			flags = append(flags, fmt.Sprintf("basic auth realm=%q users=%q", a.Realm, users))
		}
	}
	if a := r.ClientCert; a != nil {
		if a.Unavailable {
			flags = append(flags, "client cert unavailable (403)")
		} else {
			f := fmt.Sprintf("client cert verify=%s depth=%d", a.Verify, a.Depth)
			if a.ErrorPage != "" {
				f += " error-page=" + a.ErrorPage
			}
			if a.PassCertificate {
				f += " pass-certificate"
			}
			if a.MatchCN != nil {
				f += fmt.Sprintf(" match-cn=%q", a.MatchCN)
			}
			if a.Revoked != nil {
				f += " crl"
			}
			flags = append(flags, f)
		}
	}
	if ce := r.CustomErrors; ce != nil {
		eb := "fallback"
		if ce.Backend != nil {
			eb = ce.Backend.Name
		}
		flags = append(flags, fmt.Sprintf("custom errors %v -> %s (ingress %s/%s service %s port %s)", ce.Codes, eb, ce.Namespace, ce.Ingress, ce.Service, ce.Port))
	}
	for _, h := range r.Headers {
		if h.Regexp != nil {
			flags = append(flags, "header "+h.Name+" ~ "+h.Regexp.String())
		} else {
			flags = append(flags, "header "+h.Name+" = "+h.Value)
		}
	}
	for _, wb := range r.Backends {
		flags = append(flags, fmt.Sprintf("weight %d %s", wb.Weight, wb.Backend.Name))
	}
	if t := r.Timeouts; t.BackendRead != 0 || t.BackendSend != 0 {
		flags = append(flags, fmt.Sprintf("backend read %s send %s", t.BackendRead, t.BackendSend))
	}
	if r.SatisfyAny {
		flags = append(flags, "satisfy any")
	}
	if r.NoAccessLog {
		flags = append(flags, "no access log")
	}
	if r.Timeouts.Connect != 0 {
		flags = append(flags, fmt.Sprintf("connect timeout %s", r.Timeouts.Connect))
	}
	if rt := r.Retry; rt != nil {
		f := fmt.Sprintf("retry codes %v attempts %d", rt.Codes, rt.Attempts)
		if n := rt.Next; n != nil {
			f += fmt.Sprintf(" next-upstream error=%t timeout=%t invalid_header=%t non_idempotent=%t within %s", n.Error, n.Timeout, n.InvalidHeader, n.NonIdempotent, n.Within)
		}
		flags = append(flags, f)
	}
	if r.Filters != nil {
		flags = append(flags, describeFilters(r.Filters))
	}
	if a := r.Backend.Affinity(); a != nil {
		flags = append(flags, describeAffinity(a))
	}
	line := fmt.Sprintf("%s %s -> %s from %s", host, match, describeBackend(r), r.Source)
	if len(flags) > 0 {
		line += " [" + strings.Join(flags, ", ") + "]"
	}
	return line
}

func describeBackend(r *routing.Route) string {
	b := r.Backend
	eps := "no endpoints"
	if len(b.Endpoints) > 0 {
		eps = strings.Join(b.Endpoints, " ")
	}
	return fmt.Sprintf("%s %s%s (%s)", b.Name, b.Protocol, describeBackendTLS(b.TLS), eps)
}

func describeAffinity(a *upstream.Affinity) string {
	if a.HashBy != nil {
		return fmt.Sprintf("hash by %q", a.HashBy.Expr)
	}
	c := a.Cookie
	return fmt.Sprintf("session cookie %s mode=%s path=%q domain=%q secure=%t samesite=%q conditional=%t max-age=%s expires=%s",
		c.Name, c.Mode, c.Path, c.Domain, c.Secure, c.SameSite, c.ConditionalSameSiteNone, c.MaxAge, c.Expires)
}
