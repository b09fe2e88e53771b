package snapshot

//go:generate go run ../hack/nginxdoc ../docs/ingress-nginx.md

import (
	"fmt"
	"io"
	"strings"
)

// NginxCounts counts the annotation table's rows by Portico's verdict and
// by the peers'.
type NginxCounts struct {
	Total                                             int
	Exact, Approximate, Unsupported, NeverExecuted    int
	TraefikYes, TraefikPartial, Ingress2GatewayYes    int
	TraefikNo, Ingress2GatewayNo, Ingress2GatewayPart int
}

// CountNginx counts the annotation table.
func CountNginx() NginxCounts {
	var c NginxCounts
	for _, a := range nginxTable {
		c.Total++
		switch a.Verdict {
		case NginxExact:
			c.Exact++
		case NginxApproximate:
			c.Approximate++
		case NginxUnsupported:
			c.Unsupported++
		case NginxNeverExecuted:
			c.NeverExecuted++
		}
		switch a.Traefik {
		case "yes":
			c.TraefikYes++
		case "partial":
			c.TraefikPartial++
		default:
			c.TraefikNo++
		}
		switch a.Ingress2Gateway {
		case "yes":
			c.Ingress2GatewayYes++
		case "partial":
			c.Ingress2GatewayPart++
		default:
			c.Ingress2GatewayNo++
		}
	}
	return c
}

// WriteNginxDoc writes docs/ingress-nginx.md from the annotation table,
// so that the page cannot drift from the code (TestNginxDocUpToDate).
func WriteNginxDoc(w io.Writer) error {
	c := CountNginx()
	var sb strings.Builder
	sb.WriteString(`# ingress-nginx annotations

<!-- Generated from snapshot/nginx_table.go by ` + "`make docs-ingress-nginx`" + ` (go generate ./snapshot); do not edit. -->

Portico reads the ` + "`nginx.ingress.kubernetes.io/*`" + ` annotations of the
Ingresses it serves. Those it implements translate onto the same route
model HTTPRoute filters use; every other one is reported on its Ingress,
never silently ignored: a Warning Event naming the annotation and what
Portico does instead, counted in ` + "`portico_config_problems`" + `. Unknown
annotations are reported the same way. Snippets (raw nginx configuration,
the class of CVE-2025-1974) are never executed. A value Portico cannot
read is reported (` + "`InvalidNginxAnnotation`" + `) and leaves that annotation
out, while the rest of the Ingress serves; an allow list that cannot be
read admits nobody, as in ingress-nginx.

Run ` + "`portico check --manifests DIR`" + ` (or ` + "`--kubeconfig FILE`" + `,
` + "`-o json`" + `) to see the verdict of every annotation on your Ingresses
before switching; [the migration guide](migration.md#from-ingress-nginx)
shows how to serve the ` + "`nginx`" + ` class side by side with ingress-nginx.

## Counts

`)
	fmt.Fprintf(&sb, "| | annotations | exact | approximate | unsupported | never executed (snippets) |\n")
	fmt.Fprintf(&sb, "|---|---|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| Portico | %d | %d | %d | %d | %d |\n\n", c.Total, c.Exact, c.Approximate, c.Unsupported, c.NeverExecuted)
	fmt.Fprintf(&sb, "| Peer | supported | partial | not supported |\n|---|---|---|---|\n")
	fmt.Fprintf(&sb, "| Traefik's ingress-nginx provider | %d | %d | %d |\n", c.TraefikYes, c.TraefikPartial, c.TraefikNo)
	fmt.Fprintf(&sb, "| ingress2gateway's ingress-nginx provider | %d | %d | %d |\n\n", c.Ingress2GatewayYes, c.Ingress2GatewayPart, c.Ingress2GatewayNo)
	sb.WriteString(`Portico's ` + "`exact`" + ` and ` + "`approximate`" + ` annotations are served; the note
says how an approximate one differs. Traefik's column is its provider's
documentation page (` + "`reference/routing-configuration/kubernetes/ingress-nginx.md`" + `):
"partial" where the page lists a limitation. ingress2gateway's column is
whether its ingress-nginx provider (v1.x) converts the annotation, often
into implementation-specific resources rather than plain Gateway API.

Behaviours that hold for every Ingress written for ingress-nginx (one of
its annotations, the ` + "`nginx`" + ` class, or a class of ` + "`--adopt-ingress-classes`" + `): HTTPS redirects are on (308) for
hosts listed under ` + "`spec.tls`" + ` unless ` + "`ssl-redirect: \"false\"`" + `; a host where one
Ingress sets ` + "`use-regex`" + ` or ` + "`rewrite-target`" + ` matches every Prefix path of every
Ingress as a case-insensitive regular expression anchored at the start
only, longest path first (reported on the Ingresses that did not ask for
it). ingress-nginx's global ConfigMap is not read.

Basic authentication (` + "`auth-type: basic`" + `) reads its users from an Opaque
Secret in the Ingress's namespace, which Portico watches by name (it
never lists every Secret); a wrong or missing password is answered 401
with ` + "`WWW-Authenticate: Basic realm=\"...\"`" + `, and the ` + "`Authorization`" + ` header
reaches the backend, as nginx passes it. An Ingress whose authentication
cannot be checked (digest, a missing Secret or ` + "`auth`" + ` key, a line that is
not ` + "`user:hash`" + `) is answered 503 and reported, never served open; ingress-nginx
denies such a location with 503 too. bcrypt and MD5-crypt acceptances
are remembered (` + "`--basic-auth-cache-size`" + `), so a client that sends the same
credentials pays for the hash once.

## Every annotation

| Annotation | Portico | How it differs, or what Portico does instead | Traefik | ingress2gateway |
|---|---|---|---|---|
`)
	for _, a := range nginxTable {
		note := strings.ReplaceAll(a.Note, "|", `\|`)
		fmt.Fprintf(&sb, "| `%s` | %s | %s | %s | %s |\n", a.Name, a.Verdict, note, a.Traefik, a.Ingress2Gateway)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}
